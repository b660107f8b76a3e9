"""Properties of the compiled runtime's memory plan (tinyeff/codegen/plan.py) on random graphs with
branches, skip connections, RESHAPE aliases and in-place layers: tensors alive at the same time
share no bytes except an in-place layer's dying input and its output, every layer that runs finds
its inputs intact (checked by running the graph over the planned arena, byte by byte, in the
order its kernel reads and writes), offsets are aligned, and the arena is at least the floor the
plan reports. Graphs stop at 12 layers and 96-byte tensors: small enough to simulate, large enough
for every placement rule to meet every other. Deterministic (derandomize) for CI.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyeff.codegen.lower import Layer, LoweredModel
from tinyeff.codegen.plan import ALIGN, plan_memory

CHECKS = settings(derandomize=True, database=None, deadline=None, max_examples=1000)
KINDS = ("generic", "elementwise", "pixel", "reshape")  # the "rows" kind's ring order is left to its own tests


@st.composite
def models(draw) -> LoweredModel:
    sizes = {t: draw(st.integers(1, 96)) for t in range(draw(st.integers(1, 2)))}  # the model's inputs
    inputs, layers = tuple(sizes), []
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(KINDS))
        x = draw(st.sampled_from(sorted(sizes)))  # any earlier tensor: branches and skip connections
        ins, fields, inplace, scratch, out = (x,), {}, "", 0, len(sizes)
        if kind == "generic":
            ins = tuple(sorted({x, draw(st.sampled_from(sorted(sizes)))}))
            sizes[out] = draw(st.integers(1, 96))
        elif kind == "elementwise":
            same = sorted(t for t in sizes if sizes[t] == sizes[x] and t != x)
            ins = (x, draw(st.sampled_from(same))) if same and draw(st.booleans()) else (x,)
            sizes[out], inplace = sizes[x], "elementwise"
        elif kind == "pixel":  # a pointwise conv: reads pixel p whole, then writes output pixel p
            ic = draw(st.sampled_from([d for d in range(1, sizes[x] + 1) if sizes[x] % d == 0]))
            oc = draw(st.integers(1, 2 * ic))
            fields = {"in_h": 1, "in_w": sizes[x] // ic, "in_c": ic, "out_c": oc}
            sizes[out], inplace, scratch = sizes[x] // ic * oc, "pixel", draw(st.integers(0, 8))
        else:
            sizes[out] = sizes[x]
        work = draw(st.integers(0, 16)) if kind != "reshape" else 0
        layers.append(Layer(i, kind, "" if kind == "reshape" else f"te_{kind}", "", fields, (), ins, out, inplace,
                            scratch, work))
    produced = [layer.output for layer in layers]
    outputs = tuple(sorted({produced[-1], draw(st.sampled_from(produced))}))
    return LoweredModel(None, tuple(layers), sizes, inputs, outputs)


def _roots(model: LoweredModel) -> dict[int, int]:
    """tensor -> the tensor whose bytes it is: itself, or for a RESHAPE output its input's root."""
    root = {t: t for t in model.tensor_bytes}
    for layer in model.layers:
        if not layer.kernel:
            root[layer.output] = root[layer.inputs[0]]
    return root


def _buffers(model: LoweredModel) -> dict[int, tuple[int, int, int]]:
    """root -> (layer that writes it, last layer that reads it, bytes), over the tensors that are its bytes."""
    root, n = _roots(model), len(model.layers)
    first = {t: -1 for t in model.inputs} | {layer.output: i for i, layer in enumerate(model.layers)}
    last = {t: n if t in model.outputs else first[t] for t in model.tensor_bytes}
    for i, layer in enumerate(model.layers):
        for t in layer.inputs:
            last[t] = max(last[t], i)
    out = {}
    for t, r in root.items():
        f, l, size = out.get(r, (first[t], last[t], 0))
        out[r] = (min(f, first[t]), max(l, last[t]), max(size, model.tensor_bytes[t]))
    return out


@CHECKS
@given(models(), st.booleans())
def test_live_tensors_do_not_share_bytes(model, inplace):
    plan = plan_memory(model, inplace=inplace)
    root, buffers = _roots(model), _buffers(model)
    assert all(plan.offsets[t] == plan.offsets[r] for t, r in root.items()), plan  # a RESHAPE copies nothing
    at = {r: plan.offsets[r] for r in buffers}
    # the one sharing allowed: a layer that runs in place writes its output over an input that dies with it
    overwrites = {frozenset((root[t], root[layer.output])) for i, layer in enumerate(model.layers) if i in plan.inplace
                  for t in layer.inputs if buffers[root[t]][1] == i}
    for a, (a_first, a_last, a_size) in buffers.items():
        for b, (b_first, b_last, b_size) in buffers.items():
            if a < b and not (a_last < b_first or b_last < a_first) and frozenset((a, b)) not in overwrites:
                assert at[a] + a_size <= at[b] or at[b] + b_size <= at[a], (a, b, buffers[a], buffers[b], plan)
    assert inplace or not plan.inplace
    assert list(plan.inplace) == sorted(set(plan.inplace)), plan  # in the order they run (the manifest lists them so)
    # Alignment: ALIGN bytes, except a tensor placed over or under its in-place partner, which moves by
    # the difference of their sizes; it keeps what the sizes of its chain share, so a tensor of wider
    # elements stays aligned to them (emit.py casts its pointer to int16_t, int32_t or float).
    chain = {r: {r} for r in buffers}
    for pair in overwrites:
        joined = set().union(*(chain[r] for r in pair))
        for r in joined:
            chain[r] = joined
    for r in buffers:
        assert at[r] % math.gcd(ALIGN, *(buffers[c][2] for c in chain[r] if len(chain[r]) > 1)) == 0, (r, plan)
    assert all(o % ALIGN == 0 for o in (*plan.work.values(), *plan.scratch.values())), plan
    assert set(plan.scratch) <= set(plan.inplace), plan  # a ring (or pixel group) only for a layer that writes over its input
    ends = [at[r] + size for r, (_, _, size) in buffers.items()]
    ends += [plan.work[i] + model.layers[i].work_bytes for i in plan.work]
    ends += [plan.scratch[i] + model.layers[i].scratch_bytes for i in plan.scratch]
    assert plan.arena_bytes % 16 == 0 and plan.arena_bytes >= max(ends, default=0), plan
    assert plan.arena_bytes >= plan.floor_bytes, plan


@CHECKS
@given(models())
def test_every_read_finds_what_was_written(model):
    """Run the graph over the planned arena: each byte remembers which tensor byte (or work buffer)
    was written there last, and every read must find the byte it expects."""
    plan = plan_memory(model)
    arena, root = [None] * plan.arena_bytes, _roots(model)

    def write(t: int, lo: int, hi: int) -> None:
        for k in range(lo, hi):
            arena[plan.offsets[t] + k] = (root[t], k)

    def read(t: int, lo: int, hi: int, who: str) -> None:
        for k in range(lo, hi):
            assert arena[plan.offsets[t] + k] == (root[t], k), (f"{who} reads byte {k} of tensor {t} and finds "
                                                                f"{arena[plan.offsets[t] + k]}", plan)

    for t in model.inputs:
        write(t, 0, model.tensor_bytes[t])
    for i, layer in enumerate(model.layers):
        who = f"layer {i} ({layer.op})"
        own = [(start, size) for start, size in ((plan.work.get(i), layer.work_bytes), (plan.scratch.get(i), layer.scratch_bytes))
               if start is not None and size]
        for start, size in own:  # work buffers and rings hold the layer's own data while it runs
            arena[start:start + size] = [("work", i)] * size
        size = model.tensor_bytes[layer.output]
        if layer.op == "elementwise":
            for k in range(size):
                for t in layer.inputs:
                    read(t, k, k + 1, who)
                write(layer.output, k, k + 1)
        elif layer.op == "pixel":
            ic, oc = layer.fields["in_c"], layer.fields["out_c"]
            for p in range(layer.fields["in_w"]):
                read(layer.inputs[0], p * ic, (p + 1) * ic, who)
                write(layer.output, p * oc, (p + 1) * oc)
        elif layer.kernel:
            for t in layer.inputs:
                read(t, 0, model.tensor_bytes[t], who)
            write(layer.output, 0, size)
        for start, size in own:
            assert arena[start:start + size] == [("work", i)] * size, (f"{who} lost its work buffer", plan)
    for t in model.outputs:
        read(t, 0, model.tensor_bytes[t], "the caller")


def test_the_plan_keeps_the_smallest_of_its_placement_orders():
    """A chain 64 -> 48 -> 48 -> 64 bytes, every layer reading its input while it writes its output.
    TFLM's order, largest first, lays both 64-byte tensors at offset 0 (they never live at once) and
    must then stack the two 48-byte ones above them: 64 + 48 + 48 = 160 B. Placed in the order they
    run, the second 48 goes where the first 64 died and the last 64 above it: 112 B, the least any
    plan can do (the first layer alone holds 64 + 48). The planner tries both and keeps the smaller."""
    sizes = {0: 64, 1: 48, 2: 48, 3: 64}
    layers = tuple(Layer(i, "generic", "te_generic", "", {}, (), (i,), i + 1, "", 0, 0) for i in range(3))
    model = LoweredModel(None, layers, sizes, (0,), (3,))
    plan = plan_memory(model, inplace=False)
    assert plan.arena_bytes == 112, plan


@CHECKS
@given(models())
def test_the_floor_holds_every_layer_s_output_beside_what_stays_alive_across_it(model):
    """The floor is a bound no plan can beat, but it must not be a loose one: every layer (after a
    RESHAPE too) needs at once what is alive across it (its inputs read again later, and any tensor
    written before it and read after it) beside the larger of its output and the inputs it reads
    last, which it may overwrite; the caller needs all the inputs, and all the outputs, at once."""
    root, buffers = _roots(model), _buffers(model)
    plan = plan_memory(model)
    for i, layer in enumerate(model.layers):
        if layer.kernel:
            out, ins = root[layer.output], {root[t] for t in layer.inputs}
            across = {r for r, (f, l, _) in buffers.items() if f < i < l or (r in ins and l > i)} - {out}
            dying = {r for r in ins if buffers[r][1] == i} - {out}
            need = sum(buffers[r][2] for r in across) + max(buffers[out][2], sum(buffers[r][2] for r in dying))
            assert plan.floor_bytes >= need, (i, plan)
    for ends in (model.inputs, model.outputs):
        assert plan.floor_bytes >= sum(buffers[t][2] for t in {root[e] for e in ends}), plan


def test_a_model_of_reshapes_only_needs_its_input_and_no_more():
    layers = (Layer(0, "reshape", "", "", {}, (), (0,), 1, "", 0, 0),)
    plan = plan_memory(LoweredModel(None, layers, {0: 40, 1: 40}, (0,), (1,)))
    assert (plan.floor_bytes, plan.arena_bytes, plan.offsets) == (40, 48, {0: 0, 1: 0}), plan


def test_by_default_an_elementwise_layer_after_another_kind_writes_over_its_input():
    """The model's input stays alive to the end (a skip connection), so a layer that cannot run in
    place, then an elementwise one that can: written over its input, the three 32-byte tensors it
    meets take 64 B, not 96 (with the last 4-byte output, 80 B after rounding). plan_memory plans in
    place unless told not to."""
    layers = (Layer(0, "generic", "te_generic", "", {}, (), (0,), 1, "", 0, 0),
              Layer(1, "elementwise", "te_elementwise", "", {}, (), (1,), 2, "elementwise", 0, 0),
              Layer(2, "generic", "te_generic", "", {}, (), (0, 2), 3, "", 0, 0))
    model = LoweredModel(None, layers, {0: 32, 1: 32, 2: 32, 3: 4}, (0,), (3,))
    plan = plan_memory(model)
    assert (plan.inplace, plan.offsets[1] == plan.offsets[2], plan.arena_bytes) == ((1,), True, 80), plan
    assert plan_memory(model, inplace=False).arena_bytes == 96


def _layer(i, kind, ins, out, fields=None, work=0) -> Layer:
    inplace = kind if kind in ("elementwise", "pixel") else ""
    return Layer(i, kind, "" if kind == "reshape" else f"te_{kind}", "", fields or {}, (), ins, out, inplace, 0, work)


def _pixels(w: int, ic: int, oc: int) -> dict:
    return {"in_h": 1, "in_w": w, "in_c": ic, "out_c": oc}


# Graphs the property generator found (shrunk by hypothesis) where one placement rule is what reaches
# the arena: the smallest arena the planner then finds, which a planner without that rule misses.
PLACEMENT_RULES = {
    # an in-place chain laid out together: without it, largest first gives 112 B
    "partners followed from their input": (LoweredModel(None, (
        _layer(0, "pixel", (0,), 1, _pixels(25, 1, 1)), _layer(1, "generic", (0,), 2),
        _layer(2, "elementwise", (0, 1), 3), _layer(3, "pixel", (3,), 4, _pixels(25, 1, 2)), _layer(4, "reshape", (2,), 5)),
        {0: 25, 1: 25, 2: 13, 3: 25, 4: 50, 5: 13}, (0,), (3, 5)), 96),
    # ... followed from its output too: without it 48 B
    "partners followed from their output": (LoweredModel(None, (
        _layer(0, "elementwise", (1,), 2), _layer(1, "pixel", (0,), 3, _pixels(5, 1, 2), work=1)),
        {0: 5, 1: 9, 2: 9, 3: 10}, (0, 1), (2, 3)), 32),
    # an output placed over its input placed before it (the offsets a placed partner offers): without them 48 B
    "offsets over a placed partner": (LoweredModel(None, (
        _layer(0, "elementwise", (0,), 2), _layer(1, "reshape", (0,), 3), _layer(2, "generic", (0,), 4),
        _layer(3, "generic", (0,), 5), _layer(4, "elementwise", (0,), 6)),
        {0: 9, 1: 13, 2: 9, 3: 9, 4: 1, 5: 1, 6: 9}, (0, 1), (2, 6)), 32),
    # in the order they run, of two inputs born together the larger first: smaller first gives 64 B
    "the larger of two born together first": (LoweredModel(None, (
        _layer(0, "pixel", (0,), 2, _pixels(13, 1, 2)), _layer(1, "generic", (0,), 3), _layer(2, "elementwise", (0,), 4),
        _layer(3, "generic", (0,), 5), _layer(4, "reshape", (0,), 6), _layer(5, "reshape", (0,), 7)),
        {0: 13, 1: 1, 2: 26, 3: 1, 4: 13, 5: 13, 6: 13, 7: 13}, (0, 1), (4, 7)), 48),
}


@pytest.mark.parametrize("rule", PLACEMENT_RULES)
def test_each_placement_rule_is_what_reaches_the_arena_of_a_graph_that_needs_it(rule):
    model, arena = PLACEMENT_RULES[rule]
    assert plan_memory(model).arena_bytes <= arena


def test_a_tensor_fits_the_gap_that_ends_where_a_live_one_begins():
    """A chain of three 32-byte tensors: the middle one lives with both neighbours, the first and
    last never meet, so the last goes back to offset 0, its end touching the middle one's start:
    64 B. A planner that counted touching as sharing would stack all three (96 B)."""
    layers = tuple(Layer(i, "generic", "te_generic", "", {}, (), (i,), i + 1, "", 0, 0) for i in range(2))
    plan = plan_memory(LoweredModel(None, layers, {0: 32, 1: 32, 2: 32}, (0,), (2,)), inplace=False)
    assert (plan.offsets[0], plan.offsets[1], plan.offsets[2], plan.arena_bytes) == (0, 32, 0, 64), plan


@CHECKS
@given(models())
def test_writing_in_place_never_costs_more_than_not_writing_in_place(model):
    """An in-place layer keeps a ring (or a group of pixels) beside its input; where that costs more
    than it saves, the plan without in-place layers is kept."""
    assert plan_memory(model).arena_bytes <= plan_memory(model, inplace=False).arena_bytes


def test_the_manifest_holds_the_plan_as_planned(kws_like_model):
    """generate writes plan.to_json into the project's manifest (the README's floor and arena figures
    are read from there): every placement, in tensor and layer order, as plain JSON."""
    import json

    from tinyeff.codegen import compile_model
    from tinyeff.footprint import load_model_file

    data, info = load_model_file(kws_like_model)
    compiled = compile_model(data, info, "kws", path="dsp")  # the DSP path's kernels ask for work buffers
    plan, model = compiled.plan, compiled.model
    assert plan.scratch and plan.work and plan.ring_rows and plan.inplace  # every part of a plan is there to write
    j = plan.to_json(model)
    assert json.loads(json.dumps(j)) == j
    assert set(j) == {"arena_bytes", "floor_bytes", "tensors", "scratch", "work", "ring_rows", "inplace_layers"}
    assert (j["arena_bytes"], j["floor_bytes"]) == (plan.arena_bytes, plan.floor_bytes)
    assert j["tensors"] == [{"tensor": t, "offset": plan.offsets[t], "bytes": model.tensor_bytes[t]} for t in sorted(plan.offsets)]
    assert j["scratch"] == [{"layer": i, "offset": plan.scratch[i]} for i in sorted(plan.scratch)]
    assert j["work"] == [{"layer": i, "offset": plan.work[i]} for i in sorted(plan.work)]
    assert j["ring_rows"] == [{"layer": i, "rows": plan.ring_rows[i]} for i in sorted(plan.ring_rows)]
    assert j["inplace_layers"] == list(plan.inplace)


def _ring_order_keeps_every_read_intact(f: dict, delta: int, ring_rows: int | None) -> bool:
    """te_ring.h's order walked byte by byte: before output row oy, the ring takes the first rows of
    its window it has not saved (each must still hold the input); the window rows below the ring are
    read from the input itself while row oy is written (taken as written before they are read)."""
    in_row, out_row = f["in_w"] * f["in_c"], f["out_w"] * f["out_c"]
    span = (f["k_h"] - 1) * f["dil_h"] + 1
    rows = ring_rows or span
    written: set[int] = set()  # bytes from the input's start that output rows have overwritten

    def intact(r: int) -> bool:
        return written.isdisjoint(range(r * in_row, (r + 1) * in_row))

    copied = -1
    for oy in range(f["out_h"]):
        iy0 = oy * f["stride_h"] - f["pad_top"]
        last = min(f["in_h"] - 1, iy0 + rows - 1)
        if not all(intact(r) for r in range(max(copied + 1, 0), last + 1)):
            return False
        copied = max(copied, last)
        written.update(range(delta + oy * out_row, delta + (oy + 1) * out_row))
        taps = (iy0 + ky * f["dil_h"] for ky in range(f["k_h"]))
        if not all(intact(iy) for iy in taps if max(iy0 + rows, 0) <= iy < f["in_h"]):  # padding rows are never read
            return False
    return True


@st.composite
def ring_convs(draw):
    k_h, dil_h, stride_h = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    span = (k_h - 1) * dil_h + 1
    in_h, pad_top, pad_bottom = draw(st.integers(1, 8)), draw(st.integers(0, span - 1)), draw(st.integers(0, span - 1))
    out_h = (in_h + pad_top + pad_bottom - span) // stride_h + 1
    f = dict(k_h=k_h, dil_h=dil_h, stride_h=stride_h, in_h=in_h, pad_top=pad_top, out_h=max(out_h, 1),
             in_w=draw(st.integers(1, 3)), in_c=draw(st.integers(1, 3)), out_w=draw(st.integers(1, 3)), out_c=draw(st.integers(1, 3)))
    in_row, out_row = f["in_w"] * f["in_c"], f["out_w"] * f["out_c"]
    delta = draw(st.integers(-f["out_h"] * out_row, in_h * in_row))  # every offset at which the two overlap, and a few beside
    ring_rows = draw(st.one_of(st.none(), st.integers(1, span)))
    return f, delta, ring_rows


@CHECKS
@given(ring_convs())
def test_a_ring_is_judged_safe_exactly_when_the_ring_order_reads_only_intact_rows(conv):
    """plan._rows_safe (interval arithmetic on rows) against the walk above (sets of bytes). With
    dilation 1 the window reads every row it spans and the two agree exactly; with dilation 2 the plan
    also keeps the rows between taps intact, so it may refuse what the walk allows, never the reverse."""
    from tinyeff.codegen.plan import _rows_safe

    f, delta, ring_rows = conv
    planned, walked = _rows_safe(f, delta, ring_rows), _ring_order_keeps_every_read_intact(f, delta, ring_rows)
    assert planned == walked if f["dil_h"] == 1 else (walked or not planned), (f, delta, ring_rows, planned, walked)


@CHECKS
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 8), st.data())
def test_a_pointwise_layer_is_judged_safe_exactly_when_each_pixel_is_read_before_it_is_overwritten(ic, oc, n, data):
    """plan._pixel_safe against a pointwise kernel's order walked byte by byte: it reads input pixel p
    whole, then writes output pixel p, with the output DELTA bytes from the input's start."""
    from tinyeff.codegen.plan import _pixel_safe

    delta = data.draw(st.integers(-n * oc + 1, n * ic - 1))  # the plan asks only where the two overlap
    written: set[int] = set()
    walked = True
    for p in range(n):
        walked = walked and written.isdisjoint(range(p * ic, (p + 1) * ic))
        written.update(range(delta + p * oc, delta + (p + 1) * oc))
    f = {"in_c": ic, "out_c": oc, "in_h": 1, "in_w": n}
    assert _pixel_safe(f, delta) == walked, (ic, oc, n, delta)
