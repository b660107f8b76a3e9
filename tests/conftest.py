"""Shared fixtures: the third-party KWS model, a model of its topology the kit makes, and one tiny
trained run, made once per session."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from offline import forbid_remote_connections
from shared_models import SHARED_MODELS
from tinyeff.cli import main

forbid_remote_connections()  # for the whole session, including what a fixture makes (tests/offline.py)


KWS_MODEL = SHARED_MODELS / "kws_ref_model.tflite"


def pytest_collection_modifyitems(config, items):
    """Under mutation testing (TINYEFF_MUTATION_STATS: mutmut's stats of the unmutated code), a test is
    given four times its own duration there, 30 s at least, before it counts as hung. A mutant that leaves
    the bench waiting on a sample that never comes would otherwise hold a worker for the whole --timeout
    (180 s, sized for the slowest test), and such mutants are common where devices share a queue."""
    stats = os.environ.get("TINYEFF_MUTATION_STATS")
    if not stats or not Path(stats).is_file():  # absent during mutmut's own stats run
        return
    durations = json.loads(Path(stats).read_text())["duration_by_test"]
    for item in items:
        if item.nodeid in durations:
            item.add_marker(pytest.mark.timeout(max(30.0, 4 * durations[item.nodeid])))


def _cached(name: str, make) -> Path:
    """MAKE() once per machine when TINYEFF_TEST_CACHE names a directory, else once per session.

    Mutation testing runs a fresh pytest per mutant; retraining the session's models in each would
    cost more than the tests. The cache is only for that: the models come from unmutated code, so a
    mutant the fixtures alone would expose survives there, which can only lower the score."""
    cache = os.environ.get("TINYEFF_TEST_CACHE")
    if not cache:
        return make()
    stored = Path(cache) / name
    if not stored.exists():
        made = make()
        partial = stored.with_name(name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        (shutil.copytree if made.is_dir() else shutil.copy2)(made, partial / made.name)
        partial.rename(stored)
    return next(stored.iterdir())


@pytest.fixture(scope="session")
def kws_model() -> Path:
    if not KWS_MODEL.exists():
        reason = f"the MLPerf Tiny KWS reference model is not at {KWS_MODEL} (it ships in shared/models)"
        if os.environ.get("CI"):  # CI always has shared/ beside the clone: a missing model is a failure there
            pytest.fail(reason)
        pytest.skip(reason)
    return KWS_MODEL


@pytest.fixture(scope="session")
def kws_like_model(tmp_path_factory) -> Path:
    return _cached("kws_like_model", lambda: _make_kws_like_model(tmp_path_factory))


def _make_kws_like_model(tmp_path_factory) -> Path:
    """A model of the KWS reference's topology that the kit makes itself (seeded random weights, full
    int8), so that a clone without shared/ still runs the KWS-shaped tests: a 10x4 stride-2 stem conv
    on 49x10x1, four depthwise-separable blocks of 64 channels, average pooling, dense 12, softmax."""
    import numpy as np

    from tinyeff._native import seed_everything, tensorflow
    from tinyeff.compress.quantize import keras_to_int8

    keras = tensorflow().keras
    L, init = keras.layers, keras.initializers
    seed_everything(0)
    # He-scaled weights keep the signal alive through nine layers (Keras's glorot default counts a
    # depthwise filter's 64 channels as its fan-in and shrinks the signal ~5x a block); random biases
    # try rounding paths zero biases leave alone
    conv = {"kernel_initializer": "he_normal", "bias_initializer": init.RandomNormal(0, 0.1, seed=1)}
    depthwise = {"depthwise_initializer": init.RandomNormal(0, (2 / 9) ** 0.5, seed=2), "bias_initializer": conv["bias_initializer"]}
    x = keras.Input((49, 10, 1), batch_size=1)
    y = L.Conv2D(64, (10, 4), strides=2, padding="same", activation="relu", **conv)(x)
    for _ in range(4):
        y = L.DepthwiseConv2D(3, padding="same", activation="relu", **depthwise)(y)
        y = L.Conv2D(64, 1, activation="relu", **conv)(y)
    features = L.Flatten()(L.AveragePooling2D(pool_size=tuple(y.shape[1:3]))(y))
    dense = L.Dense(12, kernel_initializer="he_normal")
    model = keras.Model(x, L.Softmax()(dense(features)))
    # inputs of several spreads, as the bit-exactness tests send (quiet, loud, saturating)
    rng = np.random.default_rng(0)
    rep = (rng.normal(0, 1, (96, 49, 10, 1)) * rng.choice([0.1, 0.3, 1.0, 2.0], (96, 1, 1, 1))).astype(np.float32)
    # Untrained, the mean feature vector alone would pick one class for every input: centre the
    # logits on the representative set and spread them, so that different inputs win different classes.
    f = keras.Model(x, features).predict(rep, verbose=0)
    w, _ = dense.get_weights()
    logits = (f - f.mean(axis=0)) @ w
    w = w * (3 / logits.std())
    dense.set_weights([w, -(f.mean(axis=0) @ w)])
    path = tmp_path_factory.mktemp("kws_like") / "kws_like_model.tflite"
    path.write_bytes(keras_to_int8(model, rep))
    return path


@pytest.fixture(scope="session", params=["kws_model", "kws_like_model"])
def kws_shaped_model(request) -> Path:
    """Each KWS-shaped model in turn: the MLPerf Tiny reference (skipped without shared/, a failure
    under CI), then the kit's own model of its topology (always there)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def machine_cached():
    """_cached for a test module's own fixtures: what a module makes from cached runs with code that
    mutation testing does not mutate there (a generated project, its host firmware)."""
    return _cached


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A trained DS-CNN run small enough to make in about ten seconds."""
    return _cached("tiny_run", lambda: _make_tiny_run(tmp_path_factory))


def _make_tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    rc = main(["train", "dscnn", "--data", "digits", "--out", str(out), "--width", "24", "--depth", "2",
               "--epochs", "60", "--quiet"])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def tiny_kws_run(tmp_path_factory) -> Path:
    """A keyword run on the integer audio front end (keywords spoken by espeak-ng, 8 clips a class, a few
    epochs), made as a user makes one, in about twenty seconds: for the raw-audio and stream paths of
    the harness, where what counts is that device and host agree, not the model's accuracy."""
    return _cached("tiny_kws_run", lambda: _make_tiny_kws_run(tmp_path_factory))


def _make_tiny_kws_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    assert main(["data", "tts", "--keywords", "yes,no", "--clips", "8", "--unknown", "4", "--out", str(root / "kws-data"),
                 "--quiet"]) == 0
    assert main(["train", "dscnn", "--data", str(root / "kws-data"), "--audio-frontend", "fixed", "--width", "8",
                 "--depth", "1", "--epochs", "5", "--out", str(root / "tiny-kws"), "--quiet"]) == 0
    return root / "tiny-kws"


@pytest.fixture(scope="session")
def tiny_text_run(tmp_path_factory) -> Path:
    """A projection run on the intents sentences, one narrow epoch (a few seconds): for the raw-text
    paths of the harness, where what counts is what goes to the device, not the model's accuracy."""
    return _cached("tiny_text_run", lambda: _make_tiny_text_run(tmp_path_factory))


def _make_tiny_text_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny-text"
    assert main(["train", "projection", "--data", "intents", "--width", "8", "--depth", "1", "--epochs", "1",
                 "--qat", "off", "--out", str(out), "--quiet"]) == 0
    return out


pytest_plugins = ["pytester"]  # test_pytest_plugin runs user test files through pytest itself

