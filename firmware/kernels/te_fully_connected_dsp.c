/* FULLY_CONNECTED (filter_offset 0) on the Cortex-M DSP extension.
 *
 * Two outputs at a time: each input word is widened once (SXTB16 and SXTB16 ROR 8) and meets
 * the same split of both filter rows in four SMLADs, 8 MACs per 13 instructions. A dense layer
 * reads every weight once, so unlike a convolution there is no reuse that a work buffer of
 * widened operands would pay back.
 */
#include "te_fixedpoint.h"
#include "te_kernels_dsp.h"
#include "te_simd_dsp.h"

/* X . W0 and X . W1 over DEPTH entries, added to ACC[0] and ACC[1]. */
static inline void te_dot_1x2(const int8_t *x, const int8_t *w0, const int8_t *w1, int32_t depth, int32_t acc[2]) {
  int32_t a0 = acc[0], a1 = acc[1];
  for (int32_t n = depth >> 2; n > 0; --n, x += 4, w0 += 4, w1 += 4) {
    const te_pairs_t v = te_widen4(te_read32(x)), f = te_widen4(te_read32(w0)), g = te_widen4(te_read32(w1));
    a0 = te_smlad(v.even, f.even, a0);
    a0 = te_smlad(v.odd, f.odd, a0);
    a1 = te_smlad(v.even, g.even, a1);
    a1 = te_smlad(v.odd, g.odd, a1);
  }
  if (depth & 3) {
    const int32_t r = depth & 3;
    const te_pairs_t v = te_widen4(te_read_upto4(x, r)), f = te_widen4(te_read_upto4(w0, r));
    const te_pairs_t g = te_widen4(te_read_upto4(w1, r));
    a0 = te_smlad(v.odd, f.odd, te_smlad(v.even, f.even, a0));
    a1 = te_smlad(v.odd, g.odd, te_smlad(v.even, g.even, a1));
  }
  acc[0] = a0, acc[1] = a1;
}

void te_fully_connected_dsp(const te_fc_t *p, const int8_t *in, int8_t *out) {
  const int32_t depth = p->in_depth, n_out = p->out_depth;
  const te_out_t q = te_out_make(p->mult, p->shift, p->per_channel ? n_out : 1, p->out_offset, p->act_min, p->act_max);
  const te_rq_t layer_rq = te_rq_make(p->mult[0], p->shift[0]);
  for (int32_t r = 0; r < p->rows; ++r) {
    const int8_t *x = in + r * depth;
    int8_t *y = out + r * n_out;
    for (int32_t o = 0; o < n_out; o += 2) {
      /* an odd last output runs against its own row twice and is stored once */
      const int32_t o1 = TE_MIN(o + 1, n_out - 1);
      const int8_t *w0 = p->filter + o * depth;
      int32_t acc[2] = {p->bias[o], p->bias[o1]};
      te_dot_1x2(x, w0, p->filter + o1 * depth, depth, acc);
      const int32_t q0 = p->per_channel ? o : 0, q1 = p->per_channel ? o1 : 0;
      y[o] = te_out_byte(&q, q0, p->per_channel ? te_rq_make(p->mult[o], p->shift[o]) : layer_rq, acc[0]);
      y[o1] = te_out_byte(&q, q1, p->per_channel ? te_rq_make(p->mult[o1], p->shift[o1]) : layer_rq, acc[1]);
    }
  }
}
