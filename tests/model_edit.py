"""Edit a .tflite file through the tflite schema's object API: unpack, change fields, pack again.

Tests use it to make the inconsistent models a hand edit, a buggy exporter or a damaged file
would give; ai-edge-litert ships the schema, so no TensorFlow import is needed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# TensorType codes of the tflite schema
TYPES = {"FLOAT32": 0, "INT32": 2, "UINT8": 3, "INT64": 4, "BOOL": 6, "INT16": 7, "INT8": 9}


def unpack(data: bytes):
    """The model DATA as a mutable schema.ModelT."""
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def pack(model) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def edit(data: bytes, change: Callable) -> bytes:
    """DATA with CHANGE(model, subgraph 0) applied."""
    model = unpack(data)
    change(model, model.subgraphs[0])
    return pack(model)


def set_constant(model, tensor, values: np.ndarray) -> None:
    """Give TENSOR the shape and bytes of VALUES (its dtype must match the tensor's type)."""
    tensor.shape = np.array(values.shape, np.int32)
    model.buffers[tensor.buffer].data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)


def set_quantization(tensor, scales, zero_points, dim: int = 0) -> None:
    q = tensor.quantization
    q.scale = np.array(scales, np.float32)
    q.zeroPoint = np.array(zero_points, np.int64)
    q.quantizedDimension = dim
