/* CONV_2D on the Cortex-M DSP extension: every convolution is a matrix multiply.
 *
 * Two output pixels are computed together. Their input columns (for a pointwise conv the two
 * input pixels themselves, otherwise their im2col windows in the filter's OHWI tap order, the
 * zero point in padded taps) are widened to int16 pairs once, into p->work, laid out per four
 * column entries as [a even, a odd, b even, b odd] (te_widen4's split). Every pair of filter
 * rows then runs over those columns: one filter word, widened by the same split, feeds four
 * SMLADs (2 pixels x 2 lanes). Per four column entries a 2 x 2 tile costs two LDRD of the
 * column words, two LDR of filter words, four SXTB16 and eight SMLAD: 16 instructions for 16
 * MACs, in an assembly loop of four such blocks (67 instructions for 64 MACs with the loop
 * test). Requantization and the stores of a tile add about 60 (te_gemm_pairs_asm).
 *
 * Widening the columns once instead of per filter row is what needs the work buffer (4 bytes
 * per column entry and pixel pair, TE_DSP_COLUMNS_BYTES); it also means a pointwise pair is
 * read completely before either output pixel is written, so in place needs no scratch copy.
 */
#include <stddef.h>

#include "te_fixedpoint.h"
#include "te_kernels_dsp.h"
#include "te_ring.h"
#include "te_simd_dsp.h"

/* ---- output bytes */

/* Channel OC of both pixels: YA[OC] from ACC_A, YB[OC] from ACC_B (YB may be YA: same value).
 * Unless GENERAL (a constant), every channel takes te_rq_apply with C and no clamp. */
TE_INLINE void te_store_channel(const te_out_t *q, int32_t c, int general, int32_t oc, te_rq_t r, int32_t acc_a,
                                int32_t acc_b, int8_t *ya, int8_t *yb) {
  ya[oc] = general ? te_out_byte(q, oc, r, acc_a) : (int8_t)te_rq_apply(acc_a, r, c);
  yb[oc] = general ? te_out_byte(q, oc, r, acc_b) : (int8_t)te_rq_apply(acc_b, r, c);
}

/* ---- the matrix multiply */

/* One block of four column entries against filter words F0 (and F1 when TWO). */
TE_INLINE void te_block(const uint32_t *col, uint32_t f0, uint32_t f1, int two, int32_t acc[4]) {
  const uint32_t ae = col[0], ao = col[1], be = col[2], bo = col[3];
  te_pairs_t f = te_widen4(f0);
  acc[0] = te_smlad(ae, f.even, acc[0]);
  acc[0] = te_smlad(ao, f.odd, acc[0]);
  acc[2] = te_smlad(be, f.even, acc[2]);
  acc[2] = te_smlad(bo, f.odd, acc[2]);
  if (two) {
    f = te_widen4(f1);
    acc[1] = te_smlad(ae, f.even, acc[1]);
    acc[1] = te_smlad(ao, f.odd, acc[1]);
    acc[3] = te_smlad(be, f.even, acc[3]);
    acc[3] = te_smlad(bo, f.odd, acc[3]);
  }
}

#if TE_DSP_ASM
/* te_block for two filter rows as Thumb-2 assembly. gcc keeps neither the four accumulators
 * nor the column words in registers through a C loop (it spills, and it cannot use LDRD on the
 * columns), which costs a third more instructions per MAC. Thirteen registers: four
 * accumulators, three pointers, four column words and one filter word widened in two halves. */
#define TE_ASM_BLOCK                      \
  "ldr %[f], [%[w0]], #4\n\t"             \
  "ldrd %[x0], %[x1], [%[col]], #8\n\t"   \
  "sxtb16 %[e], %[f]\n\t"                 \
  "sxtb16 %[f], %[f], ror #8\n\t"         \
  "smlad %[a0], %[x0], %[e], %[a0]\n\t"   \
  "smlad %[a0], %[x1], %[f], %[a0]\n\t"   \
  "ldrd %[x2], %[x3], [%[col]], #8\n\t"   \
  "smlad %[a2], %[x2], %[e], %[a2]\n\t"   \
  "smlad %[a2], %[x3], %[f], %[a2]\n\t"   \
  "ldr %[f], [%[w1]], #4\n\t"             \
  "sxtb16 %[e], %[f]\n\t"                 \
  "sxtb16 %[f], %[f], ror #8\n\t"         \
  "smlad %[a1], %[x0], %[e], %[a1]\n\t"   \
  "smlad %[a1], %[x1], %[f], %[a1]\n\t"   \
  "smlad %[a3], %[x2], %[e], %[a3]\n\t"   \
  "smlad %[a3], %[x3], %[f], %[a3]\n\t"

/* The loop ends when COL reaches END. No register is left for END (the column words are free
 * again only at the end of a turn), so it comes in X0 and waits below the stack pointer, in 8
 * bytes the assembly takes and gives back. BODY is one or four blocks. */
#define TE_ASM_LOOP(body)                                                                              \
  __asm__("str %[x0], [sp, #-8]!\n\t"                                                              \
          "1:\n\t" body "ldr %[x0], [sp]\n\t"                                                      \
          "cmp %[col], %[x0]\n\t"                                                                   \
          "bne 1b\n\t"                                                                              \
          "add sp, sp, #8\n\t"                                                                      \
          : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [col] "+r"(col), [w0] "+r"(w0), \
            [w1] "+r"(w1), [x0] "+r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [e] "=&r"(e), \
            [f] "=&r"(f)                                                                              \
          :                                                                                           \
          : "cc", "memory")

/* NB whole blocks of both columns against filter rows *W0 and *W1; advances the pointers. Not
 * inlined: only the paths off te_gemm_pairs_asm call it, and each copy is half a kilobyte. */
TE_NOINLINE void te_blocks_2x2(const uint32_t **colp, const int8_t **w0p, const int8_t **w1p, int32_t nb, int32_t acc[4]) {
  const uint32_t *col = *colp;
  const int8_t *w0 = *w0p, *w1 = *w1p;
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  uint32_t x0, x1, x2, x3, e, f;
  if (nb >= 4) {
    x0 = (uint32_t)(uintptr_t)(col + 16 * (nb >> 2));
    TE_ASM_LOOP(TE_ASM_BLOCK TE_ASM_BLOCK TE_ASM_BLOCK TE_ASM_BLOCK);
  }
  if (nb & 3) {
    x0 = (uint32_t)(uintptr_t)(col + 4 * (nb & 3));
    TE_ASM_LOOP(TE_ASM_BLOCK);
  }
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
  *colp = col, *w0p = w0, *w1p = w1;
}
#else
TE_INLINE void te_blocks_2x2(const uint32_t **colp, const int8_t **w0p, const int8_t **w1p, int32_t nb, int32_t acc[4]) {
  for (; nb > 0; --nb, *colp += 4, *w0p += 4, *w1p += 4) te_block(*colp, te_read32(*w0p), te_read32(*w1p), 1, acc);
}
#endif

/* Accumulates both columns (DEPTH entries) against filter row W0 into acc[0] (pixel a) and
 * acc[2] (pixel b), and when TWO against row W1 into acc[1] and acc[3]. A partial last block
 * reads its filter bytes one by one, so no byte past a row is touched. */
TE_INLINE void te_dot(const uint32_t *col, const int8_t *w0, const int8_t *w1, int32_t depth, int two, int32_t acc[4]) {
  if (two) {
    te_blocks_2x2(&col, &w0, &w1, depth >> 2, acc);
  } else {
    for (int32_t n = depth >> 2; n > 0; --n, col += 4, w0 += 4) te_block(col, te_read32(w0), 0, 0, acc);
  }
  if (depth & 3) te_block(col, te_read_upto4(w0, depth & 3), two ? te_read_upto4(w1, depth & 3) : 0, two, acc);
}

#if TE_DSP_ASM
/* te_rq_apply of accumulator A (m2 in E, em1 in F, c in X2), the byte into A */
#define TE_ASM_REQUANT(a)                        \
  "add %[x3], " a ", " a ", asr #31\n\t"          \
  "smmlar %[x3], " a ", %[e], %[x3]\n\t"          \
  "asr %[x3], %[x3], %[f]\n\t"                    \
  "qadd %[x3], %[x3], %[x2]\n\t"                  \
  "ssat " a ", #8, %[x3], asr #1\n\t"
/* the next channel's (m2, em1) into E and F, from the pointers in X0 and X1 */
#define TE_ASM_NEXT_RQ                \
  "ldr %[e], [%[x0]], #4\n\t"         \
  "ldrsb %[f], [%[x1]], #1\n\t"       \
  "lsl %[e], %[e], #1\n\t"            \
  "mvn %[f], %[f]\n\t"

/* What the assembly channel loop reads and advances; it addresses the fields by byte offset. */
typedef struct {
  const uint32_t *cols, *end4, *end1; /*  0,  4,  8: the columns, where their 4-block turns end, their end */
  const int32_t *bias, *mult;         /* 12, 16: the next channel's */
  const int8_t *shift;                /* 20 */
  int8_t *ya, *yb;                    /* 24, 28: the next channel's output bytes of pixels a and b */
  int32_t depth, c, pairs;            /* 32, 36, 40: filter row bytes, 2 * out_offset + 1, pairs left */
} te_pairs_state_t;

typedef char te_pairs_state_checked[offsetof(te_pairs_state_t, pairs) == 40 ? 1 : -1];

/* Output channels 0 .. 2 * (out_c / 2) - 1 of a pixel pair, for a layer whose every channel
 * takes te_rq_apply with no activation clamp and whose DEPTH is a multiple of 4: the whole
 * channel loop in assembly, so that between two tiles nothing is spilled and reloaded. The
 * multiply needs all thirteen free registers, so the loop state stays in memory: the address
 * of S comes in COL and is kept, with the two loop ends, in 16 bytes the assembly takes below
 * the stack pointer and gives back. Besides the multiply a channel pair costs 61 instructions:
 * bias 6, loop tests 6, requantization 2 x 4 + 4 x 5 + 3, stores 8, next rows 3, count 4 + 3.
 * Returns the channels done. */
static int32_t te_gemm_pairs_asm(const te_conv_t *p, const te_out_t *q, const uint32_t *cols, int32_t depth, int8_t *ya,
                                 int8_t *yb) {
  const int32_t nb = depth >> 2;
  te_pairs_state_t s;
  s.cols = cols, s.end4 = cols + 16 * (nb >> 2), s.end1 = cols + 4 * nb;
  s.bias = p->bias, s.mult = p->mult, s.shift = p->shift, s.ya = ya, s.yb = yb;
  s.depth = depth, s.c = q->c, s.pairs = p->out_c >> 1;
  const int8_t *w0 = p->filter, *w1 = p->filter + depth;
  uint32_t col = (uint32_t)(uintptr_t)&s, a0, a1, a2, a3, x0, x1, x2, x3, e, f;
  __asm__ volatile(
      "sub sp, sp, #16\n\t"
      "ldr %[x0], [%[col], #4]\n\t"
      "ldr %[x1], [%[col], #8]\n\t"
      "str %[x0], [sp, #0]\n\t" /* end4 */
      "str %[x1], [sp, #4]\n\t" /* end1 */
      "str %[col], [sp, #8]\n\t" /* &s */
      "2:\n\t"
      "ldr %[col], [sp, #8]\n\t"
      "ldr %[e], [%[col], #12]\n\t"
      "ldrd %[a0], %[a1], [%[e]], #8\n\t"
      "str %[e], [%[col], #12]\n\t"
      "mov %[a2], %[a0]\n\t"
      "mov %[a3], %[a1]\n\t"
      "ldr %[col], [%[col], #0]\n\t"
      "ldr %[x0], [sp, #0]\n\t"
      "cmp %[col], %[x0]\n\t"
      "beq 4f\n\t"
      "3:\n\t" TE_ASM_BLOCK TE_ASM_BLOCK TE_ASM_BLOCK TE_ASM_BLOCK
      "ldr %[x0], [sp, #0]\n\t"
      "cmp %[col], %[x0]\n\t"
      "bne 3b\n\t"
      "4:\n\t"
      "ldr %[x0], [sp, #4]\n\t"
      "cmp %[col], %[x0]\n\t"
      "beq 6f\n\t"
      "5:\n\t" TE_ASM_BLOCK
      "ldr %[x0], [sp, #4]\n\t"
      "cmp %[col], %[x0]\n\t"
      "bne 5b\n\t"
      "6:\n\t"
      "ldr %[col], [sp, #8]\n\t"
      "ldr %[x0], [%[col], #16]\n\t"
      "ldr %[x1], [%[col], #20]\n\t"
      "ldr %[x2], [%[col], #36]\n\t"
      TE_ASM_NEXT_RQ TE_ASM_REQUANT("%[a0]") TE_ASM_REQUANT("%[a2]")
      TE_ASM_NEXT_RQ TE_ASM_REQUANT("%[a1]") TE_ASM_REQUANT("%[a3]")
      "str %[x0], [%[col], #16]\n\t"
      "str %[x1], [%[col], #20]\n\t"
      "bfi %[a0], %[a1], #8, #8\n\t"
      "ldr %[x0], [%[col], #24]\n\t"
      "strh %[a0], [%[x0]], #2\n\t"
      "str %[x0], [%[col], #24]\n\t"
      "bfi %[a2], %[a3], #8, #8\n\t"
      "ldr %[x0], [%[col], #28]\n\t"
      "strh %[a2], [%[x0]], #2\n\t"
      "str %[x0], [%[col], #28]\n\t"
      "mov %[w0], %[w1]\n\t"
      "ldr %[x0], [%[col], #32]\n\t"
      "add %[w1], %[w1], %[x0]\n\t"
      "ldr %[x0], [%[col], #40]\n\t"
      "subs %[x0], %[x0], #1\n\t"
      "str %[x0], [%[col], #40]\n\t"
      "bne 2b\n\t"
      "add sp, sp, #16\n\t"
      : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [col] "+r"(col), [w0] "+r"(w0), [w1] "+r"(w1),
        [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [e] "=&r"(e), [f] "=&r"(f)
      :
      : "cc", "memory");
  return p->out_c & ~1;
}
#endif

/* Output channels OC.. of the pixel pair whose columns are in COLS, into YA and YB. The layer's
 * values are copied to locals first: the byte stores could alias any memory, which would make
 * the compiler reload every field after each of them. */
TE_INLINE void te_gemm_pair_as(const te_conv_t *p, const te_out_t *q, const uint32_t *cols, int32_t depth, int32_t oc,
                               int8_t *ya, int8_t *yb, int general) {
  const int8_t *w = p->filter + oc * depth, *shift = p->shift;
  const int32_t *bias = p->bias, *mult = p->mult;
  const int32_t out_c = p->out_c, c = q->c;
  for (; oc + 2 <= out_c; oc += 2, w += 2 * depth) {
    int32_t acc[4] = {bias[oc], bias[oc + 1], bias[oc], bias[oc + 1]};
    te_dot(cols, w, w + depth, depth, 1, acc);
    te_store_channel(q, c, general, oc, te_rq_make(mult[oc], shift[oc]), acc[0], acc[2], ya, yb);
    te_store_channel(q, c, general, oc + 1, te_rq_make(mult[oc + 1], shift[oc + 1]), acc[1], acc[3], ya, yb);
  }
  if (oc < out_c) { /* an odd channel count: the last row alone */
    int32_t acc[4] = {bias[oc], 0, bias[oc], 0};
    te_dot(cols, w, w, depth, 0, acc);
    te_store_channel(q, c, general, oc, te_rq_make(mult[oc], shift[oc]), acc[0], acc[2], ya, yb);
  }
}

/* All output channels of the pixel pair whose columns are in COLS, into YA and YB. */
static void te_gemm_pair(const te_conv_t *p, const te_out_t *q, const uint32_t *cols, int32_t depth, int8_t *ya,
                         int8_t *yb) {
  if (q->fast && !q->clamp) {
    int32_t oc = 0;
#if TE_DSP_ASM
    if ((depth & 3) == 0 && p->out_c >= 2) oc = te_gemm_pairs_asm(p, q, cols, depth, ya, yb);
#endif
    if (oc < p->out_c) te_gemm_pair_as(p, q, cols, depth, oc, ya, yb, 0);
  } else {
    te_gemm_pair_as(p, q, cols, depth, 0, ya, yb, 1);
  }
}

/* ---- columns */

/* Pointwise: input pixels A and B (DEPTH bytes each) straight into the widened layout. */
static void te_widen_pixels(uint32_t *cols, const int8_t *a, const int8_t *b, int32_t depth) {
  for (; depth >= 4; depth -= 4, a += 4, b += 4, cols += 4) {
    const te_pairs_t pa = te_widen4(te_read32(a)), pb = te_widen4(te_read32(b));
    cols[0] = pa.even, cols[1] = pa.odd, cols[2] = pb.even, cols[3] = pb.odd;
  }
  if (depth) {
    const te_pairs_t pa = te_widen4(te_read_upto4(a, depth)), pb = te_widen4(te_read_upto4(b, depth));
    cols[0] = pa.even, cols[1] = pa.odd, cols[2] = pb.even, cols[3] = pb.odd;
  }
}

/* im2col first gathers the two windows as int8 into the upper half of the work buffer,
 * interleaved per four entries ([a0..a3][b0..b3][a4..a7]...), then widens them forward in
 * place: block j is read from byte 8 nb + 8 j before bytes 16 j .. 16 j + 15 are written, and
 * 16 j + 16 <= 8 nb + 8 j + 8 for every j < nb, so no unread byte is overwritten. */

/* Where column entry K of a window goes: SLOT is the staging base plus 4 for pixel b. */
static inline int8_t *te_staged(int8_t *slot, int32_t k) { return slot + (k >> 2) * 8 + (k & 3); }

/* N bytes from SRC, or N copies of FILL when SRC is NULL, to window entries K.. of SLOT. */
static void te_stage(int8_t *slot, int32_t k, const int8_t *src, int8_t fill, int32_t n) {
  const uint32_t fill4 = (uint8_t)fill * 0x01010101u;
  for (; n > 0 && (k & 3); --n, ++k) *te_staged(slot, k) = src ? *src++ : fill;
  for (; n >= 4; n -= 4, k += 4) {
    te_write32(te_staged(slot, k), src ? te_read32(src) : fill4);
    if (src) src += 4;
  }
  for (; n > 0; --n, ++k) *te_staged(slot, k) = src ? *src++ : fill;
}

/* The window of output pixel (OY, OX) into SLOT, input rows from RING when it is not NULL. */
static void te_gather(const te_conv_t *p, const int8_t *in, const int8_t *ring, int32_t oy, int32_t ox, int8_t *slot) {
  const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
  const int32_t run = p->k_w * p->in_c;
  const int8_t zero_point = (int8_t)-p->in_offset;
  const int inside_w = ix0 >= 0 && ix0 + (p->k_w - 1) * p->dil_w < p->in_w;
  int32_t k = 0;
  for (int32_t ky = 0; ky < p->k_h; ++ky) {
    const int32_t iy = iy0 + ky * p->dil_h;
    if (iy < 0 || iy >= p->in_h) {
      te_stage(slot, k, NULL, zero_point, run);
      k += run;
      continue;
    }
    const int8_t *src = te_ring_row(p, in, ring, iy0, iy);
    if (inside_w && p->dil_w == 1) { /* the whole kernel row is one run of input bytes */
      te_stage(slot, k, src + ix0 * p->in_c, 0, run);
      k += run;
      continue;
    }
    for (int32_t kx = 0; kx < p->k_w; ++kx, k += p->in_c) {
      const int32_t ix = ix0 + kx * p->dil_w;
      te_stage(slot, k, ix >= 0 && ix < p->in_w ? src + ix * p->in_c : NULL, zero_point, p->in_c);
    }
  }
}

/* Four column entries of one pixel into its two words of block DST (the pixel's slot). */
static inline uint32_t *te_put_word(uint32_t *dst, uint32_t word) {
  const te_pairs_t w = te_widen4(word);
  dst[0] = w.even, dst[1] = w.odd;
  return dst + 4;
}

/* te_gather for kernels whose rows are whole words of column entries (k_w * in_c a multiple of
 * 4, as in the 10 x 4 x 1 KWS stem and every conv with in_c a multiple of 4): the window goes
 * straight into the widened columns, slot DST (COLS for pixel a, COLS + 2 for pixel b), a word
 * at a time with no staging. With dilation 1 a kernel row is one run of input bytes, whose
 * words are read whole except where they cross the row's left or right edge; dilated rows are
 * assembled byte by byte. */
static void te_gather_words(const te_conv_t *p, const int8_t *in, const int8_t *ring, int32_t oy, int32_t ox,
                            uint32_t *dst) {
  /* the layer's values in locals: the stores through DST could alias the struct's fields */
  const int32_t ix0 = ox * p->stride_w - p->pad_left, k_h = p->k_h, dil_h = p->dil_h, in_h = p->in_h;
  const int32_t k_w = p->k_w, in_c = p->in_c, in_w = p->in_w, dil_w = p->dil_w, words = k_w * in_c / 4;
  const int32_t row_bytes = in_w * in_c, first = ix0 * in_c, iy0 = oy * p->stride_h - p->pad_top;
  const uint32_t zero4 = (uint8_t)(int8_t)-p->in_offset * 0x01010101u;
  for (int32_t ky = 0, iy = iy0; ky < k_h; ++ky, iy += dil_h) {
    if (iy < 0 || iy >= in_h) {
      for (int32_t i = 0; i < words; ++i) dst = te_put_word(dst, zero4);
      continue;
    }
    const int8_t *src = te_ring_row(p, in, ring, iy0, iy);
    if (dil_w == 1) {
      for (int32_t i = 0, at = first; i < words; ++i, at += 4) {
        uint32_t word = zero4;
        if (at >= 0 && at + 4 <= row_bytes) {
          word = te_read32(src + at);
        } else if (at + 4 > 0 && at < row_bytes) { /* across an edge */
          for (int32_t b = 0; b < 4; ++b)
            if (at + b >= 0 && at + b < row_bytes) word = (word & ~(0xFFu << 8 * b)) | (uint32_t)(uint8_t)src[at + b] << 8 * b;
        }
        dst = te_put_word(dst, word);
      }
      continue;
    }
    uint32_t word = 0;
    int32_t bytes = 0;
    for (int32_t kx = 0, ix = ix0; kx < k_w; ++kx, ix += dil_w) {
      const int inside = ix >= 0 && ix < in_w;
      for (int32_t ch = 0; ch < in_c; ++ch) {
        word |= (uint32_t)(uint8_t)(inside ? src[ix * in_c + ch] : (int8_t)zero4) << (8 * bytes);
        if (++bytes == 4) dst = te_put_word(dst, word), word = 0, bytes = 0;
      }
    }
  }
}

static void te_widen_staged(uint32_t *cols, int32_t nb) {
  const int8_t *staged = (const int8_t *)(cols + 2 * nb);
  for (int32_t j = 0; j < nb; ++j, staged += 8, cols += 4) {
    const te_pairs_t pa = te_widen4(te_read32(staged)), pb = te_widen4(te_read32(staged + 4));
    cols[0] = pa.even, cols[1] = pa.odd, cols[2] = pb.even, cols[3] = pb.odd;
  }
}

/* ---- kernels */

void te_pointwise_dsp(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
  if (!p->work) { /* a plan without the work buffer: the generic kernel keeps the same contract */
    te_conv2d(p, in, out, scratch);
    return;
  }
  const int32_t n = p->in_h * p->in_w;
  uint32_t *cols = (uint32_t *)(void *)p->work;
  const te_out_t q = te_out_make(p->mult, p->shift, p->out_c, p->out_offset, p->act_min, p->act_max);
  for (int32_t i = 0; i < n; i += 2) {
    /* an odd last pixel pairs with itself and writes its bytes twice */
    const int32_t second = i + 1 < n;
    const int8_t *a = in + i * p->in_c;
    int8_t *ya = out + i * p->out_c;
    te_widen_pixels(cols, a, second ? a + p->in_c : a, p->in_c);
    te_gemm_pair(p, &q, cols, p->in_c, ya, second ? ya + p->out_c : ya);
  }
}

void te_conv2d_dsp(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
  if (!p->work) { /* a plan without the work buffer: the generic kernel keeps the same contract */
    te_conv2d(p, in, out, scratch);
    return;
  }
  const int32_t depth = p->k_h * p->k_w * p->in_c, nb = (depth + 3) / 4, n = p->out_h * p->out_w;
  uint32_t *cols = (uint32_t *)(void *)p->work;
  int8_t *staged = p->work + 8 * nb;
  const te_out_t q = te_out_make(p->mult, p->shift, p->out_c, p->out_offset, p->act_min, p->act_max);
  const int words = (p->k_w * p->in_c) % 4 == 0;
  int32_t copied = -1, oy = 0, ox = 0;
  for (int32_t i = 0; i < n; i += 2) {
    /* A pair may span two output rows. Pixel a is gathered before the ring takes the rows of
     * pixel b's row, which is only earlier than the generic kernel reads them (and so safe). */
    int8_t *ya = out + i * p->out_c, *yb = ya;
    const int32_t a_y = oy, a_x = ox;
    if (scratch && ox == 0) te_ring_fill(p, in, scratch, oy, &copied);
    words ? te_gather_words(p, in, scratch, oy, ox, cols) : te_gather(p, in, scratch, oy, ox, staged);
    if (++ox == p->out_w) ox = 0, ++oy;
    if (i + 1 < n) {
      if (scratch && ox == 0) te_ring_fill(p, in, scratch, oy, &copied);
      words ? te_gather_words(p, in, scratch, oy, ox, cols + 2) : te_gather(p, in, scratch, oy, ox, staged + 4);
      if (++ox == p->out_w) ox = 0, ++oy;
      yb = ya + p->out_c;
    } else { /* an odd last pixel pairs with itself */
      words ? te_gather_words(p, in, scratch, a_y, a_x, cols + 2) : te_gather(p, in, scratch, a_y, a_x, staged + 4);
    }
    if (!words) te_widen_staged(cols, nb);
    te_gemm_pair(p, &q, cols, depth, ya, yb);
  }
}
