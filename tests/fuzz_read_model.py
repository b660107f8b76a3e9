"""atheris target: bytes through the .tflite reader, which must return a consistent ModelInfo or raise
TinyeffError in one sentence; any other exception is a crash that libFuzzer saves as an artifact.

Run by tests/test_reader_fuzz.py as `python fuzz_read_model.py CORPUS -runs=N ...` (libFuzzer flags).
Half the mutations are libFuzzer's own, half tflite_mutate's, which know the flatbuffer's layout.
"""

from __future__ import annotations

import random
import sys

import atheris

# first, so that the reader's modules are imported (and instrumented for coverage) here, and with them
# the reader's checked copy of the schema's generated classes, whose field reads are most of its branches
with atheris.instrument_imports(include=["tinyeff.footprint.tflite_file", "tinyeff.footprint.flatbuffer",
                                         "ai_edge_litert.schema_py_generated"]):
    from tinyeff.footprint import tflite_file
    from tinyeff.footprint.tflite_file import constant_array, read_model, require_quantized

    tflite_file._schema()

import tflite_mutate  # noqa: E402
from tinyeff.errors import TinyeffError  # noqa: E402


def check(data: bytes) -> None:
    try:
        info = read_model(data, "fuzz")
        _check_consistent(info, len(data))
        require_quantized(info)
        for t in info.tensors:
            if t.constant:
                constant_array(data, t)
    except TinyeffError as e:
        if not str(e) or "\n" in str(e):
            raise AssertionError(f"refused without one sentence: {e!r}") from None


def _check_consistent(info, size: int) -> None:
    """What the kit's later stages index without checking."""
    n = len(info.tensors)
    assert all(0 <= i < n for i in (*info.inputs, *info.outputs)), "a model input or output outside the tensors"
    for op in info.ops:
        assert all(-1 <= i < n for i in (*op.inputs, *op.intermediates)) and all(0 <= i < n for i in op.outputs), op
    for t in info.tensors:
        assert 0 <= t.data_offset and t.data_offset + t.nbytes <= size, t


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    return tflite_mutate.structured(data, rng)[:max_size]


if __name__ == "__main__":
    atheris.Setup(sys.argv, check, custom_mutator=mutate)
    atheris.Fuzz()
