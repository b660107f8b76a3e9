/* SIMD primitives of the Cortex-M DSP extension (M4, M7, M33), and the same operations in
 * portable C.
 *
 * On a core with the DSP extension each primitive is one instruction (ACLE intrinsics from
 * arm_acle.h, or a one-line asm where ACLE has no spelling for the instruction). Elsewhere the
 * portable C definitions compute exactly the same bits, so the host build runs the very kernel
 * code the target runs and the host tests check it against the generic kernels.
 *
 * Conventions: a "pair" is two int16 lanes in a uint32_t (lane 0 in bits 0..15); SXTB16 widens
 * bytes 0 and 2 of a word into a pair, SXTB16 of the word rotated by 8 widens bytes 1 and 3.
 * Applying that same split to four input bytes and four weight bytes lines the lanes up, so a
 * dot product of two words is SMLAD(lo, lo) + SMLAD(hi, hi) with no reordering of either side.
 */
#ifndef TE_SIMD_DSP_H
#define TE_SIMD_DSP_H

#include <stdint.h>
#include <string.h>

#include "te_fixedpoint.h"

/* Inlining the kernels' small helpers is what keeps their operands in registers; the rare
 * paths stay out of line so they do not crowd the hot loops. */
#if defined(__GNUC__)
#define TE_INLINE static inline __attribute__((always_inline))
#define TE_NOINLINE static __attribute__((noinline))
#else
#define TE_INLINE static inline
#define TE_NOINLINE static
#endif

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#define TE_DSP_NATIVE 1
#include <arm_acle.h>
#else
#define TE_DSP_NATIVE 0
#endif

/* The kernels' hot loops in Thumb-2 assembly. They need 13 free registers, which gcc finds when
 * it optimizes; an unoptimized build (-O0) takes the C forms of the same loops. */
#if TE_DSP_NATIVE && defined(__OPTIMIZE__)
#define TE_DSP_ASM 1
#else
#define TE_DSP_ASM 0
#endif

/* Words at any address: the M4, M7 and M33 load and store a word unaligned in one LDR/STR, which
 * is what gcc makes of these memcpy calls. (LDRD and LDM need word alignment: the kernels use
 * them only on their work buffer and stack.) */
static inline uint32_t te_read32(const void *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void te_write32(void *p, uint32_t v) { memcpy(p, &v, sizeof v); }

/* The first N (1..4) bytes at P, zero above: the end of a row or channel run read without
 * touching the bytes past it. */
static inline uint32_t te_read_upto4(const int8_t *p, int32_t n) {
  if (n >= 4) return te_read32(p);
  uint32_t v = (uint8_t)p[0];
  if (n > 1) v |= (uint32_t)(uint8_t)p[1] << 8;
  if (n > 2) v |= (uint32_t)(uint8_t)p[2] << 16;
  return v;
}

#if TE_DSP_NATIVE

static inline uint32_t te_sxtb16(uint32_t x) { return (uint32_t)__sxtb16(x); }

/* ACLE has no rotate operand for SXTB16 and gcc 12 does not fold a separate ROR into it, so the
 * one-instruction form is written out. */
static inline uint32_t te_sxtb16_ror8(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

static inline int32_t te_smlad(uint32_t x, uint32_t y, int32_t acc) { return __smlad(x, y, acc); }
static inline uint32_t te_sadd16(uint32_t x, uint32_t y) { return (uint32_t)__sadd16(x, y); }
static inline int32_t te_smlabb(uint32_t x, uint32_t y, int32_t acc) { return __smlabb(x, y, acc); }
static inline int32_t te_smlatt(uint32_t x, uint32_t y, int32_t acc) { return __smlatt(x, y, acc); }

static inline int32_t te_qadd(int32_t x, int32_t y) { return __qadd(x, y); }

/* The high word of a * 2^32 + x * y + 2^31 (ACLE has no SMMLAR; gcc makes three instructions of
 * the C form). */
static inline int32_t te_smmlar(int32_t x, int32_t y, int32_t a) {
  int32_t r;
  __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(a));
  return r;
}

/* Saturate to a signed N-bit range (N a constant). */
#define te_ssat(x, n) __ssat((x), (n))

#else /* portable C with the instructions' exact results */

static inline int32_t te_lane0(uint32_t x) { return (int16_t)(x & 0xFFFFu); }
static inline int32_t te_lane1(uint32_t x) { return (int16_t)(x >> 16); }

static inline uint32_t te_sxtb16(uint32_t x) {
  const uint32_t b0 = (uint32_t)(int32_t)(int8_t)(x & 0xFFu), b2 = (uint32_t)(int32_t)(int8_t)((x >> 16) & 0xFFu);
  return (b0 & 0xFFFFu) | (b2 << 16);
}

static inline uint32_t te_sxtb16_ror8(uint32_t x) { return te_sxtb16(x >> 8); }

/* The instructions wrap on overflow (they only set the Q flag), so the sums are taken modulo
 * 2^32 here too; unsigned arithmetic keeps that defined in C. */
static inline int32_t te_wrap_add(int32_t acc, int32_t a, int32_t b) {
  return (int32_t)((uint32_t)acc + (uint32_t)a + (uint32_t)b);
}

static inline int32_t te_smlad(uint32_t x, uint32_t y, int32_t acc) {
  return te_wrap_add(acc, te_lane0(x) * te_lane0(y), te_lane1(x) * te_lane1(y));
}
static inline uint32_t te_sadd16(uint32_t x, uint32_t y) {
  return ((x + y) & 0xFFFFu) | (((x >> 16) + (y >> 16)) << 16); /* lane by lane, modulo 2^16 */
}
static inline int32_t te_smlabb(uint32_t x, uint32_t y, int32_t acc) { return te_wrap_add(acc, te_lane0(x) * te_lane0(y), 0); }
static inline int32_t te_smlatt(uint32_t x, uint32_t y, int32_t acc) { return te_wrap_add(acc, te_lane1(x) * te_lane1(y), 0); }

static inline int32_t te_qadd(int32_t x, int32_t y) {
  const int64_t s = (int64_t)x + y;
  return s > INT32_MAX ? INT32_MAX : s < INT32_MIN ? INT32_MIN : (int32_t)s;
}

static inline int32_t te_smmlar(int32_t x, int32_t y, int32_t a) {
  const uint64_t sum = ((uint64_t)(uint32_t)a << 32) + 0x80000000u + (uint64_t)((int64_t)x * y);
  return (int32_t)(uint32_t)(sum >> 32);
}

static inline int32_t te_ssat_c(int32_t x, int n) {
  const int32_t hi = (int32_t)((1u << (n - 1)) - 1u), lo = -hi - 1;
  return x < lo ? lo : (x > hi ? hi : x);
}
#define te_ssat(x, n) te_ssat_c((x), (n))

#endif

/* Four int8 weights or inputs as two pairs: (b0, b2) and (b1, b3). */
typedef struct {
  uint32_t even, odd;
} te_pairs_t;

static inline te_pairs_t te_widen4(uint32_t x) {
  te_pairs_t r;
  r.even = te_sxtb16(x);
  r.odd = te_sxtb16_ror8(x);
  return r;
}

/* ---- Requantization in five instructions (SMMLAR, shifts, QADD, SSAT), equal to te_output8.
 *
 * For a multiplier m in [2^30, 2^31) and a right shift e = -shift >= 1, te_requant(x) is
 * floor((h + 2^(e-1) - [h < 0]) / 2^e) with h = floor((2 x m + 2^31) / 2^32), and:
 *  - 2 x m = x * m2 + x * 2^32 with m2 = 2m - 2^32 (the int32 bits of 2m), so SMMLAR of x * m2
 *    onto (x + (x >> 31)) * 2^32 leaves t = h - [x < 0]; [x < 0] may stand for [h < 0] because
 *    they differ only when h == 0, where both round to 0; |h| <= |x| and h > -2^31, so t fits
 *    in 32 bits (the sums wrap modulo 2^64 on the way, harmlessly);
 *  - floor((t + 2^(e-1)) / 2^e) = ((t >> (e-1)) + 1) >> 1 (nested floors), and the output zero
 *    point joins the final shift as ((t >> (e-1)) + 1 + 2 out_offset) >> 1;
 *  - that sum can leave int32 only when e == 1 and |x| is near 2^31, where the output
 *    saturates anyway: QADD keeps its sign, then SSAT clamps to int8.
 * A channel with shift >= 0 or an unusual multiplier takes te_output8 instead (see te_rq_ok). */
typedef struct {
  int32_t m2;  /* the multiplier doubled, modulo 2^32 */
  int32_t em1; /* right shift minus one */
} te_rq_t;

static inline int te_rq_ok(int32_t mult, int32_t shift) { return shift < 0 && mult >= (1 << 30); }

static inline te_rq_t te_rq_make(int32_t mult, int32_t shift) {
  te_rq_t q;
  q.m2 = (int32_t)((uint32_t)mult << 1);
  q.em1 = -shift - 1;
  return q;
}

/* The output byte before the activation clamp, saturated to int8; C is 2 * out_offset + 1. */
static inline int32_t te_rq_apply(int32_t x, te_rq_t q, int32_t c) {
  const int32_t t = te_smmlar(x, q.m2, (int32_t)((uint32_t)x + (uint32_t)(x >> 31)));
  return te_ssat(te_qadd(t >> q.em1, c) >> 1, 8);
}

/* Whether every one of N channels can use te_rq_apply. */
static inline int te_rq_all_ok(const int32_t *mult, const int8_t *shift, int32_t n) {
  for (int32_t i = 0; i < n; ++i)
    if (!te_rq_ok(mult[i], shift[i])) return 0;
  return 1;
}

/* ---- Output bytes: what a layer's accumulators become, decided once per layer. */
typedef struct {
  const int32_t *mult;
  const int8_t *shift;
  int32_t c;                          /* 2 * out_offset + 1, for te_rq_apply */
  int32_t out_offset, act_min, act_max;
  int fast;                           /* every channel can take te_rq_apply */
  int clamp;                          /* the activation range is narrower than int8 */
} te_out_t;

static inline te_out_t te_out_make(const int32_t *mult, const int8_t *shift, int32_t channels, int32_t out_offset,
                                   int32_t act_min, int32_t act_max) {
  te_out_t q;
  q.mult = mult;
  q.shift = shift;
  q.c = 2 * out_offset + 1;
  q.out_offset = out_offset;
  q.act_min = act_min;
  q.act_max = act_max;
  q.fast = te_rq_all_ok(mult, shift, channels);
  q.clamp = act_min > -128 || act_max < 127;
  return q;
}

/* te_output8 for a layer off the fast path, kept out of line: the kernels call it from many
 * places, and inlined it would add a hundred bytes of flash at each. */
#if defined(__GNUC__)
__attribute__((noinline, unused))
#endif
static int8_t te_out_slow(const te_out_t *q, int32_t ch, int32_t acc) {
  return te_output8(acc, q->mult[ch], q->shift[ch], q->out_offset, q->act_min, q->act_max);
}

/* Channel CH's output byte from ACC, given R = te_rq_make of the channel when Q->fast. */
static inline int8_t te_out_byte(const te_out_t *q, int32_t ch, te_rq_t r, int32_t acc) {
  if (!q->fast) return te_out_slow(q, ch, acc);
  const int32_t v = te_rq_apply(acc, r, q->c);
  return (int8_t)(q->clamp ? te_clamp8(v, q->act_min, q->act_max) : v);
}

#endif /* TE_SIMD_DSP_H */
