/* See te_stream.h; tinyeff/stream.py is the definition these steps repeat. */
#include "te_stream.h"

#include <string.h>

static size_t feature_bytes(const te_stream_config_t *cfg) {
  return (size_t)te_audio_n_frames(cfg->audio) * (size_t)te_audio_n_out(cfg->audio);
}

size_t te_stream_bytes(const te_stream_config_t *cfg) {
  const size_t bytes = 2u * (size_t)cfg->audio->window_samples + feature_bytes(cfg) +
                       (size_t)cfg->average * (size_t)cfg->n_classes;
  return (bytes + 1u) & ~(size_t)1u;
}

void te_stream_reset(te_stream_t *st, const te_stream_config_t *cfg, void *mem, void *work) {
  const te_audio_t *a = cfg->audio;
  const int32_t n_out = te_audio_n_out(a), n_frames = te_audio_n_frames(a);
  st->cfg = cfg;
  st->window = (int16_t *)mem;
  st->features = (int8_t *)(st->window + a->window_samples);
  st->history = st->features + feature_bytes(cfg);
  st->hops = st->quiet = st->slot = 0;
  memset(st->window, 0, 2u * (size_t)a->window_samples);
  te_audio_frame_int8(a, st->window, (size_t)a->window_samples, 0, cfg->input_scale, cfg->input_zero_point, work,
                      st->features);
  for (int32_t f = 1; f < n_frames; ++f) memcpy(st->features + (size_t)f * (size_t)n_out, st->features, (size_t)n_out);
  memset(st->history, (int8_t)cfg->output_zero_point, (size_t)cfg->average * (size_t)cfg->n_classes);
}

int te_stream_hop(te_stream_t *st, const int16_t *samples, void *work, int8_t *input) {
  const te_stream_config_t *cfg = st->cfg;
  const te_audio_t *a = cfg->audio;
  const size_t keep = (size_t)(a->window_samples - a->hop_samples), n_out = (size_t)te_audio_n_out(a);
  const size_t rows = feature_bytes(cfg);
  /* a hop longer than the window keeps only the window's worth of its newest samples */
  if (a->hop_samples >= a->window_samples) {
    memcpy(st->window, samples + (a->hop_samples - a->window_samples), 2u * (size_t)a->window_samples);
  } else {
    memmove(st->window, st->window + a->hop_samples, 2u * keep);
    memcpy(st->window + keep, samples, 2u * (size_t)a->hop_samples);
  }
  memmove(st->features, st->features + n_out, rows - n_out);
  te_audio_frame_int8(a, st->window, (size_t)a->window_samples, 0, cfg->input_scale, cfg->input_zero_point, work,
                      st->features + rows - n_out);
  st->hops++;
  if (st->quiet > 0) st->quiet--;
  if (st->hops % cfg->every) return 0;
  memcpy(input, st->features, rows);
  return 1;
}

int32_t te_stream_posterior(te_stream_t *st, const int8_t *output) {
  const te_stream_config_t *cfg = st->cfg;
  const int32_t n = cfg->n_classes;
  memcpy(st->history + (size_t)st->slot * (size_t)n, output, (size_t)n);
  st->slot = (st->slot + 1) % cfg->average;
  int32_t best = -1, best_score = 0;
  for (int32_t c = 0; c < n; ++c) {
    if (!cfg->keyword[c]) continue;
    int32_t score = 0;
    for (int32_t i = 0; i < cfg->average; ++i) score += st->history[(size_t)i * (size_t)n + (size_t)c] - cfg->output_zero_point;
    if (best < 0 || score > best_score) best = c, best_score = score;
  }
  if (best < 0 || st->quiet > 0 || best_score < cfg->threshold) return -1;
  st->quiet = cfg->refractory;
  return best;
}
