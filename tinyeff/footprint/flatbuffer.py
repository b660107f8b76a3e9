"""Bounds-checked reads of a flatbuffer, for files that may be truncated, damaged or hostile.

The flatbuffers package trusts the file it reads: past the end it fails with whatever struct or
numpy raises, a damaged length makes it read millions of garbage elements, and a string without
its terminator is cut short where TFLM's C++ would read past it. Here every read goes through
``_read`` (one scalar) or ``Table._span`` (one vector or string), which check it against the file
and raise ``Corrupt`` instead.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import struct
from types import ModuleType

import flatbuffers.number_types
import flatbuffers.table
import numpy as np

_U16, _U32, _I32 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<i")


class Corrupt(Exception):
    """A flatbuffer offset, length or vtable points outside the file, or its offsets alias so much that
    reading it would unpack far more than the file holds."""


# Offsets may point at the same table many times over (a vector of 10,000 offsets to one subgraph):
# every read is in the file, yet unpacking it makes gigabytes of objects (found by the fuzzer). A read
# under read_budget(N) may touch at most N tables and vector items in all.
_items_left: int | None = None


@contextlib.contextmanager
def read_budget(items: int):
    global _items_left
    saved, _items_left = _items_left, items
    try:
        yield
    finally:
        _items_left = saved


def _charge(items: int) -> None:
    global _items_left
    if _items_left is not None:
        _items_left -= items
        if _items_left < 0:
            raise Corrupt("its offsets point into each other, so reading it would unpack far more than the file holds")


def _read(buf: bytes, fmt: struct.Struct, off: int):
    if off < 0 or off + fmt.size > len(buf):
        raise Corrupt(f"a read of {fmt.size} bytes at {off} is outside the file's {len(buf)} bytes")
    return fmt.unpack_from(buf, off)[0]


class Table(flatbuffers.table.Table):
    """flatbuffers' Table with every read checked. As there, OFF is a position in the file for Get,
    Indirect and String, and a field's offset from the table for the vector reads and Union."""

    __slots__ = ("_vtable", "_vtable_size")

    def __init__(self, buf: bytes, pos: int):
        _charge(1)
        self.Bytes, self.Pos = buf, pos
        self._vtable = pos - _read(buf, _I32, pos)
        self._vtable_size = _read(buf, _U16, self._vtable)
        if self._vtable_size < 4 or self._vtable + self._vtable_size > len(buf):
            raise Corrupt(f"the vtable of the table at {pos} is outside the file")

    def Offset(self, vtable_offset: int) -> int:
        return _read(self.Bytes, _U16, self._vtable + vtable_offset) if vtable_offset < self._vtable_size else 0

    def Get(self, flags, off: int):
        return flags.py_type(_read(self.Bytes, flags.packer_type, off))

    def Indirect(self, off: int) -> int:
        return off + _read(self.Bytes, _U32, off)

    def String(self, off: int) -> bytes:
        start, n = self._span(off, 1, string=True)
        return bytes(self.Bytes[start:start + n])

    def VectorLen(self, off: int) -> int:
        return self._span(self.Pos + off, 1)[1]  # every item takes a byte at least

    def Vector(self, off: int) -> int:
        return self._span(self.Pos + off, 1)[0]  # the accessors then read each item with Get or Indirect

    def GetVectorAsNumpy(self, flags, off: int) -> np.ndarray:
        start, n = self._span(self.Pos + off, flags.bytewidth)
        return np.frombuffer(self.Bytes, flatbuffers.number_types.to_numpy_type(flags), n, start)

    def Union(self, t2, off: int) -> None:
        t2.Bytes, t2.Pos = self.Bytes, self.Indirect(self.Pos + off)

    def _span(self, off: int, item_size: int, string: bool = False) -> tuple[int, int]:
        """(start, count) of the vector or string that the offset at OFF points to, checked to lie in
        the file (a string also needs the terminating zero that C++ readers rely on)."""
        at = self.Indirect(off)
        n = _read(self.Bytes, _U32, at)
        end = at + 4 + n * item_size
        if end + string > len(self.Bytes) or (string and self.Bytes[end] != 0):
            raise Corrupt(f"the {'string' if string else 'vector'} of {n} items at {at} runs past the file's end")
        _charge(n)
        return at + 4, n


@functools.cache
def checked_module(name: str) -> ModuleType:
    """A private copy of the flatc-generated Python module NAME whose readers all read through Table.
    Its object API (``ModelT.InitFromObj``) then reads every field of a file, each read checked, which
    verifies the whole file; the module itself stays as it is for its other users."""
    spec = importlib.util.find_spec(name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def init(self, buf, pos):
        self._tab = Table(buf, pos)

    for cls in vars(module).values():
        if isinstance(cls, type) and "Init" in vars(cls) and "_tab" in getattr(cls, "__slots__", ()):
            cls.Init = init
    return module
