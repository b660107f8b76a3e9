/* A keyword spotter on a stream of audio, as a wake word runs: the model's last n_frames feature rows, one
 * new row per hop from the front end (te_audio.c or te_micro.c, which keep their own window of samples),
 * the model every EVERY hops on those rows, its outputs averaged over the last AVERAGE inferences, and a
 * keyword reported when its average reaches the threshold, the next report REFRACTORY hops later at the
 * earliest. tinyeff/stream.py defines the same steps in Python (the host simulation the device is checked
 * against, bit-exactly); the front end and the model run in the caller, around te_stream_hop and
 * te_stream_posterior. All integer, no heap. */
#ifndef TE_STREAM_H
#define TE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t n_frames, n_out; /* the model's input: n_frames rows of n_out features */
  int32_t every;      /* hops between inferences */
  int32_t average;    /* inferences averaged */
  int32_t threshold;  /* sum over the averaged inferences of (output - output_zero_point) that reports a keyword */
  int32_t refractory; /* hops from a report to the earliest next one */
  int32_t n_classes;
  const uint8_t *keyword; /* n_classes: 1 for a class that is reported (not silence or unknown) */
  int32_t output_zero_point;
} te_stream_config_t;

typedef struct {
  const te_stream_config_t *cfg;
  int8_t *features; /* the last n_frames rows of the model's input, oldest first */
  int8_t *history;  /* average x n_classes: the last outputs, a ring */
  int32_t hops, quiet, slot;
} te_stream_t;

/* Bytes of MEM that te_stream_reset needs (feature rows, averaged outputs). */
size_t te_stream_bytes(const te_stream_config_t *cfg);

/* A stream that has heard silence for ever: every feature row SILENCE (n_out values, the front end's row for
 * silence), every averaged output at the zero point, no report pending. */
void te_stream_reset(te_stream_t *st, const te_stream_config_t *cfg, void *mem, const int8_t *silence);

/* One hop heard: ROW, the row the front end made of it, becomes the newest (NULL: the front end made none,
 * as a front end with a window longer than its hop does at first). Returns 1 when an inference is due, with
 * the model's int8 input (n_frames x n_out) written to INPUT; 0 otherwise. */
int te_stream_hop(te_stream_t *st, const int8_t *row, int8_t *input);

/* The model's int8 OUTPUT for the inference te_stream_hop asked for: the class reported now, or -1. */
int32_t te_stream_posterior(te_stream_t *st, const int8_t *output);

#ifdef __cplusplus
}
#endif

#endif
