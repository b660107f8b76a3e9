"""Shared fixtures: a small slice of the digits data and one tiny trained run, made once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyeff.cli import main
from tinyeff.data import load_dataset

KWS_MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "kws_ref_model.tflite"


@pytest.fixture(scope="session")
def kws_model() -> Path:
    if not KWS_MODEL.exists():
        pytest.skip(f"the MLPerf Tiny KWS reference model is not at {KWS_MODEL} (it ships in shared/models)")
    return KWS_MODEL


@pytest.fixture(scope="session")
def small_digits(tmp_path_factory) -> Path:
    """500 train / 200 test digits as a user .npz file."""
    d = load_dataset("digits")
    path = tmp_path_factory.mktemp("data") / "digits_small.npz"
    np.savez(path, x_train=d.x_train[:500], y_train=d.y_train[:500], x_test=d.x_test[:200], y_test=d.y_test[:200])
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A trained DS-CNN run small enough to make in about ten seconds."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    rc = main(["train", "dscnn", "--data", "digits", "--out", str(out), "--width", "12", "--depth", "2",
               "--epochs", "60", "--quiet"])
    assert rc == 0
    return out
