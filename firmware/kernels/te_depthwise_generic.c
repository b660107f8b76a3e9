/* DEPTHWISE_CONV_2D, generic C: any kernel size, stride, dilation, padding and depth multiplier. */
#include "te_fixedpoint.h"
#include "te_ring.h"
#include "tinyeff_kernels.h"

void te_depthwise_conv2d(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *ring) {
  const int32_t zero_point = -p->in_offset;
  int32_t copied = -1;
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    if (ring) te_ring_fill(p, in, ring, oy, &copied);
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_left;
      int8_t *dst = out + (oy * p->out_w + ox) * p->out_c;
      for (int32_t ic = 0; ic < p->in_c; ++ic) {
        for (int32_t m = 0; m < p->depth_mult; ++m) {
          const int32_t oc = ic * p->depth_mult + m;
          int32_t acc = p->bias[oc];
          for (int32_t fy = 0; fy < p->k_h; ++fy) {
            const int32_t iy = iy0 + fy * p->dil_h;
            const int8_t *src = (iy >= 0 && iy < p->in_h) ? te_ring_row(p, in, ring, iy0, iy) : 0;
            for (int32_t fx = 0; fx < p->k_w; ++fx) {
              const int32_t ix = ix0 + fx * p->dil_w;
              const int32_t x = (src && ix >= 0 && ix < p->in_w) ? src[ix * p->in_c + ic] : zero_point;
              acc += (int32_t)p->filter[(fy * p->k_w + fx) * p->out_c + oc] * x;
            }
          }
          dst[oc] = te_output8(acc, p->mult[oc], p->shift[oc], p->out_offset, p->act_min, p->act_max);
        }
      }
    }
  }
}
