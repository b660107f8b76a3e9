/* The memory plan's in-place rules (tinyeff/codegen/plan.py, _pixel_safe and _rows_safe with a
 * full ring), for the kernel test drivers: where may they put a layer's output over its input the
 * way the generator's plan would? The drivers leave ring_rows at 0 (the whole span). */
#ifndef TE_TEST_INPLACE_RULES_H
#define TE_TEST_INPLACE_RULES_H

#include <stdint.h>

#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

/* A pointwise conv: do output pixels 0..i-1, at input + DELTA, leave input pixels i.. alone? */
static inline int pixel_safe(const te_conv_t *p, int32_t delta) {
  const int32_t n = p->in_h * p->in_w;
  for (int32_t i = 0; i + 1 < n; ++i)
    if (delta + (i + 1) * p->out_c > (i + 1) * p->in_c) return 0;
  return 1;
}

/* Any other conv: is every input row intact when the ring takes it? */
static inline int rows_safe(const te_conv_t *p, int32_t delta) {
  const int32_t in_row = p->in_w * p->in_c, out_row = p->out_w * p->out_c, span = (p->k_h - 1) * p->dil_h + 1;
  int32_t copied = -1;
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t last = TE_MIN(p->in_h - 1, oy * p->stride_h - p->pad_top + span - 1);
    const int32_t w0 = delta, w1 = delta + oy * out_row;
    for (int32_t r = TE_MAX(copied + 1, 0); r <= last; ++r)
      if (w1 > w0 && r * in_row < w1 && (r + 1) * in_row > w0) return 0;
    copied = TE_MAX(copied, last);
  }
  return 1;
}

#endif /* TE_TEST_INPLACE_RULES_H */
