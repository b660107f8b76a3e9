/* tinyeff compiled runtime: int8 kernels (see tinyeff_kernels.h for the contract).
 *
 * The fixed-point helpers below implement the arithmetic TFLM's reference kernels use: a
 * saturating rounding doubling high multiply followed by a rounding right shift ("double
 * rounding"), and gemmlowp's Q-format exp and reciprocal for softmax. They are written from
 * the definitions of those operations; tests compare every kernel with the host TFLM
 * interpreter byte for byte.
 */
#include "tinyeff_kernels.h"

#include <string.h>

#define TE_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TE_MAX(a, b) ((a) > (b) ? (a) : (b))

/* (a * b * 2) >> 32 with rounding half away from zero; saturates the one overflowing case. */
static int32_t te_high_mul(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t nudge = ab >= 0 ? (int64_t)(1 << 30) : (int64_t)(1 - (1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^e rounded to nearest, ties away from zero. */
static int32_t te_round_shift(int32_t x, int e) {
  if (e == 0) return x;
  int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
  int32_t remainder = x & mask;
  int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + (remainder > threshold ? 1 : 0);
}

/* Wrapping left shift: TFLM multiplies by (1 << shift) in int32. */
static int32_t te_shl(int32_t x, int s) { return (int32_t)((uint32_t)x << s); }

/* x * m * 2^shift, with m a Q31 multiplier in [0.5, 1). */
static int32_t te_requant(int32_t x, int32_t m, int shift) {
  return te_round_shift(te_high_mul(te_shl(x, shift > 0 ? shift : 0), m), shift > 0 ? 0 : -shift);
}

static int8_t te_clamp8(int32_t v, int32_t lo, int32_t hi) { return (int8_t)TE_MIN(hi, TE_MAX(lo, v)); }

void te_conv2d(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
  const int32_t kernel_row = p->k_w * p->in_c;
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_left;
      int8_t *dst = scratch ? scratch : out + (oy * p->out_w + ox) * p->out_c;
      for (int32_t oc = 0; oc < p->out_c; ++oc) {
        const int8_t *f = p->filter + oc * p->k_h * kernel_row;
        int32_t acc = 0;
        for (int32_t fy = 0; fy < p->k_h; ++fy) {
          const int32_t iy = iy0 + fy * p->dil_h;
          if (iy < 0 || iy >= p->in_h) continue;
          for (int32_t fx = 0; fx < p->k_w; ++fx) {
            const int32_t ix = ix0 + fx * p->dil_w;
            if (ix < 0 || ix >= p->in_w) continue;
            const int8_t *x = in + (iy * p->in_w + ix) * p->in_c;
            const int8_t *w = f + fy * kernel_row + fx * p->in_c;
            for (int32_t ic = 0; ic < p->in_c; ++ic) acc += (int32_t)w[ic] * ((int32_t)x[ic] + p->in_offset);
          }
        }
        if (p->bias) acc += p->bias[oc];
        acc = te_requant(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
        dst[oc] = te_clamp8(acc, p->act_min, p->act_max);
      }
      /* in place: the pixel's input is read completely before its output overwrites it */
      if (scratch) memcpy(out + (oy * p->out_w + ox) * p->out_c, scratch, (size_t)p->out_c);
    }
  }
}

void te_depthwise_conv2d(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *ring) {
  const int32_t row = p->in_w * p->in_c;
  const int32_t span = (p->k_h - 1) * p->dil_h + 1; /* input rows one output row reads */
  int32_t copied = -1;                                /* last input row saved in RING */
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    if (ring) {
      /* Save the rows this output row needs before any output row can overwrite them; the
       * planner checked that each is still intact when it is first needed. */
      const int32_t last = TE_MIN(p->in_h - 1, iy0 + span - 1);
      for (int32_t r = TE_MAX(copied + 1, 0); r <= last; ++r) memcpy(ring + (r % span) * row, in + r * row, (size_t)row);
      copied = TE_MAX(copied, last);
    }
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_left;
      int8_t *dst = out + (oy * p->out_w + ox) * p->out_c;
      for (int32_t ic = 0; ic < p->in_c; ++ic) {
        for (int32_t m = 0; m < p->depth_mult; ++m) {
          const int32_t oc = ic * p->depth_mult + m;
          int32_t acc = 0;
          for (int32_t fy = 0; fy < p->k_h; ++fy) {
            const int32_t iy = iy0 + fy * p->dil_h;
            if (iy < 0 || iy >= p->in_h) continue;
            const int8_t *src = ring ? ring + (iy % span) * row : in + iy * row;
            for (int32_t fx = 0; fx < p->k_w; ++fx) {
              const int32_t ix = ix0 + fx * p->dil_w;
              if (ix < 0 || ix >= p->in_w) continue;
              acc += (int32_t)p->filter[(fy * p->k_w + fx) * p->out_c + oc] * ((int32_t)src[ix * p->in_c + ic] + p->in_offset);
            }
          }
          if (p->bias) acc += p->bias[oc];
          acc = te_requant(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
          dst[oc] = te_clamp8(acc, p->act_min, p->act_max);
        }
      }
    }
  }
}

void te_fully_connected(const te_fc_t *p, const int8_t *in, int8_t *out) {
  for (int32_t r = 0; r < p->rows; ++r) {
    const int8_t *x = in + r * p->in_depth;
    for (int32_t o = 0; o < p->out_depth; ++o) {
      const int8_t *w = p->filter + o * p->in_depth;
      int32_t acc = 0;
      for (int32_t d = 0; d < p->in_depth; ++d) acc += ((int32_t)w[d] + p->filter_offset) * ((int32_t)x[d] + p->in_offset);
      if (p->bias) acc += p->bias[o];
      const int32_t q = p->per_channel ? o : 0;
      acc = te_requant(acc, p->mult[q], p->shift[q]) + p->out_offset;
      out[r * p->out_depth + o] = te_clamp8(acc, p->act_min, p->act_max);
    }
  }
}

/* Shared window walk of both pools: MAX != 0 takes the maximum, else the rounded mean. */
static void te_pool(const te_pool_t *p, const int8_t *in, int8_t *out, int max) {
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    const int32_t fy0 = TE_MAX(0, -iy0), fy1 = TE_MIN(p->k_h, p->in_h - iy0);
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_left;
      const int32_t fx0 = TE_MAX(0, -ix0), fx1 = TE_MIN(p->k_w, p->in_w - ix0);
      for (int32_t c = 0; c < p->c; ++c) {
        int32_t acc = max ? -128 : 0, count = 0;
        for (int32_t fy = fy0; fy < fy1; ++fy) {
          for (int32_t fx = fx0; fx < fx1; ++fx) {
            const int32_t v = in[((iy0 + fy) * p->in_w + ix0 + fx) * p->c + c];
            acc = max ? TE_MAX(acc, v) : acc + v;
            ++count;
          }
        }
        if (!max && count > 0) acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        out[(oy * p->out_w + ox) * p->c + c] = te_clamp8(acc, p->act_min, p->act_max);
      }
    }
  }
}

void te_average_pool(const te_pool_t *p, const int8_t *in, int8_t *out) { te_pool(p, in, out, 0); }

void te_max_pool(const te_pool_t *p, const int8_t *in, int8_t *out) { te_pool(p, in, out, 1); }

void te_mean_hw(const te_mean_t *p, const int8_t *in, int8_t *out) {
  const int32_t n = p->h * p->w;
  for (int32_t ch = 0; ch < p->c; ++ch) {
    int32_t sum = 0;
    for (int32_t i = 0; i < n; ++i) sum += in[i * p->c + ch];
    out[ch] = te_clamp8(te_requant(sum - p->in_zp * n, p->mult, p->shift) + p->out_zp, -128, 127);
  }
}

/* ---- gemmlowp-style fixed point for softmax and logistic. A Qk value is a raw int32 with k
 * integer bits. */

/* x * 2^e with saturation (e > 0) or rounding (e < 0). */
static int32_t te_mul_pot(int32_t x, int e) {
  if (e < 0) return te_round_shift(x, -e);
  if (e == 0) return x;
  const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return te_shl(x, e);
}

/* exp(a) for a in [-1/4, 0), a in Q0; result in Q0. Taylor series around -1/8. */
static int32_t te_exp_quarter(int32_t a) {
  const int32_t exp_minus_one_eighth = 1895147668;
  const int32_t one_third = 715827883;
  const int32_t x = a + (1 << 28); /* a + 1/8 */
  const int32_t x2 = te_high_mul(x, x);
  const int32_t x3 = te_high_mul(x2, x);
  const int32_t x4 = te_high_mul(x2, x2);
  const int32_t x4_over_4 = te_mul_pot(x4, -2);
  const int32_t poly = te_mul_pot(te_high_mul(x4_over_4 + x3, one_third) + x2, -1);
  return exp_minus_one_eighth + te_high_mul(exp_minus_one_eighth, x + poly);
}

/* exp(a) for a <= 0 given with INT_BITS (4 or 5) integer bits; result in Q0. */
static int32_t te_exp_negative(int32_t a, int int_bits) {
  const int frac = 31 - int_bits;
  const int32_t one_quarter = 1 << (frac - 2);
  const int32_t mod_minus_quarter = (a & (one_quarter - 1)) - one_quarter;
  int32_t result = te_exp_quarter(te_mul_pot(mod_minus_quarter, int_bits));
  const int32_t remainder = mod_minus_quarter - a;
  /* exp(-2^k) for k = -2 .. 4 in Q0, applied for each bit of the remainder the format has */
  static const int32_t exp_of_minus_pot[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  for (int k = -2; k <= 4 && k < int_bits; ++k) {
    if (remainder & (1 << (frac + k))) result = te_high_mul(result, exp_of_minus_pot[k + 2]);
  }
  return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in [0, 1) given in Q0; result in Q0. Newton-Raphson on the half denominator. */
static int32_t te_one_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  const int32_t c48_over_17 = 1515870810, cminus32_over_17 = -1010580540; /* Q2 */
  int32_t x = c48_over_17 + te_high_mul(half_denominator, cminus32_over_17);
  for (int i = 0; i < 3; ++i) {
    const int32_t half_denominator_times_x = te_high_mul(half_denominator, x);         /* Q2 */
    const int32_t one_minus = (1 << 29) - half_denominator_times_x;                   /* Q2 */
    x = x + te_mul_pot(te_high_mul(x, one_minus), 2);                                 /* Q4 -> Q2 */
  }
  return te_mul_pot(x, 1); /* x / 2 in Q1 is the same raw value; rescaled to Q0 */
}

static int te_clz32(uint32_t x) {
  int n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) { x <<= 1; ++n; }
  return n;
}

void te_softmax(const te_softmax_t *p, const int8_t *in, int8_t *out) {
  enum { kAccumBits = 12 };
  for (int32_t r = 0; r < p->rows; ++r) {
    const int8_t *x = in + r * p->depth;
    int8_t *y = out + r * p->depth;
    int32_t max_in_row = -128;
    for (int32_t c = 0; c < p->depth; ++c) max_in_row = TE_MAX(max_in_row, x[c]);
    int32_t sum_of_exps = 0; /* Q12 */
    for (int32_t c = 0; c < p->depth; ++c) {
      const int32_t diff = (int32_t)x[c] - max_in_row;
      if (diff >= p->diff_min) {
        const int32_t scaled = te_high_mul(te_shl(diff, p->in_left_shift), p->in_mult);
        sum_of_exps += te_mul_pot(te_exp_negative(scaled, 5), -kAccumBits);
      }
    }
    const int headroom_plus_one = te_clz32((uint32_t)sum_of_exps);
    const int bits_over_unit = kAccumBits - headroom_plus_one;
    const int32_t shifted_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
    const int32_t shifted_scale = te_one_over_one_plus_x(shifted_minus_one);
    const int exponent = bits_over_unit + 31 - 8;
    for (int32_t c = 0; c < p->depth; ++c) {
      const int32_t diff = (int32_t)x[c] - max_in_row;
      if (diff >= p->diff_min) {
        const int32_t scaled = te_high_mul(te_shl(diff, p->in_left_shift), p->in_mult);
        const int32_t e = te_exp_negative(scaled, 5);
        const int32_t v = te_round_shift(te_high_mul(shifted_scale, e), exponent) - 128;
        y[c] = te_clamp8(v, -128, 127);
      } else {
        y[c] = -128;
      }
    }
  }
}

/* 1 / (1 + exp(-a)) for a in Q4; result in Q0 (1 saturates to INT32_MAX). */
static int32_t te_logistic_q4(int32_t a) {
  if (a == 0) return 1 << 30;
  const int32_t positive = te_one_over_one_plus_x(te_exp_negative(a > 0 ? -a : a, 4));
  return a > 0 ? positive : (int32_t)((uint32_t)INT32_MAX - (uint32_t)positive);
}

void te_logistic(const te_logistic_t *p, const int8_t *in, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t x = (int32_t)in[i] - p->in_zp;
    if (x <= -p->radius) {
      out[i] = -128;
    } else if (x >= p->radius) {
      out[i] = 127;
    } else {
      const int32_t q0 = te_logistic_q4(te_requant(x, p->mult, p->left_shift));
      out[i] = te_clamp8(te_round_shift(q0, 23) - 128, -128, 127);
    }
  }
}

void te_add(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t va = te_shl((int32_t)a[i % p->a_period] + p->a_offset, p->left_shift);
    const int32_t vb = te_shl((int32_t)b[i % p->b_period] + p->b_offset, p->left_shift);
    const int32_t sum = te_requant(va, p->a_mult, p->a_shift) + te_requant(vb, p->b_mult, p->b_shift);
    out[i] = te_clamp8(te_requant(sum, p->out_mult, p->out_shift) + p->out_offset, p->act_min, p->act_max);
  }
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

void te_pad(const te_pad_t *p, const int8_t *in, int8_t *out) {
  const int32_t *o = p->out_dims, *d = p->in_dims, *b = p->before;
  int32_t total = o[0] * o[1] * o[2] * o[3];
  memset(out, p->pad_value, (size_t)total);
  for (int32_t n = 0; n < d[0]; ++n)
    for (int32_t h = 0; h < d[1]; ++h)
      for (int32_t w = 0; w < d[2]; ++w) {
        const int32_t dst = (((n + b[0]) * o[1] + h + b[1]) * o[2] + w + b[2]) * o[3] + b[3];
        memcpy(out + dst, in + ((n * d[1] + h) * d[2] + w) * d[3], (size_t)d[3]);
      }
}

void te_concat(int32_t outer, int32_t n, const int32_t *block, const int8_t *const *in, int8_t *out) {
  for (int32_t k = 0; k < outer; ++k)
    for (int32_t i = 0; i < n; ++i) {
      memcpy(out, in[i] + k * block[i], (size_t)block[i]);
      out += block[i];
    }
}
