"""int16 activations ("16x8") in the compiled runtime, built for the host, against the host TFLM
interpreter: byte for byte, on the generic and the DSP kernel paths; and the int16 models it
refuses, each in one sentence."""

from __future__ import annotations

import numpy as np
import pytest

from model_edit import TYPES, edit
from op_models_int16 import FLOAT_IO, case_names, expected_ops, make_case
from tinyeff.codegen import build_for_host, compile_model
from tinyeff.errors import TinyeffError
from tinyeff.footprint import read_model
from tinyeff.reference import tflm_outputs

N_INPUTS = 300


def _inputs(info, n: int, seed: int) -> np.ndarray:
    """Random inputs of the model's input type; for int16, small and full-range ones and the extremes."""
    rng, t = np.random.default_rng(seed), info.input()
    if t.dtype == "FLOAT32":
        return rng.normal(0, 2, (n, *t.shape)).astype(np.float32)
    lo, hi = np.iinfo(t.dtype.lower()).min, np.iinfo(t.dtype.lower()).max
    x = rng.integers(lo, hi + 1, (n, *t.shape)).astype(t.dtype.lower())
    if t.dtype == "INT16":
        # values a representative dataset gives (a few thousand codes) as well as the full range
        x[: n // 2] = np.clip(rng.normal(0, 8000, (n // 2, *t.shape)), lo, hi).astype(np.int16)
    x[0], x[1] = lo, hi  # the extremes saturate accumulators and activation ranges
    return x


@pytest.mark.parametrize("case", case_names())
def test_every_case_holds_its_ops_on_int16_tensors(case):
    info = read_model(make_case(case), case)
    assert set(info.op_names) == expected_ops(case)
    assert any(t.dtype == "INT16" and not t.constant for t in info.tensors)
    x, y = info.input(), info.output()
    # int16 in and out, float32 around a float-I/O case, int8 around a QUANTIZE chain that starts in int8
    assert (x.dtype, y.dtype) in ((("FLOAT32", "FLOAT32"),) if case.startswith(FLOAT_IO) else (("INT16", "INT16"), ("INT8", "INT8")))


@pytest.mark.parametrize("path", ["generic", "dsp"])
@pytest.mark.parametrize("case", case_names())
def test_every_int16_case_is_bit_exact_with_tflm(case, path, tmp_path):
    data = make_case(case)
    info = read_model(data, case)
    host = build_for_host(data, info, tmp_path, case, path=path)
    x = _inputs(info, N_INPUTS, seed=7)
    want = tflm_outputs(data, x).reshape(N_INPUTS, -1)
    got = host.run(x).reshape(N_INPUTS, -1)
    assert np.array_equal(want, got), f"{(want != got).any(axis=1).sum()} of {N_INPUTS} outputs differ"


def _option(op: int, field: str, value):
    def change(m, g):
        setattr(g.operators[op].builtinOptions, field, value)
    return change


# converter-made cases edited where Keras does not reach: (case, edit)
EDITED = {
    "leaky_relu_negative_alpha": ("leaky_relu", _option(0, "alpha", -0.3)),
}


@pytest.mark.parametrize("what", EDITED)
def test_edited_int16_cases_are_bit_exact(what, tmp_path):
    case, change = EDITED[what]
    data = edit(make_case(case), change)
    info = read_model(data, what)
    host = build_for_host(data, info, tmp_path, what)
    x = _inputs(info, N_INPUTS, seed=8)
    assert np.array_equal(tflm_outputs(data, x).reshape(N_INPUTS, -1), host.run(x).reshape(N_INPUTS, -1))


def test_int16_layers_keep_their_input_apart_except_elementwise():
    """int16 convs never overwrite their input (the planner's rules count int8 bytes); elementwise ops may."""
    data = make_case("add_relu")
    compiled = compile_model(data, read_model(data), "add_relu")
    assert [layer.op for layer in compiled.model.layers] == ["CONV_2D", "ADD"]
    assert [layer.inplace for layer in compiled.model.layers] == ["", "elementwise"]
    assert 1 in compiled.plan.inplace  # the ADD writes over the conv's output


def _zero_point(tensor: int, zp: int):
    def change(m, g):
        g.tensors[tensor].quantization.zeroPoint = np.array([zp], np.int64)
    return change


def _bias(value: int):
    def change(m, g):
        t = g.tensors[g.operators[0].inputs[2]]
        b = np.frombuffer(bytes(m.buffers[t.buffer].data), np.int64).copy()
        b[0] = value
        m.buffers[t.buffer].data = np.frombuffer(b.tobytes(), np.uint8)
    return change


def _int32_bias(m, g):
    t = g.tensors[g.operators[0].inputs[2]]
    b = np.frombuffer(bytes(m.buffers[t.buffer].data), np.int64).astype(np.int32)
    t.type, m.buffers[t.buffer].data = TYPES["INT32"], np.frombuffer(b.tobytes(), np.uint8)


@pytest.mark.parametrize("case, change, words", [
    ("conv_nobias", _zero_point(0, 3), "zero point 3"),
    ("add_relu", _zero_point(3, -1), "zero point -1"),
    ("conv_k3x3_s1_same_None_d1", _bias(1 << 50), "2^47"),
    ("dw_k3_s1_same_relu_m1", _int32_bias, "int64"),  # TFLM's int16 depthwise reads its bias as int64 whatever its type
])
def test_int16_models_tflm_would_run_differently_are_refused(case, change, words):
    data = edit(make_case(case), change)
    with pytest.raises(TinyeffError) as e:
        compile_model(data, read_model(data, case), case)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_int16_ops_without_an_exact_kernel_are_refused_in_one_sentence():
    from op_models_int16 import _convert
    from tinyeff._native import seed_everything, tensorflow

    keras = tensorflow().keras
    seed_everything(0)
    for layer, words in ((keras.layers.Softmax(), "lookup tables"), (keras.layers.GlobalAveragePooling2D(), "no int16 kernel")):
        x = keras.Input((4, 3, 2), batch_size=1)
        data = _convert(keras.Model(x, layer(x)), np.random.default_rng(0).normal(0, 1, (16, 4, 3, 2)).astype(np.float32),
                        False, False)
        with pytest.raises(TinyeffError) as e:
            compile_model(data, read_model(data, "m"), "m")
        assert words in str(e.value) and "--runtime tflm" in str(e.value)


@pytest.mark.parametrize("chain", [
    # an int32 model input requantized to int16 and back out to int32, full int32 range in
    [("INT32", 1.4901161e-07, 0), ("INT16", 0.000922, 0), ("INT32", 3.1e-07, 0)],
    # int32 to int8, with a scale ratio that needs a left shift on the way back
    [("INT32", 0.0002, 0), ("INT8", 0.04, 5), ("INT32", 0.00001, 0)],
])
def test_int32_requantization_is_bit_exact_with_tflm(chain, tmp_path):
    from op_models_int16 import quantize_chain

    data = quantize_chain(chain)
    info = read_model(data, "int32_chain")
    host = build_for_host(data, info, tmp_path, "int32_chain")
    x = _inputs(info, N_INPUTS, seed=11)
    want = tflm_outputs(data, x).reshape(N_INPUTS, -1)
    got = host.run(x).reshape(N_INPUTS, -1)
    assert np.array_equal(want, got), f"{(want != got).any(axis=1).sum()} of {N_INPUTS} outputs differ"
