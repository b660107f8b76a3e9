/* FULLY_CONNECTED, generic C. */
#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

void te_fully_connected(const te_fc_t *p, const int8_t *in, int8_t *out) {
  for (int32_t r = 0; r < p->rows; ++r) {
    const int8_t *x = in + r * p->in_depth;
    for (int32_t o = 0; o < p->out_depth; ++o) {
      const int8_t *w = p->filter + o * p->in_depth;
      int32_t acc = p->bias[o];
      for (int32_t d = 0; d < p->in_depth; ++d) acc += ((int32_t)w[d] + p->filter_offset) * x[d];
      const int32_t q = p->per_channel ? o : 0;
      out[r * p->out_depth + o] = te_output8(acc, p->mult[q], p->shift[q], p->out_offset, p->act_min, p->act_max);
    }
  }
}
