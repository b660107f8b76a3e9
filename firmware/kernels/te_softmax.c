/* SOFTMAX, LOGISTIC and TANH: gemmlowp-style fixed-point exp and reciprocal, as TFLM's int8 kernels. */
#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

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

/* 2 / (1 + x) for x in [0, 1) given in Q0; result in Q2. Newton-Raphson on the half denominator. */
static int32_t te_two_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  const int32_t c48_over_17 = 1515870810, cminus32_over_17 = -1010580540; /* Q2 */
  int32_t x = c48_over_17 + te_high_mul(half_denominator, cminus32_over_17);
  for (int i = 0; i < 3; ++i) {
    const int32_t half_denominator_times_x = te_high_mul(half_denominator, x);         /* Q2 */
    const int32_t one_minus = (1 << 29) - half_denominator_times_x;                   /* Q2 */
    x = x + te_mul_pot(te_high_mul(x, one_minus), 2);                                 /* Q4 -> Q2 */
  }
  return x;
}

/* 1 / (1 + x) for x in [0, 1) given in Q0; result in Q0. */
static int32_t te_one_over_one_plus_x(int32_t a) {
  return te_mul_pot(te_two_over_one_plus_x(a), 1); /* half of it in Q1 is the same raw value; rescaled to Q0 */
}

/* (1 - x) / (1 + x) for x in [0, 1) given in Q0; result in Q0: 2 / (1 + x) - 1, rescaled from Q2. */
static int32_t te_one_minus_x_over_one_plus_x(int32_t a) {
  return te_mul_pot(te_two_over_one_plus_x(a) - (1 << 29), 2);
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

/* tanh(a) for a in Q4; result in Q0: (1 - exp(-2|a|)) / (1 + exp(-2|a|)) with a's sign. The raw
 * value of -|a| in Q4 read as Q5 is -2|a|. */
static int32_t te_tanh_q4(int32_t a) {
  if (a == 0) return 0;
  const int32_t t = te_one_minus_x_over_one_plus_x(te_exp_negative(a < 0 ? a : -a, 5));
  return a < 0 ? -t : t;
}

void te_tanh(const te_logistic_t *p, const int8_t *in, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t x = (int32_t)in[i] - p->in_zp;
    if (x <= -p->radius) {
      out[i] = -128;
    } else if (x >= p->radius) {
      out[i] = 127;
    } else {
      const int32_t q0 = te_tanh_q4(te_requant(x, p->mult, p->left_shift));
      out[i] = te_clamp8(te_round_shift(q0, 24), -128, 127);
    }
  }
}
