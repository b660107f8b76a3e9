/* PAD and CONCATENATION: bytes moved, no arithmetic. */
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
