"""Models of several inputs and outputs: named in tinyeff.json, uploaded and read back by name.

The kit's own two-input, two-output model (made with the TF converter, seeded) runs through the
compiled runtime on the host and in QEMU over the serial protocol; every output byte must equal
the host TFLM interpreter's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinyeff.boards import get_board
from tinyeff.codegen import build_for_host
from tinyeff.errors import TinyeffError
from tinyeff.footprint import read_model
from tinyeff.generate import generate
from tinyeff.harness.bench import Project, bench_inputs, run_bench
from tinyeff.harness.device import QemuDevice
from tinyeff.harness.dut import Dut
from tinyeff.harness.flash import build
from tinyeff.model_io import io_tensors, pack, unpack
from tinyeff.reference import tflm_run

SAMPLES = 24


@pytest.fixture(scope="module")
def two_io_model(tmp_path_factory):
    """An image (6x5x3) and a vector (8) in; class scores (softmax over 5) and a feature map (6x5x4) out."""
    from tinyeff._native import seed_everything, tensorflow
    from tinyeff.compress.quantize import keras_to_int8

    keras = tensorflow().keras
    L = keras.layers
    seed_everything(3)
    image = keras.Input((6, 5, 3), batch_size=1, name="image")
    vector = keras.Input((8,), batch_size=1, name="vector")
    features = L.Conv2D(4, 3, padding="same", activation="relu", name="features")(image)
    pooled = L.GlobalAveragePooling2D()(features)
    mixed = L.Concatenate()([pooled, L.Dense(6, activation="relu")(vector)])
    scores = L.Softmax(name="scores")(L.Dense(5)(mixed))
    model = keras.Model([image, vector], [scores, features])
    rng = np.random.default_rng(3)
    rep = [rng.normal(0, 1, (64, 6, 5, 3)).astype(np.float32), rng.normal(0, 1, (64, 8)).astype(np.float32)]
    path = tmp_path_factory.mktemp("two_io") / "two_io.tflite"
    path.write_bytes(keras_to_int8(model, rep, strip=False))
    return path


def _samples(data: bytes, seed: int = 0):
    inputs, _ = io_tensors(read_model(data))
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, (SAMPLES, *t.sample_shape), dtype=np.int8) for t in inputs]
    for x in xs:
        x[-2], x[-1] = -128, 127
    return inputs, xs


def test_model_has_two_named_inputs_and_outputs(two_io_model):
    info = read_model(two_io_model.read_bytes())
    inputs, outputs = io_tensors(info)
    assert len(inputs) == 2 and len(outputs) == 2
    assert all(t.name for t in (*inputs, *outputs))
    # each one's bytes follow the previous one's in the string the protocol carries
    assert [t.offset for t in inputs] == [0, inputs[0].bytes]
    assert [t.offset for t in outputs] == [0, outputs[0].bytes]


def test_pack_and_unpack_are_inverse(two_io_model):
    inputs, xs = _samples(two_io_model.read_bytes())
    raw = pack(inputs, xs)
    assert raw.shape == (SAMPLES, sum(t.bytes for t in inputs))
    for a, b in zip(unpack(inputs, raw), xs):
        assert np.array_equal(a.reshape(b.shape), b)
    with pytest.raises(TinyeffError, match="takes 2 inputs"):
        pack(inputs, [xs[0]])


def test_compiled_runtime_on_host_is_bit_exact(two_io_model, tmp_path):
    data = two_io_model.read_bytes()
    info = read_model(data)
    inputs, xs = _samples(data)
    want = tflm_run(data, xs)
    for path in ("generic", "dsp"):
        got = build_for_host(data, info, tmp_path / path, path=path).run_all(xs)
        assert len(got) == 2
        for g, w in zip(got, want):
            assert np.array_equal(g.reshape(w.shape), w), path


@pytest.mark.emulator
def test_two_inputs_and_outputs_bit_exact_in_qemu(two_io_model, tmp_path):
    """Generated for the emulated Cortex-M4, inputs given by name in an .npz, every output byte checked."""
    out = generate(two_io_model, "qemu-mps2-an386", "compiled", tmp_path / "project")
    manifest = json.loads((out / "tinyeff.json").read_text())
    assert [t["name"] for t in manifest["inputs"]] == [t.name for t in io_tensors(read_model(two_io_model.read_bytes()))[0]]
    inputs, xs = _samples(two_io_model.read_bytes(), seed=1)
    labels = np.arange(SAMPLES) % 5
    npz = tmp_path / "inputs.npz"
    # saved in reverse order: arrays are matched by name, not by position
    np.savez(npz, labels=labels, **{t.name: x for t, x in reversed(list(zip(inputs, xs)))})
    x, y = bench_inputs(str(npz), two_io_model.read_bytes())
    project = Project.load(out)
    build(project)
    with QemuDevice(project.elf, get_board("qemu-mps2-an386")) as device:
        dut = Dut(device, timeout=10)
        dut.wait_ready()
        result = run_bench(project, [dut], x, y)
    assert result.errors == 0 and result.samples == SAMPLES
    assert result.exact_agreement == 1.0
    assert result.accuracy == result.host_accuracy


def test_npz_inputs_are_checked_by_name(two_io_model, tmp_path):
    data = two_io_model.read_bytes()
    inputs, xs = _samples(data)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{inputs[0].name: xs[0], "wrong": xs[1]})
    with pytest.raises(TinyeffError, match=f"no array for input '{inputs[1].name}' "):
        bench_inputs(str(bad), data)
    np.savez(bad, a=xs[0], b=xs[1])  # 'x' stands for the input only when there is one
    with pytest.raises(TinyeffError) as e:
        bench_inputs(str(bad), data)
    assert str(e.value) == (f"'{bad}' has no array for input '{inputs[0].name}', '{inputs[1].name}' (it has 'a', 'b'); "
                            "name each array after the model input it feeds")
    uneven = tmp_path / "uneven.npz"
    np.savez(uneven, **{inputs[0].name: xs[0], inputs[1].name: xs[1][:-1]})
    with pytest.raises(TinyeffError) as e:
        bench_inputs(str(uneven), data)
    assert str(e.value) == f"the arrays of '{uneven}' hold different numbers of samples; give every input the same"
    wide = tmp_path / "wide.npz"
    np.savez(wide, **{inputs[0].name: xs[0].astype(np.int16), inputs[1].name: xs[1]})
    with pytest.raises(TinyeffError, match="quantize it first"):
        bench_inputs(str(wide), data)
    with pytest.raises(TinyeffError) as e:
        bench_inputs(str(tmp_path), data)
    assert str(e.value) == (f"the model takes 2 inputs ('{inputs[0].name}', '{inputs[1].name}'); give them as an .npz file "
                            "with one array per input name (first axis = samples) and optionally 'labels'")


def _shape_as_input(data: bytes) -> bytes:
    """DATA with its transposed conv's output shape made the model's first input, as TFLM's seanet
    integration models have it (a shape computed upstream in the original graph)."""
    from model_edit import edit

    def change(m, g):
        op = next(o for o in g.operators if m.operatorCodes[o.opcodeIndex].builtinCode == 67)
        shape = g.tensors[op.inputs[0]]
        m.buffers[shape.buffer].data = None
        shape.buffer = 0
        g.inputs = np.array([op.inputs[0], *g.inputs], np.int32)
    return edit(data, change)


@pytest.mark.parametrize("case", ["tconv_k3_s2_same_relu", "int16:tconv_k3_s2_same_relu"])
def test_transposed_conv_ignores_an_output_shape_given_at_run_time(case, tmp_path):
    """TFLM takes the output tensor's shape and never reads the output-shape input; the compiled runtime
    does the same, so any values there give TFLM's bytes."""
    import op_models
    import op_models_int16

    int16 = case.startswith("int16:")
    data = _shape_as_input((op_models_int16 if int16 else op_models).make_case(case.removeprefix("int16:")))
    info = read_model(data)
    inputs, _ = io_tensors(info)
    assert [t.dtype for t in inputs] == ["int32", "int16" if int16 else "int8"]
    rng = np.random.default_rng(5)
    kind = np.iinfo(inputs[1].dtype)
    shapes = rng.integers(-2**31, 2**31, (SAMPLES, *inputs[0].sample_shape), dtype=np.int64).astype(np.int32)
    xs = [shapes, rng.integers(kind.min, kind.max + 1, (SAMPLES, *inputs[1].sample_shape)).astype(inputs[1].dtype)]
    want = tflm_run(data, xs)[0]
    got = build_for_host(data, info, tmp_path).run_all(xs)[0]
    assert np.array_equal(got.reshape(want.shape), want)
