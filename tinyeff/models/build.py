"""Keras builders for the two model families. Models output logits; softmax is added at export."""

from __future__ import annotations

from tinyeff._native import tensorflow
from tinyeff.models.projection_features import ProjectionConfig
from tinyeff.models.spec import ModelSpec


def dscnn_spec(input_shape, n_classes: int, *, width: int = 32, depth: int = 3) -> ModelSpec:
    """A DS-CNN: 3x3 conv stem, DEPTH depthwise-separable blocks of WIDTH channels, average pool, dense.

    Downsampling by 2 happens in the stem when the input is at least 16 on its long side and 8
    on its short side (as in the MLPerf Tiny KWS model, 49x10 -> 25x5), and in the first block's
    depthwise conv while the map is still at least 8 on both sides: large early activations are
    what fills a TFLM arena.
    """
    h, w = input_shape[0], input_shape[1]
    strides = [1] * (depth + 1)
    if max(h, w) >= 16 and min(h, w) >= 8:
        strides[0] = 2
        h, w = -(-h // 2), -(-w // 2)
    if depth >= 1 and min(h, w) >= 8:
        strides[1] = 2
    return ModelSpec("dscnn", tuple(input_shape), n_classes, (width,) * (depth + 1), tuple(strides))


def projection_spec(n_classes: int, *, width: int = 64, depth: int = 2, cfg: ProjectionConfig = ProjectionConfig(),
                    pool: str = "max") -> ModelSpec:
    """A projection model: DEPTH conv layers (kernel 3 over tokens) of WIDTH filters, POOL over tokens, dense."""
    return ModelSpec(
        "projection",
        (1, cfg.max_tokens, cfg.features),
        n_classes,
        (width,) * depth,
        (1,) * depth,
        projection=cfg,
        pool=pool,
    )


def build(spec: ModelSpec, *, batch_size: int | None = None, softmax: bool = False):
    """A fresh keras.Model for SPEC (logits out, or probabilities with SOFTMAX).

    Layer names are what pruning relies on. Export builds with ``batch_size=1``: with a dynamic
    batch, Flatten converts to SHAPE + STRIDED_SLICE + PACK + RESHAPE instead of one RESHAPE.
    """
    tensorflow()
    import keras
    from keras import layers as L

    # Momentum 0.9, not Keras' 0.99: tiny datasets give only ~20 steps an epoch, and at 0.99 the
    # moving variance keeps most of its initial 1.0 for hundreds of steps, which breaks inference.
    def bn(name):
        return L.BatchNormalization(momentum=0.9, name=name)

    inp = keras.Input(spec.input_shape, batch_size=batch_size, name="input")
    x = inp
    if spec.kind == "dscnn":
        x = L.Conv2D(spec.widths[0], spec.kernel, strides=spec.strides[0], padding="same", use_bias=False, name="stem")(x)
        x = bn("stem_bn")(x)
        x = L.ReLU(name="stem_relu")(x)
        for i, (c, s) in enumerate(zip(spec.widths[1:], spec.strides[1:]), start=1):
            x = L.DepthwiseConv2D(spec.kernel, strides=s, padding="same", use_bias=False, name=f"b{i}_dw")(x)
            x = bn(f"b{i}_dw_bn")(x)
            x = L.ReLU(name=f"b{i}_dw_relu")(x)
            x = L.Conv2D(c, 1, use_bias=False, name=f"b{i}_pw")(x)
            x = bn(f"b{i}_pw_bn")(x)
            x = L.ReLU(name=f"b{i}_pw_relu")(x)
        x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    else:
        for i, c in enumerate(spec.widths, start=1):
            x = L.Conv2D(c, (1, spec.kernel), padding="same", use_bias=False, name=f"conv{i}")(x)
            x = bn(f"conv{i}_bn")(x)
            x = L.ReLU(name=f"conv{i}_relu")(x)
        pool = L.MaxPooling2D if spec.pool == "max" else L.AveragePooling2D
        x = pool(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    if spec.dropout:
        x = L.Dropout(spec.dropout, name="dropout")(x)
    x = L.Dense(spec.n_classes, name="logits")(x)
    if softmax:
        x = L.Softmax(name="probs")(x)
    return keras.Model(inp, x, name=spec.kind)
