/* A keyword spotter on a stream of audio, as a wake word runs: the last window of samples, one new row of
 * features per hop (te_audio.c), the model every EVERY hops on the last n_frames rows, its outputs averaged
 * over the last AVERAGE inferences, and a keyword reported when its average reaches the threshold, the next
 * report REFRACTORY hops later at the earliest. tinyeff/stream.py defines the same steps in Python (the host simulation the
 * device is checked against, bit-exactly); the model itself runs in the caller, between te_stream_hop and
 * te_stream_posterior. All integer, no heap. */
#ifndef TE_STREAM_H
#define TE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "te_audio.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const te_audio_t *audio;
  int32_t every;      /* hops between inferences */
  int32_t average;    /* inferences averaged */
  int32_t threshold;  /* sum over the averaged inferences of (output - output_zero_point) that reports a keyword */
  int32_t refractory; /* hops from a report to the earliest next one */
  int32_t n_classes;
  const uint8_t *keyword; /* n_classes: 1 for a class that is reported (not silence or unknown) */
  float input_scale;
  int32_t input_zero_point;
  int32_t output_zero_point;
} te_stream_config_t;

typedef struct {
  const te_stream_config_t *cfg;
  int16_t *window;  /* the last window_samples samples */
  int8_t *features; /* the last n_frames rows of the model's input, oldest first */
  int8_t *history;  /* average x n_classes: the last outputs, a ring */
  int32_t hops, quiet, slot;
} te_stream_t;

/* Bytes of MEM that te_stream_reset needs (window, features, history), int16-aligned. */
size_t te_stream_bytes(const te_stream_config_t *cfg);

/* A stream that has heard silence (zero samples) for ever: every feature row that of a zero window, every
 * averaged output at the zero point, no report pending. WORK: te_audio_work_bytes of scratch. */
void te_stream_reset(te_stream_t *st, const te_stream_config_t *cfg, void *mem, void *work);

/* One hop of hop_samples SAMPLES: the window moves on, its features become the newest row. Returns 1 when an
 * inference is due, with the model's int8 input (n_frames x n_out) written to INPUT; 0 otherwise. */
int te_stream_hop(te_stream_t *st, const int16_t *samples, void *work, int8_t *input);

/* The model's int8 OUTPUT for the inference te_stream_hop asked for: the class reported now, or -1. */
int32_t te_stream_posterior(te_stream_t *st, const int8_t *output);

#ifdef __cplusplus
}
#endif

#endif
