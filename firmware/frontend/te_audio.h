/* The integer audio front end of tinyeff/data/audio_fixed.py (log-mel or MFCC) in C99, bit-exact:
 * int16 PCM -> n_frames x n_out int32 Q16 features, then the int8 the model's input expects. The
 * steps are documented in that Python module, which also makes every table below (tables(fe)); this
 * file only does the integer arithmetic. No heap, no libm, floats only in the int8 quantization. */
#ifndef TE_AUDIO_H
#define TE_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TE_AUDIO_WINDOW_SHIFT 12  /* audio_fixed.WINDOW_SHIFT */
#define TE_AUDIO_POWER_SHIFT 11   /* audio_fixed.POWER_SHIFT */
#define TE_AUDIO_LOG_TABLE_BITS 8 /* audio_fixed.LOG_TABLE_BITS */
#define TE_AUDIO_LN2_Q30 744261118 /* audio_fixed.LN2_Q30 = round(ln(2) 2^30) */

typedef struct {
  int32_t clip_samples, window_samples, hop_samples, fft_size, n_mels, n_mfcc;
  const int16_t *window_q15;      /* window_samples */
  const int16_t *twiddle_q15;     /* (fft_size / 2 + 1) x {cos, sin} of 2 pi k / fft_size */
  const uint16_t *mel_start;      /* n_mels: first bin of each filter */
  const uint16_t *mel_len;        /* n_mels: bins of each filter (may be 0) */
  const int16_t *mel_weights_q15; /* sum(mel_len): filter after filter */
  const int16_t *dct_q15;         /* n_mfcc x n_mels, NULL when n_mfcc == 0 */
  const int32_t *log2_table_q16;  /* 2^TE_AUDIO_LOG_TABLE_BITS + 1 */
  int32_t log_floor;              /* added to every mel energy */
  int32_t log_offset_q16;         /* subtracted from every log */
} te_audio_t;

/* The features per frame: n_mfcc, or n_mels for log-mel. */
int32_t te_audio_n_out(const te_audio_t *cfg);

/* 1 + (clip_samples - window_samples) / hop_samples. */
int32_t te_audio_n_frames(const te_audio_t *cfg);

/* Bytes of WORK that te_audio_frame and te_audio_int8 need, int32-aligned:
 * 4 * (fft_size + 2 + (n_mfcc ? n_mels : 0) + n_out). */
size_t te_audio_work_bytes(const te_audio_t *cfg);

/* Frame FRAME (0 <= FRAME < n_frames) of the clip PCM[0..n), zero beyond n and cut at clip_samples:
 * n_out int32 Q16 values into OUT, which may be WORK's last n_out int32 but no other part of it. */
void te_audio_frame(const te_audio_t *cfg, const int16_t *pcm, size_t n, int32_t frame, void *work, int32_t *out);

/* Frame FRAME as te_audio_frame computes it, quantized as te_audio_int8 does: n_out int8 into OUT. */
void te_audio_frame_int8(const te_audio_t *cfg, const int16_t *pcm, size_t n, int32_t frame, float scale,
                         int32_t zero_point, void *work, int8_t *out);

/* A stream's next feature row: WINDOW (window_samples: the stream's newest samples, zeros before it began) moves
 * on by one hop of hop_samples SAMPLES, and its frame is quantized into ROW as te_audio_frame_int8 does. */
void te_audio_hop_int8(const te_audio_t *cfg, int16_t *window, const int16_t *samples, float scale, int32_t zero_point,
                       void *work, int8_t *row);

/* The whole clip straight into the model's int8 input (n_frames x n_out, row-major): each value v becomes
 * round_half_even((float)v / 65536.0f / scale) + zero_point, saturated, in float32 as the host's
 * quantize_input does with audio_fixed.fixed_features (v clipped to +-(2^24 - 1) first, as there). */
void te_audio_int8(const te_audio_t *cfg, const int16_t *pcm, size_t n, float scale, int32_t zero_point, void *work,
                   int8_t *out);

#ifdef __cplusplus
}
#endif

#endif
