"""The text projection in C (firmware/frontend) against the Python that trains the models."""

from __future__ import annotations

import ctypes
import random
import subprocess

import numpy as np
import pytest

from tinyeff.compress.quantize import quantize_input
from tinyeff.models.projection_features import ProjectionConfig, project
from tinyeff.resources import resource_dir


class CConfig(ctypes.Structure):
    _fields_ = [("features", ctypes.c_int32), ("max_tokens", ctypes.c_int32), ("ngram", ctypes.c_int32),
                ("min_ngram", ctypes.c_int32), ("word_pairs", ctypes.c_int32)]

    @classmethod
    def of(cls, cfg: ProjectionConfig) -> "CConfig":
        return cls(cfg.features, cfg.max_tokens, cfg.ngram, cfg.min_ngram, int(cfg.word_pairs))


@pytest.fixture(scope="module")
def c_projection(tmp_path_factory):
    src = resource_dir("firmware") / "frontend"
    lib = tmp_path_factory.mktemp("projection") / "libte_projection.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", f"-I{src}",
                    str(src / "te_projection.c"), "-o", str(lib)], check=True, capture_output=True)
    return ctypes.CDLL(str(lib))


def _c_project(lib, text: str, cfg: ProjectionConfig) -> np.ndarray:
    data = text.encode("utf-8")
    out = np.zeros(cfg.max_tokens * cfg.features, np.int16)
    lib.te_project(ctypes.byref(CConfig.of(cfg)), data, ctypes.c_size_t(len(data)),
                   out.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)))
    return out


def _texts() -> list[str]:
    from tinyeff.data import load_dataset

    rng = random.Random(0)
    intents = load_dataset("intents")
    texts = [str(t) for t in intents.x_test[:300]] + [str(t) for t in intents.x_train[:300]]
    alphabet = "abcXYZ09' .,!?-_/äöüßé€日本\t\n"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 90))) for _ in range(300)]
    texts += ["", "   ", "a", "I'm", "x" * 200, "turn ON the KITCHEN lights, please!!!", "one two three " * 10]
    return texts


CONFIGS = [ProjectionConfig(), ProjectionConfig(features=40, max_tokens=5, ngram=2),
           ProjectionConfig(features=17, max_tokens=3, ngram=5), ProjectionConfig(features=16, max_tokens=8, ngram=1),
           # several n-gram lengths summed: what a search may choose, and every length the C window holds
           ProjectionConfig(features=64, max_tokens=12, ngram=4, min_ngram=2),
           ProjectionConfig(features=33, max_tokens=6, ngram=8, min_ngram=1),
           # word pairs: a row also sums its token's pair with the one before (the first row does not)
           ProjectionConfig(features=48, max_tokens=7, ngram=4, min_ngram=2, word_pairs=True),
           ProjectionConfig(features=20, max_tokens=2, ngram=3, word_pairs=True)]


def _id(c: ProjectionConfig) -> str:
    return f"f{c.features}_t{c.max_tokens}_n{c.min_ngram or c.ngram}-{c.ngram}" + ("_pairs" if c.word_pairs else "")


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_c_projection_is_bit_exact_with_python(c_projection, cfg):
    texts = _texts()
    want = project(texts, cfg).reshape(len(texts), -1).astype(np.int16)
    got = np.stack([_c_project(c_projection, t, cfg) for t in texts])
    assert np.abs(want).max() > 1  # n-grams add up: the rows are not trivially ternary
    bad = [texts[i] for i in np.flatnonzero((want != got).any(axis=1))]
    assert not bad, f"{len(bad)} texts differ, e.g. {bad[:3]}"


@pytest.mark.parametrize("scale, zero_point", [(0.0588235, -9), (1.0, 0), (2.0, 1), (4.0, 0), (0.3, -128), (2.5, 17)])  # 2 and 4: exact ties
def test_c_quantization_of_the_projection_matches_the_host(c_projection, scale, zero_point):
    cfg = ProjectionConfig()
    texts = _texts()[:200]
    values = project(texts, cfg)
    want = quantize_input(values, np.float32(scale), zero_point).reshape(len(texts), -1)
    got = np.zeros_like(want)
    flat = values.reshape(len(texts), -1).astype(np.int16)
    for i in range(len(texts)):
        c_projection.te_project_quantize(flat[i].ctypes.data_as(ctypes.POINTER(ctypes.c_int16)), ctypes.c_size_t(flat.shape[1]),
                                         ctypes.c_float(scale), ctypes.c_int32(zero_point),
                                         got[i].ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
    assert np.array_equal(want, got)


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_c_projection_into_int8_one_row_at_a_time_equals_the_host_input(c_projection, cfg):
    """What the firmware's text front end runs (te_project_int8: one int16 row of scratch) against the
    int8 input the host quantizes from the Python projection, with a zero point that makes empty rows
    non-zero bytes."""
    texts = _texts()
    scale, zero_point = np.float32(0.0588235), -9
    want = quantize_input(project(texts, cfg), scale, zero_point).reshape(len(texts), -1)
    got = np.zeros_like(want)
    row = np.zeros(cfg.features, np.int16)
    for i, text in enumerate(texts):
        data = text.encode("utf-8")
        c_projection.te_project_int8(ctypes.byref(CConfig.of(cfg)), data,
                                     ctypes.c_size_t(len(data)), ctypes.c_float(scale), ctypes.c_int32(zero_point),
                                     row.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)),
                                     got[i].ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
    bad = [texts[i] for i in np.flatnonzero((want != got).any(axis=1))]
    assert not bad, f"{len(bad)} texts differ, e.g. {bad[:3]}"


def test_c_utf8_check_agrees_with_python_on_random_and_edge_case_bytes(c_projection):
    rng = random.Random(1)
    pieces = [b"a", b"\xc3\xa4", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80",
              b"\xf4\x90\x80\x80", b"\xf5", b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xdf\xbf", b"\xef\xbf\xbf"]
    cases = [b"", "ümlaut €".encode()] + [b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 8))) for _ in range(3000)]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) for _ in range(3000)]
    c_projection.te_utf8_invalid_at.restype = ctypes.c_size_t
    for data in cases:
        try:
            data.decode("utf-8")
            want = len(data)
        except UnicodeDecodeError as e:
            want = e.start
        assert c_projection.te_utf8_invalid_at(data, ctypes.c_size_t(len(data))) == want, data
