/* Host harness for the compiled runtime: runs a batch of inputs (raw bytes: int8, or float32
 * for a float model) through the model, so tests can compare thousands of outputs with the
 * host TFLM interpreter in one call. */
#include <string.h>

#include "tinyeff_model.h"

int tinyeff_host_arena_bytes(void) { return TINYEFF_ARENA_BYTES; }

void tinyeff_host_run(const uint8_t *inputs, uint8_t *outputs, int n) {
  for (int i = 0; i < n; ++i) {
    memcpy(tinyeff_input(), inputs + (size_t)i * TINYEFF_INPUT_BYTES, TINYEFF_INPUT_BYTES);
    tinyeff_invoke();
    memcpy(outputs + (size_t)i * TINYEFF_OUTPUT_BYTES, tinyeff_output(), TINYEFF_OUTPUT_BYTES);
  }
}
