/* TRANSPOSE_CONV: each output pixel gathers the input pixels and taps that land on it. */
#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

/* The first tap of a transposed window that lands on output position O along one axis: taps run
 * over those congruent to o + pad modulo the stride (input position (o + pad - tap) / stride),
 * starting at the smallest whose input position is not past the input's end. */
static int32_t te_first_tap(int32_t o, int32_t pad, int32_t stride, int32_t in_size) {
  const int32_t t = o + pad;
  return TE_MAX(t % stride, t - (in_size - 1) * stride);
}

void te_transpose_conv(const te_transpose_conv_t *p, const int8_t *in, int8_t *out) {
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t fy0 = te_first_tap(oy, p->pad_top, p->stride_h, p->in_h);
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      const int32_t fx0 = te_first_tap(ox, p->pad_left, p->stride_w, p->in_w);
      for (int32_t oc = 0; oc < p->out_c; ++oc) {
        int32_t acc = 0;
        /* iy = (oy + pad_top - fy) / stride_h: falls as fy rises, and is in range from fy0 on while >= 0 */
        for (int32_t fy = fy0; fy < p->k_h && oy + p->pad_top - fy >= 0; fy += p->stride_h) {
          const int32_t iy = (oy + p->pad_top - fy) / p->stride_h;
          for (int32_t fx = fx0; fx < p->k_w && ox + p->pad_left - fx >= 0; fx += p->stride_w) {
            const int32_t ix = (ox + p->pad_left - fx) / p->stride_w;
            const int8_t *x = in + (iy * p->in_w + ix) * p->in_c;
            const int8_t *w = p->filter + ((oc * p->k_h + fy) * p->k_w + fx) * p->in_c;
            for (int32_t ic = 0; ic < p->in_c; ++ic) acc += ((int32_t)x[ic] + p->in_offset) * w[ic];
          }
        }
        *out++ = te_output8(acc + p->bias[oc], p->mult[oc], p->shift[oc], p->out_offset, p->act_min, p->act_max);
      }
    }
  }
}
