"""The README's main job, `tinyeff demo`, end to end: train, shrink to 12 KiB / 6 KiB, generate,
build, bench in QEMU. This is also issue 2's acceptance run on digits (about three minutes)."""

from __future__ import annotations

import json

import pytest

from tinyeff.cli import main
from tinyeff.compress.quantize import int8_accuracy
from tinyeff.footprint import host_tflm_arena
from tinyeff.train import Run

KIB = 1024


@pytest.mark.slow
@pytest.mark.emulator
def test_demo_runs_end_to_end_and_the_device_matches_the_host(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    model = (tmp_path / "small" / "model.int8.tflite").read_bytes()
    # the chosen model fits the budget, measured here independently of the kit's report
    assert len(model) <= 12 * KIB and host_tflm_arena(model, "chosen").total <= 6 * KIB
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert bench["samples"] == 450 and bench["errors"] == 0
    assert bench["exact_agreement"] == 1.0 and bench["accuracy"] == bench["host_accuracy"]
    # Issue 2's bar is 97.5 %, which the demo meets here run after run (training is
    # deterministic on one machine). Another CPU can round a float differently and end on
    # another model, so CI checks a floor and README quotes what this machine measured.
    assert bench["accuracy"] >= 0.95
    assert "emulated instructions per inference" in out and "minus empty-model firmware" in out
    assert (tmp_path / "tflm-nucleo-l4r5zi" / "platformio.ini").is_file() and "tinyeff flash" in out


@pytest.mark.slow
@pytest.mark.emulator
def test_the_kws_demo_goes_from_raw_audio_to_answer_on_the_device(tmp_path, capsys):
    """`tinyeff demo --kws`: synthetic keywords, the integer front end, benched from 16-bit PCM in QEMU."""
    assert main(["demo", "--kws", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    bench = json.loads((tmp_path / "kws-bench.json").read_text())
    assert bench["raw_input"] == "16-bit PCM" and bench["synthetic_data"].startswith("spoken by espeak-ng")
    assert bench["samples"] == 6 * 40 // 4 and bench["errors"] == 0  # a quarter of 6 classes x 40 clips
    assert bench["exact_agreement"] == 1.0 and bench["accuracy"] == bench["host_accuracy"]
    # the host's side is the run's own int8 accuracy on its test split, measured here
    run = Run.load(tmp_path / "kws-run")
    model = (tmp_path / "kws-run" / "model.int8.tflite").read_bytes()
    assert bench["accuracy"] == int8_accuracy(model, run.data.x_test, run.data.y_test)
    assert all(s["frontend_latency"] > 0 for s in bench["results"]) and bench["frontend_latency_median"] > 0
    assert "in the front end and" in out and "bit-exact" in out
    stream = json.loads((tmp_path / "kws-stream.json").read_text())
    assert stream["exact"] and stream["inferences"] == stream["exact_inferences"] > 0
    assert stream["device_score"] == stream["host_score"] and stream["seconds"] == 10
    assert f"{stream['exact_inferences']} of {stream['inferences']} inferences bit-exact" in out
