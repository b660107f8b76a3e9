/* Device side of the serial protocol (see te_protocol.h). Written for C99 without printf so
 * the same file builds for every port and for host fuzzing. */
#include "te_protocol.h"

#include <string.h>

#include "te_port.h"
#include "tinyeff_model.h"

#ifndef TE_BOARD_ID
#define TE_BOARD_ID "unknown"
#endif
#ifndef TE_RUNTIME
#define TE_RUNTIME "compiled"
#endif
#ifndef TE_DB_BYTES
#define TE_DB_BYTES TINYEFF_INPUT_BYTES
#endif

static char cmd[TE_CMD_MAX + 1];
static size_t cmd_len;
static int cmd_overflow;

static uint8_t db[TE_DB_BYTES];
static size_t db_size, db_pos;

static uint64_t layer_mark;
static uint32_t layer_ticks[TINYEFF_LAYERS];

static void put(const char *s) { while (*s) te_port_putc(*s++); }

static void put_u64(uint64_t v) {
  char buf[21];
  int i = 20;
  buf[i] = 0;
  do { buf[--i] = (char)('0' + v % 10); v /= 10; } while (v);
  put(buf + i);
}

static void put_hex8(uint8_t v) {
  static const char digits[] = "0123456789abcdef";
  te_port_putc(digits[v >> 4]);
  te_port_putc(digits[v & 15]);
}

static void ready(void) { put("m-ready\r\n"); }

/* Decimal argument; -1 when missing or not a number. Digits past 9 are refused, not wrapped. */
static long parse_count(const char *s) {
  long v = 0;
  int n = 0;
  if (!s || !*s) return -1;
  for (; *s; ++s, ++n) {
    if (*s < '0' || *s > '9' || n >= 9) return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void lap(void) {
  put("m-lap-us-");
  put_u64(te_port_ticks() * 1000000u / te_port_ticks_hz());
  put("\r\n");
}

void te_layer_done(int layer) {
  uint64_t now = te_port_ticks();
  if (layer >= 0 && layer < TINYEFF_LAYERS) layer_ticks[layer] = (uint32_t)(now - layer_mark);
  layer_mark = now;
}

static void invoke(void) {
  layer_mark = te_port_ticks();
  tinyeff_invoke();
}

static void results(void) {
  const int8_t *out = tinyeff_output();
  put("m-results-[");
  for (int i = 0; i < TINYEFF_OUTPUT_BYTES; ++i) {
    /* dequantized with 3 decimals, as the MLPerf Tiny reference prints its results */
    int32_t milli = (int32_t)((float)(out[i] - TINYEFF_OUTPUT_ZERO_POINT) * TINYEFF_OUTPUT_SCALE * 1000.0f);
    if (milli < 0) { te_port_putc('-'); milli = -milli; }
    put_u64((uint64_t)(milli / 1000));
    te_port_putc('.');
    te_port_putc((char)('0' + milli / 100 % 10));
    te_port_putc((char)('0' + milli / 10 % 10));
    te_port_putc((char)('0' + milli % 10));
    if (i + 1 < TINYEFF_OUTPUT_BYTES) te_port_putc(',');
  }
  put("]\r\n");
}

static void infer(const char *n_arg, const char *w_arg) {
  long n = n_arg ? parse_count(n_arg) : 1, w = w_arg ? parse_count(w_arg) : 10;
  if (n <= 0) { put("e-[Inference iterations must be >0]\r\n"); return; }
  if (w < 0) { put("e-[Inference warmup must be >=0]\r\n"); return; }
  if (db_pos != TINYEFF_INPUT_BYTES) {
    put("e-[Input db has ");
    put_u64(db_pos);
    put(" bytes, expected ");
    put_u64(TINYEFF_INPUT_BYTES);
    put("]\r\n");
    return;
  }
  put("m-warmup-start-"); put_u64((uint64_t)w); put("\r\n");
  /* layers may overwrite the input in place: reload it before every inference */
  for (long i = 0; i < w; ++i) { memcpy(tinyeff_input(), db, TINYEFF_INPUT_BYTES); invoke(); }
  put("m-warmup-done\r\n");
  put("m-infer-start-"); put_u64((uint64_t)n); put("\r\n");
  lap();
  for (long i = 0; i < n; ++i) { memcpy(tinyeff_input(), db, TINYEFF_INPUT_BYTES); invoke(); }
  lap();
  put("m-infer-done\r\n");
  results();
}

static void db_command(char *sub, char *arg) {
  if (!sub) { put("e-[Command 'db' requires a subcommand]\r\n"); return; }
  if (strcmp(sub, "load") == 0) {
    long n = parse_count(arg);
    if (n <= 0) { put("e-[Command 'db load' requires the # of bytes, >0]\r\n"); return; }
    if ((size_t)n > sizeof db) {
      put("e-[Supplied buffer size "); put_u64((uint64_t)n); put(" exceeds maximum of "); put_u64(sizeof db); put("]\r\n");
      return;
    }
    db_size = (size_t)n;
    db_pos = 0;
    put("m-[Expecting "); put_u64(db_size); put(" bytes]\r\n");
  } else if (strcmp(sub, "print") == 0) {
    for (size_t i = 0; i < db_pos; ++i) {
      if (i % 8 == 0) put("m-buffer-");
      put_hex8(db[i]);
      put((i + 1) % 8 == 0 || i + 1 == db_pos ? "\r\n" : "-");
    }
  } else {
    size_t len = strlen(sub);
    if (len & 1) { put("e-[Insufficent number of hex digits]\r\n"); return; }
    if (db_size == 0) { put("e-[Command 'db load N' must come first]\r\n"); return; }
    for (size_t i = 0; i < len; i += 2) {
      int hi = hex_value(sub[i]), lo = hex_value(sub[i + 1]);
      if (hi < 0 || lo < 0) { put("e-[Invalid hex digit]\r\n"); return; }
      if (db_pos < db_size) db[db_pos++] = (uint8_t)(hi << 4 | lo);
      if (db_pos == db_size) { put("m-load-done\r\n"); return; }
    }
  }
}

/* Split CMD in place at spaces into at most 4 words; missing words are NULL. */
static void split(char *s, char *word[4]) {
  int n = 0;
  for (int i = 0; i < 4; ++i) word[i] = NULL;
  while (*s && n < 4) {
    while (*s == ' ') ++s;
    if (!*s) break;
    word[n++] = s;
    while (*s && *s != ' ') ++s;
    if (*s) *s++ = 0;
  }
}

static void run_command(void) {
  char *word[4];
  split(cmd, word);
  char *tok = word[0];
  if (!tok) {
    put("e-[Empty command]\r\n");
  } else if (strcmp(tok, "name") == 0) {
    put("m-name-dut-[tinyeff]\r\n");
  } else if (strcmp(tok, "timestamp") == 0) {
    lap();
  } else if (strcmp(tok, "profile") == 0) {
    put("m-profile-[ULPMark for tinyML Firmware V0.0.1]\r\n");
    put("m-model-[tinyeff-"); put(TINYEFF_MODEL_SHA256); put("]\r\n");
  } else if (strcmp(tok, "help") == 0) {
    put("tinyeff DUT: name, timestamp, profile, db load N, db HEX, db print, infer N [W], results, "
        "te-sig, te-out, te-mem, te-layers\r\n");
  } else if (strcmp(tok, "db") == 0) {
    db_command(word[1], word[2]);
  } else if (strcmp(tok, "infer") == 0) {
    infer(word[1], word[2]);
  } else if (strcmp(tok, "results") == 0) {
    results();
  } else if (strcmp(tok, "te-sig") == 0) {
    put("m-te-sig-["); put(TINYEFF_MODEL_SHA256); put("]-["); put(TE_RUNTIME); put("]-["); put(TE_BOARD_ID); put("]\r\n");
  } else if (strcmp(tok, "te-out") == 0) {
    const int8_t *out = tinyeff_output();
    put("m-te-out-[");
    for (int i = 0; i < TINYEFF_OUTPUT_BYTES; ++i) put_hex8((uint8_t)out[i]);
    put("]\r\n");
  } else if (strcmp(tok, "te-mem") == 0) {
    put("m-te-mem-arena-"); put_u64(TINYEFF_ARENA_BYTES); put("-stack-"); put_u64(te_port_stack_used()); put("\r\n");
  } else if (strcmp(tok, "te-layers") == 0) {
    put("m-te-timer-["); put(te_port_timer_name()); put("]-hz-"); put_u64(te_port_ticks_hz()); put("\r\n");
    for (int i = 0; i < TINYEFF_LAYERS; ++i) { put("m-te-layer-"); put_u64((uint64_t)i); put("-"); put_u64(layer_ticks[i]); put("\r\n"); }
  } else {
    put("e-[Unknown command: "); put(tok); put("]\r\n");
  }
  ready();
}

void te_protocol_byte(char c) {
  if (c == '%') {
    if (cmd_overflow) {
      put("e-[Command longer than "); put_u64(TE_CMD_MAX); put(" bytes]\r\n");
      ready();
    } else {
      cmd[cmd_len] = 0;
      run_command();
    }
    cmd_len = 0;
    cmd_overflow = 0;
  } else if (c == '\r' || c == '\n') {
    /* line endings between commands are not part of them */
  } else if (cmd_len < TE_CMD_MAX) {
    cmd[cmd_len++] = c;
  } else {
    cmd_overflow = 1;
  }
}

void te_protocol_main(void) {
  put("m-init-done\r\n");
  ready();
  for (;;) te_protocol_byte((char)te_port_getc());
}
