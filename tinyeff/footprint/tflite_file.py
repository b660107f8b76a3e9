"""Read a .tflite flatbuffer into a ModelInfo: ops, tensors, quantization and MACs per layer.

Parsing uses the flatbuffer schema module that ai-edge-litert ships, so reading a model does
not import TensorFlow, through a copy of it whose every read is checked against the file
(flatbuffer.py): a truncated, damaged or hostile file ends in one TinyeffError, never in another
exception, and never reaches TFLM, whose release build checks no offset or index.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from pathlib import Path

import numpy as np

from tinyeff.errors import TinyeffError
from tinyeff.footprint.flatbuffer import Corrupt, checked_module, read_budget

REEXPORT = "export the model again"


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
        return math.prod(self.shape)  # exact: a damaged shape's product may not fit in 64 bits


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


@functools.cache
def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


@functools.cache
def _schema():
    """The tflite schema's generated classes (as ai-edge-litert ships them), reading through bounds checks."""
    return checked_module("ai_edge_litert.schema_py_generated")


@functools.cache
def _names(enum: str) -> dict[int, str]:
    return _enum_names(getattr(_schema(), enum))


_ENUM_OPTIONS = {"padding": "Padding", "fusedActivationFunction": "ActivationFunctionType"}


def _options(opts) -> dict:
    """The scalar fields of an operator's unpacked builtin options, e.g. {'stride_w': 2, 'padding': 'SAME'}."""
    out = {}
    for field in vars(opts) if opts is not None else ():
        value = getattr(opts, field)
        if field in _ENUM_OPTIONS:
            value = _names(_ENUM_OPTIONS[field]).get(value, value)
        if isinstance(value, (int, float, str)):
            out[_snake(field)] = value
    return out


def _macs(op: str, ins: list[TensorInfo | None], outs: list[TensorInfo]) -> int | None:
    """Multiply-accumulates of one op (one output at least) from its tensor shapes (convolutions and
    dense layers), or None when its tensors lack the dimensions the op has."""
    weights = ins[1] if len(ins) > 1 else None
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and weights is not None:
        if not weights.shape or (op != "FULLY_CONNECTED" and len(weights.shape) != 4):
            return None
        out = outs[0]
        if op == "CONV_2D":
            _, kh, kw, ic = weights.shape
            return out.elements * kh * kw * ic
        if op == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = weights.shape
            return out.elements * kh * kw
        return out.elements * weights.shape[-1]
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
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TinyeffError(f"'{name}' is not a TFLite model (no TFL3 flatbuffer identifier); give an int8 .tflite file")
    schema = _schema()
    try:
        # a file's tables and vector items fit in its bytes; an honest file reads each about once
        with read_budget(4 * len(data) + 1024):
            root = schema.Model.GetRootAs(data, 0)
            # The object API reads every field of the file, each read checked: TFLM's Python wrapper unpacks
            # the file the same way, and its C++ then follows many of the same offsets.
            model = schema.ModelT.InitFromObj(root)
            buffers = []  # (start, bytes) of each buffer's data in the file
            for b, buf in enumerate(model.buffers or ()):
                tab = root.Buffers(b)._tab
                buffers.append((tab.Vector(tab.Offset(4)), len(buf.data)) if buf.data is not None else (0, 0))
    except Corrupt as e:
        raise TinyeffError(f"'{name}' is truncated or corrupt ({e}); {REEXPORT}") from None
    return _Reader(data, name, buffers).model(model)


def _ints(values) -> tuple:
    return tuple(values.tolist()) if values is not None else ()


class _Reader:
    """Describes an unpacked model, refusing one whose indices name tensors, buffers or operator codes
    it does not have: the kit's later stages and TFLM (whose release build checks none) index with them."""

    def __init__(self, data: bytes, name: str, buffers: list[tuple[int, int]]):
        self.data, self.name, self.buffers = data, name, buffers

    def fail(self, what: str) -> TinyeffError:
        return TinyeffError(f"'{self.name}' {what.strip()}; the file is corrupt, {REEXPORT}")

    def model(self, m) -> ModelInfo:
        self.codes = [self._op_name(c) for c in m.operatorCodes or ()]
        if not m.subgraphs:
            raise self.fail("holds no subgraph")
        for meta in m.metadata or ():  # TFLM looks for an offline memory plan in the metadata's buffers
            self._buffer(meta.buffer, "metadata")
        # TFLM loads every subgraph (the bodies of WHILE, IF, CALL_ONCE): each is checked, the first described
        tensors, ops, inputs, outputs = [self._subgraph(g) for g in m.subgraphs][0]
        return ModelInfo(name=self.name, size_bytes=len(self.data), sha256=hashlib.sha256(self.data).hexdigest(),
                         tensors=tensors, ops=ops, inputs=inputs, outputs=outputs, subgraphs=len(m.subgraphs))

    def _op_name(self, c) -> str:
        code = max(c.builtinCode, c.deprecatedBuiltinCode)  # old files have only the deprecated one
        if c.customCode:
            return f"CUSTOM:{c.customCode.decode('utf-8', 'replace')}"
        return _names("BuiltinOperator").get(code, f"BUILTIN_{code}")

    def _buffer(self, b: int, whose: str) -> tuple[int, int]:
        if b >= len(self.buffers):
            raise self.fail(f"{whose} names buffer {b}, but it has only {len(self.buffers)} buffers")
        return self.buffers[b]

    def _subgraph(self, g):
        tensors = tuple(self._tensor(k, t) for k, t in enumerate(g.tensors or ()))
        n = len(tensors)

        def indices(found, who: str, what: str, optional: bool = False, required: bool = False) -> tuple[int, ...]:
            if found is None and required:
                raise self.fail(f"{who} has no {what.split(' ', 1)[1]}s")
            bad = [i for i in _ints(found) if not -optional <= i < n]
            if bad:
                raise self.fail(f"{who} names tensor {bad[0]} as {what}, but it has only {n} tensors")
            return _ints(found)

        inputs = indices(g.inputs, "", "a model input", required=True)
        outputs = indices(g.outputs, "", "a model output", required=True)
        ops = []
        for k, o in enumerate(g.operators or ()):
            if o.opcodeIndex >= len(self.codes):
                raise self.fail(f"op {k} names operator code {o.opcodeIndex}, but it has only {len(self.codes)}")
            op = self.codes[o.opcodeIndex]
            who = f"op {k} ({op})"
            ins = indices(o.inputs, who, "an input", optional=True, required=True)
            outs = indices(o.outputs, who, "an output", required=True)
            inter = indices(o.intermediates, who, "an intermediate", optional=True)
            if not outs:  # TFLM's kernels take output 0 unchecked, and so does inspect
                raise self.fail(f"{who} writes no tensor")
            macs = _macs(op, [tensors[j] if j >= 0 else None for j in ins], [tensors[j] for j in outs])
            if macs is None:
                raise self.fail(f"op {k} ({op}) has tensors of shapes {[tensors[j].shape if j >= 0 else None for j in (*ins, *outs)]}, "
                                f"which no {op} has")
            ops.append(OpInfo(k, op, ins, outs, macs, _options(o.builtinOptions), inter))
        return tensors, tuple(ops), inputs, outputs

    def _tensor(self, k: int, t) -> TensorInfo:
        q = t.quantization
        start, nbytes = self._buffer(t.buffer, f"tensor {k}")
        return TensorInfo(
            index=k,
            name=(t.name or b"").decode("utf-8", "replace"),
            shape=_ints(t.shape),
            dtype=_names("TensorType").get(t.type, f"TYPE_{t.type}"),
            scales=_ints(q.scale) if q is not None else (),
            zero_points=_ints(q.zeroPoint) if q is not None else (),
            quantized_dimension=q.quantizedDimension if q is not None else 0,
            constant=nbytes > 0,
            nbytes=nbytes,
            data_offset=start,
            variable=bool(t.isVariable),
        )


_NUMPY_DTYPES = {"INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8,
                 "FLOAT32": np.float32}


def constant_array(data: bytes, t: TensorInfo) -> np.ndarray:
    """The constant data of tensor T (weights, biases, shapes) from the model bytes DATA, shaped."""
    if not t.constant:
        raise ValueError(f"tensor {t.index} has no constant data")
    if t.dtype not in _NUMPY_DTYPES:
        raise TinyeffError(f"tensor {t.index} holds {t.dtype.lower()} constants, which tinyeff cannot read; export the model "
                           f"with {', '.join(d.lower() for d in _NUMPY_DTYPES)} constants")
    dtype = np.dtype(_NUMPY_DTYPES[t.dtype])
    if t.nbytes != t.elements * dtype.itemsize or any(d < 0 for d in t.shape):
        raise TinyeffError(f"tensor {t.index} holds {t.nbytes} bytes but its shape {t.shape} needs {t.elements * dtype.itemsize}; {REEXPORT}")
    return np.frombuffer(data, dtype, t.elements, t.data_offset).reshape(t.shape).copy()


# bytes per value of the tensor types whose constants are dense arrays (packed, string and resource types are not)
_ITEMSIZE = {"INT8": 1, "UINT8": 1, "BOOL": 1, "INT16": 2, "FLOAT16": 2, "INT32": 4, "UINT32": 4, "FLOAT32": 4,
             "INT64": 8, "FLOAT64": 8}


def require_loadable(info: ModelInfo) -> None:
    """Refuse what TFLM's release build would read past a buffer or abort on without a word, as it
    checks none of it: constants smaller than their shape, scales that are negative or not finite
    (an int8 or int16 activation's must also not be 0), and zero points neither one nor one per scale."""
    for t in info.tensors:
        where = f"'{info.name}' tensor {t.index}{f' ({t.name})' if t.name else ''}"
        size = _ITEMSIZE.get(t.dtype)
        if t.constant and size and (t.nbytes != t.elements * size or any(d < 0 for d in t.shape)):
            raise TinyeffError(f"{where} holds {t.nbytes} bytes of data but its shape {t.shape} needs {t.elements * size}; "
                               f"the file is truncated or corrupt, {REEXPORT}")
        divides = not t.constant and t.dtype in ("INT8", "INT16")  # kernels divide by its scale
        bad = [s for s in t.scales if not (math.isfinite(s) and (s > 0 or s == 0 and not divides))]
        if bad:
            raise TinyeffError(f"{where} has the quantization scale {bad[0]!r}; scales must be finite and positive, {REEXPORT}")
        if t.scales and len(t.zero_points) not in (1, len(t.scales)):
            raise TinyeffError(f"{where} has {len(t.scales)} quantization scales and {len(t.zero_points)} zero points; "
                               f"it needs one zero point or one per scale, {REEXPORT}")


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
