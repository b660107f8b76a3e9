/* UNIDIRECTIONAL_SEQUENCE_LSTM on the Cortex-M DSP extension: te_lstm's steps with the gates'
 * matrix products as SMLAD dot products, two weight rows against one widened operand word
 * (te_simd_dsp.h gives the same operations in portable C elsewhere). Integer sums are exact, so
 * the bytes are te_lstm's. */
#include "te_fixedpoint.h"
#include "te_simd_dsp.h"
#include "tinyeff_kernels.h"

static void te_lstm_dot2_dsp(const int8_t *v, const int8_t *w0, const int8_t *w1, int32_t n, int32_t acc[2]) {
  int32_t a0 = acc[0], a1 = acc[1];
  for (int32_t k = n >> 2; k > 0; --k, v += 4, w0 += 4, w1 += 4) {
    const te_pairs_t x = te_widen4(te_read32(v)), f = te_widen4(te_read32(w0)), g = te_widen4(te_read32(w1));
    a0 = te_smlad(x.odd, f.odd, te_smlad(x.even, f.even, a0));
    a1 = te_smlad(x.odd, g.odd, te_smlad(x.even, g.even, a1));
  }
  if (n & 3) {
    const int32_t r = n & 3;
    const te_pairs_t x = te_widen4(te_read_upto4(v, r)), f = te_widen4(te_read_upto4(w0, r));
    const te_pairs_t g = te_widen4(te_read_upto4(w1, r));
    a0 = te_smlad(x.odd, f.odd, te_smlad(x.even, f.even, a0));
    a1 = te_smlad(x.odd, g.odd, te_smlad(x.even, g.even, a1));
  }
  acc[0] = a0, acc[1] = a1;
}

void te_lstm_dsp(const te_lstm_t *p, const int8_t *in, int8_t *hidden, int16_t *cell, int8_t *out) {
  te_lstm_run(p, in, hidden, cell, out, te_lstm_dot2_dsp);
}
