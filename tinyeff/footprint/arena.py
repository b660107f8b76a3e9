"""The TFLM tensor arena a model really needs, as recorded by the host TFLM interpreter.

The ``tflite_micro`` package is TFLM itself built for the host; its RecordingMicroAllocator
prints ``Arena allocation total/head/tail N bytes`` from C to file descriptor 2. The head holds
the activations (TFLM's memory plan), the tail the persistent data (tensor structs, kernel
buffers). Host pointers are 8 bytes wide, so on a 32-bit MCU the tail is a little smaller: the
host figure is an upper bound.
"""

from __future__ import annotations

import dataclasses
import re

from tinyeff._native import captured_fds
from tinyeff.errors import TinyeffError
from tinyeff.footprint.contained import call_contained
from tinyeff.footprint.tflite_file import read_model, require_loadable

_START_ARENA = 1 << 20
_MAX_ARENA = 1 << 27


@dataclasses.dataclass(frozen=True)
class ArenaUse:
    total: int
    head: int  # activations
    tail: int  # persistent data


def _line(text: str, what: str) -> int:
    m = re.search(rf"Arena allocation {what} (\d+) bytes", text)
    if not m:
        raise RuntimeError(f"TFLM printed no 'Arena allocation {what}' line; it printed:\n{text}")
    return int(m.group(1))


def tflm_interpreter(model: bytes, name: str):
    """A host TFLM interpreter for MODEL with an arena large enough, and the log it printed while loading."""
    from tflite_micro.python.tflite_micro import runtime

    require_loadable(read_model(model, name))  # what TFLM would crash on instead of refusing
    arena = _START_ARENA
    while True:
        with captured_fds(1, 2) as log:
            try:
                interp = runtime.Interpreter.from_bytes(model, arena_size=arena)
                error = None
            except RuntimeError as e:
                error = e
        text = "".join(log)
        if error is None:
            return interp
        # the arena was too small ("Failed to resize buffer. Requested: R, available A, missing: M" for
        # the activations, the same with "missing" for the persistent tail): try again with 4x
        if "missing: " in text and arena < _MAX_ARENA:
            arena *= 4
            continue
        # TFLM stops at the first op it has no kernel for: one is named, and the next after it is removed
        missing = re.search(r"Didn't find op for builtin opcode '(\w+)'", text)
        if missing:
            raise TinyeffError(f"'{name}' uses {missing.group(1)}, which TFLM does not support; remove that op from the model")
        # TFLM prints the failed check, then the node that failed: both, in order, say what is wrong
        why = "; ".join(line.strip() for line in text.splitlines() if line.strip()) or str(error)
        raise TinyeffError(f"TFLM cannot load '{name}' ({why}); check that it is a valid int8 model")


def host_tflm_arena(model: bytes, name: str) -> ArenaUse:
    """Arena bytes the host TFLM interpreter allocates for MODEL, measured in a child process: what
    TFLM aborts on instead of refusing ends as a TinyeffError, not as the end of the caller."""
    return call_contained(_measure, model, name, what=f"TFLM, loading '{name}',")


def _measure(model: bytes, name: str) -> ArenaUse:
    interp = tflm_interpreter(model, name)
    with captured_fds(2) as log:
        interp.print_allocations()
    text = "".join(log)
    return ArenaUse(total=_line(text, "total"), head=_line(text, "head"), tail=_line(text, "tail"))
