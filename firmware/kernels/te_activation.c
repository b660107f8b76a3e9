/* LEAKY_RELU, HARD_SWISH, RELU and RELU6: elementwise int8 activations, OUT may alias IN. */
#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

void te_leaky_relu(const te_leaky_relu_t *p, const int8_t *in, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t x = (int32_t)in[i] - p->in_zp;
    int32_t v;
    if (x >= 0) {
      v = te_requant(x, p->identity_mult, p->identity_shift);
    } else {
      v = te_requant(x, p->alpha_mult, p->alpha_shift);
      if (p->alpha_negate) v = -v;
    }
    out[i] = te_clamp8(p->out_zp + v, -128, 127);
  }
}

/* ---- int16 fixed point of TFLM's hard swish. int16 results wrap as a C++ int16_t assignment does. */

static int16_t te_wrap16(int32_t v) { return (int16_t)((int32_t)(((uint32_t)v + 0x8000u) & 0xFFFFu) - 0x8000); }

/* gemmlowp's rounding doubling high multiply on int16: (a * b + nudge) / 2^15 truncated, the nudge
 * 2^14 for a non-negative product and 1 - 2^14 for a negative one; -32768 * -32768 saturates. */
static int16_t te_high_mul16(int16_t a, int16_t b) {
  if (a == INT16_MIN && b == INT16_MIN) return INT16_MAX;
  const int32_t ab = (int32_t)a * (int32_t)b;
  return (int16_t)((ab + (ab >= 0 ? (1 << 14) : 1 - (1 << 14))) / (1 << 15));
}

/* The same without rounding: a * b / 2^15 truncated toward zero (it cancels the other's bias). */
static int16_t te_doubling_high_mul16(int16_t a, int16_t b) {
  if (a == INT16_MIN && b == INT16_MIN) return INT16_MAX;
  return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

/* x * 2^s saturated to int16 (0 <= s <= 30). */
static int16_t te_sat_shl16(int16_t x, int s) {
  const int64_t v = (int64_t)x * ((int64_t)1 << s);
  return (int16_t)(v > INT16_MAX ? INT16_MAX : v < INT16_MIN ? INT16_MIN : v);
}

/* gemmlowp's rounding right shift on int16 (0 <= e <= 31). Its mask 2^e - 1 is an int16 too, so
 * for e >= 16 it is -1 and the rounding term compares x with -1 or 0: reproduced as written. */
static int16_t te_round_shift16(int16_t x, int e) {
  const int16_t mask = e >= 16 ? (int16_t)-1 : (int16_t)((1 << e) - 1);
  const int16_t remainder = (int16_t)(x & mask);
  const int16_t threshold = te_wrap16((mask >> 1) + (x < 0 ? 1 : 0));
  return te_wrap16((x >> e) + (remainder > threshold ? 1 : 0));
}

void te_hard_swish(const te_hard_swish_t *p, const int8_t *in, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    /* |x - zp| <= 255, so x on the 2^-7 finer scale still fits int16 */
    const int16_t hires = (int16_t)(((int32_t)in[i] - p->in_zp) * 128);
    const int16_t on_out_scale = te_high_mul16(hires, (int16_t)p->out_mult);
    /* the input over 3.0 as Q15, saturating at +-1; a left shift is split around the multiply so
     * that only its last bit can saturate */
    int16_t reluish = hires;
    if (p->reluish_exp > 0) reluish = te_sat_shl16(reluish, p->reluish_exp - 1);
    reluish = te_high_mul16(reluish, (int16_t)p->reluish_mult);
    if (p->reluish_exp > 0) reluish = te_sat_shl16(reluish, 1);
    if (p->reluish_exp < 0) reluish = te_round_shift16(reluish, -p->reluish_exp);
    reluish = (int16_t)(((int32_t)reluish + (1 << 15)) >> 1); /* [-1, 1] -> [0, 1] */
    const int16_t product = te_doubling_high_mul16(reluish, on_out_scale);
    const int16_t v = te_wrap16(te_round_shift16(product, -p->out_exp) + p->out_zp);
    out[i] = te_clamp8(v, -128, 127);
  }
}

void te_relu(const te_relu_t *p, const int8_t *in, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t v = p->out_zp + te_requant((int32_t)in[i] - p->in_zp, p->mult, p->shift);
    out[i] = te_clamp8(v, p->act_min, p->act_max);
  }
}

void te_clamp(const te_clamp_t *p, const int8_t *in, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = te_clamp8(in[i], p->lo, p->hi);
}
