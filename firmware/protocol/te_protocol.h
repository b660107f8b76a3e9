/* Device side of the serial protocol: the MLPerf Tiny (EEMBC) DUT commands plus tinyeff's own.
 *
 * Commands end with '%'; every reply ends with "m-ready"; errors are "e-[...]". The line
 * buffer is bounded: bytes past its end are counted and the command is refused as too long,
 * so no input can overflow it. After a reset the device sends "m-init-done" again.
 *
 * tinyeff's commands next to the MLPerf Tiny ones:
 *   te-sig              m-te-sig-[model sha256]-[runtime]-[board]
 *   te-out              m-te-out-[every output's bytes, hex] of the last inference
 *   te-mem              m-te-mem-arena-N-used-U-stack-M (declared arena, the part in use; stack: painted high-water mark)
 *   te-layers [F C]     m-te-timer-[name]-hz-N-layers-L (L: layers timed, 0 if the runtime calls no
 *                       layer hook), then m-te-layer-I-TICKS for layers F..F+C-1 (default: all)
 *   te-put OFF LEN CRC  then LEN raw bytes into the inputs (all of them, one after another) at OFF; CRC-32 (zlib) in 8 hex digits;
 *                       m-te-put-ok, or an error on a CRC mismatch or 100 ms without a byte
 *   te-fput OFF LEN CRC as te-put, the LEN bytes read from the start of the host's input file
 *                       (TE_HOST_FILE, te_port_host_read) instead of the link; refused by name
 *                       on a board that has none
 *   te-run CRC [N]      one inference if the whole input has CRC-32 CRC:
 *                       m-te-run-[every output's bytes, hex]-[timer ticks it took];
 *                       N numbers the inference: asked again with the same N (after a damaged
 *                       reply), the device repeats that reply instead of running again
 * With a front end (a project generated with --frontend RUN: text projection or fixed-point audio):
 *   te-raw-put OFF LEN CRC    as te-put, into the raw sample's buffer (UTF-8 text, 16-bit little-endian PCM)
 *   te-raw-fput OFF LEN CRC   as te-fput, into that buffer
 *   te-raw-run LEN CRC [N]    the front end on the buffer's first LEN bytes (CRC-32 CRC) into the model's
 *                       input, then one inference: m-te-run-[outputs, hex]-[model ticks]-[front end ticks];
 *                       an empty or over-long sample, a text that is not UTF-8, a clip of an odd number
 *                       of bytes are refused by name (e-[te-raw-run: ...])
 * With the audio front end of a keyword classifier, a keyword stream (te_stream.h):
 *   te-stream-start           a stream that has heard silence: m-te-stream-started-[samples per hop]
 *   te-stream-push LEN CRC N  the buffer's first LEN bytes (whole hops) into the stream, the model every few
 *                       hops: m-te-stream-[hops heard]-[outputs of each inference, hex]-[reports as
 *                       hops.class, comma-separated]-[model ticks]-[front end ticks]; N as te-run's
 * Every te- reply ends with m-te-crc-[CRC-32 of the reply's bytes before that line], then
 * m-ready, so the host can tell a reply damaged on the link from a good one and ask again.
 * On a link that damages a few percent of bytes the host codes a request: 0x01 three times, then
 * each byte of the request (and of te-put's raw bytes) three times; the device takes the bitwise
 * majority of each three and sends its reply the same way, each byte three times.
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
/* Call when no byte is waiting: ends a te-put whose bytes stopped coming. */
void te_protocol_idle(void);
/* Print the banner and serve commands forever. */
void te_protocol_main(void);
/* Called by the model after each layer (TINYEFF_LAYER_HOOK). */
void te_layer_done(int layer);

#ifdef __cplusplus
}
#endif

#endif
