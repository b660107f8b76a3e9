/* The micro frontend of te_micro.h. Bit-exactness is the whole point, so every rounding below is deliberate:
 * where the reference truncates, wraps a 16-bit value or rounds a float, so does this code, and the comments
 * say which reference quirk a line keeps. The reference is TFLM's microfrontend library over kissfft as built
 * into pymicro-features; tests/test_micro_c.py checks the tables and every frame against that package. */
#include "te_micro.h"

#include <float.h>
#include <string.h>

#include "te_quantize.h"

/* 16 (TS 18661-3, GCC in GNU mode with AVX512-FP16) widens only _Float16; float still rounds to float. */
#if !defined(FLT_EVAL_METHOD) || (FLT_EVAL_METHOD != 0 && FLT_EVAL_METHOD != 16)
#error "te_micro's tables need float arithmetic rounded to float (FLT_EVAL_METHOD 0)"
#endif

#define WINDOW_BITS 12    /* the window's Q format */
#define WEIGHT_BITS 12    /* the mel weights' Q format */
#define SMOOTHING_BITS 10 /* noise estimates carry this many extra fraction bits */
#define NR_BITS 14        /* Q format of the noise reduction factors */
/* The reference turns its float settings into Q14 by truncation: 0.025 * 2^14 = 409.6, 0.06 * 2^14 = 983.04,
 * 0.05 * 2^14 = 819.2 (the same in float32). */
#define NR_EVEN_SMOOTHING 409u
#define NR_ODD_SMOOTHING 983u
#define NR_MIN_REMAINING 819u
/* kissfft's fixed point transform divides by its size, 2^9, and the square root of the Q12-weighted energy
 * leaves 6 fraction bits: the channels are 2^3 below the true magnitude, which the log's input and PCAN undo. */
#define CHANNEL_SCALE_BITS 3
/* PCAN: the noise estimate over 2^7 is the true noise; a channel times the Q21 gain over 2^6 is the SNR in Q12;
 * the output has 6 fraction bits. */
#define PCAN_NOISE_BITS (SMOOTHING_BITS - CHANNEL_SCALE_BITS)
#define PCAN_GAIN_BITS 21
#define PCAN_SNR_BITS 12
#define PCAN_SNR_SHIFT (PCAN_GAIN_BITS - CHANNEL_SCALE_BITS - PCAN_SNR_BITS)
#define PCAN_OUTPUT_BITS 6
#define LOG_SCALE_SHIFT 6      /* the log's output is ln(x) * 2^6 */
#define LOG_LN2_Q16 45426u     /* 65536 ln 2 = 45426.09, rounded */
#define LOG_SEGMENT_BITS 7     /* 128 straight pieces per octave */

/* ---- Exact integer helpers ------------------------------------------------------------------------------ */

/* Two's complement wrap to 16 bits, as storing an int into the reference's int16 variables does. Written out
 * because C leaves the narrowing conversion to the implementation. */
static inline int16_t wrap16(int32_t x) {
  return (int16_t)((int32_t)(((uint32_t)x & 0xFFFFu) ^ 0x8000u) - 0x8000);
}

/* x >> n rounding towards minus infinity even for negative x (what the reference's compilers do; C leaves it
 * to the implementation). Compiles to a single arithmetic shift. */
static inline int32_t asr(int32_t x, int n) { return x < 0 ? ~(~x >> n) : x >> n; }

/* Number of significant bits: 0 for 0, 32 for 2^31 and above. */
static inline int bit_length(uint32_t x) {
#if defined(__GNUC__)
  return x ? 32 - __builtin_clz(x) : 0;
#else
  int n = 0;
  while (x) {
    ++n;
    x >>= 1;
  }
  return n;
#endif
}

/* ---- Init-time arithmetic (no libm) ----------------------------------------------------------------------
 * The double helpers are good to a few units in the last place of a double, far closer than any table entry is
 * to a rounding boundary: the window and the PCAN gains come out as from the host's cosf and powf (correctly
 * rounded, or near enough that no entry changes), the twiddles as from kissfft's double cos. The test checks
 * every table against ones built with the host's libm. */

/* a * b rounded to float and kept out of any fused multiply-add: the reference rounds the product. */
static float mul_f(float a, float b) {
  volatile float p = a * b;
  return p;
}

static double cos_d(double x) { /* 0 <= x <= 2 pi */
  static const double half_pi_hi = 1.5707963267948966, half_pi_lo = 6.123233995736766e-17;
  const int quadrant = (int)(x / half_pi_hi + 0.5);
  const double r = (x - quadrant * half_pi_hi) - quadrant * half_pi_lo; /* |r| <= pi/4 */
  const double r2 = r * r;
  double c = 1.0, s = r, cterm = 1.0, sterm = r;
  for (int k = 1; k <= 11; ++k) { /* (pi/4)^22 / 22! < 1e-23 */
    cterm *= -r2 / ((2 * k - 1) * (2 * k));
    sterm *= -r2 / ((2 * k) * (2 * k + 1));
    c += cterm;
    s += sterm;
  }
  switch (quadrant & 3) {
    case 0: return c;
    case 1: return -s;
    case 2: return -c;
    default: return s;
  }
}

static const double ln2_d = 0.6931471805599453;

static double log_d(double x) { /* x > 0 */
  int e = 0;
  while (x >= 2.0) { /* exact: powers of two */
    x *= 0.5;
    ++e;
  }
  while (x < 1.0) {
    x *= 2.0;
    --e;
  }
  if (x > 1.4142135623730951) {
    x *= 0.5;
    ++e;
  }
  /* ln x = 2 atanh(s), |s| <= 0.172, so s^2 <= 0.0295 and 14 odd terms reach 1e-22 */
  const double s = (x - 1.0) / (x + 1.0), s2 = s * s;
  double term = s, sum = 0.0;
  for (int k = 1; k < 29; k += 2) {
    sum += term / k;
    term *= s2;
  }
  return 2.0 * sum + e * ln2_d;
}

static double exp_d(double x) { /* |x| < 700 */
  static const double ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10; /* n * ln2_hi is exact */
  const double q = x / ln2_d;
  const int n = (int)(q < 0 ? q - 0.5 : q + 0.5);
  const double r = (x - n * ln2_hi) - n * ln2_lo; /* |r| <= 0.35 */
  double term = 1.0, sum = 1.0;
  for (int k = 1; k <= 22; ++k) {
    term *= r / k;
    sum += term;
  }
  for (int i = 0; i < n; ++i) sum *= 2.0;
  for (int i = 0; i > n; --i) sum *= 0.5;
  return sum;
}

static uint32_t float_bits(float f) {
  union { float f; uint32_t u; } v;
  v.f = f;
  return v.u;
}

static float bits_float(uint32_t u) {
  union { float f; uint32_t u; } v;
  v.u = u;
  return v.f;
}

/* log(1 + x) exactly as the fdlibm float log1p computes it, step by step in float: pymicro-features calls the
 * host's log1pf for its mel scale, and glibc (2.36 where the tests ran) and newlib ship that algorithm, which is
 * not correctly rounded; two of the filterbank's weights depend on its last bit. Domain: 2^-29 <= x < 2^52,
 * which holds for the frequencies / 700 used here. */
static float log1p_f(float x) {
  static const float ln2_hi = 0x1.62e3p-1f, ln2_lo = 0x1.2fefa2p-17f;
  static const float lp[7] = {0x1.555556p-1f, 0x1.99999ap-2f, 0x1.24924ap-2f, 0x1.c71c52p-3f,
                              0x1.74664ap-3f, 0x1.39a09ep-3f, 0x1.2f112ep-3f};
  const uint32_t hx = float_bits(x);
  int k = 0;
  float f = x, c = 0.0f;
  uint32_t hu = 1; /* nonzero: f is not a tiny leftover */
  if (hx >= 0x3ed413d7u) { /* x >= sqrt(2) - 1: reduce 1 + x = 2^k (1 + f), sqrt(2)/2 <= 1 + f < sqrt(2) */
    const float u = 1.0f + x;
    hu = float_bits(u);
    k = (int)(hu >> 23) - 127;
    /* what rounding 1 + x lost, relative to u */
    c = k > 0 ? 1.0f - (u - x) : x - (u - 1.0f);
    c /= u;
    hu &= 0x007FFFFFu;
    if (hu < 0x3504F7u) {
      f = bits_float(hu | 0x3F800000u) - 1.0f;
    } else {
      ++k;
      f = bits_float(hu | 0x3F000000u) - 1.0f;
      hu = (0x00800000u - hu) >> 2;
    }
  }
  const float half_f2 = mul_f(mul_f(0.5f, f), f);
  const float fk = (float)k;
  if (hu == 0) { /* 1 + x is at most a rounding away from a power of two (so k > 0): two terms do */
    if (f == 0.0f) return mul_f(fk, ln2_hi) + (c + mul_f(fk, ln2_lo));
    const float r = mul_f(half_f2, 1.0f - mul_f(0x1.555556p-1f, f));
    return mul_f(fk, ln2_hi) - ((r - (mul_f(fk, ln2_lo) + c)) - f);
  }
  const float s = f / (2.0f + f), z = mul_f(s, s);
  float p = lp[6];
  for (int i = 5; i >= 0; --i) p = lp[i] + mul_f(z, p);
  const float r = mul_f(z, p);
  const float tail = mul_f(s, half_f2 + r);
  if (k == 0) return f - (half_f2 - tail);
  return mul_f(fk, ln2_hi) - ((half_f2 - (tail + (mul_f(fk, ln2_lo) + c))) - f);
}

static float mel_f(float hz) { return mul_f(1127.0f, log1p_f(hz / 700.0f)); }

/* ---- Tables ------------------------------------------------------------------------------------------ */

static void build_window(te_micro_t *st) {
  /* Hann at half-sample offsets, 0.5 - 0.5 cos(2 pi (i + 0.5) / 480), in float from a float pi as the reference */
  const float step = ((float)3.14159265358979323846 * 2.0f) / (float)TE_MICRO_WINDOW_SAMPLES;
  for (int i = 0; i < TE_MICRO_WINDOW_SAMPLES; ++i) {
    const float phase = mul_f(step, (float)i + 0.5f);
    const float w = 0.5f - mul_f(0.5f, (float)cos_d((double)phase));
    st->window_q12[i] = (int16_t)(mul_f(w, (float)(1 << WINDOW_BITS)) + 0.5f); /* >= 0: truncation floors */
  }
}

static int16_t round_q15(double v) { /* kissfft's floor(0.5 + 32767 v) */
  const double t = 0.5 + 32767.0 * v;
  const int32_t i = (int32_t)t;
  return (int16_t)(i > t ? i - 1 : i);
}

static void build_twiddles(te_micro_t *st) {
  for (int j = 0; j <= TE_MICRO_FFT_SIZE / 4; ++j)
    st->cos_q15[j] = round_q15(cos_d(j * (6.283185307179586 / TE_MICRO_FFT_SIZE)));
}

static void build_filterbank(te_micro_t *st) {
  const float lower_hz = 125.0f, upper_hz = 7500.0f;
  const float hz_per_bin = (0.5f * TE_MICRO_SAMPLE_RATE) / ((float)TE_MICRO_BINS - 1.0f); /* 31.25 */
  const float mel_low = mel_f(lower_hz);
  /* The channel centres split [mel(125), mel(7500)] into 41 equal steps; the last is the upper edge. */
  const float mel_step = (mel_f(upper_hz) - mel_low) / (float)(TE_MICRO_CHANNELS + 1);
  float below = mel_low; /* each band runs from one channel centre (this) up to the next */
  int bin = (int)(1.5f + lower_hz / hz_per_bin); /* first bin above 125 Hz; never DC */
  memset(st->rise_q12, 0, sizeof st->rise_q12);
  memset(st->fall_q12, 0, sizeof st->fall_q12);
  for (int band = 0; band <= TE_MICRO_CHANNELS; ++band) {
    const float centre = mel_low + mul_f(mel_step, (float)(band + 1));
    st->band_edge[band] = (uint16_t)bin;
    for (;; ++bin) {
      const float mel = mel_f((float)bin * hz_per_bin);
      if (!(mel <= centre)) break;
      /* share of the bin in the channel centred below it: 1 at that centre, 0 at this band's centre */
      const float w = (centre - mel) / (centre - below);
      st->fall_q12[bin] = (uint16_t)(mul_f(w, (float)(1 << WEIGHT_BITS)) + 0.5f);
      st->rise_q12[bin] = (uint16_t)(mul_f(1.0f - w, (float)(1 << WEIGHT_BITS)) + 0.5f);
    }
    below = centre;
  }
  st->band_edge[TE_MICRO_CHANNELS + 1] = (uint16_t)bin; /* 241 here, below Nyquist */
}

/* 2^21 (noise / 2^7 + 80)^-0.95, in float around a powf as the reference, saturated to int16 */
static int16_t pcan_gain_at(uint32_t noise) {
  const float x = (float)noise / (float)(1u << PCAN_NOISE_BITS);
  const float gain = mul_f((float)(1u << PCAN_GAIN_BITS), (float)exp_d(-0.95f * log_d((double)(x + 80.0f))));
  if (gain > 32767.0f) return 32767;
  return (int16_t)(gain + 0.5f);
}

static void build_pcan(te_micro_t *st) {
  st->pcan_gain_small[0] = pcan_gain_at(0);
  st->pcan_gain_small[1] = pcan_gain_at(1);
  for (int e = 2; e <= 32; ++e) {
    /* A quadratic through the octave's start, middle and end (the last octave stops at 2^32 - 1). */
    const uint32_t x0 = 1u << (e - 1);
    const int32_t y0 = pcan_gain_at(x0);
    const int32_t y1 = pcan_gain_at(x0 + (x0 >> 1));
    const int32_t y2 = pcan_gain_at(e == 32 ? x0 + (x0 - 1) : 2 * x0);
    const int32_t a1 = 4 * (y1 - y0) - (y2 - y0);
    int16_t *seg = st->pcan_gain_seg[e - 2];
    seg[0] = (int16_t)y0;
    seg[1] = wrap16(a1);
    seg[2] = wrap16((y2 - y0) - a1);
  }
}

static void build_log(te_micro_t *st) {
  for (int i = 0; i <= 1 << LOG_SEGMENT_BITS; ++i) {
    const double x = (double)i / (1 << LOG_SEGMENT_BITS);
    const double miss = (log_d(1.0 + x) / ln2_d - x) * 65536.0; /* >= 0 */
    st->log2_corr_q16[i] = (uint16_t)(miss + 0.5);
  }
}

void te_micro_init(te_micro_t *st) {
  build_window(st);
  build_twiddles(st);
  build_filterbank(st);
  build_pcan(st);
  build_log(st);
  te_micro_reset(st);
}

void te_micro_reset(te_micro_t *st) {
  memset(st->history, 0, sizeof st->history);
  st->held = 0;
  memset(st->noise, 0, sizeof st->noise);
  memset(st->spectrum, 0, sizeof st->spectrum);
}

/* ---- FFT: kissfft's Q15 arithmetic, 512 real points as 256 complex ones ------------------------------------ */

/* kissfft's Q15 rounding of a product: add half, shift, keep 16 bits. */
static inline int16_t q15(int32_t product) { return wrap16(asr(product + (1 << 14), 15)); }

/* kissfft scales by 1/4 (1/2) before each radix-4 (real) step to avoid overflow, multiplying by 32767/4 = 8191
 * (32767/2 = 16383) in Q15, which is not quite a shift. */
static inline te_micro_cpx scale_by(te_micro_cpx a, int32_t q15_factor) {
  te_micro_cpx r;
  r.re = q15(a.re * q15_factor);
  r.im = q15(a.im * q15_factor);
  return r;
}

static inline te_micro_cpx cmul(te_micro_cpx a, te_micro_cpx w) {
  te_micro_cpx r;
  r.re = q15(a.re * w.re - a.im * w.im);
  r.im = q15(a.re * w.im + a.im * w.re);
  return r;
}

/* exp(-2 pi i j / 512), 0 <= j < 512, as kissfft rounds it, from the quarter wave. kissfft's floor(0.5 + 32767 x)
 * is an odd function of x unless 32767 x is a half-integer, which no cosine here comes near (the test checks
 * every twiddle), so signs and quadrants are exact. */
static inline te_micro_cpx root512(const int16_t *q, unsigned j) {
  const unsigned r = j & 127u;
  const int16_t c = q[r], s = q[128 - r]; /* cos and sin of the angle within its quadrant */
  te_micro_cpx w;
  switch (j >> 7) {
    case 0: w.re = c; w.im = (int16_t)-s; break;
    case 1: w.re = (int16_t)-s; w.im = (int16_t)-c; break;
    case 2: w.re = (int16_t)-c; w.im = s; break;
    default: w.re = s; w.im = c; break;
  }
  return w;
}

/* One radix-4 decimation-in-time butterfly on x[0], x[m], x[2m], x[3m]. kissfft keeps every intermediate sum
 * in int16; sums and differences wrap the same whichever way they are grouped, so only the final values are
 * wrapped here. */
static void butterfly4(te_micro_cpx *x, unsigned m, te_micro_cpx w1, te_micro_cpx w2, te_micro_cpx w3) {
  const te_micro_cpx a0 = scale_by(x[0], 8191);
  const te_micro_cpx b1 = cmul(scale_by(x[m], 8191), w1);
  const te_micro_cpx b2 = cmul(scale_by(x[2 * m], 8191), w2);
  const te_micro_cpx b3 = cmul(scale_by(x[3 * m], 8191), w3);
  const int32_t even_re = a0.re + b2.re, even_im = a0.im + b2.im; /* x0 + x2 */
  const int32_t diff_re = a0.re - b2.re, diff_im = a0.im - b2.im; /* x0 - x2 */
  const int32_t odd_re = b1.re + b3.re, odd_im = b1.im + b3.im;   /* x1 + x3 */
  const int32_t rot_re = b1.re - b3.re, rot_im = b1.im - b3.im;   /* x1 - x3, to be turned by -i */
  x[0].re = wrap16(even_re + odd_re);
  x[0].im = wrap16(even_im + odd_im);
  x[2 * m].re = wrap16(even_re - odd_re);
  x[2 * m].im = wrap16(even_im - odd_im);
  x[m].re = wrap16(diff_re + rot_im);
  x[m].im = wrap16(diff_im - rot_re);
  x[3 * m].re = wrap16(diff_re - rot_im);
  x[3 * m].im = wrap16(diff_im + rot_re);
}

/* Where complex sample j goes so that the in-place stages below read kissfft's recursive order: its four base-4
 * digits reversed. */
static inline unsigned digit_reverse4(unsigned j) {
  return ((j & 3u) << 6) | ((j & 12u) << 2) | ((j >> 2) & 12u) | (j >> 6);
}

/* The 256-point complex FFT of x, given in digit-reversed order: four radix-4 stages, as 256 = 4^4. */
static void fft256(const int16_t *q, te_micro_cpx *x) {
  for (unsigned m = 1, stride = 64; m < 256; m *= 4, stride /= 4)
    for (unsigned group = 0; group < 256; group += 4 * m)
      for (unsigned k = 0; k < m; ++k)
        butterfly4(x + group + k, m, root512(q, 2 * k * stride), root512(q, 4 * k * stride),
                   root512(q, 6 * k * stride));
}

/* Bins 1..255 of the 512-point real FFT whose even/odd samples went in as the real/imaginary parts of the
 * complex FFT Z: X[k] and X[256-k] both come from Z[k] and Z[256-k], so the pass runs in place. DC and Nyquist
 * are left out: the filterbank starts well above both. */
static void split_real(const int16_t *q, te_micro_cpx *z) {
  for (unsigned k = 1; k <= 128; ++k) {
    const te_micro_cpx zk = scale_by(z[k], 16383);
    te_micro_cpx zc = z[256 - k]; /* conjugated, in int16 as kissfft does (-(-32768) stays -32768) */
    zc.im = wrap16(-zc.im);
    zc = scale_by(zc, 16383);
    te_micro_cpx sum, diff;
    sum.re = wrap16(zk.re + zc.re);
    sum.im = wrap16(zk.im + zc.im);
    diff.re = wrap16(zk.re - zc.re);
    diff.im = wrap16(zk.im - zc.im);
    const te_micro_cpx t = cmul(diff, root512(q, 128 + k)); /* exp(-i pi (k / 256 + 1/2)) */
    z[k].re = wrap16(asr(sum.re + t.re, 1));
    z[k].im = wrap16(asr(sum.im + t.im, 1));
    /* at k = 128 this overwrites z[128] just written, as kissfft does */
    z[256 - k].re = wrap16(asr(sum.re - t.re, 1));
    z[256 - k].im = wrap16(asr(t.im - sum.im, 1));
  }
}

/* ---- Per channel stages --------------------------------------------------------------------------------- */

/* sqrt(v) rounded to nearest, but the reference never rounds up past 0xFFFF for v < 2^32 nor past 0xFFFFFFFF:
 * digit by digit, floor first. */
static uint32_t sqrt_round(uint64_t v) {
  uint64_t rem = v, root = 0, bit = 1;
  while (bit <= v >> 2) bit <<= 2; /* the largest power of 4 <= v */
  for (; bit; bit >>= 2) {
    if (rem >= root + bit) {
      rem -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
  }
  /* now root = floor(sqrt(v)) and rem = v - root^2; v >= (root + 0.5)^2 iff rem > root */
  const uint64_t cap = (v >> 32) ? 0xFFFFFFFFu : 0xFFFFu;
  if (rem > root && root != cap) ++root;
  return (uint32_t)root;
}

static uint32_t noise_reduce(uint32_t *estimate, unsigned channel, uint32_t signal) {
  const uint32_t smoothing = (channel & 1u) ? NR_ODD_SMOOTHING : NR_EVEN_SMOOTHING;
  const uint32_t scaled = signal << SMOOTHING_BITS; /* wraps above 2^22, as the reference */
  uint32_t est = (uint32_t)(((uint64_t)scaled * smoothing +
                             (uint64_t)*estimate * ((1u << NR_BITS) - smoothing)) >> NR_BITS);
  *estimate = est;
  if (est > scaled) est = scaled;
  const uint32_t kept = (uint32_t)(((uint64_t)signal * NR_MIN_REMAINING) >> NR_BITS);
  const uint32_t cleaned = (scaled - est) >> SMOOTHING_BITS;
  return cleaned > kept ? cleaned : kept;
}

static int16_t pcan_gain(const te_micro_t *st, uint32_t noise) {
  if (noise < 2) return st->pcan_gain_small[noise];
  const int octave = bit_length(noise); /* 2..32 */
  const int16_t *seg = st->pcan_gain_seg[octave - 2];
  /* position in the octave, 10 bits */
  const int32_t pos = (int32_t)((octave < 11 ? noise << (11 - octave) : noise >> (octave - 11)) & 0x3FFu);
  int32_t y = asr(seg[2] * pos, 5) + seg[1] * 32;
  y = asr(y * pos + (1 << 14), 15) + seg[0];
  return wrap16(y);
}

static uint32_t pcan(const te_micro_t *st, uint32_t noise, uint32_t signal) {
  const uint32_t gain = (uint32_t)(int32_t)pcan_gain(st, noise);
  const uint32_t snr = (uint32_t)(((uint64_t)signal * gain) >> PCAN_SNR_SHIFT); /* Q12 */
  /* Compress: quadratic below an SNR of 2, linear (minus 1) above, output in Q6. */
  if (snr < (2u << PCAN_SNR_BITS)) return (snr * snr) >> (2 + 2 * PCAN_SNR_BITS - PCAN_OUTPUT_BITS);
  return (snr >> (PCAN_SNR_BITS - PCAN_OUTPUT_BITS)) - (1u << PCAN_OUTPUT_BITS);
}

/* 64 ln(x) for x >= 2 through a Q16 log2 whose fraction is linear between 129 corrected points; at most
 * 64 ln(2^32) < 1420, so the reference's clamp to 0xFFFF never acts. */
static uint16_t log_scaled(const te_micro_t *st, uint32_t x) {
  const int whole = bit_length(x) - 1;
  int32_t frac = (int32_t)(x - (1u << whole)); /* < 2^31 */
  frac = whole < 16 ? frac << (16 - whole) : frac >> (whole - 16); /* Q16 */
  const int seg = frac >> (16 - LOG_SEGMENT_BITS);
  const int32_t c0 = st->log2_corr_q16[seg], c1 = st->log2_corr_q16[seg + 1];
  const int32_t within = frac - (seg << (16 - LOG_SEGMENT_BITS));
  const uint32_t log2_q16 = ((uint32_t)whole << 16) + (uint32_t)(frac + c0 + asr((c1 - c0) * within, 16));
  const uint32_t ln_q16 = (uint32_t)(((uint64_t)LOG_LN2_Q16 * log2_q16 + 32768u) >> 16);
  return (uint16_t)(((ln_q16 << LOG_SCALE_SHIFT) + 32768u) >> 16);
}

/* ---- Frames ---------------------------------------------------------------------------------------------- */

/* Windowed sample i, raising *peak to its magnitude as the reference tracks it: in int16, where |-32768| wraps
 * to itself and so never counts. */
static inline int16_t windowed(const te_micro_t *st, unsigned i, int32_t *peak) {
  const int32_t v = asr(st->history[i] * st->window_q12[i], WINDOW_BITS); /* window <= 4096: fits in int16 */
  const int32_t magnitude = v < 0 ? -v : v;
  if (magnitude > *peak && v != -32768) *peak = magnitude;
  return (int16_t)v;
}

int te_micro_hop(te_micro_t *st, const int16_t *samples, uint16_t *out) {
  memmove(st->history, st->history + TE_MICRO_HOP_SAMPLES,
          sizeof(int16_t) * (TE_MICRO_WINDOW_SAMPLES - TE_MICRO_HOP_SAMPLES));
  memcpy(st->history + TE_MICRO_WINDOW_SAMPLES - TE_MICRO_HOP_SAMPLES, samples,
         sizeof(int16_t) * TE_MICRO_HOP_SAMPLES);
  if (st->held < TE_MICRO_WINDOW_SAMPLES) st->held += TE_MICRO_HOP_SAMPLES;
  if (st->held < TE_MICRO_WINDOW_SAMPLES) return 0;

  /* Window, straight into the FFT's input order, sample pairs as complex values; zeros past the window. */
  te_micro_cpx *z = st->spectrum;
  int32_t peak = 0;
  for (unsigned j = 0; j < TE_MICRO_FFT_SIZE / 2; ++j) {
    te_micro_cpx pair = {0, 0};
    if (j < TE_MICRO_WINDOW_SAMPLES / 2) {
      pair.re = windowed(st, 2 * j, &peak);
      pair.im = windowed(st, 2 * j + 1, &peak);
    }
    z[digit_reverse4(j)] = pair;
  }
  /* Scale the peak up to bit 14 so the Q15 FFT keeps as many bits as it can; undone after the square root.
   * The shift is done in 16 bits, where the uncounted -32768 wraps. */
  const int shift = 15 - bit_length((uint32_t)peak);
  for (unsigned j = 0; j < TE_MICRO_FFT_SIZE / 2; ++j) {
    z[j].re = wrap16((int32_t)((uint32_t)(uint16_t)z[j].re << shift));
    z[j].im = wrap16((int32_t)((uint32_t)(uint16_t)z[j].im << shift));
  }
  fft256(st->cos_q15, z);
  split_real(st->cos_q15, z);

  /* Each band's bins add their energy to the channel of the band (rising side) and to the one below (falling
   * side); a channel is complete once the band above it is summed. Sums are modulo 2^64, as the reference's. */
  uint64_t rising = 0;
  for (unsigned band = 0; band <= TE_MICRO_CHANNELS; ++band) {
    uint64_t falling = 0, next_rising = 0;
    for (unsigned bin = st->band_edge[band]; bin < st->band_edge[band + 1]; ++bin) {
      const int32_t re = z[bin].re, im = z[bin].im;
      const uint32_t power = (uint32_t)(re * re) + (uint32_t)(im * im);
      /* The reference keeps powers in int32 and widens them signed: 2^31, from (-32768, -32768), turns huge. */
      const uint64_t energy = (power & 0x80000000u) ? (uint64_t)power | 0xFFFFFFFF00000000u : power;
      falling += st->fall_q12[bin] * energy;
      next_rising += st->rise_q12[bin] * energy;
    }
    if (band > 0) {
      const unsigned c = band - 1;
      uint32_t v = sqrt_round(rising + falling) >> shift;
      v = noise_reduce(&st->noise[c], c, v);
      v = pcan(st, st->noise[c], v);
      v <<= CHANNEL_SCALE_BITS;
      out[c] = v > 1 ? log_scaled(st, v) : 0;
    }
    rising = next_rising;
  }
  return 1;
}

int te_micro_hop_int8(te_micro_t *st, const int16_t *samples, float scale, int32_t zero_point, int8_t *out) {
  uint16_t feat[TE_MICRO_CHANNELS];
  if (!te_micro_hop(st, samples, feat)) return 0;
  for (int c = 0; c < TE_MICRO_CHANNELS; ++c) out[c] = te_quantize_int8((float)feat[c] * 0.0390625f / scale, zero_point);
  return 1;
}

void te_micro_int8(te_micro_t *st, const int16_t *pcm, size_t n, int32_t clip_samples, float scale,
                   int32_t zero_point, int8_t *out) {
  te_micro_reset(st);
  if (clip_samples < TE_MICRO_WINDOW_SAMPLES) return;
  const int32_t frames = 1 + (clip_samples - TE_MICRO_WINDOW_SAMPLES) / TE_MICRO_HOP_SAMPLES;
  /* Frame f is complete after hop f + 2; every hop lies inside the clip. */
  const size_t avail = n < (size_t)clip_samples ? n : (size_t)clip_samples;
  for (int32_t hop = 0; hop < frames + 2; ++hop) {
    const size_t at = (size_t)hop * TE_MICRO_HOP_SAMPLES;
    int16_t padded[TE_MICRO_HOP_SAMPLES];
    const int16_t *samples = padded;
    if (at + TE_MICRO_HOP_SAMPLES <= avail) {
      samples = pcm + at;
    } else { /* past the end of the data: zeros */
      memset(padded, 0, sizeof padded);
      if (at < avail) memcpy(padded, pcm + at, sizeof(int16_t) * (avail - at));
    }
    if (te_micro_hop_int8(st, samples, scale, zero_point, out)) out += TE_MICRO_CHANNELS;
  }
}
