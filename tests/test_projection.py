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


def test_a_token_row_sums_every_n_gram_length_from_the_shortest_to_the_longest():
    """min_ngram=2, ngram=4 on "on": ^on$ has the 2-grams ^o on n$, the 3-grams ^on on$ and the
    4-gram ^on$, each hashed once with the token itself; a token shorter than every length is
    summed whole, and min_ngram equal to ngram is the single-length projection."""
    from tinyeff.models.projection_features import token_row

    cfg = ProjectionConfig(features=48, max_tokens=2, ngram=4, min_ngram=2)
    grams = [b"^o", b"on", b"n$", b"^on", b"on$", b"^on$"]
    want = ternary(b"\x01on", 48) + sum(ternary(b"\x02" + g, 48) for g in grams)
    assert np.array_equal(token_row(b"on", cfg), np.clip(want, -127, 127))
    short = ProjectionConfig(features=48, max_tokens=2, ngram=5, min_ngram=4)  # ^a$ is 3 bytes
    assert np.array_equal(token_row(b"a", short), ternary(b"\x01a", 48) + ternary(b"\x02^a$", 48))
    assert ProjectionConfig(ngram=3, min_ngram=3) == ProjectionConfig(ngram=3)
    assert ProjectionConfig(ngram=4, min_ngram=2).describe() == "64 features x 16 tokens, 2-4-grams"


def test_word_pairs_add_each_token_with_the_one_before_to_its_row():
    """With word_pairs, "turn off" and "off turn" have the same tokens but other rows: the second
    row sums the hash of the pair (previous token, space, token); the first row has no pair, and the
    pair is taken among the first max_tokens tokens only."""
    from tinyeff.models.projection_features import token_row

    cfg = ProjectionConfig(features=48, max_tokens=2, ngram=3, word_pairs=True)
    plain = ProjectionConfig(features=48, max_tokens=2, ngram=3)
    x = project(["turn off", "off turn", "turn off now"], cfg)
    assert np.array_equal(x[0, 0, 0], token_row(b"turn", plain))
    want = np.clip(ternary(b"\x01off", 48) + sum(ternary(b"\x02" + g, 48) for g in (b"^of", b"off", b"ff$"))
                   + ternary(b"\x03turn off", 48), -127, 127)
    assert np.array_equal(x[0, 0, 1], want) and np.array_equal(token_row(b"off", cfg, b"turn"), want)
    assert not np.array_equal(x[0].sum(axis=1), x[1].sum(axis=1))  # word order now shows in the pooled rows
    assert np.array_equal(x[2], x[0])  # "now" is past max_tokens
    assert np.array_equal(project(["turn off"], plain)[0, 0, 1], token_row(b"off", plain))
    assert cfg.describe() == "48 features x 2 tokens, 3-grams + word pairs"


def test_a_projection_config_outside_what_the_c_window_holds_is_refused():
    import pytest

    from tinyeff.errors import TinyeffError

    for bad in ({"ngram": 9}, {"ngram": 0}, {"ngram": 3, "min_ngram": 4}):
        with pytest.raises(TinyeffError, match="n-grams of 1 to 8 bytes"):
            ProjectionConfig(**bad)
