/* Bare-metal driver for tests/test_kernels_mve.py: the Helium (MVE) kernels against the generic
 * ones on random shapes and parameters, on QEMU mps3-an547 (Cortex-M55).
 *
 * Every case runs the generic kernel out of place and the MVE kernel out of place and, where the
 * generator's memory plan could place it so, in place; all outputs must be the same bytes, and
 * no kernel may write outside its output, work buffer or ring. Messages go to the host through
 * semihosting; the exit status (SYS_EXIT_EXTENDED) is the number of failed cases, capped. A
 * last part times KWS-shaped layers (SysTick at the emulated 32 MHz clock; QEMU's -icount makes
 * a tick 31.25 instructions). */
#include <stdint.h>
#include <string.h>

#include "te_fixedpoint.h"
#include "te_kernels_mve.h"
#include "tinyeff_kernels.h"
#include "inplace_rules.h"

#ifndef TE_CASES
#define TE_CASES 3000
#endif

/* ---- startup: vector table, reset, semihosting */

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top;
int main(void);

static int semihost(int op, void *arg) {
  register int r0 __asm__("r0") = op;
  register void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static void put(const char *s) { semihost(0x04 /* SYS_WRITE0 */, (void *)s); }

static void put_int(int64_t v) {
  char buf[24], *p = buf + sizeof buf - 1;
  const int neg = v < 0;
  uint64_t u = neg ? (uint64_t)-v : (uint64_t)v;
  *p = 0;
  do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
  if (neg) *--p = '-';
  put(p);
}

static void finish(int status) {
  uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
  semihost(0x20 /* SYS_EXIT_EXTENDED */, block);
  for (;;) {}
}

void Fault_Handler(void) {
  put("fault\n");
  finish(99);
}

__attribute__((noreturn)) void Reset_Handler(void) {
  memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
  memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20; /* CPACR: CP10, CP11 (FPU and MVE) */
  __asm__ volatile("dsb\nisb");
  finish(main());
  for (;;) {}
}

__attribute__((section(".vectors"), used)) void (*const vectors[16])(void) = {
    (void (*)(void))(&_stack_top), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)

/* ---- random parameters (xorshift32, seeded per case) */

static uint32_t rng_state;

static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

static int32_t uniform(int32_t lo, int32_t hi) { return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1)); }

/* int8 with the extremes far more often than uniform */
static int8_t rnd8(void) {
  const uint32_t r = rnd() % 16;
  return r == 0 ? -128 : r == 1 ? 127 : (int8_t)rnd();
}

static int32_t pick(const int32_t *set, int32_t n) { return set[rnd() % (uint32_t)n]; }

static const int32_t channel_set[] = {1, 3, 5, 7, 16, 17, 33, 64, 2, 8, 15, 31, 48};

/* ---- buffers: every region has guard bytes after it (and the in-place region before it too) */

enum { GUARD = 32, BIG = 40000 };
static int8_t filter_buf[110000];
static int32_t bias_buf[128], mult_buf[128];
static int8_t shift_buf[128];
static int8_t in_buf[BIG + GUARD], ref_buf[BIG + GUARD], out_buf[BIG + GUARD];
static int8_t place_buf[2 * BIG + 2 * GUARD];
static int8_t work_buf[4 * 5 * 5 * 70 + GUARD], scratch_buf[BIG + GUARD];
static const int8_t GUARD_BYTE = 0x5a;

static void guard(int8_t *p, int32_t n) { memset(p, GUARD_BYTE, (size_t)n); }

static int guarded(const int8_t *p, int32_t n) {
  for (int32_t i = 0; i < n; ++i)
    if (p[i] != GUARD_BYTE) return 0;
  return 1;
}

/* ---- one case */

static int failures;
static int32_t ran_conv, ran_pointwise, ran_depthwise, ran_fc, ran_in_place; /* coverage, for the log */

static void fail(const char *what, int32_t kase) {
  put("FAIL case ");
  put_int(kase);
  put(": ");
  put(what);
  put("\n");
  ++failures;
}

/* Per output channel: bias, multiplier in [2^30, 2^31) or 0, and shift: all right shifts as
 * most layers have, typical ones, or any in [-31, 4] (kernels special-case "no left shift"). */
static void random_output(te_conv_t *p) {
  const uint32_t shifts = rnd() % 3;
  for (int32_t o = 0; o < p->out_c; ++o) {
    bias_buf[o] = uniform(-(1 << 20), 1 << 20);
    mult_buf[o] = rnd() % 16 == 0 ? 0 : (int32_t)((1u << 30) + (rnd() >> 2));
    shift_buf[o] = (int8_t)(shifts == 0 ? uniform(-31, 0) : shifts == 1 ? uniform(-12, 1) : uniform(-31, 4));
  }
  p->out_offset = rnd8();
  p->act_min = rnd() % 2 ? -128 : uniform(-128, 0);
  p->act_max = rnd() % 2 ? 127 : uniform(p->act_min, 127);
  p->bias = bias_buf;
  p->mult = mult_buf;
  p->shift = shift_buf;
}

/* One spatial dimension: input size, kernel, stride, dilation; padding (random or none) and the
 * output size that follows. 0 when the window does not fit. */
static int32_t random_dim(int32_t in, int32_t k, int32_t stride, int32_t dil, int32_t *pad) {
  const int32_t span = (k - 1) * dil + 1;
  const int32_t before = rnd() % 3 ? uniform(0, span - 1) : 0, after = uniform(0, span - 1);
  *pad = before;
  const int32_t padded = in + before + after;
  return padded < span ? 0 : (padded - span) / stride + 1;
}

/* The shape of a failing case, for the log. */
static void describe(const te_conv_t *p, int32_t delta) {
  const int32_t v[] = {p->in_h, p->in_w, p->in_c, p->out_h, p->out_w, p->out_c, p->k_h, p->k_w, p->stride_h,
                       p->stride_w, p->dil_h, p->dil_w, p->pad_top, p->pad_left, delta};
  put("  in_h in_w in_c out_h out_w out_c k_h k_w stride_h stride_w dil_h dil_w pad_top pad_left delta:");
  for (unsigned i = 0; i < sizeof v / sizeof v[0]; ++i) {
    put(" ");
    put_int(v[i]);
  }
  put("\n");
}

typedef void conv_fn(const te_conv_t *, const int8_t *, int8_t *, int8_t *);

/* The MVE kernel in place: the input at BASE in place_buf, the output at BASE + DELTA. */
static void run_in_place(conv_fn *kernel, te_conv_t *p, int32_t delta, int32_t scratch_bytes, int32_t work_bytes,
                         int32_t kase) {
  const int32_t in_size = p->in_h * p->in_w * p->in_c, out_size = p->out_h * p->out_w * p->out_c;
  const int32_t lo = TE_MIN(0, delta), hi = TE_MAX(in_size, delta + out_size);
  int8_t *base = place_buf + GUARD - lo; /* input start */
  ++ran_in_place;
  guard(place_buf, (int32_t)sizeof place_buf);
  memcpy(base, in_buf, (size_t)in_size);
  guard(scratch_buf, scratch_bytes + GUARD);
  kernel(p, base, base + delta, scratch_buf);
  if (memcmp(base + delta, ref_buf, (size_t)out_size) != 0) {
    fail("in place output differs", kase);
    describe(p, delta);
  }
  /* the kernel writes its output only: input bytes it does not cover keep their values */
  int intact = guarded(place_buf, GUARD) && guarded(base + hi, GUARD);
  for (int32_t i = lo; i < hi; ++i) {
    if (i >= delta && i < delta + out_size) continue;
    intact &= base[i] == (i >= 0 && i < in_size ? in_buf[i] : GUARD_BYTE);
  }
  if (!intact) fail("in place write outside the output", kase);
  if (!guarded(scratch_buf + scratch_bytes, GUARD)) fail("scratch overrun", kase);
  if (!guarded(work_buf + work_bytes, GUARD)) fail("work overrun (in place)", kase);
}

static void conv_case(int32_t kase, int depthwise) {
  te_conv_t p;
  memset(&p, 0, sizeof p);
  int32_t macs;
  do {
    p.in_c = rnd() % 3 ? pick(channel_set, 13) : uniform(1, 70);
    p.out_c = depthwise ? p.in_c : (rnd() % 3 ? pick(channel_set, 13) : uniform(1, 70));
    p.k_h = uniform(1, 5), p.k_w = uniform(1, 5);
    p.stride_h = uniform(1, 3), p.stride_w = uniform(1, 3);
    p.dil_h = uniform(1, 2), p.dil_w = uniform(1, 2);
    p.in_h = uniform(1, 9), p.in_w = uniform(1, 9);
    const int pointwise = !depthwise && rnd() % 3 == 0;
    if (pointwise) {
      p.k_h = p.k_w = p.stride_h = p.stride_w = 1;
      p.in_h = uniform(1, 6), p.in_w = uniform(1, 11); /* pixel counts around the group of 4 */
    }
    p.out_h = random_dim(p.in_h, p.k_h, p.stride_h, p.dil_h, &p.pad_top);
    p.out_w = random_dim(p.in_w, p.k_w, p.stride_w, p.dil_w, &p.pad_left);
    if (pointwise) p.pad_top = p.pad_left = 0, p.out_h = p.in_h, p.out_w = p.in_w;
    macs = p.out_h * p.out_w * p.out_c * p.k_h * p.k_w * (depthwise ? 1 : p.in_c);
  } while (p.out_h < 1 || p.out_w < 1 || macs > 60000 || p.out_h * p.out_w * p.out_c > BIG);
  p.depth_mult = 1;
  p.in_offset = -rnd8();
  const int32_t in_size = p.in_h * p.in_w * p.in_c, out_size = p.out_h * p.out_w * p.out_c;
  const int32_t filter_size = p.k_h * p.k_w * p.in_c * (depthwise ? 1 : p.out_c);
  for (int32_t i = 0; i < filter_size; ++i) filter_buf[i] = rnd8();
  for (int32_t i = 0; i < in_size; ++i) in_buf[i] = rnd8();
  p.filter = filter_buf;
  random_output(&p);
  const int pointwise = !depthwise && p.k_h == 1 && p.k_w == 1 && p.stride_h == 1 && p.stride_w == 1 &&
                        p.pad_top == 0 && p.pad_left == 0;
  conv_fn *kernel = depthwise ? te_depthwise_mve : pointwise ? te_pointwise_mve : te_conv2d_mve;
  ++*(depthwise ? &ran_depthwise : pointwise ? &ran_pointwise : &ran_conv);
  const int32_t work_bytes = depthwise || pointwise ? 0 : 4 * p.k_h * p.k_w * p.in_c;
  p.work = work_bytes ? work_buf : NULL;

  guard(ref_buf, out_size + GUARD);
  if (depthwise)
    te_depthwise_conv2d(&p, in_buf, ref_buf, NULL);
  else
    te_conv2d(&p, in_buf, ref_buf, NULL);

  guard(out_buf, out_size + GUARD);
  guard(work_buf, (int32_t)sizeof work_buf);
  kernel(&p, in_buf, out_buf, NULL);
  if (memcmp(out_buf, ref_buf, (size_t)out_size) != 0) {
    fail("output differs", kase);
    describe(&p, 0);
  }
  if (!guarded(out_buf + out_size, GUARD)) fail("output overrun", kase);
  if (!guarded(work_buf + work_bytes, GUARD)) fail("work overrun", kase);

  /* in place, as the plan would put it: the output over the start of the input when it is not
   * larger, else over its end; or another offset the plan's walk accepts (ring kernels only) */
  const int32_t aligned = out_size <= in_size ? 0 : in_size - out_size;
  if (pointwise) {
    run_in_place(kernel, &p, aligned, 4 * p.out_c, work_bytes, kase);
  } else {
    const int32_t span = (p.k_h - 1) * p.dil_h + 1, ring_bytes = span * p.in_w * p.in_c;
    const int32_t other = uniform(-out_size, in_size);
    if (rows_safe(&p, aligned)) run_in_place(kernel, &p, aligned, ring_bytes, work_bytes, kase);
    if (rows_safe(&p, other)) run_in_place(kernel, &p, other, ring_bytes, work_bytes, kase);
  }
}

static void fc_case(int32_t kase) {
  te_fc_t p;
  memset(&p, 0, sizeof p);
  p.rows = uniform(1, 6);
  p.in_depth = rnd() % 2 ? pick(channel_set, 13) : uniform(1, 300);
  p.out_depth = rnd() % 2 ? pick(channel_set, 13) : uniform(1, 64);
  p.per_channel = (int32_t)(rnd() % 2);
  for (int32_t i = 0; i < p.in_depth * p.out_depth; ++i) filter_buf[i] = rnd8();
  for (int32_t i = 0; i < p.rows * p.in_depth; ++i) in_buf[i] = rnd8();
  te_conv_t q;
  q.out_c = p.out_depth;
  random_output(&q);
  p.out_offset = q.out_offset, p.act_min = q.act_min, p.act_max = q.act_max;
  p.filter = filter_buf, p.bias = bias_buf, p.mult = mult_buf, p.shift = shift_buf;
  const int32_t out_size = p.rows * p.out_depth;
  guard(ref_buf, out_size + GUARD);
  guard(out_buf, out_size + GUARD);
  ++ran_fc;
  te_fully_connected(&p, in_buf, ref_buf);
  te_fully_connected_mve(&p, in_buf, out_buf);
  if (memcmp(out_buf, ref_buf, (size_t)out_size) != 0) fail("fully connected output differs", kase);
  if (!guarded(out_buf + out_size, GUARD)) fail("fully connected output overrun", kase);
}

/* te_mve_requant against te_requant on accumulators from all over int32 and every shift. */
static void requant_cases(void) {
  int32_t acc[4], mult[4], shift[4], got[4];
  for (int32_t i = 0; i < 20000; ++i) {
    for (int k = 0; k < 4; ++k) {
      const uint32_t r = rnd() % 8;
      acc[k] = r == 0 ? INT32_MIN : r == 1 ? INT32_MAX : r == 2 ? (int32_t)(rnd() % 4096) - 2048
               : r == 3 ? (int32_t)(rnd() % 64) * (1 << (rnd() % 26)) - (1 << 25) : (int32_t)rnd();
      mult[k] = rnd() % 4 == 0 ? (int32_t)rnd() : (int32_t)((1u << 30) + (rnd() >> 2));
      if (mult[k] == INT32_MIN) mult[k] = INT32_MAX;
      shift[k] = uniform(-31, 31);
    }
    vst1q_s32(got, te_mve_requant(vld1q_s32(acc), vld1q_s32(mult), vld1q_s32(shift)));
    for (int k = 0; k < 4; ++k) {
      if (got[k] != te_requant(acc[k], mult[k], shift[k])) {
        put("FAIL requant acc=");
        put_int(acc[k]);
        put(" mult=");
        put_int(mult[k]);
        put(" shift=");
        put_int(shift[k]);
        put("\n");
        ++failures;
        return;
      }
    }
  }
}

/* ---- KWS-shaped layers, timed */

static uint32_t ticks_of(conv_fn *kernel, const te_conv_t *p, int8_t *out, int8_t *scratch) {
  SYST_CVR = 0;
  const uint32_t start = SYST_CVR;
  kernel(p, in_buf, out, scratch);
  const uint32_t end = SYST_CVR;
  return (start - end) & 0xFFFFFFu; /* counts down; a kernel takes well under one wrap */
}

/* Time the generic and the MVE kernel on one layer, and compare their outputs too. */
static void report(const char *name, conv_fn *generic, conv_fn *mve, const te_conv_t *p, int8_t *scratch) {
  const uint32_t slow = ticks_of(generic, p, ref_buf, scratch), fast = ticks_of(mve, p, out_buf, scratch);
  if (memcmp(ref_buf, out_buf, (size_t)(p->out_h * p->out_w * p->out_c)) != 0) fail(name, -1);
  const int32_t macs = p->out_h * p->out_w * p->out_c * p->k_h * p->k_w * (mve == te_depthwise_mve ? 1 : p->in_c);
  put("bench ");
  put(name);
  put(": generic ");
  put_int((int64_t)slow * 125 / 4);
  put(" mve ");
  put_int((int64_t)fast * 125 / 4);
  put(" instructions (");
  put_int(macs);
  put(" MACs)\n");
}

static void bench(void) {
  SYST_RVR = 0xFFFFFFu;
  SYST_CSR = 5; /* processor clock, no interrupt */
  te_conv_t p;
  memset(&p, 0, sizeof p);
  for (int32_t i = 0; i < (int32_t)sizeof filter_buf; ++i) filter_buf[i] = (int8_t)rnd();
  for (int32_t i = 0; i < BIG; ++i) in_buf[i] = (int8_t)rnd();
  p.filter = filter_buf;
  p.out_c = 64;
  random_output(&p);
  for (int32_t o = 0; o < 64; ++o) shift_buf[o] = -7; /* the usual: right shifts only */
  p.stride_h = p.stride_w = p.dil_h = p.dil_w = p.depth_mult = 1;
  p.in_offset = 5, p.out_offset = -3, p.act_min = -128, p.act_max = 127;

  /* stem: 49x10x1, 10x4 stride 2, padding as TFLite's SAME gives -> 25x5x64 */
  p.in_h = 49, p.in_w = 10, p.in_c = 1, p.out_h = 25, p.out_w = 5, p.out_c = 64;
  p.k_h = 10, p.k_w = 4, p.stride_h = p.stride_w = 2, p.pad_top = 4, p.pad_left = 1;
  p.work = work_buf;
  report("stem conv 10x4/2", te_conv2d, te_conv2d_mve, &p, NULL);
  /* depthwise 3x3 SAME on 25x5x64 */
  p.in_h = 25, p.in_w = 5, p.in_c = 64, p.k_h = p.k_w = 3, p.stride_h = p.stride_w = 1, p.pad_top = p.pad_left = 1;
  p.work = NULL;
  report("depthwise 3x3", te_depthwise_conv2d, te_depthwise_mve, &p, NULL);
  report("depthwise 3x3 with a ring", te_depthwise_conv2d, te_depthwise_mve, &p, scratch_buf);
  /* pointwise 64 -> 64 on 125 pixels */
  p.k_h = p.k_w = 1, p.pad_top = p.pad_left = 0;
  report("pointwise 64x64", te_conv2d, te_pointwise_mve, &p, NULL);
  report("pointwise 64x64 with scratch", te_conv2d, te_pointwise_mve, &p, scratch_buf);
}

int main(void) {
  requant_cases();
  for (int32_t kase = 0; kase < TE_CASES; ++kase) {
    rng_state = 0x9e3779b9u ^ (uint32_t)(kase * 2654435761u);
    if (!rng_state) rng_state = 1;
    const int32_t kind = kase % 5;
    if (kind == 4) fc_case(kase);
    else conv_case(kase, kind == 3);
  }
  const int32_t ran[] = {ran_conv, ran_pointwise, ran_depthwise, ran_fc, ran_in_place};
  put("ran conv, pointwise, depthwise, fully connected, in place:");
  for (int i = 0; i < 5; ++i) {
    put(" ");
    put_int(ran[i]);
  }
  put("\n");
  bench();
  if (failures == 0) put("ok\n");
  return failures > 90 ? 90 : failures;
}
