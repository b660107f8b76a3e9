"""UNIDIRECTIONAL_SEQUENCE_LSTM in the compiled runtime: TFLM's integer LSTM (int8 sequence and
hidden state, int16 cell state), byte for byte with the host TFLM interpreter.

The models are the kit's own: Keras LSTM layers converted full-int8 with the real TF converter,
seeded. Keras 3 lowers an LSTM layer to a WHILE loop, which the converter's calibrator cannot
quantize (it crashes); Keras 2 (``tf_keras``) marks its LSTM as a fusable function, and the
converter writes one UNIDIRECTIONAL_SEQUENCE_LSTM op, which is also how TFLM's own LSTM example
model was made. The hidden and cell state carry over from one inference to the next in both
runtimes, so every check runs its samples in one sequence.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from model_edit import edit
from tinyeff.boards import get_board
from tinyeff.codegen import build_for_host, compile_model
from tinyeff.errors import TinyeffError
from tinyeff.footprint import read_model
from tinyeff.generate import generate
from tinyeff.harness.bench import Project, run_bench
from tinyeff.harness.device import QemuDevice
from tinyeff.harness.dut import Dut
from tinyeff.harness.flash import build
from tinyeff.reference import tflm_outputs

LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"
SAMPLES = 12
# TFLM's own example (tensorflow/lite/micro/examples/mnist_lstm), when a copy is at hand; it is not
# part of the kit, so without it the test skips
TFLM_EXAMPLE = Path(os.environ.get(
    "TINYEFF_TFLM_LSTM_MODEL", "/work/tflm-check/public/tensorflow_lite_micro_examples_mnist_lstm_trained_lstm_int8.tflite"))

# name -> (time steps, features, LSTM layers as (units, return_sequences)); the converter fuses only
# tanh LSTMs, Keras's default (another activation leaves a loop its calibrator crashes on)
MODELS = {
    "seq8": (5, 3, [(8, True)]),
    "last20": (28, 5, [(20, False)]),
    "stacked": (7, 4, [(12, True), (6, False)]),
}


def _keras2():
    """tf_keras (Keras 2 for TensorFlow), whose LSTM layer the converter fuses into one op."""
    from tinyeff._native import tensorflow

    tensorflow()
    try:
        import tf_keras
    except ImportError:
        reason = "tf_keras is not installed (pip install -e '.[test]'): Keras 3 LSTMs convert to WHILE loops"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return tf_keras


def _make(name: str, seed: int = 0) -> bytes:
    from tinyeff.compress.quantize import keras_to_int8

    keras = _keras2()
    steps, features, layers = MODELS[name]
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((steps, features), batch_size=1)
    for units, sequences in layers:
        # random biases exercise the folded zero-point terms beyond Keras's zero and unit-forget ones
        x = keras.layers.LSTM(units, return_sequences=sequences,
                              bias_initializer=keras.initializers.RandomNormal(0, 0.5, seed=seed))(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(seed)
    rep = (rng.normal(0, 1, (64, steps, features)) * rng.choice([0.3, 1.0, 2.0], (64, 1, 1))).astype(np.float32)
    return keras_to_int8(model, rep)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("lstm")
    paths = {}
    for name in MODELS:
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(_make(name))
    return paths


def _samples(shape, n: int = SAMPLES, seed: int = 0) -> np.ndarray:
    """Random int8 sequences, then the extremes: all -128, all 127, alternating, and a repeat."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (n, *shape), dtype=np.int8)
    x[2], x[3] = -128, 127
    x[4].reshape(-1)[::2], x[4].reshape(-1)[1::2] = -128, 127
    x[5] = x[3]  # the same input again: only the state makes its output differ
    return x


def _check_host(data: bytes, tmp_path: Path) -> np.ndarray:
    info = read_model(data)
    x = _samples(info.tensors[info.inputs[0]].shape)
    want = tflm_outputs(data, x).reshape(len(x), -1)
    for path in ("generic", "dsp"):
        got = build_for_host(data, info, tmp_path / path, path=path).run(x).reshape(len(x), -1)
        assert np.array_equal(got, want), f"{path}: {(got != want).any(axis=1).sum()} of {len(x)} samples differ"
    return want


def test_the_converter_writes_one_fused_lstm_op(models):
    ops = {name: [o.op for o in read_model(p.read_bytes()).ops] for name, p in models.items()}
    assert ops["seq8"] == [LSTM]
    assert ops["last20"][0] == LSTM and LSTM not in ops["last20"][1:]
    assert ops["stacked"].count(LSTM) == 2
    info = read_model(models["seq8"].read_bytes())
    hidden, cell = (info.tensors[info.ops[0].inputs[k]] for k in (18, 19))
    assert hidden.variable and cell.variable and (hidden.dtype, cell.dtype) == ("INT8", "INT16")
    assert hidden.zero_points[0] != 0  # so a state reset to zeros instead of the zero point would show


@pytest.mark.parametrize("name", list(MODELS))
def test_lstm_is_bit_exact_with_tflm_across_a_sequence_of_inferences(models, name, tmp_path):
    want = _check_host(models[name].read_bytes(), tmp_path)
    assert not np.array_equal(want[5], want[3]), "the repeated input gave the same output: the state did not carry over"


def test_tflm_example_model_is_bit_exact(tmp_path):
    if not TFLM_EXAMPLE.exists():
        pytest.skip(f"TFLM's mnist_lstm example model is not at {TFLM_EXAMPLE} (set TINYEFF_TFLM_LSTM_MODEL)")
    _check_host(TFLM_EXAMPLE.read_bytes(), tmp_path)


def test_state_lives_outside_the_arena_from_its_reset_value(models):
    data = models["stacked"].read_bytes()
    compiled = compile_model(data, read_model(data), "stacked")
    states = compiled.model.variables
    assert len(states) == 4 and compiled.model.state_bytes == 12 + 2 * 12 + 6 + 2 * 6
    hidden = [t for t in compiled.model.info.tensors if t.variable and t.dtype == "INT8"]
    for t in hidden:
        a = next(a for a in states if a.name == compiled.model.variable_names[t.index])
        assert (a.values == t.zero_points[0]).all()  # TFLM resets an int8 variable to its zero point
    assert not set(compiled.model.variable_names) & set(compiled.plan.offsets)
    # each LSTM layer has a work buffer of its four int16 gates
    lstm = [i for i, layer in enumerate(compiled.model.layers) if layer.op == LSTM]
    assert [compiled.model.layers[i].work_bytes for i in lstm] == [4 * 12 * 2, 4 * 6 * 2]
    assert all(i in compiled.plan.work for i in lstm)
    # each layer's arrays are named after it: two LSTMs' weights must not share a C name
    for i in lstm:
        layer = compiled.model.layers[i]
        assert layer.arrays and all(a.name.startswith(f"l{layer.index}_") for a in layer.arrays)


def _lstm_edit(data: bytes, change) -> bytes:
    from ai_edge_litert.schema_py_generated import BuiltinOperator

    def apply(m, g):
        code = BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
        op = next(o for o in g.operators if code in (m.operatorCodes[o.opcodeIndex].builtinCode,
                                                      m.operatorCodes[o.opcodeIndex].deprecatedBuiltinCode))
        change(m, g, op)
    return edit(data, apply)


def _set_input(k: int, tensor):
    def change(m, g, op):
        op.inputs[k] = op.inputs[2] if tensor == "weights" else tensor
    return change


@pytest.mark.parametrize("change, message", [
    (_set_input(1, -1), "CIFG"),
    (_set_input(9, "weights"), "peephole"),
    (_set_input(16, "weights"), "projection"),
    (_set_input(20, "weights"), "layer normalisation"),
])
def test_lstm_variants_tflm_does_not_run_are_refused(models, change, message):
    data = _lstm_edit(models["seq8"].read_bytes(), change)
    with pytest.raises(TinyeffError, match=message):
        compile_model(data, read_model(data), "variant")


def test_per_channel_lstm_weights_are_refused(models):
    def change(m, g, op):
        q = g.tensors[op.inputs[2]].quantization
        n = g.tensors[op.inputs[2]].shape[0]
        q.scale, q.zeroPoint = np.repeat(q.scale, n).astype(np.float32), np.zeros(n, np.int64)

    data = _lstm_edit(models["seq8"].read_bytes(), change)
    with pytest.raises(TinyeffError, match="per channel"):
        compile_model(data, read_model(data), "per_channel")


def test_a_cell_state_that_is_not_a_variable_is_refused(models):
    def change(m, g, op):
        g.tensors[op.inputs[19]].isVariable = False

    data = _lstm_edit(models["seq8"].read_bytes(), change)
    with pytest.raises(TinyeffError, match="not a variable"):
        compile_model(data, read_model(data), "no_state")


@pytest.mark.emulator
def test_lstm_is_bit_exact_in_qemu(models, tmp_path):
    """Generated and built for the emulated Cortex-M4, samples run in order: every output byte checked."""
    bench_in_qemu(models["stacked"], tmp_path)


@pytest.mark.emulator
def test_tflm_example_model_is_bit_exact_in_qemu(tmp_path):
    if not TFLM_EXAMPLE.exists():
        pytest.skip(f"TFLM's mnist_lstm example model is not at {TFLM_EXAMPLE} (set TINYEFF_TFLM_LSTM_MODEL)")
    bench_in_qemu(TFLM_EXAMPLE, tmp_path)


@pytest.mark.emulator
def test_a_damaged_link_does_not_advance_the_state_twice(models, tmp_path):
    """1 % of the bytes damaged both ways: replies are asked for again, and te-run's inference number
    makes the device resend a reply instead of running the LSTM (and moving its state) again. The link
    is not coded (FEC would spare most retries, and the retries are what is tested), and the inputs go
    over it, not through the emulator's host file."""
    from link_faults import FaultyRelay

    relay = FaultyRelay(rate=0.01, seed=11)
    try:
        result = bench_in_qemu(models["seq8"], tmp_path, relay=relay, timeout=0.5, retries=20, quiet=0.05,
                              coding=False, host_file=False)
    finally:
        relay.close()
    assert relay.corrupted > 0 and result.retries > 0


def bench_in_qemu(model: Path, tmp_path: Path, board: str = "qemu-mps2-an386", relay=None, **dut_options):
    out = generate(model, board, "compiled", tmp_path / "project")
    assert json.loads((out / "tinyeff.json").read_text())["runtime"] == "compiled"
    info = read_model(model.read_bytes())
    x = _samples(info.tensors[info.inputs[0]].shape, seed=1)
    project = Project.load(out)
    build(project)
    with QemuDevice(project.elf, get_board(board), relay=relay) as device:
        dut = Dut(device, **{"timeout": 30, **dut_options})
        dut.wait_ready()
        result = run_bench(project, [dut], x, np.full(len(x), -1))
    assert result.errors == 0 and result.samples == len(x)
    assert result.exact_agreement == 1.0
    return result
