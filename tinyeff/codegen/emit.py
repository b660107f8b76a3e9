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


def _ptr(offset: int, dtype: str = "INT8") -> str:
    # float32 tensors (a float model's input or output) sit at 4-aligned offsets of the 16-aligned arena
    return f"(float *)(te_arena + {offset})" if dtype == "FLOAT32" else f"te_arena + {offset}"


def _layer(model: LoweredModel, plan: MemoryPlan, i: int) -> EmittedLayer:
    layer = model.layers[i]
    name = f"l{layer.index}"
    arrays = tuple((a.ctype, a.name, len(a.values), _c_values(a.values)) for a in layer.arrays)
    dtype = {t: model.info.tensors[t].dtype for t in (*layer.inputs, layer.output)}
    ins = [layer.constants[t] if t in layer.constants else _ptr(plan.offsets[t], dtype[t]) for t in layer.inputs]
    out = _ptr(plan.offsets[layer.output], dtype[layer.output])
    scratch = _ptr(plan.scratch[i]) if i in plan.scratch else "NULL"
    if not layer.kernel:
        statements = (f"/* {layer.op}: tensor {layer.output} shares the bytes of tensor {layer.inputs[0]} */",)
        return EmittedLayer(layer.index, layer.op, arrays, "", name, (), statements)
    if layer.op == "CONCATENATION":
        f = layer.fields
        statements = (
            f"static const int8_t *const {name}_in[{f['n']}] = {{{', '.join(ins)}}};",
            f"te_concat({f['outer']}, {f['n']}, {f['block']}, {name}_in, {out});",
        )
        return EmittedLayer(layer.index, layer.op, arrays, "", name, (), statements)
    if layer.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        call = f"{layer.kernel}(&{name}, {ins[0]}, {out}, {scratch});"
    else:
        call = f"{layer.kernel}(&{name}, {', '.join(ins)}, {out});"
    fields = dict(layer.fields)
    if layer.struct == "te_conv_t":
        fields["work"] = f"te_arena + {plan.work[i]}" if i in plan.work else "NULL"
        fields["ring_rows"] = plan.ring_rows.get(i, 0)
    fields = tuple((k, str(v)) for k, v in fields.items())
    return EmittedLayer(layer.index, layer.op, arrays, layer.struct, name, fields, (call,))


def interface_values(info, model_name: str, board: str) -> dict:
    """What tinyeff_model.h says about a model whatever runs it: signature, I/O sizes and quantization."""
    x, y = info.input(), info.output()
    # Scale and zero point come from the int8 side: for a float input, the tensor QUANTIZE makes
    # from it; for a float output, the tensor DEQUANTIZE reads. Float tensors carry none.
    xq = next((info.tensors[o.outputs[0]] for o in info.ops if x.index in o.inputs and o.op == "QUANTIZE"), x)
    yq = next((info.tensors[o.inputs[0]] for o in info.ops if y.index in o.outputs and o.op == "DEQUANTIZE"), y)
    return dict(
        header=header(model_name, info.sha256, board),
        sha256=info.sha256,
        input_bytes=x.elements * np.dtype(x.dtype.lower()).itemsize,
        output_bytes=y.elements * np.dtype(y.dtype.lower()).itemsize,
        output_elements=y.elements,
        input_float=int(x.dtype == "FLOAT32"),
        output_float=int(y.dtype == "FLOAT32"),
        input_shape=x.shape,
        output_shape=y.shape,
        input_scale=repr(float(xq.scales[0])) if xq.scales else "0.0",
        input_zero_point=xq.zero_points[0] if xq.zero_points else 0,
        output_scale=repr(float(yq.scales[0])) if yq.scales else "0.0",
        output_zero_point=yq.zero_points[0] if yq.zero_points else 0,
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
        kernel_headers=paths.PATH_HEADERS[model.path],
        input_offset=plan.offsets[model.input],
        output_offset=plan.offsets[model.output],
        layers=[_layer(model, plan, i) for i in range(len(model.layers))],
    )
    if empty:
        io = max(values["input_bytes"], values["output_bytes"])
        values.update(layers=[], arena_bytes=-(-io // 16) * 16, input_offset=0, output_offset=0)
    return {name: render(f"compiled/{name}.j2", **values) for name in ("tinyeff_model.h", "tinyeff_model.c")}
