/* What a board port gives the protocol: a byte stream, a free-running tick counter, an exit. */
#ifndef TE_PORT_H
#define TE_PORT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void te_port_init(void);
void te_port_putc(char c);
int te_port_poll(void);            /* a received byte 0..255, or -1 when none came (a port may sleep
                                      until a byte or a timer tick first) */
uint64_t te_port_ticks(void);      /* monotonic, te_port_ticks_hz() per second */
uint32_t te_port_ticks_hz(void);
const char *te_port_timer_name(void);
uint32_t te_port_stack_used(void); /* high-water mark of the stack in bytes, 0 if unknown */
void te_port_exit(int status);
/* LEN bytes from the start of the host's input file into DST, 0 when they are in, -1 when this
 * board has no such file (a real board: its inputs come over the link). An emulator the harness
 * started finds TE_HOST_FILE in its working directory (QEMU: semihosting), where the harness
 * writes each input before te-fput asks for it. */
int te_port_host_read(uint8_t *dst, uint32_t len);
#define TE_HOST_FILE "tinyeff-input.bin"

#ifdef __cplusplus
}
#endif

#endif
