/* See te_audio.h; the step numbers are those of tinyeff/data/audio_fixed.py.
 * ">>" on a negative value is taken as an arithmetic shift (floor), as GCC and Clang define it on Arm
 * and x86 and as NumPy computes it; the Python is the reference, so this must not be "fixed" to division.
 * Negative values are never shifted left (that is undefined): they are multiplied instead. */
#include "te_audio.h"

#include <string.h>

#include "te_quantize.h"

#define Q16_LIMIT 16777215 /* float32 holds every integer up to 2^24 exactly */

int32_t te_audio_n_out(const te_audio_t *cfg) { return cfg->n_mfcc ? cfg->n_mfcc : cfg->n_mels; }

int32_t te_audio_n_frames(const te_audio_t *cfg) {
  return 1 + (cfg->clip_samples - cfg->window_samples) / cfg->hop_samples;
}

size_t te_audio_work_bytes(const te_audio_t *cfg) {
  return sizeof(int32_t) *
         (size_t)(cfg->fft_size + 2 + (cfg->n_mfcc ? cfg->n_mels : 0) + te_audio_n_out(cfg));
}

/* step 2: the windowed sample I of a frame, given the frame's samples from PCM (frames end by
 * clip_samples, so only the clip's end can cut a frame short: AVAIL samples, zero after them) */
static int32_t windowed(const te_audio_t *cfg, const int16_t *frame, int32_t avail, int32_t i) {
  if (i >= avail) return 0;
  return ((int32_t)frame[i] * cfg->window_q15[i] + (1 << (TE_AUDIO_WINDOW_SHIFT - 1))) >> TE_AUDIO_WINDOW_SHIFT;
}

/* step 3: M-point complex FFT of Z (re, im interleaved) in bit-reversed order, in place. The products
 * are 32 x 32 -> 64 bits (one SMULL / SMLAL on Arm): widening a factor to int64 first would make GCC
 * multiply 64 x 64 bits. */
static void fft(int32_t *z, int32_t m, const int16_t *tw) {
  for (int32_t h = 1; h < m; h <<= 1) {
    for (int32_t j = 0; j < h; ++j) {
      const int32_t c = tw[2 * (j * (m / h))], s = tw[2 * (j * (m / h)) + 1];
      for (int32_t base = 0; base < m; base += 2 * h) {
        int32_t *a = z + 2 * (base + j), *b = a + 2 * h;
        const int32_t t_re = (int32_t)(((int64_t)b[0] * c + (int64_t)b[1] * s + 16384) >> 15);
        const int32_t t_im = (int32_t)(((int64_t)b[1] * c - (int64_t)b[0] * s + 16384) >> 15);
        b[0] = a[0] - t_re;
        b[1] = a[1] - t_im;
        a[0] += t_re;
        a[1] += t_im;
      }
    }
  }
}

/* step 3's split: bin k of the real FFT into X from A = Z[k] and Z[M - k] (conjugated to B here) */
static void split(int32_t a_re, int32_t a_im, int32_t zj_re, int32_t zj_im, const int16_t *w, int32_t *x) {
  const int64_t e_re = (int64_t)a_re + zj_re, e_im = (int64_t)a_im - zj_im;
  const int64_t o_re = (int64_t)a_im + zj_im, o_im = (int64_t)zj_re - a_re;
  const int64_t c = w[0], s = w[1];
  x[0] = (int32_t)((e_re * 32768 + o_re * c + o_im * s + 32768) >> 16);
  x[1] = (int32_t)((e_im * 32768 + o_im * c - o_re * s + 32768) >> 16);
}

/* step 6: ln(V) - log_offset in Q16 for V >= 1 */
static int32_t ln_q16(const te_audio_t *cfg, int64_t v) {
  int32_t p = 0; /* the highest set bit, by halving the range (no CLZ: Cortex-M0 has none) */
  for (int32_t step = 32; step; step >>= 1) {
    if (v >> (p + step)) p += step;
  }
  const int64_t m = p <= 30 ? v << (30 - p) : v >> (p - 30);
  const int32_t i = (int32_t)(m >> (30 - TE_AUDIO_LOG_TABLE_BITS)) & ((1 << TE_AUDIO_LOG_TABLE_BITS) - 1);
  const int64_t r = (m >> (14 - TE_AUDIO_LOG_TABLE_BITS)) & 0xFFFF;
  const int32_t *t = cfg->log2_table_q16;
  const int64_t log2 = (int64_t)p * 65536 + t[i] + (((int64_t)(t[i + 1] - t[i]) * r + 32768) >> 16);
  return (int32_t)((log2 * TE_AUDIO_LN2_Q30 + (1 << 29)) >> 30) - cfg->log_offset_q16;
}

void te_audio_frame(const te_audio_t *cfg, const int16_t *pcm, size_t n, int32_t frame, void *work, int32_t *out) {
  const int32_t m = cfg->fft_size / 2, start = frame * cfg->hop_samples;
  int32_t *x = (int32_t *)work; /* Z, then the M + 1 bins X */
  int32_t *logmel = cfg->n_mfcc ? x + 2 * (m + 1) : out;

  const int32_t left = (size_t)start < n ? (int32_t)(n - (size_t)start) : 0;
  const int32_t avail = left < cfg->window_samples ? left : cfg->window_samples;
  /* R runs through the bit reversals of 0, 1, 2, ... (an increment from the top bit down) */
  for (int32_t t = 0, r = 0; t < m; ++t) {
    int32_t *zr = x + 2 * r;
    zr[0] = windowed(cfg, pcm + start, avail, 2 * t);
    zr[1] = windowed(cfg, pcm + start, avail, 2 * t + 1);
    int32_t bit = m >> 1;
    while (r & bit) {
      r ^= bit;
      bit >>= 1;
    }
    r |= bit;
  }
  fft(x, m, cfg->twiddle_q15);
  /* bins k and M - k need the same two Z, so each pair overwrites its own two; Z[0] gives X[0] and X[M] */
  const int32_t z0_re = x[0], z0_im = x[1];
  split(z0_re, z0_im, z0_re, z0_im, cfg->twiddle_q15, x);
  split(z0_re, z0_im, z0_re, z0_im, cfg->twiddle_q15 + 2 * m, x + 2 * m);
  for (int32_t k = 1; k <= m / 2; ++k) {
    const int32_t j = m - k, k_re = x[2 * k], k_im = x[2 * k + 1], j_re = x[2 * j], j_im = x[2 * j + 1];
    split(k_re, k_im, j_re, j_im, cfg->twiddle_q15 + 2 * k, x + 2 * k);
    split(j_re, j_im, k_re, k_im, cfg->twiddle_q15 + 2 * j, x + 2 * j);
  }

  /* steps 4-6: a bin's power is recomputed for each filter it is in, rather than stored as int64 */
  const int16_t *weight = cfg->mel_weights_q15;
  for (int32_t f = 0; f < cfg->n_mels; ++f) {
    const int32_t *bin = x + 2 * cfg->mel_start[f];
    int64_t sum = 0;
    for (int32_t b = 0; b < cfg->mel_len[f]; ++b, bin += 2) {
      const int64_t power = ((int64_t)bin[0] * bin[0] + (int64_t)bin[1] * bin[1]) >> TE_AUDIO_POWER_SHIFT;
      sum += power * *weight++;
    }
    logmel[f] = ln_q16(cfg, (sum >> 15) + cfg->log_floor);
  }

  /* step 7 */
  for (int32_t k = 0; k < cfg->n_mfcc; ++k) {
    const int16_t *row = cfg->dct_q15 + (size_t)k * (size_t)cfg->n_mels;
    int64_t sum = 0;
    for (int32_t f = 0; f < cfg->n_mels; ++f) sum += (int64_t)row[f] * logmel[f];
    out[k] = (int32_t)((sum + 16384) >> 15);
  }
}

/* v clipped to +-(2^24 - 1) first, where float32 still holds every integer, as fixed_features does */
static int8_t quantize(int32_t v, float scale, int32_t zero_point) {
  if (v > Q16_LIMIT) v = Q16_LIMIT;
  if (v < -Q16_LIMIT) v = -Q16_LIMIT;
  return te_quantize_int8((float)v / 65536.0f / scale, zero_point);
}

void te_audio_frame_int8(const te_audio_t *cfg, const int16_t *pcm, size_t n, int32_t frame, float scale,
                         int32_t zero_point, void *work, int8_t *out) {
  const int32_t n_out = te_audio_n_out(cfg);
  int32_t *row = (int32_t *)work + cfg->fft_size + 2 + (cfg->n_mfcc ? cfg->n_mels : 0);
  te_audio_frame(cfg, pcm, n, frame, work, row);
  for (int32_t k = 0; k < n_out; ++k) out[k] = quantize(row[k], scale, zero_point);
}

void te_audio_int8(const te_audio_t *cfg, const int16_t *pcm, size_t n, float scale, int32_t zero_point, void *work,
                   int8_t *out) {
  const int32_t n_out = te_audio_n_out(cfg), n_frames = te_audio_n_frames(cfg);
  for (int32_t frame = 0; frame < n_frames; ++frame, out += n_out) {
    te_audio_frame_int8(cfg, pcm, n, frame, scale, zero_point, work, out);
  }
}

void te_audio_hop_int8(const te_audio_t *cfg, int16_t *window, const int16_t *samples, float scale, int32_t zero_point,
                       void *work, int8_t *row) {
  const int32_t w = cfg->window_samples, h = cfg->hop_samples;
  if (h >= w) { /* a hop longer than the window keeps only the window's worth of its newest samples */
    memcpy(window, samples + (h - w), 2u * (size_t)w);
  } else {
    memmove(window, window + h, 2u * (size_t)(w - h));
    memcpy(window + (w - h), samples, 2u * (size_t)h);
  }
  te_audio_frame_int8(cfg, window, (size_t)w, 0, scale, zero_point, work, row);
}
