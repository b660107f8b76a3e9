/* tinyeff kernels for Arm Helium (MVE, Cortex-M55): ACLE intrinsics (arm_mve.h), and one
 * tail-predicated loop in inline assembly (the matrix multiply's, see te_conv_mve.c).
 *
 * Each kernel has the struct, the folded bias and the in-place contract of the generic kernel
 * of the same op (tinyeff_kernels.h) and gives the same output bytes. What this path asks of
 * the generator (tinyeff/codegen/paths.py, _mve):
 *
 *  - te_pointwise_mve: pixel group 4. In place, SCRATCH holds 4 * out_c bytes: the outputs of
 *    4 whole input pixels are computed there before any of them is written. No work buffer.
 *  - te_conv2d_mve: p->work holds 4 * k_h * k_w * in_c bytes (the windows of 4 output pixels,
 *    im2col). In place, SCRATCH is the ring of input rows of te_ring.h.
 *  - te_depthwise_mve (depth_mult 1 only): no work buffer; RING as the generic kernel.
 *  - te_fully_connected_mve (filter_offset 0 only): no work buffer.
 *
 * Build with -mcpu=cortex-m55 -mfloat-abi=hard -mthumb (arm_mve.h needs __ARM_FEATURE_MVE).
 */
#ifndef TE_KERNELS_MVE_H
#define TE_KERNELS_MVE_H

#include <stdint.h>

#include "tinyeff_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

void te_pointwise_mve(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void te_conv2d_mve(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void te_depthwise_mve(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *ring);
void te_fully_connected_mve(const te_fc_t *p, const int8_t *in, int8_t *out);

/* ---- Internal to the MVE kernel files: the int8 matrix multiply that conv and dense share. */

/* How accumulators become output bytes: acc = bias[o] + dot, then te_output8 with mult/shift
 * indexed by o (PER_CHANNEL) or always [0]. */
typedef struct {
  const int32_t *bias, *mult;
  const int8_t *shift;
  int32_t per_channel, out_offset, act_min, act_max;
} te_mve_output_t;

/* OUT[i * out_stride + o] for rows i < N_ROWS of X (DEPTH bytes each, ROW_STRIDE apart) and
 * outputs o < N_OUT of FILTER ([N_OUT][DEPTH]). */
void te_mve_matmul(const int8_t *x, int32_t n_rows, int32_t row_stride, int32_t depth, const int8_t *filter,
                   int32_t n_out, const te_mve_output_t *q, int8_t *out, int32_t out_stride);

/* The taps f in [0, K) whose position I0 + f * DIL lies inside [0, N): [*first, *end). */
static inline void te_mve_valid_taps(int32_t i0, int32_t dil, int32_t k, int32_t n, int32_t *first, int32_t *end) {
  const int32_t lo = i0 < 0 ? (-i0 + dil - 1) / dil : 0;
  const int32_t hi = i0 < n ? (k < (n - 1 - i0) / dil + 1 ? k : (n - 1 - i0) / dil + 1) : 0;
  *first = lo < hi ? lo : hi;
  *end = hi;
}

#ifdef __cplusplus
}
#endif

/* For the MVE kernel files only (the generated model includes this header for the
 * declarations above, and may be built without MVE, e.g. for the host). */
#if defined(__ARM_FEATURE_MVE)
#include <arm_mve.h>

/* te_requant (te_fixedpoint.h) on four lanes, bit for bit, for any int32 ACC and any SHIFT in
 * [-31, 31], given a multiplier that is never INT32_MIN (QuantizeMultiplier's never is):
 *  - VSHL by max(shift, 0) does not saturate: it wraps as te_shl does;
 *  - VQRDMULH is (a * m + 2^30) >> 31, saturating only when a == m == INT32_MIN: te_requant's
 *    high multiply. Its result h is above INT32_MIN since |m| < 2^31;
 *  - VRSHL by -e rounds half up: (h + 2^(e-1)) >> e, computed without overflow. te_round_shift
 *    rounds half away from zero; with h = q * 2^e + r (0 <= r < 2^e), both give
 *    q + (r >= 2^(e-1)) for h >= 0, but for h < 0 te_round_shift gives q + (r > 2^(e-1)).
 *    Subtracting 1 from a negative h when e > 0 makes VRSHL give that too. The subtraction
 *    cannot saturate because h > INT32_MIN; it is skipped when e == 0 because the sign bit of
 *    min(shift, 0) is then clear. */
static inline int32x4_t te_mve_requant(int32x4_t acc, int32x4_t mult, int32x4_t shift) {
  const int32x4_t zero = vdupq_n_s32(0);
  const int32x4_t left = vmaxq_s32(shift, zero), neg_right = vminq_s32(shift, zero);
  const int32x4_t high = vqrdmulhq_s32(vshlq_s32(acc, left), mult);
  const int32x4_t fixup = vshrq_n_s32(vandq_s32(high, neg_right), 31); /* -1: negative, then shifted right */
  return vrshlq_s32(vqaddq_s32(high, fixup), neg_right);
}
#endif

#endif /* TE_KERNELS_MVE_H */
