"""A static memory plan: every activation tensor gets a fixed offset in one arena.

Tensors that are alive at the same time never overlap, with one exception: an op may write its
output over an input that dies with it, when the op's order of reads and writes allows it at
that relative offset. Elementwise ops need the two at the same offset; a pointwise conv reads
whole pixels before it writes them; any other conv or depthwise conv first copies the input
rows it still needs into a small ring. Whether an offset is safe is decided here by walking the
op's order of reads and writes, not assumed. A RESHAPE is no copy at all: its output is its
input's bytes.

Placement is first fit over tensors from the largest down (as TFLM's greedy planner), where the
candidate offsets of a tensor include those that put it safely over, or under, its in-place
partner. Which layers end up in place follows from the offsets (their input and output
overlap); their rings and the kernels' work buffers are placed afterwards, live for their layer
only. ``floor_bytes`` is the lower bound any such plan has: at some layer, the tensors that
stay alive across it plus the larger of its output and its dying inputs.
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
    floor_bytes: int = 0  # no plan of this model's tensors can need fewer bytes (see floor_bytes())
    ring_rows: dict = dataclasses.field(default_factory=dict)  # in-place "rows" layer -> rows its ring holds

    def to_json(self, model: LoweredModel) -> dict:
        return {
            "arena_bytes": self.arena_bytes,
            "floor_bytes": self.floor_bytes,
            "tensors": [{"tensor": t, "offset": o, "bytes": model.tensor_bytes[t]} for t, o in sorted(self.offsets.items())],
            "scratch": [{"layer": i, "offset": o} for i, o in sorted(self.scratch.items())],
            "work": [{"layer": i, "offset": o} for i, o in sorted(self.work.items())],
            "ring_rows": [{"layer": i, "rows": r} for i, r in sorted(self.ring_rows.items())],
            "inplace_layers": list(self.inplace),
        }


def _rows_safe(f: dict, delta: int, ring_rows: int | None = None) -> bool:
    """Can a conv with output at input + DELTA bytes and a ring of RING_ROWS rows (default: the
    span) run in te_ring.h's order: each row intact when the ring takes it, and each row of a
    window read from the input itself intact until that window's output row is written?"""
    in_row, out_row = f["in_w"] * f["in_c"], f["out_w"] * f["out_c"]
    span = (f["k_h"] - 1) * f["dil_h"] + 1
    rows = ring_rows or span

    def intact(r: int, out_rows: int) -> bool:  # input row r against output rows 0..out_rows-1
        lo, hi = delta, delta + out_rows * out_row
        return not (hi > lo and r * in_row < hi and (r + 1) * in_row > lo)

    copied = -1
    for oy in range(f["out_h"]):
        first = oy * f["stride_h"] - f["pad_top"]
        last = min(f["in_h"] - 1, first + rows - 1)
        if not all(intact(r, oy) for r in range(max(copied + 1, 0), last + 1)):
            return False
        copied = max(copied, last)
        # rows read from the input while output row oy is being written (a kernel may write the
        # row's pixels as it goes, or a group of pixels reaching into the next row: both end by oy + 1)
        if not all(intact(r, oy + 1) for r in range(max(copied + 1, 0), min(f["in_h"] - 1, first + span - 1) + 1)):
            return False
    return True


def _ring_rows(layer: Layer, delta: int) -> int:
    """The fewest ring rows with which LAYER runs in place at DELTA (the span when its kernel needs a full ring)."""
    f = layer.fields
    span = (f["k_h"] - 1) * f["dil_h"] + 1
    if not layer.partial_ring:
        return span
    return next(r for r in range(1, span + 1) if _rows_safe(f, delta, r))


def _pixel_safe(f: dict, delta: int) -> bool:
    """Does writing output pixels 0..p-1 (at input + DELTA) leave input pixels p.. untouched, for every p?

    A kernel that computes a group of pixels before writing them checks the same condition at
    group boundaries only, so this holds for any group size."""
    ic, oc, n = f["in_c"], f["out_c"], f["in_h"] * f["in_w"]
    return all(delta + (p + 1) * oc <= (p + 1) * ic for p in range(n - 1))


def _inplace_safe(layer: Layer, delta: int, in_bytes: int, out_bytes: int) -> bool:
    """May LAYER write its output at DELTA bytes from its input's start, the two overlapping?"""
    if layer.inplace == "elementwise":
        return delta == 0 and in_bytes == out_bytes
    check = {"pixel": _pixel_safe, "rows": _rows_safe}.get(layer.inplace)
    return bool(check) and check(layer.fields, delta)


@dataclasses.dataclass
class _Buffer:
    """Tensors that share bytes (a RESHAPE's output is its input), with their joint lifetime."""

    key: int
    size: int
    first: int
    last: int
    offset: int | None = None

    def overlaps_in_time(self, other: "_Buffer") -> bool:
        return not (self.last < other.first or other.last < self.first)

    def overlaps_in_space(self, offset: int, other: "_Buffer") -> bool:
        return offset < other.offset + other.size and other.offset < offset + self.size


def _lifetimes(model: LoweredModel) -> tuple[dict, dict]:
    n = len(model.layers)
    # inputs are written before the first layer runs, outputs read after the last
    first = {t: (-1 if t in model.inputs else n) for t in model.tensor_bytes}
    last = {t: (n if t in model.outputs else -1) for t in model.tensor_bytes}
    for i, layer in enumerate(model.layers):
        first[layer.output] = min(first[layer.output], i)
        for t in layer.inputs:
            if t in last:  # constants live in flash
                last[t] = max(last[t], i)
    # a tensor written but never read still takes its bytes while its layer writes it
    return first, {t: max(last[t], first[t]) for t in last}


def _buffers(model: LoweredModel, first: dict, last: dict) -> tuple[dict, dict]:
    """tensor -> buffer key, and the buffers (RESHAPE outputs join their input's buffer)."""
    owner = {t: t for t in model.tensor_bytes}
    for layer in model.layers:
        if not layer.kernel and layer.inputs[0] in owner:
            owner[layer.output] = owner[layer.inputs[0]]
    buffers = {}
    for t, b in owner.items():
        buf = buffers.setdefault(b, _Buffer(b, model.tensor_bytes[t], first[t], last[t]))
        buf.size = max(buf.size, model.tensor_bytes[t])
        buf.first, buf.last = min(buf.first, first[t]), max(buf.last, last[t])
    return owner, buffers


def floor_bytes(model: LoweredModel) -> int:
    """The bytes needed at once however tensors are placed: at each layer, its output beside what
    stays alive across it; before the first layer all the inputs, after the last all the outputs.
    The inputs a layer reads for the last time (which it may overwrite) need no term of their own:
    they were all alive at once when the last of them was written, and were counted there."""
    first, last = _lifetimes(model)
    owner, buffers = _buffers(model, first, last)
    floor = max(sum(buffers[b].size for b in {owner[t] for t in ts}) for ts in (model.inputs, model.outputs))
    for i, layer in enumerate(model.layers):
        if not layer.kernel:
            continue
        ins = {owner[t] for t in layer.inputs if t in owner}
        staying = sum(b.size for k, b in buffers.items() if b.first < i < b.last or (k in ins and b.last > i))
        floor = max(floor, staying + buffers[owner[layer.output]].size)
    return floor


def plan_memory(model: LoweredModel, inplace: bool = True) -> MemoryPlan:
    """Offsets for every activation tensor, ring and work buffer; INPLACE=False plans like TFLM (lifetimes only)."""
    first, last = _lifetimes(model)
    owner, buffers = _buffers(model, first, last)

    # in-place partners: (input buffer, output buffer) -> the layer that may write one over the other
    partners: dict[tuple[int, int], int] = {}
    if inplace:
        for i, layer in enumerate(model.layers):
            if not layer.kernel or not layer.inplace:
                continue
            out = owner[layer.output]
            for t in layer.inputs:
                if t in owner and owner[t] != out and buffers[owner[t]].last == i:
                    partners[(owner[t], out)] = i

    def allowed(a: _Buffer, a_offset: int, b: _Buffer) -> bool:
        """May A at A_OFFSET share bytes with the placed B? Only as a safe in-place pair."""
        for (src, dst), i in ((k, v) for k, v in partners.items() if {a.key, b.key} == set(k)):
            src_off, dst_off = (a_offset, b.offset) if a.key == src else (b.offset, a_offset)
            layer = model.layers[i]
            if _inplace_safe(layer, dst_off - src_off, buffers[src].size, buffers[dst].size):
                return True
        return False

    def fits(buf: _Buffer, offset: int, placed: list[_Buffer]) -> bool:
        return offset >= 0 and all(not buf.overlaps_in_space(offset, p) or allowed(buf, offset, p)
                                   for p in placed if buf.overlaps_in_time(p))

    def place(buf: _Buffer, placed: list[_Buffer]) -> None:
        live = [p for p in placed if buf.overlaps_in_time(p)]
        candidates = {0} | {-(-(p.offset + p.size) // ALIGN) * ALIGN for p in live}
        for (src, dst) in partners:  # offsets that put BUF over or under its placed partner
            other = dst if src == buf.key else src if dst == buf.key else None
            if other is not None and buffers[other].offset is not None:
                o = buffers[other].offset
                for delta in (0, buffers[src].size - buffers[dst].size):
                    candidates.add(o + delta if buf.key == dst else o - delta)
        buf.offset = min(c for c in candidates if fits(buf, c, placed))
        placed.append(buf)

    def follow_partners(order: list[_Buffer]) -> list[_Buffer]:
        """ORDER, but each buffer's in-place partners right after it (and theirs), so a chain is
        laid out relative to its first member before unrelated buffers take the space it needs."""
        linked: dict[int, list[int]] = {}
        for src, dst in partners:
            linked.setdefault(src, []).append(dst)
            linked.setdefault(dst, []).append(src)
        out, seen = [], set()
        for buf in order:
            stack = [buf.key]
            while stack:
                k = stack.pop(0)
                if k not in seen:
                    seen.add(k)
                    out.append(buffers[k])
                    stack.extend(linked.get(k, ()))
        return out

    # Largest first is TFLM's order; in-place chains often pack tighter when laid out together,
    # or in the order they run. All are cheap, so plan each and keep the smallest arena.
    by_size = sorted(buffers.values(), key=lambda b: (-b.size, b.first, b.key))
    by_time = sorted(buffers.values(), key=lambda b: (b.first, -b.size, b.key))
    best = None
    for order in (by_size, follow_partners(by_size), by_time):
        for buf in buffers.values():
            buf.offset = None
        placed: list[_Buffer] = []
        for buf in order:
            place(buf, placed)
        running_inplace, scratch, work = [], {}, {}
        for (src, dst), i in partners.items():
            s, d = buffers[src], buffers[dst]
            if s.overlaps_in_space(s.offset, d):
                running_inplace.append(i)
        ring_rows = {}
        for (src, dst), i in partners.items():
            if i in running_inplace and model.layers[i].inplace == "rows":
                ring_rows[i] = _ring_rows(model.layers[i], buffers[dst].offset - buffers[src].offset)
        for i, layer in enumerate(model.layers):  # rings and work buffers live for their layer only
            ring = ring_rows[i] * layer.fields["in_w"] * layer.fields["in_c"] if i in ring_rows else layer.scratch_bytes
            for table, size in ((scratch, ring if i in running_inplace else 0), (work, layer.work_bytes)):
                if size:
                    buf = _Buffer(-1, size, i, i)
                    place(buf, placed)
                    table[i] = buf.offset
        arena = max((p.offset + p.size for p in placed), default=0)
        if best is None or arena < best[0]:
            best = (arena, {t: buffers[owner[t]].offset for t in model.tensor_bytes}, scratch, running_inplace, work, ring_rows)
    arena, offsets, scratch, running_inplace, work, ring_rows = best
    arena = -(-arena // 16) * 16
    if partners:
        # A ring (or group of pixels) kept beside a small input can cost more than writing over the
        # input saves: then the plan without in-place layers is the smaller one
        plain = plan_memory(model, inplace=False)
        if plain.arena_bytes < arena:
            return plain
    return MemoryPlan(arena, offsets, scratch, tuple(sorted(running_inplace)), work, floor_bytes(model),
                      ring_rows)
