/* libFuzzer target for the device side of the serial protocol (te_protocol.c).
 *
 * The parser runs exactly as on a board, with a host port: the fuzzer's bytes are the UART's
 * input, the clock advances 1 ms per byte (and 200 ms at every 0xff byte, so te-put's timeout
 * fires too), and every byte the device sends is checked to be printable ASCII or a line end.
 * Build and run (tests/test_fuzz.py does, for a fixed budget):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DTE_INFER_MAX=3 -I<model dir> -Ifirmware/protocol \
 *     -Ifirmware/kernels firmware/fuzz/te_protocol_fuzz.c firmware/protocol/te_protocol.c \
 *     <model dir>/tinyeff_model.c <the generic kernels' .c files the model uses> -o te_protocol_fuzz
 *   ./te_protocol_fuzz -max_total_time=60 firmware/fuzz/corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "te_port.h"
#include "te_protocol.h"

static uint64_t now;

void te_port_init(void) {}
int te_port_poll(void) { return -1; }
uint64_t te_port_ticks(void) { return now; }
uint32_t te_port_ticks_hz(void) { return 1000000u; }
const char *te_port_timer_name(void) { return "fuzz"; }
uint32_t te_port_stack_used(void) { return 0; }
void te_port_exit(int status) { exit(status); }
/* a host file of 256 bytes of one value: te-fput reaches both its success and its refusal */
int te_port_host_read(uint8_t *dst, uint32_t len) {
  if (len > 256u) return -1;
  memset(dst, 0x5a, len);
  return 0;
}

void te_port_putc(char c) {
  unsigned char u = (unsigned char)c;
  if (!((u >= 0x20 && u < 0x7f) || u == '\r' || u == '\n')) abort(); /* the device sent a non-text byte */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    te_protocol_byte((char)data[i]);
    now += 1000;
    if (data[i] == 0xff) {
      now += 200000;
      te_protocol_idle();
    }
  }
  /* leave the parser as the next input expects it: no te-put pending, an empty command line */
  now += 1000000;
  te_protocol_idle();
  te_protocol_byte('%');
  return 0;
}
