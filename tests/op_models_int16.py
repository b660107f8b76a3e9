"""Single-op 16x8 models (int16 activations, int8 weights) made with the real TFLite converter.

Each case is a tiny Keras model around one op, converted with TFLM's 16x8 ops set
(EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8), int16 in and out, weights and
biases random with a fixed seed; plus a small conv -> depthwise -> pool -> dense model. The
converter takes only int16 or float32 inputs in that mode, so the QUANTIZE conversions between
int8 and int16 come from small models written with the tflite schema (``requantize_*``), and
SQUEEZE from a RESHAPE rewritten (as in op_models.py). Each case names the ops it must hold,
which the tests check.
"""

from __future__ import annotations


import numpy as np

from case_cache import cached_conversion, cached_names
from model_edit import TYPES, pack
from op_models import _reshape_to_squeeze
from tinyeff._native import tensorflow

FLOAT_IO = "float_io_"  # converted with float32 input and output around the int16 graph
BIAS32 = "bias32_"  # converted with int32 biases (TFLM then accumulates in int32)
PER_TENSOR = "per_tensor_"  # converted with one weight scale per dense layer
SQUEEZE = "squeeze_"  # their RESHAPE rewritten as the SQUEEZE it was written as (as in op_models.py)


def _cases() -> dict:
    """name -> (input shape, body, ops the converted model must hold)"""
    keras = tensorflow().keras
    L = keras.layers
    rnd = {"kernel_initializer": "glorot_uniform", "bias_initializer": keras.initializers.RandomNormal(0, 0.3)}
    conv, dw, dense = {"CONV_2D"}, {"DEPTHWISE_CONV_2D"}, {"FULLY_CONNECTED"}
    cases = {}
    for k, s, pad, act, dil in [((3, 3), 1, "same", None, 1), ((3, 3), 2, "same", "relu", 1), ((3, 2), 2, "valid", "relu6", 1),
                                ((1, 1), 1, "valid", None, 1), ((3, 3), 1, "same", "relu", 2), ((5, 4), (2, 1), "same", None, 1)]:
        name = f"conv_k{k[0]}x{k[1]}_s{s if isinstance(s, int) else 'x'.join(map(str, s))}_{pad}_{act}_d{dil}"
        cases[name] = ((9, 8, 3), lambda x, k=k, s=s, pad=pad, act=act, dil=dil: L.Conv2D(5, k, s, pad, activation=act, dilation_rate=dil,
                                                                                          **rnd)(x), conv)
    cases["conv_nobias"] = ((6, 6, 4), lambda x: L.Conv2D(6, 3, 1, "same", use_bias=False)(x), conv)
    cases[BIAS32 + "conv"] = ((6, 5, 3), lambda x: L.Conv2D(4, 3, padding="same", activation="relu", **rnd)(x), conv)
    for k, s, pad, act, m in [(3, 1, "same", "relu", 1), (3, 2, "valid", "relu6", 1), (3, 1, "same", None, 2), (2, 2, "valid", None, 3)]:
        cases[f"dw_k{k}_s{s}_{pad}_{act}_m{m}"] = (
            (9, 8, 4), lambda x, k=k, s=s, pad=pad, act=act, m=m: L.DepthwiseConv2D(k, s, pad, depth_multiplier=m, activation=act,
                                                                                  bias_initializer=rnd["bias_initializer"])(x), dw)
    for act in (None, "relu"):
        cases[f"dense_{act}"] = ((20,), lambda x, act=act: L.Dense(7, activation=act, **rnd)(x), dense)
    cases["dense_nobias"] = ((16,), lambda x: L.Dense(5, use_bias=False)(x), dense)
    cases[BIAS32 + "dense"] = ((20,), lambda x: L.Dense(7, **rnd)(x), dense)
    cases[PER_TENSOR + "dense"] = ((20,), lambda x: L.Dense(7, activation="relu", **rnd)(x), dense)
    cases["flatten_dense"] = ((4, 3, 2), lambda x: L.Dense(5, **rnd)(L.Flatten()(x)), dense | {"RESHAPE"})
    for kind, op in (("avg", "AVERAGE_POOL_2D"), ("max", "MAX_POOL_2D")):
        P = L.AveragePooling2D if kind == "avg" else L.MaxPooling2D
        for pool, s, pad in [(2, 2, "valid"), (3, 1, "same"), (3, 2, "same"), ((9, 8), 1, "valid")]:
            cases[f"{kind}pool_{pool}_s{s}_{pad}"] = ((9, 8, 3), lambda x, P=P, pool=pool, s=s, pad=pad: P(pool, s, pad)(x), {op})
    cases["add_relu"] = ((6, 5, 4), lambda x: L.ReLU()(L.Add()([L.Conv2D(4, 1, **rnd)(x), x])), conv | {"ADD"})
    cases["add_broadcast"] = ((6, 5, 4), lambda x: L.Add()([x, L.Dense(4, **rnd)(L.AveragePooling2D((6, 5))(x))]),
                              dense | {"AVERAGE_POOL_2D", "RESHAPE", "ADD"})
    cases["mul_add_const"] = ((6, 5, 4), lambda x: x * 3.0 + 1.0, {"MUL", "ADD"})
    cases["mul"] = ((6, 5, 4), lambda x: L.Multiply()([L.Conv2D(4, 1, **rnd)(x), x]), conv | {"MUL"})
    cases["pad"] = ((5, 4, 3), lambda x: L.ZeroPadding2D(((1, 2), (2, 0)))(x), {"PAD"})
    # the converter brings one input to the other's scale with an int16 QUANTIZE
    cases["concat"] = ((6, 5, 3), lambda x: L.Concatenate()([L.Conv2D(2, 1, **rnd)(x), L.Conv2D(3, 3, padding="same", **rnd)(x)]),
                       conv | {"QUANTIZE", "CONCATENATION"})
    cases["concat_rows"] = ((6, 5, 3), lambda x: L.Concatenate(axis=1)([x, x]), {"CONCATENATION"})
    cases[FLOAT_IO + "conv"] = ((6, 5, 3), lambda x: L.Conv2D(4, 3, padding="same", activation="relu", **rnd)(x),
                                conv | {"QUANTIZE", "DEQUANTIZE"})

    # the ops whose int8 forms tests/op_models.py covers in _more_cases
    ops = keras.ops
    cases["sub"] = ((6, 5, 4), lambda x: L.Subtract()([L.Conv2D(4, 1, **rnd)(x), x]), conv | {"SUB"})
    cases["sub_broadcast"] = ((6, 5, 4), lambda x: L.Subtract()([x, L.Dense(4, **rnd)(L.AveragePooling2D((6, 5))(x))]),
                              dense | {"AVERAGE_POOL_2D", "SUB"})
    cases["sub_from_const"] = ((6, 5, 4), lambda x: 1.0 - x, {"SUB"})
    # MAXIMUM compares codes: the converter brings the operands to one scale with a QUANTIZE
    cases["maximum"] = ((6, 5, 4), lambda x: L.Maximum()([L.Conv2D(4, 1, **rnd)(x), x]), conv | {"QUANTIZE", "MAXIMUM"})
    cases["minimum_const"] = ((6, 5, 4), lambda x: ops.minimum(x, 0.3), {"MINIMUM"})
    cases["leaky_relu"] = ((6, 5, 4), lambda x: L.LeakyReLU(0.2)(x), {"LEAKY_RELU"})
    cases["leaky_relu_steep"] = ((6, 5, 4), lambda x: L.LeakyReLU(1.7)(x), {"LEAKY_RELU"})
    cases["relu"] = ((6, 5, 4), lambda x: L.ReLU()(x), {"RELU"})
    cases["relu6"] = ((6, 5, 4), lambda x: L.ReLU(6.0)(x), {"RELU6"})

    def spread(x):
        # a conv with large weights spreads its input over tens, so that RELU6's bound of 6.0 is an int16 code
        return L.Conv2D(6, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(0, 3))(x)

    cases["relu6_wide"] = ((6, 5, 4), lambda x: L.ReLU(6.0)(L.Concatenate()([spread(x), x])),
                           conv | {"QUANTIZE", "CONCATENATION", "RELU6"})
    cases["slice_steps"] = ((8, 6, 4), lambda x: x[:, 1:7:2, ::-2, 1:], {"STRIDED_SLICE"})
    cases["slice_shrink"] = ((8, 6, 4), lambda x: x[:, 2], {"STRIDED_SLICE"})
    cases["resize_half_pixel"] = ((5, 4, 3), lambda x: L.Resizing(7, 9, interpolation="nearest")(x), {"RESIZE_NEAREST_NEIGHBOR"})
    cases[SQUEEZE + "dense"] = ((1, 5, 4), lambda x: L.Dense(3, **rnd)(ops.squeeze(x, 1)), dense | {"SQUEEZE"})
    cases["tconv_nobias"] = ((5, 4, 3), lambda x: L.Conv2DTranspose(4, 3, 1, "same", use_bias=False)(x), {"TRANSPOSE_CONV"})
    for k, s, pad, act in [(3, 2, "same", "relu"), ((4, 3), (2, 1), "same", "relu6"), (2, 3, "valid", None)]:
        kname, sname = ("x".join(map(str, v)) if isinstance(v, tuple) else v for v in (k, s))
        name = f"tconv_k{kname}_s{sname}_{pad}_{act}"
        cases[name] = ((5, 4, 3), lambda x, k=k, s=s, pad=pad, act=act: L.Conv2DTranspose(4, k, s, pad, activation=act, **rnd)(x),
                       {"TRANSPOSE_CONV"})

    def small_net(x):
        y = L.Conv2D(8, 3, 2, "same", activation="relu", **rnd)(x)
        y = L.DepthwiseConv2D(3, padding="same", activation="relu", bias_initializer=rnd["bias_initializer"])(y)
        y = L.Conv2D(12, 1, activation="relu", **rnd)(y)
        y = L.AveragePooling2D(tuple(y.shape[1:3]))(y)
        return L.Dense(6, **rnd)(L.Flatten()(y))

    cases["small_net"] = ((16, 12, 2), small_net, conv | dw | dense | {"AVERAGE_POOL_2D"})
    return cases


# QUANTIZE chains written with the schema: (type, scale, zero point) of each tensor, first to last
_CHAINS = {
    "requantize_8_16_8": [("INT8", 0.05, 3), ("INT16", 0.0004, 0), ("INT8", 0.03, -7)],
    "requantize_16_8_8_16": [("INT16", 0.0002, 0), ("INT8", 0.04, 0), ("INT8", 0.05, 9), ("INT16", 0.0001, 0)],
    "requantize_16_16": [("INT16", 0.0003, 0), ("INT16", 0.00077, 0), ("INT16", 0.0001, 0)],
    # int32 between: the scales of TFLM's seanet quantize tests (2^-22.7 for the int32 side)
    "requantize_16_32_16": [("INT16", 0.000494, 0), ("INT32", 1.4901161e-07, 0), ("INT16", 0.000922, 0)],
    "requantize_8_32_8_16_8": [("INT8", 0.05, 3), ("INT32", 0.0002, 0), ("INT8", 0.04, 1), ("INT16", 0.0004, 0), ("INT8", 0.03, -7)],
}


def quantize_chain(tensors) -> bytes:
    """A model of QUANTIZE ops from each tensor to the next, of shape 1x4x5x3."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.QUANTIZE
    code.version = 1
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT()]
    g = schema.SubGraphT()
    g.tensors, g.operators = [], []
    for k, (dtype, scale, zero_point) in enumerate(tensors):
        t = schema.TensorT()
        t.shape, t.type, t.buffer, t.name = np.array([1, 4, 5, 3], np.int32), TYPES[dtype], 0, f"t{k}"
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = np.array([scale], np.float32), np.array([zero_point], np.int64)
        g.tensors.append(t)
        if k:
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = 0, np.array([k - 1], np.int32), np.array([k], np.int32)
            g.operators.append(op)
    g.inputs, g.outputs = np.array([0], np.int32), np.array([len(tensors) - 1], np.int32)
    model.subgraphs = [g]
    return pack(model)


def _convert(model, rep: np.ndarray, float_io: bool = False, bias32: bool = False, per_tensor: bool = False) -> bytes:
    from tinyeff._native import captured_fds

    tf = tensorflow()
    from tensorflow.lite.tools import flatbuffer_utils

    def samples():
        for i in range(len(rep)):
            yield [rep[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = samples
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.float32 if float_io else tf.int16
    if bias32:
        conv._experimental_full_integer_quantization_bias_type = tf.int32
    conv._experimental_disable_per_channel_quantization_for_dense_layers = per_tensor
    import warnings

    with captured_fds(1, 2), warnings.catch_warnings():  # the converter prints its passes and warns about the 16x8 mode
        warnings.simplefilter("ignore")
        raw = conv.convert()
    flat = flatbuffer_utils.read_model_from_bytearray(bytearray(raw))
    flatbuffer_utils.strip_strings(flat)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))


@cached_conversion(__file__)  # a conversion takes about a second; many tests share the cases
def make_case(name: str, seed: int = 0) -> bytes:
    """The 16x8 .tflite of case NAME."""
    if name in _CHAINS:
        return quantize_chain(_CHAINS[name])
    from tinyeff._native import seed_everything

    keras = tensorflow().keras
    seed_everything(seed)
    shape, body, _ = _cases()[name]
    x = keras.Input(shape, batch_size=1)
    model = keras.Model(x, body(x))
    rep = np.random.default_rng(seed).normal(0, 1, (64, *shape)).astype(np.float32)
    data = _convert(model, rep, name.startswith(FLOAT_IO), name.startswith(BIAS32), name.startswith(PER_TENSOR))
    return _reshape_to_squeeze(data) if name.startswith(SQUEEZE) else data


def expected_ops(name: str) -> set[str]:
    """The ops case NAME must hold."""
    return {"QUANTIZE"} if name in _CHAINS else set(_cases()[name][2])


@cached_names(__file__)
def case_names() -> list[str]:
    return list(_cases()) + list(_CHAINS)
