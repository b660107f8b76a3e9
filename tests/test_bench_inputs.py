"""`tinyeff bench --data` with inputs that cannot feed the model: one sentence on stderr that says what
to give instead, exit code 2, before any device starts and without a report half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinyeff.cli import main
from tinyeff.errors import TinyeffError


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
    "arrays named otherwise": (lambda d: _npz(d / "n.npz", a=_kws_inputs(4), b=_kws_inputs(4)),
                               "'{data}' has no array for input 'input_1' (it has 'a', 'b'); name each array after the model "
                               "input it feeds"),
    # numpy.load runs no pickle: an object array is refused as unreadable, never unpickled
    "pickled objects": (lambda d: _npz(d / "p.npz", x=np.array([{"a": 1}] * 4, dtype=object)),
                        "cannot read '{data}' as an .npz file"),
    "labels short": (lambda d: _npz(d / "l.npz", x=_kws_inputs(4), labels=np.zeros(3, int)),
                     "'{data}' has 3 labels for 4 samples; give one label per sample"),
    "text dataset": (lambda d: "intents", "'intents' is text, which must be projected as the model was trained; pass the "
                                          "run directory (--data RUN) instead"),
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


def test_one_input_may_come_as_x_and_samples_without_labels_are_unlabelled(kws_model, tmp_path):
    """The .npz forms bench_inputs takes for a one-input model: its array named after the input or 'x',
    with 'labels' (any integer type, read as int64) or without (-1 for every sample); LIMIT keeps the first."""
    from tinyeff.harness.bench import bench_inputs

    model, x = kws_model.read_bytes(), _kws_inputs(5)
    xs, y = bench_inputs(str(_npz(tmp_path / "x.npz", x=x)), model)
    assert len(xs) == 1 and np.array_equal(xs[0], x) and xs[0].dtype == np.int8
    assert y.dtype == np.int64 and y.tolist() == [-1] * 5
    labelled = _npz(tmp_path / "named.npz", input_1=x, labels=np.arange(5, dtype=np.int8))
    xs, y = bench_inputs(str(labelled), model, limit=3)
    assert np.array_equal(xs[0], x[:3]) and y.dtype == np.int64 and y.tolist() == [0, 1, 2]


def test_the_language_given_reaches_the_dataset(kws_model, kws_project, tmp_path, capsys):
    assert main(["bench", str(kws_project), "--data", "intents", "--lang", "xx", "--json", str(tmp_path / "b.json")]) == 2
    assert "has no language 'xx'" in capsys.readouterr().err
    from tinyeff.harness.bench import bench_inputs

    with pytest.raises(TinyeffError, match="^'intents' is text"):  # English unless told: a language intents has
        bench_inputs("intents", kws_model.read_bytes())


def test_a_dataset_is_quantized_for_an_int8_input_only(tmp_path):
    """A model taking int16 (or any type but int8 and float32) gets its inputs as an .npz: tinyeff does
    not quantize a dataset for it."""
    from schema_models import T, unary
    from tinyeff.harness.bench import bench_inputs

    model = unary("RELU", T((1, 8, 8, 1), "INT16", (0.001, 0)), T((1, 8, 8, 1), "INT16", (0.001, 0)))
    with pytest.raises(TinyeffError) as e:
        bench_inputs("digits", model)
    assert str(e.value) == "the model takes int16 input; tinyeff quantizes datasets to int8 only: give the inputs as an .npz file"


def test_the_inputs_digest_is_of_the_bytes_sent_however_the_inputs_are_given(kws_project, tmp_path):
    """A one-input model's samples as one array or as a list of one array are the same bytes sent."""
    from tinyeff.harness.bench import Project, inputs_sha256

    project, x, y = Project.load(kws_project), _kws_inputs(3), np.array([0, 1, -1])
    assert inputs_sha256(project, x, y) == inputs_sha256(project, [x], y)
    assert inputs_sha256(project, x, y) != inputs_sha256(project, x, np.array([0, 1, 2]))  # the labels count too


def test_how_the_data_was_made_is_read_from_a_run_or_a_folder_and_is_empty_otherwise(tiny_kws_run, tmp_path):
    from tinyeff.harness.bench import data_synthetic
    from tinyeff.train import Run

    assert data_synthetic(str(tiny_kws_run)) == Run.load(tiny_kws_run).data.synthetic != ""
    folder = tmp_path / "clips"
    folder.mkdir()
    assert data_synthetic(str(folder)) == ""  # recordings: no generator wrote a manifest
    (folder / "tinyeff-dataset.json").write_text(json.dumps({"synthetic": True, "generator": "espeak-ng"}))
    assert data_synthetic(str(folder)) == "spoken by espeak-ng"
    assert data_synthetic(str(_npz(tmp_path / "x.npz", x=_kws_inputs(1)))) == "" and data_synthetic("digits") == ""
