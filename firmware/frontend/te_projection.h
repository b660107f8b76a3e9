/* The PRADO-style text projection of tinyeff/models/projection_features.py, in C99, bit-exact:
 * text (UTF-8 bytes) -> max_tokens x features matrix of clipped sums of ternary hashed features,
 * then the int8 the model's input expects. The rules (tokens, hash, n-grams) are documented in
 * that Python module; this file follows them step by step. No heap, no libm. */
#ifndef TE_PROJECTION_H
#define TE_PROJECTION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t features;   /* hashed features per token */
  int32_t max_tokens; /* rows; tokens past this are dropped, missing rows are 0 */
  int32_t ngram;      /* the longest byte n-grams of ^token$ */
  int32_t min_ngram;  /* the shortest (every length in between too); 0: ngram only */
  int32_t word_pairs; /* nonzero: each token's row but the first also sums its pair with the token before */
} te_projection_t;

#define TE_PROJECTION_MAX_NGRAM 8 /* hashes stream over the text: only the last n bytes are kept */

/* OUT gets max_tokens * features values in [-127, 127], row by row. Rows are summed in int16 before
 * they are clipped: texts up to 4,000 bytes (at most 8 n-grams per byte) cannot overflow them. */
void te_project(const te_projection_t *cfg, const uint8_t *text, size_t len, int16_t *out);

/* The projection straight into the model's int8 input (OUT: max_tokens * features), one token row at a
 * time: ROW is the features int16 values of scratch it needs, instead of the whole int16 matrix.
 * Equal to te_project then te_project_quantize. */
void te_project_int8(const te_projection_t *cfg, const uint8_t *text, size_t len, float scale, int32_t zero_point,
                     int16_t *row, int8_t *out);

/* The offset of the first byte of TEXT that is not well-formed UTF-8, or LEN if all of it is. */
size_t te_utf8_invalid_at(const uint8_t *text, size_t len);

/* The model's int8 input from a projection: round_half_even(v / scale) + zero_point, saturated,
 * computed in float32 as the host does. */
void te_project_quantize(const int16_t *values, size_t n, float scale, int32_t zero_point, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif
