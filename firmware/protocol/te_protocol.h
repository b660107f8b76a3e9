/* Device side of the serial protocol: the MLPerf Tiny (EEMBC) DUT commands plus tinyeff's own.
 *
 * Commands end with '%'; every reply ends with "m-ready"; errors are "e-[...]". The line
 * buffer is bounded: bytes past its end are counted and the command is refused as too long,
 * so no input can overflow it.
 */
#ifndef TE_PROTOCOL_H
#define TE_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TE_CMD_MAX 80u   /* as EE_CMD_SIZE */

/* Feed one received byte; runs the command when it is the terminator. */
void te_protocol_byte(char c);
/* Print the banner and serve commands forever. */
void te_protocol_main(void);
/* Called by the model after each layer (TINYEFF_LAYER_HOOK). */
void te_layer_done(int layer);

#ifdef __cplusplus
}
#endif

#endif
