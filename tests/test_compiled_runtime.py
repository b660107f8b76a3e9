"""The compiled runtime, built for the host, against the host TFLM interpreter: byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from op_models import case_names, make_case
from tinyeff.codegen import build_for_host, compile_model, plan_memory
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
    host = build_for_host(data, info, tmp_path, case)
    x = _random_inputs(info, N_INPUTS, seed=1)
    want = tflm_outputs(data, x).reshape(N_INPUTS, -1)
    got = host.run(x).reshape(N_INPUTS, -1)
    assert np.array_equal(want, got), f"{(want != got).any(axis=1).sum()} of {N_INPUTS} outputs differ"


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
    tflm = host_tflm_arena(data)
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
    model = keras.Model(x, keras.layers.GlobalAveragePooling2D()(keras.layers.Activation("tanh")(x)))
    data = keras_to_int8(model, np.random.default_rng(0).normal(size=(16, 6, 5, 3)).astype(np.float32))
    with pytest.raises(TinyeffError, match=r"TANH.*compiled runtime does not support.*--runtime tflm"):
        compile_model(data, read_model(data, "tanh"), "tanh")


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
