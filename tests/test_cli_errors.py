"""Bad input: one sentence on stderr, exit code 2, nothing half-written."""

import numpy as np

from tinyeff.cli import main


def _one_sentence_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyeff: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_dataset(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "dscnn", "--data", str(tmp_path / "nope.npz"), "--out", str(out)]) == 2
    assert "neither a built-in" in _one_sentence_error(capsys)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_labels_that_do_not_match_inputs(tmp_path, capsys):
    p = tmp_path / "bad.npz"
    np.savez(p, x_train=np.zeros((10, 8, 8)), y_train=np.zeros(7, int), x_test=np.zeros((4, 8, 8)), y_test=np.zeros(4, int))
    assert main(["train", "dscnn", "--data", str(p), "--out", str(tmp_path / "run")]) == 2
    assert "10 train inputs but 7 train labels" in _one_sentence_error(capsys)
    assert not (tmp_path / "run").exists()


def test_wrong_model_family_for_the_data(tmp_path, capsys):
    assert main(["train", "projection", "--data", "digits", "--out", str(tmp_path / "r")]) == 2
    assert "train a 'dscnn' model" in _one_sentence_error(capsys)


def test_existing_output_is_not_overwritten(tiny_run, capsys):
    assert main(["train", "dscnn", "--data", "digits", "--out", str(tiny_run)]) == 2
    assert "already exists" in _one_sentence_error(capsys)


def test_shrink_needs_a_run_and_a_budget(tmp_path, tiny_run, capsys):
    assert main(["shrink", str(tmp_path), "--flash-kib", "4", "--out", str(tmp_path / "s")]) == 2
    assert "not a tinyeff run directory" in _one_sentence_error(capsys)
    assert main(["shrink", str(tiny_run), "--out", str(tmp_path / "s")]) == 2
    assert "no budget given" in _one_sentence_error(capsys)


def test_non_int8_and_truncated_models(tmp_path, kws_model, capsys):
    p = tmp_path / "cut.tflite"
    p.write_bytes(kws_model.read_bytes()[:20000])
    assert main(["inspect", str(p)]) == 2
    assert "truncated or corrupt" in _one_sentence_error(capsys)


def test_a_stream_needs_an_audio_run_and_a_project_with_a_stream(tmp_path, tiny_run, capsys):
    """data recording on a run that is not audio, bench without --data or --stream, --stream on a project
    whose model is not a keyword spotter: one sentence each, and no recording written."""
    rec = tmp_path / "rec.wav"
    assert main(["data", "recording", "--run", str(tiny_run), "--out", str(rec)]) == 2
    assert "is not the run of an audio model" in _one_sentence_error(capsys)
    assert not rec.exists() and not rec.with_suffix(".json").exists()
    project = tmp_path / "fw"
    assert main(["generate", str(tiny_run / "model.int8.tflite"), "--board", "qemu-mps2-an386", "--out", str(project)]) == 0
    capsys.readouterr()
    assert main(["bench", str(project)]) == 2
    assert "bench needs --data" in _one_sentence_error(capsys)
    rec.write_bytes(b"")
    assert main(["bench", str(project), "--stream", str(rec), "--data", "digits"]) == 2
    assert "--stream plays one recording on one device; drop --data" in _one_sentence_error(capsys)
    assert main(["bench", str(project), "--stream", str(rec)]) == 2
    assert "has no keyword stream; generate it with --frontend RUN" in _one_sentence_error(capsys)
