/* AVERAGE_POOL_2D and MAX_POOL_2D. */
#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

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
