"""Refuse, in one sentence each, int16 ops ("16x8": int16 activations, int8 weights) the compiled
runtime would run wrongly.

``checks.check_model`` sends every op that reads or writes an int16 activation here instead of
to its int8 rules. The rules are TFLM's for 16x8: int16 tensors are symmetric (zero point 0,
one scale), weights int8 and symmetric, biases int64 (int32 where the model asks for 32-bit
accumulation; depthwise reads int64 only), and the 64-bit requantization takes accumulators
below 2^47 and shifts below 8. Graph, shape and data checks that do not depend on the type are
``checks``'s own helpers.
"""

from __future__ import annotations

import math

import numpy as np

from tinyeff.codegen import checks, quant
from tinyeff.codegen.checks import REEXPORT, _Op
from tinyeff.footprint.tflite_file import ModelInfo, OpInfo, TensorInfo

# ops with an int16 kernel (tinyeff_kernels.h, te_int16.c); RESHAPE and SQUEEZE need none
INT16_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "AVERAGE_POOL_2D", "MAX_POOL_2D",
             "ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "LEAKY_RELU", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE", "PAD",
             "PADV2", "CONCATENATION", "STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR", "RESHAPE", "SQUEEZE")
# ops TFLM runs on int16 through lookup tables or other arithmetic the compiled runtime does not reproduce
_NOT_EXACT = {"SOFTMAX", "LOGISTIC", "TANH"}

ADD_LEFT_SHIFT = 15  # TFLM's headroom for int16 ADD
ACC_BOUND = 1 << 47  # TFLM's 64-bit MultiplyByQuantizedMultiplier takes |x| below 2^47
MAX_SHIFT = 7  # ... and shifts up to 7 (a multiplier below 2^7)
INT32_BIAS = 2  # quantized_bias_type of a layer that accumulates in int32 (the TensorType code of INT32)
_INT16_BOUND = 1 << 15  # |x| of an int16 value with zero point 0


def is_int16(info: ModelInfo, op: OpInfo) -> bool:
    """Does OP read or write an int16 activation (a tensor without constant data)? A QUANTIZE to or
    from int32 counts too: it requantizes beyond int8 as the int16 conversions do, and lives with them."""
    wide = ("INT16", "INT32") if op.op == "QUANTIZE" else ("INT16",)
    return any(i >= 0 and info.tensors[i].dtype in wide and not info.tensors[i].constant for i in (*op.inputs, *op.outputs))


def check_op(op: _Op) -> None:
    """Raise TinyeffError, one sentence, for an int16 op the compiled runtime cannot run as TFLM does."""
    rule = _OPS.get(op.op.op)
    if rule is None:
        from tinyeff.codegen.lower import TFLM_HINT  # lower imports this module's stage

        why = "which TFLM computes with lookup tables the compiled runtime does not reproduce" if op.op.op in _NOT_EXACT \
            else "and the compiled runtime has no int16 kernel for it"
        raise op.fail(f"runs on int16 activations, {why} (its int16 ops: {', '.join(INT16_OPS)}); {TFLM_HINT}")
    for t in _int16_tensors(op):
        _symmetric(op, t)
    rule(op)


def _int16_tensors(op: _Op) -> list[TensorInfo]:
    tensors = [op.info.tensors[i] for i in (*op.op.inputs, *op.op.outputs) if i >= 0]
    return [t for t in tensors if t.dtype == "INT16"]


def _symmetric(op: _Op, t: TensorInfo) -> None:
    """One finite positive scale and zero point 0: what TFLM's int16 kernels assume."""
    where = f"tensor {t.index}{f' ({t.name})' if t.name else ''}"
    if not t.scales:
        raise op.fail(f"has the int16 {where} without a quantization scale; convert the model with a representative "
                      "dataset (the 16x8 ops set)")
    if len(t.scales) != 1 or len(t.zero_points) != 1:
        raise op.fail(f"has the int16 {where} with {len(t.scales)} scales and {len(t.zero_points)} zero points; "
                      f"int16 tensors have one of each, {REEXPORT}")
    if not (math.isfinite(t.scales[0]) and t.scales[0] > 0):
        raise op.fail(f"has the int16 {where} with the quantization scale {t.scales[0]!r}; scales must be finite and "
                      f"positive, {REEXPORT}")
    if t.zero_points[0] != 0:
        raise op.fail(f"has the int16 {where} with zero point {t.zero_points[0]}; TFLM's int16 kernels need "
                      f"zero point 0 (symmetric int16), {REEXPORT}")


def _scale(t: TensorInfo) -> float:
    return t.scales[0]


def accumulates_in_int32(op: OpInfo, bias: TensorInfo | None) -> bool:
    """Does TFLM accumulate this int16 conv or dense layer in int32 (an int32 bias, or none with
    quantized_bias_type INT32) rather than in int64? Depthwise always uses int64."""
    if op.op == "DEPTHWISE_CONV_2D":
        return False
    if bias is not None:
        return bias.dtype == "INT32"
    return op.options.get("quantized_bias_type", 0) == INT32_BIAS


def _bias(op: _Op, bias: TensorInfo | None, channels: int) -> np.ndarray:
    if bias is None:
        return np.zeros(channels, np.int64)
    if op.op.op == "DEPTHWISE_CONV_2D":
        op.dtype(bias, "INT64", what="a bias")  # TFLM's int16 depthwise reads its bias as int64
    else:
        op.dtype(bias, "INT64", "INT32", what="a bias")
    if bias.elements != channels:
        raise op.fail(f"has a bias of {bias.elements} values (shape {bias.shape}) for {channels} output channels; {REEXPORT}")
    return op.const(bias).reshape(-1).astype(np.int64)


def _accumulator(op: _Op, weights: np.ndarray, bias: np.ndarray, int32: bool) -> None:
    """No accumulator leaves the range TFLM's requantization takes: |bias| + 2^15 * sum|w| per channel."""
    w = np.abs(weights.astype(np.int64)).sum(axis=1)
    bound = [abs(int(b)) + _INT16_BOUND * int(s) for b, s in zip(bias, w)]  # Python ints: a bias near 2^63 must not wrap
    limit = checks._INT32_MAX if int32 else ACC_BOUND - 1
    worst = max(range(len(bound)), key=lambda c: bound[c], default=None)
    if worst is not None and bound[worst] > limit:
        raise op.fail(f"can overflow its {'int32 accumulator' if int32 else '64-bit requantization (which takes 2^47)'} in "
                      f"output channel {worst} (bias {int(bias[worst])}, {weights.shape[1]} weights); {REEXPORT}")


def _multiplier(op: _Op, m: float, int32: bool) -> None:
    if int32:
        op.multiplier(m, "accumulator")
        return
    if not (math.isfinite(m) and m < 2.0**MAX_SHIFT):
        raise op.fail(f"rescales its accumulator by {m!r}, more than TFLM's 64-bit requantization represents "
                      f"(below 2^{MAX_SHIFT}); check its tensors' scales, or {REEXPORT}")


def _conv(op: _Op) -> None:
    x, w, bias, out = op.t(0), op.t(1), op.t(2), op.out
    depthwise = op.op.op == "DEPTHWISE_CONV_2D"
    for t, what in ((x, "an input"), (w, "a filter"), (out, "an output")):
        op.rank(t, 4, what)
    op.dtype(x, "INT16", what="an input")
    op.dtype(out, "INT16", what="an output")
    op.dtype(w, "INT8", what="a filter")
    ic, oc = x.shape[3], out.shape[3]
    if min(w.shape) < 1:
        raise op.fail(f"has an empty filter of shape {w.shape}; {REEXPORT}")
    dh, dw = op.positive("dilation_h_factor", "dilation_w_factor", default=1)
    if depthwise:
        (mult,) = op.positive("depth_multiplier")
        if w.shape[0] != 1:
            raise op.fail(f"has a filter of shape {w.shape}; a depthwise filter is 1 x height x width x channels, {REEXPORT}")
        if w.shape[3] != oc or oc != ic * mult:
            raise op.fail(f"has {ic} input channels, depth multiplier {mult}, a filter for {w.shape[3]} channels and "
                          f"{oc} output channels; they must agree, {REEXPORT}")
        checks._check_per_channel(op, w, oc, 3)
    else:
        if w.shape[0] != oc:
            raise op.fail(f"has a filter for {w.shape[0]} output channels and an output of {oc}; they must agree, {REEXPORT}")
        if ic % w.shape[3]:  # a whole divisor is a grouped convolution, which lowering names
            raise op.fail(f"has a filter for {w.shape[3]} input channels on an input of {ic}; they must agree, {REEXPORT}")
        checks._check_per_channel(op, w, oc, 0)
    checks._check_window(op, x, w.shape[1], w.shape[2], (dh, dw))
    op.activation()
    b = _bias(op, bias, oc)
    int32 = accumulates_in_int32(op.op, bias)
    filt = op.const(w)
    _accumulator(op, filt.reshape(-1, oc).T if depthwise else filt.reshape(oc, -1), b, int32)
    for s in set(w.scales):
        _multiplier(op, float(_scale(x)) * float(s) / float(_scale(out)), int32)


def _fully_connected(op: _Op) -> None:
    x, w, bias, out = op.t(0), op.t(1), op.t(2), op.out
    op.dtype(x, "INT16", what="an input")
    op.dtype(out, "INT16", what="an output")
    op.dtype(w, "INT8", what="a filter")
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
    checks._check_per_channel(op, w, out_depth, 0)  # int16 dense layers have symmetric weights, per tensor too
    op.activation()
    b = _bias(op, bias, out_depth)
    int32 = accumulates_in_int32(op.op, bias)
    _accumulator(op, op.const(w), b, int32)
    if per_channel:
        for s in set(w.scales):
            _multiplier(op, float(_scale(x)) * float(s) / float(_scale(out)), int32)
        return
    if bias is not None and bias.scales:
        # TFLM refuses a per-tensor dense layer whose bias scale is not input scale times weight scale
        product = float(_scale(x)) * float(_scale(w))
        if abs(product - float(bias.scales[0])) / float(_scale(out)) > 0.02:
            raise op.fail(f"has bias scale {float(bias.scales[0])!r}, but input scale times weight scale is {product!r}; "
                          f"TFLM requires them to agree, {REEXPORT}")
    _multiplier(op, float(np.float32(_scale(x)) * np.float32(_scale(w))) / float(_scale(out)), int32)


def _pool(op: _Op) -> None:
    x, out = op.t(0), op.out
    for t, what in ((x, "an input"), (out, "an output")):
        op.rank(t, 4, what)
        op.dtype(t, "INT16", what=what)
    if x.shape[3] != out.shape[3]:
        raise op.fail(f"turns {x.shape[3]} channels into {out.shape[3]}; pooling keeps the channels, {REEXPORT}")
    kh, kw = op.positive("filter_height", "filter_width")
    if kh * kw > 1 << 16:  # the int32 sum of an average window
        raise op.fail(f"pools a {kh}x{kw} window, more than the 65,536 values TFLM's int16 average sums in 32 bits; {REEXPORT}")
    checks._check_window(op, x, kh, kw, (1, 1))
    op.activation()


def _binary(op: _Op) -> None:
    """ADD, SUB and MUL."""
    a, b, out = op.t(0), op.t(1), op.out
    for t, what in ((a, "an operand"), (b, "an operand"), (out, "an output")):
        op.dtype(t, "INT16", what=what)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise op.fail(f"has operands of shapes {a.shape} and {b.shape}, which do not broadcast; {REEXPORT}") from None
    if checks._strip(shape) != checks._strip(out.shape):
        raise op.fail(f"has operands of shapes {a.shape} and {b.shape}, which broadcast to {tuple(shape)}, "
                      f"not to its output's {out.shape}; {REEXPORT}")
    op.activation()
    if op.op.op in ("ADD", "SUB"):
        if not add_ratios(_scale(a), _scale(b), _scale(out))[2] < 1:  # TFLM aborts on it
            raise op.fail(f"has an output scale {_scale(out)!r} too small for its operands' scales {_scale(a)!r} and "
                          f"{_scale(b)!r} (TFLM needs twice the larger under 2^{ADD_LEFT_SHIFT} output scales); {REEXPORT}")
    else:
        op.multiplier(float(_scale(a)) * float(_scale(b)) / float(_scale(out)), "product")


def add_ratios(a_scale: float, b_scale: float, out_scale: float) -> tuple[float, float, float]:
    """The three rescalings of TFLM's int16 ADD and SUB: each operand over twice the larger operand
    scale, and that over 2^15 output scales, in double. (The host TFLM forms SUB's in double too,
    whatever its sources' float32 expressions suggest: float32 ratios give outputs one code off.)"""
    twice_max = 2 * float(max(np.float32(a_scale), np.float32(b_scale)))
    return float(a_scale) / twice_max, float(b_scale) / twice_max, twice_max / ((1 << ADD_LEFT_SHIFT) * float(out_scale))


def _transpose_conv(op: _Op) -> None:
    shape, w, x, bias, out = op.t(0), op.t(1), op.t(2), op.t(3), op.out
    for t, what in ((x, "an input"), (w, "a filter"), (out, "an output")):
        op.rank(t, 4, what)
    op.dtype(x, "INT16", what="an input")
    op.dtype(out, "INT16", what="an output")
    op.dtype(w, "INT8", what="a filter")
    op.dtype(shape, "INT32", what="an output shape")
    if shape.constant and tuple(int(v) for v in op.const(shape).reshape(-1)) != tuple(out.shape):
        raise op.fail(f"names the output shape {op.const(shape).reshape(-1).tolist()}, but its output is {out.shape}; {REEXPORT}")
    oc, kh, kw, ic = w.shape
    if min(w.shape) < 1 or ic != x.shape[3] or oc != out.shape[3]:
        raise op.fail(f"has a filter of shape {w.shape} for an input of {x.shape[3]} and an output of {out.shape[3]} channels; "
                      f"they must agree, {REEXPORT}")
    checks._check_per_channel(op, w, oc, 0)
    sh, sw = op.positive("stride_h", "stride_w")
    padding = op.padding()
    # a transposed conv's input is what a conv with its window, strides and padding makes of its output
    want = (quant.out_size(padding, out.shape[1], kh, sh, 1), quant.out_size(padding, out.shape[2], kw, sw, 1))
    if want != tuple(x.shape[1:3]):
        raise op.fail(f"has input {x.shape[1]}x{x.shape[2]}, but a {kh}x{kw} window with strides {sh}x{sw} and {padding} "
                      f"padding over its {out.shape[1]}x{out.shape[2]} output gives {want[0]}x{want[1]}; {REEXPORT}")
    op.activation()
    b = np.zeros(oc, np.int64)
    if bias is not None:
        op.dtype(bias, "INT64", "INT16", what="a bias")  # TFLM reads an int32 bias here as int64
        if bias.elements != oc:
            raise op.fail(f"has a bias of {bias.elements} values (shape {bias.shape}) for {oc} output channels; {REEXPORT}")
        b = op.const(bias).reshape(-1).astype(np.int64)
    _accumulator(op, op.const(w).reshape(oc, -1), b, False)
    for s in set(w.scales):
        _multiplier(op, float(_scale(x)) * float(s) / float(_scale(out)), False)


def _int8_rule(name: str):
    """The int8 rule of op NAME for an int16 op whose int16 tensors _symmetric has checked: NAME
    does on int16 codes what it does on int8 ones (moves, compares, clamps or rescales them with
    the same parameters), so only the int8 rule's type checks differ, and those pass int16."""

    def rule(op: _Op) -> None:
        checks._OPS[name](_AsInt8(op))
    return rule


def _same_type(op: _Op, operands: tuple[int, ...] = ()) -> None:
    """An op whose activations, and OPERANDS (inputs that may be constants), are all int16: the int16
    form of an op, not a conversion."""
    for k, t in enumerate(op.t(k) for k in range(len(op.op.inputs))):
        if t is not None and (k in operands or not t.constant):
            op.dtype(t, "INT16", what="an input")
    op.dtype(op.out, "INT16", what="an output")


# QUANTIZE conversions with an int16 side that TFLM's reference QUANTIZE runs
_QUANTIZE_TYPES = {("INT8", "INT16"), ("INT16", "INT8"), ("INT16", "INT16"), ("FLOAT32", "INT16"),
                   ("INT8", "INT32"), ("INT16", "INT32"), ("INT32", "INT8"), ("INT32", "INT16")}


def _quantize(op: _Op) -> None:
    x, out = op.t(0), op.out
    op.same_size(x, out)
    if (x.dtype, out.dtype) not in _QUANTIZE_TYPES:
        raise op.fail(f"converts {x.dtype.lower()} to {out.dtype.lower()}; the compiled runtime quantizes int8, int16, int32 "
                      f"or float32 to int16, int16 or int32 to int8, and int8 or int16 to int32, {REEXPORT}")
    for t in (x, out):  # an int8 or int16 side is checked as every such tensor is; an int32 one only here
        if t.dtype == "INT32" and not (len(t.scales) == len(t.zero_points) == 1 and math.isfinite(t.scales[0]) and t.scales[0] > 0):
            where = f"tensor {t.index}{f' ({t.name})' if t.name else ''}"
            raise op.fail(f"has the int32 {where} without one finite positive quantization scale and one zero point; "
                          "convert the model with a representative dataset (the 16x8 ops set)")
    if x.dtype != "FLOAT32":
        op.multiplier(float(_scale(x)) / float(_scale(out)), "input")


def _dequantize(op: _Op) -> None:
    x, out = op.t(0), op.out
    op.same_size(x, out)
    op.dtype(out, "FLOAT32", what="an output")


def _pad(op: _Op) -> None:
    _same_type(op)
    value = op.t(2)
    if value is not None:
        op.dtype(value, "INT16", what="a padding value")
    _int8_rule("PAD")(op)


def _concat(op: _Op) -> None:
    _same_type(op)
    _int8_rule("CONCATENATION")(op)  # shapes and axis; TFLM copies int16 values whatever their scales


def _same_type_then_int8_rule(name: str, operands: tuple[int, ...] = ()):
    def rule(op: _Op) -> None:
        _same_type(op, operands)
        _int8_rule(name)(op)
    return rule


class _AsInt8:
    """OP for an int8 rule whose only type-dependent checks the int16 rule has already made: its
    type checks of activation tensors then pass."""

    def __init__(self, op: _Op):
        self._op = op

    def __getattr__(self, name):
        return getattr(self._op, name)

    def dtype(self, t: TensorInfo, *allowed: str, what: str) -> None:
        if "INT8" in allowed and t.dtype == "INT16":
            return
        self._op.dtype(t, *allowed, what=what)


_OPS = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected, "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool, "ADD": _binary, "SUB": _binary, "MUL": _binary, "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize, "PAD": _pad, "PADV2": _pad, "CONCATENATION": _concat, "TRANSPOSE_CONV": _transpose_conv,
    "MAXIMUM": _same_type_then_int8_rule("MAXIMUM", (0, 1)), "MINIMUM": _same_type_then_int8_rule("MINIMUM", (0, 1)),
    **{name: _same_type_then_int8_rule(name) for name in ("LEAKY_RELU", "RELU", "RELU6", "STRIDED_SLICE",
                                                          "RESIZE_NEAREST_NEIGHBOR", "RESHAPE", "SQUEEZE")},
}
