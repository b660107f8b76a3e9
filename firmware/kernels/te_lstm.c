/* UNIDIRECTIONAL_SEQUENCE_LSTM with TFLM's integer arithmetic: int8 sequence, weights and hidden
 * state, int16 gates and cell state (see tinyeff_kernels.h, te_lstm_t, for what the generator
 * prepares). The steps are generic C on every path; a path only brings its own dot products
 * (te_lstm_dsp.c). */
#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

/* sigmoid(i / 24) in unsigned 0.16 fixed point, i = 0..255: the exact values TFLM's int16 sigmoid
 * and tanh interpolate between (they are not a plain rounding of the function, so they are data
 * here, not a formula). tanh(x) = 2 sigmoid(2x) - 1 lets one table serve both. */
static const uint16_t te_sigmoid_table[256] = {
  32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
  40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
  47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
  53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
  57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
  60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
  62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
  63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
  64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
  64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
  65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
  65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
  65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
  65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
  65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
  65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
  65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
  65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
  65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
  65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
  65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
  65534, 65534, 65534, 65535
};

#define TE_TABLE_LAST 255

static inline int16_t te_sat16(int32_t v) { return (int16_t)TE_MIN(INT16_MAX, TE_MAX(INT16_MIN, v)); }

/* Linear interpolation in the table at |v| with FRAC_BITS fraction bits below the index, with
 * FRAC_BITS more bits of precision in the result; SATURATED past the table's end. */
static inline uint32_t te_table_lookup(uint32_t a, int frac_bits, uint32_t saturated) {
  const uint32_t i = a >> frac_bits;
  if (i >= TE_TABLE_LAST) return saturated;
  const uint32_t lo = te_sigmoid_table[i], hi = te_sigmoid_table[i + 1];
  return (lo << frac_bits) + (a & ((1u << frac_bits) - 1u)) * (hi - lo);
}

/* int16 sigmoid of a Q3.12 gate into Q0.15, as TFLM's: the input scaled by 3 puts 24 table steps
 * in one unit, with 9 fraction bits; the result rounds back from 25 bits. */
static int16_t te_sigmoid16(int16_t x) {
  const int32_t v = (int32_t)x * 3;
  uint32_t r = te_table_lookup((uint32_t)(v < 0 ? -v : v), 9, 0x7FFFu << 10);
  r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
  return (int16_t)(r >> 10);
}

/* int16 tanh into Q0.15 of (x * mult + round) >> shift, which is the input on TFLM's tanh scale
 * (a Q3.12 value times 3, 8 fraction bits below the table index since tanh(x) = 2 sigmoid(2x) - 1). */
static int16_t te_tanh16(int16_t x, int32_t mult, int32_t shift) {
  const int32_t round = shift > 0 ? (int32_t)1 << (shift - 1) : 0;
  const int32_t v = ((int32_t)x * mult + round) >> shift;
  int32_t r = (int32_t)te_table_lookup((uint32_t)(v < 0 ? -v : v), 8, 0xFFFFu << 8);
  r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
  return (int16_t)(r >> 8);
}

static void te_lstm_dot2(const int8_t *v, const int8_t *w0, const int8_t *w1, int32_t n, int32_t acc[2]) {
  int32_t a0 = acc[0], a1 = acc[1];
  for (int32_t k = 0; k < n; ++k) {
    a0 += (int32_t)w0[k] * v[k];
    a1 += (int32_t)w1[k] * v[k];
  }
  acc[0] = a0, acc[1] = a1;
}

/* One gate's pre-activation for every cell: the input and the recurrent product, each requantized
 * onto 2^-12 and saturated to int16 on its own, then their saturated sum (TFLM adds two int16 FC
 * outputs). Cells go in pairs; an odd last one runs against its own row twice. */
static void te_lstm_gate(const te_lstm_t *p, int g, const int8_t *x, const int8_t *h, int16_t *gate, te_lstm_dot_fn dot) {
  const int32_t n_in = p->n_input, n_cell = p->n_cell;
  const int8_t *wx = p->x_weights + g * n_cell * n_in;
  const int8_t *wh = p->h_weights + g * n_cell * n_cell;
  for (int32_t c = 0; c < n_cell; c += 2) {
    const int32_t c1 = TE_MIN(c + 1, n_cell - 1);
    int32_t ax[2] = {p->x_bias[g * n_cell + c], p->x_bias[g * n_cell + c1]};
    int32_t ah[2] = {p->h_bias[g * n_cell + c], p->h_bias[g * n_cell + c1]};
    dot(x, wx + c * n_in, wx + c1 * n_in, n_in, ax);
    dot(h, wh + c * n_cell, wh + c1 * n_cell, n_cell, ah);
    for (int k = 0; k < 2; ++k) {
      const int32_t fx = te_sat16(te_requant(ax[k], p->x_mult[g], (int)p->x_shift[g]));
      const int32_t fh = te_sat16(te_requant(ah[k], p->h_mult[g], (int)p->h_shift[g]));
      gate[k ? c1 : c] = te_sat16(fx + fh);
    }
  }
}

void te_lstm(const te_lstm_t *p, const int8_t *in, int8_t *hidden, int16_t *cell, int8_t *out) {
  te_lstm_run(p, in, hidden, cell, out, te_lstm_dot2);
}

void te_lstm_run(const te_lstm_t *p, const int8_t *in, int8_t *hidden, int16_t *cell, int8_t *out, te_lstm_dot_fn dot) {
  const int32_t n_cell = p->n_cell;
  /* the four gates of one step, in TFLM's input order: input, forget, cell, output */
  int16_t *ig = (int16_t *)(void *)p->work, *fg = ig + n_cell, *cg = fg + n_cell, *og = cg + n_cell;
  for (int32_t t = 0; t < p->steps; ++t) {
    const int8_t *x = in + t * p->n_input;
    /* every gate reads the previous hidden state, so all four come before the state changes */
    for (int g = 0; g < 4; ++g) te_lstm_gate(p, g, x, hidden, ig + g * n_cell, dot);
    for (int32_t c = 0; c < n_cell; ++c) {
      ig[c] = te_sigmoid16(ig[c]);
      fg[c] = te_sigmoid16(fg[c]);
      cg[c] = te_tanh16(cg[c], 3, 0); /* a Q3.12 gate: scaled by 3 and no shift */
      og[c] = te_sigmoid16(og[c]);
    }
    for (int32_t c = 0; c < n_cell; ++c) {
      const int32_t kept = te_sat16(te_requant((int32_t)fg[c] * cell[c], p->forget_mult, (int)p->forget_shift));
      const int32_t added = te_sat16(te_requant((int32_t)ig[c] * cg[c], p->input_mult, (int)p->input_shift));
      int16_t v = te_sat16(kept + added);
      if (p->clip) v = (int16_t)TE_MAX(-p->cell_clip, TE_MIN(p->cell_clip, v));
      cell[c] = v;
      const int32_t th = te_tanh16(v, p->tanh_mult, p->tanh_shift);
      const int32_t hv = p->hidden_zp + te_requant(th * og[c], p->hidden_mult, (int)p->hidden_shift);
      hidden[c] = te_clamp8(hv, -128, 127);
      out[t * n_cell + c] = hidden[c];
    }
  }
}
