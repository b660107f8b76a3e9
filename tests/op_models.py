"""Single-op int8 models made with the real TFLite converter, over a grid of op parameters.

Each case is a tiny Keras model around one op (or two, where the op needs two inputs); its
weights and biases are random with a fixed seed, so that every rounding path is exercised.
"""

from __future__ import annotations

import functools

import numpy as np

from tinyeff._native import tensorflow


def _cases():
    keras = tensorflow().keras
    L = keras.layers
    rnd = {"kernel_initializer": "glorot_uniform", "bias_initializer": keras.initializers.RandomNormal(0, 0.3)}
    cases = {}
    for k, s, pad, act, dil in [((3, 3), 1, "same", None, 1), ((3, 3), 2, "same", "relu", 1), ((3, 2), 2, "valid", "relu6", 1),
                                ((1, 1), 1, "valid", None, 1), ((1, 1), 2, "same", "relu", 1), ((3, 3), 1, "same", "relu", 2),
                                ((5, 4), (2, 1), "same", None, 1)]:
        name = f"conv_k{k[0]}x{k[1]}_s{s if isinstance(s, int) else 'x'.join(map(str, s))}_{pad}_{act}_d{dil}"
        cases[name] = ((9, 8, 3), lambda x, k=k, s=s, pad=pad, act=act, dil=dil: L.Conv2D(5, k, s, pad, activation=act, dilation_rate=dil, **rnd)(x))
    cases["conv_nobias"] = ((6, 6, 4), lambda x: L.Conv2D(6, 3, 1, "same", use_bias=False)(x))
    for k, s, pad, act, dm in [(3, 1, "same", "relu", 1), (3, 2, "same", None, 1), (3, 2, "valid", "relu6", 1),
                               (3, 1, "same", None, 2), (5, 1, "same", "relu", 1), (2, 2, "valid", None, 3)]:
        cases[f"dw_k{k}_s{s}_{pad}_{act}_m{dm}"] = (
            (9, 8, 4), lambda x, k=k, s=s, pad=pad, act=act, dm=dm: L.DepthwiseConv2D(k, s, pad, depth_multiplier=dm, activation=act,
                                                                                    bias_initializer=rnd["bias_initializer"])(x))
    for act in (None, "relu"):
        cases[f"dense_{act}"] = ((20,), lambda x, act=act: L.Dense(7, activation=act, **rnd)(x))
    cases["dense_softmax"] = ((16,), lambda x: L.Softmax()(L.Dense(10, **rnd)(x)))
    cases["flatten_dense"] = ((4, 3, 2), lambda x: L.Dense(5, **rnd)(L.Flatten()(x)))
    for kind in ("avg", "max"):
        P = L.AveragePooling2D if kind == "avg" else L.MaxPooling2D
        for pool, s, pad in [(2, 2, "valid"), (3, 1, "same"), (3, 2, "same"), ((9, 8), 1, "valid")]:
            cases[f"{kind}pool_{pool}_s{s}_{pad}"] = ((9, 8, 3), lambda x, P=P, pool=pool, s=s, pad=pad: P(pool, s, pad)(x))
    # Keras global average pooling becomes MEAN over height and width; 72 and 125 pixels are not
    # powers of two, so the 1/n folded into the multiplier is exercised
    cases["mean_gap"] = ((9, 8, 5), lambda x: L.GlobalAveragePooling2D()(x))
    cases["mean_gap_keepdims"] = ((6, 5, 4), lambda x: L.Conv2D(3, 1, **rnd)(L.GlobalAveragePooling2D(keepdims=True)(x)))
    cases["mean_after_conv"] = ((25, 5, 8), lambda x: L.GlobalAveragePooling2D()(L.Conv2D(16, 3, padding="same", activation="relu", **rnd)(x)))
    # sigmoid over a wide input range (inputs past the radius saturate) and a narrow one
    cases["logistic_wide"] = ((6, 5, 4), lambda x: L.Activation("sigmoid")(L.Conv2D(6, 3, padding="same",
                              kernel_initializer=keras.initializers.RandomNormal(0, 3))(x)))
    cases["logistic_dense"] = ((12,), lambda x: L.Dense(8, activation="sigmoid", **rnd)(x))
    cases["softmax_wide"] = ((24,), lambda x: L.Softmax()(L.Dense(40, kernel_initializer=keras.initializers.RandomNormal(0, 2))(x)))
    cases["add_relu"] = ((6, 5, 4), lambda x: L.ReLU()(L.Add()([L.Conv2D(4, 1, **rnd)(x), x])))
    cases["add_broadcast"] = ((6, 5, 4), lambda x: L.Add()([x, L.Dense(4, **rnd)(L.AveragePooling2D((6, 5))(x))]))
    cases["mul_const"] = ((6, 5, 4), lambda x: L.Softmax()(L.Flatten()(x * 3.0 + 1.0)))
    cases["mul"] = ((6, 5, 4), lambda x: L.Multiply()([L.Conv2D(4, 1, **rnd)(x), x]))
    cases["pad"] = ((5, 4, 3), lambda x: L.ZeroPadding2D(((1, 2), (2, 0)))(x))
    cases["concat"] = ((6, 5, 3), lambda x: L.Concatenate()([L.Conv2D(2, 1, **rnd)(x), L.Conv2D(3, 3, padding="same", **rnd)(x)]))
    # float32 in and out: QUANTIZE float -> int8 first, DEQUANTIZE int8 -> float last
    cases[FLOAT_IO + "conv"] = ((6, 5, 3), lambda x: L.Conv2D(4, 3, padding="same", activation="relu", **rnd)(x))
    cases[FLOAT_IO + "dense_softmax"] = ((16,), lambda x: L.Softmax()(L.Dense(10, **rnd)(x)))
    return cases


FLOAT_IO = "float_io_"  # cases converted with float32 input and output


@functools.lru_cache(maxsize=None)  # a conversion takes about a second; many tests share the cases
def make_case(name: str, seed: int = 0) -> bytes:
    """The int8 .tflite of grid case NAME."""
    from tinyeff._native import seed_everything
    from tinyeff.compress.quantize import keras_to_int8

    keras = tensorflow().keras
    seed_everything(seed)
    shape, body = _cases()[name]
    x = keras.Input(shape, batch_size=1)
    model = keras.Model(x, body(x))
    rep = np.random.default_rng(seed).normal(0, 1, (64, *shape)).astype(np.float32)
    return keras_to_int8(model, rep, float_io=name.startswith(FLOAT_IO))


def case_names() -> list[str]:
    return list(_cases())
