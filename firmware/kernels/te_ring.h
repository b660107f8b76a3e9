/* The ring of input rows that lets a convolution write its output over its own input.
 *
 * Before output row OY is computed, every input row it reads that has not been saved yet is
 * copied into the ring (input row r in slot r % span); the kernel then reads input only from
 * the ring. The generator's memory plan checked, by walking this same order, that each row is
 * still intact when it is copied. Every kernel path uses these two helpers, so the plan's check
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

/* Save the input rows output row OY needs; *COPIED is the last row saved so far (start at -1). */
static inline void te_ring_fill(const te_conv_t *p, const int8_t *in, int8_t *ring, int32_t oy, int32_t *copied) {
  const int32_t row = p->in_w * p->in_c, span = te_ring_span(p);
  const int32_t last = TE_MIN(p->in_h - 1, oy * p->stride_h - p->pad_top + span - 1);
  for (int32_t r = TE_MAX(*copied + 1, 0); r <= last; ++r) memcpy(ring + (r % span) * row, in + r * row, (size_t)row);
  *copied = TE_MAX(*copied, last);
}

/* Input row IY (inside the image): from the ring when there is one, else from the input. */
static inline const int8_t *te_ring_row(const te_conv_t *p, const int8_t *in, const int8_t *ring, int32_t iy) {
  const int32_t row = p->in_w * p->in_c;
  return ring ? ring + (iy % te_ring_span(p)) * row : in + iy * row;
}

#endif /* TE_RING_H */
