/* See te_projection.h. Hashes are computed as the bytes stream by: a token's FNV-1a state grows
 * byte by byte, and each n-gram is hashed from a window of the last n bytes of "^token$". */
#include "te_projection.h"
#include "te_quantize.h"

#include <string.h>

#define FNV_OFFSET 0x811C9DC5u
#define FNV_PRIME 0x01000193u
#define GOLDEN 0x9E3779B9u

static uint32_t fnv_byte(uint32_t h, uint8_t b) { return (h ^ b) * FNV_PRIME; }

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n) {
  while (n--) h = fnv_byte(h, *p++);
  return h;
}

static uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

/* row += P(data) for the data whose FNV-1a state is FNV_STATE: bits 2k and 2k+1 of word d/16 */
static void add_ternary(int16_t *row, int32_t features, uint32_t fnv_state) {
  for (int32_t word = 0; word * 16 < features; ++word) {
    const uint32_t h = fmix32(fnv_state ^ ((uint32_t)(word + 1) * GOLDEN));
    for (int32_t k = 0; k < 16 && word * 16 + k < features; ++k) {
      row[word * 16 + k] += (int16_t)((int32_t)((h >> (2 * k)) & 1u) - (int32_t)((h >> (2 * k + 1)) & 1u));
    }
  }
}

static int is_token_byte(uint8_t b) {
  return b >= 0x80 || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '\'';
}

typedef struct {
  int16_t *row;
  uint32_t token_fnv;                      /* FNV-1a of 0x01 + token so far */
  uint32_t word_fnv;                       /* FNV-1a of 0x03 + token so far: the first half of the next pair */
  uint32_t pair_fnv;                       /* FNV-1a of 0x03 + previous token + ' ' + token so far */
  int32_t paired;                          /* a token came before this one (te_projection_t.word_pairs) */
  uint8_t window[TE_PROJECTION_MAX_NGRAM]; /* the last n bytes of ^token$ */
  int32_t framed;                          /* bytes of ^token$ seen so far */
} token_state;

/* row += P(0x02 + the N window bytes from FROM) */
static void add_gram(const te_projection_t *cfg, token_state *t, int32_t from, int32_t n) {
  const uint8_t prefix = 0x02;
  add_ternary(t->row, cfg->features, fnv(fnv(FNV_OFFSET, &prefix, 1), t->window + from, (size_t)n));
}

/* the shortest n-gram length a token row sums (te_projection_t.min_ngram) */
static int32_t shortest(const te_projection_t *cfg) { return cfg->min_ngram ? cfg->min_ngram : cfg->ngram; }

/* one more byte of ^token$: slide the window of the last ngram bytes, and hash every n-gram of a
 * summed length that ends at this byte (the last m bytes of the window) */
static void push_framed(const te_projection_t *cfg, token_state *t, uint8_t b) {
  const int32_t n = cfg->ngram;
  if (t->framed < n) {
    t->window[t->framed] = b;
  } else {
    memmove(t->window, t->window + 1, (size_t)(n - 1));
    t->window[n - 1] = b;
  }
  const int32_t held = ++t->framed < n ? t->framed : n;
  for (int32_t m = shortest(cfg); m <= held; ++m) add_gram(cfg, t, held - m, m);
}

static void finish_token(const te_projection_t *cfg, token_state *t) {
  push_framed(cfg, t, '$');
  if (t->framed < shortest(cfg)) add_gram(cfg, t, 0, t->framed); /* shorter than every length: the whole ^token$ */
  add_ternary(t->row, cfg->features, t->token_fnv);
  if (t->paired) add_ternary(t->row, cfg->features, t->pair_fnv);
  for (int32_t d = 0; d < cfg->features; ++d) {
    if (t->row[d] > 127) t->row[d] = 127;
    if (t->row[d] < -127) t->row[d] = -127;
  }
}

/* Quantizes each finished token row as it comes (te_project_int8), so only one int16 row is held. */
typedef struct {
  float scale;
  int32_t zero_point;
  int8_t *out;
} row_sink;

/* The projection of TEXT into ROWS: the whole max_tokens x features matrix, or with SINK one row
 * that each token reuses and SINK quantizes into its place once the token ends. */
static void project(const te_projection_t *config, const uint8_t *text, size_t len, int16_t *rows, const row_sink *sink) {
  /* a copy: the int8 output may alias anything, so the compiler could not know the n-gram stays checked */
  const te_projection_t copy = *config, *cfg = &copy;
  if (cfg->ngram < 1 || cfg->ngram > TE_PROJECTION_MAX_NGRAM || cfg->min_ngram < 0 || cfg->min_ngram > cfg->ngram) {
    return; /* no projection for a config it cannot hold */
  }
  int32_t tokens = 0, in_token = 0;
  token_state t = {0};
  for (size_t i = 0; i <= len && tokens < cfg->max_tokens; ++i) {
    const int byte_in_token = i < len && is_token_byte(text[i]);
    if (byte_in_token) {
      uint8_t b = text[i];
      if (b >= 'A' && b <= 'Z') b = (uint8_t)(b + 32);
      if (!in_token) {
        const uint8_t prefix = 0x01;
        t.row = sink ? rows : rows + (size_t)tokens * (size_t)cfg->features;
        if (sink) memset(rows, 0, sizeof(int16_t) * (size_t)cfg->features);
        const uint8_t word_prefix = 0x03, space = ' ';
        t.token_fnv = fnv(FNV_OFFSET, &prefix, 1);
        t.paired = cfg->word_pairs && tokens > 0;
        if (t.paired) t.pair_fnv = fnv_byte(t.word_fnv, space); /* word_fnv still holds the previous token */
        t.word_fnv = fnv(FNV_OFFSET, &word_prefix, 1);
        t.framed = 0;
        push_framed(cfg, &t, '^');
        in_token = 1;
      }
      t.token_fnv = fnv_byte(t.token_fnv, b);
      t.word_fnv = fnv_byte(t.word_fnv, b);
      t.pair_fnv = fnv_byte(t.pair_fnv, b);
      push_framed(cfg, &t, b);
    } else if (in_token) {
      finish_token(cfg, &t);
      if (sink) {
        te_project_quantize(rows, (size_t)cfg->features, sink->scale, sink->zero_point,
                            sink->out + (size_t)tokens * (size_t)cfg->features);
      }
      in_token = 0;
      ++tokens;
    }
  }
}

void te_project(const te_projection_t *cfg, const uint8_t *text, size_t len, int16_t *out) {
  memset(out, 0, sizeof(int16_t) * (size_t)cfg->max_tokens * (size_t)cfg->features);
  project(cfg, text, len, out, NULL);
}

void te_project_int8(const te_projection_t *cfg, const uint8_t *text, size_t len, float scale, int32_t zero_point,
                     int16_t *row, int8_t *out) {
  /* rows no token reaches hold the quantized 0, as the host's quantized matrix does */
  const int16_t zero = 0;
  int8_t q0;
  te_project_quantize(&zero, 1, scale, zero_point, &q0);
  memset(out, (uint8_t)q0, (size_t)cfg->max_tokens * (size_t)cfg->features);
  const row_sink sink = {scale, zero_point, out};
  project(cfg, text, len, row, &sink);
}

/* Well-formed UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates, nothing past U+10FFFF. */
size_t te_utf8_invalid_at(const uint8_t *text, size_t len) {
  size_t i = 0;
  while (i < len) {
    const uint8_t b = text[i];
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (b < 0x80) { ++i; continue; }
    if (b >= 0xC2 && b <= 0xDF) n = 1;
    else if (b >= 0xE0 && b <= 0xEF) { n = 2; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { n = 3; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
    else return i;
    if (len - i <= n) return i;
    if (text[i + 1] < lo || text[i + 1] > hi) return i;
    for (size_t k = 2; k <= n; ++k) {
      if (text[i + k] < 0x80 || text[i + k] > 0xBF) return i;
    }
    i += n + 1;
  }
  return len;
}

void te_project_quantize(const int16_t *values, size_t n, float scale, int32_t zero_point, int8_t *out) {
  for (size_t i = 0; i < n; ++i) out[i] = te_quantize_int8((float)values[i] / scale, zero_point);
}
