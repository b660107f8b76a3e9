import numpy as np
import pytest

from tinyeff.compress.prune import Pressure, floors, plan, pruned_copy, saliency
from tinyeff.errors import TinyeffError
from tinyeff.models import ModelSpec, ProjectionConfig, build, dscnn_spec, projection_spec
from tinyeff.train import logits


def test_dscnn_strides_follow_input_size():
    assert dscnn_spec((8, 8, 1), 10).strides == (1, 2, 1, 1)  # digits: downsample in the first block
    assert dscnn_spec((49, 10, 1), 12).strides == (2, 1, 1, 1)  # KWS-like: in the stem only
    assert dscnn_spec((32, 32, 3), 10).strides == (2, 2, 1, 1)


def test_spec_round_trips_through_json():
    s = projection_spec(5, width=8)
    assert ModelSpec.from_json(s.to_json()) == s
    several = projection_spec(5, width=8, cfg=ProjectionConfig(ngram=4, min_ngram=2), pool="avg")
    assert ModelSpec.from_json(several.to_json()) == several
    # a run saved before min_ngram and pool existed loads as the single-length, max-pooled model it was
    old = {k: v for k, v in s.to_json().items() if k != "pool"}
    old["projection"] = {k: v for k, v in old["projection"].items() if k != "min_ngram"}
    assert ModelSpec.from_json(old) == s
    with pytest.raises(TinyeffError, match="unknown model kind"):
        ModelSpec("resnet", (8, 8, 1), 10, (8,), (1,))
    with pytest.raises(TinyeffError, match="unknown pooling 'sum'; choose one of max, avg"):
        projection_spec(5, pool="sum")


def test_keeping_every_channel_reproduces_the_model_exactly():
    spec = dscnn_spec((8, 8, 1), 10, width=8, depth=2)
    m = build(spec)
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype(np.float32)
    same, s2 = pruned_copy(m, spec, {n: np.arange(w) for n, w in zip(spec.prunable, spec.widths)})
    assert s2 == spec
    np.testing.assert_array_equal(logits(m, x), logits(same, x))


def test_a_layer_pruning_does_not_know_is_named():
    import keras

    spec = dscnn_spec((8, 8, 1), 10, width=8, depth=2)
    foreign = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.LayerNormalization(name="ln")])
    with pytest.raises(TypeError, match="^pruning does not know layer type LayerNormalization$"):
        pruned_copy(foreign, spec, {n: np.arange(w) for n, w in zip(spec.prunable, spec.widths)})


def test_pruning_removes_weights_and_respects_floors():
    spec = dscnn_spec((8, 8, 1), 10, width=32, depth=3)
    m = build(spec)
    keep = plan(m, spec, spec, 0.3, Pressure(flash=1.0, ram=0.0))
    small, sspec = pruned_copy(m, spec, keep)
    assert sum(sspec.widths) == round(0.7 * sum(spec.widths))
    assert small.count_params() < m.count_params()
    assert all(w >= f for w, f in zip(sspec.widths, floors(spec)))
    # a removed channel is really gone: the kept channels' filters are the original ones
    k = keep["b1_pw"]
    np.testing.assert_array_equal(small.get_layer("b1_pw").get_weights()[0],
                                  m.get_layer("b1_pw").get_weights()[0][:, :, keep["stem"], :][..., k])
    # pruning to the floors stops
    at_floor = spec.with_widths(floors(spec))
    assert plan(build(at_floor), at_floor, spec, 0.3, Pressure(1.0, 1.0)) is None


def test_allocation_is_per_layer_and_follows_the_budget_that_is_exceeded():
    spec = dscnn_spec((8, 8, 1), 10, width=32, depth=3)
    m = build(spec)
    ram = plan(m, spec, spec, 0.2, Pressure(flash=0.0, ram=1.0))
    flash = plan(m, spec, spec, 0.2, Pressure(flash=1.0, ram=0.0))
    cut_ram = [32 - len(ram[n]) for n in spec.prunable]
    cut_flash = [32 - len(flash[n]) for n in spec.prunable]
    assert len(set(cut_ram)) > 1 and len(set(cut_flash)) > 1  # not one ratio for all layers
    # over the RAM budget the 8x8 stem (the largest activations) loses more than over the flash budget
    assert cut_ram[0] > cut_flash[0]


def test_saliency_is_folded_l1():
    spec = dscnn_spec((8, 8, 1), 10, width=4, depth=1)
    m = build(spec)
    k = m.get_layer("stem").get_weights()[0]
    k[..., 0] = 0.0
    m.get_layer("stem").set_weights([k])
    s = saliency(m, spec)["stem"]
    assert s[0] == 0.0 and (s[1:] > 0).all()
    # the filter's mean absolute weight times |gamma| / sqrt(var + eps) of the batch norm after it
    bn = m.get_layer("stem_bn")
    gamma, beta, mean, var = (np.array(v, np.float32) for v in ([-2.0, 0.5, 1.0, 3.0], [0.0] * 4, [0.0] * 4, [0.25, 1.0, 4.0, 0.0]))
    bn.set_weights([gamma, beta, mean, var])
    want = np.abs(k).reshape(-1, 4).mean(axis=0) * np.abs(gamma) / np.sqrt(var + np.float32(bn.epsilon))
    np.testing.assert_allclose(saliency(m, spec)["stem"], want, rtol=1e-6)


def test_projection_model_builds_for_the_projected_input():
    spec = projection_spec(7, width=8, depth=2)
    m = build(spec)
    assert m.input_shape == (None, 1, 16, 64) and m.output_shape == (None, 7)
    pools = {type(layer).__name__ for layer in build(projection_spec(7, width=8, depth=2, pool="avg")).layers}
    assert "AveragePooling2D" in pools and "MaxPooling2D" not in pools


def test_floors_keep_a_quarter_of_the_edge_layers_an_eighth_of_the_inner_ones_and_at_least_four():
    assert floors(dscnn_spec((8, 8, 1), 10, width=64, depth=3)) == (16, 8, 8, 16)
    assert floors(dscnn_spec((8, 8, 1), 10, width=32, depth=3)) == (8, 4, 4, 8)
    assert floors(dscnn_spec((8, 8, 1), 10, width=3, depth=2)) == (3, 3, 3)  # never above the layer itself
    assert floors(projection_spec(5, width=40, depth=1)) == (10,)  # one layer is an edge


def test_a_channel_costs_its_weights_its_quantization_parameters_and_its_activation_map():
    """digits DS-CNN, 8 channels, one block: the stem's channel holds a 3x3x1 filter, the next block's
    3x3 depthwise filter and 8 pointwise weights, 16 B of quantization parameters for each of its two
    output channels, and an 8x8 map (of two bytes: the arena holds it in and out of the depthwise); the
    block's channel an 8-weight filter, 10 classifier weights, its parameters, a 4x4 map."""
    from tinyeff.compress.prune import _channel_costs

    spec = dscnn_spec((8, 8, 1), 10, width=8, depth=1)
    flash, ram = _channel_costs(build(spec), spec)
    assert flash.tolist() == [9 + (9 + 16) + 8 + 16, 8 + 10 + 16]
    assert ram.tolist() == [8 * 8 * 2 + 16, 4 * 4 * 2 + 16]
    # after pruning the widths differ: the stem's channel meets the 12 pointwise filters of the next layer
    narrow = spec.with_widths((8, 12))
    assert _channel_costs(build(narrow), narrow)[0].tolist() == [9 + (9 + 16) + 12 + 16, 8 + 10 + 16]
    # a projection model's channel: a 1x3 filter over tokens, the next layer's weights, a 1x6 map of int8
    text = projection_spec(5, width=8, depth=2, cfg=ProjectionConfig(features=16, max_tokens=6))
    flash, ram = _channel_costs(build(text), text)
    assert flash.tolist() == [3 * 16 + 3 * 8 + 16, 3 * 8 + 5 + 16]
    assert ram.tolist() == [6 + 16, 6 + 16]


def test_a_budget_met_does_not_steer_pruning_and_no_pressure_at_all_weighs_both():
    spec = dscnn_spec((8, 8, 1), 10, width=32, depth=3)
    m = build(spec)

    def cut(pressure, fraction=0.2):
        return [len(v) for v in plan(m, spec, spec, fraction, pressure).values()]

    assert cut(Pressure(flash=1.0, ram=-0.5)) == cut(Pressure(flash=1.0, ram=0.0))
    assert cut(Pressure(flash=-0.2, ram=-0.1)) == cut(Pressure(flash=0.0, ram=0.0)) == cut(Pressure(flash=1.0, ram=1.0))
    # a fraction too small to round to one channel still removes one
    assert sum(32 - w for w in cut(Pressure(1.0, 0.0), fraction=0.001)) == 1


@pytest.mark.parametrize("width, depth", [(32, 3), (16, 2), (24, 3)])
def test_over_both_budgets_flash_and_ram_costs_weigh_alike(width, depth):
    """Each cost is taken relative to its layers' mean, so bytes of flash (thousands) and of RAM
    (hundreds) weigh alike: over both budgets the 8x8 stem (costly in RAM, cheap in flash) loses fewer
    channels than over RAM alone and more than over flash alone."""
    from tinyeff._native import seed_everything

    spec = dscnn_spec((8, 8, 1), 10, width=width, depth=depth)
    seed_everything(0)
    m = build(spec)
    stem_cut = [width - len(plan(m, spec, spec, 0.2, p)["stem"]) for p in (Pressure(0, 1), Pressure(1, 1), Pressure(1, 0))]
    assert stem_cut[0] > stem_cut[1] > stem_cut[2], stem_cut


def test_a_pruned_projection_model_holds_the_kept_filters_and_classifier_rows():
    spec = projection_spec(5, width=8, depth=2, cfg=ProjectionConfig(features=16, max_tokens=6))
    m = build(spec)
    keep = {"conv1": np.array([0, 2, 3, 7]), "conv2": np.array([1, 4, 5])}
    small, sspec = pruned_copy(m, spec, keep)
    assert sspec.widths == (4, 3)
    np.testing.assert_array_equal(small.get_layer("conv2").get_weights()[0],
                                  m.get_layer("conv2").get_weights()[0][:, :, keep["conv1"], :][..., keep["conv2"]])
    for got, full in zip(small.get_layer("conv1_bn").get_weights(), m.get_layer("conv1_bn").get_weights()):
        np.testing.assert_array_equal(got, full[keep["conv1"]])
    dense, full = small.get_layer("logits").get_weights(), m.get_layer("logits").get_weights()
    np.testing.assert_array_equal(dense[0], full[0][keep["conv2"], :])
    np.testing.assert_array_equal(dense[1], full[1])


def test_a_channels_priority_is_its_share_of_its_layer_and_both_edge_layers_weigh_more(monkeypatch):
    """With equal costs, a layer's saliencies scaled by 10^6 or 10^-3 rank its channels as before (each
    counts as its share of the layer); the inner layer goes to its floor first, then the stem and the layer
    feeding the classifier lose one channel each (both count EDGE_WEIGHT times, so they tie)."""
    from tinyeff.compress import prune

    spec = dscnn_spec((8, 8, 1), 10, width=16, depth=2)
    assert spec.prunable == ("stem", "b1_pw", "b2_pw") and floors(spec) == (4, 4, 4)
    m = build(spec)
    ramp = np.linspace(1.0, 1.2, 16)  # ties only across layers; within 1.5x, so no edge channel goes before an inner one
    for scales in [(1.0, 1.0, 1.0), (1e-3, 1e6, 1.0), (1.0, 1e-3, 1e6)]:
        monkeypatch.setattr(prune, "saliency", lambda model, s, scales=scales: {n: ramp * k for n, k in zip(s.prunable, scales)})
        monkeypatch.setattr(prune, "_channel_costs", lambda model, s: (np.ones(3), np.ones(3)))
        keep = plan(m, spec, spec, 14 / 48, Pressure(1.0, 0.0))
        assert [len(keep[n]) for n in spec.prunable] == [15, 4, 15], scales
        assert keep["stem"].tolist() == keep["b2_pw"].tolist() == list(range(1, 16))  # each its least salient
    # a layer whose filters are all zero goes first, down to its floor
    monkeypatch.setattr(prune, "saliency", lambda model, s: {n: ramp * (n != "b2_pw") for n in s.prunable})
    assert [len(v) for v in plan(m, spec, spec, 14 / 48, Pressure(1.0, 0.0)).values()] == [16, 14, 4]
