/* Differential test of the Cortex-M DSP kernels (te_*_dsp) against the generic kernels.
 *
 * Random layers (seeded): kernel sizes 1..5, strides 1..3, dilations 1..2, asymmetric padding,
 * odd channel counts, int8 extremes in inputs, weights and zero points, per-channel multipliers
 * with shifts -31..+4, narrow activation ranges. Every DSP kernel runs out of place and in place
 * (its output over its input, start-aligned and end-aligned as the generator's planner places
 * them, when the planner's own safety rule allows that placement), and its output bytes must
 * equal an out-of-place run of the generic kernel; bytes outside the output, work buffer and
 * ring must be untouched. The five-instruction requantization is also checked directly
 * against te_fixedpoint.h on extreme accumulators.
 *
 * Built two ways by tests/test_kernels_dsp.py:
 *  - for the host: `dsp_vs_generic SEED CASES`, the portable C of te_simd_dsp.h;
 *  - for emulated Cortex-M4, M7 and M33 boards (QEMU, semihosting), with TE_SEED and TE_CASES
 *    defined: the DSP instructions and the assembly loops themselves. This build also prints
 *    the emulated instructions of the MLPerf Tiny KWS layers and of a dense layer, generic
 *    against DSP ("bench" lines).
 * Exit status 0 and the line "dsp_vs_generic: ok" mean every comparison held.
 */
#include <stdint.h>
#include <string.h>

#include "te_fixedpoint.h"
#include "te_kernels_dsp.h"
#include "te_simd_dsp.h"
#include "inplace_rules.h"

#if defined(__arm__) && !defined(__linux__)
#define TE_BARE_METAL 1
#else
#define TE_BARE_METAL 0
#include <stdio.h>
#include <stdlib.h>
#endif

/* ---- output and exit */

#if TE_BARE_METAL
static void semihost(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}
static void say(const char *s) { semihost(0x04, s); } /* SYS_WRITE0 */
static void finish(int failed) {
  semihost(0x18, (const void *)(uintptr_t)(failed ? 0x20024u : 0x20026u)); /* SYS_EXIT: application exit or error */
  for (;;) {
  }
}
#else
static void say(const char *s) { fputs(s, stdout); }
static void finish(int failed) { exit(failed ? 1 : 0); }
#endif

static void say_int(int64_t v) {
  char buf[24], *p = buf + sizeof buf - 1;
  const int neg = v < 0;
  uint64_t u = neg ? (uint64_t)(-(v + 1)) + 1u : (uint64_t)v;
  *p = '\0';
  do {
    *--p = (char)('0' + u % 10u);
    u /= 10u;
  } while (u);
  if (neg) *--p = '-';
  say(p);
}

/* ---- random numbers (xorshift32: the same sequence on every platform) */

static uint32_t rng = 1;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}
static int32_t rnd_in(int32_t lo, int32_t hi) { return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1)); }
static int8_t rnd_i8(void) { /* int8 with its extremes often */
  const uint32_t r = rnd() % 8u;
  return r == 0 ? (int8_t)-128 : r == 1 ? (int8_t)127 : (int8_t)rnd_in(-128, 127);
}
static int32_t rnd_pick(const int32_t *v, int n) { return v[rnd() % (uint32_t)n]; }

/* ---- memory: every buffer sits between guard bytes */

#define GUARD 16
#define POOL_BYTES (512 * 1024)
static int8_t pool[POOL_BYTES] __attribute__((aligned(8)));
static int32_t pool_used;
static int failures, checks;

static int8_t *take(int32_t bytes) {
  int8_t *p = pool + pool_used + GUARD;
  pool_used += (bytes + 2 * GUARD + 7) / 8 * 8;
  if (pool_used > POOL_BYTES) {
    say("pool exhausted\n");
    finish(1);
  }
  memset(p - GUARD, 0x5A, (size_t)(bytes + 2 * GUARD));
  return p;
}
static void fill_random(int8_t *p, int32_t n) {
  for (int32_t i = 0; i < n; ++i) p[i] = rnd_i8();
}
static int guards_intact(const int8_t *p, int32_t bytes) {
  for (int32_t i = 1; i <= GUARD; ++i)
    if (p[-i] != 0x5A || p[bytes - 1 + i] != 0x5A) return 0;
  return 1;
}

static const char *what;
static uint32_t case_seed;
static void fail(const char *why) {
  if (failures++ < 12) {
    say("FAIL ");
    say(what);
    say(": ");
    say(why);
    say(" (case seed ");
    say_int(case_seed);
    say(")\n");
  }
}
static void expect(int ok, const char *why) {
  ++checks;
  if (!ok) fail(why);
}

/* ---- requantization: te_rq_apply against te_requant */

static void check_requant(int32_t x, int32_t m, int32_t s, int32_t off) {
  const int32_t want = te_clamp8(te_requant(x, m, s) + off, -128, 127);
  const int32_t got = te_rq_apply(x, te_rq_make(m, s), 2 * off + 1);
  expect(te_rq_ok(m, s) && got == want, "te_rq_apply differs from te_requant");
}

/* Every shift -31..-1 against accumulators near 0, +-2^30 and the int32 limits, with the
 * extreme multipliers and zero points; then N random cases. */
static void test_requant(int n) {
  static const int32_t edge[] = {0, 1, 2, 3, 1 << 29, 1 << 30, 12345678, INT32_MAX, INT32_MIN};
  static const int32_t offsets[] = {-128, 0, 127};
  what = "requant";
  case_seed = rng;
  for (int32_t s = -31; s <= -1; ++s)
    for (int e = 0; e < 9; ++e)
      for (int32_t d = -3; d <= 3; ++d)
        for (int k = 0; k < 9; ++k) {
          const int32_t m = k % 3 == 0 ? 1 << 30 : k % 3 == 1 ? INT32_MAX : rnd_in(1 << 30, INT32_MAX);
          const int32_t x = (int32_t)((uint32_t)edge[e] + (uint32_t)d);
          check_requant(x, m, s, offsets[k / 3]);
          check_requant((int32_t)(0u - (uint32_t)x), m, s, offsets[k / 3]);
        }
  for (int i = 0; i < n; ++i) {
    case_seed = rng;
    check_requant((int32_t)rnd() >> (rnd() % 32u), rnd_in(1 << 30, INT32_MAX), rnd_in(-31, -1), rnd_in(-128, 127));
  }
}

/* ---- convolution layers */

enum { POINTWISE, CONV, DEPTHWISE };

typedef struct {
  te_conv_t p;
  int8_t *filter, *input;
  int32_t *bias, *mult;
  int8_t *shift;
} layer_t;

static int32_t in_bytes(const te_conv_t *p) { return p->in_h * p->in_w * p->in_c; }
static int32_t out_bytes(const te_conv_t *p) { return p->out_h * p->out_w * p->out_c; }

/* Per-channel multipliers and shifts for a layer: mostly a realistic scale for DEPTH taps, or
 * any right shift (-31..-1); in one layer of five any shift in -31..+4, or now and then a zero
 * multiplier (TFLM's for a zero scale), which the fast requantization leaves to te_output8. */
static void random_requant(int32_t *mult, int8_t *shift, int32_t n, int32_t depth) {
  int32_t log2_depth = 0;
  while ((1 << log2_depth) < depth) ++log2_depth;
  const int32_t base = -7 - log2_depth / 2, mode = rnd_in(0, 9);
  for (int32_t i = 0; i < n; ++i) {
    mult[i] = mode == 9 && rnd() % 8u == 0 ? 0 : rnd_in(1 << 30, INT32_MAX);
    shift[i] = (int8_t)(mode < 6 || mode == 9 ? TE_MIN(-1, base + rnd_in(-3, 3)) : mode < 8 ? rnd_in(-31, -1) : rnd_in(-31, 4));
  }
}

static int32_t random_bias(void) { return rnd() % 4u ? rnd_in(-(1 << 20), 1 << 20) : rnd_in(-(1 << 27), 1 << 27); }

/* Now and then a channel with all-zero weights and a bias at the int32 limits: its accumulator
 * is exactly the bias, so the requantization meets its extreme inputs in every kernel (other
 * channels cannot get there without overflowing int32, which the generic kernels do not do).
 * Channel c's weights are FILTER[c * ROW_STEP + t * TAP_STEP] for t < TAPS; its requantization
 * is made the largest one half of the time, keeping the channel on the kernels' fast path. */
static void extreme_channels(int8_t *filter, int32_t *bias, int32_t *mult, int8_t *shift, int32_t channels,
                             int32_t taps, int32_t row_step, int32_t tap_step) {
  for (int32_t c = 0; c < channels; ++c) {
    if (rnd() % 16u) continue;
    for (int32_t t = 0; t < taps; ++t) filter[c * row_step + t * tap_step] = 0;
    bias[c] = rnd() % 2u ? INT32_MAX - rnd_in(0, 300) : INT32_MIN + rnd_in(0, 300);
    if (rnd() % 2u && shift[c] < 0) mult[c] = INT32_MAX - rnd_in(0, 3), shift[c] = -1; /* the largest results */
  }
}

static void random_activation(int32_t *act_min, int32_t *act_max) {
  *act_min = -128, *act_max = 127;
  if (rnd() % 3u == 0) {
    *act_min = rnd_in(-128, 0);
    *act_max = rnd_in(*act_min, 127);
  }
}

/* Output size along one axis with random (possibly asymmetric) padding; 0 when it does not fit. */
static int32_t random_axis(int32_t in, int32_t k, int32_t stride, int32_t dil, int32_t *pad_before) {
  const int32_t eff = (k - 1) * dil + 1;
  const int32_t mode = rnd_in(0, 2);
  int32_t before = 0, after = 0;
  if (mode == 1) { /* TFLite SAME */
    const int32_t out = (in + stride - 1) / stride, total = TE_MAX(0, (out - 1) * stride + eff - in);
    before = total / 2, after = total - before;
  } else if (mode == 2) {
    before = rnd_in(0, eff - 1), after = rnd_in(0, eff - 1);
  }
  *pad_before = before;
  const int32_t span = in + before + after - eff;
  return span < 0 ? 0 : span / stride + 1;
}

static int random_layer(int kind, layer_t *l) {
  static const int32_t channels[] = {1, 3, 5, 7, 16, 33, 4, 8, 12, 2, 6, 64};
  te_conv_t *p = &l->p;
  memset(l, 0, sizeof *l);
  p->in_c = rnd() % 4u ? rnd_pick(channels, 12) : rnd_in(1, 40);
  p->out_c = kind == DEPTHWISE ? p->in_c : (rnd() % 4u ? rnd_pick(channels, 12) : rnd_in(1, 40));
  p->depth_mult = 1;
  p->in_h = rnd_in(1, 11), p->in_w = rnd_in(1, 11);
  if (kind == POINTWISE) {
    p->k_h = p->k_w = p->stride_h = p->stride_w = p->dil_h = p->dil_w = 1;
    p->out_h = p->in_h, p->out_w = p->in_w;
  } else {
    const int square = rnd() % 2u;
    p->k_h = rnd_in(1, 5), p->k_w = square ? p->k_h : rnd_in(1, 5);
    if (kind == DEPTHWISE && rnd() % 2u) p->k_h = p->k_w = 3; /* the fast path */
    p->stride_h = rnd_in(1, 3), p->stride_w = square ? p->stride_h : rnd_in(1, 3);
    p->dil_h = rnd() % 4u ? 1 : 2, p->dil_w = rnd() % 4u ? 1 : 2;
    p->out_h = random_axis(p->in_h, p->k_h, p->stride_h, p->dil_h, &p->pad_top);
    p->out_w = random_axis(p->in_w, p->k_w, p->stride_w, p->dil_w, &p->pad_left);
    if (p->out_h == 0 || p->out_w == 0) return 0;
  }
  const int32_t taps = p->k_h * p->k_w, depth = kind == DEPTHWISE ? taps : taps * p->in_c;
  const int32_t filter_bytes = kind == DEPTHWISE ? taps * p->out_c : p->out_c * depth;
  p->in_offset = -rnd_i8();
  p->out_offset = rnd_i8();
  random_activation(&p->act_min, &p->act_max);
  l->filter = take(filter_bytes);
  fill_random(l->filter, filter_bytes);
  l->bias = (int32_t *)(void *)take(4 * p->out_c);
  l->mult = (int32_t *)(void *)take(4 * p->out_c);
  l->shift = take(p->out_c);
  for (int32_t i = 0; i < p->out_c; ++i) l->bias[i] = random_bias();
  random_requant(l->mult, l->shift, p->out_c, depth);
  if (kind == DEPTHWISE)
    extreme_channels(l->filter, l->bias, l->mult, l->shift, p->out_c, taps, 1, p->out_c);
  else
    extreme_channels(l->filter, l->bias, l->mult, l->shift, p->out_c, depth, depth, 1);
  p->filter = l->filter, p->bias = l->bias, p->mult = l->mult, p->shift = l->shift;
  l->input = take(in_bytes(p));
  fill_random(l->input, in_bytes(p));
  return 1;
}

typedef void (*conv_fn)(const te_conv_t *, const int8_t *, int8_t *, int8_t *);

static int32_t work_bytes(int kind, const te_conv_t *p) {
  if (kind == POINTWISE) return TE_DSP_POINTWISE_WORK_BYTES(p->in_c);
  if (kind == CONV) return TE_DSP_CONV_WORK_BYTES(p->k_h * p->k_w * p->in_c);
  return 0;
}

/* Run FN out of place and, where the planner allows, in place; compare with WANT. */
static void check_conv(int kind, conv_fn fn, const layer_t *l, const int8_t *want, int pixel_mode) {
  const te_conv_t *base = &l->p;
  const int32_t nin = in_bytes(base), nout = out_bytes(base);
  const int32_t ring_bytes = ((base->k_h - 1) * base->dil_h + 1) * base->in_w * base->in_c;
  const int32_t scratch_bytes = pixel_mode ? 2 * base->out_c : ring_bytes;
  te_conv_t p = *base;
  const int32_t saved = pool_used;
  /* now and then no work buffer: te_pointwise_dsp then falls back to the generic kernel */
  const int32_t wb = kind == POINTWISE && rnd() % 8u == 0 ? 0 : work_bytes(kind, base);
  p.work = wb ? take(wb) : NULL;

  /* out of place: the input must stay as it was */
  int8_t *x = take(nin), *y = take(nout);
  memcpy(x, l->input, (size_t)nin);
  fn(&p, x, y, NULL);
  expect(memcmp(y, want, (size_t)nout) == 0, "out of place: output differs");
  expect(memcmp(x, l->input, (size_t)nin) == 0, "out of place: input changed");
  expect(guards_intact(y, nout) && guards_intact(x, nin), "out of place: wrote outside the output");
  if (p.work) expect(guards_intact(p.work, wb), "wrote outside the work buffer");

  /* in place, at the two offsets the planner tries */
  const int32_t deltas[2] = {0, nin - nout};
  for (int i = 0; i < 2; ++i) {
    const int32_t delta = deltas[i];
    if (i == 1 && delta == 0) break;
    if (!(pixel_mode ? pixel_safe(base, delta) : rows_safe(base, delta))) continue;
    const int32_t lead = TE_MAX(0, -delta), region = lead + TE_MAX(nin, delta + nout);
    int8_t *r = take(region);
    int8_t *xin = r + lead, *yout = xin + delta;
    int8_t *scratch = take(scratch_bytes);
    memcpy(xin, l->input, (size_t)nin);
    fn(&p, xin, yout, scratch);
    expect(memcmp(yout, want, (size_t)nout) == 0, delta == 0 ? "in place (start-aligned): output differs"
                                                               : "in place (end-aligned): output differs");
    expect(guards_intact(r, region), "in place: wrote outside the tensors");
    expect(guards_intact(scratch, scratch_bytes), "in place: wrote outside the scratch");
  }
  pool_used = saved;
}

static void conv_case(int kind) {
  layer_t l;
  const int32_t saved = pool_used;
  case_seed = rng;
  if (!random_layer(kind, &l)) {
    pool_used = saved;
    return;
  }
  const te_conv_t *p = &l.p;
  int8_t *want = take(out_bytes(p));
  if (kind == DEPTHWISE) {
    te_depthwise_conv2d(p, l.input, want, NULL);
    what = "te_depthwise_dsp";
    check_conv(kind, te_depthwise_dsp, &l, want, 0);
  } else {
    te_conv2d(p, l.input, want, NULL);
    if (kind == POINTWISE) {
      what = "te_pointwise_dsp";
      check_conv(POINTWISE, te_pointwise_dsp, &l, want, 1);
    }
    what = "te_conv2d_dsp";
    check_conv(CONV, te_conv2d_dsp, &l, want, 0);
  }
  pool_used = saved;
}

/* ---- fully connected */

static void fc_case(void) {
  te_fc_t p;
  const int32_t saved = pool_used;
  case_seed = rng;
  memset(&p, 0, sizeof p);
  p.rows = rnd_in(1, 3), p.in_depth = rnd_in(1, 70), p.out_depth = rnd_in(1, 21);
  p.out_offset = rnd_i8(), p.per_channel = (int32_t)(rnd() % 2u);
  random_activation(&p.act_min, &p.act_max);
  int8_t *filter = take(p.out_depth * p.in_depth), *x = take(p.rows * p.in_depth);
  int32_t *bias = (int32_t *)(void *)take(4 * p.out_depth), *mult = (int32_t *)(void *)take(4 * p.out_depth);
  int8_t *shift = take(p.out_depth);
  fill_random(filter, p.out_depth * p.in_depth);
  fill_random(x, p.rows * p.in_depth);
  for (int32_t i = 0; i < p.out_depth; ++i) bias[i] = random_bias();
  random_requant(mult, shift, p.out_depth, p.in_depth);
  extreme_channels(filter, bias, mult, shift, p.out_depth, p.in_depth, p.in_depth, 1);
  p.filter = filter, p.bias = bias, p.mult = mult, p.shift = shift;
  const int32_t n = p.rows * p.out_depth;
  int8_t *want = take(n), *got = take(n);
  te_fully_connected(&p, x, want);
  te_fully_connected_dsp(&p, x, got);
  what = "te_fully_connected_dsp";
  expect(memcmp(want, got, (size_t)n) == 0 && guards_intact(got, n), "output differs");
  pool_used = saved;
}

/* ---- instruction counts of the KWS layers (bare metal only) */

#if TE_BARE_METAL
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static uint32_t ticks_now(void) { return SYST_CVR; }
static uint32_t ticks_since(uint32_t start) { return (start - SYST_CVR) & 0xFFFFFFu; }

/* SysTick counts the emulated clock; calibrate it against a loop of known instruction count. */
static uint32_t insns_per_1000_ticks(void) {
  const uint32_t t = ticks_now();
  uint32_t n = 200000;
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
  return (uint32_t)(400000ull * 1000u / ticks_since(t));
}

/* One benchmark line: MACs, generic and DSP instructions (ticks at RATE per 1000 instructions). */
static void say_bench(const char *name, int64_t macs, uint32_t generic_ticks, uint32_t dsp_ticks, uint32_t rate, int mismatch) {
  say("bench ");
  say(name);
  say(": MACs ");
  say_int(macs);
  say(", generic ");
  say_int((int64_t)generic_ticks * rate / 1000);
  say(" insns, dsp ");
  say_int((int64_t)dsp_ticks * rate / 1000);
  say(" insns, dsp insns/MAC x100 ");
  say_int((int64_t)dsp_ticks * rate / 10 / macs);
  say(mismatch ? " MISMATCH\n" : "\n");
}

static void bench_conv(const char *name, int kind, conv_fn generic, conv_fn dsp, te_conv_t p, uint32_t rate) {
  int32_t saved = pool_used;
  const int32_t depth = kind == DEPTHWISE ? p.k_h * p.k_w : p.k_h * p.k_w * p.in_c;
  int8_t *filter = take(kind == DEPTHWISE ? depth * p.out_c : depth * p.out_c);
  int32_t *bias = (int32_t *)(void *)take(4 * p.out_c), *mult = (int32_t *)(void *)take(4 * p.out_c);
  int8_t *shift = take(p.out_c), *x = take(in_bytes(&p)), *y0 = take(out_bytes(&p)), *y1 = take(out_bytes(&p));
  fill_random(filter, depth * p.out_c);
  fill_random(x, in_bytes(&p));
  for (int32_t i = 0; i < p.out_c; ++i) bias[i] = rnd_in(-(1 << 16), 1 << 16), mult[i] = rnd_in(1 << 30, INT32_MAX), shift[i] = -9;
  p.filter = filter, p.bias = bias, p.mult = mult, p.shift = shift;
  const int32_t wb = work_bytes(kind, &p);
  p.work = wb ? take(wb) : NULL;
  uint32_t t = ticks_now();
  generic(&p, x, y0, NULL);
  const uint32_t g = ticks_since(t);
  t = ticks_now();
  dsp(&p, x, y1, NULL);
  const uint32_t d = ticks_since(t);
  say_bench(name, (int64_t)out_bytes(&p) * depth, g, d, rate, memcmp(y0, y1, (size_t)out_bytes(&p)) != 0);
  pool_used = saved;
}

static void bench_fc(const char *name, int32_t in_depth, int32_t out_depth, uint32_t rate) {
  const int32_t saved = pool_used;
  te_fc_t p;
  memset(&p, 0, sizeof p);
  p.rows = 1, p.in_depth = in_depth, p.out_depth = out_depth, p.out_offset = -128;
  p.act_min = -128, p.act_max = 127, p.per_channel = 0;
  int8_t *filter = take(in_depth * out_depth), *x = take(in_depth), *y0 = take(out_depth), *y1 = take(out_depth);
  int32_t *bias = (int32_t *)(void *)take(4 * out_depth), mult = 1 << 30;
  int8_t shift = -9;
  fill_random(filter, in_depth * out_depth);
  fill_random(x, in_depth);
  for (int32_t i = 0; i < out_depth; ++i) bias[i] = rnd_in(-(1 << 16), 1 << 16);
  p.filter = filter, p.bias = bias, p.mult = &mult, p.shift = &shift;
  uint32_t t = ticks_now();
  te_fully_connected(&p, x, y0);
  const uint32_t g = ticks_since(t);
  t = ticks_now();
  te_fully_connected_dsp(&p, x, y1);
  const uint32_t d = ticks_since(t);
  say_bench(name, (int64_t)in_depth * out_depth, g, d, rate, memcmp(y0, y1, (size_t)out_depth) != 0);
  pool_used = saved;
}

static void bench(void) {
  SYST_RVR = 0xFFFFFFu;
  SYST_CVR = 0;
  SYST_CSR = 5u; /* enabled, processor clock, no interrupt */
  const uint32_t rate = insns_per_1000_ticks();
  te_conv_t p;
  memset(&p, 0, sizeof p);
  p.k_h = p.k_w = p.stride_h = p.stride_w = p.dil_h = p.dil_w = p.depth_mult = 1;
  p.in_offset = 128, p.out_offset = -128, p.act_min = -128, p.act_max = 127;
  p.in_h = p.out_h = 25, p.in_w = p.out_w = 5, p.in_c = p.out_c = 64;
  bench_conv("KWS pointwise 25x5x64->64", POINTWISE, te_conv2d, te_pointwise_dsp, p, rate);
  p.k_h = p.k_w = 3, p.pad_top = p.pad_left = 1;
  bench_conv("KWS depthwise 3x3 25x5x64", DEPTHWISE, te_depthwise_conv2d, te_depthwise_dsp, p, rate);
  p.in_h = 27, p.in_w = 7, p.pad_top = p.pad_left = 0;
  bench_conv("depthwise 3x3 27x7x64 valid", DEPTHWISE, te_depthwise_conv2d, te_depthwise_dsp, p, rate);
  p.in_h = 25, p.in_w = 5, p.pad_top = p.pad_left = 1;
  p.in_h = 49, p.in_w = 10, p.in_c = 1, p.k_h = 10, p.k_w = 4, p.stride_h = p.stride_w = 2;
  p.pad_top = 4, p.pad_left = 1;
  bench_conv("KWS stem 10x4/2 49x10x1->25x5x64", CONV, te_conv2d, te_conv2d_dsp, p, rate);
  bench_fc("dense 640->128 (anomaly detection)", 640, 128, rate);
}
#endif

/* ---- main */

static int run(uint32_t seed, int cases) {
  rng = seed ? seed : 1;
  test_requant(20000);
  for (int i = 0; i < cases; ++i) {
    conv_case(i % 3 == 0 ? POINTWISE : i % 3 == 1 ? CONV : DEPTHWISE);
    fc_case();
  }
  say("dsp_vs_generic: ");
  say_int(checks);
  say(" checks, ");
  say_int(failures);
  say(" failures\n");
  if (!failures) say("dsp_vs_generic: ok\n");
  return failures != 0;
}

#if TE_BARE_METAL
int main(void) {
  bench();
  return run(TE_SEED, TE_CASES);
}

/* A minimal M-profile start: vector table, .data and .bss, the FPU on, main, exit. */
extern uint32_t _data_load, _data_start, _data_end, _bss_start, _bss_end, _stack_top;
void te_reset(void) {
  memcpy(&_data_start, &_data_load, (size_t)((char *)&_data_end - (char *)&_data_start));
  memset(&_bss_start, 0, (size_t)((char *)&_bss_end - (char *)&_bss_start));
  *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10 and CP11 full access */
  __asm__ volatile("dsb\n\tisb");
  finish(main());
}
__attribute__((section(".vectors"), used)) static const void *const vectors[2] = {&_stack_top, (const void *)te_reset};
#else
int main(int argc, char **argv) {
  const uint32_t seed = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1u;
  const int cases = argc > 2 ? atoi(argv[2]) : 300;
  return run(seed, cases);
}
#endif
