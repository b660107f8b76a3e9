/* DEPTHWISE_CONV_2D (depth_mult 1) on the Cortex-M DSP extension.
 *
 * A depthwise tap multiplies each channel by its own weight, so there is no dot product for
 * SMLAD to take two lanes of: four channels are handled at once instead. The input word of a
 * tap (channels c..c+3, contiguous in NHWC) and the tap's weight word (contiguous in 1HWO) are
 * split by SXTB16 into lanes (c, c+2) and (c+1, c+3), and SMLABB / SMLATT accumulate lane by
 * lane: per tap and four channels one input load, two SXTB16, one LDRD of the widened weights
 * and four multiply-accumulates, 8 instructions for 4 MACs.
 *
 * 3 x 3 kernels (nearly every depthwise layer) go output row by output row, as the ring
 * demands, and within a row channel group by channel group: a group's nine weight words are
 * widened once per row onto the stack, then an assembly loop runs the row's pixels. Windows
 * inside the image are read in place with no padding test; so are windows whose left or right
 * column lies in the padding (the first and last pixels of a row with padding 1): they run six
 * taps from a bias that holds the padded column's zero point x weight. Any other window over
 * the padding (top and bottom rows, wider padding) is copied first, the zero point in its
 * padded taps. Other kernel sizes and the last 1..3 channels take a general walk over the taps.
 */
#include <stddef.h>

#include "te_fixedpoint.h"
#include "te_kernels_dsp.h"
#include "te_ring.h"
#include "te_simd_dsp.h"

/* One tap of four channels: X holds the inputs, W the widened weights. */
TE_INLINE void te_tap4(uint32_t x, te_pairs_t w, int32_t acc[4]) {
  const uint32_t even = te_sxtb16(x), odd = te_sxtb16_ror8(x);
  acc[0] = te_smlabb(even, w.even, acc[0]);
  acc[2] = te_smlatt(even, w.even, acc[2]);
  acc[1] = te_smlabb(odd, w.odd, acc[1]);
  acc[3] = te_smlatt(odd, w.odd, acc[3]);
}

/* Channels C..C+N-1 (N <= 4) of output pixel (OX, OY) into Y, any kernel, stride, dilation and
 * padding: the weights are read from the filter tap by tap, padded taps take ZERO4 (the zero
 * point in every byte). The general walk, for kernels other than 3 x 3 and the last 1..3
 * channels of a 3 x 3 one. */
TE_NOINLINE void te_pixel_general(const te_conv_t *p, const te_out_t *q, const int8_t *in, const int8_t *ring,
                                  int32_t oy, int32_t ox, int32_t c, int32_t n, uint32_t zero4, int8_t *y) {
  const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
  const int8_t *w = p->filter + c;
  int32_t acc[4] = {0, 0, 0, 0};
  te_rq_t rq[4];
  for (int32_t i = 0; i < n; ++i) {
    acc[i] = p->bias[c + i];
    rq[i] = te_rq_make(p->mult[c + i], p->shift[c + i]);
  }
  for (int32_t ky = 0; ky < p->k_h; ++ky) {
    const int32_t iy = iy0 + ky * p->dil_h;
    const int8_t *row = iy >= 0 && iy < p->in_h ? te_ring_row(p, in, ring, iy0, iy) + c : NULL;
    for (int32_t kx = 0; kx < p->k_w; ++kx, w += p->out_c) {
      const int32_t ix = ix0 + kx * p->dil_w;
      const uint32_t x = row && ix >= 0 && ix < p->in_w ? te_read_upto4(row + ix * p->in_c, n) : zero4;
      te_tap4(x, te_widen4(te_read_upto4(w, n)), acc);
    }
  }
  for (int32_t i = 0; i < n; ++i) y[c + i] = te_out_byte(q, c + i, rq[i], acc[i]);
}

/* ---- 3 x 3 */

/* The window shapes the 3 x 3 path runs without copying: all nine taps inside the image, or
 * the left or the right column in the padding (the first and last pixels of a row with
 * padding 1). A padded tap adds zero point x weight, so those two shapes run six taps from a
 * bias that already holds the padded column's share. */
enum { TE_FULL, TE_LEFT, TE_RIGHT };

/* A channel group's widened weights, biases and requantization (set up once per output row),
 * and the walk of its pixels along the row. The assembly below addresses the fields by byte
 * offset: their order is part of it. */
typedef struct {
  te_pairs_t w[9];     /*   0: tap t's weights at 8 t */
  int32_t bias[3][4];  /*  72: for TE_FULL, TE_LEFT (at 88), TE_RIGHT (at 104) */
  te_rq_t rq[4];       /* 120: (m2, em1) of channel i at 120 + 8 i */
  int32_t c;           /* 152: 2 * out_offset + 1 */
  int32_t d;           /* 156: bytes from one tap to the next along a kernel row */
  int32_t step;        /* 160: bytes from one window to the next */
  int32_t y_step;      /* 164: bytes from one output pixel to the next */
  int8_t *y;           /* 168: the next output pixel's channel c */
  int32_t n;           /* 172: pixels left */
  uint32_t win[9];     /* a copy of a window that crosses the padding */
} te_group3_t;

#if TE_DSP_ASM /* the offsets the assembly uses (32-bit pointers) */
typedef char te_group3_layout_checked[offsetof(te_group3_t, n) == 172 && offsetof(te_group3_t, rq) == 120 ? 1 : -1];
#endif

/* BIAS plus ZP times the sum of the three weight pairs W0, W1, W2, for the four channels. */
static inline void te_bias_plus(int32_t out[4], const int32_t bias[4], te_pairs_t w0, te_pairs_t w1, te_pairs_t w2,
                                uint32_t zp2) {
  const uint32_t even = te_sadd16(te_sadd16(w0.even, w1.even), w2.even); /* |sum| <= 384 */
  const uint32_t odd = te_sadd16(te_sadd16(w0.odd, w1.odd), w2.odd);
  out[0] = te_smlabb(even, zp2, bias[0]);
  out[2] = te_smlatt(even, zp2, bias[2]);
  out[1] = te_smlabb(odd, zp2, bias[1]);
  out[3] = te_smlatt(odd, zp2, bias[3]);
}

/* Straight-line code: a loop here costs twice as many instructions, and this runs once per
 * output row and channel group, for as few as five pixels in the KWS model. ZP2 is the input
 * zero point in both lanes; SIDES asks for the biases of TE_LEFT and TE_RIGHT windows. */
static void te_group3_load(const te_conv_t *p, int32_t c, int32_t c_out, uint32_t zp2, int sides, te_group3_t *g) {
  const int8_t *f = p->filter + c, *shift = p->shift + c;
  const int32_t *bias = p->bias + c, *mult = p->mult + c, out_c = p->out_c;
  g->w[0] = te_widen4(te_read32(f));
  g->w[1] = te_widen4(te_read32(f + out_c));
  g->w[2] = te_widen4(te_read32(f + 2 * out_c));
  f += 3 * out_c;
  g->w[3] = te_widen4(te_read32(f));
  g->w[4] = te_widen4(te_read32(f + out_c));
  g->w[5] = te_widen4(te_read32(f + 2 * out_c));
  f += 3 * out_c;
  g->w[6] = te_widen4(te_read32(f));
  g->w[7] = te_widen4(te_read32(f + out_c));
  g->w[8] = te_widen4(te_read32(f + 2 * out_c));
  g->bias[TE_FULL][0] = bias[0], g->bias[TE_FULL][1] = bias[1], g->bias[TE_FULL][2] = bias[2];
  g->bias[TE_FULL][3] = bias[3];
  if (sides) { /* the row has TE_LEFT or TE_RIGHT windows */
    te_bias_plus(g->bias[TE_LEFT], bias, g->w[0], g->w[3], g->w[6], zp2);
    te_bias_plus(g->bias[TE_RIGHT], bias, g->w[2], g->w[5], g->w[8], zp2);
  }
  g->rq[0] = te_rq_make(mult[0], shift[0]);
  g->rq[1] = te_rq_make(mult[1], shift[1]);
  g->rq[2] = te_rq_make(mult[2], shift[2]);
  g->rq[3] = te_rq_make(mult[3], shift[3]);
  g->c = c_out;
  g->step = p->stride_w * p->in_c;
  g->y_step = out_c;
}

/* The taps of four channels for window SHAPE, added to ACC: kernel rows X0, X1, X2, each at
 * the first tap inside the image, the taps G->d bytes apart. */
static inline void te_taps3x3(const te_group3_t *g, int shape, const int8_t *x0, const int8_t *x1, const int8_t *x2,
                              int32_t acc[4]) {
  const int32_t first = shape == TE_LEFT ? 1 : 0, last = shape == TE_RIGHT ? 1 : 2;
  for (int32_t t = first; t <= last; ++t) {
    te_tap4(te_read32(x0 + (t - first) * g->d), g->w[t], acc);
    te_tap4(te_read32(x1 + (t - first) * g->d), g->w[3 + t], acc);
    te_tap4(te_read32(x2 + (t - first) * g->d), g->w[6 + t], acc);
  }
}

#if TE_DSP_ASM
/* te_pixels3 as Thumb-2 assembly: gcc, left to itself, spills the accumulators and the row
 * pointers around the taps and takes half as many instructions again. Thirteen registers: the
 * accumulators, the three row pointers, the group, and four temporaries; D holds the tap step
 * during the taps and the rounding constant c during the requantization. Per pixel: 72 for the
 * taps (8 each; 48 for TE_LEFT and TE_RIGHT), 24 to requantize, 20 to store, step and count. */
#define TE_ASM_TAP(x, w)                  \
  "ldr %[t], " x "\n\t"                   \
  "ldrd %[we], %[wo], [%[g], #" w "]\n\t" \
  "sxtb16 %[xe], %[t]\n\t"                \
  "sxtb16 %[t], %[t], ror #8\n\t"         \
  "smlabb %[a0], %[xe], %[we], %[a0]\n\t" \
  "smlatt %[a2], %[xe], %[we], %[a2]\n\t" \
  "smlabb %[a1], %[t], %[wo], %[a1]\n\t"  \
  "smlatt %[a3], %[t], %[wo], %[a3]\n\t"
#define TE_ASM_ROW3(x, w0, w1, w2) \
  TE_ASM_TAP("[%[" x "]]", w0) TE_ASM_TAP("[%[" x "], %[d]]", w1) TE_ASM_TAP("[%[" x "], %[d], lsl #1]", w2)
#define TE_ASM_ROW2(x, w0, w1) TE_ASM_TAP("[%[" x "]]", w0) TE_ASM_TAP("[%[" x "], %[d]]", w1)
/* te_rq_apply of accumulator A with the (m2, em1) at offset RQ, into A */
#define TE_ASM_REQUANT(a, rq)                 \
  "ldrd %[we], %[wo], [%[g], #" rq "]\n\t"    \
  "add %[xe], " a ", " a ", asr #31\n\t"      \
  "smmlar %[xe], " a ", %[we], %[xe]\n\t"     \
  "asr %[xe], %[xe], %[wo]\n\t"               \
  "qadd %[xe], %[xe], %[d]\n\t"               \
  "ssat " a ", #8, %[xe], asr #1\n\t"

/* The pixel loop of one window shape: BIAS is its bias's offset, TAPS its taps. */
#define TE_PIXELS3_ASM(name, bias, bias8, taps)                                                                    \
  static void name(te_group3_t *g, const int8_t *x0, const int8_t *x1, const int8_t *x2) {                        \
    int32_t a0, a1, a2, a3, d;                                                                                      \
    uint32_t t, xe, we, wo;                                                                                         \
    __asm__ volatile("1:\n\t"                                                                                       \
                     "ldrd %[a0], %[a1], [%[g], #" bias "]\n\t"                                                     \
                     "ldrd %[a2], %[a3], [%[g], #" bias8 "]\n\t"                                                    \
                     "ldr %[d], [%[g], #156]\n\t" taps "ldr %[d], [%[g], #152]\n\t"                                 \
                     TE_ASM_REQUANT("%[a0]", "120") TE_ASM_REQUANT("%[a1]", "128") TE_ASM_REQUANT("%[a2]", "136")   \
                     TE_ASM_REQUANT("%[a3]", "144")                                                                 \
                     "bfi %[a0], %[a1], #8, #8\n\t"                                                                 \
                     "bfi %[a0], %[a2], #16, #8\n\t"                                                                \
                     "bfi %[a0], %[a3], #24, #8\n\t"                                                                \
                     "ldr %[t], [%[g], #168]\n\t"                                                                   \
                     "str %[a0], [%[t]]\n\t"                                                                        \
                     "ldr %[xe], [%[g], #164]\n\t"                                                                  \
                     "add %[t], %[t], %[xe]\n\t"                                                                    \
                     "str %[t], [%[g], #168]\n\t"                                                                   \
                     "ldr %[t], [%[g], #160]\n\t"                                                                   \
                     "add %[x0], %[x0], %[t]\n\t"                                                                   \
                     "add %[x1], %[x1], %[t]\n\t"                                                                   \
                     "add %[x2], %[x2], %[t]\n\t"                                                                   \
                     "ldr %[t], [%[g], #172]\n\t"                                                                   \
                     "subs %[t], %[t], #1\n\t"                                                                      \
                     "str %[t], [%[g], #172]\n\t"                                                                   \
                     "bne 1b\n\t"                                                                                   \
                     : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [d] "=&r"(d), [t] "=&r"(t), \
                       [xe] "=&r"(xe), [we] "=&r"(we), [wo] "=&r"(wo), [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2) \
                     : [g] "r"(g)                                                                                   \
                     : "cc", "memory");                                                                             \
  }

TE_PIXELS3_ASM(te_pixels3_full, "72", "80",
               TE_ASM_ROW3("x0", "0", "8", "16") TE_ASM_ROW3("x1", "24", "32", "40") TE_ASM_ROW3("x2", "48", "56", "64"))
TE_PIXELS3_ASM(te_pixels3_left, "88", "96", TE_ASM_ROW2("x0", "8", "16") TE_ASM_ROW2("x1", "32", "40") TE_ASM_ROW2("x2", "56", "64"))
TE_PIXELS3_ASM(te_pixels3_right, "104", "112", TE_ASM_ROW2("x0", "0", "8") TE_ASM_ROW2("x1", "24", "32") TE_ASM_ROW2("x2", "48", "56"))

/* G->n pixels of window SHAPE from kernel rows X0, X1, X2 onwards (see te_pixels3_c). */
static void te_pixels3(te_group3_t *g, int shape, const int8_t *x0, const int8_t *x1, const int8_t *x2) {
  if (shape == TE_LEFT)
    te_pixels3_left(g, x0, x1, x2);
  else if (shape == TE_RIGHT)
    te_pixels3_right(g, x0, x1, x2);
  else
    te_pixels3_full(g, x0, x1, x2);
}
#else
/* G->n pixels of window SHAPE from kernel rows X0, X1, X2 onwards (each at the window's first
 * tap inside the image), each window G->step bytes after the last, requantized with
 * te_rq_apply into G->y, G->y_step bytes apart. */
static void te_pixels3(te_group3_t *g, int shape, const int8_t *x0, const int8_t *x1, const int8_t *x2) {
  for (; g->n > 0; --g->n, x0 += g->step, x1 += g->step, x2 += g->step, g->y += g->y_step) {
    int32_t acc[4] = {g->bias[shape][0], g->bias[shape][1], g->bias[shape][2], g->bias[shape][3]};
    te_taps3x3(g, shape, x0, x1, x2, acc);
    for (int32_t i = 0; i < 4; ++i) g->y[i] = (int8_t)te_rq_apply(acc[i], g->rq[i], g->c);
  }
}
#endif

/* One TE_FULL pixel of G with te_out_byte: narrow activation ranges, channels te_rq_apply
 * cannot take. */
static void te_pixel3_general(const te_out_t *q, te_group3_t *g, int32_t c, const int8_t *x0, const int8_t *x1,
                              const int8_t *x2) {
  int32_t acc[4] = {g->bias[TE_FULL][0], g->bias[TE_FULL][1], g->bias[TE_FULL][2], g->bias[TE_FULL][3]};
  te_taps3x3(g, TE_FULL, x0, x1, x2, acc);
  for (int32_t i = 0; i < 4; ++i) g->y[i] = te_out_byte(q, c + i, g->rq[i], acc[i]);
  g->y += g->y_step;
}

/* Output pixel OX of channel group G, whose window crosses the padding: a TE_LEFT or TE_RIGHT
 * window is read where it is, any other is first copied, 36 bytes row by row, with the zero
 * point in its padded taps (ROWS are NULL above and below the image). */
static void te_border3(const te_conv_t *p, const te_out_t *q, te_group3_t *g, int32_t c, const int8_t *const rows[3],
                       int32_t ox, int general, uint32_t zero4) {
  const int8_t *const r0 = rows[0], *const r1 = rows[1], *const r2 = rows[2];
  const int32_t in_w = p->in_w, in_c = p->in_c, dil_w = p->dil_w, ix0 = ox * p->stride_w - p->pad_left;
  if (!general && r0 && r1 && r2 && ix0 + 2 * dil_w < in_w && ix0 < 0 && ix0 + dil_w >= 0) {
    const int32_t at = (ix0 + dil_w) * in_c + c;
    g->d = dil_w * in_c, g->n = 1;
    te_pixels3(g, TE_LEFT, r0 + at, r1 + at, r2 + at);
    return;
  }
  if (!general && r0 && r1 && r2 && ix0 >= 0 && ix0 + dil_w < in_w && ix0 + 2 * dil_w >= in_w) {
    const int32_t at = ix0 * in_c + c;
    g->d = dil_w * in_c, g->n = 1;
    te_pixels3(g, TE_RIGHT, r0 + at, r1 + at, r2 + at);
    return;
  }
  uint32_t *const win = g->win;
  const int8_t *const w = (const int8_t *)win;
  for (int32_t kx = 0, ix = ix0; kx < 3; ++kx, ix += dil_w) {
    const int in_row = ix >= 0 && ix < in_w;
    const int32_t x = ix * in_c + c;
    win[kx] = in_row && r0 ? te_read32(r0 + x) : zero4;
    win[3 + kx] = in_row && r1 ? te_read32(r1 + x) : zero4;
    win[6 + kx] = in_row && r2 ? te_read32(r2 + x) : zero4;
  }
  g->d = 4;
  if (general) {
    te_pixel3_general(q, g, c, w, w + 12, w + 24);
  } else {
    g->n = 1;
    te_pixels3(g, TE_FULL, w, w + 12, w + 24);
  }
}

/* Output row Y of a 3 x 3 kernel for the channel groups of four; ROWS are the three input rows
 * (NULL in the padding); the windows of pixels OX_LO..OX_HI-1 lie inside the image's width. */
static void te_row_3x3(const te_conv_t *p, const te_out_t *q, const int8_t *const rows[3], int32_t ox_lo,
                       int32_t ox_hi, uint32_t zero4, int8_t *y) {
  const int general = !q->fast || q->clamp;
  const uint32_t zp2 = (uint32_t)(uint16_t)(int16_t)(int8_t)zero4 * 0x00010001u;
  const int32_t out_w = p->out_w, step = p->stride_w * p->in_c, d = p->dil_w * p->in_c;
  if (!(rows[0] && rows[1] && rows[2])) ox_lo = ox_hi = out_w; /* every window crosses the padding */
  for (int32_t c = 0; c + 4 <= p->in_c; c += 4) {
    te_group3_t g;
    int32_t ox = 0;
    te_group3_load(p, c, q->c, zp2, ox_lo > 0 || ox_hi < out_w, &g);
    g.y = y + c;
    for (; ox < ox_lo; ++ox) te_border3(p, q, &g, c, rows, ox, general, zero4);
    if (ox < ox_hi) {
      const int32_t at = (ox * p->stride_w - p->pad_left) * p->in_c + c;
      g.d = d;
      if (general) {
        for (int32_t i = 0; ox < ox_hi; ++ox, i += step) te_pixel3_general(q, &g, c, rows[0] + at + i, rows[1] + at + i, rows[2] + at + i);
      } else {
        g.n = ox_hi - ox;
        te_pixels3(&g, TE_FULL, rows[0] + at, rows[1] + at, rows[2] + at);
        ox = ox_hi;
      }
    }
    for (; ox < out_w; ++ox) te_border3(p, q, &g, c, rows, ox, general, zero4);
  }
}

/* ---- the kernel */

void te_depthwise_dsp(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *ring) {
  const te_out_t q = te_out_make(p->mult, p->shift, p->out_c, p->out_offset, p->act_min, p->act_max);
  const uint32_t zero4 = (uint8_t)(int8_t)-p->in_offset * 0x01010101u;
  const int is3x3 = p->k_h == 3 && p->k_w == 3;
  const int32_t tail = is3x3 ? p->in_c & 3 : p->in_c; /* channels the general walk computes */
  /* the output columns whose 3 x 3 windows lie inside the image's width: OX_LO..OX_HI-1 */
  int32_t ox_lo = 0, ox_hi;
  while (ox_lo < p->out_w && ox_lo * p->stride_w - p->pad_left < 0) ++ox_lo;
  for (ox_hi = ox_lo; ox_hi < p->out_w && ox_hi * p->stride_w - p->pad_left + 2 * p->dil_w < p->in_w;) ++ox_hi;
  int32_t copied = -1;
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    if (ring) te_ring_fill(p, in, ring, oy, &copied);
    if (is3x3) {
      const int8_t *rows[3];
      for (int32_t ky = 0; ky < 3; ++ky) {
        const int32_t iy0 = oy * p->stride_h - p->pad_top, iy = iy0 + ky * p->dil_h;
        rows[ky] = iy >= 0 && iy < p->in_h ? te_ring_row(p, in, ring, iy0, iy) : NULL;
      }
      te_row_3x3(p, &q, rows, ox_lo, ox_hi, zero4, out + oy * p->out_w * p->out_c);
    }
    for (int32_t ox = 0; ox < p->out_w && tail; ++ox) {
      int8_t *y = out + (oy * p->out_w + ox) * p->out_c;
      for (int32_t c = p->in_c - tail; c < p->in_c; c += 4) te_pixel_general(p, &q, in, ring, oy, ox, c, TE_MIN(4, p->in_c - c), zero4, y);
    }
  }
}
