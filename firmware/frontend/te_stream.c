/* See te_stream.h; tinyeff/stream.py is the definition these steps repeat. */
#include "te_stream.h"

#include <string.h>

static size_t feature_bytes(const te_stream_config_t *cfg) {
  return (size_t)cfg->n_frames * (size_t)cfg->n_out;
}

size_t te_stream_bytes(const te_stream_config_t *cfg) {
  return feature_bytes(cfg) + (size_t)cfg->average * (size_t)cfg->n_classes;
}

void te_stream_reset(te_stream_t *st, const te_stream_config_t *cfg, void *mem, const int8_t *silence) {
  st->cfg = cfg;
  st->features = (int8_t *)mem;
  st->history = st->features + feature_bytes(cfg);
  st->hops = st->quiet = st->slot = 0;
  for (int32_t f = 0; f < cfg->n_frames; ++f) memcpy(st->features + (size_t)f * (size_t)cfg->n_out, silence, (size_t)cfg->n_out);
  memset(st->history, (int8_t)cfg->output_zero_point, (size_t)cfg->average * (size_t)cfg->n_classes);
}

int te_stream_hop(te_stream_t *st, const int8_t *row, int8_t *input) {
  const te_stream_config_t *cfg = st->cfg;
  const size_t n_out = (size_t)cfg->n_out, rows = feature_bytes(cfg);
  if (row) {
    memmove(st->features, st->features + n_out, rows - n_out);
    memcpy(st->features + rows - n_out, row, n_out);
  }
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
