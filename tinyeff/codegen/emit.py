"""Write a lowered, planned model as C99: const parameters and weights, one arena, one invoke.

The output is two files, ``tinyeff_model.h`` and ``tinyeff_model.c``, rendered from
``templates/compiled/``. They need only the kernels in ``firmware/kernels``: no interpreter,
no flatbuffer, no heap. Weights and requantization constants are ``static const`` so the
linker keeps them in flash.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tinyeff.codegen import paths
from tinyeff.codegen.lower import LoweredModel
from tinyeff.codegen.plan import MemoryPlan
from tinyeff.model_io import io_tensors
from tinyeff.render import header, render

_PER_LINE = 24


def _c_values(values: np.ndarray) -> str:
    items = [str(int(v)) for v in values]
    return ",\n".join("  " + ", ".join(items[i : i + _PER_LINE]) for i in range(0, len(items), _PER_LINE))


@dataclasses.dataclass(frozen=True)
class EmittedLayer:
    index: int
    op: str
    arrays: tuple[tuple[str, str, int, str], ...]  # (ctype, name, length, values)
    struct: str
    name: str
    fields: tuple[tuple[str, str], ...]
    statements: tuple[str, ...]  # C statements that run it


_CTYPES = {"FLOAT32": "float", "INT16": "int16_t", "INT32": "int32_t"}


def _ptr(offset: int, dtype: str = "INT8") -> str:
    # a tensor wider than a byte sits at an offset aligned to its element size in the 16-aligned arena:
    # buffers start at multiples of plan.ALIGN, and an in-place partner (same type) is shifted from its
    # partner's offset by the difference of their sizes, a multiple of the element size
    return f"({_CTYPES[dtype]} *)(te_arena + {offset})" if dtype in _CTYPES else f"te_arena + {offset}"


def _layer(model: LoweredModel, plan: MemoryPlan, i: int) -> EmittedLayer:
    layer = model.layers[i]
    name = f"l{layer.index}"
    arrays = tuple((a.ctype, a.name, len(a.values), _c_values(a.values)) for a in layer.arrays)
    dtype = {t: model.info.tensors[t].dtype for t in (*layer.inputs, layer.output)}
    # an input is a constant in flash, a variable tensor's own static array (state), or a tensor in the arena
    ins = [layer.constants[t] if t in layer.constants else model.variable_names[t] if t in model.variable_names
           else _ptr(plan.offsets[t], dtype[t]) for t in layer.inputs]
    out = _ptr(plan.offsets[layer.output], dtype[layer.output])
    scratch = _ptr(plan.scratch[i]) if i in plan.scratch else "NULL"
    if not layer.kernel:
        statements = (f"/* {layer.op}: tensor {layer.output} shares the bytes of tensor {layer.inputs[0]} */",)
        return EmittedLayer(layer.index, layer.op, arrays, "", name, (), statements)
    if layer.op == "CONCATENATION":
        # te_concat copies bytes (its blocks count bytes), so it takes every tensor as arena bytes, int8 or int16
        f, raw = layer.fields, [_ptr(plan.offsets[t]) for t in layer.inputs]
        statements = (
            f"static const int8_t *const {name}_in[{f['n']}] = {{{', '.join(raw)}}};",
            f"te_concat({f['outer']}, {f['n']}, {f['block']}, {name}_in, {_ptr(plan.offsets[layer.output])});",
        )
        return EmittedLayer(layer.index, layer.op, arrays, "", name, (), statements)
    if layer.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        call = f"{layer.kernel}(&{name}, {ins[0]}, {out}, {scratch});"
    else:
        call = f"{layer.kernel}(&{name}, {', '.join(ins)}, {out});"
    fields = dict(layer.fields)
    if layer.struct == "te_conv_t" or "work" in fields:  # any struct with a work field points it at its buffer
        fields["work"] = f"te_arena + {plan.work[i]}" if i in plan.work else "NULL"
    if layer.struct == "te_conv_t":
        fields["ring_rows"] = plan.ring_rows.get(i, 0)
    fields = tuple((k, str(v)) for k, v in fields.items())
    return EmittedLayer(layer.index, layer.op, arrays, layer.struct, name, fields, (call,))


# element types of the model's inputs and outputs as tinyeff_model.h names them (TE_TYPE_*)
TYPE_CODES = {"int8": 1, "int16": 2, "int32": 3, "float32": 4}


def _comment_safe(name: str) -> str:
    """NAME as text that cannot end or escape a C comment: printable ASCII, no '*/', no '?' (trigraphs)."""
    return "".join(c if " " <= c <= "~" and c not in "?\\" else "_" for c in name).replace("*/", "*_")


def interface_values(info, model_name: str, board: str) -> dict:
    """What tinyeff_model.h says about a model whatever runs it: signature, I/O sizes, types and quantization."""
    inputs, outputs = io_tensors(info)
    y = outputs[0]
    return dict(
        header=header(model_name, info.sha256, board),
        sha256=info.sha256,
        inputs=[dict(t.to_json(), label=_comment_safe(t.name)) for t in inputs],
        outputs=[dict(t.to_json(), label=_comment_safe(t.name)) for t in outputs],
        input_bytes=sum(t.bytes for t in inputs),
        output_bytes=sum(t.bytes for t in outputs),
        output_elements=int(np.prod(y.shape)),
        output_type=TYPE_CODES[y.dtype],
        output_scale=repr(y.scale),
        output_zero_point=y.zero_point,
    )


def emit_c(model: LoweredModel, plan: MemoryPlan, model_name: str, board: str, empty: bool = False) -> dict[str, str]:
    """{'tinyeff_model.h': ..., 'tinyeff_model.c': ...} for MODEL with memory PLAN.

    EMPTY keeps the model's interface (sizes, quantization, signature) but no layers, constants or
    arena beyond the input and output: the firmware built with it, subtracted from the real one,
    is what the model costs in flash and RAM."""
    info = model.info
    values = dict(
        interface_values(info, model_name, board),
        arena_bytes=plan.arena_bytes,
        state_bytes=model.state_bytes,
        kernel_headers=paths.PATH_HEADERS[model.path],
        input_offsets=[plan.offsets[t] for t in model.inputs],
        output_offsets=[plan.offsets[t] for t in model.outputs],
        layers=[_layer(model, plan, i) for i in range(len(model.layers))],
        states=[(a.ctype, a.name, len(a.values), _c_values(a.values)) for a in model.variables],
    )
    if empty:
        # inputs and outputs one after another, each 16-aligned: the arena the interface alone needs
        ends, offsets = 0, []
        for t in (*values["inputs"], *values["outputs"]):
            offsets.append(ends)
            ends += -(-t["bytes"] // 16) * 16
        n = len(values["inputs"])
        values.update(layers=[], states=[], arena_bytes=max(ends, 16), input_offsets=offsets[:n], output_offsets=offsets[n:])
    return {name: render(f"compiled/{name}.j2", **values) for name in ("tinyeff_model.h", "tinyeff_model.c")}
