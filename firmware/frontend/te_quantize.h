/* The int8 a front end writes into the model's input: round_half_even(r) + zero_point, saturated, where r is
 * the real value over the input's scale, computed in float32 as the host's quantize_input does. Shared by the
 * text and audio front ends. No libm: r - floor(r) is exact for |r| < 2^23. */
#ifndef TE_QUANTIZE_H
#define TE_QUANTIZE_H

#include <stdint.h>

static inline int8_t te_quantize_int8(float r, int32_t zero_point) {
  float f = (float)(int32_t)r;
  if (f > r) f -= 1.0f;
  const float frac = r - f;
  int32_t q = (int32_t)f;
  if (frac > 0.5f || (frac == 0.5f && (q & 1))) ++q;
  q += zero_point;
  return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

#endif
