"""`tinyeff data tts`: a synthetic keyword dataset spoken by espeak-ng, in the .wav folder layout the
kit trains on, the same bytes for the same seed, written whole or not at all."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from tinyeff.cli import main
from tinyeff.data import tts
from tinyeff.data.audio import load_wav_folder
from tinyeff.data.tts import SILENCE, UNKNOWN, TtsSettings, resample, synthesize
from tinyeff.errors import TinyeffError

# small enough to make in well under a second: 2 keywords, 4 clips per class, 3 unknown words
SMALL = TtsSettings(("yes", "no"), ("bed", "cat", "tree"), clips_per_class=4)


@pytest.fixture(scope="module")
def espeak() -> None:
    if shutil.which("espeak-ng") is None:
        if os.environ.get("CI"):  # CI installs it: a missing tool there is a broken setup, not a skip
            pytest.fail("espeak-ng is not installed; make setup installs it")
        pytest.skip("espeak-ng is not installed (make setup installs it)")


@pytest.fixture(scope="module")
def small(espeak, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tts") / "small"
    synthesize(SMALL, out)
    return out


def _read(path: Path) -> tuple[tuple, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        return w.getparams(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32768.0


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_sentence(message: str) -> str:
    assert "\n" not in message and message.count("; ") <= 1
    return message


def test_layout_and_wav_format(small):
    assert sorted(p.name for p in small.iterdir()) == sorted(["yes", "no", UNKNOWN, SILENCE, tts.MANIFEST])
    for label in ("yes", "no", UNKNOWN, SILENCE):
        files = sorted((small / label).iterdir())
        assert [f.name for f in files] == ["0000.wav", "0001.wav", "0002.wav", "0003.wav"]
        for f in files:
            params, x = _read(f)
            assert (params.nchannels, params.sampwidth, params.framerate, params.nframes) == (1, 2, 16000, 16000)
            assert np.abs(x).max() < 1.0
    # leaves no temporary sibling behind
    assert [p.name for p in small.parent.iterdir()] == ["small"]


def test_manifest_says_synthetic_and_records_generator_and_settings(small):
    man = json.loads((small / tts.MANIFEST).read_text())
    assert man["synthetic"] is True
    assert man["generator"].startswith("espeak-ng 1.")
    assert man["settings"] == json.loads(json.dumps(dataclasses.asdict(SMALL)))
    assert man["classes"] == {"yes": 4, "no": 4, UNKNOWN: 4, SILENCE: 4}


def test_load_wav_folder_reads_it_with_the_right_classes(small):
    ds = load_wav_folder(small)
    assert ds.kind == "audio" and ds.labels == (SILENCE, UNKNOWN, "no", "yes")
    assert len(ds.y_train) + len(ds.y_test) == 16
    assert sorted(np.bincount(np.concatenate([ds.y_train, ds.y_test]))) == [4, 4, 4, 4]
    assert ds.x_train.shape[1:] == (49, 10, 1)


def test_same_seed_same_bytes_other_seed_other_bytes(small, tmp_path):
    synthesize(SMALL, tmp_path / "again", jobs=1)  # one clip at a time: the thread pool changes no byte
    assert _tree(tmp_path / "again") == _tree(small)
    synthesize(dataclasses.replace(SMALL, seed=1), tmp_path / "seed1")
    other = _tree(tmp_path / "seed1")
    assert other.keys() == _tree(small).keys()
    wavs = [k for k in other if k.endswith(".wav")]
    assert all(other[k] != _tree(small)[k] for k in wavs)


def test_adding_a_keyword_leaves_the_other_classes_as_they_were(small, tmp_path):
    synthesize(dataclasses.replace(SMALL, keywords=("yes", "no", "up")), tmp_path / "more")
    more, before = _tree(tmp_path / "more"), _tree(small)
    assert all(more[k] == v for k, v in before.items() if k.endswith(".wav"))
    assert len([k for k in more if k.startswith("up/")]) == 4


def test_clips_of_one_keyword_differ_in_voice_speed_pitch_and_place(espeak, tmp_path):
    # noise out of the way, so what differs is the speech itself
    clean = dataclasses.replace(SMALL, clips_per_class=6, snr_db=(90.0, 90.0), peak=(0.5, 0.5))
    synthesize(clean, tmp_path / "clean")
    onsets, lengths, spectra = set(), set(), []
    for f in sorted((tmp_path / "clean" / "yes").iterdir()):
        x = _read(f)[1]
        loud = np.flatnonzero(np.abs(x) > 0.05)
        onsets.add(int(loud[0]) // 160)  # to 10 ms
        lengths.add(int(loud[-1] - loud[0]) // 160)
        s = np.abs(np.fft.rfft(x))
        spectra.append(s / np.linalg.norm(s))
    assert len(onsets) == 6 and len(lengths) >= 4
    similarity = np.array(spectra) @ np.array(spectra).T
    assert similarity[~np.eye(6, dtype=bool)].max() < 0.95


def test_silence_clips_are_low_level_noise_only(small):
    lo, hi = SMALL.silence_dbfs
    for f in sorted((small / SILENCE).iterdir()):
        x = _read(f)[1]
        assert lo - 1 < 20 * np.log10(np.sqrt(np.mean(x**2))) < hi + 1
        # noise has no word in it: its level is much the same in every 100 ms
        frames = np.sqrt(np.mean(x.reshape(10, -1) ** 2, axis=1))
        assert frames.max() < 3 * frames.min()


def test_keyword_clips_hold_a_word_louder_than_their_noise(small):
    for f in sorted((small / "yes").iterdir()):
        frames = np.sqrt(np.mean(_read(f)[1].reshape(50, -1) ** 2, axis=1))
        assert frames.max() > 4 * np.median(frames[frames <= np.percentile(frames, 20)])


def test_resampling_is_band_limited():
    t = np.arange(22050) / 22050
    for hz, amplitude in ((1000, 1.0), (7000, 1.0), (9000, 0.0), (10500, 0.0)):
        y = resample(np.sin(2 * np.pi * hz * t), 22050, 16000)
        assert len(y) == 16000
        rms = np.sqrt(np.mean(y[1000:-1000] ** 2)) * np.sqrt(2)  # away from the clip's ends
        assert rms == pytest.approx(amplitude, abs=0.01), hz  # above 8 kHz: removed, not aliased


def test_cli_writes_the_dataset_and_says_it_is_synthetic(espeak, tmp_path, capsys):
    out = tmp_path / "kws"
    assert main(["data", "tts", "--keywords", "up,down", "--out", str(out), "--clips", "3", "--unknown", "2",
                 "--seed", "5", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "synthetic" in lines[0] and "espeak-ng" in lines[0]
    assert [line.split()[0] for line in lines[1:5]] == ["up", "down", UNKNOWN, SILENCE]
    assert lines[-1].startswith("total 12 synthetic clips")
    man = json.loads((out / tts.MANIFEST).read_text())
    assert man["synthetic"] and man["settings"]["unknown_words"] == ["bed", "bird"] and man["settings"]["seed"] == 5
    assert len(list((out / "down").glob("*.wav"))) == 3


def test_cli_errors_are_one_sentence_and_write_nothing(espeak, tmp_path, capsys):
    def error(*argv: str) -> str:
        assert main(["data", "tts", *argv, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("tinyeff: error: ") and "Traceback" not in err
        return _one_sentence(err)

    out = tmp_path / "kws"
    assert "no keywords given" in error("--keywords", " , ", "--out", str(out))
    assert "is not a word" in error("--keywords", "yes,--help", "--out", str(out))
    assert "--unknown 99 is out of range" in error("--keywords", "yes", "--unknown", "99", "--out", str(out))
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert main(["data", "tts", "--keywords", "yes,no", "--clips", "2", "--unknown", "1", "--out", str(out), "--quiet"]) == 0
    before = _tree(out)
    assert "already exists" in error("--keywords", "up", "--clips", "2", "--out", str(out))
    assert _tree(out) == before
    assert main(["data", "tts", "--keywords", "up", "--clips", "2", "--out", str(out), "--force", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(["up", UNKNOWN, SILENCE, tts.MANIFEST])


def test_a_keyword_is_never_also_an_unknown_word(espeak, tmp_path):
    with pytest.raises(TinyeffError, match=r"'cat' is both a keyword and an unknown word; drop it") as e:
        synthesize(dataclasses.replace(SMALL, keywords=("yes", "Cat")), tmp_path / "x")
    _one_sentence(str(e.value))
    # the CLI takes the unknown words from the fixed list, passing over the keywords
    assert "cat" not in tts.unknown_words(5, ("cat",)) and len(tts.unknown_words(5, ("cat",))) == 5


@pytest.mark.parametrize("voice", ["en-xx", "en-us+nosuchvariant"])
def test_an_unknown_voice_is_refused_before_anything_is_written(espeak, tmp_path, voice):
    with pytest.raises(TinyeffError, match=re.escape(f"espeak-ng has no voice '{voice}'; pick one of")) as e:
        synthesize(dataclasses.replace(SMALL, voices=("en-us", voice)), tmp_path / "x")
    _one_sentence(str(e.value))
    assert list(tmp_path.iterdir()) == []


def test_missing_espeak_ng_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without espeak-ng
    assert main(["data", "tts", "--keywords", "yes", "--out", str(tmp_path / "kws"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("tinyeff: error: espeak-ng is not installed; install it with 'apt-get install espeak-ng' "
                   "(make setup does)")
    assert not (tmp_path / "kws").exists()


def test_an_interrupted_run_leaves_nothing_behind(espeak, tmp_path):
    def interrupt_on_the_fifth_clip(done: int, total: int) -> None:
        if done == 5:  # where Ctrl-C lands: the main thread, while the pool makes clips
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(SMALL, tmp_path / "kws", progress=interrupt_on_the_fifth_clip)
    assert list(tmp_path.iterdir()) == []


def test_what_is_trained_and_benched_on_it_says_synthetic(small, tmp_path, capsys):
    """'Label it synthetic in every report': the dataset, its saved split, the training run's output
    and metrics, and what bench reads to label its report (data_synthetic) all say how it was made."""
    from tinyeff.data.dataset import Dataset
    from tinyeff.harness.bench import data_synthetic

    ds = load_wav_folder(small)
    assert re.fullmatch(r"spoken by espeak-ng \d+\.\d+.*", ds.synthetic)
    ds.save(tmp_path / "split.npz")
    assert Dataset.load(tmp_path / "split.npz").synthetic == ds.synthetic
    assert data_synthetic(str(small)) == ds.synthetic
    run = tmp_path / "run"
    assert main(["train", "dscnn", "--data", str(small), "--out", str(run), "--epochs", "1", "--width", "8",
                 "--depth", "1", "--quiet"]) == 0
    assert f"on synthetic data ({ds.synthetic})" in capsys.readouterr().out
    assert json.loads((run / "metrics.json").read_text())["synthetic_data"] == ds.synthetic
    assert data_synthetic(str(run)) == ds.synthetic


def test_recorded_data_is_not_labelled_synthetic(small, tmp_path):
    from tinyeff.data.audio import folder_synthetic

    recorded = tmp_path / "recorded"
    shutil.copytree(small, recorded)
    (recorded / "tinyeff-dataset.json").unlink()
    assert folder_synthetic(recorded) == "" and load_wav_folder(recorded).synthetic == ""
    (recorded / "tinyeff-dataset.json").write_text("{not json")
    with pytest.raises(TinyeffError, match="is not readable JSON"):
        folder_synthetic(recorded)
