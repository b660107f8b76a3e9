"""Shared fixtures: the third-party KWS model and one tiny trained run, made once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tinyeff.cli import main

KWS_MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "kws_ref_model.tflite"


@pytest.fixture(scope="session")
def kws_model() -> Path:
    if not KWS_MODEL.exists():
        reason = f"the MLPerf Tiny KWS reference model is not at {KWS_MODEL} (it ships in shared/models)"
        if os.environ.get("CI"):  # CI always has shared/ beside the clone: a missing model is a failure there
            pytest.fail(reason)
        pytest.skip(reason)
    return KWS_MODEL


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A trained DS-CNN run small enough to make in about ten seconds."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    rc = main(["train", "dscnn", "--data", "digits", "--out", str(out), "--width", "24", "--depth", "2",
               "--epochs", "60", "--quiet"])
    assert rc == 0
    return out


pytest_plugins = ["pytester"]  # test_pytest_plugin runs user test files through pytest itself
