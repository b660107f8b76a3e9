/* CONV_2D on Helium (MVE): every convolution is an int8 matrix multiply.
 *
 * A pointwise conv multiplies its input pixels by the [out_c][in_c] filter directly; any other
 * conv first lays the windows of up to four output pixels out as rows of k_h * k_w * in_c bytes
 * in p->work (im2col), in the filter's OHWI tap order, with the zero point in padded taps. The
 * multiply reduces 16 int8 products per VMLADAVA into a core register, and requantizes four
 * output channels per vector (te_mve_requant). */
#include <arm_mve.h>

#include "te_fixedpoint.h"
#include "te_kernels_mve.h"
#include "te_ring.h"

#define TE_ALWAYS_INLINE inline __attribute__((always_inline))

/* ---- the matrix multiply */

/* Two rows X0, X1 against two filter rows W0, W1 over DEPTH (>= 1) bytes, each starting from
 * its bias: a00 = b0 + x0.w0, a01 = b1 + x0.w1, a10 = b0 + x1.w0, a11 = b1 + x1.w1.
 *
 * Why 2 x 2: VMLADAVA accumulates only into an even-numbered core register (constraint "Te"),
 * and four accumulators, four pointers and the loop counter fit the core registers (2 x 4
 * would need eight accumulators and six pointers). Why assembly: a tail-predicated loop
 * (DLSTP/LETP) handles a DEPTH that is not a multiple of 16 in its last pass, lanes past the
 * end loading as zero, and GCC 12 does not emit one from intrinsics; it also spends a dozen
 * instructions setting up each intrinsic loop. This loop is 9 instructions per 64 MACs. */
typedef struct {
  int32_t a00, a01, a10, a11;
} te_acc2x2_t;

static TE_ALWAYS_INLINE te_acc2x2_t te_dot_2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                                               int32_t depth, int32_t b0, int32_t b1) {
  te_acc2x2_t a = {b0, b1, b0, b1};
  __asm__ volatile(
      "dlstp.8 lr, %[n]\n"
      "1:\n\t"
      "vldrb.8 q0, [%[x0]], #16\n\t"
      "vldrb.8 q1, [%[x1]], #16\n\t"
      "vldrb.8 q2, [%[w0]], #16\n\t"
      "vldrb.8 q3, [%[w1]], #16\n\t"
      "vmladava.s8 %[a00], q0, q2\n\t"
      "vmladava.s8 %[a10], q1, q2\n\t"
      "vmladava.s8 %[a01], q0, q3\n\t"
      "vmladava.s8 %[a11], q1, q3\n\t"
      "letp lr, 1b"
      : [a00] "+Te"(a.a00), [a01] "+Te"(a.a01), [a10] "+Te"(a.a10), [a11] "+Te"(a.a11), [x0] "+r"(x0), [x1] "+r"(x1),
        [w0] "+r"(w0), [w1] "+r"(w1)
      : [n] "r"(depth)
      : "q0", "q1", "q2", "q3", "lr", "memory");
  return a;
}

/* Four accumulators as one vector. Lane by lane: vcreateq_s32 compiles to the two-lane VMOV
 * (Qd[2], Qd[0], Rt, Rt2), whose lanes GCC 12 and QEMU 7.2 disagree on. */
static TE_ALWAYS_INLINE int32x4_t te_vec4(int32_t a, int32_t b, int32_t c, int32_t d) {
  return vsetq_lane_s32(d, vsetq_lane_s32(c, vsetq_lane_s32(b, vdupq_n_s32(a), 1), 2), 3);
}

/* The output side of a matrix multiply, kept in locals: int8 stores could change a struct
 * read through a pointer, so the compiler would reload it after each. */
typedef struct {
  int32x4_t mult, shift;           /* per tensor; per channel they are loaded per block */
  int32_t per_channel, out_offset, act_min, act_max;
} te_mm_out_t;

/* Requantize four accumulators of consecutive output channels and store the LANES in use. */
static TE_ALWAYS_INLINE void te_store4(int8_t *y, int32x4_t acc, int32x4_t mult, int32x4_t shift, const te_mm_out_t *q,
                                       int full, mve_pred16_t lanes) {
  int32x4_t v = vaddq_n_s32(te_mve_requant(acc, mult, shift), q->out_offset);
  v = vminq_s32(vmaxq_s32(v, vdupq_n_s32(q->act_min)), vdupq_n_s32(q->act_max));
  if (full) {
    vstrbq_s32(y, v); /* the low byte of each lane */
  } else {
    vstrbq_p_s32(y, v, lanes);
  }
}

/* Outputs O..O+3 of rows X0 and X1 into Y0 and, unless it is NULL, Y1: all four when FULL,
 * else the LANES in use. R holds the four filter rows to read. */
static TE_ALWAYS_INLINE void te_block_2x4(const int8_t *x0, const int8_t *x1, const int8_t *filter, int32_t depth,
                                          const int32_t *bias, const int32_t *mult, const int8_t *shift, int32_t o,
                                          const int32_t r[4], const te_mm_out_t *q, int8_t *y0, int8_t *y1, int full,
                                          mve_pred16_t lanes) {
  const te_acc2x2_t a = te_dot_2x2(x0, x1, filter + r[0] * depth, filter + r[1] * depth, depth, bias[r[0]], bias[r[1]]);
  const te_acc2x2_t b = te_dot_2x2(x0, x1, filter + r[2] * depth, filter + r[3] * depth, depth, bias[r[2]], bias[r[3]]);
  int32x4_t m = q->mult, s = q->shift;
  if (q->per_channel) {
    m = full ? vldrwq_s32(mult + o) : vldrwq_z_s32(mult + o, lanes);
    s = full ? vldrbq_s32(shift + o) : vldrbq_z_s32(shift + o, lanes);
  }
  te_store4(y0 + o, te_vec4(a.a00, a.a01, b.a00, b.a01), m, s, q, full, lanes);
  if (y1) te_store4(y1 + o, te_vec4(a.a10, a.a11, b.a10, b.a11), m, s, q, full, lanes);
}

void te_mve_matmul(const int8_t *x, int32_t n_rows, int32_t row_stride, int32_t depth, const int8_t *filter,
                   int32_t n_out, const te_mve_output_t *out_params, int8_t *out, int32_t out_stride) {
  const te_mve_output_t p = *out_params;
  const te_mm_out_t q = {vdupq_n_s32(p.mult[0]), vdupq_n_s32(p.shift[0]), p.per_channel, p.out_offset, p.act_min,
                         p.act_max};
  const int32_t full_quads = n_out & ~3;
  for (int32_t i = 0; i < n_rows; i += 2) {
    const int8_t *x0 = x + i * row_stride;
    int8_t *y0 = out + i * out_stride;
    const int pair = i + 1 < n_rows;
    /* a lone last row is multiplied twice and stored once */
    const int8_t *x1 = pair ? x0 + row_stride : x0;
    int8_t *y1 = pair ? y0 + out_stride : NULL;
    int32_t o = 0;
    for (; o < full_quads; o += 4) {
      const int32_t rows[4] = {o, o + 1, o + 2, o + 3};
      te_block_2x4(x0, x1, filter, depth, p.bias, p.mult, p.shift, o, rows, &q, y0, y1, 1, 0xFFFF);
    }
    if (o < n_out) {
      /* the outputs past the last repeat it, so every filter row read exists; they are not stored */
      const int32_t last = n_out - 1;
      const int32_t rows[4] = {o, TE_MIN(o + 1, last), TE_MIN(o + 2, last), last};
      const mve_pred16_t lanes = vctp32q((uint32_t)(n_out - o));
      te_block_2x4(x0, x1, filter, depth, p.bias, p.mult, p.shift, o, rows, &q, y0, y1, 0, lanes);
    }
  }
}

/* ---- copies and fills, 16 bytes per instruction */

static TE_ALWAYS_INLINE void te_copy(int8_t *dst, const int8_t *src, int32_t n) {
  for (; n >= 16; n -= 16, dst += 16, src += 16) vstrbq_s8(dst, vldrbq_s8(src));
  if (n > 0) {
    const mve_pred16_t lanes = vctp8q((uint32_t)n);
    vstrbq_p_s8(dst, vldrbq_z_s8(src, lanes), lanes);
  }
}

static TE_ALWAYS_INLINE void te_fill(int8_t *dst, int8_t value, int32_t n) {
  const int8x16_t v = vdupq_n_s8(value);
  for (; n >= 16; n -= 16, dst += 16) vstrbq_s8(dst, v);
  if (n > 0) vstrbq_p_s8(dst, v, vctp8q((uint32_t)n));
}

/* ---- convolutions */

static te_mve_output_t te_conv_output(const te_conv_t *p) {
  const te_mve_output_t q = {p->bias, p->mult, p->shift, 1, p->out_offset, p->act_min, p->act_max};
  return q;
}

void te_pointwise_mve(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
  const te_mve_output_t q = te_conv_output(p);
  const int32_t pixels = p->out_h * p->out_w;
  if (!scratch) {
    te_mve_matmul(in, pixels, p->in_c, p->in_c, p->filter, p->out_c, &q, out, p->out_c);
    return;
  }
  /* in place: four whole input pixels are read before their outputs overwrite them */
  for (int32_t i = 0; i < pixels; i += 4) {
    const int32_t n = TE_MIN(4, pixels - i);
    te_mve_matmul(in + i * p->in_c, n, p->in_c, p->in_c, p->filter, p->out_c, &q, scratch, p->out_c);
    te_copy(out + i * p->out_c, scratch, n * p->out_c);
  }
}

/* Output pixel (OY, OX)'s window as one row of k_h * k_w * in_c bytes at COL, in OHWI order;
 * taps in the padding hold the input zero point (the folded bias counted every tap). P is a
 * local copy of the layer: the stores into COL would make the compiler reload a pointed-to one. */
static void te_im2col(const te_conv_t *p, const int8_t *in, const int8_t *ring, int32_t oy, int32_t ox, int8_t *col) {
  const int8_t zero_point = (int8_t)-p->in_offset;
  const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
  const int32_t tap = p->in_c, kernel_row = p->k_w * tap;
  int32_t fx0, fx1, fy0, fy1;
  te_mve_valid_taps(ix0, p->dil_w, p->k_w, p->in_w, &fx0, &fx1);
  te_mve_valid_taps(iy0, p->dil_h, p->k_h, p->in_h, &fy0, &fy1);
  if (fx1 == fx0) fy1 = fy0; /* no valid column: every tap is padding */
  /* bytes of a window row left of, in and right of the image */
  const int32_t left = fx0 * tap, inside = (fx1 - fx0) * tap, right = kernel_row - left - inside;
  te_fill(col, zero_point, fy0 * kernel_row);
  col += fy0 * kernel_row;
  for (int32_t fy = fy0; fy < fy1; ++fy, col += kernel_row) {
    const int8_t *src = te_ring_row(p, in, ring, iy0, iy0 + fy * p->dil_h) + (ix0 + fx0 * p->dil_w) * tap;
    if (left) te_fill(col, zero_point, left);
    if (p->dil_w == 1) {
      te_copy(col + left, src, inside); /* the valid taps are contiguous */
    } else {
      int8_t *const end = col + left + inside;
      for (int8_t *dst = col + left; dst < end; dst += tap, src += p->dil_w * tap) te_copy(dst, src, tap);
    }
    if (right) te_fill(col + left + inside, zero_point, right);
  }
  te_fill(col, zero_point, (p->k_h - fy1) * kernel_row);
}

void te_conv2d_mve(const te_conv_t *layer, const int8_t *in, int8_t *out, int8_t *scratch) {
  const te_conv_t copy = *layer, *p = &copy; /* see te_im2col */
  const te_mve_output_t q = te_conv_output(p);
  const int32_t depth = p->k_h * p->k_w * p->in_c;
  int32_t copied = -1; /* the ring's last input row */
  int32_t queued = 0, next = 0; /* windows waiting in p->work, and the output pixel of the first */
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    if (scratch) te_ring_fill(p, in, scratch, oy, &copied);
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      /* A group may span two output rows: its earlier pixels' windows are already in p->work
       * when the ring moves on, and writing outputs later than the generic kernel does is
       * always safe in place. */
      te_im2col(p, in, scratch, oy, ox, p->work + queued * depth);
      if (++queued == 4) {
        te_mve_matmul(p->work, 4, depth, depth, p->filter, p->out_c, &q, out + next * p->out_c, p->out_c);
        next += 4;
        queued = 0;
      }
    }
  }
  if (queued) te_mve_matmul(p->work, queued, depth, depth, p->filter, p->out_c, &q, out + next * p->out_c, p->out_c);
}
