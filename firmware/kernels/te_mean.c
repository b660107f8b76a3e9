/* MEAN over height and width (Keras GlobalAveragePooling2D). */
#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

void te_mean_hw(const te_mean_t *p, const int8_t *in, int8_t *out) {
  const int32_t n = p->h * p->w;
  for (int32_t ch = 0; ch < p->c; ++ch) {
    int32_t sum = 0;
    for (int32_t i = 0; i < n; ++i) sum += in[i * p->c + ch];
    out[ch] = te_clamp8(te_requant(sum - p->in_zp * n, p->mult, p->shift) + p->out_zp, -128, 127);
  }
}
