"""The compiled runtime, built for the host, against the host TFLM interpreter: byte for byte."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_edit import edit, set_constant, set_quantization
from op_models import case_names, case_op, make_case
from op_models_int16 import quantize_chain
from schema_models import T, const, model, unary
from tinyeff.codegen import build_for_host, compile_model, plan_memory, quant
from tinyeff.errors import TinyeffError
from tinyeff.footprint import host_tflm_arena, load_model_file, read_model
from tinyeff.reference import tflm_outputs

N_INPUTS = 1000


def _random_inputs(info, n: int, seed: int) -> np.ndarray:
    rng, t = np.random.default_rng(seed), info.input()
    if t.dtype == "FLOAT32":
        # spread past the int8 range (clamping), and some elements at exact half steps of the
        # quantization scale (QUANTIZE rounds half away from zero)
        scale = next(info.tensors[o.outputs[0]].scales[0] for o in info.ops if o.op == "QUANTIZE")
        x = rng.normal(0, 2, (n, *t.shape)).astype(np.float32)
        halves = (rng.integers(-130, 130, (n, 4)) + 0.5) * np.float32(scale)
        x.reshape(n, -1)[:, :4] = halves.astype(np.float32)
        return x
    return rng.integers(-128, 128, (n, *t.shape), dtype=np.int8)


@pytest.mark.parametrize("case", case_names())
def test_every_op_case_is_bit_exact_with_tflm(case, tmp_path):
    data = make_case(case)
    info = read_model(data, case)
    assert case_op(case) in (None, *info.op_names), f"the converter wrote {info.op_names}, not {case_op(case)}"
    host = build_for_host(data, info, tmp_path, case)
    x = _random_inputs(info, N_INPUTS, seed=1)
    want = tflm_outputs(data, x).reshape(N_INPUTS, -1)
    got = host.run(x).reshape(N_INPUTS, -1)
    assert np.array_equal(want, got), f"{(want != got).any(axis=1).sum()} of {N_INPUTS} outputs differ"
    # the generated C names each layer after the graph's op, in the graph's order (what a reader of the
    # source, or of a crash in it, goes by; the arrays of each layer are named after its index too)
    assert _layer_comments((tmp_path / "tinyeff_model.c").read_text()) == [(str(o.index), o.op) for o in info.ops]


def _layer_comments(source: str) -> list[tuple[str, str]]:
    import re

    return [(i, op) for i, op in re.findall(r"^/\* layer (\w+): (\w+) \*/$", source, re.M)]


def _options(**values):
    def change(m, g):
        for field, value in values.items():
            setattr(g.operators[-1].builtinOptions, field, value)
    return change


def _quantization(tensor: int, scale: float, zero_point: int):
    def change(m, g):
        q = g.tensors[tensor].quantization
        q.scale, q.zeroPoint = np.array([scale], np.float32), np.array([zero_point], np.int64)
    return change


def _values(tensor: int, *values: int):
    return lambda m, g: set_constant(m, g.tensors[tensor], np.array(values, np.int32))


def _output_zero_point(zero_point: int):
    """The last op's output zero point moved: with a fused RELU above -128, its clamp really clamps."""
    def change(m, g):
        g.tensors[g.operators[-1].outputs[0]].quantization.zeroPoint = np.array([zero_point], np.int64)
    return change


def _output_quantization(scale: float, zero_point: int):
    """The last op's output quantization: a range wider than its fused activation's, so that the clamp's bound is inside it."""
    def change(m, g):
        q = g.tensors[g.operators[-1].outputs[0]].quantization
        q.scale, q.zeroPoint = np.array([scale], np.float32), np.array([zero_point], np.int64)
    return change


def _input_quantization(scale: float, zero_point: int, op: int = -1):
    def change(m, g):
        q = g.tensors[g.operators[op].inputs[0]].quantization
        q.scale, q.zeroPoint = np.array([scale], np.float32), np.array([zero_point], np.int64)
    return change


def _per_tensor_weights(zero_point: int):
    """The last op's weights quantized per tensor with a nonzero zero point (the converter writes per
    channel and 0; other exporters and TFLM's per-tensor FULLY_CONNECTED take this)."""
    def change(m, g):
        x, w, b = (g.tensors[i] for i in g.operators[-1].inputs[:3])
        scale = float(np.max(w.quantization.scale))
        set_quantization(w, [scale], [zero_point])
        set_quantization(b, [float(x.quantization.scale[0]) * scale], [0])
    return change


def _both(*changes):
    def change(m, g):
        for c in changes:
            c(m, g)
    return change


# Parameters a converter seldom writes but a model may hold: each runs TFLM's rarer arithmetic paths
EDITED = {
    "leaky_relu_negative_alpha": ("leaky_relu", _options(alpha=-0.3)),  # TFLM negates the product of |alpha|
    "leaky_relu_alpha_above_one": ("leaky_relu", _both(_options(alpha=-2.7), _quantization(1, 0.0005, 3))),
    # hard swish: a left-shifted "relu-ish" factor, a right-shifted one, and output exponents of 0 and below -15 (where
    # TFLM's int16 rounding shift has a mask of -1)
    "hard_swish_left_shift": ("hard_swish", _both(_quantization(0, 3.0, 5), _quantization(1, 0.05, -100))),
    "hard_swish_right_shift": ("hard_swish", _both(_quantization(0, 0.001, 5), _quantization(1, 0.0005, 0))),
    "hard_swish_output_exponent_0": ("hard_swish", _both(_quantization(0, 0.1, 5), _quantization(1, 0.1 / 96, -3))),
    "hard_swish_tiny_multipliers": ("hard_swish", _both(_quantization(0, 0.05, 5), _quantization(1, 40.0, -100))),
    "tanh_fine_input": ("tanh", _quantization(0, 1e-6, -20)),
    "tanh_coarse_input": ("tanh", _quantization(0, 2.0, -20)),
    "relu_left_shift": ("relu", _quantization(1, 0.001, -128)),
    "relu6_fine_input": ("relu6", _quantization(0, 0.001, -5)),
    "sub_far_scales": ("sub", _both(_quantization(3, 0.5, 9), _quantization(0, 0.001, 11), _quantization(4, 0.002, 5))),
    "sub_relu6": ("sub", _options(fusedActivationFunction=3)),
    "resize_corners_and_centres": ("resize_half_pixel", _options(alignCorners=True)),
    "resize_corners_down": ("resize_down", _options(alignCorners=True, halfPixelCenters=False)),
    "slice_clamped_bounds": ("slice_steps", _both(_options(beginMask=1, endMask=9), _values(3, 0, -7, 100, 1), _values(2, 0, 7, -100, 0))),
    "tconv_input_offset_and_bias": ("tconv_k3_s2_same_relu", _both(_quantization(0, 0.03, -77), _values(2, 2**20, -2**20, 12345, -1))),
    # scales whose rescaling ratios give other outputs when rounded to float32 before they are quantized (TFLM's
    # sources write float32 expressions, the host TFLM forms them in double) and, for RELU6, the other way round
    "relu_ratio_in_double": ("relu", _both(_quantization(0, 0.04478973150253296, -128), _quantization(1, 0.06508222222328186, -128))),
    "leaky_relu_ratios_in_double": ("leaky_relu", _both(_options(alpha=0.8008475303649902), _quantization(0, 0.008052743971347809, -128),
                                                        _quantization(1, 0.012844868004322052, -128))),
    "hard_swish_ratios_in_double": ("hard_swish", _both(_quantization(0, 0.16572263836860657, 3),
                                                        _quantization(1, 0.07761483639478683, -90))),
    "sub_ratios_in_double": ("sub_from_const", _both(lambda m, g: set_constant(m, g.tensors[1], np.array(-51, np.int8)),
                                                     _quantization(1, 0.01822521723806858, 0), _quantization(0, 0.04001724347472191, 0),
                                                     _quantization(2, 0.030249696224927902, 0))),
    "relu6_six_in_float32": ("relu6", _quantization(0, 1.3333333730697632, -100)),
    # cases a converter never writes, which the kernel mutations of scripts/kernel_mutation.py showed the grid lacked
    "conv_relu_clamp_above_minus_128": ("conv_k3x3_s2_same_relu_d1", _output_zero_point(-60)),
    "dense_per_tensor_weight_offset": ("dense_None", _per_tensor_weights(3)),
    # fused clamps whose bounds fall inside the output's range: RELU6 at 6.0 (-68 here), RELU_N1_TO_1 at -1.0 and 1.0
    "conv_relu6_bound_inside_the_range": ("conv_k3x2_s2_valid_relu6_d1", _output_quantization(0.1, -128)),
    "conv_relu_n1_to_1": ("conv_k3x3_s1_same_None_d1", _both(_options(fusedActivationFunction=2), _output_quantization(0.05, 3))),
    "softmax_rows_below_code_0": ("dense_softmax", _input_quantization(0.3, -110)),
    # an input scale where the rounding of TFLM's saturating doubling high multiply shows in tanh's output
    "tanh_where_rounding_shows": ("tanh", _input_quantization(float.fromhex("0x1.73719ap-7"), -128, op=0)),
}


@pytest.mark.parametrize("what", EDITED)
def test_new_ops_are_bit_exact_at_rare_parameters(what, tmp_path):
    case, change = EDITED[what]
    data = edit(make_case(case), change)
    info = read_model(data, what)
    host = build_for_host(data, info, tmp_path, what)
    x = _random_inputs(info, 300, seed=4)
    x[0], x[1] = -128, 127  # the extremes saturate
    assert np.array_equal(tflm_outputs(data, x).reshape(300, -1), host.run(x).reshape(300, -1))


# Models written with the schema, where a converter's habits would hide a slip: an optional input
# numbered tensor 0 (a converter numbers constants after the input), ops without an options table (the
# schema's defaults apply, in TFLM too), tensors of fewer than 4 axes, a per-tensor transposed conv filter
def _padv2_value_first() -> bytes:
    value = T((1,), "INT8", (0.1, 3), np.array([57], np.int8))
    tensors = [value, T((1, 4, 3, 2), q=(0.1, 3)), const([[0, 0], [1, 2], [0, 1], [0, 0]]), T((1, 7, 4, 2), q=(0.1, 3))]
    return model(tensors, [("PADV2", [1, 2, 0], [3], None)], [1], [3])


def _conv(h: int, w: int, k: tuple[int, int], padding: int = 0, bias: str = "last") -> bytes:
    """CONV_2D of 4 channels into 3 over an HxW input with a KxK' filter, per-tensor weights; padding 0 is SAME.
    BIAS: numbered after the other tensors ("last"), tensor 0 ("first"), or no bias input at all ("none")."""
    kh, kw = k
    weights = T((3, kh, kw, 4), "INT8", (0.02, 0), (np.arange(3 * kh * kw * 4).reshape(3, kh, kw, 4) * 53 % 255 - 127).astype(np.int8))
    b = T((3,), "INT32", (0.002, 0), np.array([900, -1500, 40], np.int32))
    oh, ow = (h, w) if padding == 0 else (h - kh + 1, w - kw + 1)
    x, out = T((1, h, w, 4), q=(0.1, 7)), T((1, oh, ow, 3), q=(0.2, -5))
    options = dict(padding=padding, strideW=1, strideH=1)
    if bias == "first":
        return model([b, x, weights, out], [("CONV_2D", [1, 2, 0], [3], options)], [1], [3])
    if bias == "none":
        return model([x, weights, out], [("CONV_2D", [0, 1], [2], options)], [0], [2])
    return model([x, weights, b, out], [("CONV_2D", [0, 1, 2], [3], options)], [0], [3])


def _dense(outputs: int, weight_scales, in_scale: float = 0.1, out_scale: float = 0.2) -> bytes:
    """FULLY_CONNECTED of 8 inputs into OUTPUTS, weights quantized per tensor (one scale) or per output channel."""
    weights = T((outputs, 8), "INT8", (weight_scales, 0), (np.arange(outputs * 8).reshape(outputs, 8) * 41 % 255 - 127).astype(np.int8))
    bias = T((outputs,), "INT32", (0.002, 0), (np.arange(outputs) * 700 - 300).astype(np.int32))
    tensors = [T((1, 8), q=(in_scale, -3)), weights, bias, T((1, outputs), q=(out_scale, 6))]
    return model(tensors, [("FULLY_CONNECTED", [0, 1, 2], [3], {})], [0], [3])


# scales whose float32 product (TFLM's per-tensor multiplier) and double product (its per-channel one) give
# multipliers 1870744277 and 1870744309: rarely an output apart, so test_a_dense_layer_takes_tflm_s_multipliers pins it
_DENSE_SCALES = tuple(float.fromhex(h) for h in ("0x1.0c55a4p-3", "0x1.d1f238p-7", "0x1.185288p-4"))


def _padv2_scalar_value() -> bytes:
    """The padding value a 0-D tensor (TFLM reads the one element of any shape)."""
    tensors = [T((1, 4, 3, 2), q=(0.1, 3)), const([[0, 0], [2, 0], [1, 1], [0, 0]]), T((), "INT8", (0.1, 3), np.array(-41, np.int8)),
               T((1, 6, 5, 2), q=(0.1, 3))]
    return model(tensors, [("PADV2", [0, 1, 2], [3], None)], [0], [3])


def _tconv_bias_first() -> bytes:
    bias = T((4,), "INT32", (0.002, 0), np.array([3000, -2000, 700, -50], np.int32))
    w = T((4, 3, 3, 2), "INT8", (0.02, 0), (np.arange(72).reshape(4, 3, 3, 2) * 37 % 255 - 127).astype(np.int8))
    tensors = [bias, const([1, 4, 4, 4]), w, T((1, 4, 4, 2), q=(0.1, -9)), T((1, 4, 4, 4), q=(0.3, 5))]
    return model(tensors, [("TRANSPOSE_CONV", [1, 2, 3, 0], [4], dict(padding=0, strideW=1, strideH=1))], [3], [4])


# QUANTIZE int8 to int8 twice, input zero point nonzero (lower.py's requantize; int16 and int32 sides are lower_int16's)
_REQUANTIZE_8_8_8 = [("INT8", 0.05, 3), ("INT8", 0.03, -7), ("INT8", 0.08, 11)]

SCHEMA_CASES = {
    "requantize_8_8_8": lambda: quantize_chain(_REQUANTIZE_8_8_8),
    "padv2_value_first": _padv2_value_first,
    "tconv_bias_first_per_tensor_filter": _tconv_bias_first,
    "padv2_scalar_value": _padv2_scalar_value,
    # one row of pixels: a 3x3 window (taller than the row) stays a conv over the row; a 1x3 one runs over a column
    "conv_3x3_over_one_row": lambda: _conv(1, 5, (3, 3)),
    "conv_1x3_over_one_row_of_two": lambda: _conv(1, 2, (1, 3)),
    "pointwise_conv": lambda: _conv(2, 2, (1, 1), padding=1),
    "conv_bias_first": lambda: _conv(3, 3, (3, 3), bias="first"),
    "conv_without_a_bias_input": lambda: _conv(3, 3, (3, 3), bias="none"),
    # two outputs, a scale each (a per-channel test of "more than one scale" against "more than two")
    "dense_per_channel_two_outputs": lambda: _dense(2, (0.02, 0.005)),
    "dense_per_tensor": lambda: _dense(3, _DENSE_SCALES[1], _DENSE_SCALES[0], _DENSE_SCALES[2]),
    # begin 2, end 11 and stride 3 on the one axis: a mask that defaulted to 1 would take 0 or 12 instead
    "slice_1d_without_options": lambda: unary("STRIDED_SLICE", T((12,)), T((3,)), None, const([2]), const([11]), const([3])),
    # begin, end and strides of a 1-D slice written as scalars (TFLM reads one value from each)
    "slice_1d_scalar_bounds": lambda: unary("STRIDED_SLICE", T((12,)), T((3,)), {}, const(2), const(11), const(3)),
    # 1-D: the one axis a concatenation without options (axis 0 by the schema) takes in a model of batch 1
    "concat_1d_without_options": lambda: model([T((6,)), T((6,)), T((12,))], [("RELU", [0], [1], {}), ("CONCATENATION", [0, 1], [2], None)],
                                               [0], [2]),
    # a shrunk axis takes one element from its begin whatever its end says (TFLM ignores the end of 0 here)
    "slice_shrink_ignores_end": lambda: unary("STRIDED_SLICE", T((1, 4, 6)), T((1, 6)), dict(shrinkAxisMask=2),
                                              const([0, 2, 0]), const([1, 0, 6]), const([1, 1, 1])),
    "resize_without_options": lambda: unary("RESIZE_NEAREST_NEIGHBOR", T((1, 3, 2, 2)), T((1, 5, 4, 2)), None, const([5, 4])),
    # beta other than 1, and rows of a 3-D tensor (the last axis is the one normalized)
    "softmax_beta_half_3d": lambda: unary("SOFTMAX", T((1, 3, 5)), T((1, 3, 5), q=(1 / 256, -128)), {"beta": 0.5}),
    "leaky_relu_without_options": lambda: unary("LEAKY_RELU", T((1, 8), q=(0.1, 4)), T((1, 8), q=(0.05, -3)), None),
}


@pytest.mark.parametrize("what", SCHEMA_CASES)
def test_schema_written_models_are_bit_exact(what, tmp_path):
    data = SCHEMA_CASES[what]()
    info = read_model(data, what)
    host = build_for_host(data, info, tmp_path, what)
    x = _random_inputs(info, 300, seed=6)
    assert np.array_equal(tflm_outputs(data, x).reshape(300, -1), host.run(x).reshape(300, -1))
    assert _layer_comments((tmp_path / "tinyeff_model.c").read_text()) == [(str(o.index), o.op) for o in info.ops]


def test_convs_are_laid_out_for_the_least_ring_and_a_pointwise_one_runs_in_place_by_pixels():
    """What output comparison cannot see: a conv over one row of pixels runs as the same conv over one
    column (its ring then holds the window's pixels, not the whole row), unless its window is taller
    than the row; a 1x1 conv writes over its input by pixel groups, any other by a ring of rows."""
    def layer(what):
        data = SCHEMA_CASES[what]()
        (only,) = compile_model(data, read_model(data, what), what).model.layers
        return only

    def hw(f):
        return f["in_h"], f["in_w"], f["out_h"], f["out_w"], f["k_h"], f["k_w"]

    assert hw(layer("conv_1x3_over_one_row_of_two").fields) == (2, 1, 2, 1, 3, 1)
    assert hw(layer("conv_3x3_over_one_row").fields) == (1, 5, 1, 5, 3, 3)
    assert [layer(w).inplace for w in ("pointwise_conv", "conv_3x3_over_one_row")] == ["pixel", "rows"]


def test_the_constant_bytes_counted_are_those_of_the_arrays_emitted(kws_like_model):
    """const_bytes (the compiled runtime's flash in generate's footprint check and manifest) is the sum of
    the C arrays the model source declares, each its length times its C type's size."""
    import re

    data = kws_like_model.read_bytes()
    compiled = compile_model(data, read_model(data, "kws"), "kws")
    declared = re.findall(r"^static const (int8_t|int16_t|int32_t|int64_t) \w+\[(\d+)\] = \{", compiled.sources["tinyeff_model.c"], re.M)
    size = {"int8_t": 1, "int16_t": 2, "int32_t": 4, "int64_t": 8}
    assert len(declared) == sum(len(layer.arrays) for layer in compiled.model.layers) > 0
    assert compiled.model.const_bytes == sum(size[ctype] * int(n) for ctype, n in declared)


@pytest.mark.parametrize("what", ["dense_per_tensor", "dense_per_channel_two_outputs", "pointwise_conv", "softmax_beta_half_3d"])
def test_the_struct_fields_are_written_as_integers(what):
    """Sizes, offsets and multipliers are C integer literals (a float scale is a hex float literal):
    a decimal point in a field would be a size computed in floating point."""
    import re

    data = SCHEMA_CASES[what]()
    source = compile_model(data, read_model(data, what), what).sources["tinyeff_model.c"]
    assert re.findall(r"\.\w+ = -?\d+\.\d*", source) == [], source


def test_a_dense_layer_takes_tflm_s_multipliers():
    """Per tensor: the float32 product of the input and weight scales, as TFLM's fully connected takes it
    (its per-channel multipliers take the double product); per channel: one multiplier per output."""
    def mult(what):
        data = SCHEMA_CASES[what]()
        (layer,) = compile_model(data, read_model(data, what), what).model.layers
        arrays = {a.name: a.values.tolist() for a in layer.arrays}
        return layer.fields["per_channel"], arrays[layer.fields["mult"]], arrays[layer.fields["shift"]]

    assert mult("dense_per_tensor") == (0, [1870744277], [-5])
    f32 = [float(np.float32(v)) for v in (0.1, 0.02, 0.005, 0.2)]
    per_channel = quant.conv_multipliers(f32[0], (f32[1], f32[2]), f32[3], 2)
    assert mult("dense_per_channel_two_outputs") == (1, *per_channel)


@pytest.mark.parametrize("path", ["generic", "dsp", "mve"])
def test_each_layer_takes_the_kernel_of_its_boards_path(path):
    """A board's SIMD path (Cortex-M DSP extension, Helium) replaces the generic kernel where it has one,
    with the work buffer it asks for (a 3x3 conv of 4 channels: 36 taps widened to int16, twice; or four
    pixels' im2col rows), which the QEMU op grid runs (the host builds here run the generic ones)."""
    suffix = "" if path == "generic" else "_" + path
    want = {"dense_per_tensor": ("te_fully_connected" + suffix, 0),
            "conv_3x3_over_one_row": ("te_conv2d" + suffix, {"generic": 0, "dsp": 2 * 2 * 36, "mve": 4 * 36}[path]),
            "pointwise_conv": (("te_pointwise" + suffix) if suffix else "te_conv2d", 2 * 2 * 4 if path == "dsp" else 0)}
    for what, (kernel, work) in want.items():
        data = SCHEMA_CASES[what]()
        (layer,) = compile_model(data, read_model(data, what), what, path=path).model.layers
        assert (layer.kernel, layer.work_bytes) == (kernel, work), what


@pytest.mark.parametrize("what", [w for w in SCHEMA_CASES if w.startswith("slice_")])
def test_a_slice_writes_exactly_its_output(what):
    """A slice that wrote past its output (into the arena's alignment padding) would still compare equal:
    the counts it runs must multiply to its output's size."""
    data = SCHEMA_CASES[what]()
    info = read_model(data, what)
    (layer,) = compile_model(data, info, what).model.layers
    counts = [int(v) for v in layer.fields["count"].strip("{}").split(",")]
    assert math.prod(counts) == info.tensors[layer.output].elements


def test_kws_reference_is_bit_exact_on_varied_inputs(kws_shaped_model, tmp_path):
    data, info = load_model_file(kws_shaped_model)
    host = build_for_host(data, info, tmp_path, kws_shaped_model.name)
    rng = np.random.default_rng(2)
    zp, shape = info.input().zero_points[0], info.input().shape
    # uniform inputs saturate the softmax; inputs near the zero point give every class a chance, and
    # so do inputs of a random level and spread each (an untrained model's average pool washes out
    # noise of one level and spread)
    level, spread = rng.uniform(-60, 60, (200, *[1] * len(shape))), rng.uniform(2, 30, (200, *[1] * len(shape)))
    x = np.concatenate([_random_inputs(info, 400, 3)] + [
        np.clip(np.round(rng.normal(zp, std, (200, *shape))), -128, 127).astype(np.int8) for std in (2, 8, 20)] + [
        np.clip(np.round(zp + level + spread * rng.normal(0, 1, (200, *shape))), -128, 127).astype(np.int8)])
    want = tflm_outputs(data, x).reshape(len(x), -1)
    got = host.run(x)
    assert len(np.unique(want.argmax(axis=1))) >= 4  # the inputs reach several classes
    assert np.array_equal(want, got)


def test_kws_plan_needs_far_less_than_tflm(kws_shaped_model):
    data, info = load_model_file(kws_shaped_model)
    plan = compile_model(data, info, "kws").plan
    tflm = host_tflm_arena(data, "model")
    assert plan.arena_bytes <= 0.6 * tflm.total
    assert plan.arena_bytes < tflm.head  # in-place ops beat TFLM's activation plan, not only its tail
    lifetimes_only = plan_memory(compile_model(data, info, "kws").model, inplace=False)
    assert lifetimes_only.arena_bytes >= tflm.head  # without in-place ops the plan is no better than TFLM's


@pytest.mark.parametrize("case", ["conv_k3x3_s2_same_relu_d1", "dw_k3_s1_same_relu_m1", "add_relu", "concat", "mean_after_conv"])
def test_plan_is_never_below_the_floor_and_reaches_it_on_a_chain(case, tmp_path):
    """The floor is a lower bound: no plan may beat it (a plan that does overlaps live bytes)."""
    data = make_case(case)
    plan = compile_model(data, read_model(data, case), case).plan
    assert 0 < plan.floor_bytes <= plan.arena_bytes


def test_kws_plan_is_within_a_ring_of_its_floor(kws_shaped_model):
    plan = compile_model(*load_model_file(kws_shaped_model), "kws").plan
    assert plan.floor_bytes == 8000  # the 25x5x64 activation: the first conv's output, live while each block runs in place
    assert plan.arena_bytes - plan.floor_bytes <= 3 * 5 * 64  # a 3-row ring of the depthwise convs


@pytest.mark.parametrize(("case", "rows"), [("conv_k3x3_s1_same_None_d1", 2), ("dw_k3_s1_same_relu_m1", 2),
                                           ("conv_k3x3_s1_same_relu_d2", 3)])
def test_a_conv_in_place_saves_only_the_rows_its_output_overwrites(case, rows):
    """A 3x3 conv over its own input keeps two rows in its ring: the one above (overwritten by the
    previous output row) and its own (overwritten as it goes); the row below is read in place.
    With dilation 2 the row above is two rows up, so three are kept. The op grid checks the
    outputs; this checks the plan takes the saving."""
    data = make_case(case)
    plan = compile_model(data, read_model(data, case), case).plan
    assert plan.inplace == (0,) and plan.ring_rows == {0: rows}


@pytest.mark.parametrize(("case", "inplace", "arena"), [("relu", (0,), 128), ("tanh_wide", (0, 1), 224), ("logistic_wide", (0, 1), 224),
                                                    ("sub_from_const", (0,), 128)])
def test_an_elementwise_op_writes_over_its_input(case, inplace, arena):
    """An activation or a binary op with a constant reads element i, then writes element i: its
    output takes its input's bytes (an arena of 128 B for the 120 B tensors of relu, not 240 B)."""
    data = make_case(case)
    plan = compile_model(data, read_model(data, case), case).plan
    assert (plan.inplace, plan.arena_bytes) == (inplace, arena)


def test_a_softmax_writes_over_its_input():
    """SOFTMAX reads its row's maximum and sum before it writes the row: its output takes its input's
    bytes (16 B for two 15 B tensors, not 32 B)."""
    data = SCHEMA_CASES["softmax_beta_half_3d"]()
    plan = compile_model(data, read_model(data, "softmax"), "softmax").plan
    assert (plan.inplace, plan.arena_bytes) == ((0,), 16)


def test_int8_requantization_writes_over_its_input():
    """QUANTIZE int8 to int8 reads element i, then writes element i: each of a chain's two takes its
    input's bytes (64 B for three 60 B tensors, not 128 B)."""
    data = quantize_chain(_REQUANTIZE_8_8_8)
    plan = compile_model(data, read_model(data, "requantize"), "requantize").plan
    assert (plan.inplace, plan.arena_bytes) == ((0, 1), 64)


@pytest.mark.parametrize(("case", "rows"), [("dw_k3_s1_same_relu_m1", 3), ("dw_k5_s1_same_relu_m1", 5)])
def test_a_kernel_whose_windows_wrap_around_its_ring_keeps_the_whole_span(case, rows):
    """Helium's depthwise kernel reads every window row from its ring (no row from the input in
    place), so the plan gives it the window's full height, no more: 3 rows for a 3x3, 5 for a 5x5."""
    data = make_case(case)
    plan = compile_model(data, read_model(data, case), case, path="mve").plan
    assert plan.inplace == (0,) and plan.ring_rows == {0: rows}


@pytest.mark.parametrize("case", ["conv1d_k1x3_s1_same_relu", "dw1d_k1x3_s1_same_m2"])
def test_a_1d_conv_in_place_keeps_the_pixels_of_its_window_not_its_whole_row(case):
    """A conv over one row of pixels runs as the same conv over one column (the same bytes), so the
    ring of an in-place 1x3 conv holds two pixels of its input, not the one row that is all of it
    (the plan then cost the input twice over: an intents model planned 1,920 B, now 1,120 B). The
    op grid checks the outputs of these cases bit-exact."""
    data = make_case(case)
    compiled = compile_model(data, read_model(data, case), case)
    layer, plan = compiled.model.layers[0], compiled.plan
    assert (layer.fields["in_h"], layer.fields["in_w"], layer.fields["k_h"], layer.fields["k_w"]) == (12 if "conv1d" in case else 10, 1, 3, 1)
    assert plan.inplace == (0,) and plan.ring_rows == {0: 2}
    in_bytes = compiled.model.tensor_bytes[compiled.model.inputs[0]]
    assert plan.scratch[0] + 2 * layer.fields["in_c"] <= plan.arena_bytes < in_bytes + compiled.model.tensor_bytes[layer.output]


def test_plan_keeps_live_tensors_apart(kws_shaped_model):
    data, info = load_model_file(kws_shaped_model)
    compiled = compile_model(data, info, "kws")
    model, plan = compiled.model, compiled.plan
    # every tensor lies inside the arena; any two that are live at once at a layer that does not
    # run in place occupy disjoint bytes
    spans = {t: (o, o + model.tensor_bytes[t]) for t, o in plan.offsets.items()}
    assert all(0 <= a and b <= plan.arena_bytes for a, b in spans.values())
    for i, layer in enumerate(model.layers):
        if i in plan.inplace or not layer.kernel:
            continue
        for t in layer.inputs:
            a, b = spans[t]
            c, d = spans[layer.output]
            assert b <= c or d <= a, f"layer {i} writes over its own input"


def test_unsupported_op_is_named_with_the_runtime_that_has_it(tmp_path):
    from tinyeff._native import tensorflow
    from tinyeff.compress.quantize import keras_to_int8

    keras = tensorflow().keras
    x = keras.Input((6, 5, 3), batch_size=1)
    model = keras.Model(x, keras.ops.abs(keras.layers.Conv2D(4, 1)(x)))
    data = keras_to_int8(model, np.random.default_rng(0).normal(size=(16, 6, 5, 3)).astype(np.float32))
    with pytest.raises(TinyeffError, match=r"ABS.*compiled runtime does not support.*--runtime tflm"):
        compile_model(data, read_model(data, "abs"), "abs")


def test_mean_with_the_inputs_own_quantization_is_bit_exact(tmp_path):
    """A review expected TFLM to take a truncating path when MEAN keeps its input's scale and zero
    point; the pinned TFLM folds 1/n into the multiplier there too, and this holds us to it."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(make_case("mean_gap")))
    graph = model.subgraphs[0]
    (mean,) = [op for op in graph.operators if model.operatorCodes[op.opcodeIndex].builtinCode == 40]  # MEAN
    x, y = graph.tensors[mean.inputs[0]].quantization, graph.tensors[mean.outputs[0]].quantization
    y.scale, y.zeroPoint = list(x.scale), list(x.zeroPoint)
    data = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    info = read_model(data, "mean_same_quant")
    host = build_for_host(data, info, tmp_path, "mean_same_quant")
    inputs = _random_inputs(info, N_INPUTS, seed=5)
    assert np.array_equal(tflm_outputs(data, inputs).reshape(N_INPUTS, -1), host.run(inputs).reshape(N_INPUTS, -1))


def test_the_kernels_are_compiled_once_and_again_only_when_a_source_changes(tmp_path, monkeypatch):
    """Host builds link the kernels compiled once per machine and kernel sources (they hold nothing of
    a model); a kernels directory with one byte changed gets objects of its own."""
    import os
    import shutil

    from tinyeff.codegen import host

    cc = shutil.which("gcc")
    first = host._kernel_objects(cc, "generic")
    stamps = [os.stat(o).st_mtime_ns for o in first]
    assert first and all(o.name.endswith(".o") for o in first)
    assert host._kernel_objects(cc, "generic") == first and [os.stat(o).st_mtime_ns for o in first] == stamps
    assert host._kernel_objects(cc, "dsp")[0].parent != first[0].parent

    from tinyeff import resources

    copy = tmp_path / "firmware"
    shutil.copytree(resources.resource_dir("firmware"), copy)
    with open(copy / "kernels" / "te_mean.c", "a") as f:
        f.write("\n/* a changed source */\n")
    original = resources.resource_dir
    monkeypatch.setattr(host, "resource_dir", lambda name: copy if name == "firmware" else original(name))
    changed = host._kernel_objects(cc, "generic")
    assert changed[0].parent != first[0].parent and all(o.exists() for o in changed)
