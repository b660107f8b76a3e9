/* DEPTHWISE_CONV_2D on Helium (MVE), depth multiplier 1: 16 channels per vector.
 *
 * NHWC input bytes and 1HWO filter bytes of consecutive channels are contiguous, so a tap is
 * one 16-byte load of each. The products are widened (VMULLB/VMULLT.S8 to int16, VMOVLB/VMOVLT
 * to int32) into four int32x4 accumulators. Those widenings pick even or odd lanes, so
 * accumulator k holds channels k, k + 4, k + 8, k + 12 ("lane order"); the bias, multipliers and
 * shifts are loaded in that order (VLD4 de-interleaves, gathers pick), and the saturating
 * narrowing moves at the end (VQMOVNB/VQMOVNT) put the channels back in order. A channel count
 * that is not a multiple of 16 ends with a predicated chunk. */
#include <arm_mve.h>

#include "te_fixedpoint.h"
#include "te_kernels_mve.h"
#include "te_ring.h"

#define TE_ALWAYS_INLINE inline __attribute__((always_inline))

/* The accumulators of 16 channels; acc.kK lane j is channel 4j + K (the lane order above).
 * A struct of four vectors, passed by value, stays in registers where an array would not. */
typedef struct {
  int32x4_t k0, k1, k2, k3;
} te_acc16_t;

static TE_ALWAYS_INLINE te_acc16_t te_mac16(te_acc16_t acc, int8x16_t x, int8x16_t w) {
  const int16x8_t even = vmullbq_int_s8(x, w), odd = vmulltq_int_s8(x, w); /* channels 2i, 2i + 1 */
  acc.k0 = vaddq_s32(acc.k0, vmovlbq_s16(even));
  acc.k1 = vaddq_s32(acc.k1, vmovlbq_s16(odd));
  acc.k2 = vaddq_s32(acc.k2, vmovltq_s16(even));
  acc.k3 = vaddq_s32(acc.k3, vmovltq_s16(odd));
  return acc;
}

/* A full chunk loads 16 bytes; the last, partial one only the LANES in use (the rest read 0). */
static TE_ALWAYS_INLINE int8x16_t te_load16(const int8_t *src, int full, mve_pred16_t lanes) {
  return full ? vldrbq_s8(src) : vldrbq_z_s8(src, lanes);
}

/* Four int32 of lane order K from BASE (of the first N only when not FULL; the others read 0). */
static TE_ALWAYS_INLINE int32x4_t te_gather32(const int32_t *base, int k, int32_t n, int full) {
  const uint32x4_t lane = vidupq_n_u32((uint32_t)k, 4); /* channel offsets k, k + 4, k + 8, k + 12 */
  if (full) return vldrwq_gather_shifted_offset_s32(base, lane);
  return vldrwq_gather_shifted_offset_z_s32(base, lane, vcmphiq_u32(vdupq_n_u32((uint32_t)n), lane));
}

static TE_ALWAYS_INLINE int32x4_t te_gather8(const int8_t *base, int k, int32_t n, int full) {
  const uint32x4_t lane = vidupq_n_u32((uint32_t)k, 4);
  if (full) return vldrbq_gather_offset_s32(base, lane);
  return vldrbq_gather_offset_z_s32(base, lane, vcmphiq_u32(vdupq_n_u32((uint32_t)n), lane));
}

/* te_mve_requant of the lane-order-K accumulators. Without LEFT (no channel of the layer has a
 * positive shift) the left shift, and the max and min that split the shift, drop out. */
static TE_ALWAYS_INLINE int32x4_t te_requant_lanes(int32x4_t acc, const int32_t *mult, const int8_t *shift, int k,
                                                   int32_t n, int full, int left) {
  const int32x4_t m = te_gather32(mult, k, n, full), s = te_gather8(shift, k, n, full);
  if (left) return te_mve_requant(acc, m, s);
  /* te_mve_requant when shift <= 0: no left shift, and the shift is its own min(shift, 0) */
  const int32x4_t high = vqrdmulhq_s32(acc, m);
  return vrshlq_s32(vqaddq_s32(high, vshrq_n_s32(vandq_s32(high, s), 31)), s);
}

/* What the output bytes of a layer need besides its accumulators. */
typedef struct {
  const int32_t *mult;
  const int8_t *shift;
  int32_t out_offset, act_min, act_max, left;
} te_dw_out_t;

/* Requantize the four lane-order accumulators of channels CH.. and store the first N (<= 16):
 * int32 -> int16 with saturation, which also puts the channels back in order; the zero point;
 * int16 -> int8 with saturation; the activation range. Saturating early gives the clamp of the
 * exact value: the range lies inside int8 and saturation keeps a value's side of it. */
static TE_ALWAYS_INLINE void te_output16(const te_dw_out_t *o, int32_t ch, int32_t n, te_acc16_t acc, int8_t *dst,
                                         int full, int left) {
  const int32_t *mult = o->mult + ch;
  const int8_t *shift = o->shift + ch;
  int16x8_t even = vqmovnbq_s32(vuninitializedq_s16(), te_requant_lanes(acc.k0, mult, shift, 0, n, full, left));
  even = vqmovntq_s32(even, te_requant_lanes(acc.k2, mult, shift, 2, n, full, left)); /* channels 0, 2, .. 14 */
  int16x8_t odd = vqmovnbq_s32(vuninitializedq_s16(), te_requant_lanes(acc.k1, mult, shift, 1, n, full, left));
  odd = vqmovntq_s32(odd, te_requant_lanes(acc.k3, mult, shift, 3, n, full, left)); /* channels 1, 3, .. 15 */
  const int16x8_t out_offset = vdupq_n_s16((int16_t)o->out_offset);
  int8x16_t y = vqmovnbq_s16(vuninitializedq_s8(), vqaddq_s16(even, out_offset));
  y = vqmovntq_s16(y, vqaddq_s16(odd, out_offset));
  y = vminq_s8(vmaxq_s8(y, vdupq_n_s8((int8_t)o->act_min)), vdupq_n_s8((int8_t)o->act_max));
  if (full) {
    vstrbq_s8(dst, y);
  } else {
    vstrbq_p_s8(dst, y, vctp8q((uint32_t)n));
  }
}

/* One output pixel's window, for all its channel chunks. Its taps inside the image form a
 * rectangle of the kernel (rows_valid x cols_valid); the others read the zero point. Walking the
 * kernel row by row, the filter taps are consecutive, C bytes apart; the input taps of a row are
 * X_STEP apart and its rows ROW_STEP (in the ring, modulo its size). */
typedef struct {
  const int8_t *rows;         /* the ring, or the input */
  int32_t first;              /* offset in ROWS of channel 0 of the first valid tap */
  int32_t row_step, wrap;     /* offset to the next valid tap row; offsets wrap at WRAP (the ring) */
  int32_t rows_valid, cols_valid, x_step; /* valid rows and columns; bytes between valid taps of a row */
  int32_t zp_before, zp_between, zp_after; /* padded taps before, between and after the valid rows */
  int32_t c;
  const int8_t *filter;
  int8x16_t zero_point;
} te_dw_window_t;

/* Channels CH .. CH + N - 1 (N <= 16; FULL when N == 16) of one output pixel into DST. */
static TE_ALWAYS_INLINE void te_chunk(const te_dw_window_t *win, const int32_t *bias, const te_dw_out_t *o,
                                      int32_t ch, int32_t n, int8_t *dst, int full) {
  const mve_pred16_t lanes = full ? 0xFFFF : vctp8q((uint32_t)n);
  const int32_t c = win->c;
  te_acc16_t acc;
  if (full) {
    const int32x4x4_t b = vld4q_s32(bias + ch); /* de-interleaves into the lane order */
    acc.k0 = b.val[0], acc.k1 = b.val[1], acc.k2 = b.val[2], acc.k3 = b.val[3];
  } else {
    acc.k0 = te_gather32(bias + ch, 0, n, 0), acc.k1 = te_gather32(bias + ch, 1, n, 0);
    acc.k2 = te_gather32(bias + ch, 2, n, 0), acc.k3 = te_gather32(bias + ch, 3, n, 0);
  }
  const int8_t *w = win->filter + ch;
  int32_t zp_taps = win->zp_before, offset = win->first;
  for (int32_t fy = 0; fy < win->rows_valid; ++fy) {
    for (; zp_taps > 0; --zp_taps, w += c) acc = te_mac16(acc, win->zero_point, te_load16(w, full, lanes));
    const int8_t *x = win->rows + offset + ch;
    for (int32_t fx = 0; fx < win->cols_valid; ++fx, x += win->x_step, w += c)
      acc = te_mac16(acc, te_load16(x, full, lanes), te_load16(w, full, lanes));
    zp_taps = win->zp_between;
    offset += win->row_step;
    if (offset >= win->wrap) offset -= win->wrap;
  }
  for (zp_taps = win->rows_valid ? win->zp_after : zp_taps; zp_taps > 0; --zp_taps, w += c)
    acc = te_mac16(acc, win->zero_point, te_load16(w, full, lanes));
  if (o->left) {
    te_output16(o, ch, n, acc, dst, full, 1);
  } else {
    te_output16(o, ch, n, acc, dst, full, 0);
  }
}

static int te_any_positive(const int8_t *v, int32_t n) {
  for (int32_t i = 0; i < n; ++i)
    if (v[i] > 0) return 1;
  return 0;
}

void te_depthwise_mve(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *ring) {
  const int32_t c = p->in_c, span = te_ring_span(p), row_bytes = p->in_w * c;
  /* locals, not reads of *P: the compiler must assume that int8 stores change *P */
  const te_dw_out_t o = {p->mult, p->shift, p->out_offset, p->act_min, p->act_max, te_any_positive(p->shift, c)};
  const int32_t *bias = p->bias;
  te_dw_window_t win;
  win.rows = ring ? ring : in;
  win.row_step = p->dil_h * row_bytes;
  win.wrap = ring ? span * row_bytes : INT32_MAX; /* the input is not a ring */
  win.x_step = p->dil_w * c, win.c = c;
  win.filter = p->filter;
  win.zero_point = vdupq_n_s8((int8_t)-p->in_offset);
  int32_t copied = -1;
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    int32_t fy0, fy1;
    if (ring) te_ring_fill(p, in, ring, oy, &copied);
    te_mve_valid_taps(iy0, p->dil_h, p->k_h, p->in_h, &fy0, &fy1);
    const int32_t iy = iy0 + fy0 * p->dil_h; /* inside the image when any row is valid */
    const int32_t row_offset = fy1 > fy0 ? (ring ? iy % span : iy) * row_bytes : 0;
    int8_t *dst = out + oy * p->out_w * c;
    for (int32_t ox = 0; ox < p->out_w; ++ox, dst += c) {
      const int32_t ix0 = ox * p->stride_w - p->pad_left;
      int32_t fx0, fx1;
      te_mve_valid_taps(ix0, p->dil_w, p->k_w, p->in_w, &fx0, &fx1);
      win.cols_valid = fx1 - fx0;
      win.rows_valid = win.cols_valid > 0 ? fy1 - fy0 : 0;
      win.first = row_offset + (win.cols_valid > 0 ? (ix0 + fx0 * p->dil_w) * c : 0);
      /* padded taps, in the filter's order: rows above, the columns left and right of the
       * valid ones, rows below; with no valid tap, all of them */
      win.zp_before = win.rows_valid ? fy0 * p->k_w + fx0 : p->k_h * p->k_w;
      win.zp_between = p->k_w - win.cols_valid;
      win.zp_after = (p->k_w - fx1) + (p->k_h - fy1) * p->k_w;
      int32_t ch = 0;
      for (; ch + 16 <= c; ch += 16) te_chunk(&win, bias, &o, ch, 16, dst + ch, 1);
      if (ch < c) te_chunk(&win, bias, &o, ch, c - ch, dst + ch, 0);
    }
  }
}
