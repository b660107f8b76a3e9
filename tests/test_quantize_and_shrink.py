import json

import numpy as np
from pathlib import Path

import pytest

from tinyeff.cli import main
from tinyeff.compress.quantize import int8_accuracy, quantize_input, run_int8
from tinyeff.compress.report import pareto_front
from tinyeff.compress.shrink import Budget, Candidate
from tinyeff.errors import TinyeffError
from tinyeff.footprint import ArenaUse, Footprint, load_model_file, require_quantized
from tinyeff.train import Run, evaluate, features_of


def test_train_leaves_a_complete_run_with_full_int8_model(tiny_run):
    for f in ("config.json", "model.keras", "split.npz", "metrics.json", "model.int8.tflite"):
        assert (tiny_run / f).is_file()
    data, info = load_model_file(tiny_run / "model.int8.tflite")
    require_quantized(info)
    # static export: one op per layer, no SHAPE/STRIDED_SLICE/PACK from a dynamic batch
    assert set(info.op_names) <= {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"}
    assert not any(t.name for t in info.tensors)  # strings stripped
    m = json.loads((tiny_run / "metrics.json").read_text())
    assert m["footprint"]["flash_bytes"] == len(data)
    assert abs(m["float_accuracy"] - m["int8_accuracy"]) <= 0.01 + 1e-9
    assert m["int8_accuracy"] > 0.8


def test_int8_accuracy_matches_float_and_litert(tiny_run):
    run = Run.load(tiny_run)
    data = (tiny_run / "model.int8.tflite").read_bytes()
    x = features_of(run.spec, run.data.x_test)
    fa = evaluate(run.keras_model(), x, run.data.y_test)
    ia = int8_accuracy(data, x, run.data.y_test)
    assert abs(fa - ia) <= 0.01 + 1e-9
    _, info = load_model_file(tiny_run / "model.int8.tflite")
    q = quantize_input(x[:3], info.input().scales[0], info.input().zero_points[0])
    out = run_int8(data, q)
    assert out.dtype == np.int8 and out.shape == (3, run.spec.n_classes)


def test_quantize_command_prints_float_and_int8_side_by_side(tiny_run, tmp_path, capsys):
    out = tmp_path / "again.tflite"
    assert main(["quantize", str(tiny_run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "float" in text and "int8" in text and "drop" in text and out.is_file()


def test_shrink_to_a_budget_writes_a_fitting_model_and_report(tiny_run, tmp_path):
    start = json.loads((tiny_run / "metrics.json").read_text())["footprint"]
    budget_flash = int(start["flash_bytes"] * 0.85)
    out = tmp_path / "small"
    assert main(["shrink", str(tiny_run), "--flash-kib", str(budget_flash / 1024), "--out", str(out), "--quiet"]) == 0
    data, info = load_model_file(out / "model.int8.tflite")
    assert len(data) <= budget_flash
    summary = json.loads((out / "candidates.json").read_text())
    chosen = [c for c in summary["candidates"] if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["fits"] and chosen[0]["flash_bytes"] == len(data)
    assert {"distilled", "plain", "trained"} <= {c["method"] for c in summary["candidates"]}
    assert summary["distillation_vs_plain"]["steps"] >= 1
    assert (out / "pareto.png").stat().st_size > 10_000 and (out / "candidates.csv").is_file()
    # the shrunk directory is itself a run that later stages can load
    assert Run.load(out).spec.widths == tuple(chosen[0]["widths"])


def test_impossible_budget_says_what_was_reached_and_writes_nothing(tiny_run, tmp_path, capsys):
    out = tmp_path / "never"
    rc = main(["shrink", str(tiny_run), "--flash-kib", "0.5", "--ram-kib", "0.5", "--out", str(out), "--quiet",
               "--no-compare-plain", "--step-fraction", "0.5"])
    err = capsys.readouterr().err
    assert rc == 2 and "no candidate fits" in err and "the smallest reached" in err and "KiB flash" in err
    assert not out.exists() and not list(tmp_path.glob(".never*"))


def _cand(name, acc, flash, ram):
    fp = Footprint(flash, ArenaUse(ram, ram, 0), 0)
    return Candidate(step=int(name[-1]), method="distilled", widths=(1,), float_accuracy=acc, int8_accuracy=acc,
                     int8_val_accuracy=acc, int8_val_loss=0.1, footprint=fp, fits=True)


def test_pareto_front():
    cands = (_cand("s0", 0.99, 100, 100), _cand("s1", 0.98, 50, 60), _cand("s2", 0.97, 60, 70), _cand("s3", 0.90, 40, 80))
    names = {c.name for c in cands}
    front = pareto_front(cands)
    assert front == names - {"step02-distilled"}


def test_budget_rules():
    with pytest.raises(TinyeffError, match="no budget given"):
        Budget(None, None)
    with pytest.raises(TinyeffError, match="must be positive"):
        Budget(-1, None)
    b = Budget(1000, None)
    assert b.fits(Footprint(1000, ArenaUse(10**6, 0, 0), 0)) and not b.fits(Footprint(1001, ArenaUse(1, 0, 0), 0))


def test_the_seeded_pipeline_gives_the_same_bytes_in_two_processes_and_twice_in_one(tmp_path):
    """What the README promises a user who runs the same commands twice: train, then shrink to a
    budget (pruning steps, fine-tuning, full-int8), each in a fresh `tinyeff` process. Seeds cover
    the initial weights and the data order; op determinism covers the threaded reductions. The
    second pipeline runs in one process and shrinks twice there: each pruned model is built after
    seeding (its dropout layer draws a seed when built), so a shrink repeats within a process too."""
    import subprocess
    import sys

    # the command pip installed beside this interpreter (make test runs .venv/bin/python without .venv/bin on PATH)
    tinyeff = Path(sys.executable).with_name("tinyeff")
    assert tinyeff.exists(), f"no tinyeff command beside {sys.executable} (pip install -e . puts it there)"

    def commands(out: Path, small: str = "small") -> list[list[str]]:
        return [["train", "dscnn", "--data", "digits", "--width", "12", "--depth", "1", "--epochs", "4",
                 "--out", str(out / "run"), "--quiet"],
                ["shrink", str(out / "run"), "--flash-kib", "3.8", "--ram-kib", "3.2", "--step-fraction", "0.3",
                 "--no-compare-plain", "--qat", "off", "--out", str(out / small), "--quiet"]]

    a, b = tmp_path / "a", tmp_path / "b"
    for argv in commands(a):
        r = subprocess.run([tinyeff, *argv], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"tinyeff {argv[0]} failed:\n{r.stderr[-2000:]}"
    in_one = [*commands(b), commands(b, "small-again")[1]]
    script = f"from tinyeff.cli import main\nfor argv in {in_one!r}:\n    assert main(argv) == 0, argv\n"
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"the pipeline in one process failed:\n{r.stderr[-2000:]}"
    first = (a / "small" / "model.int8.tflite").read_bytes()
    assert (b / "small" / "model.int8.tflite").read_bytes() == first
    assert (b / "small-again" / "model.int8.tflite").read_bytes() == first


def test_a_board_preset_is_the_budget_and_an_explicit_one_tightens_it():
    import argparse

    from tinyeff import tflm
    from tinyeff.boards import get_board
    from tinyeff.cli.model import _budget

    pico = get_board("rpi-pico")
    b = _budget(argparse.Namespace(flash_kib=None, ram_kib=None, board="rpi-pico"))
    assert (b.flash_bytes, b.ram_bytes) == (pico.model_flash_bytes, pico.model_ram_bytes - tflm.ARENA_MARGIN_BYTES)
    b = _budget(argparse.Namespace(flash_kib=12, ram_kib=None, board="rpi-pico"))
    assert (b.flash_bytes, b.ram_bytes) == (12 * 1024, pico.model_ram_bytes - tflm.ARENA_MARGIN_BYTES)
    with pytest.raises(TinyeffError, match="unknown board"):
        _budget(argparse.Namespace(flash_kib=None, ram_kib=None, board="rpi-pica"))


def test_quantization_aware_fine_tuning_keeps_the_architecture_and_says_so(tiny_run, tmp_path, capsys):
    from tinyeff.compress.qat import qat_model
    from tinyeff.footprint import read_model

    run = Run.load(tiny_run)
    fq = qat_model(run.spec, run.keras_model())
    taps = [l.name for l in fq.layers if l.name.startswith("fq_")]
    relus = [l.name for l in fq.layers if l.name.endswith("_relu") and not l.name.startswith("fq_")]
    assert taps == ["fq_input", *(f"fq_{n}" for n in relus), "fq_pool", "fq_logits"]
    # one training-mode pass sets each range from the batch; the fake-quantized logits then stay
    # within a quantization step or so of the float model's
    x = features_of(run.spec, run.data.x_test[:200])
    fq(x, training=True)
    want = run.keras_model()(x, training=False).numpy()
    step = (fq.get_layer("fq_logits").hi.numpy() - fq.get_layer("fq_logits").lo.numpy()) / 255
    assert 0 < np.abs(fq(x, training=False).numpy() - want).mean() < 2 * step

    out = tmp_path / "qat.tflite"
    assert main(["quantize", str(tiny_run), "--qat", "always", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "quantization-aware fine-tuning" in text
    before, after = read_model((tiny_run / "model.int8.tflite").read_bytes()), read_model(out.read_bytes())
    assert before.op_names == after.op_names and abs(before.size_bytes - after.size_bytes) < 64


def test_pruning_steps_shrink_as_the_model_nears_its_budget():
    """The README: "big steps while far over budget, smaller as the budget nears" - the share of
    channels a step removes follows the worse of the two pressures, between the two configured bounds."""
    from tinyeff.compress.prune import Pressure
    from tinyeff.compress.shrink import ShrinkConfig, _step_fraction

    cfg = ShrinkConfig()
    assert _step_fraction(cfg, Pressure(flash=3.0, ram=0.0)) == cfg.step_fraction  # far over: the largest step
    assert _step_fraction(cfg, Pressure(flash=0.0, ram=0.0)) == cfg.min_step_fraction  # fits (steps after fit)
    assert _step_fraction(cfg, Pressure(flash=-0.5, ram=-0.1)) == cfg.min_step_fraction
    assert _step_fraction(cfg, Pressure(flash=0.02, ram=0.0)) == cfg.min_step_fraction  # 1 % over: the smallest
    assert _step_fraction(cfg, Pressure(flash=0.1, ram=0.2)) == pytest.approx(0.1)  # the worse budget, halved
    steps = [_step_fraction(cfg, Pressure(flash=over, ram=0.0)) for over in np.linspace(1.0, 0.0, 21)]
    assert steps == sorted(steps, reverse=True) and steps[0] > steps[-1]
