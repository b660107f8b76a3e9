"""Structure-aware mutations of a .tflite file: they hit the offsets, lengths and vtable entries the
reader follows, or bytes inside the vectors it reads (shapes, indices, scales, weights), which random
byte flips rarely reach in a 50 KB model that is mostly weights. The fields are found by tracing the
reader's own bounds-checked reads of the file."""

from __future__ import annotations

import functools
import random

from tinyeff.errors import TinyeffError
from tinyeff.footprint import flatbuffer
from tinyeff.footprint.tflite_file import read_model


@functools.lru_cache(maxsize=512)  # libFuzzer mutates each corpus unit many times
def fields(data: bytes) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """((offset, size) of every scalar the reader reads, (start, bytes) of every vector it reads) in DATA."""
    scalars, vectors = [], []
    read, span = flatbuffer._read, flatbuffer.Table._span

    def traced_read(buf, fmt, off):
        scalars.append((off, fmt.size))
        return read(buf, fmt, off)

    def traced_span(self, off, item_size, string=False):
        start, n = span(self, off, item_size, string)
        vectors.append((start, n * item_size))
        return start, n

    flatbuffer._read, flatbuffer.Table._span = traced_read, traced_span
    try:
        read_model(data, "seed")
    except TinyeffError:
        pass
    finally:
        flatbuffer._read, flatbuffer.Table._span = read, span
    return tuple(scalars), tuple(v for v in vectors if v[1])


def structured(data: bytes, rng: random.Random) -> bytes:
    """DATA with one field, or a few bytes of one vector, changed."""
    scalars, vectors = fields(data)
    out = bytearray(data)
    if vectors and rng.random() < 0.3:
        start, size = rng.choice(vectors)
        for _ in range(rng.randint(1, 4)):
            out[start + rng.randrange(size)] = rng.randrange(256)
        return bytes(out)
    if not scalars:
        return bytes(out)
    off, size = rng.choice(scalars)  # an offset, a length, a vtable entry or a field
    value = int.from_bytes(out[off:off + size], "little")
    bits = 8 * size
    value = rng.choice((0, 1, value + 1, value - 1, value + 4, value - 4, value * 2, len(data), len(data) - off,
                        (1 << bits - 1) - 1, 1 << bits - 1, (1 << bits) - 1, value ^ 1 << rng.randrange(bits)))
    out[off:off + size] = (value % (1 << bits)).to_bytes(size, "little")
    return bytes(out)
