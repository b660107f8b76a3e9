"""A static memory plan: every activation tensor gets a fixed offset in one arena.

Tensors that are alive at the same time never overlap. On top of lifetime packing (as TFLM's
greedy planner does), an op whose input dies with it may write its output over that input:
elementwise ops, pointwise convolutions and depthwise convolutions (which first copy the few
input rows they still need into a small ring). The input and output of such an op form one
block at a relative offset chosen so that no byte is overwritten before it is read; that
condition is checked here by walking the op's order of reads and writes, not assumed.
A RESHAPE is no copy at all: its output is its input's bytes.
"""

from __future__ import annotations

import dataclasses

from tinyeff.codegen.lower import Layer, LoweredModel

ALIGN = 4


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    arena_bytes: int
    offsets: dict  # activation tensor -> byte offset in the arena
    scratch: dict  # layer index -> offset of its in-place scratch (ring rows or a group of pixels)
    inplace: tuple[int, ...]  # layers that overwrite their input
    work: dict = dataclasses.field(default_factory=dict)  # layer index -> offset of its work buffer (im2col)

    def to_json(self, model: LoweredModel) -> dict:
        return {
            "arena_bytes": self.arena_bytes,
            "tensors": [{"tensor": t, "offset": o, "bytes": model.tensor_bytes[t]} for t, o in sorted(self.offsets.items())],
            "scratch": [{"layer": i, "offset": o} for i, o in sorted(self.scratch.items())],
            "work": [{"layer": i, "offset": o} for i, o in sorted(self.work.items())],
            "inplace_layers": list(self.inplace),
        }


def _rows_safe(f: dict, delta: int) -> bool:
    """Can a depthwise conv with output at input + DELTA bytes save each row it needs before it is overwritten?"""
    in_row, out_row = f["in_w"] * f["in_c"], f["out_w"] * f["out_c"]
    span = (f["k_h"] - 1) * f["dil_h"] + 1
    copied = -1
    for oy in range(f["out_h"]):
        last = min(f["in_h"] - 1, oy * f["stride_h"] - f["pad_top"] + span - 1)
        written = (delta, delta + oy * out_row)  # output rows 0..oy-1
        for r in range(max(copied + 1, 0), last + 1):
            if written[1] > written[0] and r * in_row < written[1] and (r + 1) * in_row > written[0]:
                return False
        copied = max(copied, last)
    return True


def _pixel_safe(f: dict, delta: int) -> bool:
    """Does output pixel p (at input + DELTA) leave input pixels p+1.. untouched?"""
    ic, oc, n = f["in_c"], f["out_c"], f["in_h"] * f["in_w"]
    return all(delta + (p + 1) * oc <= (p + 1) * ic for p in range(n - 1))


def _inplace_delta(layer: Layer, in_bytes: int, out_bytes: int) -> int | None:
    """Offset of the output relative to the input at which LAYER may run in place, or None."""
    if layer.inplace == "elementwise":
        return 0 if in_bytes == out_bytes else None
    check = {"pixel": _pixel_safe, "rows": _rows_safe}.get(layer.inplace)
    if check is None:
        return None
    for delta in (0, in_bytes - out_bytes):  # start-aligned, then end-aligned
        if check(layer.fields, delta):
            return delta
    return None


def plan_memory(model: LoweredModel, inplace: bool = True) -> MemoryPlan:
    """Offsets for every activation tensor and scratch buffer; INPLACE=False plans like TFLM (lifetimes only)."""
    n = len(model.layers)
    first = {t: (-1 if t == model.input else n) for t in model.tensor_bytes}
    last = {t: (n if t == model.output else -1) for t in model.tensor_bytes}
    for i, layer in enumerate(model.layers):
        first[layer.output] = min(first[layer.output], i)
        for t in layer.inputs:
            if t in last:  # constants live in flash
                last[t] = max(last[t], i)

    # blocks: tensor -> (block id, offset inside the block); members listed per block
    where = {t: (t, 0) for t in model.tensor_bytes}
    members = {t: [t] for t in model.tensor_bytes}

    def join(t_new: int, t_old: int, rel: int) -> None:
        b, base = where[t_old]
        old = members.pop(where[t_new][0])
        for m in old:
            where[m] = (b, base + rel + where[m][1])
            members[b].append(m)

    def block_last_use(b: int) -> int:
        return max(last[m] for m in members[b])

    running_inplace, scratch_need = [], {}
    for i, layer in enumerate(model.layers):
        if not layer.kernel:  # RESHAPE: same bytes
            join(layer.output, layer.inputs[0], 0)
            continue
        if not inplace or not layer.inplace:
            continue
        for t in layer.inputs:
            if t not in where:
                continue
            b = where[t][0]
            if block_last_use(b) > i or where[layer.output][0] == b:
                continue
            delta = _inplace_delta(layer, model.tensor_bytes[t], model.tensor_bytes[layer.output])
            if delta is None:
                continue
            join(layer.output, t, delta)
            running_inplace.append(i)
            if layer.scratch_bytes:
                scratch_need[i] = layer.scratch_bytes
            break

    # each block: extent and lifetime
    blocks = []
    for b, ms in members.items():
        lo = min(where[m][1] for m in ms)
        hi = max(where[m][1] + model.tensor_bytes[m] for m in ms)
        blocks.append((hi - lo, min(first[m] for m in ms), max(last[m] for m in ms), ("block", b, lo)))
    for i, size in scratch_need.items():
        blocks.append((size, i, i, ("scratch", i, 0)))
    for i, layer in enumerate(model.layers):
        if layer.work_bytes:
            blocks.append((layer.work_bytes, i, i, ("work", i, 0)))

    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    at = {}
    for size, t0, t1, key in sorted(blocks, key=lambda x: (-x[0], x[1], x[3][1])):
        offset = 0
        for o, s, a, z in sorted(p for p in placed if not (p[3] < t0 or p[2] > t1)):
            if offset + size <= o:
                break
            offset = max(offset, -(-(o + s) // ALIGN) * ALIGN)
        placed.append((offset, size, t0, t1))
        at[key[:2]] = offset - key[2]
    offsets = {t: at[("block", where[t][0])] + where[t][1] for t in model.tensor_bytes}
    scratch = {i: at[("scratch", i)] for i in scratch_need}
    work = {i: at[("work", i)] for i, layer in enumerate(model.layers) if layer.work_bytes}
    arena = max((o + s for o, s, _, _ in placed), default=0)
    return MemoryPlan(-(-arena // 16) * 16, offsets, scratch, tuple(running_inplace), work)
