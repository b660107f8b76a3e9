/* PAD, CONCATENATION, STRIDED_SLICE and RESIZE_NEAREST_NEIGHBOR: bytes moved, no arithmetic. */
#include <string.h>

#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

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

void te_strided_slice(const te_slice_t *p, const int8_t *in, int8_t *out) {
  const int32_t *d = p->in_dims, *start = p->start, *step = p->stride, *n = p->count;
  /* element steps of each input axis; an axis of start + k * stride for k < count never leaves it */
  const int32_t s2 = d[3], s1 = d[2] * s2, s0 = d[1] * s1;
  for (int32_t i0 = 0; i0 < n[0]; ++i0) {
    const int8_t *r0 = in + (start[0] + i0 * step[0]) * s0;
    for (int32_t i1 = 0; i1 < n[1]; ++i1) {
      const int8_t *r1 = r0 + (start[1] + i1 * step[1]) * s1;
      for (int32_t i2 = 0; i2 < n[2]; ++i2) {
        const int8_t *r2 = r1 + (start[2] + i2 * step[2]) * s2 + start[3];
        if (step[3] == 1) {
          memcpy(out, r2, (size_t)n[3]);
          out += n[3];
        } else {
          for (int32_t i3 = 0; i3 < n[3]; ++i3) *out++ = r2[i3 * step[3]];
        }
      }
    }
  }
}

void te_resize_nearest(const te_resize_t *p, const int8_t *in, int8_t *out) {
  for (int32_t y = 0; y < p->out_h; ++y) {
    const int8_t *row = in + p->src_y[y] * p->in_w * p->c;
    for (int32_t x = 0; x < p->out_w; ++x) {
      memcpy(out, row + p->src_x[x] * p->c, (size_t)p->c);
      out += p->c;
    }
  }
}
