/* CONV_2D, generic C: any kernel size, stride, dilation and padding. */
#include <string.h>

#include "te_fixedpoint.h"
#include "te_ring.h"
#include "tinyeff_kernels.h"

/* One output pixel's channels into DST, reading input rows from RING when it is not NULL. */
static void te_conv_pixel(const te_conv_t *p, const int8_t *in, const int8_t *ring, int32_t oy, int32_t ox, int8_t *dst) {
  const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
  const int32_t kernel_row = p->k_w * p->in_c, zero_point = -p->in_offset;
  for (int32_t oc = 0; oc < p->out_c; ++oc) {
    const int8_t *f = p->filter + oc * p->k_h * kernel_row;
    int32_t acc = p->bias[oc];
    for (int32_t fy = 0; fy < p->k_h; ++fy) {
      const int32_t iy = iy0 + fy * p->dil_h;
      const int8_t *src = (iy >= 0 && iy < p->in_h) ? te_ring_row(p, in, ring, iy0, iy) : NULL;
      for (int32_t fx = 0; fx < p->k_w; ++fx) {
        const int32_t ix = ix0 + fx * p->dil_w;
        const int8_t *w = f + fy * kernel_row + fx * p->in_c;
        if (src && ix >= 0 && ix < p->in_w) {
          const int8_t *x = src + ix * p->in_c;
          for (int32_t ic = 0; ic < p->in_c; ++ic) acc += (int32_t)w[ic] * x[ic];
        } else {
          /* a padded tap reads the zero point: the folded bias counted every tap */
          for (int32_t ic = 0; ic < p->in_c; ++ic) acc += (int32_t)w[ic] * zero_point;
        }
      }
    }
    dst[oc] = te_output8(acc, p->mult[oc], p->shift[oc], p->out_offset, p->act_min, p->act_max);
  }
}

static int te_is_pointwise(const te_conv_t *p) {
  return p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 && p->pad_left == 0;
}

void te_conv2d(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
  const int pixel_inplace = scratch && te_is_pointwise(p);
  int8_t *ring = scratch && !pixel_inplace ? scratch : NULL;
  int32_t copied = -1;
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    if (ring) te_ring_fill(p, in, ring, oy, &copied);
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      int8_t *dst = out + (oy * p->out_w + ox) * p->out_c;
      if (pixel_inplace) {
        /* the pixel's input is read completely before its output overwrites it */
        te_conv_pixel(p, in, NULL, oy, ox, scratch);
        memcpy(dst, scratch, (size_t)p->out_c);
      } else {
        te_conv_pixel(p, in, ring, oy, ox, dst);
      }
    }
  }
}
