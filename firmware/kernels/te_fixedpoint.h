/* Fixed-point arithmetic shared by every kernel path (generic C, Cortex-M DSP, Helium MVE).
 *
 * TFLM's int8 kernels requantize an int32 accumulator with "double rounding": a saturating
 * rounding doubling high multiply by a Q31 multiplier, then a rounding right shift. These
 * helpers are written from that definition; every path must use them (or be proven equal to
 * them by the tests) so that all paths give the same bytes as the host TFLM interpreter.
 */
#ifndef TE_FIXEDPOINT_H
#define TE_FIXEDPOINT_H

#include <stdint.h>

#define TE_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TE_MAX(a, b) ((a) > (b) ? (a) : (b))

/* (a * b * 2) >> 32 rounded as gemmlowp rounds (nudge, then division truncating toward zero);
 * saturates the one overflowing case. For both signs that division equals an arithmetic shift
 * of (a * b + 2^30), which needs no 64-bit division (a library call on Cortex-M). */
static inline int32_t te_high_mul(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* x / 2^e rounded to nearest, ties away from zero (0 <= e <= 31). */
static inline int32_t te_round_shift(int32_t x, int e) {
  const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + ((x & mask) > threshold ? 1 : 0);
}

/* Wrapping left shift: TFLM multiplies by (1 << shift) in int32. */
static inline int32_t te_shl(int32_t x, int s) { return (int32_t)((uint32_t)x << s); }

/* x * m * 2^shift with m a Q31 multiplier in [2^30, 2^31) (or 0), as TFLM's
 * MultiplyByQuantizedMultiplier: a positive shift scales x before the multiply, a negative one
 * rounds after it. m is never INT32_MIN, so the high multiply cannot saturate. */
static inline int32_t te_requant(int32_t x, int32_t m, int shift) {
  const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  const int32_t high = (int32_t)(((int64_t)te_shl(x, left) * (int64_t)m + ((int64_t)1 << 30)) >> 31);
  return te_round_shift(high, right);
}

static inline int8_t te_clamp8(int32_t v, int32_t lo, int32_t hi) { return (int8_t)TE_MIN(hi, TE_MAX(lo, v)); }

/* The output byte of a conv/depthwise/dense accumulator: requantize, add the zero point, clamp. */
static inline int8_t te_output8(int32_t acc, int32_t m, int shift, int32_t out_offset, int32_t lo, int32_t hi) {
  return te_clamp8(te_requant(acc, m, shift) + out_offset, lo, hi);
}

#endif /* TE_FIXEDPOINT_H */
