"""The README, claim by claim, where no other test module held the claim: each test runs what a user
runs (the `tinyeff` command, `make`, the pytest plugin) and quotes in its docstring the README
sentence it proves. docs/README_CLAIMS.md maps every README claim to its test or benchmark.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import wave
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tinyeff.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _readme() -> str:
    """The README with its line breaks folded into spaces, so a sentence is found whatever its wrapping."""
    return " ".join(README.read_text().split())


def _one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyeff: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _inspect_json(capsys, model: Path, *extra: str) -> dict:
    capsys.readouterr()
    assert main(["inspect", str(model), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _manifest(project: Path) -> dict:
    return json.loads((project / "tinyeff.json").read_text())


# ---------------------------------------------------------------- make


@pytest.mark.parametrize("target, commands", [
    ("demo", [".venv/bin/tinyeff demo --out demo-out"]),
    ("test", [f".venv/bin/python -m pytest -n {len(os.sched_getaffinity(0))} --dist loadfile"]),
    ("test-fast", ['.venv/bin/python -m pytest -m "not slow"']),
    ("bench", [".venv/bin/python benchmarks/pipeline.py", ".venv/bin/python benchmarks/runtimes.py"]),
], ids=["demo", "test", "test-fast", "bench"])
def test_make_targets_set_up_then_run_what_the_readme_says(target, commands):
    """"make demo    # sets up (apt + .venv); trains on digits, ..." / "`make demo` (`tinyeff demo`)";
    "make test    # sets up, then runs the whole test suite, one worker per core (what CI runs)";
    "make test-fast    # leaves out tests marked slow";
    "make bench        # benchmarks/pipeline.py and benchmarks/runtimes.py"."""
    # -n: print, run nothing; a clean environment, as a user's shell has (under `make test` the parent make's
    # MAKELEVEL would make this one print its "Entering directory" lines)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    r = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["./scripts/setup.sh", *commands]


def test_ci_runs_make_test():
    """"make test    # sets up, then runs the whole test suite (what CI runs)"."""
    lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert lines[-1] == "make test"


def test_make_setup_creates_the_venv_with_the_test_extras():
    """"`make setup` alone ... creates `.venv` with the package and its test extras."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert '"$PYTHON" -m venv .venv' in setup
    assert re.search(r"^\s*\.venv/bin/python -m pip install -q -e \"\.\[test\]\"$", setup, re.MULTILINE)


def test_make_setup_installs_the_debian_packages_the_readme_lists():
    """"`make setup` alone installs the Debian packages (`python3-venv make gcc libc6-dev gcc-arm-none-eabi
    libnewlib-arm-none-eabi qemu-system-arm clang libclang-rt-14-dev`)"."""
    listed = re.search(r"`make setup` alone installs the Debian packages \(`([^`]+)`\)", _readme()).group(1).split()
    installed = re.search(r"APT_PACKAGES=\(([^)]*)\)", (ROOT / "scripts" / "setup.sh").read_text()).group(1).split()
    assert sorted(listed) == sorted(installed)


# ---------------------------------------------------------------- tinyeff train


def _images(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images of three classes a small model separates: a bright band of rows per class."""
    y = np.arange(n) % 3
    x = rng.normal(0, 0.05, (n, 8, 8)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 2 * c:2 * c + 3, :] += 1.0
    return x, y


def test_train_takes_an_npz_file(tmp_path, capsys):
    """"`tinyeff train dscnn|projection --data D --out RUN`: data ... a `.npz`"; "The run directory holds
    the float model, config, the exact data split, metrics and the int8 model."""
    rng = np.random.default_rng(0)
    (xt, yt), (xs, ys) = _images(rng, 96), _images(rng, 30)
    data, run = tmp_path / "bands.npz", tmp_path / "run"
    np.savez(data, x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    assert main(["train", "dscnn", "--data", str(data), "--out", str(run), "--width", "8", "--depth", "1",
                 "--epochs", "30", "--qat", "off", "--quiet"]) == 0
    with np.load(run / "split.npz") as split:  # the test split is the file's, untouched
        np.testing.assert_array_equal(split["x_test"].reshape(xs.shape), xs)
        np.testing.assert_array_equal(split["y_test"], ys)
    report = _inspect_json(capsys, run / "model.int8.tflite")
    assert report["inputs"][0]["shape"] == [1, 8, 8, 1] and report["outputs"][0]["shape"] == [1, 3]
    assert json.loads((run / "metrics.json").read_text())["int8_accuracy"] >= 0.9


def test_train_takes_a_text_label_csv(tmp_path, capsys):
    """"`tinyeff train dscnn|projection --data D --out RUN`: data ... a `text,label` CSV"."""
    rows = ["text,label"]
    for i in range(12):
        rows += [f"turn on the lamp number {i},on", f"switch off every light {i},off", f"what is the weather {i},weather"]
    data, run = tmp_path / "commands.csv", tmp_path / "run"
    data.write_text("\n".join(rows) + "\n")
    assert main(["train", "projection", "--data", str(data), "--out", str(run), "--width", "8", "--depth", "1",
                 "--features", "16", "--max-tokens", "6", "--epochs", "40", "--qat", "off", "--quiet"]) == 0
    with np.load(run / "split.npz", allow_pickle=False) as split:
        assert split["labels"].tolist() == ["off", "on", "weather"]
        assert len(split["y_test"]) == 9 and len(split["y_train"]) == 27  # 25 % of each class held out
    assert _inspect_json(capsys, run / "model.int8.tflite")["outputs"][0]["shape"] == [1, 3]
    assert json.loads((run / "metrics.json").read_text())["int8_accuracy"] >= 0.9


def _tone(path: Path, freq: float, rate: int = 16000) -> None:
    t = np.arange(rate) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes())


def test_train_takes_a_folder_of_wav_files_per_class(tmp_path, capsys):
    """"`tinyeff train dscnn|projection --data D --out RUN`: data ... or a folder of `.wav` files per class
    (MFCC/log-mel front end in NumPy, parameters documented in `tinyeff/data/audio.py`)"."""
    folder, run = tmp_path / "tones", tmp_path / "run"
    for cls, f0 in (("high", 2500), ("low", 300)):
        (folder / cls).mkdir(parents=True)
        for k in range(8):
            _tone(folder / cls / f"{k}.wav", f0 + 15 * k)
    assert main(["train", "dscnn", "--data", str(folder), "--out", str(run), "--width", "8", "--depth", "1",
                 "--epochs", "10", "--qat", "off", "--quiet"]) == 0
    with np.load(run / "split.npz", allow_pickle=False) as split:
        assert split["labels"].tolist() == ["high", "low"] and len(split["y_test"]) == 4
    # the front end's default: 49 frames of 10 MFCCs, the MLPerf Tiny KWS input
    report = _inspect_json(capsys, run / "model.int8.tflite")
    assert report["inputs"][0]["shape"] == [1, 49, 10, 1] and report["outputs"][0]["shape"] == [1, 2]


def test_train_on_intents_reports_its_27_intents_and_template_split(tmp_path, capsys):
    """"Projection model on the `intents` voice commands (27 English intents with at least 4 templates
    each; 8,775 training sentences, 2,283 test sentences from templates never trained on)"."""
    assert main(["train", "projection", "--data", "intents", "--out", str(tmp_path / "run"), "--width", "4", "--depth", "1",
                 "--features", "8", "--max-tokens", "4", "--epochs", "1", "--qat", "off"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^training projection .* on intents\S*: 8775 train / 2283 test samples, 27 classes$", err, re.MULTILINE), err


def test_train_on_intents_in_another_language(tmp_path, capsys):
    """"`intents` (voice commands from the `home-assistant-intents` package, any of its languages with
    `--lang` ...)"."""
    run = tmp_path / "run"
    assert main(["train", "projection", "--data", "intents", "--lang", "de", "--out", str(run), "--width", "4", "--depth", "1",
                 "--features", "8", "--max-tokens", "4", "--epochs", "1", "--qat", "off"]) == 0
    assert re.search(r"^training projection .* on intents-de: \d+ train", capsys.readouterr().err, re.MULTILINE)
    assert json.loads((run / "config.json").read_text())["data"]["lang"] == "de"
    assert main(["train", "projection", "--data", "intents", "--lang", "xx", "--out", str(tmp_path / "xx")]) == 2
    assert "no language 'xx'" in _one_sentence(capsys) and not (tmp_path / "xx").exists()


def test_train_stops_early_on_its_validation_slice(tmp_path):
    """"Seeded training with early stopping on a validation slice of the training split"."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (160, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 160)  # labels the inputs do not predict: validation stops improving early
    data, run = tmp_path / "noise.npz", tmp_path / "run"
    np.savez(data, x_train=x[:120], y_train=y[:120], x_test=x[120:], y_test=y[120:])
    assert main(["train", "dscnn", "--data", str(data), "--out", str(run), "--width", "8", "--depth", "1",
                 "--epochs", "300", "--qat", "off", "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    patience = json.loads((run / "config.json").read_text())["train"]["patience"]
    assert metrics["epochs_run"] < 300 and metrics["epochs_run"] == metrics["best_epoch"] + patience
    assert len(metrics["history"]) == metrics["epochs_run"]
    # the run keeps the best epoch's model: its validation score is that epoch's
    assert metrics["val_accuracy"] == metrics["history"][metrics["best_epoch"] - 1]["val_accuracy"]


def test_train_distils_from_a_teacher_run(tiny_run, tmp_path, capsys):
    """"distillation from `--teacher RUN`"."""
    args = ["train", "dscnn", "--data", "digits", "--width", "8", "--depth", "1", "--epochs", "3", "--qat", "off"]
    assert main(args + ["--out", str(tmp_path / "plain")]) == 0
    assert main(args + ["--out", str(tmp_path / "taught"), "--teacher", str(tiny_run), "--alpha", "0.9"]) == 0
    assert f"distilling from {tiny_run}" in capsys.readouterr().err
    # the same seed and data: only the teacher's soft targets differ
    assert (tmp_path / "plain" / "model.int8.tflite").read_bytes() != (tmp_path / "taught" / "model.int8.tflite").read_bytes()
    # a teacher of other data is refused in one sentence
    rng = np.random.default_rng(0)
    (xt, yt), (xs, ys) = _images(rng, 30), _images(rng, 9)
    np.savez(tmp_path / "bands.npz", x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    assert main(["train", "dscnn", "--data", str(tmp_path / "bands.npz"), "--out", str(tmp_path / "x"),
                 "--teacher", str(tiny_run)]) == 2
    assert "has another input or class count than this model" in _one_sentence(capsys)


# ---------------------------------------------------------------- tinyeff quantize


@pytest.fixture(scope="module")
def quantized(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quantize") / "ptq.tflite"
    assert main(["quantize", str(tiny_run), "--qat", "off", "--out", str(out)]) == 0
    return out


def test_quantize_gives_per_channel_int8_weights_and_int8_activations_input_and_output(quantized):
    """"`tinyeff quantize RUN [--qat auto|always|off]`: full-int8 post-training quantization (per-channel
    int8 weights, int8 activations, int8 input and output)"."""
    from tinyeff.footprint import read_model

    info = read_model(quantized.read_bytes())
    assert info.input().dtype == info.output().dtype == "INT8"
    assert all(t.dtype == "INT8" for t in info.tensors if not t.constant)
    weighted = [o for o in info.ops if o.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert {o.op for o in weighted} == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    for o in weighted:
        w = info.tensors[o.inputs[1]]
        channels = w.shape[3] if o.op == "DEPTHWISE_CONV_2D" else w.shape[0]
        assert w.dtype == "INT8" and len(w.scales) == channels > 1, (o.op, w.shape, len(w.scales))


def test_quantize_strips_tensor_names_and_signatures(quantized):
    """"Tensor names and signatures are stripped: TFLM never reads them"."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(quantized.read_bytes(), 0)
    assert model.SignatureDefsLength() == 0
    graph = model.Subgraphs(0)
    assert graph.TensorsLength() > 0
    assert all(not graph.Tensors(i).Name() for i in range(graph.TensorsLength()))


def test_stripped_strings_are_a_fifth_of_a_tiny_models_flash(tiny_run):
    """"they are ~20 % of a tiny model's flash": the run's model converted as quantize converts it, with
    and without the strip. The share depends on how many tensors a model has per weight byte, so the
    test takes 15-30 % for a model of the demo's size (~10 KiB: 21 % for the demo's own) and checks
    that the strip changes no output."""
    import keras

    from tinyeff.compress.quantize import keras_to_int8
    from tinyeff.reference import tflm_outputs

    split = np.load(tiny_run / "split.npz")
    model = keras.models.load_model(tiny_run / "model.keras", compile=False)
    kept = keras_to_int8(model, split["x_train"][:64], strip=False)
    stripped = keras_to_int8(model, split["x_train"][:64])
    assert 8_000 < len(stripped) < 16_000, len(stripped)
    assert 0.15 <= 1 - len(stripped) / len(kept) <= 0.30, (len(kept), len(stripped))
    x = np.random.default_rng(0).integers(-128, 128, (8, *model.input_shape[1:]), dtype=np.int8)
    np.testing.assert_array_equal(tflm_outputs(kept, x), tflm_outputs(stripped, x))


# ---------------------------------------------------------------- tinyeff shrink --board


@pytest.fixture(scope="module")
def board_shrink(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shrink") / "pico"
    assert main(["shrink", str(tiny_run), "--board", "rpi-pico", "--flash-kib", "100", "--no-compare-plain", "--qat", "off",
                 "--out", str(out), "--quiet"]) == 0
    return out


def test_shrink_with_a_board_takes_what_it_leaves_for_a_model_and_the_tighter_of_two_budgets(board_shrink, capsys):
    """"(or `--board B`: the flash and RAM that board leaves for a model, TFLM arena margin included; with
    both, the tighter holds)"."""
    from tinyeff import tflm

    capsys.readouterr()
    assert main(["boards", "--json"]) == 0
    pico = next(b for b in json.loads(capsys.readouterr().out) if b["id"] == "rpi-pico")
    board_flash = (pico["flash_kib"] - pico["app_flash_kib"]) * 1024
    board_ram = (pico["ram_kib"] - pico["app_ram_kib"]) * 1024 - tflm.ARENA_MARGIN_BYTES
    budget = json.loads((board_shrink / "candidates.json").read_text())["budget"]
    assert 100 * 1024 < board_flash  # --flash-kib 100 is the tighter flash budget, the board's RAM the only one
    assert budget == {"flash_bytes": 100 * 1024, "ram_bytes": board_ram}


def test_shrink_chooses_the_fitting_candidate_best_on_validation(board_shrink):
    """"the chosen one is the fitting candidate with the best int8 accuracy on a validation slice that no
    fine-tuning trains on (ties go to the lower int8 validation loss; the test set picks nothing)"."""
    candidates = json.loads((board_shrink / "candidates.json").read_text())["candidates"]
    assert len(candidates) >= 2  # the trained model and at least one pruned step
    fitting = [c for c in candidates if c["fits"]]
    best = max(fitting, key=lambda c: (c["int8_val_accuracy"], -c["int8_val_loss"]))
    assert [c["name"] for c in candidates if c["chosen"]] == [best["name"]]
    assert len((board_shrink / "model.int8.tflite").read_bytes()) == best["flash_bytes"]


# ---------------------------------------------------------------- tinyeff inspect


def test_inspect_prints_ops_shapes_quantization_macs_per_layer_flash_and_arena(kws_model, capsys):
    """"`tinyeff inspect MODEL [--board B] [--json]`: ops, tensor shapes and quantization, MACs per layer,
    flash bytes, host TFLM arena (head = activations, tail = persistent)"."""
    assert main(["inspect", str(kws_model)]) == 0
    out = capsys.readouterr().out
    assert "  input  int8 [1, 49, 10, 1] scale 0.584703 zero point 83" in out
    assert "  output int8 [1, 12] scale 0.00390625 zero point -128" in out
    layers = re.findall(r"^\s+(\d+) (\w+)\s+(\[[\d, ]+\])\s+([\d,]+)$", out, re.MULTILINE)
    assert [l[1] for l in layers] == ["CONV_2D"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * 4 + [
        "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert layers[0][2:] == ("[1, 25, 5, 64]", "320,000") and layers[11][2:] == ("[1, 12]", "768")
    assert "host TFLM arena 24,272 B (head 16,000 activations, tail 8,272 persistent)" in out


def test_inspect_reports_the_kws_reference_figures(kws_model, capsys):
    """"`tinyeff inspect ../shared/models/kws_ref_model.tflite` (MLPerf Tiny KWS reference): host TFLM arena
    24,272 B (16,000 activations + 8,272 persistent), 53,936 B flash, 2,656,768 MACs, ops CONV_2D,
    DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX."""
    assert main(["inspect", str(kws_model)]) == 0
    out = capsys.readouterr().out
    assert ("  flash 53,936 B (weights 24,376 B)   host TFLM arena 24,272 B (head 16,000 activations, "
            "tail 8,272 persistent)   MACs 2,656,768") in out
    assert "  ops: CONV_2D x5, DEPTHWISE_CONV_2D x4, AVERAGE_POOL_2D x1, RESHAPE x1, FULLY_CONNECTED x1, SOFTMAX x1" in out


def _abs_model(path: Path) -> Path:
    """A dense layer and ABS: an op TFLM runs and the compiled runtime does not."""
    from tinyeff._native import tensorflow
    from tinyeff.compress.quantize import keras_to_int8

    keras = tensorflow().keras
    x = keras.Input((8,), batch_size=1)
    model = keras.Model(x, keras.ops.abs(keras.layers.Dense(4)(x)))
    path.write_bytes(keras_to_int8(model, np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)))
    return path


def test_inspect_says_why_the_compiled_runtime_cannot_run_a_model(tmp_path, capsys):
    """"what each runtime needs (TFLM: the file and arena + margin; compiled: its constants and planned
    arena, or why it cannot run the model)"."""
    model = _abs_model(tmp_path / "abs.tflite")
    assert main(["inspect", str(model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    compiled = [l for l in lines if l.startswith("  runtime compiled")]
    assert len(compiled) == 1 and "cannot run it:" in compiled[0] and "ABS" in compiled[0]
    assert any(re.match(r"  runtime tflm\s+flash [\d,]+ B, RAM [\d,]+ B \(arena \+ margin\)$", l) for l in lines)
    report = _inspect_json(capsys, model)
    assert report["runtimes"]["compiled"]["supported"] is False and report["runtimes"]["tflm"]["supported"] is True


def test_inspect_refuses_a_float_model_in_one_sentence(tmp_path, capsys):
    """"Corrupt, truncated and float models get one clear sentence."""
    from tinyeff._native import captured_fds, tensorflow

    tf = tensorflow()
    keras = tf.keras
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with captured_fds(1, 2):
        data = tf.lite.TFLiteConverter.from_keras_model(m).convert()
    path = tmp_path / "float.tflite"
    path.write_bytes(data)
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 2
    err = _one_sentence(capsys)
    assert "not a quantized model" in err and "float32" in err


def test_inspect_and_both_runtimes_take_int16_and_lstm_models(tmp_path, capsys):
    """"Models beyond int8 (issue 11): `inspect` and both runtimes take int16-activation models (TFLM's
    "16x8": int16 activations, int8 weights, int64 or int32 biases) and TFLM's integer LSTM
    (`UNIDIRECTIONAL_SEQUENCE_LSTM`: int8 in and out, int16 cell state)."""
    from op_models_int16 import make_case
    from test_lstm import _make

    int16 = tmp_path / "int16.tflite"
    int16.write_bytes(make_case("conv_k3x3_s1_same_None_d1"))
    lstm = tmp_path / "lstm.tflite"
    lstm.write_bytes(_make("seq8"))
    for model, io, op in ((int16, "INT16", "CONV_2D"), (lstm, "INT8", "UNIDIRECTIONAL_SEQUENCE_LSTM")):
        report = _inspect_json(capsys, model)
        assert report["inputs"][0]["dtype"] == report["outputs"][0]["dtype"] == io and op in report["op_counts"]
        assert report["arena_bytes"] > 0
        assert report["runtimes"]["compiled"]["supported"] and report["runtimes"]["tflm"]["supported"]
        for runtime in ("compiled", "tflm"):
            out = tmp_path / f"{model.stem}-{runtime}"
            assert main(["generate", str(model), "--board", "qemu-mps2-an386", "--runtime", runtime, "--out", str(out)]) == 0
            assert _manifest(out)["runtime"] == runtime


def test_the_tflm_arena_a_project_declares_for_kws(kws_model, capsys):
    """The README's TFLM arena table, host TFLM / declared: "| MLPerf KWS | 24,272 / 25,552 / 22,820 |
    24,272 / 29,808 / 27,348 |" (`qemu-mps2-an386`, `qemu-mps3-an547`); the host figure, plus
    CMSIS-NN's scratch and persistent buffers for the core, plus the margin."""
    declared = {}
    for board in ("qemu-mps2-an386", "qemu-mps3-an547"):
        report = _inspect_json(capsys, kws_model, "--board", board)
        assert report["arena_bytes"] == 24_272
        declared[board] = report["runtimes"]["tflm"]["ram_bytes"]
    assert declared == {"qemu-mps2-an386": 25_552, "qemu-mps3-an547": 29_808}


# ---------------------------------------------------------------- tinyeff boards


def test_boards_lists_every_board_file_emulated_and_real(capsys):
    """"`tinyeff boards`: the boards in `boards/*.toml` ... Emulated: `qemu-mps2-an386` (Cortex-M4F),
    `qemu-mps2-an500` (M7), `qemu-mps2-an505` (M33), `qemu-mps3-an547` (M55). Real: `nucleo-l4r5zi`,
    `nucleo-h7a3zi-q`, `disco-f746ng`, `nano33ble`, `rpi-pico`, `esp32-s3-devkitc-1`."""
    assert main(["boards"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(rows) == {p.stem for p in (ROOT / "boards").glob("*.toml")}
    emulated = {b: r[1] for b, r in rows.items() if r[5] == "make"}
    assert emulated == {"qemu-mps2-an386": "cortex-m4f", "qemu-mps2-an500": "cortex-m7", "qemu-mps2-an505": "cortex-m33",
                        "qemu-mps3-an547": "cortex-m55"}
    assert all(rows[b][-2:] == ["qemu", b.removeprefix("qemu-")] for b in emulated)
    real = {b for b, r in rows.items() if r[5] == "pio"}
    assert real == {"nucleo-l4r5zi", "nucleo-h7a3zi-q", "disco-f746ng", "nano33ble", "rpi-pico", "esp32-s3-devkitc-1"}


def test_boards_time_with_the_core_s_counter(capsys):
    """"the Arduino port (`firmware/ports/arduino`: Serial, DWT CYCCNT on Cortex-M3/4/7/33, CCOUNT on ESP32,
    micros() elsewhere, i.e. microseconds on the RP2040 ...)": the timer each board's bench is labelled with."""
    assert main(["boards", "--json"]) == 0
    boards = json.loads(capsys.readouterr().out)
    timers = {b["id"]: b["timer"] for b in boards if b["platformio"]}
    assert timers == {"nucleo-l4r5zi": "dwt", "nucleo-h7a3zi-q": "dwt", "disco-f746ng": "dwt", "nano33ble": "dwt",
                      "rpi-pico": "micros", "esp32-s3-devkitc-1": "ccount"}


# ---------------------------------------------------------------- tinyeff generate


def test_generate_writes_the_project_the_readme_lists(kws_model, tmp_path, capsys):
    """"The project holds the model C, the kernels of the board's path, the MLPerf Tiny DUT protocol
    (`firmware/protocol`, ...), the bare-metal MPS2/MPS3 port (`firmware/ports/cmsdk` ...), a linker script,
    a Makefile for the Debian `arm-none-eabi-gcc` (`-Wall -Wextra -Werror`), a README and the `tinyeff.json`
    manifest (kernel path, every layer's kernel, the plan and its floor)"; "The floor printed next to the
    plan (`inspect`, `generate`, the manifest)"."""
    from tinyeff.codegen import paths

    out = tmp_path / "fw"
    assert main(["generate", str(kws_model), "--board", "qemu-mps2-an386", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    man = _manifest(out)
    for rel in ("src/tinyeff_model.c", "src/tinyeff_model.h", "src/tinyeff/protocol/te_protocol.c",
                "src/tinyeff/ports/cmsdk/te_port_cmsdk.c", "link.ld", "Makefile", "README.md"):
        assert (out / rel).is_file(), rel
    assert {p.name for p in (out / "src/tinyeff/kernels").iterdir()} == set(paths.files("dsp"))
    makefile = (out / "Makefile").read_text()
    assert "CROSS ?= arm-none-eabi-" in makefile and re.search(r"^CFLAGS = .*-Wall -Wextra -Werror", makefile, re.MULTILINE)
    assert man["kernel_path"] == "dsp" and len(man["layers"]) == 13
    assert all(l["kernel"] for l in man["layers"] if l["op"] != "RESHAPE")  # RESHAPE copies nothing
    floor = man["memory_plan"]["floor_bytes"]
    assert floor == 8000 and f"(floor {floor:,} B)" in said
    assert _inspect_json(capsys, kws_model)["runtimes"]["compiled"]["ram_floor_bytes"] == floor


def test_generate_refuses_to_overwrite_without_force(kws_model, tmp_path, capsys):
    """"Generation is atomic and refuses to overwrite without `--force`."""
    out = tmp_path / "fw"
    argv = ["generate", str(kws_model), "--board", "qemu-mps2-an386", "--out", str(out)]
    assert main(argv) == 0
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(argv) == 2
    assert "already exists" in _one_sentence(capsys) and (out / "notes.txt").read_text() == "mine"
    assert main(argv + ["--force"]) == 0
    assert not (out / "notes.txt").exists() and _manifest(out)["board"] == "qemu-mps2-an386"


KERNEL_PATHS = {"qemu-mps2-an386": "dsp", "qemu-mps2-an500": "dsp", "qemu-mps2-an505": "dsp", "nucleo-l4r5zi": "dsp",
                "disco-f746ng": "dsp", "nucleo-h7a3zi-q": "dsp", "nano33ble": "dsp", "qemu-mps3-an547": "mve",
                "rpi-pico": "generic", "esp32-s3-devkitc-1": "generic"}


def test_the_kernel_path_follows_the_core_and_optimize_size_takes_the_generic_c(kws_model, tmp_path, capsys):
    """"Kernel paths (...), chosen from the board's `core`; `--optimize size` takes the generic C on any core
    ..., `speed` (default) the core's path": the README's table, M4F/M7/M33 `dsp`, M55 `mve`, M0+ and
    Xtensa `generic`."""
    for board, path in KERNEL_PATHS.items():
        for optimize, want in (("speed", path), ("size", "generic")):
            out = tmp_path / f"{board}-{optimize}"
            assert main(["generate", str(kws_model), "--board", board, "--runtime", "compiled", "--optimize", optimize,
                         "--out", str(out)]) == 0
            assert _manifest(out)["kernel_path"] == want, (board, optimize)
    capsys.readouterr()


def test_the_compiled_runtime_runs_the_int8_ops_the_readme_lists(tmp_path, capsys):
    """"the model lowered to C99 (`tinyeff/codegen`): int8 kernels in `firmware/kernels` with TFLM's exact rounding
    (CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, ..., RESHAPE, SQUEEZE)" and "TFLM's integer LSTM": the ops a
    refusal says the compiled runtime runs."""
    listed = re.search(r"int8 kernels in `firmware/kernels` with TFLM's exact rounding \(([^)]*)\)", _readme()).group(1)
    listed = set(re.findall(r"\b[A-Z][A-Z0-9_]*[A-Z0-9]\b", listed))
    out = tmp_path / "abs"
    assert main(["generate", str(_abs_model(tmp_path / "abs.tflite")), "--board", "qemu-mps2-an386", "--runtime", "compiled",
                 "--out", str(out)]) == 2
    err = _one_sentence(capsys)
    assert "uses ABS, which the compiled runtime does not support" in err and not out.exists()
    runs = set(re.search(r"\(it runs ([A-Z0-9_, ]+)\)", err).group(1).split(", "))
    assert len(listed) == 28 and runs == listed | {"UNIDIRECTIONAL_SEQUENCE_LSTM"}


def test_the_compiled_runtime_runs_as_many_int16_ops_as_the_readme_says():
    """"The compiled runtime runs 23 ops in int16 (`tinyeff/codegen/lower_int16.py`, ...)"."""
    from tinyeff.codegen.lower_int16 import INT16_OPS

    said = int(re.search(r"The compiled runtime runs (\d+) ops in int16", _readme()).group(1))
    assert len(INT16_OPS) == said


def test_every_other_op_runs_the_generic_kernel_on_every_path(kws_model, tmp_path):
    """"Every other op runs the generic kernel on every path." (the heavy ops: convs, depthwise convs and
    dense layers take the path's kernels)"""
    heavy = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    for board, path in (("qemu-mps2-an386", "dsp"), ("qemu-mps3-an547", "mve"), ("rpi-pico", "generic")):
        out = tmp_path / board
        assert main(["generate", str(kws_model), "--board", board, "--runtime", "compiled", "--out", str(out)]) == 0
        layers = [l for l in _manifest(out)["layers"] if l["kernel"]]
        assert {l["op"] for l in layers} >= heavy | {"AVERAGE_POOL_2D", "SOFTMAX"}
        for l in layers:  # the generic kernels carry no path suffix: te_conv2d, te_average_pool, ...
            suffix = re.search(r"_(dsp|mve)$", l["kernel"])
            assert (suffix.group(1) if suffix else "generic") == (path if l["op"] in heavy else "generic"), (board, l)


@pytest.fixture(scope="module")
def tflm_project(kws_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tflm") / "nucleo"
    assert main(["generate", str(kws_model), "--board", "nucleo-l4r5zi", "--runtime", "tflm", "--out", str(out)]) == 0
    return out


def test_a_tflm_project_static_asserts_that_its_arena_fits_the_board(tflm_project, tmp_path):
    """"The `tflm` runtime ... declares the arena as the host TFLM measurement, plus what CMSIS-NN's kernels ask
    for ..., plus 1,024 B ... with a `static_assert` that it fits the board": compiled here, with the
    project's arena and with one a byte over what the board leaves for a model."""
    from tinyeff.boards import get_board

    limit = get_board("nucleo-l4r5zi").model_ram_bytes
    source = (tflm_project / "src" / "tinyeff_model_tflm.cpp").read_text()
    guard = re.search(r"^static_assert\(TINYEFF_ARENA_BYTES <= (\d+),.*?\);$", source, re.MULTILINE | re.DOTALL)
    assert guard and int(guard.group(1)) == limit
    arena = int(re.search(r"#define TINYEFF_ARENA_BYTES (\d+)", (tflm_project / "src" / "tinyeff_model.h").read_text()).group(1))
    assert arena == _manifest(tflm_project)["arena_bytes"] < limit

    def compiles(bytes_: int) -> subprocess.CompletedProcess:
        snippet = tmp_path / f"arena_{bytes_}.cpp"
        snippet.write_text(f"#define TINYEFF_ARENA_BYTES {bytes_}\n{guard.group(0)}\n")
        return subprocess.run(["arm-none-eabi-g++", "-std=c++17", "-fsyntax-only", str(snippet)], capture_output=True, text=True)

    assert compiles(arena).returncode == 0
    over = compiles(limit + 1)
    assert over.returncode != 0 and "the TFLM arena does not fit the RAM nucleo-l4r5zi leaves for a model" in over.stderr


def test_a_tflm_project_holds_the_model_as_a_16_byte_aligned_array(tflm_project, kws_model, tmp_path):
    """"holds the model as an `alignas(16)` array": the array the board's compiler places, 16-byte aligned."""
    from tinyeff.boards import get_board

    obj = tmp_path / "model_data.o"
    r = subprocess.run(["arm-none-eabi-gcc", *get_board("nucleo-l4r5zi").cflags, "-std=c11", "-O2", "-fdata-sections",
                        "-Wall", "-Wextra", "-Werror", "-c", str(tflm_project / "src" / "model_data.c"), "-o", str(obj)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sections = subprocess.run(["arm-none-eabi-readelf", "-SW", str(obj)], capture_output=True, text=True).stdout
    row = next(l for l in sections.splitlines() if ".rodata.tinyeff_model_data " in l)
    size, align = int(row.split()[-6], 16), int(row.split()[-1])
    assert size == len(kws_model.read_bytes()) and align >= 16 and align % 16 == 0


def _tflm_tree(root: Path, cmsis_nn: bool) -> Path:
    """The files a QEMU board's Makefile looks for in a TFLM tree (empty: make -n compiles nothing)."""
    (root / "tensorflow/lite/micro").mkdir(parents=True)
    (root / "tensorflow/lite/micro/micro_interpreter.cc").write_text("")
    if cmsis_nn:
        (root / "third_party/cmsis_nn/Source/ConvolutionFunctions").mkdir(parents=True)
        (root / "third_party/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_s8.c").write_text("")
    return root


def test_a_qemu_tflm_makefile_builds_cmsis_nn_from_a_tree_that_has_it(kws_model, tmp_path):
    """"`--runtime tflm` on the QEMU boards: the Makefile builds TFLM's C++ from a TFLM tree given as `make
    TFLM_DIR=...` ..., and a tree made with `OPTIMIZED_KERNEL_DIR=cmsis_nn` brings CMSIS-NN's C sources, include
    paths and `-DCMSIS_NN -DKERNELS_OPTIMIZED_FOR_SPEED`."""
    project = tmp_path / "fw"
    assert main(["generate", str(kws_model), "--board", "qemu-mps2-an386", "--runtime", "tflm", "--out", str(project)]) == 0
    for cmsis_nn in (True, False):
        tree = _tflm_tree(tmp_path / f"tree-{cmsis_nn}", cmsis_nn)
        r = subprocess.run(["make", "-n", "-C", str(project), f"TFLM_DIR={tree}"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        tflm_cc = next(l for l in r.stdout.splitlines() if "micro_interpreter.cc" in l)
        assert f"-isystem {tree}" in tflm_cc
        cmsis_c = [l for l in r.stdout.splitlines() if l.rstrip().endswith("build/tflm/third_party/cmsis_nn/Source/"
                                                                            "ConvolutionFunctions/arm_convolve_s8.o")]
        if cmsis_nn:
            assert "-DCMSIS_NN -DKERNELS_OPTIMIZED_FOR_SPEED" in tflm_cc and f"-isystem {tree}/third_party/cmsis_nn/Include" in tflm_cc
            assert len(cmsis_c) == 1 and "-DCMSIS_NN" in cmsis_c[0]
        else:
            assert "-DCMSIS_NN" not in r.stdout and not cmsis_c


def test_the_m55_s_tflm_sources_are_compiled_without_if_conversion2(kws_model, tmp_path):
    """"The M55's TFLM sources are compiled with `-fno-if-conversion2`"."""
    for board, flag in (("qemu-mps3-an547", True), ("qemu-mps2-an386", False)):
        project = tmp_path / board
        assert main(["generate", str(kws_model), "--board", board, "--runtime", "tflm", "--out", str(project)]) == 0
        tree = _tflm_tree(tmp_path / f"tree-{board}", cmsis_nn=True)
        r = subprocess.run(["make", "-n", "-C", str(project), f"TFLM_DIR={tree}"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        tflm_lines = [l for l in r.stdout.splitlines() if f" -c {tree}/" in l]
        assert len(tflm_lines) == 2  # micro_interpreter.cc and the CMSIS-NN source
        assert all(("-fno-if-conversion2" in l) == flag for l in tflm_lines), board


# ---------------------------------------------------------------- tinyeff flash


def test_flash_builds_a_qemu_project(tiny_run, tmp_path, capsys):
    """"`tinyeff flash DIR [--port URL]` (`tinyeff build` for QEMU boards ...)"."""
    project = tmp_path / "fw"
    assert main(["generate", str(tiny_run / "model.int8.tflite"), "--board", "qemu-mps2-an386", "--out", str(project)]) == 0
    capsys.readouterr()
    assert main(["flash", str(project)]) == 0
    elf = project / "build" / "firmware.elf"
    assert capsys.readouterr().out.strip() == (f"built {elf} for qemu-mps2-an386; an emulator loads it when a bench starts "
                                               "(no flashing needed)")
    assert elf.read_bytes()[:4] == b"\x7fELF"


@pytest.fixture(scope="module")
def real_project(kws_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real") / "nucleo"
    assert main(["generate", str(kws_model), "--board", "nucleo-l4r5zi", "--runtime", "compiled", "--out", str(out)]) == 0
    return out


def _fake_pio(bindir: Path, exit_code: int) -> Path:
    """A `pio` that records its arguments and says one line, as PlatformIO does on success or failure."""
    bindir.mkdir()
    log = bindir / "argv"
    script = bindir / "pio"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{log}"\necho "pio said no"\nexit {exit_code}\n')
    script.chmod(0o755)
    return log


def test_flash_uploads_a_real_board_with_pio_run(real_project, tmp_path, monkeypatch, capsys):
    """"`tinyeff flash DIR [--port URL]` (... `pio run -t upload` for real ones)"."""
    log = _fake_pio(tmp_path / "bin", 0)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert main(["flash", str(real_project), "--port", "/dev/ttyACM7"]) == 0
    assert capsys.readouterr().out.strip() == "flashed nucleo-l4r5zi through PlatformIO"
    assert log.read_text().splitlines() == ["run", "-d", str(real_project), "-t", "upload", "--upload-port", "/dev/ttyACM7"]


def test_flash_errors_are_one_sentence(real_project, tmp_path, monkeypatch, capsys):
    """`tinyeff flash` on what it cannot flash: not a project, no PlatformIO, an upload that fails (the README's
    "Bad input: one sentence" rule of every command; the flash row of docs/README_CLAIMS.md)."""
    assert main(["flash", str(tmp_path)]) == 2
    assert "is not a tinyeff project (no tinyeff.json)" in _one_sentence(capsys)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert main(["flash", str(real_project)]) == 2
    assert "PlatformIO is not installed" in _one_sentence(capsys)
    _fake_pio(tmp_path / "bin", 1)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert main(["flash", str(real_project)]) == 2
    err = _one_sentence(capsys)
    assert "-t upload' failed (PlatformIO needs its ststm32 platform" in err and err.endswith("its last words: pio said no")


# ---------------------------------------------------------------- tinyeff bench --min-accuracy


@pytest.fixture(scope="module")
def qemu_project(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "an386"
    assert main(["generate", str(tiny_run / "model.int8.tflite"), "--board", "qemu-mps2-an386", "--out", str(out)]) == 0
    return out


def test_bench_min_accuracy_needs_labels(qemu_project, tiny_run, tmp_path, capsys):
    """"`--min-accuracy` for CI": without labels to score, refused in one sentence before a device is opened."""
    from tinyeff.harness.bench import bench_inputs

    (x,), _ = bench_inputs(str(tiny_run), (tiny_run / "model.int8.tflite").read_bytes(), limit=4)
    np.savez(tmp_path / "unlabelled.npz", x=x)
    assert main(["bench", str(qemu_project), "--data", str(tmp_path / "unlabelled.npz"), "--min-accuracy", "0.9"]) == 2
    assert "--min-accuracy needs labels" in _one_sentence(capsys)


@pytest.mark.emulator
def test_bench_below_min_accuracy_exits_1_with_a_junit_failure(qemu_project, tiny_run, tmp_path, capsys):
    """"`tinyeff bench DIR --data RUN [--port URL | --emulator qemu]` ... `--junit` (one case per sample) ...
    `--min-accuracy` for CI": a run below the bar fails the command (exit 1) and the JUnit file, though every
    output is bit-exact."""
    from tinyeff.harness.bench import bench_inputs

    (x,), y = bench_inputs(str(tiny_run), (tiny_run / "model.int8.tflite").read_bytes(), limit=12)
    data = tmp_path / "mislabelled.npz"
    np.savez(data, x=x, labels=(y + 1) % 10)  # every label wrong: accuracy 0
    rc = main(["bench", str(qemu_project), "--data", str(data), "--emulator", "qemu", "--min-accuracy", "0.5",
               "--json", str(tmp_path / "b.json"), "--junit", str(tmp_path / "b.xml"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "  accuracy on the device   0.0 %" in out and "100.0 % of outputs bit-exact" in out
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["samples"] == 12 and report["errors"] == 0 and report["exact_agreement"] == 1.0
    suite = ET.parse(tmp_path / "b.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("13", "1", "0")
    (accuracy,) = [c for c in suite if c.get("name") == "accuracy"]
    assert accuracy.find("failure").get("message") == "accuracy 0.0000 is below 0.5000"


def test_bench_under_renode_needs_renode(qemu_project, tiny_run, tmp_path, monkeypatch, capsys):
    """"`--emulator renode` benches a board with a Renode platform where `renode` is installed (renode.io or the
    `antmicro/renode` Docker image)": without it on PATH, asked for, it is one sentence naming what to install."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["bench", str(qemu_project), "--data", str(tiny_run), "--limit", "2", "--emulator", "renode"]) == 2
    err = _one_sentence(capsys)
    assert "renode is not installed" in err and "renode.io" in err and "antmicro/renode" in err


# ---------------------------------------------------------------- the pytest plugin


PLUGIN_USER_TEST = '''
def test_on_the_device(tinyeff_device):
    result = tinyeff_device.bench(r"{run}", limit=10)
    assert result.exact_agreement == 1.0 and result.accuracy == result.host_accuracy
'''


def test_plugin_wants_a_board_for_a_tflite(pytester, tiny_run):
    """"pytest plugin (entry point `pytest11`): `--tinyeff-project` (a project, or a `.tflite` generated for
    `--tinyeff-board`)": a `.tflite` without a board is an error that says so."""
    pytester.makepyfile(PLUGIN_USER_TEST.format(run=tiny_run))
    result = pytester.runpytest_subprocess("--tinyeff-project", str(tiny_run / "model.int8.tflite"))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--tinyeff-project is a .tflite: pass --tinyeff-board to generate its firmware*"])


def test_plugin_skips_a_real_board_without_a_port(pytester, tiny_run, real_project):
    """"`--tinyeff-port`, ... the `tinyeff_device` fixture": a project for a real board needs its port."""
    pytester.makepyfile(PLUGIN_USER_TEST.format(run=tiny_run))
    result = pytester.runpytest_subprocess("-rs", "--tinyeff-project", str(real_project))
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*nucleo-l4r5zi is a real board: pass --tinyeff-port*"])


@pytest.mark.emulator
def test_plugin_benches_a_generated_project_on_the_emulator(pytester, tiny_run, qemu_project):
    """"`--tinyeff-project` (a project, ...), ..., `--tinyeff-emulator`, the `tinyeff_device` fixture"."""
    pytester.makepyfile(PLUGIN_USER_TEST.format(run=tiny_run))
    result = pytester.runpytest_subprocess("--tinyeff-project", str(qemu_project), "--tinyeff-emulator", "qemu")
    result.assert_outcomes(passed=1)


# ---------------------------------------------------------------- firmware/frontend


def test_the_projection_front_end_in_c_needs_no_heap_and_no_libm(tmp_path):
    """"`firmware/frontend/te_projection.c`: the projection models' text front end ... in C99 without heap or
    libm": every symbol it leaves to the C library, unoptimized and without builtins, is a memory one."""
    src = ROOT / "firmware" / "frontend"
    obj = tmp_path / "te_projection.o"
    r = subprocess.run(["gcc", "-std=c99", "-O0", "-fno-builtin", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{src}", "-c",
                        str(src / "te_projection.c"), "-o", str(obj)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    undefined = set(subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True).stdout.split()) - {"U"}
    assert undefined and undefined <= {"memcpy", "memmove", "memset", "memcmp"}, undefined


def test_the_c_front_end_is_checked_on_the_number_of_texts_the_readme_gives():
    """"bit-exact with the Python that trains the models on 1,200 texts (intents sentences, random Unicode,
    edge cases) under eight configurations."""
    import test_projection_c

    said = re.search(r"trains the models on ([\d,]+) texts .*? under (\w+) configurations", _readme())
    assert len(test_projection_c.CONFIGS) == {"six": 6, "eight": 8}[said.group(2)]
    assert len(test_projection_c._texts()) == int(said.group(1).replace(",", ""))


# ---------------------------------------------------------------- figures about the test suite


def test_the_op_grid_holds_as_many_single_op_models_as_the_readme_says():
    """"The 75 single-op models of `tests/op_models.py` ... are bit-exact with host TFLM on 1,000 random inputs
    each on the host"."""
    import op_models
    import test_compiled_runtime

    said = re.search(r"The (\d+) single-op models of `tests/op_models.py`", _readme())
    assert len(op_models.case_names()) == int(said.group(1))
    assert test_compiled_runtime.N_INPUTS == 1000


def test_the_int16_grid_holds_as_many_cases_as_the_readme_says():
    """"`tests/test_int16.py` (56 converter-made int16 cases, bit-exact on the generic and dsp paths and in the
    QEMU op grid on all four cores)"."""
    import op_models_int16

    said = re.search(r"`tests/test_int16.py` \((\d+) int16 cases, (\d+) converter-made", _readme())
    assert int(said.group(1)) == len(op_models_int16.case_names())
    assert int(said.group(2)) == len(op_models_int16._cases())


# ---------------------------------------------------------------- layout


STAGES = ("data", "models", "train", "footprint", "compress", "codegen", "generate", "harness", "search", "cli")


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "tinyeff" and len(parts) > 1 and parts[1] in STAGES else None


def test_a_stage_imports_only_from_stages_before_it():
    """"`tinyeff/` stages in pipeline order: `data` → `models` → `train` → `footprint` → `compress` → `codegen`
    (lower, plan, emit, host build) → `generate` → `harness` (devices, protocol client) → `search` → `cli`; a stage
    imports only from stages before it."""
    import ast

    wrong, seen = [], set()
    for path in sorted((ROOT / "tinyeff").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        me = _stage(".".join(rel.parts))
        if me is None:
            continue
        seen.add(me)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(rel.parts[:len(rel.parts) - node.level]) if node.level else ""
                names = [".".join(p for p in (base, node.module or "") if p)]
                if _stage(names[0]) is None:  # from tinyeff import harness: the names may be modules
                    names += [f"{names[0]}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                other = _stage(name)
                if other and STAGES.index(other) > STAGES.index(me):
                    wrong.append(f"{rel} ({me}) imports {name} ({other})")
    assert seen == set(STAGES)
    assert not wrong, "\n".join(wrong)


def test_the_tests_run_the_real_parts_and_mark_what_is_slow():
    """"`tests/` (pytest: the real TensorFlow, LiteRT and host TFLM on small data, no mocks; a test that
    trains for minutes is marked `slow`, which `make test-fast` leaves out)": no test module imports a
    mocking library, and the marker and the make target are there (test_make_targets runs the target)."""
    import ast

    mocking = {"unittest.mock", "mock", "pytest_mock"}
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name} imports {n}" for n in names if n in mocking]
    assert not found, found
    assert "slow: " in (ROOT / "pyproject.toml").read_text() and "-m \"not slow\"" in (ROOT / "Makefile").read_text()


def test_the_claims_table_cites_tests_that_exist_and_its_tally_is_counted_from_its_rows():
    """docs/README_CLAIMS.md "maps every claim and figure of this README to the test or benchmark that
    holds it": every test it cites by name is a test of that file (a renamed test leaves no stale
    row), and its tally is what scripts/claims_tally.py counts from the rows (a hand-kept tally had
    drifted by eight rows)."""
    import ast
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("claims_tally", ROOT / "scripts" / "claims_tally.py")
    tally = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tally  # its dataclass looks its module up there
    spec.loader.exec_module(tally)
    text = tally.CLAIMS.read_text()
    rows = tally.claims(text)
    assert len(rows) > 250
    assert tally.written_tally(text) == tally.tally(rows), "run scripts/claims_tally.py --write"
    defined: dict[str, set[str]] = {}
    missing = []
    for path, name in {m for r in rows for m in re.findall(r"(tests/[\w/]+\.py)::(\w+)", r.proved_by)}:
        if path not in defined:
            tree = ast.parse((ROOT / path).read_text()) if (ROOT / path).exists() else ast.Module(body=[], type_ignores=[])
            defined[path] = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if name not in defined[path]:
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/README_CLAIMS.md cites tests that do not exist: {sorted(missing)}"
