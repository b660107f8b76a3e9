/* The ring of input rows that lets a convolution write its output over its own input.
 *
 * The ring holds R rows (p->ring_rows; 0 means all the span rows one output row reads). Before
 * output row OY is computed, the first R rows of its window that have not been saved yet are
 * copied into the ring (input row r in slot r % R); the window's rows below those are read from
 * the input itself. With R equal to the span every row comes from the ring; a smaller R keeps
 * only the rows the output is about to overwrite, which is what lets a 3 x 3 conv run in place
 * with two saved rows instead of three. The generator's memory plan checked, by walking this
 * same order, that each row is intact when it is copied and each row read from the input is
 * intact until its output row is done. Every kernel path uses these helpers, so the plan's check
 * holds for all of them.
 */
#ifndef TE_RING_H
#define TE_RING_H

#include <stdint.h>
#include <string.h>

#include "te_fixedpoint.h"
#include "tinyeff_kernels.h"

/* Input rows one output row spans. */
static inline int32_t te_ring_span(const te_conv_t *p) { return (p->k_h - 1) * p->dil_h + 1; }

/* Rows the ring holds. */
static inline int32_t te_ring_rows(const te_conv_t *p) { return p->ring_rows > 0 ? p->ring_rows : te_ring_span(p); }

/* Save the rows of output row OY's window the ring takes; *COPIED is the last row saved so far (start at -1). */
static inline void te_ring_fill(const te_conv_t *p, const int8_t *in, int8_t *ring, int32_t oy, int32_t *copied) {
  const int32_t row = p->in_w * p->in_c, rows = te_ring_rows(p);
  const int32_t last = TE_MIN(p->in_h - 1, oy * p->stride_h - p->pad_top + rows - 1);
  for (int32_t r = TE_MAX(*copied + 1, 0); r <= last; ++r) memcpy(ring + (r % rows) * row, in + r * row, (size_t)row);
  *copied = TE_MAX(*copied, last);
}

/* Input row IY (inside the image) of the window whose first row is IY0 (oy * stride_h - pad_top):
 * from the ring when there is one and the row is among the ring's, else from the input. */
static inline const int8_t *te_ring_row(const te_conv_t *p, const int8_t *in, const int8_t *ring, int32_t iy0, int32_t iy) {
  const int32_t row = p->in_w * p->in_c, rows = te_ring_rows(p);
  return ring && iy < iy0 + rows ? ring + (iy % rows) * row : in + iy * row;
}

#endif /* TE_RING_H */
