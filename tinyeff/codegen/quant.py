"""Requantization constants computed as TFLM's kernels compute them when they prepare.

TFLM derives each op's integer parameters from the float scales stored in the model: a Q31
multiplier and a power-of-two shift from ``frexp``, activation ranges by quantizing 0 and 6,
softmax's input scaling and cut-off. The compiled runtime stores the results as constants in
flash, so they must match TFLM's to the last bit: scales are float32 in the model, and the
products are formed in float32 or float64 exactly where TFLM forms them.
"""

from __future__ import annotations

import math

import numpy as np


def round_half_away(x: float) -> int:
    """std::round: ties away from zero (Python's round() would round ties to even). Not floor(|x| + 0.5):
    that sum rounds in double, up to 1 for the largest double below 1/2 and up by one for odd
    integers from 2^52 to 2^53; the fraction |x| - floor(|x|) is exact."""
    a = abs(x)
    r = math.floor(a)
    r += a - r >= 0.5
    return -r if x < 0 else r


def quantize_multiplier(m: float) -> tuple[int, int]:
    """(q, shift) with m == q * 2^(shift - 31), q a Q31 value in [2^30, 2^31); tiny m flushes to 0."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_value(scale: float, zero_point: int, f: float) -> int:
    """A real value as an int8 code, with TFLM's float32 division."""
    return zero_point + round_half_away(float(np.float32(f) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """The int8 range a fused activation clamps to (NONE, RELU, RELU6, RELU_N1_TO_1)."""
    lo, hi = -128, 127
    if activation == "RELU":
        return max(lo, quantize_value(scale, zero_point, 0.0)), hi
    if activation == "RELU6":
        return max(lo, quantize_value(scale, zero_point, 0.0)), min(hi, quantize_value(scale, zero_point, 6.0))
    if activation == "RELU_N1_TO_1":
        return max(lo, quantize_value(scale, zero_point, -1.0)), min(hi, quantize_value(scale, zero_point, 1.0))
    return lo, hi


def conv_multipliers(input_scale: float, filter_scales: tuple[float, ...], output_scale: float, channels: int):
    """Per-channel (multipliers, shifts) of a conv: double(in) * double(filter) / double(out)."""
    scales = filter_scales if len(filter_scales) > 1 else filter_scales * channels
    pairs = [quantize_multiplier(float(input_scale) * float(s) / float(output_scale)) for s in scales]
    return [q for q, _ in pairs], [s for _, s in pairs]


def per_tensor_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """A per-tensor multiplier: TFLM multiplies the two float32 scales in float32 first."""
    product = float(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(product / float(output_scale))


def out_size(padding: str, in_size: int, k: int, stride: int, dilation: int) -> int:
    eff = (k - 1) * dilation + 1
    return (in_size + stride - 1) // stride if padding == "SAME" else (in_size + stride - eff) // stride


def padding_before(padding: str, in_size: int, k: int, stride: int, dilation: int) -> int:
    """Leading padding as TFLM computes it (the odd pixel of a SAME padding goes after)."""
    eff = (k - 1) * dilation + 1
    total = (out_size(padding, in_size, k, stride, dilation) - 1) * stride + eff - in_size
    return max(total, 0) // 2


SOFTMAX_DIFF_BITS = 5  # integer bits of the scaled input difference (Q5.26)


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input multiplier, left shift, diff_min) of TFLM's int8 softmax."""
    real = min(float(np.float32(beta)) * float(input_scale) * (1 << (31 - SOFTMAX_DIFF_BITS)), (1 << 31) - 1.0)
    if not real > 1.0:  # TFLM's QuantizeMultiplierGreaterThanOne aborts at 1 and below (a left shift of 0 too)
        raise ValueError("softmax input scale too small for TFLM's int8 softmax")
    mult, left_shift = quantize_multiplier(real)
    radius = math.floor(((1 << SOFTMAX_DIFF_BITS) - 1) * (1 << (31 - SOFTMAX_DIFF_BITS)) / (1 << left_shift))
    return mult, left_shift, -radius


ADD_LEFT_SHIFT = 20  # TFLM's headroom for int8 ADD


def add_multipliers(a_scale: float, b_scale: float, out_scale: float) -> tuple[tuple[int, int], ...]:
    """((a_mult, a_shift), (b_mult, b_shift), (out_mult, out_shift)) of TFLM's int8 ADD."""
    twice_max = 2 * float(max(np.float32(a_scale), np.float32(b_scale)))
    return (
        quantize_multiplier(float(a_scale) / twice_max),
        quantize_multiplier(float(b_scale) / twice_max),
        quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * float(out_scale))),
    )


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """TFLM's int8 MEAN rescaling: in_scale / out_scale as a Q31 multiplier, then 1 / COUNT folded
    into it (multiplier shifted left by floor(log2 COUNT), at most 32 and at most 31 + shift,
    divided by COUNT with truncation), so that the sum of COUNT inputs requantizes in one step."""
    mult, shift = quantize_multiplier(float(input_scale) / float(output_scale))
    s = min(count.bit_length() - 1, 32, 31 + shift)
    return (mult << s) // count, shift - s


def logistic_params(input_scale: float, op: str = "logistic") -> tuple[int, int, int]:
    """TFLM's int8 LOGISTIC preparation: (multiplier, left shift, input radius) that map
    (x - zero_point) to Q4 and saturate inputs at or beyond the radius."""
    m, left_shift = math.frexp(float(input_scale) * (1 << 27))  # 4 integer bits: scale * 2^(31 - 4)
    mult = math.floor(m * (1 << 31) + 0.5)  # std::round, m > 0
    if mult >= 1 << 31 or left_shift < 0:
        raise ValueError(f"input scale {input_scale} is outside what TFLM's int8 {op} handles")
    radius = math.floor(15.0 * (1 << 27) / (1 << left_shift))
    return mult, left_shift, radius


def tanh_params(input_scale: float) -> tuple[int, int, int]:
    """TFLM's int8 TANH preparation, which is LOGISTIC's: (multiplier, left shift, input radius)
    mapping (x - zero_point) to Q4 (tanh's kernel then rescales Q4 to Q5 for exp(-2|x|) itself)."""
    return logistic_params(input_scale, "tanh")


# The host TFLM forms the ratios of SUB, LEAKY_RELU, HARD_SWISH and RELU in double, although the
# sources it comes from write them as float32 expressions: ratios rounded to float32 first give
# outputs one code off on some inputs (found with scales chosen to tell the two apart).


def leaky_relu_multipliers(input_scale: float, alpha: float, output_scale: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """((alpha_mult, alpha_shift), (identity_mult, identity_shift)) of TFLM's int8 LEAKY_RELU:
    in_scale * alpha / out_scale and in_scale / out_scale (alpha as the float32 the model stores). A
    negative alpha gives a negative multiplier, which the kernel applies as the negation of its
    magnitude's."""
    alpha = float(np.float32(alpha))
    return (quantize_multiplier(float(input_scale) * alpha / float(output_scale)),
            quantize_multiplier(float(input_scale) / float(output_scale)))


def downscale_multiplier_to_int16(q31: int) -> int:
    """A non-negative Q31 multiplier rounded to Q15, saturating at 32767 (TFLM's
    DownScaleInt32ToInt16Multiplier)."""
    if q31 >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (q31 + (1 << 15)) >> 16


def hard_swish_params(input_scale: float, output_scale: float) -> tuple[int, int, int, int]:
    """(output multiplier, its exponent, "relu-ish" multiplier, its exponent) of TFLM's int8
    HARD_SWISH: Q15 multipliers taking the input on a 2^-7 finer scale (the float32 in_scale / 128) to
    the output scale and to 3/32768 (the scale on which 3.0 is 32768). TFLM refuses a positive output
    exponent; so does ValueError here."""
    hires = float(np.float32(1 / 128) * np.float32(input_scale))
    out_mult, out_exp = quantize_multiplier(hires / float(output_scale))
    reluish_mult, reluish_exp = quantize_multiplier(hires / (3 / 32768))
    if out_exp > 0:
        raise ValueError(f"an output scale {output_scale!r} of at most input scale / 128 ({input_scale!r} / 128), which "
                         "TFLM's int8 hard swish does not take")
    return downscale_multiplier_to_int16(out_mult), out_exp, downscale_multiplier_to_int16(reluish_mult), reluish_exp


def relu_params(input_scale: float, output_scale: float, output_zero_point: int) -> tuple[int, int, int, int]:
    """(multiplier, shift, act_min, act_max) of TFLM's int8 RELU: requantize by in_scale / out_scale,
    clamp below at the output code of 0.0."""
    mult, shift = quantize_multiplier(float(input_scale) / float(output_scale))
    return mult, shift, max(-128, output_zero_point), 127


def relu6_bounds(input_scale: float, input_zero_point: int) -> tuple[int, int]:
    """(lower, upper) input codes TFLM's int8 RELU6 clamps to: the input's codes of 0.0 and 6.0 (the
    output keeps the input's codes; TFLM does not requantize RELU6)."""
    six = round_half_away(float(np.float32(6.0) / np.float32(input_scale))) + input_zero_point
    return input_zero_point, min(127, max(-128, six))

