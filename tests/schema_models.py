"""Small .tflite models written op by op with the tflite schema (no TensorFlow, no converter).

A test spells out each tensor (shape, type, quantization, constant data) and each op (inputs,
outputs, builtin options by schema field name): the numbering of tensors, the options a
converter always writes and the ones it never does are the test's to choose.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from model_edit import TYPES, pack


@dataclasses.dataclass(frozen=True)
class T:
    """A tensor: its shape, type, quantization (scale or scales per channel, zero point), or None, and constant DATA if any."""

    shape: tuple[int, ...]
    dtype: str = "INT8"
    q: tuple[float, int] | None = (0.1, 0)
    data: np.ndarray | None = None


def const(values, dtype: str = "INT32") -> T:
    """A constant tensor of VALUES: axes, paddings and biases (int32, int64), or int8 weights."""
    values = np.asarray(values, {"INT8": np.int8, "INT32": np.int32, "INT64": np.int64}[dtype])
    return T(values.shape, dtype, (0.01, 0) if dtype == "INT8" else None, values)


# the builtin options table of each op the cases use
_OPTIONS = {"CONV_2D": "Conv2DOptions", "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions",
            "MEAN": "ReducerOptions", "SOFTMAX": "SoftmaxOptions", "ADD": "AddOptions", "CONCATENATION": "ConcatenationOptions",
            "LEAKY_RELU": "LeakyReluOptions", "PAD": "PadOptions", "TRANSPOSE_CONV": "TransposeConvOptions",
            "STRIDED_SLICE": "StridedSliceOptions", "FULLY_CONNECTED": "FullyConnectedOptions"}


def model(tensors: list[T], ops: list[tuple], inputs: list[int], outputs: list[int], subgraphs: int = 1) -> bytes:
    """A .tflite of TENSORS and OPS ((op, input tensors, output tensors, options by schema field name, or
    None for no options table)),
    its subgraph repeated SUBGRAPHS times."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT()
    m.version, m.buffers, m.operatorCodes = 3, [schema.BufferT()], []
    codes = sorted({op for op, *_ in ops})
    for name in codes:
        c = schema.OperatorCodeT()
        c.builtinCode = c.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, name)
        c.version = 1
        m.operatorCodes.append(c)
    g = schema.SubGraphT()
    g.tensors, g.operators = [], []
    for k, spec in enumerate(tensors):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = f"t{k}".encode(), np.array(spec.shape, np.int32), TYPES[spec.dtype], 0
        if spec.q is not None:
            t.quantization = schema.QuantizationParametersT()
            scales = np.atleast_1d(np.asarray(spec.q[0], np.float32))  # several: per channel along dimension 0
            t.quantization.scale, t.quantization.zeroPoint = scales, np.full(scales.shape, spec.q[1], np.int64)
        if spec.data is not None:
            b = schema.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(spec.data).tobytes(), np.uint8)
            t.buffer = len(m.buffers)
            m.buffers.append(b)
        g.tensors.append(t)
    for name, ins, outs, options in ops:
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = codes.index(name), np.array(ins, np.int32), np.array(outs, np.int32)
        if name in _OPTIONS and options is not None:  # None: no options table (the schema's defaults apply)
            o.builtinOptionsType = getattr(schema.BuiltinOptions, _OPTIONS[name])
            o.builtinOptions = getattr(schema, _OPTIONS[name] + "T")()
            for field, value in options.items():
                setattr(o.builtinOptions, field, value)
        g.operators.append(o)
    g.inputs, g.outputs = np.array(inputs, np.int32), np.array(outputs, np.int32)
    m.subgraphs = [g] * subgraphs
    return pack(m)


def unary(op: str, x: T, out: T, options: dict | None = None, *constants: T) -> bytes:
    """OP from model input X (and CONSTANTS, its further inputs) to model output OUT."""
    n = len(constants)
    return model([x, *constants, out], [(op, list(range(n + 1)), [n + 1], options)], [0], [n + 1])
