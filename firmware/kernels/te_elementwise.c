/* ADD, SUB, MUL, MAXIMUM, MINIMUM, QUANTIZE (int8 -> int8 and float32 -> int8) and DEQUANTIZE. */
#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

void te_add(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t va = te_shl((int32_t)a[i % p->a_period] + p->a_offset, p->left_shift);
    const int32_t vb = te_shl((int32_t)b[i % p->b_period] + p->b_offset, p->left_shift);
    const int32_t sum = te_requant(va, p->a_mult, p->a_shift) + te_requant(vb, p->b_mult, p->b_shift);
    out[i] = te_clamp8(te_requant(sum, p->out_mult, p->out_shift) + p->out_offset, p->act_min, p->act_max);
  }
}

void te_sub(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t va = te_shl((int32_t)a[i % p->a_period] + p->a_offset, p->left_shift);
    const int32_t vb = te_shl((int32_t)b[i % p->b_period] + p->b_offset, p->left_shift);
    const int32_t diff = te_requant(va, p->a_mult, p->a_shift) - te_requant(vb, p->b_mult, p->b_shift);
    out[i] = te_clamp8(te_requant(diff, p->out_mult, p->out_shift) + p->out_offset, p->act_min, p->act_max);
  }
}

void te_maximum(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = (int8_t)TE_MAX(a[i % p->a_period], b[i % p->b_period]);
}

void te_minimum(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = (int8_t)TE_MIN(a[i % p->a_period], b[i % p->b_period]);
}

void te_mul(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t va = (int32_t)a[i % p->a_period] + p->a_offset;
    const int32_t vb = (int32_t)b[i % p->b_period] + p->b_offset;
    out[i] = te_clamp8(te_requant(va * vb, p->out_mult, p->out_shift) + p->out_offset, p->act_min, p->act_max);
  }
}

void te_requantize(const te_requantize_t *p, const int8_t *in, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    out[i] = te_clamp8(te_requant((int32_t)in[i] - p->in_zero_point, p->mult, p->shift) + p->out_zero_point, -128, 127);
  }
}

/* round() of a float, half away from zero, without libm; |x| < 2^30 (callers clamp first). */
static int32_t te_round_half_away(float x) {
  const int32_t t = (int32_t)x; /* truncates toward zero */
  const float frac = x - (float)t; /* exact: t and x share their leading bits */
  if (frac >= 0.5f) return t + 1;
  if (frac <= -0.5f) return t - 1;
  return t;
}

void te_quantize_float(const te_float_quant_t *p, const float *in, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    /* TFLM divides in float, rounds half away from zero, then adds the zero point and clamps.
     * Clamping the quotient first keeps the integer conversion defined; NaN becomes 0. */
    float q = in[i] / p->scale;
    if (!(q > -1024.0f)) q = (q != q) ? 0.0f : -1024.0f;
    if (q > 1024.0f) q = 1024.0f;
    out[i] = te_clamp8(te_round_half_away(q) + p->zero_point, -128, 127);
  }
}

void te_dequantize(const te_float_quant_t *p, const int8_t *in, float *out) {
  /* TFLM multiplies in double and rounds once to float; (q - zero_point) * scale is exact in a
   * double (9 + 24 bits), so the single rounding matches on any FPU or soft-float. */
  for (int32_t i = 0; i < p->size; ++i) out[i] = (float)((double)p->scale * (double)((int32_t)in[i] - p->zero_point));
}
