"""Properties of the requantization arithmetic in tinyeff/codegen/quant.py, which promises TFLM's
constants to the last bit: the Q31 multiplier encodes its float to half a unit, rounding is C's
std::round for every double, and requantizing with the constants gives the host TFLM's outputs.

Deterministic (derandomize): the same examples every run, so CI never meets a new one by chance.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from model_edit import pack, unpack
from tinyeff.codegen import quant
from tinyeff.reference import tflm_outputs

CHECKS = settings(derandomize=True, database=None, deadline=None, max_examples=400)
INT8 = st.integers(-128, 127)


def _float32(lo: float, hi: float):
    return st.floats(lo, hi, width=32, allow_subnormal=False)


@CHECKS
@given(st.one_of(st.floats(0, 2.0**40, allow_subnormal=True),
                 # just below a power of two: the Q31 mantissa rounds up to 2^31 and must carry into the shift
                 st.builds(lambda k, ulps: math.ldexp(1 - ulps * 2.0**-53, k), st.integers(-40, 40), st.integers(1, 2**22))))
@example(0.0)
@example(2.0**-32)  # the smallest multiplier kept: shift -31
@example(2.0**-32 * (1 - 2.0**-53))  # its Q31 mantissa rounds up to 2^-32: kept, shift -31
@example(0.75 * 2.0**-32)  # shift -32: flushed to 0, as TFLM's QuantizeMultiplier flushes every shift below -31
@example(1 - 2.0**-33)
@example(2.0**31 - 1)
def test_multiplier_encodes_its_value(m):
    q, shift = quant.quantize_multiplier(m)
    if q == 0:
        assert shift == 0 and m < 2.0**-32, (m, q, shift)
        return
    assert 2**30 <= q < 2**31 and shift >= -31, (m, q, shift)  # a positive int32, a shift TFLM keeps
    # exact arithmetic: within half a unit of the Q31 mantissa of m
    assert abs(Fraction(q) * Fraction(2) ** (shift - 31) - Fraction(m)) <= Fraction(2) ** (shift - 32), (m, q, shift)


@CHECKS
@given(st.floats(allow_nan=False, allow_infinity=False))
@example(0.49999999999999994)  # the largest double below 1/2: x + 0.5 rounds up to 1.0 in double
@example(2.0**52 + 1)  # an odd integer where x + 0.5 is not a double
@example(-2.5)
@example(2.0**31 - 0.5)
def test_round_half_away_is_c_round(x):
    assert quant.round_half_away(x) == int(Decimal(x).to_integral_value(ROUND_HALF_UP)), x


def _unary_int8_model(op: str, x_q: tuple[float, int], y_q: tuple[float, int], n: int) -> bytes:
    """A model of one int8 op (RELU, RELU6) from a [1, N] input to a [1, N] output."""
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: bytes, q: tuple[float, int]):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, np.array([1, n], np.int32), schema.TensorType.INT8, 0
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = np.array([q[0]], np.float32), np.array([q[1]], np.int64)
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, op)
    node = schema.OperatorT()
    node.opcodeIndex, node.inputs, node.outputs = 0, np.array([0], np.int32), np.array([1], np.int32)
    g = schema.SubGraphT()
    g.tensors, g.inputs, g.outputs, g.operators = [tensor(b"x", x_q), tensor(b"y", y_q)], [0], [1], [node]
    m = schema.ModelT()
    m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, [code], [g], [schema.BufferT()]
    return pack(m)


def _multiply_by_quantized_multiplier(x: int, q: int, shift: int) -> int:
    """TFLM's integer requantization (kernels/internal/common.h, double rounding): a saturating
    rounding doubling high multiply, then a rounding right shift."""
    a = x * (1 << max(shift, 0))
    if a == q == -(2**31):
        high = 2**31 - 1
    else:
        t = a * q + (1 << 30 if a * q >= 0 else 1 - (1 << 30))
        high = t // 2**31 if t >= 0 else -(-t // 2**31)  # C's int64 division truncates toward zero
    right = max(-shift, 0)
    mask = (1 << right) - 1
    return (high >> right) + ((high & mask) > (mask >> 1) + (high < 0))


@settings(CHECKS, max_examples=600, suppress_health_check=[HealthCheck.too_slow])
# the output scale is x_scale * 2^exponent * mantissa rounded to float32, with a mantissa of any bits,
# so that the ratio of the two scales is seldom a float32 itself (TFLM divides them in double)
@given(op=st.sampled_from(["RELU", "RELU6"]), x_scale=_float32(2.0**-100, 2.0**100), x_zp=INT8,
       # mostly ratios that keep outputs inside int8 (where a multiplier one unit off can show), some extreme
       exponent=st.one_of(st.integers(-1, 8), st.integers(-22, 30)), mantissa=st.floats(1, 2, exclude_max=True),
       y_zp=INT8)
@example(op="RELU", x_scale=1.0, x_zp=0, exponent=-22, mantissa=1.0, y_zp=-128)  # the largest left shift
@example(op="RELU", x_scale=1.0, x_zp=-1, exponent=1, mantissa=1.0, y_zp=0)  # x / 2: every odd input is a tie
@example(op="RELU6", x_scale=2.0**-28, x_zp=127, exponent=0, mantissa=1.0, y_zp=0)  # 6 / scale far past int8
@example(op="RELU6", x_scale=12.0, x_zp=3, exponent=0, mantissa=1.0, y_zp=0)  # 6 / scale = 0.5: a tie
def test_requantization_matches_tflm(op, x_scale, x_zp, exponent, mantissa, y_zp):
    """Every int8 input through RELU (requantized by in/out scale) and RELU6 (clamped at the input's
    codes of 0 and 6) in the host TFLM and by quant.py's constants."""
    with np.errstate(over="ignore"):
        y_scale = float(np.float32(x_scale * 2.0**exponent * mantissa))
    assume(0 < y_scale < math.inf)
    # where 6.0 is no int32 code TFLM's float-to-int conversion is undefined; checks.py refuses such a RELU6
    assume(op == "RELU" or 6 / x_scale < 2**31 - 1)
    x = np.arange(-128, 128, dtype=np.int8)
    if op == "RELU":
        q, shift, lo, hi = quant.relu_params(x_scale, y_scale, y_zp)
        want = [min(hi, max(lo, y_zp + _multiply_by_quantized_multiplier(int(v) - x_zp, q, shift))) for v in x]
    else:
        (lo, hi), (y_scale, y_zp) = quant.relu6_bounds(x_scale, x_zp), (x_scale, x_zp)  # RELU6 keeps the input's codes
        want = [min(hi, max(lo, int(v))) for v in x]
    got = tflm_outputs(_unary_int8_model(op, (x_scale, x_zp), (y_scale, y_zp), len(x)), x.reshape(1, 1, -1))
    assert got.reshape(-1).tolist() == want


# ---- the op preparations at the edges of their ranges (TFLM's limits, not typical scales)


def test_q31_to_q15_rounds_to_nearest_and_saturates_at_the_top():
    """TFLM's DownScaleInt32ToInt16Multiplier: (q + 2^15) >> 16, or 32767 where that would reach 2^15."""
    top = range((1 << 31) - (1 << 17), 1 << 31)  # the band where the saturation decides
    assert [quant.downscale_multiplier_to_int16(q) for q in top] == [min(32767, (q + 32768) >> 16) for q in top]
    assert quant.downscale_multiplier_to_int16((1 << 31) - 1) == 32767
    assert quant.downscale_multiplier_to_int16((1 << 30) + (1 << 15)) == (1 << 14) + 1  # a half rounds up
    assert quant.downscale_multiplier_to_int16((1 << 30) + (1 << 15) - 1) == 1 << 14


@CHECKS
@given(_float32(2.0**-27, 2.0**6))
def test_logistic_constants_are_the_nearest_q31_of_the_input_scale_in_q4(scale):
    mult, left_shift, radius = quant.logistic_params(scale)
    exact = Fraction(float(scale)) * 2**27 / 2**left_shift  # in [0.5, 1)
    assert Fraction(1, 2) <= exact < 1 and 0 <= left_shift
    assert abs(Fraction(mult, 2**31) - exact) <= Fraction(1, 2**32)  # to half a unit of Q31
    # the radius: |x - zero point| beyond which the Q4 input is past +-15 (TFLM saturates there)
    assert radius == math.floor(Fraction(15 * 2**27, 2**left_shift))
    assert quant.tanh_params(scale) == (mult, left_shift, radius)


def test_logistic_and_tanh_refuse_scales_outside_tflm_s_range_by_name():
    import pytest

    with pytest.raises(ValueError, match=r"^input scale 1e-09 is outside what TFLM's int8 logistic handles$"):
        quant.logistic_params(1e-9)  # below 2^-28: a negative left shift
    with pytest.raises(ValueError, match=r"^input scale 1e-09 is outside what TFLM's int8 tanh handles$"):
        quant.tanh_params(1e-9)
    # just below a power of two the Q31 mantissa rounds to 2^31, which TFLM's preparation refuses too
    with pytest.raises(ValueError, match="outside what TFLM's int8 logistic handles"):
        quant.logistic_params((1 - 2.0**-40) * 2.0**-20)
    assert quant.logistic_params(0.75 * 2.0**-27)[1] == 0  # a left shift of 0 is in range


@CHECKS
@given(st.floats(2.0**-40, 2.0**8), st.floats(2.0**-8, 2.0**8), st.integers(1, 1 << 20))
@example(2.0**-40, 2.0**-8, 49)  # in / out = 2^-32: the smallest multiplier kept, shift -31 before the count
@example(1.0, 1.0, 1 << 20)
def test_mean_folds_the_count_into_a_multiplier_tflm_can_apply(in_scale, out_scale, count):
    """The MEAN multiplier is in_scale / out_scale / COUNT to within one unit of its last place, as
    an int32 with a right shift of at most 31 (what TFLM's MultiplyByQuantizedMultiplier takes)."""
    mult, shift = quant.mean_multiplier(in_scale, out_scale, count)
    assert type(mult) is int and 0 <= mult < 1 << 31 and shift >= -31
    base, base_shift = quant.quantize_multiplier(float(in_scale) / float(out_scale))
    wanted = Fraction(base, count) * Fraction(2) ** (base_shift - 31)
    assert abs(Fraction(mult) * Fraction(2) ** (shift - 31) - wanted) < Fraction(2) ** (shift - 31)


def test_a_conv_gets_one_multiplier_per_output_channel_from_per_tensor_or_per_channel_scales():
    """A per-tensor filter scale is used for every channel; per-channel scales one each, no more (the
    generated tables hold exactly one multiplier and shift per output channel)."""
    per_channel = quant.conv_multipliers(0.5, (0.01, 0.02, 0.04), 0.25, 3)
    assert per_channel == tuple(map(list, zip(*(quant.quantize_multiplier(0.5 * f / 0.25) for f in (0.01, 0.02, 0.04)))))
    two = quant.conv_multipliers(0.5, (0.01, 0.02), 0.25, 2)  # as many scales as channels, whatever the count
    assert two == tuple(map(list, zip(*(quant.quantize_multiplier(0.5 * f / 0.25) for f in (0.01, 0.02)))))
    per_tensor = quant.conv_multipliers(0.5, (0.01,), 0.25, 3)
    assert per_tensor == ([quant.quantize_multiplier(0.02)[0]] * 3, [quant.quantize_multiplier(0.02)[1]] * 3)


def _softmax_model(x_scale: float, x_zp: int, depth: int, beta: float = 1.0) -> bytes:
    """One int8 SOFTMAX over rows of DEPTH, output at the scale TFLM requires (1/256, -128)."""
    from ai_edge_litert import schema_py_generated as schema

    m = unpack(_unary_int8_model("SOFTMAX", (x_scale, x_zp), (1 / 256, -128), depth))
    options = schema.SoftmaxOptionsT()
    options.beta = beta
    node = m.subgraphs[0].operators[0]
    node.builtinOptionsType, node.builtinOptions = schema.BuiltinOptions.SoftmaxOptions, options
    return pack(m)


@pytest.fixture(scope="module")
def c_kernels(tmp_path_factory):
    """The kit's generic softmax and activation kernels, as a shared library."""
    import ctypes
    import subprocess

    from tinyeff.resources import resource_dir

    src = resource_dir("firmware") / "kernels"
    lib = tmp_path_factory.mktemp("kernels") / "libte_kernels.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-shared", "-fPIC", f"-I{src}", str(src / "te_softmax.c"),
                    str(src / "te_activation.c"), "-o", str(lib)], check=True, capture_output=True)
    return ctypes.CDLL(str(lib))


# just above 2^-26: about the smallest input scale TFLM's softmax takes (its scaled multiplier must exceed 1);
# 32 and above: that multiplier reaches its cap of 2^31 - 1 (TFLM caps it there too)
@pytest.mark.parametrize("x_scale", [2.0**-26 * (1 + 2.0**-20), 3e-8, 1 / 16, 0.3, 31.5, 32.0, 64.0, 1000.0])
def test_softmax_constants_give_tflm_s_outputs_across_the_input_scales_it_takes(c_kernels, x_scale):
    """The C softmax run with quant.softmax_params' constants against the host TFLM, on rows that hold
    every int8 code, at input scales from TFLM's smallest to past the multiplier's cap."""
    import ctypes

    class Params(ctypes.Structure):
        _fields_ = [(f, ctypes.c_int32) for f in ("rows", "depth", "in_mult", "in_left_shift", "diff_min")]

    depth, rows = 8, 256
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (rows, depth), dtype=np.int8)
    x[:, 0] = np.arange(-128, 128)  # every code in some row, and rows of one spread each
    x[:8] = np.arange(-128, 128, 32, dtype=np.int8)
    want = np.concatenate([tflm_outputs(_softmax_model(x_scale, 3, depth), row.reshape(1, 1, depth)).reshape(1, -1)
                           for row in x])
    mult, left_shift, diff_min = quant.softmax_params(1.0, x_scale)
    got = np.zeros_like(x)
    c_kernels.te_softmax(ctypes.byref(Params(rows, depth, mult, left_shift, diff_min)),
                         x.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)), got.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
    assert np.array_equal(got, want)


def test_softmax_refuses_an_input_scale_tflm_aborts_on_by_name():
    """TFLM's softmax preparation aborts the program unless beta * input scale * 2^26 is above 1 (checked
    here in the host TFLM by hand: 2^-26 and 1.5 * 2^-27 abort it, 2^-26 * 1.0001 runs): the kit refuses
    those scales instead, a left shift of 0 included."""
    for scale in (2.0**-28, 1.5 * 2.0**-27, 2.0**-26):
        with pytest.raises(ValueError, match=r"^softmax input scale too small for TFLM's int8 softmax$"):
            quant.softmax_params(1.0, scale)
    assert quant.softmax_params(1.0, 2.0**-26 * (1 + 2.0**-20))[1] == 1
    assert quant.softmax_params(0.5, 2.0**-25 * (1 + 2.0**-20))[1] == 1  # beta scales the input alike


def test_hard_swish_refuses_any_positive_output_exponent():
    """TFLM's int8 HARD_SWISH takes an output multiplier below 1 only: an output scale in (in/256, in/128]
    gives exponent 1 and is refused, as larger exponents are."""
    with pytest.raises(ValueError, match=r"^an output scale .* which TFLM's int8 hard swish does not take$"):
        quant.hard_swish_params(1.0, 0.75 / 128)
    assert quant.hard_swish_params(1.0, 1 / 64)[1] == 0


@settings(CHECKS, max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# output scales from just above in/128 (the largest multiplier TFLM takes) to 8x the input's
@given(x_scale=_float32(2.0**-12, 2.0**4), ratio=st.floats(1 / 128, 8, exclude_min=True), x_zp=INT8, y_zp=INT8)
@example(x_scale=1.0, ratio=1 / 64, x_zp=0, y_zp=0)
@example(x_scale=0.02, ratio=1.0, x_zp=-128, y_zp=127)
def test_hard_swish_constants_give_tflm_s_outputs_for_every_input_code(c_kernels, x_scale, ratio, x_zp, y_zp):
    """Every int8 code through the C hard swish with quant.hard_swish_params' constants and through the
    host TFLM's HARD_SWISH: the Q15 multipliers (input on the 2^-7 finer scale, against 3.0 and to the
    output) must be TFLM's to the last bit, or some code rounds the other way."""
    import ctypes

    y_scale = float(np.float32(x_scale * ratio))
    try:
        om, oe, rm, re_ = quant.hard_swish_params(x_scale, y_scale)
    except ValueError:
        assume(False)  # the float32 output scale fell at in/128 or below: refused, tested above

    class Params(ctypes.Structure):
        _fields_ = [(f, ctypes.c_int32) for f in ("size", "in_zp", "out_zp", "out_mult", "out_exp", "reluish_mult",
                                                  "reluish_exp")]

    x = np.arange(-128, 128, dtype=np.int8)
    want = tflm_outputs(_unary_int8_model("HARD_SWISH", (x_scale, x_zp), (y_scale, y_zp), len(x)), x.reshape(1, 1, -1))
    got = np.zeros_like(x)
    c_kernels.te_hard_swish(ctypes.byref(Params(len(x), x_zp, y_zp, om, oe, rm, re_)),
                            x.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)), got.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
    assert got.tolist() == want.reshape(-1).tolist()
