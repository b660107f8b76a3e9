"""Lower ops on int16 activations ("16x8": int16 activations, int8 weights) to kernel calls.

``lower.lower`` hands every op that reads or writes an int16 activation to ``lower_op``; the
model around it may be int8 (QUANTIZE converts between the two). As in ``lower``, everything TFLM
computes when it prepares an op is computed here, once. The one step TFLM takes at every
inference and this module takes ahead of time is the 64-bit requantization's multiplier: TFLM
rounds the Q31 multiplier to 16 bits each time it requantizes; the constants here hold the
rounded multiplier and the total shift (tinyeff_kernels.h, te_conv16_t).

int16 layers run generic C on every kernel path (te_int16.c). Only elementwise ones (ADD, SUB,
MUL, MAXIMUM, MINIMUM, the activations, int16 QUANTIZE) may overwrite their input: the planner's
row and pixel rules for convolutions count int8 bytes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tinyeff.codegen import quant
from tinyeff.codegen.checks_int16 import ADD_LEFT_SHIFT, INT16_OPS, accumulates_in_int32, add_ratios, is_int16
from tinyeff.codegen.lower import TFLM_HINT, ConstArray, Layer, _array, _fail, _Lowering, _nhwc, _scale, _zp
from tinyeff.footprint.tflite_file import OpInfo, TensorInfo

__all__ = ["INT16_OPS", "is_int16", "lower_op"]

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1

KERNELS = {
    "CONV_2D": "te_conv2d_16x8",
    "DEPTHWISE_CONV_2D": "te_depthwise_conv2d_16x8",
    "FULLY_CONNECTED": "te_fully_connected_16x8",
    "AVERAGE_POOL_2D": "te_average_pool_16",
    "MAX_POOL_2D": "te_max_pool_16",
    "TRANSPOSE_CONV": "te_transpose_conv_16x8",
    "ADD": "te_add_16",
    "SUB": "te_sub_16",
    "MUL": "te_mul_16",
    "MAXIMUM": "te_maximum_16",
    "MINIMUM": "te_minimum_16",
    "LEAKY_RELU": "te_leaky_relu_16",
    "RELU": "te_relu_16",
    "RELU6": "te_clamp_16",
    "PAD": "te_pad16",
    "PADV2": "te_pad16",
    "CONCATENATION": "te_concat",  # bytes: its blocks count bytes
    "STRIDED_SLICE": "te_strided_slice_16",
    "RESIZE_NEAREST_NEIGHBOR": "te_resize_nearest_16",
}
# QUANTIZE and DEQUANTIZE by (input type, output type)
CONVERSIONS = {
    ("INT8", "INT16"): "te_requantize_8to16",
    ("INT16", "INT8"): "te_requantize_16to8",
    ("INT16", "INT16"): "te_requantize_16",
    ("INT8", "INT32"): "te_requantize_8to32",
    ("INT16", "INT32"): "te_requantize_16to32",
    ("INT32", "INT8"): "te_requantize_32to8",
    ("INT32", "INT16"): "te_requantize_32to16",
    ("FLOAT32", "INT16"): "te_quantize_float16",
    ("INT16", "FLOAT32"): "te_dequantize16",
}


def activation_range16(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """The int16 range a fused activation clamps to, quantized as TFLM quantizes its bounds."""
    lo, hi = INT16_MIN, INT16_MAX
    bounds = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}.get(activation, (None, None))
    if bounds[0] is not None:
        lo = max(lo, quant.quantize_value(scale, zero_point, bounds[0]))
    if bounds[1] is not None:
        hi = min(hi, quant.quantize_value(scale, zero_point, bounds[1]))
    return lo, hi


def requant64(multiplier: int, shift: int) -> tuple[int, int]:
    """(16-bit multiplier, right shift) with which TFLM's 64-bit MultiplyByQuantizedMultiplier scales
    an accumulator by the Q31 MULTIPLIER and SHIFT: the multiplier rounded to its top 16 bits
    (saturating at 0x7FFF), the shift made a right shift by the 15 bits it loses."""
    reduced = (multiplier + (1 << 15)) >> 16 if multiplier < 0x7FFF0000 else 0x7FFF
    return reduced, 15 - shift


def _weights(low: _Lowering, op: OpInfo, name: str, mult, shift) -> tuple[list[ConstArray], dict, bool]:
    """Filter, int64 bias and requantization arrays of an int16 conv or dense op, the struct fields
    naming them, and whether it accumulates in int32."""
    w = low.const(op.inputs[1])
    channels = w.shape[-1] if op.op == "DEPTHWISE_CONV_2D" else w.shape[0]
    has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
    bias_tensor = low.t(op.inputs[2]) if has_bias else None
    bias = low.const(op.inputs[2]).astype(np.int64).reshape(-1) if has_bias else np.zeros(channels, np.int64)
    acc32 = accumulates_in_int32(op, bias_tensor)
    if not acc32:
        mult, shift = zip(*(requant64(m, s) for m, s in zip(mult, shift)))
    arrays = [_array(f"{name}_filter", w, "int8_t"), _array(f"{name}_bias", bias, "int64_t"),
              _array(f"{name}_mult", mult, "int32_t"), _array(f"{name}_shift", shift, "int8_t")]
    refs = dict(filter=f"{name}_filter", bias=f"{name}_bias", mult=f"{name}_mult", shift=f"{name}_shift")
    return arrays, refs, acc32


def _act(low: _Lowering, op: OpInfo) -> tuple[int, int]:
    out = low.t(op.outputs[0])
    return activation_range16(op.options.get("fused_activation_function", "NONE"), _scale(out), _zp(out))


def conv(low: _Lowering, op: OpInfo, name: str) -> Layer:
    x, w, out = low.t(op.inputs[0]), low.t(op.inputs[1]), low.t(op.outputs[0])
    depthwise = op.op == "DEPTHWISE_CONV_2D"
    ih, iw, ic = _nhwc(x)
    oh, ow, oc = _nhwc(out)
    _, kh, kw, fic = w.shape
    if not depthwise and fic != ic:
        raise _fail(low.info, op, f"is a grouped convolution, which the compiled runtime does not run; {TFLM_HINT}")
    o = op.options
    sh, sw, dh, dw = o["stride_h"], o["stride_w"], o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
    mult, shift = quant.conv_multipliers(_scale(x), w.scales, _scale(out), oc)
    arrays, refs, acc32 = _weights(low, op, name, mult, shift)
    lo, hi = _act(low, op)
    fields = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw,
                  stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw,
                  pad_top=quant.padding_before(o["padding"], ih, kh, sh, dh),
                  pad_left=quant.padding_before(o["padding"], iw, kw, sw, dw),
                  depth_mult=o.get("depth_multiplier", 1) if depthwise else 1,
                  act_min=lo, act_max=hi, acc32=int(acc32), **refs)
    return Layer(op.index, op.op, KERNELS[op.op], "te_conv16_t", fields, tuple(arrays), (op.inputs[0],), op.outputs[0])


def fully_connected(low: _Lowering, op: OpInfo, name: str) -> Layer:
    x, w, out = low.t(op.inputs[0]), low.t(op.inputs[1]), low.t(op.outputs[0])
    out_depth, in_depth = w.shape
    if len(w.scales) > 1:
        mult, shift = quant.conv_multipliers(_scale(x), w.scales, _scale(out), out_depth)
    else:
        m, s = quant.per_tensor_multiplier(_scale(x), _scale(w), _scale(out))
        mult, shift = [m], [s]
    arrays, refs, acc32 = _weights(low, op, name, mult, shift)
    lo, hi = _act(low, op)
    fields = dict(rows=x.elements // in_depth, in_depth=in_depth, out_depth=out_depth, act_min=lo, act_max=hi,
                  per_channel=int(len(w.scales) > 1), acc32=int(acc32), **refs)
    return Layer(op.index, op.op, KERNELS[op.op], "te_fc16_t", fields, tuple(arrays), (op.inputs[0],), op.outputs[0])


def pool(low: _Lowering, op: OpInfo, name: str) -> Layer:
    x, out = low.t(op.inputs[0]), low.t(op.outputs[0])
    if _scale(x) != _scale(out):
        raise _fail(low.info, op, "changes the quantization, which TFLM's int16 pooling does not allow; export the model again")
    ih, iw, c = _nhwc(x)
    oh, ow, _ = _nhwc(out)
    o = op.options
    kh, kw, sh, sw = o["filter_height"], o["filter_width"], o["stride_h"], o["stride_w"]
    lo, hi = _act(low, op)
    fields = dict(in_h=ih, in_w=iw, c=c, out_h=oh, out_w=ow, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
                  pad_top=quant.padding_before(o["padding"], ih, kh, sh, 1),
                  pad_left=quant.padding_before(o["padding"], iw, kw, sw, 1), act_min=lo, act_max=hi)
    return Layer(op.index, op.op, KERNELS[op.op], "te_pool_t", fields, (), (op.inputs[0],), op.outputs[0])


def binary(low: _Lowering, op: OpInfo, name: str) -> Layer:
    a, b, out = low.t(op.inputs[0]), low.t(op.inputs[1]), low.t(op.outputs[0])
    # a constant operand (a scale or an offset the converter folded) stays in flash
    constants = {t.index: f"{name}_const{k}" for k, t in enumerate((a, b)) if t.constant}
    arrays = tuple(_array(constants[t.index], low.const(t.index), "int16_t") for t in (a, b) if t.constant)

    def period(t: TensorInfo) -> int:
        if t.elements == out.elements:
            return out.elements
        shape = tuple(t.shape)
        while shape and shape[0] == 1:
            shape = shape[1:]
        if tuple(out.shape[len(out.shape) - len(shape):]) != shape:
            raise _fail(low.info, op, f"broadcasts {t.shape} to {out.shape} in a way the compiled runtime does not run; {TFLM_HINT}")
        return t.elements

    lo, hi = _act(low, op)
    fields = dict(size=out.elements, a_period=period(a), b_period=period(b), a_offset=0, b_offset=0, out_offset=0,
                  left_shift=0, a_mult=0, a_shift=0, b_mult=0, b_shift=0, out_mult=0, out_shift=0, act_min=lo, act_max=hi)
    if op.op in ("ADD", "SUB"):
        (am, ash), (bm, bsh), (om, osh) = (quant.quantize_multiplier(r) for r in add_ratios(_scale(a), _scale(b), _scale(out)))
        fields.update(left_shift=ADD_LEFT_SHIFT, a_mult=am, a_shift=ash, b_mult=bm, b_shift=bsh, out_mult=om, out_shift=osh)
    elif op.op == "MUL":
        om, osh = quant.quantize_multiplier(float(_scale(a)) * float(_scale(b)) / float(_scale(out)))
        fields.update(out_mult=om, out_shift=osh)
    return Layer(op.index, op.op, KERNELS[op.op], "te_binary_t", fields, arrays, (op.inputs[0], op.inputs[1]),
                 op.outputs[0], "elementwise", constants=constants)


def transpose_conv(low: _Lowering, op: OpInfo, name: str) -> Layer:
    # inputs: output shape, filter (OHWI), input, optional bias (int64, or int16 TFLM widens)
    w, x, out = low.t(op.inputs[1]), low.t(op.inputs[2]), low.t(op.outputs[0])
    _, ih, iw, ic = x.shape
    _, oh, ow, oc = out.shape
    _, kh, kw, _ = w.shape
    o = op.options
    sh, sw = o["stride_h"], o["stride_w"]
    mult, shift = zip(*(requant64(m, s) for m, s in zip(*quant.conv_multipliers(_scale(x), w.scales, _scale(out), oc))))
    has_bias = len(op.inputs) > 3 and op.inputs[3] >= 0
    bias = low.const(op.inputs[3]).astype(np.int64).reshape(-1) if has_bias else np.zeros(oc, np.int64)
    lo, hi = _act(low, op)
    arrays = (_array(f"{name}_filter", low.const(op.inputs[1]), "int8_t"), _array(f"{name}_bias", bias, "int64_t"),
              _array(f"{name}_mult", mult, "int32_t"), _array(f"{name}_shift", shift, "int8_t"))
    # TFLM pads as a conv over the output would: the output's size takes the conv input's place
    fields = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
                  pad_top=quant.padding_before(o["padding"], oh, kh, sh, 1),
                  pad_left=quant.padding_before(o["padding"], ow, kw, sw, 1), act_min=lo, act_max=hi,
                  filter=f"{name}_filter", bias=f"{name}_bias", mult=f"{name}_mult", shift=f"{name}_shift")
    return Layer(op.index, op.op, KERNELS[op.op], "te_transpose_conv16_t", fields, arrays, (op.inputs[2],), op.outputs[0])


def relu(low: _Lowering, op: OpInfo, name: str) -> Layer:
    """RELU: the int8 rescaling, clamped to [the output's code of 0.0, the int16 maximum]."""
    x, out = low.t(op.inputs[0]), low.t(op.outputs[0])
    mult, shift, _, _ = quant.relu_params(_scale(x), _scale(out), _zp(out))
    fields = dict(size=x.elements, in_zp=_zp(x), out_zp=_zp(out), mult=mult, shift=shift,
                  act_min=max(INT16_MIN, _zp(out)), act_max=INT16_MAX)
    return Layer(op.index, op.op, KERNELS[op.op], "te_relu_t", fields, (), (op.inputs[0],), op.outputs[0], "elementwise")


def relu6(low: _Lowering, op: OpInfo, name: str) -> Layer:
    """RELU6: the input codes clamped to the input's codes of 0.0 and 6.0 (saturated to int16), not requantized."""
    x = low.t(op.inputs[0])
    six = quant.round_half_away(float(np.float32(6.0) / np.float32(_scale(x)))) + _zp(x)
    fields = dict(size=x.elements, lo=_zp(x), hi=min(INT16_MAX, max(INT16_MIN, six)))
    return Layer(op.index, op.op, KERNELS[op.op], "te_clamp_t", fields, (), (op.inputs[0],), op.outputs[0], "elementwise")


def _as_int8_lowered(method):
    """An op whose int8 lowering prepares exactly what TFLM prepares for its int16 form (same struct,
    type-independent parameters), run by the int16 kernel."""

    def lowering(low: _Lowering, op: OpInfo, name: str) -> Layer:
        return dataclasses.replace(method(low, op, name), kernel=KERNELS[op.op])
    return lowering


def convert(low: _Lowering, op: OpInfo, name: str) -> Layer:
    """QUANTIZE and DEQUANTIZE with an int16 side."""
    x, out = low.t(op.inputs[0]), low.t(op.outputs[0])
    kernel = CONVERSIONS.get((x.dtype, out.dtype))
    if kernel is None:
        raise _fail(low.info, op, f"converts {x.dtype.lower()} to {out.dtype.lower()}, which the compiled runtime does not "
                    f"run; {TFLM_HINT}")
    if x.dtype == "FLOAT32":
        return low._float_quant(op, out, kernel)
    if out.dtype == "FLOAT32":
        return low._float_quant(op, x, kernel)
    m, s = quant.quantize_multiplier(float(_scale(x)) / float(_scale(out)))
    fields = dict(size=out.elements, in_zero_point=_zp(x), out_zero_point=_zp(out), mult=m, shift=s)
    inplace = "elementwise" if x.dtype == out.dtype else ""
    return Layer(op.index, op.op, kernel, "te_requantize_t", fields, (), (op.inputs[0],), op.outputs[0], inplace)


def pad(low: _Lowering, op: OpInfo, name: str) -> Layer:
    x, out = low.t(op.inputs[0]), low.t(op.outputs[0])
    pads = low.const(op.inputs[1]).reshape(-1, 2)
    if len(pads) != 4 or len(x.shape) != 4:
        raise _fail(low.info, op, f"pads a tensor that is not 4-D; the compiled runtime pads NHWC tensors only; {TFLM_HINT}")
    value = 0  # TFLM pads int16 with 0, the zero point of symmetric int16, unless PADV2 gives a value
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(low.const(op.inputs[2]).reshape(-1)[0])
    fields = dict(in_dims="{" + ", ".join(map(str, x.shape)) + "}", out_dims="{" + ", ".join(map(str, out.shape)) + "}",
                  before="{" + ", ".join(str(int(p)) for p in pads[:, 0]) + "}", pad_value=value)
    return Layer(op.index, op.op, KERNELS[op.op], "te_pad_t", fields, (), (op.inputs[0],), op.outputs[0])


def concat(low: _Lowering, op: OpInfo, name: str) -> Layer:
    """CONCATENATION of int16 tensors: TFLM copies their values whatever their scales (all zero points are 0)."""
    out = low.t(op.outputs[0])
    ins = [low.t(i) for i in op.inputs]
    if any(t.constant for t in ins):
        raise _fail(low.info, op, f"concatenates a constant, which the compiled runtime does not run yet; {TFLM_HINT}")
    axis = op.options.get("axis", -1) % len(out.shape)
    outer = int(np.prod(out.shape[:axis])) if axis else 1
    blocks = [t.elements // outer * 2 for t in ins]
    fields = dict(outer=outer, n=len(ins), block=f"{name}_block")
    return Layer(op.index, op.op, KERNELS[op.op], "", fields, (_array(f"{name}_block", blocks, "int32_t"),), tuple(op.inputs),
                 op.outputs[0])


def reshape(low: _Lowering, op: OpInfo, name: str) -> Layer:
    return low.reshape(op, name)


_LOWER = {
    "CONV_2D": conv, "DEPTHWISE_CONV_2D": conv, "FULLY_CONNECTED": fully_connected, "TRANSPOSE_CONV": transpose_conv,
    "AVERAGE_POOL_2D": pool, "MAX_POOL_2D": pool, "ADD": binary, "SUB": binary, "MUL": binary, "MAXIMUM": binary,
    "MINIMUM": binary, "RELU": relu, "RELU6": relu6, "QUANTIZE": convert, "DEQUANTIZE": convert, "PAD": pad,
    "PADV2": pad, "CONCATENATION": concat, "RESHAPE": reshape, "SQUEEZE": reshape,
    "LEAKY_RELU": _as_int8_lowered(_Lowering.leaky_relu), "STRIDED_SLICE": _as_int8_lowered(_Lowering.strided_slice),
    "RESIZE_NEAREST_NEIGHBOR": _as_int8_lowered(_Lowering.resize_nearest),
}
assert set(_LOWER) == set(INT16_OPS)


def lower_op(low: _Lowering, op: OpInfo, name: str) -> Layer:
    """The Layer of OP, which reads or writes an int16 activation (is_int16), named NAME."""
    lowering = _LOWER.get(op.op)
    if lowering is None:
        raise _fail(low.info, op, f"runs on int16 activations, which the compiled runtime's int16 kernels do not cover "
                    f"(they run {', '.join(INT16_OPS)}); {TFLM_HINT}")
    return lowering(low, op, name)
