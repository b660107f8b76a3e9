import numpy as np

from tinyeff.models.projection_features import ProjectionConfig, fmix32, fnv1a32, project, ternary, tokenize


def test_fnv1a_and_fmix_known_values():
    # published FNV-1a 32-bit test vectors
    assert fnv1a32(b"") == 0x811C9DC5
    assert fnv1a32(b"a") == 0xE40C292C
    assert fnv1a32(b"foobar") == 0xBF9CF968
    assert fmix32(0) == 0 and fmix32(1) == 0x514E28B7  # MurmurHash3 finalizer


def test_tokenize_lowercases_ascii_and_keeps_utf8():
    assert tokenize("Turn ON the kitchen-light, please!") == [b"turn", b"on", b"the", b"kitchen", b"light", b"please"]
    assert tokenize("what's   Küche") == [b"what's", "küche".encode()]  # only ASCII is lowercased
    assert tokenize("  ") == []


def test_ternary_projection_is_balanced():
    vals = np.concatenate([ternary(f"tok{i}".encode(), 64) for i in range(400)])
    assert set(np.unique(vals)) == {-1, 0, 1}
    frac = [(vals == v).mean() for v in (-1, 0, 1)]
    assert abs(frac[0] - 0.25) < 0.02 and abs(frac[1] - 0.5) < 0.02 and abs(frac[2] - 0.25) < 0.02


def test_project_shape_padding_and_determinism():
    cfg = ProjectionConfig(features=32, max_tokens=4)
    x = project(["turn on the light now please", "hi"], cfg)
    assert x.shape == (2, 1, 4, 32) and x.dtype == np.float32
    assert np.all(x[1, 0, 1:] == 0) and x[1, 0, 0].any()
    assert np.array_equal(x, project(["turn on the light now please", "hi"], cfg))
    assert np.all(x == np.round(x)) and np.abs(x).max() <= 127
