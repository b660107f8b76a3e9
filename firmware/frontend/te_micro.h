/* The TensorFlow Lite Micro audio "micro frontend" exactly as the PyPI package pymicro-features configures it, so
 * that a device computes, bit for bit, the features a model (a microWakeWord one, say) was trained on:
 *
 *   16 kHz int16 PCM, a 30 ms Hann window every 10 ms, a 512-point Q15 real FFT (kissfft's 16-bit fixed point
 *   arithmetic, rounding included), 40 triangular mel channels over 125..7500 Hz summed in 64 bits and
 *   square-rooted, per-channel noise reduction (smoothing 0.025 on even and 0.06 on odd channels, 5% of the
 *   signal always kept), PCAN gain control (strength 0.95, offset 80, 21 gain bits) and a fixed point log
 *   scaled by 2^6. pymicro-features reports each value v as v * 10 / 256 (0.0390625 * v, exact in float32).
 *
 * Everything lives in the caller's te_micro_t: no heap. te_micro_init builds the tables with its own float and
 * double arithmetic (no libm; on a single-precision FPU the doubles are the compiler's soft-float helpers, run
 * once at init only). Frames need integer arithmetic only.
 *
 * Needs IEEE float with FLT_EVAL_METHOD 0 (SSE, any Cortex-M FPU or soft-float) for the init-time tables; the
 * code keeps the compiler from fusing multiply-adds there itself, so -ffp-contract does not matter, but
 * -ffast-math (or any reassociation) would change the tables. */
#ifndef TE_MICRO_H
#define TE_MICRO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TE_MICRO_SAMPLE_RATE 16000
#define TE_MICRO_WINDOW_SAMPLES 480 /* 30 ms */
#define TE_MICRO_HOP_SAMPLES 160    /* 10 ms */
#define TE_MICRO_CHANNELS 40
#define TE_MICRO_FFT_SIZE 512                        /* the window rounded up to a power of two */
#define TE_MICRO_BINS (TE_MICRO_FFT_SIZE / 2 + 1)    /* bins of the real FFT, DC to Nyquist */
#define TE_MICRO_PCAN_SEGMENTS 31                    /* one quadratic piece per octave of the noise, 2^1..2^32 */

typedef struct {
  int16_t re, im;
} te_micro_cpx;

typedef struct {
  /* Tables, written by te_micro_init only. */
  int16_t window_q12[TE_MICRO_WINDOW_SAMPLES]; /* Hann window, 4096 = 1 */
  /* 32767 cos(2 pi j / 512) rounded, j = 0..128: a quarter wave from which every twiddle of the complex
   * 256-point FFT (steps of 2/512 of a turn) and of the real FFT's final pass (odd steps too) follows. */
  int16_t cos_q15[TE_MICRO_FFT_SIZE / 4 + 1];
  /* Mel bands: band b covers bins [band_edge[b], band_edge[b + 1]), b = 0..TE_MICRO_CHANNELS. Channel c is a
   * triangle rising over band c and falling over band c + 1, so each bin feeds two neighbouring channels. */
  uint16_t band_edge[TE_MICRO_CHANNELS + 2];
  uint16_t rise_q12[TE_MICRO_BINS]; /* a bin's weight in its own band's channel, 4096 = 1 */
  uint16_t fall_q12[TE_MICRO_BINS]; /* its weight in the channel below; not 4096 - rise: both are rounded */
  /* PCAN gain 2^21 (noise / 2^7 + 80)^-0.95 for a channel's noise estimate: exact for noise 0 and 1, and above
   * a quadratic per octave [2^(e-1), 2^e), e = 2..32: value at the octave's start, then two coefficients. */
  int16_t pcan_gain_small[2];
  int16_t pcan_gain_seg[TE_MICRO_PCAN_SEGMENTS][3];
  /* 65536 (log2(1 + i/128) - i/128) rounded, i = 0..128: what a straight line between powers of two misses. */
  uint16_t log2_corr_q16[129];

  /* State, cleared by te_micro_reset. */
  int16_t history[TE_MICRO_WINDOW_SAMPLES]; /* the last 480 samples, oldest first */
  uint16_t held;                            /* how many of them are real (not the zeros of a reset) */
  uint32_t noise[TE_MICRO_CHANNELS];        /* noise estimates, channel value * 2^10 smoothed */
  te_micro_cpx spectrum[TE_MICRO_FFT_SIZE / 2]; /* FFT work buffer, in place (Nyquist is never needed) */
} te_micro_t;

/* Tables and a fresh state, as pymicro-features' MicroFrontend(). */
void te_micro_init(te_micro_t *st);

/* A fresh state keeping the tables, as MicroFrontend.reset(). */
void te_micro_reset(te_micro_t *st);

/* One hop of TE_MICRO_HOP_SAMPLES samples. Returns 1 and writes TE_MICRO_CHANNELS uint16 features to OUT when a
 * frame is complete (from the 3rd hop after a reset on), 0 otherwise: exactly as one call of
 * process_samples(160 samples) gives features = OUT * 10 / 256 (or nothing). */
int te_micro_hop(te_micro_t *st, const int16_t *samples, uint16_t *out);

/* te_micro_hop with the frame quantized into the model's int8 input, as te_micro_int8 quantizes it (a keyword
 * stream's newest row). */
int te_micro_hop_int8(te_micro_t *st, const int16_t *samples, float scale, int32_t zero_point, int8_t *out);

/* A whole clip of N samples (cut or zero-padded to CLIP_SAMPLES) straight into a model's int8 input, frame after
 * frame (n_frames = 1 + (clip_samples - 480) / 160, each TE_MICRO_CHANNELS values; none if clip_samples < 480),
 * from a reset state: each value v becomes te_quantize_int8((float)v * 0.0390625f / scale, zero_point). */
void te_micro_int8(te_micro_t *st, const int16_t *pcm, size_t n, int32_t clip_samples, float scale,
                   int32_t zero_point, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif
