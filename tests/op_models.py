"""Single-op int8 models made with the real TFLite converter, over a grid of op parameters.

Each case is a tiny Keras model around one op (or two, where the op needs two inputs); its
weights and biases are random with a fixed seed, so that every rounding path is exercised. The one
exception to "made by the converter" is SQUEEZE, which the converter writes as RESHAPE: those cases
get their RESHAPE rewritten as the SQUEEZE it stands for.
"""

from __future__ import annotations


import numpy as np

from case_cache import cached_conversion, cached_names
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
    # a dilation and a depthwise stride that differ by axis: a kernel that swapped the two would pass square ones
    cases["conv_k3x3_s1_same_None_d2x1"] = ((9, 8, 3), lambda x: L.Conv2D(5, 3, 1, "same", dilation_rate=(2, 1), **rnd)(x))
    cases["conv_nobias"] = ((6, 6, 4), lambda x: L.Conv2D(6, 3, 1, "same", use_bias=False)(x))
    # 1-D convs (one row of pixels: text, signals), which the runtime runs as one column
    cases["conv1d_k1x3_s1_same_relu"] = ((1, 12, 5), lambda x: L.Conv2D(6, (1, 3), 1, "same", activation="relu", **rnd)(x))
    cases["conv1d_k1x3_s1x2_valid"] = ((1, 15, 4), lambda x: L.Conv2D(5, (1, 3), (1, 2), "valid", **rnd)(x))
    cases["conv1d_k1x3_d1x2_same"] = ((1, 12, 4), lambda x: L.Conv2D(4, (1, 3), 1, "same", dilation_rate=(1, 2), **rnd)(x))
    for k, s, pad, act, dm in [(3, 1, "same", "relu", 1), (3, 2, "same", None, 1), (3, 2, "valid", "relu6", 1),
                               (3, 1, "same", None, 2), (5, 1, "same", "relu", 1), (2, 2, "valid", None, 3)]:
        cases[f"dw_k{k}_s{s}_{pad}_{act}_m{dm}"] = (
            (9, 8, 4), lambda x, k=k, s=s, pad=pad, act=act, dm=dm: L.DepthwiseConv2D(k, s, pad, depth_multiplier=dm, activation=act,
                                                                                    bias_initializer=rnd["bias_initializer"])(x))
    cases["dw1d_k1x3_s1_same_m2"] = ((1, 10, 4), lambda x: L.DepthwiseConv2D((1, 3), 1, "same", depth_multiplier=2,
                                                                           bias_initializer=rnd["bias_initializer"])(x))
    cases["dw_k3_s2x1_same_None_m1"] = ((9, 8, 4), lambda x: L.DepthwiseConv2D(3, (2, 1), "same", bias_initializer=rnd["bias_initializer"])(x))
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
    # the second input's scale far above the first's: ADD rescales both by twice the larger of the two
    cases["add_wide_second"] = ((6, 5, 4), lambda x: L.Add()([x, L.Conv2D(4, 3, padding="same",
                                kernel_initializer=keras.initializers.RandomNormal(0, 3))(x)]))
    cases["mul_const"] = ((6, 5, 4), lambda x: L.Softmax()(L.Flatten()(x * 3.0 + 1.0)))
    cases["mul"] = ((6, 5, 4), lambda x: L.Multiply()([L.Conv2D(4, 1, **rnd)(x), x]))
    cases["pad"] = ((5, 4, 3), lambda x: L.ZeroPadding2D(((1, 2), (2, 0)))(x))
    cases["concat"] = ((6, 5, 3), lambda x: L.Concatenate()([L.Conv2D(2, 1, **rnd)(x), L.Conv2D(3, 3, padding="same", **rnd)(x)]))
    # float32 in and out: QUANTIZE float -> int8 first, DEQUANTIZE int8 -> float last
    cases[FLOAT_IO + "conv"] = ((6, 5, 3), lambda x: L.Conv2D(4, 3, padding="same", activation="relu", **rnd)(x))
    cases[FLOAT_IO + "dense_softmax"] = ((16,), lambda x: L.Softmax()(L.Dense(10, **rnd)(x)))
    cases.update({name: (shape, body) for name, (shape, body, _) in _more_cases(keras, rnd).items()})
    return cases


def _more_cases(keras, rnd) -> dict:
    """name -> (input shape, body, the op the case is for): activations, SUB, MAXIMUM and MINIMUM, slicing,
    resizing and transposed convolutions. A conv in front with large weights spreads its input over a wide
    range, so that saturating paths run too."""
    tf, L, ops = tensorflow(), keras.layers, keras.ops

    def spread(x, channels=6):
        # the initializer is made here, when the seeded model is built: made earlier, it would draw from the
        # global seed and change every other case's weights
        return L.Conv2D(channels, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(0, 3))(x)

    cases = {
        "leaky_relu": ((6, 5, 4), lambda x: L.LeakyReLU(0.2)(x), "LEAKY_RELU"),
        "leaky_relu_steep_wide": ((6, 5, 4), lambda x: L.LeakyReLU(1.7)(spread(x)), "LEAKY_RELU"),
        "hard_swish": ((6, 5, 4), lambda x: L.Activation("hard_swish")(x), "HARD_SWISH"),
        "hard_swish_wide": ((6, 5, 4), lambda x: L.Activation("hard_swish")(spread(x)), "HARD_SWISH"),
        # x * relu6(x + 3) / 6 written out: the converter fuses it into one HARD_SWISH
        "hard_swish_pattern": ((6, 5, 4), lambda x: x * ops.relu6(x + 3.0) / 6.0, "HARD_SWISH"),
        "tanh": ((6, 5, 4), lambda x: L.Activation("tanh")(x), "TANH"),
        "tanh_wide": ((6, 5, 4), lambda x: L.Activation("tanh")(spread(x)), "TANH"),
        "relu": ((6, 5, 4), lambda x: L.ReLU()(x), "RELU"),
        "relu_wide": ((6, 5, 4), lambda x: L.ReLU()(L.Concatenate()([spread(x), x])), "RELU"),
        # a standalone RELU6 (after a conv it would fuse); TFLM clamps its input codes and ignores the output's
        # quantization, which LiteRT does not (it requantizes): the compiled runtime follows TFLM
        "relu6": ((6, 5, 4), lambda x: L.ReLU(6.0)(x), "RELU6"),
        "relu6_wide": ((6, 5, 4), lambda x: L.ReLU(6.0)(L.Concatenate()([spread(x), x])), "RELU6"),
        "sub": ((6, 5, 4), lambda x: L.Subtract()([L.Conv2D(4, 1, **rnd)(x), x]), "SUB"),
        "sub_broadcast": ((6, 5, 4), lambda x: L.Subtract()([x, L.Dense(4, **rnd)(L.AveragePooling2D((6, 5))(x))]), "SUB"),
        "sub_from_const": ((6, 5, 4), lambda x: 1.0 - x, "SUB"),
        "maximum": ((6, 5, 4), lambda x: L.Maximum()([L.Conv2D(4, 1, **rnd)(x), x]), "MAXIMUM"),
        "minimum": ((6, 5, 4), lambda x: L.Minimum()([L.Conv2D(4, 1, **rnd)(x), x]), "MINIMUM"),
        "maximum_const": ((6, 5, 4), lambda x: ops.maximum(x, 0.3), "MAXIMUM"),
        "slice_crop": ((6, 5, 4), lambda x: L.Cropping2D(((1, 2), (0, 1)))(x), "STRIDED_SLICE"),
        "slice_steps": ((8, 6, 4), lambda x: x[:, 1:7:2, ::-2, 1:], "STRIDED_SLICE"),
        "slice_negative": ((8, 6, 4), lambda x: x[:, -5:-1, ::-1, :], "STRIDED_SLICE"),
        "slice_shrink": ((8, 6, 4), lambda x: x[:, 2], "STRIDED_SLICE"),
        "slice_channels": ((5, 4, 8), lambda x: x[..., 1::3], "STRIDED_SLICE"),
        "resize_half_pixel": ((5, 4, 3), lambda x: L.Resizing(7, 9, interpolation="nearest")(x), "RESIZE_NEAREST_NEIGHBOR"),
        "resize_down": ((7, 9, 3), lambda x: L.Resizing(3, 4, interpolation="nearest")(x), "RESIZE_NEAREST_NEIGHBOR"),
        "resize_align_corners": ((5, 4, 3), lambda x: L.Lambda(lambda t: tf.compat.v1.image.resize_nearest_neighbor(
            t, (7, 9), align_corners=True))(x), "RESIZE_NEAREST_NEIGHBOR"),
        "resize_x2": ((5, 4, 3), lambda x: L.Lambda(lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (10, 8)))(x),
                      "RESIZE_NEAREST_NEIGHBOR"),
        "tconv_nobias": ((5, 4, 3), lambda x: L.Conv2DTranspose(4, 3, 1, "same", use_bias=False)(x), "TRANSPOSE_CONV"),
        # SQUEEZE: the converter writes tf.squeeze as RESHAPE; make_case turns that op into SQUEEZE
        SQUEEZE + "dense": ((1, 5, 4), lambda x: L.Dense(3, **rnd)(ops.squeeze(x, 1)), "SQUEEZE"),
    }
    for k, s, pad, act in [(3, 1, "same", None), (3, 2, "same", "relu"), (3, 2, "valid", None), ((4, 3), (2, 1), "same", "relu6"),
                           (2, 3, "valid", None)]:
        name = f"tconv_k{'x'.join(map(str, k)) if isinstance(k, tuple) else k}_s{'x'.join(map(str, s)) if isinstance(s, tuple) else s}_{pad}_{act}"
        cases[name] = ((5, 4, 3), lambda x, k=k, s=s, pad=pad, act=act: L.Conv2DTranspose(4, k, s, pad, activation=act, **rnd)(x),
                       "TRANSPOSE_CONV")
    return cases


def case_op(name: str) -> str | None:
    """The op grid case NAME exists for, for the cases that name one."""
    keras = tensorflow().keras
    case = _more_cases(keras, {}).get(name)
    return case[2] if case else None


FLOAT_IO = "float_io_"  # cases converted with float32 input and output
SQUEEZE = "squeeze_"  # cases whose RESHAPE becomes the SQUEEZE it was written as


def _reshape_to_squeeze(data: bytes) -> bytes:
    """DATA with its one RESHAPE, which only drops axes of 1, as a SQUEEZE of those axes (what older
    converters and other exporters write)."""
    from ai_edge_litert import schema_py_generated as schema

    from model_edit import edit

    def change(m, g):
        (op,) = [o for o in g.operators if m.operatorCodes[o.opcodeIndex].builtinCode == schema.BuiltinOperator.RESHAPE]
        x, y = (tuple(int(d) for d in g.tensors[t].shape) for t in (op.inputs[0], op.outputs[0]))
        dims = [k for k in range(len(x)) if x[k] == 1 and x[:k] + x[k + 1:] == y]
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SQUEEZE
        code.version = 1
        m.operatorCodes.append(code)
        op.opcodeIndex = len(m.operatorCodes) - 1
        op.inputs = np.array(op.inputs[:1], np.int32)
        op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
        op.builtinOptions = schema.SqueezeOptionsT()
        op.builtinOptions.squeezeDims = dims[-1:]
    return edit(data, change)


@cached_conversion(__file__)  # a conversion takes about a second; many tests share the cases
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
    data = keras_to_int8(model, rep, float_io=name.startswith(FLOAT_IO))
    return _reshape_to_squeeze(data) if name.startswith(SQUEEZE) else data


@cached_names(__file__)
def case_names() -> list[str]:
    return list(_cases())
