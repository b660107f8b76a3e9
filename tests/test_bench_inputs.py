"""`tinyeff bench --data` with inputs that cannot feed the model: one sentence on stderr that says what
to give instead, exit code 2, before any device starts and without a report half-written."""

from __future__ import annotations

import numpy as np
import pytest

from tinyeff.cli import main


@pytest.fixture(scope="module")
def kws_project(kws_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-inputs") / "fw"
    assert main(["generate", str(kws_model), "--board", "qemu-mps2-an386", "--out", str(out)]) == 0
    return out


def _kws_inputs(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(-128, 128, (n, 49, 10, 1), dtype=np.int8)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _cut(path):
    path.write_bytes(path.read_bytes()[:1000])
    return path


CASES = {
    "not an npz": (lambda d: (d / "x.npz").write_bytes(b"PK\x03\x04 not a zip") and d / "x.npz",
                   "cannot read '{data}' as an .npz file"),
    "cut npz": (lambda d: _cut(_npz(d / "c.npz", x=_kws_inputs(40))), "cannot read '{data}' as an .npz file"),
    "float samples": (lambda d: _npz(d / "f.npz", x=_kws_inputs(4).astype(np.float32)),
                      "'{data}' input 'input_1' is float32 [49, 10, 1] per sample; the model takes int8 [49, 10, 1]: quantize it first"),
    "wrong shape": (lambda d: _npz(d / "s.npz", x=_kws_inputs(4)[:, :48]),
                    "is int8 [48, 10, 1] per sample; the model takes int8 [49, 10, 1]"),
    "labels short": (lambda d: _npz(d / "l.npz", x=_kws_inputs(4), labels=np.zeros(3, int)),
                     "'{data}' has 3 labels for 4 samples; give one label per sample"),
    "text dataset": (lambda d: "intents", "'intents' is text, which must be projected as the model was trained"),
    "image dataset": (lambda d: "digits",
                      "the samples of 'digits' have shape [8, 8, 1] but the model takes [49, 10, 1]; bench with the data"),
}


@pytest.mark.parametrize("case", CASES)
def test_inputs_that_cannot_feed_the_model_are_refused_before_a_device_starts(case, kws_project, tmp_path, capsys):
    make, message = CASES[case]
    data = str(make(tmp_path))
    report = tmp_path / "bench.json"
    assert main(["bench", str(kws_project), "--data", data, "--json", str(report)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyeff: error: ") and "\n" not in err and "Traceback" not in err, err
    assert message.format(data=data) in err, err
    assert not report.exists()
