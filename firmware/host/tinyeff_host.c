/* Host harness for the compiled runtime: runs a batch of samples through the model, so tests can
 * compare thousands of outputs with the host TFLM interpreter in one call. A sample is every
 * input's bytes one after another (TINYEFF_INPUT_BYTES, as the protocol uploads them); its result
 * is every output's bytes likewise (TINYEFF_OUTPUT_BYTES). */
#include <string.h>

#include "tinyeff_model.h"

int tinyeff_host_arena_bytes(void) { return TINYEFF_ARENA_BYTES; }

void tinyeff_host_run(const uint8_t *inputs, uint8_t *outputs, int n) {
  static const uint32_t in_sizes[TINYEFF_INPUTS] = TINYEFF_INPUT_SIZES;
  static const uint32_t out_sizes[TINYEFF_OUTPUTS] = TINYEFF_OUTPUT_SIZES;
  for (int s = 0; s < n; ++s) {
    const uint8_t *x = inputs + (size_t)s * TINYEFF_INPUT_BYTES;
    for (int i = 0; i < TINYEFF_INPUTS; ++i) {
      memcpy(tinyeff_input(i), x, in_sizes[i]);
      x += in_sizes[i];
    }
    tinyeff_invoke();
    uint8_t *y = outputs + (size_t)s * TINYEFF_OUTPUT_BYTES;
    for (int i = 0; i < TINYEFF_OUTPUTS; ++i) {
      memcpy(y, tinyeff_output(i), out_sizes[i]);
      y += out_sizes[i];
    }
  }
}
