/* POSIX port: the firmware as an ordinary host process, its UART a TCP connection on 127.0.0.1.
 *
 * The protocol and the model are the very C a board runs; only this file differs. A harness
 * reaches it as it reaches a QEMU board's UART, with the pyserial URL socket://127.0.0.1:PORT,
 * and an exchange takes microseconds instead of an emulator's milliseconds.
 *
 *   FIRMWARE [PORT]      PORT: argv[1], else $TE_POSIX_PORT, else 0 (the system picks one)
 *
 * The port it listens on goes to stdout as the one line "te-posix-port N", so a launcher that
 * asked for port 0 learns it. Like QEMU with wait=on, the firmware does not boot until the first
 * connection is in: the banner reaches the harness. A harness that disconnects and connects again
 * finds the device as it left it (a board whose cable was unplugged); what the device sends while
 * nobody is connected is lost, as on a UART.
 *
 * Timer: CLOCK_MONOTONIC in nanoseconds since start. Stack: unknown (0), nothing is painted.
 * Build: cc -std=c99 -O2 -Wall -Wextra -Werror with the project's sources in place of the board's
 * port (tests/host_firmware.py does). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "te_port.h"
#include "te_protocol.h"

/* How long te_port_poll waits for a byte before it says there is none. The protocol loop polls
 * without pause, which on a board costs nothing but here would keep a host core busy forever. The
 * wait ends the moment a byte arrives, so it delays no reply; it only postpones te_protocol_idle,
 * whose one deadline (a stalled te-put) is 100 ms. */
#define IDLE_WAIT_MS 5

/* Between the first connection and the banner. pyserial's socket:// open() connects, then empties
 * its input (reset_input_buffer): a banner sent the instant the connection is in can land in that
 * gap and be thrown away, and the harness then waits for it in vain (seen on a loaded machine). A
 * board is never that quick - USB enumeration, or QEMU starting its machine, takes milliseconds -
 * so the port waits as long as a slow board would before it boots. */
#ifndef TE_POSIX_BOOT_DELAY_MS
#define TE_POSIX_BOOT_DELAY_MS 50
#endif

static int listen_fd = -1;
static int conn_fd = -1;               /* -1 while no harness is connected */
static unsigned short listen_port;     /* as asked for; 0: any free port */
static struct timespec start_time;

/* Received bytes not yet handed to the protocol: one read() per burst, not one per byte. */
static unsigned char rx[4096];
static size_t rx_len, rx_pos;

/* Bytes the protocol sent, written out at each line end (a reply goes out as a few segments, not
 * one per byte) or when the protocol is about to wait for input, so nothing is held back. */
static char tx[4096];
static size_t tx_len;

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void disconnect(void) {
  if (conn_fd >= 0) close(conn_fd);
  conn_fd = -1;
  rx_len = rx_pos = 0;
  tx_len = 0;
}

static void flush_tx(void) {
  size_t done = 0;
  while (conn_fd >= 0 && done < tx_len) {
    ssize_t n = write(conn_fd, tx + done, tx_len - done);
    if (n > 0) {
      done += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      disconnect(); /* the harness went away: drop the bytes, as a UART with no one listening does */
    }
  }
  tx_len = 0;
}

static void accept_harness(void) {
  int fd;
  do fd = accept(listen_fd, NULL, NULL); while (fd < 0 && errno == EINTR);
  if (fd < 0) die("te-posix-port: accept");
  /* replies are whole lines, written as they end: Nagle's algorithm would hold each back until the
   * harness's delayed ACK, ~40 ms an exchange */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  conn_fd = fd;
}

void te_port_init(void) {
  /* a harness that closes its end mid-reply must not kill the device with SIGPIPE */
  signal(SIGPIPE, SIG_IGN);
  clock_gettime(CLOCK_MONOTONIC, &start_time);
  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  if (listen_fd < 0) die("te-posix-port: socket");
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* restart on a fixed port at once */
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* a test device: never reachable from elsewhere */
  addr.sin_port = htons(listen_port);
  if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("te-posix-port: bind");
  if (listen(listen_fd, 1) < 0) die("te-posix-port: listen");
  socklen_t len = sizeof addr;
  if (getsockname(listen_fd, (struct sockaddr *)&addr, &len) < 0) die("te-posix-port: getsockname");
  /* listening already: a launcher that reads this line can connect at once */
  printf("te-posix-port %u\n", (unsigned)ntohs(addr.sin_port));
  fflush(stdout);
  accept_harness(); /* boot only once someone hears the banner */
  struct timespec delay = {TE_POSIX_BOOT_DELAY_MS / 1000, TE_POSIX_BOOT_DELAY_MS % 1000 * 1000000L};
  while (nanosleep(&delay, &delay) < 0 && errno == EINTR) {}
}

void te_port_putc(char c) {
  if (conn_fd < 0) return;
  tx[tx_len++] = c;
  if (c == '\n' || tx_len == sizeof tx) flush_tx();
}

int te_port_poll(void) {
  if (rx_pos < rx_len) return rx[rx_pos++];
  flush_tx();
  /* disconnected: wait for the harness to come back (the protocol stays as it was) */
  struct pollfd p = {conn_fd >= 0 ? conn_fd : listen_fd, POLLIN, 0};
  if (poll(&p, 1, IDLE_WAIT_MS) <= 0) return -1;
  if (conn_fd < 0) {
    accept_harness();
    return -1;
  }
  ssize_t n = read(conn_fd, rx, sizeof rx);
  if (n > 0) {
    rx_len = (size_t)n;
    rx_pos = 0;
    return rx[rx_pos++];
  }
  if (n == 0 || errno != EINTR) disconnect(); /* closed by the harness, or reset */
  return -1;
}

/* Nanoseconds since start, not since the host booted: the protocol's m-lap-us line computes
 * ticks * 10^6 / hz in 64 bits, which would overflow after 5 hours of host uptime (here: 5 hours
 * of this process). */
uint64_t te_port_ticks(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)(now.tv_sec - start_time.tv_sec) * 1000000000u + (uint64_t)now.tv_nsec - (uint64_t)start_time.tv_nsec;
}

uint32_t te_port_ticks_hz(void) { return 1000000000u; }

/* a word: the harness reads the timer's name as \w+ */
const char *te_port_timer_name(void) { return "posix_monotonic"; }

uint32_t te_port_stack_used(void) { return 0; }

/* The host build reads the file from its working directory, as QEMU's semihosting does. */
int te_port_host_read(uint8_t *dst, uint32_t len) {
  FILE *f = fopen(TE_HOST_FILE, "rb");
  if (!f) return -1;
  size_t got = fread(dst, 1, len, f);
  fclose(f);
  return got == len ? 0 : -1;
}

void te_port_exit(int status) {
  flush_tx();
  exit(status);
}

static int parse_port(const char *s, unsigned short *port) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > 65535) return 0;
  *port = (unsigned short)v;
  return 1;
}

/* What a board's reset handler does after its own start-up: bring up the port, then serve the
 * protocol (te_protocol_main prints the banner every board prints). */
int main(int argc, char **argv) {
  const char *arg = argc > 1 ? argv[1] : getenv("TE_POSIX_PORT");
  if (argc > 2 || (arg && !parse_port(arg, &listen_port))) {
    fprintf(stderr, "usage: %s [PORT]   (TCP port on 127.0.0.1, 0..65535; default $TE_POSIX_PORT, else 0: any free port)\n",
            argv[0]);
    return 2;
  }
  te_port_init();
  te_protocol_main();
  te_port_exit(0);
  return 0;
}
