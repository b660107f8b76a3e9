"""Read a .tflite flatbuffer into a ModelInfo: ops, tensors, quantization and MACs per layer.

Parsing uses the flatbuffer schema module that ai-edge-litert ships, so reading a model does
not import TensorFlow. Every vector is bounds-checked against the file, because the flatbuffer
accessors would otherwise read silently past the end of a truncated file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from pathlib import Path

import numpy as np

from tinyeff.errors import TinyeffError


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int
    constant: bool
    nbytes: int  # of its constant data in the file (0 for activations)
    data_offset: int = 0  # where that data starts in the file
    variable: bool = False  # state an op keeps from one inference to the next (an LSTM's hidden and cell state)

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclasses.dataclass(frozen=True)
class OpInfo:
    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    macs: int
    # the op's builtin options by schema field name (stride_w, padding, fused_activation_function, ...)
    options: dict = dataclasses.field(default_factory=dict, compare=False)
    intermediates: tuple[int, ...] = ()  # tensors that only carry quantization of inner values (LSTM gates)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    size_bytes: int
    sha256: str
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraphs: int

    @property
    def op_names(self) -> tuple[str, ...]:
        """Distinct op names in order of first use."""
        return tuple(dict.fromkeys(o.op for o in self.ops))

    @property
    def macs(self) -> int:
        return sum(o.macs for o in self.ops)

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def input(self, i: int = 0) -> TensorInfo:
        return self.tensors[self.inputs[i]]

    def output(self, i: int = 0) -> TensorInfo:
        return self.tensors[self.outputs[i]]


def _vector_in_bounds(tab, field_offset: int, elem_size: int, size: int) -> None:
    o = tab.Offset(field_offset)
    if o:
        start = tab.Vector(o)
        if start + tab.VectorLen(o) * elem_size > size:
            raise IndexError("vector past end of file")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _options(schema, o) -> dict:
    """The scalar fields of an operator's builtin options table, e.g. {'stride_w': 2, 'padding': 'SAME'}."""
    kind = _enum_names(schema.BuiltinOptions).get(o.BuiltinOptionsType())
    table = o.BuiltinOptions()
    cls = getattr(schema, kind, None) if kind and kind != "NONE" else None
    if cls is None or table is None:
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    enums = {"Padding": schema.Padding, "FusedActivationFunction": schema.ActivationFunctionType}
    out = {}
    for field in dir(cls):
        if field.startswith(("_", "GetRootAs", "Init")) or field.endswith(("AsNumpy", "Length", "IsNone", "HasIdentifier")):
            continue
        try:
            value = getattr(opts, field)()
        except TypeError:  # vector accessors take an index: not a scalar option
            continue
        if field in enums:
            value = _enum_names(enums[field]).get(value, value)
        if isinstance(value, (int, float, str)):
            out[_snake(field)] = value
    return out


def _macs(op: str, ins: list[TensorInfo | None], outs: list[TensorInfo]) -> int:
    """Multiply-accumulates of one op from its tensor shapes (convolutions and dense layers)."""
    out = outs[0]
    if op == "CONV_2D" and len(ins) > 1 and ins[1] is not None:
        _, kh, kw, ic = ins[1].shape
        return out.elements * kh * kw * ic
    if op == "DEPTHWISE_CONV_2D" and len(ins) > 1 and ins[1] is not None:
        _, kh, kw, _ = ins[1].shape
        return out.elements * kh * kw
    if op == "FULLY_CONNECTED" and len(ins) > 1 and ins[1] is not None:
        return out.elements * ins[1].shape[-1]
    if op == "TRANSPOSE_CONV" and len(ins) > 2 and ins[1] is not None and ins[2] is not None and len(ins[1].shape) == 4:
        oc, kh, kw, _ = ins[1].shape  # every input value meets kh x kw x oc weights
        return ins[2].elements * kh * kw * oc
    if op == "UNIDIRECTIONAL_SEQUENCE_LSTM" and len(ins) > 8 and ins[0] is not None and ins[0].shape:
        # every time step multiplies the input and the previous output by each gate's weights
        steps = ins[0].elements // max(ins[0].shape[-1], 1)
        return steps * sum(t.elements for t in ins[1:9] if t is not None)
    return 0


def read_model(data: bytes, name: str = "model") -> ModelInfo:
    """Parse DATA as a TFLite model; a corrupt or truncated file raises TinyeffError."""
    from ai_edge_litert import schema_py_generated as schema

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TinyeffError(f"'{name}' is not a TFLite model (no TFL3 flatbuffer identifier); give an int8 .tflite file")
    dtypes = _enum_names(schema.TensorType)
    builtins = _enum_names(schema.BuiltinOperator)
    try:
        m = schema.Model.GetRootAs(data, 0)
        if m.SubgraphsLength() < 1:
            raise IndexError("no subgraph")
        for b in range(m.BuffersLength()):
            _vector_in_bounds(m.Buffers(b)._tab, 4, 1, len(data))
        g = m.Subgraphs(0)
        codes = []
        for c in range(m.OperatorCodesLength()):
            oc = m.OperatorCodes(c)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            custom = oc.CustomCode()
            codes.append(f"CUSTOM:{custom.decode()}" if custom else builtins.get(code, f"BUILTIN_{code}"))
        tensors = []
        for t in range(g.TensorsLength()):
            tt = g.Tensors(t)
            _vector_in_bounds(tt._tab, 4, 4, len(data))  # shape
            q = tt.Quantization()
            scales = tuple(float(s) for s in q.ScaleAsNumpy()) if q is not None and q.ScaleLength() else ()
            zps = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q is not None and q.ZeroPointLength() else ()
            buf = m.Buffers(tt.Buffer()) if tt.Buffer() < m.BuffersLength() else None
            nbytes = buf.DataLength() if buf is not None else 0
            data_offset = buf._tab.Vector(buf._tab.Offset(4)) if nbytes else 0
            tensors.append(
                TensorInfo(
                    index=t,
                    name=(tt.Name() or b"").decode("utf-8", "replace"),
                    shape=tuple(int(s) for s in tt.ShapeAsNumpy()) if tt.ShapeLength() else (),
                    dtype=dtypes.get(tt.Type(), f"TYPE_{tt.Type()}"),
                    scales=scales,
                    zero_points=zps,
                    quantized_dimension=q.QuantizedDimension() if q is not None else 0,
                    constant=nbytes > 0,
                    nbytes=nbytes,
                    data_offset=data_offset,
                    variable=bool(tt.IsVariable()),
                )
            )
        ops = []
        for i in range(g.OperatorsLength()):
            o = g.Operators(i)
            _vector_in_bounds(o._tab, 6, 4, len(data))
            _vector_in_bounds(o._tab, 8, 4, len(data))
            ins = tuple(int(v) for v in o.InputsAsNumpy()) if o.InputsLength() else ()
            outs = tuple(int(v) for v in o.OutputsAsNumpy()) if o.OutputsLength() else ()
            op = codes[o.OpcodeIndex()]
            macs = _macs(op, [tensors[j] if j >= 0 else None for j in ins], [tensors[j] for j in outs])
            _vector_in_bounds(o._tab, 20, 4, len(data))  # intermediates
            inter = tuple(int(v) for v in o.IntermediatesAsNumpy()) if o.IntermediatesLength() else ()
            ops.append(OpInfo(i, op, ins, outs, macs, _options(schema, o), inter))
        inputs = tuple(int(v) for v in g.InputsAsNumpy())
        outputs = tuple(int(v) for v in g.OutputsAsNumpy())
        subgraphs = m.SubgraphsLength()
    except TinyeffError:
        raise
    # what the flatbuffer accessors raise on a damaged file
    except (struct.error, IndexError, ValueError, TypeError, AttributeError, OverflowError) as e:
        raise TinyeffError(f"'{name}' is truncated or corrupt: its flatbuffer points outside the file; export the model again") from None
    return ModelInfo(
        name=name,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        tensors=tuple(tensors),
        ops=tuple(ops),
        inputs=inputs,
        outputs=outputs,
        subgraphs=subgraphs,
    )


_NUMPY_DTYPES = {"INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8,
                 "FLOAT32": np.float32}


def constant_array(data: bytes, t: TensorInfo) -> np.ndarray:
    """The constant data of tensor T (weights, biases, shapes) from the model bytes DATA, shaped."""
    if not t.constant:
        raise ValueError(f"tensor {t.index} has no constant data")
    dtype = np.dtype(_NUMPY_DTYPES[t.dtype])
    if t.nbytes != t.elements * dtype.itemsize:
        raise TinyeffError(f"tensor {t.index} holds {t.nbytes} bytes but its shape {t.shape} needs {t.elements * dtype.itemsize}; export the model again")
    return np.frombuffer(data, dtype, t.elements, t.data_offset).reshape(t.shape).copy()


def load_model_file(path: Path) -> tuple[bytes, ModelInfo]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TinyeffError(f"cannot read model '{path}' ({e.strerror}); check the path") from None
    return data, read_model(data, str(path))


def float_boundary(info: ModelInfo, tensor: int) -> bool:
    """Is TENSOR a float model input that only QUANTIZE reads, or a float model output that only
    DEQUANTIZE writes? Such an int8 model with float32 edges still computes in int8 throughout."""
    readers = [o for o in info.ops if tensor in o.inputs]
    writers = [o for o in info.ops if tensor in o.outputs]
    if tensor in info.inputs:
        return bool(readers) and all(o.op == "QUANTIZE" for o in readers) and not writers
    if tensor in info.outputs:
        return len(writers) == 1 and writers[0].op == "DEQUANTIZE" and not readers
    return False


# Activation types the kit deploys: int8 (full-int8), int16 (TFLM's "16x8": int16 activations, int8
# weights) and int32 (indices, shapes and the like some integer ops read or write)
INTEGER_ACTIVATIONS = ("INT8", "INT16", "INT32")


def require_quantized(info: ModelInfo) -> None:
    """Refuse models that compute in float anywhere: integer (int8, or int16 activations with int8
    weights) is what the kit deploys, with float32 allowed only as the input into QUANTIZE and the
    output of DEQUANTIZE. Tensors no op reads or writes (an LSTM's "intermediates", which only carry
    the quantization of its gates) are not activations and are not judged."""
    for role, idx in (("input", info.inputs), ("output", info.outputs)):
        for i in idx:
            t = info.tensors[i]
            if t.dtype not in INTEGER_ACTIVATIONS and not (t.dtype == "FLOAT32" and float_boundary(info, i)):
                raise TinyeffError(
                    f"'{info.name}' is not a quantized model: its {role} '{t.name or i}' is {t.dtype.lower()}; "
                    "quantize it with 'tinyeff quantize' or convert it with int8 (or int16) input and output"
                )
    used = {i for o in info.ops for i in (*o.inputs, *o.outputs) if i >= 0}
    floats = [t for t in info.tensors if t.index in used and not t.constant and t.dtype in ("FLOAT32", "FLOAT16", "FLOAT64")
              and not float_boundary(info, t.index)]
    if floats:
        raise TinyeffError(
            f"'{info.name}' is not a quantized model: {len(floats)} activation tensors are float "
            f"(e.g. '{floats[0].name or floats[0].index}'); convert it with TFLITE_BUILTINS_INT8 (or the 16x8 ops set) only"
        )
