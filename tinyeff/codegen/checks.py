"""Refuse, in one sentence each, models the compiled runtime would crash on, overrun its arena with
or run wrongly.

Lowering trusts a model to be as consistent as a converter writes it: every shape, quantization
parameter and option becomes a loop bound or an array length in C. A hand-edited, truncated or
corrupted file need not be consistent, and TFLM's release build is no guard: most of its shape
checks are debug-only (``TFLITE_DCHECK``), so a model TFLM loads may still read past a buffer.
``check_model`` checks, before anything is lowered, every fact the lowering and the kernels rely
on: the graph's order, each tensor's data and quantization, and each op's shapes and options.
"""

from __future__ import annotations

import math

import numpy as np

from tinyeff.codegen import indexing, quant
from tinyeff.errors import TinyeffError
from tinyeff.footprint.tflite_file import ModelInfo, OpInfo, TensorInfo, constant_array

_ITEMSIZE = {"INT8": 1, "UINT8": 1, "INT16": 2, "INT32": 4, "INT64": 8, "FLOAT32": 4}
_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
_ACTIVATION_BOUNDS = {"RELU": (0.0,), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}
_INT32_MAX = 2**31 - 1
# te_requant shifts left by at most 31 bits: a multiplier of 2^31 or more has no Q31 form
_MAX_MULTIPLIER = 2.0**31
# |x + input offset| and |w + filter offset| of int8 values with an int8 zero point, rounded up;
# the bound also covers kernels that fold input_offset * sum(w) into the bias
_OPERAND_BOUND = 256
REEXPORT = "export the model again"

# (fewest, most) inputs of each op, None for no limit; one output each
_ARITY = {
    "CONV_2D": (2, 3), "DEPTHWISE_CONV_2D": (2, 3), "FULLY_CONNECTED": (2, 3), "AVERAGE_POOL_2D": (1, 1),
    "MAX_POOL_2D": (1, 1), "MEAN": (2, 2), "LOGISTIC": (1, 1), "SOFTMAX": (1, 1), "ADD": (2, 2), "MUL": (2, 2),
    "QUANTIZE": (1, 1), "DEQUANTIZE": (1, 1), "PAD": (2, 2), "PADV2": (2, 3), "CONCATENATION": (1, None),
    "RESHAPE": (1, 2), "SQUEEZE": (1, 1), "SUB": (2, 2), "MAXIMUM": (2, 2), "MINIMUM": (2, 2), "LEAKY_RELU": (1, 1),
    "HARD_SWISH": (1, 1), "TANH": (1, 1), "RELU": (1, 1), "RELU6": (1, 1), "STRIDED_SLICE": (4, 4),
    "RESIZE_NEAREST_NEIGHBOR": (2, 2), "TRANSPOSE_CONV": (3, 4),
}
# inputs that must be constants (weights, biases, axes, paddings, slice bounds, sizes, a transposed conv's
# output shape); every other input is an activation except the operands of the binary elementwise ops,
# which may be either
_CONSTANT_INPUTS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2), "MEAN": (1,),
                    "PAD": (1,), "PADV2": (1, 2), "STRIDED_SLICE": (1, 2, 3), "RESIZE_NEAREST_NEIGHBOR": (1,),
                    "TRANSPOSE_CONV": (1, 3)}
# RESHAPE's shape may be absent or computed; so may a transposed conv's output shape, which TFLM ignores
# (it takes the output tensor's shape), as the compiled runtime does
_EITHER_INPUTS = {"ADD": (0, 1), "MUL": (0, 1), "SUB": (0, 1), "MAXIMUM": (0, 1), "MINIMUM": (0, 1),
                  "RESHAPE": (1,), "TRANSPOSE_CONV": (0,)}


def check_model(data: bytes, info: ModelInfo) -> None:
    """Raise TinyeffError, one sentence saying what is wrong and what to do, for any model whose shapes,
    quantization, options or data the compiled runtime cannot run as TFLM does."""
    _check_graph(info)
    # unsupported ops are check_compilable's to name; the rest first get their inputs counted and sorted
    # into constants and activations, so that a weight tensor that lost its data is named as such
    ops = [_Op(data, info, op) for op in info.ops if op.op in _OPS]
    used = {i for op in info.ops for i in (*op.inputs, *op.outputs) if i >= 0} | set(info.inputs) | set(info.outputs)
    for i in sorted(used):
        _check_tensor(info, info.tensors[i])
    from tinyeff.codegen import checks_int16  # it builds on this module

    for op in ops:  # an op on int16 activations follows TFLM's 16x8 rules
        (checks_int16.check_op if checks_int16.is_int16(info, op.op) else _OPS[op.op.op])(op)
    from tinyeff.codegen import checks_lstm  # it builds on this module

    for op in info.ops:
        if op.op == checks_lstm.OP:
            checks_lstm.check_op(data, info, op)


def _model_error(info: ModelInfo, what: str) -> TinyeffError:
    return TinyeffError(f"'{info.name}' {what}")


def _check_graph(info: ModelInfo) -> None:
    """Indices in range, each activation written once before it is read, no op writing a constant or its own input."""
    n = len(info.tensors)
    for role, idx in (("input", info.inputs), ("output", info.outputs)):
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise _model_error(info, f"names tensor {bad[0]} as a model {role}, but it has only {n} tensors; "
                               f"the file is corrupt, {REEXPORT}")
    for op in info.ops:
        bad = [i for i in op.inputs if not -1 <= i < n] + [i for i in op.outputs if not 0 <= i < n]
        if bad:
            raise _op_error(info, op, f"names tensor {bad[0]}, but the model has only {n} tensors; the file is corrupt, {REEXPORT}")
    for i in info.inputs:
        if info.tensors[i].constant:
            raise _model_error(info, f"input tensor {i} holds constant data, so no input can reach the model; {REEXPORT}")
    # state kept from one inference to the next is lowered for the LSTM's hidden and cell state only
    from tinyeff.codegen import checks_lstm  # it builds on this module

    states = {op.inputs[k] for op in info.ops if op.op == checks_lstm.OP for k in (checks_lstm.HIDDEN, checks_lstm.CELL)
              if k < len(op.inputs)}
    for op in info.ops:
        stray = [i for i in (*op.inputs, *op.outputs) if i >= 0 and info.tensors[i].variable and i not in states]
        if stray:
            raise _op_error(info, op, f"uses tensor {stray[0]}, a variable tensor (state kept from one inference to the next), "
                            f"which only an LSTM's hidden and cell state may be; {REEXPORT}")
    stray = [i for i in (*info.inputs, *info.outputs) if info.tensors[i].variable]
    if stray:
        raise _model_error(info, f"has tensor {stray[0]}, a variable tensor (state kept from one inference to the next), as "
                           f"an input or output; {REEXPORT}")
    written = set(info.inputs)
    for op in info.ops:
        if op.op not in _ARITY:
            written.update(op.outputs)  # check_compilable names the op; its outputs stay consistent here
            continue
        for k, i in enumerate(op.inputs):
            t = info.tensors[i] if i >= 0 else None
            if k in _CONSTANT_INPUTS.get(op.op, ()):
                continue  # weights without data: _Op says so
            if t is not None and not t.constant and i not in written:
                raise _op_error(info, op, f"reads tensor {i}, which holds no data and which no earlier op writes; "
                                f"the file is corrupt or the graph out of order, {REEXPORT}")
        for i in op.outputs:
            if info.tensors[i].constant:
                raise _op_error(info, op, f"writes tensor {i}, which is a constant; the file is corrupt, {REEXPORT}")
            if i in written:
                raise _op_error(info, op, f"writes tensor {i}, which the model input or an earlier op already holds; "
                                f"each tensor must have one writer, {REEXPORT}")
            written.add(i)
    for i in info.outputs:
        if i not in written:
            raise _model_error(info, f"output tensor {i} is written by no op; {REEXPORT}")


def _check_tensor(info: ModelInfo, t: TensorInfo) -> None:
    """Dimensions, constant data and quantization of one tensor the model uses."""
    where = f"tensor {t.index}{f' ({t.name})' if t.name else ''}"
    if any(d < (0 if t.constant else 1) for d in t.shape):
        raise _model_error(info, f"{where} has shape {t.shape}; only fixed, positive dimensions can be compiled, so {REEXPORT} "
                           "with a batch of 1")
    if t.constant:
        size = _ITEMSIZE.get(t.dtype)
        if size is None:
            raise _model_error(info, f"{where} holds {t.dtype.lower()} constants, which the compiled runtime does not read; {REEXPORT}")
        if t.nbytes != t.elements * size:
            raise _model_error(info, f"{where} holds {t.nbytes} bytes of data but its shape {t.shape} needs {t.elements * size}; "
                               f"the file is truncated or corrupt, {REEXPORT}")
    if t.dtype != "INT8":
        return  # int32 biases carry no quantization the runtime uses; float32 edges carry none
    if not t.scales:
        raise _model_error(info, f"{where} is int8 without a quantization scale; quantize the model fully to int8 "
                           "(tinyeff quantize, or the converter with a representative dataset)")
    bad = [s for s in t.scales if not (math.isfinite(s) and s > 0)]
    if bad:
        raise _model_error(info, f"{where} has the quantization scale {bad[0]!r}; scales must be finite and positive, {REEXPORT}")
    if len(t.zero_points) != len(t.scales):
        raise _model_error(info, f"{where} has {len(t.scales)} quantization scales but {len(t.zero_points)} zero points; "
                           f"they must come in pairs, {REEXPORT}")
    bad = [z for z in t.zero_points if not -128 <= z <= 127]
    if bad:
        raise _model_error(info, f"{where} has the zero point {bad[0]}, outside int8's -128..127; {REEXPORT}")
    if len(t.scales) > 1:
        if not t.constant:
            raise _model_error(info, f"{where} is an activation quantized per channel; activations must have one scale and "
                               f"zero point, {REEXPORT}")
        if not 0 <= t.quantized_dimension < len(t.shape) or t.shape[t.quantized_dimension] != len(t.scales):
            raise _model_error(info, f"{where} of shape {t.shape} has {len(t.scales)} scales along dimension "
                               f"{t.quantized_dimension}, which does not have that many entries; {REEXPORT}")


def _op_error(info: ModelInfo, op: OpInfo, why: str) -> TinyeffError:
    return TinyeffError(f"'{info.name}' op {op.index} ({op.op}) {why}")


class _Op:
    """One op under check: its tensors, options and a way to refuse it."""

    def __init__(self, data: bytes, info: ModelInfo, op: OpInfo):
        self.data, self.info, self.op, self.o = data, info, op, op.options
        lo, hi = _ARITY[op.op]
        if not lo <= len(op.inputs) <= (hi or len(op.inputs)) or len(op.outputs) != 1:
            takes = lo if lo == hi else f"{lo} to {hi}" if hi else f"at least {lo}"
            raise self.fail(f"has {len(op.inputs)} inputs and {len(op.outputs)} outputs; it takes {takes} inputs and one output, "
                            f"{REEXPORT}")
        for k, i in enumerate(op.inputs):
            optional = k >= lo or (op.op == "RESHAPE" and k == 1)
            if i < 0:
                if not optional:
                    raise self.fail(f"lacks its input {k}; {REEXPORT}")
                continue
            t = info.tensors[i]
            if k in _EITHER_INPUTS.get(op.op, ()):
                continue
            if k in _CONSTANT_INPUTS.get(op.op, ()) and not t.constant:
                raise self.fail(f"needs constant data as its input {k} (weights, bias, axes, paddings, bounds or a shape), "
                                f"but tensor {i} holds none; the file is truncated or corrupt, {REEXPORT}")
            if k not in _CONSTANT_INPUTS.get(op.op, ()) and t.constant:
                raise self.fail(self._constant_input_reason(k, i))
        self.out = info.tensors[op.outputs[0]]

    def _constant_input_reason(self, k: int, i: int) -> str:
        from tinyeff.codegen.lower import TFLM_HINT  # lower imports this module

        if self.op.op == "RESHAPE":
            return (f"reshapes the constant tensor {i}, and the compiled runtime keeps constants only inside the op that "
                    f"uses them; convert the model with constant folding on (the converter's default), or {TFLM_HINT}")
        return f"reads the constant tensor {i} as its input {k}, where the compiled runtime needs an activation; {TFLM_HINT}"

    def fail(self, why: str) -> TinyeffError:
        return _op_error(self.info, self.op, why)

    def t(self, k: int) -> TensorInfo | None:
        i = self.op.inputs[k] if k < len(self.op.inputs) else -1
        return self.info.tensors[i] if i >= 0 else None

    def const(self, t: TensorInfo) -> np.ndarray:
        return constant_array(self.data, t)

    def dtype(self, t: TensorInfo, *allowed: str, what: str) -> None:
        if t.dtype not in allowed:
            raise self.fail(f"has {what} of type {t.dtype.lower()}, where it needs {' or '.join(a.lower() for a in allowed)}; {REEXPORT}")

    def rank(self, t: TensorInfo, rank: int, what: str) -> None:
        if len(t.shape) != rank:
            raise self.fail(f"has {what} of shape {t.shape}, where it needs {rank} dimensions; {REEXPORT}")

    def same_size(self, a: TensorInfo, b: TensorInfo) -> None:
        if a.elements != b.elements:
            raise self.fail(f"turns {a.elements} elements (shape {a.shape}) into {b.elements} (shape {b.shape}); "
                            f"its input and output must have as many elements, {REEXPORT}")

    def positive(self, *names: str, default: int | None = None) -> list[int]:
        values = [self.o.get(n, default) for n in names]
        if any(not isinstance(v, int) or v < 1 for v in values):
            shown = ", ".join(f"{n} {self.o.get(n, 'missing')}" for n in names)
            raise self.fail(f"has {shown}; each must be a positive integer, {REEXPORT}")
        return values

    def padding(self) -> str:
        p = self.o.get("padding")
        if p not in ("SAME", "VALID"):
            raise self.fail(f"has padding {p!r}, which is neither SAME nor VALID; {REEXPORT}")
        return p

    def activation(self, allowed: tuple[str, ...] = _ACTIVATIONS) -> None:
        """The fused activation is one the int8 kernels apply, and its bounds are int8 codes TFLM can compute."""
        a = self.o.get("fused_activation_function", "NONE")
        if a not in allowed:
            which = "this op does not take" if a in _ACTIVATIONS else "int8 kernels do not apply"
            raise self.fail(f"fuses the activation {a!r}, which {which} (it takes {', '.join(allowed)}); {REEXPORT}")
        scale = np.float32(self.out.scales[0]) if self.out.scales else np.float32(0)
        for f in _ACTIVATION_BOUNDS.get(a, ()):
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                q = np.float32(f) / scale
            if not (np.isfinite(q) and abs(float(q)) < _INT32_MAX):
                raise self.fail(f"fuses {a}, whose bound {f} is not an int32 code at output scale {float(scale)!r}; {REEXPORT}")

    def multiplier(self, m: float, what: str) -> None:
        if not (math.isfinite(m) and m < _MAX_MULTIPLIER):
            raise self.fail(f"rescales its {what} by {m!r}, more than int8 requantization represents (below 2^31); "
                            f"check its tensors' scales, or {REEXPORT}")


def _scale(t: TensorInfo) -> float:
    return t.scales[0]


def _check_bias(op: _Op, bias: TensorInfo | None, channels: int) -> np.ndarray:
    if bias is None:
        return np.zeros(channels, np.int64)
    op.dtype(bias, "INT32", what="a bias")
    if bias.elements != channels:
        raise op.fail(f"has a bias of {bias.elements} values (shape {bias.shape}) for {channels} output channels; {REEXPORT}")
    return op.const(bias).reshape(-1).astype(np.int64)


def _check_per_channel(op: _Op, w: TensorInfo, channels: int, dim: int, symmetric: bool = True) -> None:
    """Weight quantization: one scale, or one per output channel along dimension DIM, zero points 0."""
    if len(w.scales) not in (1, channels):
        raise op.fail(f"has {len(w.scales)} weight scales for {channels} output channels; it needs one, or one per channel, {REEXPORT}")
    if len(w.scales) > 1 and w.quantized_dimension != dim:
        raise op.fail(f"quantizes its weights per channel along dimension {w.quantized_dimension}, not {dim} (its output channels); "
                      f"{REEXPORT}")
    if symmetric and any(w.zero_points):
        raise op.fail(f"has weight zero points {sorted(set(w.zero_points))[:3]}; int8 weights are symmetric (zero point 0), {REEXPORT}")


def _check_accumulator(op: _Op, weights: np.ndarray, bias: np.ndarray) -> None:
    """No int32 accumulator can overflow: |bias| + 256 * sum|w| per output channel (WEIGHTS: channels x taps)."""
    bound = np.abs(bias) + _OPERAND_BOUND * np.abs(weights.astype(np.int64)).sum(axis=1)
    if bound.max(initial=0) > _INT32_MAX:
        c = int(bound.argmax())
        raise op.fail(f"can overflow its int32 accumulator in output channel {c} (bias {int(bias[c])}, "
                      f"{weights.shape[1]} weights); {REEXPORT}")


def _check_window(op: _Op, x: TensorInfo, kh: int, kw: int, dilation: tuple[int, int]) -> tuple[int, int]:
    """Strides, padding and output height and width of a windowed op; returns the strides."""
    sh, sw = op.positive("stride_h", "stride_w")
    padding = op.padding()
    want = (quant.out_size(padding, x.shape[1], kh, sh, dilation[0]), quant.out_size(padding, x.shape[2], kw, sw, dilation[1]))
    if want != tuple(op.out.shape[1:3]):
        raise op.fail(f"has output {op.out.shape[1]}x{op.out.shape[2]}, but a {kh}x{kw} window with strides {sh}x{sw} and "
                      f"{padding} padding over {x.shape[1]}x{x.shape[2]} gives {want[0]}x{want[1]}; {REEXPORT}")
    return sh, sw


def _conv(op: _Op) -> None:
    x, w, bias, out = op.t(0), op.t(1), op.t(2), op.out
    depthwise = op.op.op == "DEPTHWISE_CONV_2D"
    for t, what in ((x, "an input"), (w, "a filter"), (out, "an output")):
        op.rank(t, 4, what)
        op.dtype(t, "INT8", what=what)
    ic, oc = x.shape[3], out.shape[3]
    if min(w.shape) < 1:
        raise op.fail(f"has an empty filter of shape {w.shape}; {REEXPORT}")
    dh, dw = op.positive("dilation_h_factor", "dilation_w_factor", default=1)
    if depthwise:
        (mult,) = op.positive("depth_multiplier")
        if w.shape[0] != 1:
            raise op.fail(f"has a filter of shape {w.shape}; a depthwise filter is 1 x height x width x channels, {REEXPORT}")
        if w.shape[3] != oc:
            raise op.fail(f"has a filter for {w.shape[3]} channels and an output of {oc}; they must agree, {REEXPORT}")
        if oc != ic * mult:
            raise op.fail(f"has {ic} input channels, depth multiplier {mult} and {oc} output channels, but input channels "
                          f"times depth multiplier must equal output channels; {REEXPORT}")
        _check_per_channel(op, w, oc, 3)
    else:
        if w.shape[0] != oc:
            raise op.fail(f"has a filter for {w.shape[0]} output channels and an output of {oc}; they must agree, {REEXPORT}")
        if ic % w.shape[3]:  # a whole divisor is a grouped convolution, which lowering names
            raise op.fail(f"has a filter for {w.shape[3]} input channels on an input of {ic}; they must agree, {REEXPORT}")
        _check_per_channel(op, w, oc, 0)
    _check_window(op, x, w.shape[1], w.shape[2], (dh, dw))
    op.activation()
    b = _check_bias(op, bias, oc)
    filt = op.const(w)
    per_channel = filt.reshape(-1, oc).T if depthwise else filt.reshape(oc, -1)
    _check_accumulator(op, per_channel, b)
    for s in set(w.scales):
        op.multiplier(float(_scale(x)) * float(s) / float(_scale(out)), "accumulator")


def _fully_connected(op: _Op) -> None:
    x, w, bias, out = op.t(0), op.t(1), op.t(2), op.out
    for t, what in ((x, "an input"), (w, "a filter"), (out, "an output")):
        op.dtype(t, "INT8", what=what)
    op.rank(w, 2, "a filter")
    if op.o.get("weights_format", 0) != 0:
        raise op.fail(f"stores its weights in format {op.o.get('weights_format')} (shuffled), which the compiled runtime does not "
                      f"read; convert the model with the default weights format")
    out_depth, in_depth = w.shape
    if in_depth < 1 or x.elements % in_depth:
        raise op.fail(f"has {x.elements} inputs, not a multiple of its {in_depth} weights per output; {REEXPORT}")
    rows = x.elements // in_depth
    if out.elements != rows * out_depth or (out.shape and out.shape[-1] != out_depth):
        raise op.fail(f"has output shape {out.shape}, but {rows} rows of {out_depth} outputs (its filter is {w.shape}); {REEXPORT}")
    per_channel = len(w.scales) > 1
    _check_per_channel(op, w, out_depth, 0, symmetric=per_channel)
    op.activation()
    b = _check_bias(op, bias, out_depth)
    filt = op.const(w).astype(np.int64) - (0 if per_channel else w.zero_points[0])
    _check_accumulator(op, filt, b)
    if per_channel:
        for s in set(w.scales):
            op.multiplier(float(_scale(x)) * float(s) / float(_scale(out)), "accumulator")
    else:
        if bias is not None:
            # TFLM refuses a per-tensor dense layer whose bias scale is not input scale times weight scale
            product = float(_scale(x)) * float(_scale(w))
            bias_scale = float(bias.scales[0]) if bias.scales else 0.0
            if abs(product - bias_scale) / float(_scale(out)) > 0.02:
                raise op.fail(f"has bias scale {bias_scale!r}, but input scale times weight scale is {product!r}; "
                              f"TFLM requires them to agree, {REEXPORT}")
        op.multiplier(float(np.float32(_scale(x)) * np.float32(_scale(w))) / float(_scale(out)), "accumulator")


def _pool(op: _Op) -> None:
    x, out = op.t(0), op.out
    for t, what in ((x, "an input"), (out, "an output")):
        op.rank(t, 4, what)
        op.dtype(t, "INT8", what=what)
    if x.shape[3] != out.shape[3]:
        raise op.fail(f"turns {x.shape[3]} channels into {out.shape[3]}; pooling keeps the channels, {REEXPORT}")
    kh, kw = op.positive("filter_height", "filter_width")
    _check_window(op, x, kh, kw, (1, 1))
    op.activation()


def _mean(op: _Op) -> None:
    x, axis, out = op.t(0), op.t(1), op.out
    op.dtype(axis, "INT32", what="axes")
    op.dtype(x, "INT8", what="an input")
    op.dtype(out, "INT8", what="an output")
    if len(x.shape) == 4 and out.elements != x.shape[3]:
        raise op.fail(f"averages {x.shape} over height and width into shape {out.shape}, which does not hold {x.shape[3]} channels; "
                      f"{REEXPORT}")
    op.multiplier(float(_scale(x)) / float(_scale(out)), "mean")


def _softmax(op: _Op) -> None:
    x, out = op.t(0), op.out
    op.dtype(x, "INT8", what="an input")
    if not x.shape:
        raise op.fail(f"has a scalar input; softmax needs at least one dimension, {REEXPORT}")
    if x.shape != out.shape:  # TFLM takes the smaller of the two last dimensions as the depth
        raise op.fail(f"has input shape {x.shape} and output shape {out.shape}; softmax keeps the shape, {REEXPORT}")
    beta = op.o.get("beta", 0.0)  # no options table: TFLM zeroes its params, and its int8 softmax aborts on beta 0
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise op.fail(f"has beta {beta!r}; softmax's beta must be finite and positive, {REEXPORT}")
    if x.scales:
        try:
            quant.softmax_params(beta, _scale(x))
        except ValueError as e:  # TFLM's own preparation aborts on such a scale
            raise op.fail(f"cannot run: {e} (scale {_scale(x):.3g}, beta {beta:.3g}); {REEXPORT}") from None


def _logistic(op: _Op) -> None:
    x, out = op.t(0), op.out
    op.dtype(x, "INT8", what="an input")
    op.same_size(x, out)
    if out.scales and np.float32(_scale(out)) != np.float32(1 / 256):
        raise op.fail(f"has output scale {_scale(out)!r}; TFLM's int8 logistic writes scale 1/256 (zero point -128), {REEXPORT}")


def _broadcast(op: _Op) -> tuple[TensorInfo, TensorInfo, TensorInfo]:
    """Two int8 operands that broadcast to the int8 output's shape."""
    a, b, out = op.t(0), op.t(1), op.out
    for t, what in ((a, "an operand"), (b, "an operand"), (out, "an output")):
        op.dtype(t, "INT8", what=what)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise op.fail(f"has operands of shapes {a.shape} and {b.shape}, which do not broadcast; {REEXPORT}") from None
    if _strip(shape) != _strip(out.shape):
        raise op.fail(f"has operands of shapes {a.shape} and {b.shape}, which broadcast to {tuple(shape)}, "
                      f"not to its output's {out.shape}; {REEXPORT}")
    return a, b, out


def _binary(op: _Op) -> None:
    a, b, out = _broadcast(op)
    op.activation()
    if op.op.op in ("ADD", "SUB"):
        twice_max = 2 * float(max(np.float32(_scale(a)), np.float32(_scale(b))))
        m = twice_max / ((1 << quant.ADD_LEFT_SHIFT) * float(_scale(out)))
        if not m < 1:  # TFLM aborts on it (QuantizeMultiplierSmallerThanOneExp)
            raise op.fail(f"has an output scale {_scale(out)!r} too small for its operands' scales (at most "
                          f"{twice_max!r} / 2^{quant.ADD_LEFT_SHIFT}); {REEXPORT}")
    else:
        op.multiplier(float(_scale(a)) * float(_scale(b)) / float(_scale(out)), "product")


def _strip(shape) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def _quantize(op: _Op) -> None:
    x, out = op.t(0), op.out
    op.same_size(x, out)
    op.dtype(out, "INT8", what="an output")
    if x.dtype == "INT8":
        op.multiplier(float(_scale(x)) / float(_scale(out)), "input")


def _dequantize(op: _Op) -> None:
    op.same_size(op.t(0), op.out)


def _pad(op: _Op) -> None:
    x, paddings, out = op.t(0), op.t(1), op.out
    op.dtype(paddings, "INT32", "INT64", what="paddings")
    op.dtype(out, "INT8", what="an output")
    if paddings.elements != 2 * len(x.shape) or paddings.shape[-1:] != (2,):
        raise op.fail(f"has paddings of shape {paddings.shape} for an input of {len(x.shape)} dimensions; it needs "
                      f"{len(x.shape)} x 2, {REEXPORT}")
    pads = op.const(paddings).reshape(-1, 2).astype(np.int64)
    if (pads < 0).any():
        raise op.fail(f"has negative paddings {pads.tolist()}; {REEXPORT}")
    want = tuple(int(d + p.sum()) for d, p in zip(x.shape, pads))
    if want != tuple(out.shape):
        raise op.fail(f"pads {x.shape} by {pads.tolist()} into {want}, but its output is {out.shape}; {REEXPORT}")
    value = op.t(2)
    if value is not None:
        op.dtype(value, "INT8", what="a padding value")
        if value.elements != 1:
            raise op.fail(f"has a padding value of {value.elements} elements; it needs one, {REEXPORT}")


def _concat(op: _Op) -> None:
    out = op.out
    ins = [op.t(k) for k in range(len(op.op.inputs))]
    if any(t is None for t in ins):
        raise op.fail(f"lacks one of its inputs; {REEXPORT}")
    op.activation(("NONE",))  # TFLM refuses a fused activation on CONCATENATION
    rank = len(out.shape)
    axis = op.o.get("axis", 0)
    if not (isinstance(axis, int) and -rank <= axis < rank):
        raise op.fail(f"concatenates along axis {axis!r} of a {rank}-dimensional output; {REEXPORT}")
    axis %= rank
    for t in ins:
        op.dtype(t, "INT8", what="an input")
        if len(t.shape) != rank or any(d != e for k, (d, e) in enumerate(zip(t.shape, out.shape)) if k != axis):
            raise op.fail(f"concatenates shape {t.shape} along axis {axis} into {out.shape}; every other dimension must agree, "
                          f"{REEXPORT}")
    total = sum(t.shape[axis] for t in ins)
    if total != out.shape[axis]:
        raise op.fail(f"concatenates {total} entries along axis {axis} into an output with {out.shape[axis]}; {REEXPORT}")


def _extreme(op: _Op) -> None:
    """MAXIMUM and MINIMUM, which TFLM runs on the codes as they are."""
    a, b, out = _broadcast(op)
    if len({(float(np.float32(_scale(t))), t.zero_points[0]) for t in (a, b, out)}) > 1:
        raise op.fail(f"compares operands quantized as (scale, zero point) {_quantization(a)} and {_quantization(b)} into "
                      f"{_quantization(out)}; TFLM compares the codes as they are, so all three must agree, {REEXPORT}")


def _quantization(t: TensorInfo) -> tuple[float, int]:
    return _scale(t), t.zero_points[0]


def _unary(op: _Op) -> tuple[TensorInfo, TensorInfo]:
    """An elementwise int8 op's input and output, of as many elements."""
    x, out = op.t(0), op.out
    op.dtype(x, "INT8", what="an input")
    op.dtype(out, "INT8", what="an output")
    op.same_size(x, out)
    return x, out


def _same_quantization(op: _Op, x: TensorInfo, out: TensorInfo) -> None:
    if _quantization(x) != _quantization(out):
        raise op.fail(f"turns quantization (scale, zero point) {_quantization(x)} into {_quantization(out)}, but it copies "
                      f"codes unchanged (as TFLM does); {REEXPORT}")


def _leaky_relu(op: _Op) -> None:
    x, out = _unary(op)
    alpha = op.o.get("alpha", 0.0)
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha)):
        raise op.fail(f"has alpha {alpha!r}; it must be a finite number, {REEXPORT}")
    op.multiplier(abs(float(_scale(x)) * float(np.float32(alpha)) / float(_scale(out))), "negative inputs")
    op.multiplier(float(_scale(x)) / float(_scale(out)), "input")


def _hard_swish(op: _Op) -> None:
    x, out = _unary(op)
    hires = float(np.float32(1 / 128) * np.float32(_scale(x)))
    op.multiplier(hires / float(_scale(out)), "input")
    op.multiplier(hires / (3 / 32768), "input against 3.0")
    try:
        quant.hard_swish_params(_scale(x), _scale(out))
    except ValueError as e:
        raise op.fail(f"has {e}; {REEXPORT}") from None


def _tanh(op: _Op) -> None:
    x, out = _unary(op)
    if np.float32(_scale(out)) != np.float32(1 / 128) or out.zero_points[0] != 0:
        raise op.fail(f"has output scale {_scale(out)!r} and zero point {out.zero_points[0]}; TFLM's int8 tanh writes scale "
                      f"1/128 and zero point 0 whatever the output says, {REEXPORT}")
    try:
        quant.tanh_params(_scale(x))
    except ValueError as e:
        raise op.fail(f"cannot run: {e}; {REEXPORT}") from None


def _relu(op: _Op) -> None:
    x, out = _unary(op)
    op.multiplier(float(_scale(x)) / float(_scale(out)), "input")


def _relu6(op: _Op) -> None:
    x, _ = _unary(op)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        six = np.float32(6.0) / np.float32(_scale(x))
    if not (np.isfinite(six) and abs(float(six)) < _INT32_MAX):
        raise op.fail(f"clamps at 6.0, which is not an int32 code at input scale {_scale(x)!r}; {REEXPORT}")


def _strided_slice(op: _Op) -> None:
    x, out = op.t(0), op.out
    op.dtype(x, "INT8", what="an input")
    op.dtype(out, "INT8", what="an output")
    rank = len(x.shape)
    if not 1 <= rank <= 4:
        raise op.fail(f"slices a tensor of shape {x.shape}; TFLM's STRIDED_SLICE takes one to four dimensions, {REEXPORT}")
    bounds = []
    for k, what in ((1, "begin indices"), (2, "end indices"), (3, "strides")):
        t = op.t(k)
        op.dtype(t, "INT32", what=what)
        if t.elements != rank:
            raise op.fail(f"has {t.elements} {what} for an input of {rank} dimensions; {REEXPORT}")
        bounds.append(op.const(t).reshape(-1).astype(np.int64))
    for option in ("ellipsis_mask", "new_axis_mask", "offset"):
        if op.o.get(option, 0):
            raise op.fail(f"sets {option} {op.o[option]!r}, which TFLM ignores; {REEXPORT} (the converter writes none)")
    if not bounds[2].all():
        raise op.fail(f"has strides {bounds[2].tolist()}; a stride of 0 slices nothing, {REEXPORT}")
    masks = [op.o.get(m, 0) for m in ("begin_mask", "end_mask", "shrink_axis_mask")]
    if not all(isinstance(m, int) for m in masks):
        raise op.fail(f"has masks {masks}, which are not integers; {REEXPORT}")
    want = indexing.slice_shape(x.shape, *bounds, *masks)
    if want != tuple(out.shape):
        raise op.fail(f"slices {x.shape} from {bounds[0].tolist()} to {bounds[1].tolist()} by {bounds[2].tolist()} into shape "
                      f"{want}, but its output is {out.shape}; {REEXPORT}")
    taken = math.prod(a.count for a in indexing.slice_axes(x.shape, *bounds, *masks))
    if taken != out.elements:
        raise op.fail(f"takes {taken} elements as TFLM runs it (a shrunk axis starts past its end or runs backwards) for an "
                      f"output of {out.elements}; {REEXPORT}")
    _same_quantization(op, x, out)


def _resize_nearest(op: _Op) -> None:
    x, size, out = op.t(0), op.t(1), op.out
    for t, what in ((x, "an input"), (out, "an output")):
        op.rank(t, 4, what)
        op.dtype(t, "INT8", what=what)
    op.dtype(size, "INT32", what="a size")
    if len(size.shape) != 1 or size.elements != 2:
        raise op.fail(f"has a size of shape {size.shape}; it needs two values, height and width, {REEXPORT}")
    h, w = (int(v) for v in op.const(size).reshape(-1))
    if (x.shape[0], h, w, x.shape[3]) != tuple(out.shape):
        raise op.fail(f"resizes {x.shape} to {h}x{w}, but its output is {out.shape}; {REEXPORT}")
    _same_quantization(op, x, out)


def _transpose_conv(op: _Op) -> None:
    shape, w, x, bias, out = op.t(0), op.t(1), op.t(2), op.t(3), op.out
    for t, what in ((x, "an input"), (w, "a filter"), (out, "an output")):
        op.rank(t, 4, what)
        op.dtype(t, "INT8", what=what)
    op.dtype(shape, "INT32", what="an output shape")
    named = tuple(int(v) for v in op.const(shape).reshape(-1)) if shape.constant else tuple(out.shape)
    if named != tuple(out.shape):
        raise op.fail(f"names the output shape {named}, but its output is {out.shape}; {REEXPORT}")
    oc, kh, kw, ic = w.shape
    if min(w.shape) < 1:
        raise op.fail(f"has an empty filter of shape {w.shape}; {REEXPORT}")
    if ic != x.shape[3]:
        raise op.fail(f"has a filter for {ic} input channels on an input of {x.shape[3]}; they must agree, {REEXPORT}")
    if oc != out.shape[3]:
        raise op.fail(f"has a filter for {oc} output channels and an output of {out.shape[3]}; they must agree, {REEXPORT}")
    _check_per_channel(op, w, oc, 0)
    sh, sw = op.positive("stride_h", "stride_w")
    padding = op.padding()
    # a transposed conv's input is what a conv with its window, strides and padding makes of its output
    want = (quant.out_size(padding, out.shape[1], kh, sh, 1), quant.out_size(padding, out.shape[2], kw, sw, 1))
    if want != tuple(x.shape[1:3]):
        raise op.fail(f"has input {x.shape[1]}x{x.shape[2]}, but a {kh}x{kw} window with strides {sh}x{sw} and {padding} "
                      f"padding over its {out.shape[1]}x{out.shape[2]} output gives {want[0]}x{want[1]}; {REEXPORT}")
    op.activation()
    b = _check_bias(op, bias, oc)
    _check_accumulator(op, op.const(w).reshape(oc, -1), b)
    for s in set(w.scales):
        op.multiplier(float(_scale(x)) * float(s) / float(_scale(out)), "accumulator")


def _reshape(op: _Op) -> None:
    x, out = op.t(0), op.out
    if x.dtype != out.dtype:
        raise op.fail(f"turns {x.dtype.lower()} into {out.dtype.lower()}; a reshape keeps the type, {REEXPORT}")
    op.same_size(x, out)


_OPS = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected, "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool, "MEAN": _mean, "SOFTMAX": _softmax, "LOGISTIC": _logistic, "ADD": _binary, "MUL": _binary,
    "QUANTIZE": _quantize, "DEQUANTIZE": _dequantize, "PAD": _pad, "PADV2": _pad, "CONCATENATION": _concat,
    "RESHAPE": _reshape, "SQUEEZE": _reshape, "SUB": _binary, "MAXIMUM": _extreme, "MINIMUM": _extreme,
    "LEAKY_RELU": _leaky_relu, "HARD_SWISH": _hard_swish, "TANH": _tanh, "RELU": _relu, "RELU6": _relu6,
    "STRIDED_SLICE": _strided_slice, "RESIZE_NEAREST_NEIGHBOR": _resize_nearest, "TRANSPOSE_CONV": _transpose_conv,
}
