"""check_model: every inconsistency that would crash the compiled runtime, overrun its arena or run it
wrongly is refused in one sentence, and no model a converter makes is refused.

Each case edits one converter-made model (op_models.py) in one place, as a hand edit, a buggy
exporter or a damaged file would.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from model_edit import TYPES, edit, set_constant, set_quantization
from op_models import case_names, make_case
from tinyeff.codegen.checks import check_model
from tinyeff.errors import TinyeffError
from tinyeff.footprint import load_model_file, read_model


def _shape(tensor: int, shape):
    def change(m, g):
        g.tensors[tensor].shape = np.array(shape, np.int32)
    return change


def _option(op: int, field: str, value):
    def change(m, g):
        setattr(g.operators[op].builtinOptions, field, value)
    return change


def _scales(tensor: int, scales=None, zero_points=None):
    def change(m, g):
        q = g.tensors[tensor].quantization
        if scales is not None:
            q.scale = np.array(scales, np.float32)
        if zero_points is not None:
            q.zeroPoint = np.array(zero_points, np.int64)
    return change


def _constant(tensor: int, values: np.ndarray, scales=None, dim: int = 0):
    def change(m, g):
        t = g.tensors[tensor]
        set_constant(m, t, values)
        if scales is not None:
            set_quantization(t, scales, [0] * len(scales), dim)
    return change


def _truncate(tensor: int, n: int):
    def change(m, g):
        buf = m.buffers[g.tensors[tensor].buffer]
        buf.data = buf.data[:n]
    return change


def _retype(tensor: int, type_name: str):
    def change(m, g):
        g.tensors[tensor].type = TYPES[type_name]
    return change


def _reshape_a_constant(m, g):
    """RESHAPE reads a constant of the input's shape instead of the model input."""
    from ai_edge_litert import schema_py_generated as schema

    x = g.tensors[0]
    t = schema.TensorT()
    t.shape, t.type, t.name = np.array(x.shape), x.type, b"folded"
    t.quantization = schema.QuantizationParametersT()
    set_quantization(t, list(x.quantization.scale), list(x.quantization.zeroPoint))
    buf = schema.BufferT()
    buf.data = np.arange(24, dtype=np.int8).view(np.uint8)
    m.buffers.append(buf)
    t.buffer = len(m.buffers) - 1
    g.tensors.append(t)
    g.operators[0].inputs = np.array([len(g.tensors) - 1, 1], np.int32)


def _pool_reads_a_constant(m, g):
    """The pool reads a constant (a new tensor 2) instead of the model input."""
    from ai_edge_litert import schema_py_generated as schema

    x = g.tensors[0]
    t = schema.TensorT()
    t.shape, t.type = np.array(x.shape), x.type
    t.quantization = schema.QuantizationParametersT()
    set_quantization(t, list(x.quantization.scale), list(x.quantization.zeroPoint))
    buf = schema.BufferT()
    buf.data = np.zeros(int(np.prod(x.shape)), np.uint8)
    m.buffers.append(buf)
    t.buffer = len(m.buffers) - 1
    g.tensors.append(t)
    g.operators[0].inputs = np.array([2], np.int32)


def _chain(*changes):
    def change(m, g):
        for c in changes:
            c(m, g)
    return change


_RNG = np.random.default_rng(0)
REFUSALS = {
    # depthwise: depth multiplier against the channels, filter against the output
    "depth_multiplier": ("dw_k3_s1_same_None_m2", _option(0, "depthMultiplier", 3),
                         r"4 input channels, depth multiplier 3 and 8 output channels"),
    "depthwise_filter_channels": ("dw_k3_s1_same_None_m2",
                                  _constant(2, _RNG.integers(-9, 9, (1, 3, 3, 4), dtype=np.int8), [0.01] * 4, 3),
                                  r"filter for 4 channels and an output of 8"),
    # per-channel scales and zero points
    "conv_scale_count": ("conv_k3x3_s2_same_relu_d1", _scales(2, [0.01] * 4, [0] * 4), r"4 scales along dimension 0"),
    "depthwise_scale_count": ("dw_k3_s1_same_None_m2", _chain(_scales(2, [0.01] * 4, [0] * 4), _option(0, "depthMultiplier", 2)),
                              r"4 scales along dimension 3"),
    "dense_scale_count": ("dense_softmax", _scales(2, [0.01] * 3, [0] * 3), r"3 scales along dimension 0"),
    "zero_point_count": ("conv_k3x3_s2_same_relu_d1", _scales(2, zero_points=[0] * 4), r"5 quantization scales but 4 zero points"),
    "weight_zero_point": ("conv_k3x3_s2_same_relu_d1", _scales(2, zero_points=[0, 0, 3, 0, 0]), r"weight zero points .*symmetric"),
    "per_channel_dimension": ("conv_k3x3_s2_same_relu_d1", lambda m, g: setattr(g.tensors[2].quantization, "quantizedDimension", 3),
                              r"5 scales along dimension 3"),
    # biases
    "bias_length": ("conv_k3x3_s2_same_relu_d1", _constant(1, np.arange(4, dtype=np.int32)), r"bias of 4 values .* for 5 output channels"),
    "bias_type": ("dense_softmax", _retype(1, "FLOAT32"), r"bias of type float32, where it needs int32"),
    "filter_type": ("conv_k3x3_s2_same_relu_d1", _retype(2, "UINT8"), r"filter of type uint8, where it needs int8"),
    "accumulator_overflow": ("conv_k3x3_s2_same_relu_d1", _constant(1, np.array([0, 0, 2**31 - 1, 0, 0], np.int32)),
                             r"overflow its int32 accumulator in output channel 2"),
    # shapes of dense, conv and pool
    "dense_output": ("dense_softmax", _chain(_shape(3, [1, 13]), _shape(4, [1, 13])), r"output shape \(1, 13\), but 1 rows of 10"),
    "dense_input": ("flatten_dense", _chain(_shape(4, [1, 25])), r"turns 24 elements .* into 25"),
    "conv_filter_input_channels": ("conv_k3x3_s2_same_relu_d1", _constant(2, _RNG.integers(-9, 9, (5, 3, 3, 2), dtype=np.int8)),
                                   r"filter for 2 input channels on an input of 3"),
    "conv_filter_output_channels": ("conv_k3x3_s2_same_relu_d1", _shape(3, [1, 5, 4, 6]), r"filter for 5 output channels and an output of 6"),
    "conv_output_size": ("conv_k3x3_s2_same_relu_d1", _option(0, "strideW", 1), r"output 5x4, but .* gives 5x8"),
    "pool_output_size": ("avgpool_3_s2_same", _option(0, "strideW", 3), r"output 5x4, but a 3x3 window .* gives 5x3"),
    "pool_window": ("avgpool_3_s2_same", _option(0, "filterWidth", 0), r"filter_width 0; each must be a positive integer"),
    "pool_channels": ("avgpool_3_s2_same", _shape(1, [1, 5, 4, 2]), r"turns 3 channels into 2"),
    "stride": ("conv_k3x3_s2_same_relu_d1", _option(0, "strideH", 0), r"stride_h 0, stride_w 2; each must be a positive integer"),
    "padding": ("conv_k3x3_s2_same_relu_d1", _option(0, "padding", 7), r"padding 7, which is neither SAME nor VALID"),
    "fused_activation": ("conv_k3x3_s2_same_relu_d1", _option(0, "fusedActivationFunction", 4), r"fuses the activation 'TANH'"),
    # constant data
    "truncated_weights": ("conv_k3x3_s2_same_relu_d1", _truncate(2, 100), r"holds 100 bytes of data but its shape \(5, 3, 3, 3\) needs 135"),
    "truncated_to_nothing": ("conv_k3x3_s2_same_relu_d1", _truncate(2, 0), r"input 1 .* tensor 2 holds none"),
    "reshape_of_a_constant": ("flatten_dense", _reshape_a_constant, r"reshapes the constant tensor 6"),
    "reshape_size": ("flatten_dense", _chain(_shape(4, [1, 23])), r"turns 24 elements \(shape \(1, 4, 3, 2\)\) into 23"),
    # elementwise, concatenation and the activations
    "add_output": ("add_relu", _shape(4, [1, 6, 5, 8]), r"broadcast to \(1, 6, 5, 4\), not to its output's \(1, 6, 5, 8\)"),
    "add_operands": ("add_relu", _chain(_shape(3, [1, 6, 5, 3]), _constant(1, np.zeros(3, np.int32)),
                                        _constant(2, _RNG.integers(-9, 9, (3, 1, 1, 4), dtype=np.int8), [0.01] * 3)),
                     r"shapes \(1, 6, 5, 3\) and \(1, 6, 5, 4\), which do not broadcast"),
    "add_output_scale": ("add_relu", _scales(4, [1e-9]), r"output scale .* too small for its operands' scales"),
    "concat_axis": ("concat", _option(2, "axis", 2), r"concatenates shape \(1, 6, 5, 2\) along axis 2"),
    "concat_total": ("concat", _shape(7, [1, 6, 5, 6]), r"concatenates 5 entries along axis 3 into an output with 6"),
    "concat_activation": ("concat", _option(2, "fusedActivationFunction", 1), r"fuses the activation 'RELU', which this op does not take"),
    "softmax_size": ("dense_softmax", _shape(4, [1, 12]), r"\(SOFTMAX\) has input shape \(1, 10\) and output shape \(1, 12\)"),
    "softmax_beta": ("dense_softmax", _option(1, "beta", -1.0), r"beta -1.0; softmax's beta must be finite and positive"),
    "softmax_input_scale": ("dense_softmax", _scales(3, [5e-9]),
                            r"cannot run: softmax input scale too small for TFLM's int8 softmax \(scale 5e-09, beta 1\)"),
    "logistic_size": ("logistic_dense", _shape(4, [1, 9]), r"\(LOGISTIC\) turns 8 elements .* into 9"),
    "logistic_scale": ("logistic_dense", _scales(4, [1 / 128]), r"output scale 0.0078125; TFLM's int8 logistic writes scale 1/256"),
    "quantize_size": ("float_io_conv", _shape(0, [1, 6, 5, 2]), r"\(QUANTIZE\) turns 60 elements .* into 90"),
    "pad_output": ("pad", _shape(2, [1, 8, 7, 3]), r"pads \(1, 5, 4, 3\) by .* into \(1, 8, 6, 3\), but its output is \(1, 8, 7, 3\)"),
    # activations, SUB, MAXIMUM, slicing, resizing and transposed convolutions
    "leaky_relu_alpha": ("leaky_relu", _option(0, "alpha", float("nan")), r"has alpha nan; it must be a finite number"),
    "leaky_relu_size": ("leaky_relu", _shape(1, [1, 6, 5, 3]), r"\(LEAKY_RELU\) turns 120 elements .* into 90"),
    "hard_swish_output_scale": ("hard_swish", _scales(1, [1e-5]), r"output scale 9.99\d*e-06 of at most input scale / 128 \(.*\), which TFLM's int8 hard swish does not take; "),
    "tanh_output_scale": ("tanh", _scales(1, [1 / 256]), r"TFLM's int8 tanh writes scale 1/128 and zero point 0"),
    "relu6_input_scale": ("relu6", _scales(0, [1e-12]), r"clamps at 6.0, which is not an int32 code at input scale"),
    "sub_output_scale": ("sub", _scales(4, [1e-9]), r"has an output scale .* too small for its operands. scales"),
    "maximum_quantization": ("maximum", _scales(4, [0.05]), r"compares operands quantized as .* all three must agree"),
    "slice_stride_zero": ("slice_steps", _constant(1, np.array([1, 0, -2, 1], np.int32)), r"a stride of 0 slices nothing"),
    "slice_output": ("slice_steps", _constant(2, np.array([0, 100, 0, 0], np.int32)),
                     r"into shape \(1, 4, 3, 3\), but its output is \(1, 3, 3, 3\)"),
    "slice_bounds_length": ("slice_steps", _constant(3, np.array([0, 1, 0], np.int32)), r"has 3 begin indices for an input of 4"),
    "slice_ellipsis": ("slice_steps", _option(0, "ellipsisMask", 2), r"sets ellipsis_mask 2, which TFLM ignores"),
    "slice_quantization": ("slice_steps", _scales(4, [0.5]), r"copies codes unchanged"),
    "resize_size": ("resize_half_pixel", _constant(1, np.array([7, 8], np.int32)),
                    r"resizes \(1, 5, 4, 3\) to 7x8, but its output is \(1, 7, 9, 3\)"),
    "tconv_output_shape": ("tconv_k3_s2_same_relu", _constant(1, np.array([1, 10, 9, 4], np.int32)),
                           r"names the output shape \(1, 10, 9, 4\), but its output is \(1, 10, 8, 4\)"),
    "tconv_input_size": ("tconv_k3_s2_same_relu", _option(0, "padding", 1), r"VALID padding over its 10x8 output gives 4x3"),
    "tconv_filter_channels": ("tconv_k3_s2_same_relu", _constant(3, _RNG.integers(-9, 9, (4, 3, 3, 2), dtype=np.int8)),
                              r"filter for 2 input channels on an input of 3"),
    "tconv_bias_length": ("tconv_k3_s2_same_relu", _constant(2, np.arange(3, dtype=np.int32)), r"bias of 3 values .* for 4 output"),
    "tconv_accumulator": ("tconv_k3_s2_same_relu", _constant(2, np.array([0, 2**31 - 1, 0, 0], np.int32)),
                          r"overflow its int32 accumulator in output channel 1"),
    "squeeze_size": ("squeeze_dense", _shape(4, [1, 5, 3]), r"\(SQUEEZE\) turns 20 elements .* into 15"),
    # quantization of activations
    "zero_scale": ("avgpool_3_s2_same", _scales(0, [0.0]), r"tensor 0 has the quantization scale 0.0; scales must be finite and positive"),
    "negative_scale": ("dense_softmax", _scales(3, [-0.5]), r"scale -0.5"),
    "nan_scale": ("dense_softmax", _scales(3, [np.nan]), r"scale nan"),
    "infinite_scale": ("dense_softmax", _scales(3, [np.inf]), r"scale inf"),
    "huge_multiplier": ("dense_softmax", _scales(3, [1e-30]),
                        r"rescales its accumulator by 9.9\d*e\+25, more than int8 requantization represents \(below 2\^31\)"),
    "zero_point_above_int8": ("dense_softmax", _scales(0, zero_points=[128]), r"zero point 128, outside int8"),
    "zero_point_below_int8": ("avgpool_3_s2_same", _scales(1, zero_points=[-129]), r"zero point -129, outside int8"),
    "no_quantization": ("avgpool_3_s2_same", _scales(0, [], []), r"int8 without a quantization scale"),
    "per_channel_activation": ("avgpool_3_s2_same", _scales(1, [0.1, 0.1, 0.1], [0, 0, 0]), r"activation quantized per channel"),
    # the graph
    "model_input_out_of_range": ("dense_softmax", lambda m, g: setattr(g, "inputs", np.array([9], np.int32)), r"tensor 9 as a model input"),
    "missing_filter": ("dense_softmax", lambda m, g: setattr(g.operators[0], "inputs", np.array([0, -1, 1], np.int32)),
                       r"lacks its input 1"),
    "unwritten_input": ("dense_softmax", lambda m, g: setattr(g, "inputs", np.array([3], np.int32)),
                        r"op 0 \(FULLY_CONNECTED\) reads tensor 0, which holds no data and which no earlier op writes"),
    "two_writers": ("add_relu", lambda m, g: setattr(g.operators[1], "outputs", np.array([3], np.int32)),
                    r"writes tensor 3, which .* already holds"),
    "constant_operand": ("avgpool_3_s2_same", _pool_reads_a_constant, r"reads the constant tensor 2 as its input 0"),
    "wrong_arity": ("dense_softmax", lambda m, g: setattr(g.operators[1], "inputs", np.array([3, 3], np.int32)),
                    r"has 2 inputs and 1 outputs; it takes 1 inputs"),
}


@pytest.fixture(scope="module")
def cases():
    made = {}

    def get(name: str) -> bytes:
        if name not in made:
            made[name] = make_case(name)
        return made[name]
    return get


@pytest.mark.parametrize("what", REFUSALS)
def test_inconsistent_model_is_refused_in_one_sentence(what, cases):
    case, change, message = REFUSALS[what]
    base = cases(case)
    check_model(base, read_model(base, case))  # the unedited model passes
    data = edit(base, change)
    with pytest.raises(TinyeffError, match=message) as e:
        check_model(data, read_model(data, what))
    text = str(e.value)
    assert text.startswith(f"'{what}' ") and "\n" not in text and text.count("; ") >= 1, text


def test_an_op_naming_a_missing_tensor_is_refused(cases):
    """read_model already refuses a file whose op names a missing tensor; check_model does not rely on it."""
    data = cases("dense_softmax")
    info = read_model(data, "dense_softmax")
    ops = (info.ops[0], dataclasses.replace(info.ops[1], inputs=(12,)))
    with pytest.raises(TinyeffError, match=r"op 1 \(SOFTMAX\) names tensor 12, but the model has only 5 tensors"):
        check_model(data, dataclasses.replace(info, ops=ops))


@pytest.mark.parametrize("what", ["depth_multiplier", "reshape_of_a_constant", "bias_length", "pool_output_size",
                                  "huge_multiplier"])
def test_compile_model_refuses_what_check_model_refuses(what, cases):
    """compile_model runs the checks: these crashed it (KeyError), overran the arena or ran wrongly before."""
    from tinyeff.codegen import compile_model

    case, change, _ = REFUSALS[what]
    data = edit(cases(case), change)
    with pytest.raises(TinyeffError):
        compile_model(data, read_model(data, what), "checked")


@pytest.mark.parametrize("case", case_names())
def test_converter_made_models_pass(case, cases):
    data = cases(case)
    check_model(data, read_model(data, case))


def test_kws_shaped_models_pass(kws_shaped_model):
    check_model(*load_model_file(kws_shaped_model))


def test_an_op_whose_output_nobody_reads_still_runs_bit_exact(cases, tmp_path):
    """The plan gives a tensor that is written and never read its layer's lifetime, so its bytes
    cannot land on live ones (they once did: the softmax here overwrote the model's output)."""
    from tinyeff.codegen import build_for_host
    from tinyeff.reference import tflm_outputs

    data = edit(cases("dense_softmax"), lambda m, g: setattr(g, "outputs", np.array([3], np.int32)))
    info = read_model(data, "dead_softmax")
    host = build_for_host(data, info, tmp_path, "dead_softmax")
    x = np.random.default_rng(7).integers(-128, 128, (200, *info.input().shape), dtype=np.int8)
    assert np.array_equal(tflm_outputs(data, x).reshape(200, -1), host.run(x).reshape(200, -1))
