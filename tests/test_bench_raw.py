"""bench_raw: the test split of a run before its front end (clips as 16-bit PCM, sentences as UTF-8),
as a project that carries that front end takes it; and the one-sentence refusals when the run given
is not the one the project's front end came from."""

from __future__ import annotations

import dataclasses
import re
import shutil

import numpy as np
import pytest

from tinyeff.data.dataset import Dataset
from tinyeff.errors import TinyeffError
from tinyeff.generate import generate
from tinyeff.harness.bench import Project, bench_inputs, bench_raw
from tinyeff.train import Run

BOARD = "qemu-mps2-an386"


def _project(run, tmp_path_factory, name: str) -> Project:
    out = generate(run / "model.int8.tflite", BOARD, "compiled", tmp_path_factory.mktemp(name) / "project", frontend=run)
    return Project.load(out)


@pytest.fixture(scope="module")
def kws_project(tiny_kws_run, tmp_path_factory) -> Project:
    return _project(tiny_kws_run, tmp_path_factory, "raw-kws")


@pytest.fixture(scope="module")
def text_project(tiny_text_run, tmp_path_factory) -> Project:
    return _project(tiny_text_run, tmp_path_factory, "raw-text")


def _edited_copy(run, tmp_path, change) -> str:
    """A copy of RUN whose saved split is CHANGE(the split)."""
    out = tmp_path / "run"
    shutil.copytree(run, out)
    change(Dataset.load(out / "split.npz")).save(out / "split.npz")
    return str(out)


def test_clips_go_as_little_endian_pcm_in_the_order_of_the_model_inputs(kws_project, tiny_kws_run):
    clips = Run.load(tiny_kws_run).data.raw_test
    raw = bench_raw(str(tiny_kws_run), kws_project)
    assert raw == [clip.astype("<i2").tobytes() for clip in clips] and len(raw) == 8
    (x,), _ = bench_inputs(str(tiny_kws_run), kws_project.model)
    assert len(x) == len(raw)  # one model input per clip, the same samples
    assert bench_raw(str(tiny_kws_run), kws_project, limit=3) == raw[:3]


def test_sentences_go_as_utf8(text_project, tiny_text_run):
    sentences = Run.load(tiny_text_run).data.x_test
    raw = bench_raw(str(tiny_text_run), text_project, limit=5)
    assert raw == [str(s).encode() for s in sentences[:5]] and all(raw)


def _refusal(data: str, project: Project) -> str:
    with pytest.raises(TinyeffError) as e:
        bench_raw(data, project)
    return str(e.value)


def test_data_that_is_not_a_run_is_refused(kws_project, tmp_path):
    assert _refusal(str(tmp_path), kws_project) == (
        f"{kws_project.path} takes raw 16-bit PCM, and '{tmp_path}' is not a run directory; bench it with --data RUN, "
        "the run whose samples and front end the model was trained on")


def test_a_run_whose_front_end_differs_from_the_firmware_s_is_refused(kws_project, tiny_kws_run, tmp_path):
    run = _edited_copy(tiny_kws_run, tmp_path, lambda d: dataclasses.replace(d, frontend=d.frontend | {"fmax_hz": 3800.0}))
    assert _refusal(run, kws_project) == (
        f"the front end of '{run}' differs from the one {kws_project.path} was generated with; bench with the run "
        "given to generate --frontend")


def test_a_run_whose_front_end_cannot_feed_the_model_is_refused_naming_the_model(kws_project, tiny_kws_run, tmp_path):
    run = _edited_copy(tiny_kws_run, tmp_path, lambda d: dataclasses.replace(d, frontend=d.frontend | {"n_mfcc": 13}))
    assert re.match(rf"'the model' takes int8 \[49, 10, 1\], but the audio front end of '{re.escape(run)}' makes "
                    r"int8 \[49, 13, 1\]", _refusal(run, kws_project))


def test_a_run_that_kept_no_raw_clips_is_refused(kws_project, tiny_kws_run, tmp_path):
    run = _edited_copy(tiny_kws_run, tmp_path, lambda d: dataclasses.replace(d, raw_test=None))
    assert _refusal(run, kws_project) == (
        f"the split of '{run}' keeps no raw test samples; train it again with --audio-frontend fixed or micro")
