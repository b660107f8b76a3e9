import wave

import numpy as np
import pytest

from tinyeff.data import load_dataset
from tinyeff.data.audio import FrontEnd, dct_matrix, features, mel_filterbank
from tinyeff.data.augment import mixup, shift_and_noise, token_drop_swap
from tinyeff.errors import TinyeffError


def test_digits_split_is_fixed_and_stratified():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.x_train.shape == (1347, 8, 8, 1) and a.x_test.shape == (450, 8, 8, 1)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    per_class = np.bincount(a.y_test) + np.bincount(a.y_train)
    assert np.all(np.abs(np.bincount(a.y_test) - 0.25 * per_class) <= 1)  # 25 % of each class
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0


def test_intents_split_by_template_has_unseen_sentences():
    d = load_dataset("intents", seed=0)
    assert d.kind == "text" and d.n_classes >= 10
    assert len(set(d.x_test) & set(d.x_train)) < 0.05 * len(d.x_test)  # different templates rarely collide
    assert set(np.unique(d.y_test)) == set(range(d.n_classes))
    assert load_dataset("intents", seed=0).x_test.tolist() == d.x_test.tolist()


def test_a_template_that_requires_a_domain_names_a_device_of_that_domain():
    from tinyeff.data.intents import DOMAIN_NAMES, FILLERS

    d = load_dataset("intents", seed=0)
    vacuum = d.labels.index("HassVacuumCleanArea")
    texts = [t for t, y in zip([*d.x_train, *d.x_test], [*d.y_train, *d.y_test]) if y == vacuum]
    others = set(FILLERS["en"]["name"]) - {"robot vacuum"}
    assert not [t for t in texts if any(f" {n} " in f" {t} " for n in others)]
    assert any(any(n in t for n in DOMAIN_NAMES["en"]["vacuum"]) for t in texts)


def test_intents_other_language_and_unknown_language():
    de = load_dataset("intents", lang="de")
    assert de.n_classes >= 10 and de.name == "intents-de"
    with pytest.raises(TinyeffError, match="no language 'xx'"):
        load_dataset("intents", lang="xx")


def test_npz_dataset_and_its_errors(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x_train=np.zeros((6, 5)), y_train=np.array([0, 1, 2, 0, 1, 2]), x_test=np.zeros((3, 5)), y_test=np.array([0, 1, 2]))
    d = load_dataset(str(p))
    assert d.input_shape == (1, 5, 1) and d.n_classes == 3
    np.savez(p, x_train=np.zeros((6, 5)), y_train=np.array([0, 1, 2]), x_test=np.zeros((3, 5)), y_test=np.array([0, 1, 2]))
    with pytest.raises(TinyeffError, match="6 train inputs but 3 train labels"):
        load_dataset(str(p))
    np.savez(p, x_train=np.zeros((6, 5)))
    with pytest.raises(TinyeffError, match="lacks the arrays y_train"):
        load_dataset(str(p))
    with pytest.raises(TinyeffError, match="neither a built-in"):
        load_dataset(str(tmp_path / "missing.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TinyeffError, match="not a readable .npz"):
        load_dataset(str(tmp_path / "junk.npz"))


def test_csv_dataset(tmp_path):
    p = tmp_path / "t.csv"
    rows = ["text,label"] + [f"turn on light {i},on" for i in range(8)] + [f"turn off light {i},off" for i in range(8)]
    p.write_text("\n".join(rows) + "\n")
    d = load_dataset(str(p))
    assert d.kind == "text" and d.labels == ("off", "on") and len(d.x_train) + len(d.x_test) == 16
    p.write_text("sentence,intent\nhi,a\n")
    with pytest.raises(TinyeffError, match="header 'text,label'"):
        load_dataset(str(p))


def _tone(path, freq, rate=16000, seconds=1.0):
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def test_wav_folder_gives_mfcc_features_that_separate_tones(tmp_path):
    for cls, f0 in (("low", 300), ("high", 2500)):
        (tmp_path / cls).mkdir()
        for k in range(4):
            _tone(tmp_path / cls / f"{k}.wav", f0 + 20 * k)
    d = load_dataset(str(tmp_path))
    assert d.kind == "audio" and d.input_shape == (49, 10, 1) and d.labels == ("high", "low")
    assert d.frontend["window_samples"] == 640
    # the per-class mean features of the two tones are far apart relative to within-class spread
    x = np.concatenate([d.x_train, d.x_test])
    y = np.concatenate([d.y_train, d.y_test])
    m0, m1 = x[y == 0].mean(axis=0), x[y == 1].mean(axis=0)
    assert np.abs(m0 - m1).mean() > 5 * max(x[y == 0].std(axis=0).mean(), x[y == 1].std(axis=0).mean())


def test_wav_wrong_rate_is_a_clear_error(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for k in range(2):
            _tone(tmp_path / cls / f"{k}.wav", 440, rate=8000)
    with pytest.raises(TinyeffError, match="8000 Hz but the front end expects 16000 Hz"):
        load_dataset(str(tmp_path))


def test_front_end_pieces():
    fe = FrontEnd()
    fb = mel_filterbank(fe)
    assert fb.shape == (40, 513) and (fb.max(axis=1) > 0.5).all()  # peaks fall between FFT bins
    d = dct_matrix(40, 40)
    np.testing.assert_allclose(d @ d.T, np.eye(40), atol=1e-10)
    assert features(np.zeros(100)).shape == (49, 10)  # short clips are zero-padded
    assert FrontEnd(n_mfcc=0).n_frames == 49 and features(np.zeros(16000), FrontEnd(n_mfcc=0)).shape == (49, 40)


def test_augmentations_keep_shapes_and_are_seeded():
    x = np.random.default_rng(0).random((5, 8, 8, 1)).astype(np.float32)
    a = shift_and_noise(x, np.random.default_rng(1), kind="image")
    b = shift_and_noise(x, np.random.default_rng(1), kind="image")
    assert a.shape == x.shape and np.array_equal(a, b) and not np.array_equal(a, x)
    t = np.zeros((2, 1, 6, 4), np.float32)
    t[:, 0, :4] = np.arange(1, 5)[:, None]
    out = token_drop_swap(t, np.random.default_rng(0), p_drop=0.5, p_swap=0.0)
    kept = out[0, 0, :, 0][out[0, 0, :, 0] > 0]
    assert list(kept) == sorted(kept) and set(kept) <= {1, 2, 3, 4}  # dropped rows close up in order
    xm, ym = mixup(x, np.eye(5, dtype=np.float32), np.random.default_rng(0), 0.4)
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)


def test_intents_know_the_template_of_each_training_sentence_and_keep_them_through_a_saved_split(tmp_path):
    """The search's validation slice holds out whole templates; that needs the template of every
    training sentence, numbered across intents, saved with the split."""
    from tinyeff.data.dataset import Dataset, group_split

    d = load_dataset("intents")
    g = d.train_groups
    assert g is not None and len(g) == len(d.y_train)
    for template in np.unique(g):  # a template belongs to one intent
        assert len(np.unique(d.y_train[g == template])) == 1
    d.save(tmp_path / "split.npz")
    assert np.array_equal(Dataset.load(tmp_path / "split.npz").train_groups, g)

    kept, held = group_split(d.y_train, g, 0.25, seed=0)
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == len(g)
    assert not set(g[kept]) & set(g[held])  # whole templates on one side
    for c in np.unique(d.y_train):  # every intent keeps templates to train on and gives some to validation
        n = len(np.unique(g[d.y_train == c]))
        assert len(np.unique(g[held][d.y_train[held] == c])) == max(1, round(0.25 * n))
    assert np.array_equal(group_split(d.y_train, g, 0.25, seed=0)[1], held)  # seeded


def test_group_split_leaves_a_class_of_one_group_whole_and_a_wrong_group_count_is_refused():
    from tinyeff.data.dataset import Dataset, group_split

    y = np.array([0, 0, 0, 1, 1, 1])
    groups = np.array([5, 5, 5, 7, 8, 8])
    kept, held = group_split(y, groups, 0.5, seed=1)
    assert list(kept[y[kept] == 0]) == [0, 1, 2]
    assert set(groups[held]) in ({7}, {8})
    with pytest.raises(TinyeffError, match="3 training groups for 6 training samples; give one group per sample"):
        Dataset("d", "image", np.zeros((6, 2, 2, 1)), y, np.zeros((2, 2, 2, 1)), np.array([0, 1]), ("a", "b"),
                train_groups=np.array([1, 2, 3]))
