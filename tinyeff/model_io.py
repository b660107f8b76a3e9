"""A model's inputs and outputs as the firmware carries them: one byte string each way.

A device (or the host build of the compiled runtime) takes every input's bytes one after another,
in the model's order, and gives back every output's bytes the same way; ``tinyeff.json`` names
each one with its type, shape, quantization and place in that string. ``pack`` and ``unpack`` turn
per-tensor arrays (first axis: samples) into those strings and back.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tinyeff.errors import TinyeffError

# types a model's inputs and outputs may have on the firmware
IO_DTYPES = ("int8", "int16", "int32", "float32")


@dataclasses.dataclass(frozen=True)
class IoTensor:
    name: str
    dtype: str  # one of IO_DTYPES
    shape: tuple[int, ...]
    scale: float  # real = scale * (q - zero_point); for float32, the quantization of the int side
    zero_point: int
    offset: int  # where its bytes start in the string of all inputs (or all outputs)
    bytes: int

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: without the leading batch axis of 1 (a 1-D tensor has none)."""
        return self.shape[1:] if len(self.shape) > 1 else self.shape

    def to_json(self) -> dict:
        return dict(dataclasses.asdict(self), shape=list(self.shape))

    @classmethod
    def from_json(cls, d: dict) -> "IoTensor":
        return cls(**dict(d, shape=tuple(d["shape"])))


def _quantization_of(info, t):
    """The tensor whose scale and zero point give T's real values: T itself, or for a float input the
    tensor QUANTIZE makes from it, for a float output the tensor DEQUANTIZE reads."""
    if t.dtype != "FLOAT32":
        return t
    made = next((info.tensors[o.outputs[0]] for o in info.ops if t.index in o.inputs and o.op == "QUANTIZE"), None)
    read = next((info.tensors[o.inputs[0]] for o in info.ops if t.index in o.outputs and o.op == "DEQUANTIZE"), None)
    return made or read or t


def io_tensors(info) -> tuple[tuple[IoTensor, ...], tuple[IoTensor, ...]]:
    """(inputs, outputs) of the model INFO, each placed in its byte string; an input or output of a type
    the firmware does not carry raises TinyeffError."""
    roles = []
    for role, idx in (("input", info.inputs), ("output", info.outputs)):
        offset, items = 0, []
        for k, i in enumerate(idx):
            t = info.tensors[i]
            dtype = t.dtype.lower()
            if dtype not in IO_DTYPES:
                raise TinyeffError(f"'{info.name}' {role} {k} '{t.name}' is {dtype}; the firmware carries "
                                   f"{', '.join(IO_DTYPES)} inputs and outputs; export the model with one of those")
            q = _quantization_of(info, t)
            nbytes = t.elements * np.dtype(dtype).itemsize
            items.append(IoTensor(t.name or f"{role}{k}", dtype, tuple(t.shape), float(q.scales[0]) if q.scales else 0.0,
                                  int(q.zero_points[0]) if q.zero_points else 0, offset, nbytes))
            offset += nbytes
        roles.append(tuple(items))
    return roles[0], roles[1]


def pack(items: tuple[IoTensor, ...], arrays) -> np.ndarray:
    """ARRAYS (one per item, first axis = samples; or one array for a single item) as a uint8 array
    of (samples, all items' bytes): what the device is sent, sample by sample."""
    if isinstance(arrays, np.ndarray):
        arrays = [arrays]
    if len(arrays) != len(items):
        raise TinyeffError(f"the model takes {len(items)} inputs ({', '.join(t.name for t in items)}) but "
                           f"{len(arrays)} arrays were given; give one array per input, in the model's order")
    n = len(arrays[0])
    parts = []
    for t, a in zip(items, arrays):
        a = np.asarray(a)
        if len(a) != n or a[0].size * np.dtype(t.dtype).itemsize != t.bytes:
            raise TinyeffError(f"input '{t.name}' needs {n} samples of shape {t.sample_shape} ({t.dtype}); "
                               f"got an array of shape {a.shape}")
        parts.append(np.ascontiguousarray(a, dtype=t.dtype).reshape(n, -1).view(np.uint8))
    return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), np.uint8)


def unpack(items: tuple[IoTensor, ...], raw: np.ndarray) -> list[np.ndarray]:
    """The per-item arrays (samples first, each shaped as its tensor without the batch axis of 1) in
    RAW, a uint8 array of (samples, all items' bytes)."""
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(len(raw), -1)
    out = []
    for t in items:
        a = raw[:, t.offset:t.offset + t.bytes].copy().view(t.dtype)
        out.append(a.reshape(len(raw), *t.sample_shape))
    return out
