"""The text front end a generated project carries (tinyeff/frontend.py): what the host refuses
before anything is sent, and what generate refuses before anything is written. The device side is
tested from raw text in QEMU in test_projection_pipeline.py, and under libFuzzer in test_fuzz.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tinyeff.cli import main
from tinyeff.errors import TinyeffError
from tinyeff.frontend import TextFrontend, text_bytes
from tinyeff.models.projection_features import ProjectionConfig


@pytest.mark.parametrize("text, says", [
    ("", "an empty text has no tokens"),
    ("ä" * 129, "is 258 bytes of UTF-8, and the device's buffer holds 256"),
    ("bad \udcff surrogate", "not valid Unicode at character 4"),
    (b"bytes", "takes strings, not bytes"),
])
def test_texts_the_device_would_refuse_get_one_sentence_on_the_host(text, says):
    with pytest.raises(TinyeffError, match=re.escape(says)):
        text_bytes(text)


def test_the_longest_text_the_buffer_holds_is_taken_as_utf8():
    assert text_bytes("ä" * 128) == "ä".encode() * 128


@pytest.mark.parametrize("scale", [0.0588235296, 1 / 3, 0.1, 2.0 ** -7, 123.456])
def test_the_header_carries_the_input_scale_as_the_very_float32_the_host_divides_by(scale):
    header = TextFrontend(ProjectionConfig(), scale, -9).header("test")
    written = re.search(r"#define TE_INPUT_SCALE (\S+)f", header).group(1)
    assert np.float32(float(written)) == np.float32(scale)
    assert "#define TE_INPUT_ZERO_POINT (-9)" in header


def test_generate_refuses_a_front_end_from_a_run_without_a_projection_and_writes_nothing(tiny_run, tiny_text_run, tmp_path,
                                                                                         capsys):
    out = tmp_path / "project"
    for frontend, says in ((tiny_run, "is not a text projection model"), (tmp_path / "nowhere", "is not a tinyeff run or search directory"),
                           (tiny_text_run, "makes int8 [1, "), (tiny_text_run, "the front end must come from the run the model was trained in")):
        assert main(["generate", str(tiny_run / "model.int8.tflite"), "--board", "qemu-mps2-an386", "--frontend", str(frontend),
                     "--out", str(out)]) != 0
        assert says in capsys.readouterr().err
        assert not out.exists() and list(tmp_path.iterdir()) == []
