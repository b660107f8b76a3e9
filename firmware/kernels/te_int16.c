/* int16 activations with int8 weights ("16x8"), generic C for every core.
 *
 * The arithmetic is TFLM's reference 16x8 kernels': 64-bit accumulators for conv, depthwise and
 * dense (requantized by the 64-bit form of MultiplyByQuantizedMultiplier), the int8 formulas with
 * int16 ranges for ADD, MUL, QUANTIZE and pooling. See tinyeff_kernels.h for what the generator
 * prepares. */
#include <string.h>

#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

static inline int16_t te_clamp16(int32_t v, int32_t lo, int32_t hi) { return (int16_t)TE_MIN(hi, TE_MAX(lo, v)); }

/* A 64-bit accumulator to its int16 output (tinyeff_kernels.h, te_conv16_t). The checks keep
 * |acc| below 2^47, so acc * mult (mult < 2^15) cannot overflow. */
static inline int16_t te_output16(int64_t acc, int32_t acc32, int32_t mult, int32_t shift, int32_t lo, int32_t hi) {
  int32_t v;
  if (acc32) {
    v = te_requant((int32_t)acc, mult, shift); /* modulo 2^32, as TFLM's int32 accumulator wraps */
  } else {
    v = (int32_t)((acc * mult + ((int64_t)1 << (shift - 1))) >> shift);
  }
  return te_clamp16(v, lo, hi);
}

void te_conv2d_16x8(const te_conv16_t *p, const int16_t *in, int16_t *out, int16_t *scratch) {
  (void)scratch;
  const int32_t kernel_row = p->k_w * p->in_c;
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_left;
      int16_t *dst = out + (oy * p->out_w + ox) * p->out_c;
      for (int32_t oc = 0; oc < p->out_c; ++oc) {
        const int8_t *f = p->filter + oc * p->k_h * kernel_row;
        int64_t acc = p->bias[oc];
        for (int32_t fy = 0; fy < p->k_h; ++fy) {
          const int32_t iy = iy0 + fy * p->dil_h;
          if (iy < 0 || iy >= p->in_h) continue;
          for (int32_t fx = 0; fx < p->k_w; ++fx) {
            const int32_t ix = ix0 + fx * p->dil_w;
            if (ix < 0 || ix >= p->in_w) continue;
            const int16_t *x = in + (iy * p->in_w + ix) * p->in_c;
            const int8_t *w = f + fy * kernel_row + fx * p->in_c;
            for (int32_t ic = 0; ic < p->in_c; ++ic) acc += (int32_t)w[ic] * x[ic];
          }
        }
        dst[oc] = te_output16(acc, p->acc32, p->mult[oc], p->shift[oc], p->act_min, p->act_max);
      }
    }
  }
}

void te_depthwise_conv2d_16x8(const te_conv16_t *p, const int16_t *in, int16_t *out, int16_t *scratch) {
  (void)scratch;
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_left;
      int16_t *dst = out + (oy * p->out_w + ox) * p->out_c;
      for (int32_t ic = 0; ic < p->in_c; ++ic) {
        for (int32_t m = 0; m < p->depth_mult; ++m) {
          const int32_t oc = ic * p->depth_mult + m;
          int64_t acc = p->bias[oc];
          for (int32_t fy = 0; fy < p->k_h; ++fy) {
            const int32_t iy = iy0 + fy * p->dil_h;
            if (iy < 0 || iy >= p->in_h) continue;
            for (int32_t fx = 0; fx < p->k_w; ++fx) {
              const int32_t ix = ix0 + fx * p->dil_w;
              if (ix < 0 || ix >= p->in_w) continue;
              acc += (int32_t)p->filter[(fy * p->k_w + fx) * p->out_c + oc] * in[(iy * p->in_w + ix) * p->in_c + ic];
            }
          }
          dst[oc] = te_output16(acc, p->acc32, p->mult[oc], p->shift[oc], p->act_min, p->act_max);
        }
      }
    }
  }
}

void te_fully_connected_16x8(const te_fc16_t *p, const int16_t *in, int16_t *out) {
  for (int32_t r = 0; r < p->rows; ++r) {
    const int16_t *x = in + r * p->in_depth;
    for (int32_t o = 0; o < p->out_depth; ++o) {
      const int8_t *w = p->filter + o * p->in_depth;
      int64_t acc = p->bias[o];
      for (int32_t d = 0; d < p->in_depth; ++d) acc += (int32_t)w[d] * x[d];
      const int32_t q = p->per_channel ? o : 0;
      out[r * p->out_depth + o] = te_output16(acc, p->acc32, p->mult[q], p->shift[q], p->act_min, p->act_max);
    }
  }
}

/* Shared window walk of both pools: MAX != 0 takes the maximum, else the rounded mean. */
static void te_pool16(const te_pool_t *p, const int16_t *in, int16_t *out, int max) {
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    const int32_t fy0 = TE_MAX(0, -iy0), fy1 = TE_MIN(p->k_h, p->in_h - iy0);
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_left;
      const int32_t fx0 = TE_MAX(0, -ix0), fx1 = TE_MIN(p->k_w, p->in_w - ix0);
      for (int32_t c = 0; c < p->c; ++c) {
        int32_t acc = max ? INT16_MIN : 0, count = 0;
        for (int32_t fy = fy0; fy < fy1; ++fy) {
          for (int32_t fx = fx0; fx < fx1; ++fx) {
            const int32_t v = in[((iy0 + fy) * p->in_w + ix0 + fx) * p->c + c];
            acc = max ? TE_MAX(acc, v) : acc + v;
            ++count;
          }
        }
        if (!max && count > 0) acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        out[(oy * p->out_w + ox) * p->c + c] = te_clamp16(acc, p->act_min, p->act_max);
      }
    }
  }
}

void te_average_pool_16(const te_pool_t *p, const int16_t *in, int16_t *out) { te_pool16(p, in, out, 0); }

void te_max_pool_16(const te_pool_t *p, const int16_t *in, int16_t *out) { te_pool16(p, in, out, 1); }

void te_add_16(const te_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t va = te_shl((int32_t)a[i % p->a_period] + p->a_offset, p->left_shift);
    const int32_t vb = te_shl((int32_t)b[i % p->b_period] + p->b_offset, p->left_shift);
    const int32_t sum = te_requant(va, p->a_mult, p->a_shift) + te_requant(vb, p->b_mult, p->b_shift);
    out[i] = te_clamp16(te_requant(sum, p->out_mult, p->out_shift) + p->out_offset, p->act_min, p->act_max);
  }
}

void te_mul_16(const te_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    /* |a * b| <= 2^30: the product of two int16 values fits int32 */
    const int32_t va = (int32_t)a[i % p->a_period] + p->a_offset;
    const int32_t vb = (int32_t)b[i % p->b_period] + p->b_offset;
    out[i] = te_clamp16(te_requant(va * vb, p->out_mult, p->out_shift) + p->out_offset, p->act_min, p->act_max);
  }
}

/* TFLM's Requantize computes in int32: an int32 input minus its zero point, and the result plus the
 * output's, wrap (always 0 for the int32 tensors converters write, so this is for mutated models). */
static inline int32_t te_rescale(const te_requantize_t *p, int32_t x) {
  const int32_t v = te_requant((int32_t)((uint32_t)x - (uint32_t)p->in_zero_point), p->mult, p->shift);
  return (int32_t)((uint32_t)v + (uint32_t)p->out_zero_point);
}

void te_requantize_8to16(const te_requantize_t *p, const int8_t *in, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = te_clamp16(te_rescale(p, in[i]), INT16_MIN, INT16_MAX);
}

void te_requantize_16to8(const te_requantize_t *p, const int16_t *in, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = te_clamp8(te_rescale(p, in[i]), INT8_MIN, INT8_MAX);
}

void te_requantize_16(const te_requantize_t *p, const int16_t *in, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = te_clamp16(te_rescale(p, in[i]), INT16_MIN, INT16_MAX);
}

void te_requantize_8to32(const te_requantize_t *p, const int8_t *in, int32_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = te_rescale(p, in[i]);
}

void te_requantize_16to32(const te_requantize_t *p, const int16_t *in, int32_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = te_rescale(p, in[i]);
}

void te_requantize_32to8(const te_requantize_t *p, const int32_t *in, int8_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = te_clamp8(te_rescale(p, in[i]), INT8_MIN, INT8_MAX);
}

void te_requantize_32to16(const te_requantize_t *p, const int32_t *in, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = te_clamp16(te_rescale(p, in[i]), INT16_MIN, INT16_MAX);
}

/* round() of a float, half away from zero, without libm; |x| < 2^30 (callers clamp first). */
static int32_t te_round_half_away16(float x) {
  const int32_t t = (int32_t)x; /* truncates toward zero */
  const float frac = x - (float)t; /* exact: t and x share their leading bits */
  if (frac >= 0.5f) return t + 1;
  if (frac <= -0.5f) return t - 1;
  return t;
}

void te_quantize_float16(const te_float_quant_t *p, const float *in, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    /* as te_quantize_float: divide in float, round half away from zero, add the zero point and
     * saturate; clamping the quotient first (well past int16) keeps the conversion defined, NaN is 0 */
    float q = in[i] / p->scale;
    if (!(q > -131072.0f)) q = (q != q) ? 0.0f : -131072.0f;
    if (q > 131072.0f) q = 131072.0f;
    out[i] = te_clamp16(te_round_half_away16(q) + p->zero_point, INT16_MIN, INT16_MAX);
  }
}

void te_dequantize16(const te_float_quant_t *p, const int16_t *in, float *out) {
  /* (q - zero_point) * scale is exact in a double (17 + 24 bits): one rounding to float, as TFLM */
  for (int32_t i = 0; i < p->size; ++i) out[i] = (float)((double)p->scale * (double)((int32_t)in[i] - p->zero_point));
}

void te_pad16(const te_pad_t *p, const int16_t *in, int16_t *out) {
  const int32_t *o = p->out_dims, *d = p->in_dims, *b = p->before;
  const int32_t total = o[0] * o[1] * o[2] * o[3];
  for (int32_t i = 0; i < total; ++i) out[i] = (int16_t)p->pad_value;
  for (int32_t n = 0; n < d[0]; ++n)
    for (int32_t h = 0; h < d[1]; ++h)
      for (int32_t w = 0; w < d[2]; ++w) {
        const int32_t dst = (((n + b[0]) * o[1] + h + b[1]) * o[2] + w + b[2]) * o[3] + b[3];
        memcpy(out + dst, in + ((n * d[1] + h) * d[2] + w) * d[3], (size_t)d[3] * sizeof(int16_t));
      }
}

/* ---- ops whose int8 forms are in te_elementwise.c, te_activation.c, te_layout.c and
 * te_transpose_conv.c: the same arithmetic on int16 codes. */

void te_sub_16(const te_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t va = te_shl((int32_t)a[i % p->a_period] + p->a_offset, p->left_shift);
    const int32_t vb = te_shl((int32_t)b[i % p->b_period] + p->b_offset, p->left_shift);
    const int32_t diff = te_requant(va, p->a_mult, p->a_shift) - te_requant(vb, p->b_mult, p->b_shift);
    out[i] = te_clamp16(te_requant(diff, p->out_mult, p->out_shift) + p->out_offset, p->act_min, p->act_max);
  }
}

void te_maximum_16(const te_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = (int16_t)TE_MAX(a[i % p->a_period], b[i % p->b_period]);
}

void te_minimum_16(const te_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = (int16_t)TE_MIN(a[i % p->a_period], b[i % p->b_period]);
}

void te_leaky_relu_16(const te_leaky_relu_t *p, const int16_t *in, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    const int32_t x = (int32_t)in[i] - p->in_zp;
    int32_t v;
    if (x >= 0) {
      v = te_requant(x, p->identity_mult, p->identity_shift);
    } else {
      v = te_requant(x, p->alpha_mult, p->alpha_shift);
      if (p->alpha_negate) v = -v;
    }
    out[i] = te_clamp16(p->out_zp + v, INT16_MIN, INT16_MAX);
  }
}

void te_relu_16(const te_relu_t *p, const int16_t *in, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) {
    out[i] = te_clamp16(p->out_zp + te_requant((int32_t)in[i] - p->in_zp, p->mult, p->shift), p->act_min, p->act_max);
  }
}

void te_clamp_16(const te_clamp_t *p, const int16_t *in, int16_t *out) {
  for (int32_t i = 0; i < p->size; ++i) out[i] = te_clamp16(in[i], p->lo, p->hi);
}

void te_strided_slice_16(const te_slice_t *p, const int16_t *in, int16_t *out) {
  const int32_t *d = p->in_dims, *start = p->start, *step = p->stride, *n = p->count;
  const int32_t s2 = d[3], s1 = d[2] * s2, s0 = d[1] * s1;
  for (int32_t i0 = 0; i0 < n[0]; ++i0) {
    const int16_t *r0 = in + (start[0] + i0 * step[0]) * s0;
    for (int32_t i1 = 0; i1 < n[1]; ++i1) {
      const int16_t *r1 = r0 + (start[1] + i1 * step[1]) * s1;
      for (int32_t i2 = 0; i2 < n[2]; ++i2) {
        const int16_t *r2 = r1 + (start[2] + i2 * step[2]) * s2 + start[3];
        for (int32_t i3 = 0; i3 < n[3]; ++i3) *out++ = r2[i3 * step[3]];
      }
    }
  }
}

void te_resize_nearest_16(const te_resize_t *p, const int16_t *in, int16_t *out) {
  for (int32_t y = 0; y < p->out_h; ++y) {
    const int16_t *row = in + p->src_y[y] * p->in_w * p->c;
    for (int32_t x = 0; x < p->out_w; ++x) {
      memcpy(out, row + p->src_x[x] * p->c, (size_t)p->c * sizeof(int16_t));
      out += p->c;
    }
  }
}

void te_transpose_conv_16x8(const te_transpose_conv16_t *p, const int16_t *in, int16_t *out) {
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      for (int32_t oc = 0; oc < p->out_c; ++oc) {
        /* the input pixels (iy, ix) and taps (fy, fx) with iy * stride_h - pad_top + fy == oy, and
         * likewise for x: TFLM scatters their products into a 64-bit buffer, which sums the same */
        int64_t acc = p->bias[oc];
        for (int32_t fy = 0; fy < p->k_h; ++fy) {
          const int32_t ty = oy + p->pad_top - fy;
          if (ty < 0 || ty % p->stride_h || ty / p->stride_h >= p->in_h) continue;
          for (int32_t fx = 0; fx < p->k_w; ++fx) {
            const int32_t tx = ox + p->pad_left - fx;
            if (tx < 0 || tx % p->stride_w || tx / p->stride_w >= p->in_w) continue;
            const int16_t *x = in + ((ty / p->stride_h) * p->in_w + tx / p->stride_w) * p->in_c;
            const int8_t *w = p->filter + ((oc * p->k_h + fy) * p->k_w + fx) * p->in_c;
            for (int32_t ic = 0; ic < p->in_c; ++ic) acc += (int32_t)w[ic] * x[ic];
          }
        }
        *out++ = te_output16(acc, 0, p->mult[oc], p->shift[oc], p->act_min, p->act_max);
      }
    }
  }
}
