"""Issue 2's text acceptance run: a projection model on the intents voice commands, trained and
then shrunk under 16 KiB of flash and 8 KiB of RAM, scored on sentences from templates it never
saw (about two minutes)."""

from __future__ import annotations

import json

import pytest

from tinyeff.cli import main
from tinyeff.compress.quantize import int8_accuracy
from tinyeff.footprint import host_tflm_arena
from tinyeff.train import Run, features_of

KIB = 1024


@pytest.mark.slow
def test_projection_on_unseen_intent_templates_fits_16_and_8_kib(tmp_path):
    run, small = tmp_path / "run", tmp_path / "small"
    assert main(["train", "projection", "--data", "intents", "--out", str(run), "--quiet"]) == 0
    assert main(["shrink", str(run), "--flash-kib", "16", "--ram-kib", "8", "--no-compare-plain",
                 "--out", str(small), "--quiet"]) == 0
    r = Run.load(small)
    assert r.data.n_classes >= 10
    model = (small / "model.int8.tflite").read_bytes()
    # measured here, independently of the kit's report: size, host TFLM arena, int8 test accuracy
    assert len(model) <= 16 * KIB and host_tflm_arena(model, "chosen").total <= 8 * KIB
    accuracy = int8_accuracy(model, features_of(r.spec, r.data.x_test), r.data.y_test)
    assert accuracy >= 0.95
    metrics = json.loads((small / "metrics.json").read_text())
    assert abs(metrics["int8_accuracy"] - accuracy) < 1e-9
    assert metrics["float_accuracy"] - accuracy <= 0.01  # int8 within a point of float
