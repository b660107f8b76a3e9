/* Device side of the serial protocol (see te_protocol.h). Written for C99 without printf so
 * the same file builds for every port and for host fuzzing. */
#include "te_protocol.h"

#include <string.h>

#include "te_port.h"
#include "tinyeff_model.h"
#ifdef TE_RAW_FRONTEND
/* a project generated with a front end: the device takes raw samples and makes the model's input itself
 * (the header includes the front end's own, te_projection.h or te_audio.h) */
#include "tinyeff_frontend.h"
#endif

#ifndef TE_BOARD_ID
#define TE_BOARD_ID "unknown"
#endif
#ifndef TE_RUNTIME
#define TE_RUNTIME "compiled"
#endif
#ifndef TE_INFER_MAX
#define TE_INFER_MAX 100000L /* iterations per infer command; the fuzz build sets it low */
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

#ifdef TE_RAW_FRONTEND
/* the raw sample; int32 words so that 16-bit PCM in it is aligned */
static uint32_t raw_words[(TE_RAW_MAX_BYTES + 3u) / 4u];
#define raw_buf ((uint8_t *)raw_words)
#ifdef TE_TEXT_FRONTEND
static int16_t text_row[TE_TEXT_FEATURES]; /* the projection's scratch: one token's row before it is quantized */
#endif
#ifdef TE_AUDIO_FRONTEND
static uint32_t audio_work[TE_AUDIO_WORK_BYTES / 4u]; /* te_audio_int8's FFT and mel scratch */
#endif
#ifdef TE_MICRO_FRONTEND
static te_micro_t micro; /* the micro frontend's tables, scratch and the state it carries within a clip */
static int micro_ready;

/* its tables, made at boot (te_protocol_main) so that no clip's time includes them; the fuzz build has no boot */
static void micro_init_once(void) {
  if (!micro_ready) te_micro_init(&micro);
  micro_ready = 1;
}
#endif
#endif

/* te-put: raw bytes still to come for bin_dst[bin_pos..] (db, or the raw sample's buffer for te-raw-put),
 * their expected CRC, when the last came */
static uint8_t *bin_dst;
static size_t bin_pos, bin_left, bin_off, bin_len;
static uint32_t bin_crc;
static uint64_t bin_last_tick;

/* CRC-32 of every byte sent since a te- command began: its reply ends with it, so the host
 * can tell a damaged reply from a good one. */
static uint32_t line_crc;

/* CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), one byte at a time: no table
 * in flash, and the inputs are a few hundred bytes. Start with 0, chain the results. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

/* Forward error correction for links that damage more than a request or a reply can survive whole
 * (a few percent of bytes): a request that begins with TE_FEC_START (up to three of them) sends each
 * byte three times, te-put's raw bytes included, and the device keeps the bitwise majority of each
 * three, which is wrong only where two copies lost the same bit. Its reply goes out the same way,
 * each byte three times, up to m-ready; the next request chooses again. A request cut short is
 * dropped after 100 ms of silence, like a te-put. Lengths are unchanged by the coding, so a dropped
 * byte shifts every three after it: the reply's CRC fails and the host asks again. */
#define TE_FEC_START 0x01
static int fec;         /* this request came coded: read threes, send every byte three times */
static int fec_lead;    /* leading bytes of a coded request still to skip (TE_FEC_START, or one damaged) */
static uint8_t fec_got[2];
static int fec_have;
static uint64_t fec_last_tick;

static void out(char c) {
  line_crc = crc32_update(line_crc, (const uint8_t *)&c, 1);
  te_port_putc(c);
  if (fec) { te_port_putc(c); te_port_putc(c); }
}

static void put(const char *s) { while (*s) out(*s++); }

/* Echo of what the host sent: anything but printable ASCII goes back as '?', so a line of
 * binary garbage cannot make the device send bytes a terminal or a log would choke on. */
static void put_echo(const char *s) {
  for (; *s; ++s) out(*s >= 0x20 && *s < 0x7f ? *s : '?');
}

static void put_u64(uint64_t v) {
  char buf[21];
  int i = 20;
  buf[i] = 0;
  do { buf[--i] = (char)('0' + v % 10); v /= 10; } while (v);
  put(buf + i);
}

static void put_hex8(uint8_t v) {
  static const char digits[] = "0123456789abcdef";
  out(digits[v >> 4]);
  out(digits[v & 15]);
}

/* The end of every reply; the next request says again whether it is coded. */
static void ready(void) {
  put("m-ready\r\n");
  fec = 0;
}

static void put_hex32(uint32_t v) {
  for (int i = 28; i >= 0; i -= 4) out("0123456789abcdef"[(v >> i) & 15u]);
}

/* The last line of every te- reply: the CRC-32 of the reply's bytes before it. */
static void crc_line(void) {
  uint32_t crc = line_crc;
  put("m-te-crc-[");
  put_hex32(crc);
  put("]\r\n");
}

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

/* Exactly 8 hex digits, as the host sends a CRC; 0 when malformed (with *ok = 0). */
static uint32_t parse_hex32(const char *s, int *ok) {
  uint32_t v = 0;
  *ok = s && strlen(s) == 8;
  for (int i = 0; *ok && i < 8; ++i) {
    int d = hex_value(s[i]);
    if (d < 0) *ok = 0;
    v = v << 4 | (uint32_t)(d & 15);
  }
  return *ok ? v : 0;
}

static void lap(void) {
  put("m-lap-us-");
  put_u64(te_port_ticks() * 1000000u / te_port_ticks_hz());
  put("\r\n");
}

/* Set once the runtime calls the layer hook: TFLM built with TF_LITE_STRIP_ERROR_STRINGS (its release
 * flags) compiles its profiler calls out, and then no layer is timed - say so rather than send zeros. */
static int layers_timed;

void te_layer_done(int layer) {
  uint64_t now = te_port_ticks();
  layers_timed = 1;
  if (layer >= 0 && layer < TINYEFF_LAYERS) layer_ticks[layer] = (uint32_t)(now - layer_mark);
  layer_mark = now;
}

/* te-layers [FROM COUNT]: the timer, how many layers were timed, then layers FROM..FROM+COUNT-1 (all by
 * default). A host on a noisy link asks for a few at a time: a short reply passes its CRC far more often. */
static void te_layers(const char *from_arg, const char *count_arg) {
  const long timed = layers_timed ? TINYEFF_LAYERS : 0;
  long from = from_arg ? parse_count(from_arg) : 0, count = count_arg ? parse_count(count_arg) : timed;
  if (from < 0 || count < 0) {
    put("e-[te-layers takes a first layer and a count]\r\n");
    return;
  }
  put("m-te-timer-["); put(te_port_timer_name()); put("]-hz-"); put_u64(te_port_ticks_hz());
  put("-layers-"); put_u64((uint64_t)timed); put("\r\n");
  for (long i = from; i < timed && i < from + count; ++i) {
    put("m-te-layer-"); put_u64((uint64_t)i); put("-"); put_u64(layer_ticks[i]); put("\r\n");
  }
}

/* the host's number of the last inference te-run ran, the CRC of its input, and its ticks (-1:
 * the arena has changed since) */
static long last_run = -1;
static uint32_t last_run_crc;
static uint64_t last_ticks;

static void invoke(void) {
  last_run = -1;
  layer_mark = te_port_ticks();
  tinyeff_invoke();
}

/* Element I of output 0 as a real number: dequantized, or the float a DEQUANTIZE wrote. */
static float output_value(int i) {
  const uint8_t *y = (const uint8_t *)tinyeff_output(0);
#if TINYEFF_OUTPUT_TYPE == TE_TYPE_FLOAT32
  float v;
  memcpy(&v, y + 4 * i, sizeof v);
  return v;
#elif TINYEFF_OUTPUT_TYPE == TE_TYPE_INT32
  int32_t q;
  memcpy(&q, y + 4 * i, sizeof q);
  return (float)((int64_t)q - TINYEFF_OUTPUT_ZERO_POINT) * TINYEFF_OUTPUT_SCALE;
#elif TINYEFF_OUTPUT_TYPE == TE_TYPE_INT16
  int16_t q;
  memcpy(&q, y + 2 * i, sizeof q);
  return (float)(q - TINYEFF_OUTPUT_ZERO_POINT) * TINYEFF_OUTPUT_SCALE;
#else
  return (float)(((const int8_t *)y)[i] - TINYEFF_OUTPUT_ZERO_POINT) * TINYEFF_OUTPUT_SCALE;
#endif
}

static const uint32_t input_sizes[TINYEFF_INPUTS] = TINYEFF_INPUT_SIZES;
static const uint32_t output_sizes[TINYEFF_OUTPUTS] = TINYEFF_OUTPUT_SIZES;

/* The uploaded bytes into the model's inputs, each in turn (layers may overwrite an input in
 * place, so this runs before every inference). */
static void load_inputs(void) {
  const uint8_t *p = db;
  for (int i = 0; i < TINYEFF_INPUTS; ++i) {
    memcpy(tinyeff_input(i), p, input_sizes[i]);
    p += input_sizes[i];
  }
}

/* Every output's bytes in hex, one output after another. */
static void put_outputs(void) {
  for (int i = 0; i < TINYEFF_OUTPUTS; ++i) {
    const uint8_t *y = (const uint8_t *)tinyeff_output(i);
    for (uint32_t k = 0; k < output_sizes[i]; ++k) put_hex8(y[k]);
  }
}

static void results(void) {
  put("m-results-[");
  for (int i = 0; i < TINYEFF_OUTPUT_ELEMENTS; ++i) {
    /* with 3 decimals, as the MLPerf Tiny reference prints its results */
    float real = output_value(i) * 1000.0f;
    if (!(real > -2e9f && real < 2e9f)) real = 0.0f; /* keeps the conversion defined for inf and NaN */
    int32_t milli = (int32_t)real;
    if (milli < 0) { out('-'); milli = -milli; }
    put_u64((uint64_t)(milli / 1000));
    out('.');
    out((char)('0' + milli / 100 % 10));
    out((char)('0' + milli / 10 % 10));
    out((char)('0' + milli % 10));
    if (i + 1 < TINYEFF_OUTPUT_ELEMENTS) out(',');
  }
  put("]\r\n");
}

static void infer(const char *n_arg, const char *w_arg) {
  long n = n_arg ? parse_count(n_arg) : 1, w = w_arg ? parse_count(w_arg) : 10;
  if (n <= 0) { put("e-[Inference iterations must be >0]\r\n"); return; }
  if (w < 0) { put("e-[Inference warmup must be >=0]\r\n"); return; }
  if (n > TE_INFER_MAX || w > TE_INFER_MAX) { put("e-[Inference iterations and warmup must be <= "); put_u64((uint64_t)TE_INFER_MAX); put("]\r\n"); return; }
  if (db_pos != TINYEFF_INPUT_BYTES) {
    put("e-[Input db has ");
    put_u64(db_pos);
    put(" bytes, expected ");
    put_u64(TINYEFF_INPUT_BYTES);
    put("]\r\n");
    return;
  }
  put("m-warmup-start-"); put_u64((uint64_t)w); put("\r\n");
  for (long i = 0; i < w; ++i) { load_inputs(); invoke(); }
  put("m-warmup-done\r\n");
  put("m-infer-start-"); put_u64((uint64_t)n); put("\r\n");
  lap();
  for (long i = 0; i < n; ++i) { load_inputs(); invoke(); }
  lap();
  put("m-infer-done\r\n");
  results();
}

/* The bytes of a te-put are all in bin_dst[bin_off..]: checked against their CRC, then the reply. */
static void put_done(void) {
  line_crc = 0;
  if (crc32_update(0, bin_dst + bin_off, bin_len) != bin_crc) {
    put("e-[te-put CRC mismatch]\r\n");
  } else {
    if (bin_dst == db) {
      db_size = TINYEFF_INPUT_BYTES;
      if (bin_off + bin_len > db_pos) db_pos = bin_off + bin_len;
    }
    put("m-te-put-ok\r\n");
  }
  crc_line();
  ready();
}

/* te-put OFF LEN CRC: LEN raw bytes follow the '%' and land in db[OFF..]; their CRC-32 must
 * equal CRC. A binary upload takes half the bytes of hex, and a CRC per chunk means a corrupted
 * chunk is sent again instead of poisoning the input.
 * te-fput OFF LEN CRC (FROM_HOST): the same LEN bytes read from the start of the host's input file
 * (te_port_host_read) instead of the link: on an emulator, whose UART costs its host tens of
 * microseconds per byte received, a 490-byte input costs about as much as the inference. */
static void te_put(const char *off_arg, const char *len_arg, const char *crc_arg, uint8_t *dst, size_t cap,
                   const char *name, const char *what, int from_host) {
  long off = parse_count(off_arg), len = parse_count(len_arg);
  int ok;
  uint32_t crc = parse_hex32(crc_arg, &ok);
  if (off < 0 || len <= 0 || !ok) {
    put("e-[Usage: "); put(name); put(from_host ? " OFFSET LENGTH CRC32HEX]\r\n" : " OFFSET LENGTH CRC32HEX, then LENGTH raw bytes]\r\n");
    crc_line(); ready(); return;
  }
  if ((size_t)off + (size_t)len > cap) {
    put("e-["); put(name); put(" past the end of the "); put_u64(cap); put("-byte "); put(what); put("]\r\n");
    crc_line(); ready(); return;
  }
  bin_dst = dst;
  bin_off = bin_pos = (size_t)off;
  bin_len = (size_t)len;
  bin_left = from_host ? 0 : bin_len;
  bin_crc = crc;
  bin_last_tick = te_port_ticks();
  if (from_host) {
    if (te_port_host_read(dst + off, (uint32_t)len) != 0) {
      put("e-["); put(name); put(": this board has no host input file of "); put_u64((uint64_t)len); put(" bytes]\r\n");
      crc_line(); ready(); return;
    }
    put_done();
  }
  /* else no reply yet: it comes when the bytes are in (te_put_byte) or stop coming (te_protocol_idle) */
}

static void te_put_byte(uint8_t b) {
  bin_dst[bin_pos++] = b;
  bin_last_tick = te_port_ticks();
  if (!--bin_left) put_done();
}

/* m-te-run-[outputs, hex]-[model ticks], and -[front-end ticks] when FRONTEND is given (te-raw-run) */
static void put_run_reply(uint64_t ticks, const uint64_t *frontend) {
  put("m-te-run-[");
  put_outputs();
  put("]-[");
  put_u64(ticks);
  if (frontend) {
    put("]-[");
    put_u64(*frontend);
  }
  put("]\r\n");
}

/* te-run CRC [N]: one inference on db if its CRC-32 is CRC; the reply carries the output bytes,
 * the ticks it took and a CRC-32 of that text. N numbers the host's inference: a te-run with the
 * number of the last one run (the host asking again after a damaged reply) sends that inference's
 * outputs again instead of running another, so a model with state (an LSTM) advances once per
 * sample however noisy the link (a repeat must also carry the same input CRC). */
static void te_run(const char *crc_arg, const char *n_arg) {
  int ok;
  uint32_t want = parse_hex32(crc_arg, &ok);
  long n = n_arg ? parse_count(n_arg) : -1;
  if (!ok || (n_arg && n < 0)) { put("e-[Usage: te-run CRC32HEX of the whole input [N < 10^9]]\r\n"); return; }
  uint32_t have = crc32_update(0, db, TINYEFF_INPUT_BYTES);
  if (have != want) { put("e-[te-run input CRC "); put_hex32(have); put(", expected "); put_hex32(want); put("]\r\n"); return; }
  uint64_t ticks = last_ticks;
  /* a repeat is the same number for the same input: a harness that connects again to a board that
   * did not reset counts from the start again, and its first te-run must not get the old outputs */
  if (n < 0 || n != last_run || have != last_run_crc) {
    load_inputs();
    uint64_t start = te_port_ticks();
    invoke();
    ticks = last_ticks = te_port_ticks() - start;
    last_run = n;
    last_run_crc = have;
  }
  put_run_reply(ticks, NULL);
}

#ifdef TE_RAW_FRONTEND
static uint64_t last_frontend_ticks;

/* Refuses by name (and returns 1) what the front end cannot take of the raw buffer's first LEN bytes:
 * a text that is not UTF-8, a clip of an odd number of bytes. */
static int raw_refused(size_t len) {
#ifdef TE_TEXT_FRONTEND
  size_t at = te_utf8_invalid_at(raw_buf, len);
  if (at == len) return 0;
  put("e-[te-raw-run: the text is not UTF-8 at byte "); put_u64(at); put("]\r\n");
#else
  if (len % 2u == 0) return 0;
  put("e-[te-raw-run: "); put_u64(len); put(" bytes are not whole 16-bit samples]\r\n");
#endif
  return 1;
}

/* The front end on the first LEN bytes of the raw buffer, straight into the model's input. */
static void raw_frontend(size_t len) {
#ifdef TE_TEXT_FRONTEND
  static const te_projection_t cfg = {TE_TEXT_FEATURES, TE_TEXT_MAX_TOKENS, TE_TEXT_NGRAM, TE_TEXT_MIN_NGRAM,
                                          TE_TEXT_WORD_PAIRS};
  te_project_int8(&cfg, raw_buf, len, TE_INPUT_SCALE, TE_INPUT_ZERO_POINT, text_row, (int8_t *)tinyeff_input(0));
#elif defined(TE_MICRO_FRONTEND)
  micro_init_once();
  te_micro_int8(&micro, (const int16_t *)raw_words, len / 2u, TE_MICRO_CLIP_SAMPLES, TE_INPUT_SCALE, TE_INPUT_ZERO_POINT,
                (int8_t *)tinyeff_input(0));
#else
  /* little-endian samples, as the host sends them and as every Cortex-M stores them */
  te_audio_int8(&te_audio_config, (const int16_t *)raw_words, len / 2u, TE_INPUT_SCALE, TE_INPUT_ZERO_POINT, audio_work,
                (int8_t *)tinyeff_input(0));
#endif
}

/* te-raw-run LEN CRC [N]: the front end on the first LEN bytes of the raw buffer (whose CRC-32 is CRC),
 * then one inference. The reply is te-run's with the front end's ticks after the model's; N repeats a
 * reply as te-run's does. */
static void te_raw_run(const char *len_arg, const char *crc_arg, const char *n_arg) {
  long len = parse_count(len_arg), n = n_arg ? parse_count(n_arg) : -1;
  int ok;
  uint32_t want = parse_hex32(crc_arg, &ok);
  if (len < 0 || !ok || (n_arg && n < 0)) { put("e-[Usage: te-raw-run LENGTH CRC32HEX of the sample [N < 10^9]]\r\n"); return; }
  if (len == 0) { put("e-[te-raw-run: the sample is empty]\r\n"); return; }
  if ((size_t)len > TE_RAW_MAX_BYTES) {
    put("e-[te-raw-run: a sample of "); put_u64((uint64_t)len); put(" bytes is longer than the ");
    put_u64(TE_RAW_MAX_BYTES); put("-byte raw input buffer]\r\n");
    return;
  }
  uint32_t have = crc32_update(0, raw_buf, (size_t)len);
  if (have != want) { put("e-[te-raw-run input CRC "); put_hex32(have); put(", expected "); put_hex32(want); put("]\r\n"); return; }
  if (raw_refused((size_t)len)) return;
  uint64_t ticks = last_ticks, frontend = last_frontend_ticks;
  if (n < 0 || n != last_run || have != last_run_crc) {
    uint64_t start = te_port_ticks();
    raw_frontend((size_t)len);
    uint64_t made = te_port_ticks();
    invoke();
    ticks = last_ticks = te_port_ticks() - made;
    frontend = last_frontend_ticks = made - start;
    last_run = n;
    last_run_crc = have;
  }
  put_run_reply(ticks, &frontend);
}
#endif

#ifdef TE_STREAM
/* A keyword stream (te_stream.h): te-stream-start begins one, each te-stream-push feeds it whole hops of the
 * raw buffer. The last push's outputs and reports are kept, so that a push asked again after a damaged reply
 * is answered again rather than heard twice (the stream would move on). */
static uint8_t stream_mem[TE_STREAM_STATE_BYTES];
static te_stream_t stream;
static int stream_started;
static long stream_last_n = -1;
static uint32_t stream_last_crc;
static int32_t stream_hops, stream_inferences, stream_reports;
static uint64_t stream_model_ticks, stream_frontend_ticks;
static int8_t stream_outputs[TE_STREAM_MAX_INFERENCES * TE_STREAM_CLASSES];
static int32_t stream_report_hop[TE_STREAM_MAX_INFERENCES];
static uint8_t stream_report_class[TE_STREAM_MAX_INFERENCES];
static int8_t stream_row[TE_STREAM_N_OUT];
#ifndef TE_MICRO_FRONTEND
static int16_t stream_window[TE_STREAM_WINDOW_SAMPLES]; /* te_audio.c keeps no samples itself */
#endif

/* The front end from a fresh start: its row of silence into SILENCE. */
static void stream_frontend_reset(int8_t *silence) {
#ifdef TE_MICRO_FRONTEND
  micro_init_once();
  te_micro_reset(&micro);
  memset(silence, (int8_t)TE_INPUT_ZERO_POINT, TE_STREAM_N_OUT); /* features of 0, quantized */
#else
  memset(stream_window, 0, sizeof stream_window);
  te_audio_frame_int8(&te_audio_config, stream_window, TE_STREAM_WINDOW_SAMPLES, 0, TE_INPUT_SCALE, TE_INPUT_ZERO_POINT,
                      audio_work, silence);
#endif
}

/* The front end's row for one more hop of samples, or NULL while its window is still filling. */
static const int8_t *stream_frontend_hop(const int16_t *hop) {
#ifdef TE_MICRO_FRONTEND
  return te_micro_hop_int8(&micro, hop, TE_INPUT_SCALE, TE_INPUT_ZERO_POINT, stream_row) ? stream_row : NULL;
#else
  te_audio_hop_int8(&te_audio_config, stream_window, hop, TE_INPUT_SCALE, TE_INPUT_ZERO_POINT, audio_work, stream_row);
  return stream_row;
#endif
}

static void te_stream_start(void) {
  stream_frontend_reset(stream_row);
  te_stream_reset(&stream, &te_stream_config, stream_mem, stream_row);
  stream_started = 1;
  stream_last_n = -1;
  put("m-te-stream-started-[");
  put_u64(TE_STREAM_HOP_SAMPLES);
  put("]\r\n");
}

/* The hops of the raw buffer's first LEN bytes through the stream, each inference it asks for on the model. */
static void stream_hops_of(size_t len) {
  const size_t hop = TE_STREAM_HOP_SAMPLES;
  const int16_t *pcm = (const int16_t *)raw_words;
  stream_inferences = stream_reports = 0;
  stream_model_ticks = stream_frontend_ticks = 0;
  for (size_t at = 0; at + hop <= len / 2u; at += hop) {
    uint64_t start = te_port_ticks();
    int due = te_stream_hop(&stream, stream_frontend_hop(pcm + at), (int8_t *)tinyeff_input(0));
    uint64_t made = te_port_ticks();
    stream_frontend_ticks += made - start;
    if (!due) continue;
    invoke();
    stream_model_ticks += te_port_ticks() - made;
    const int8_t *y = (const int8_t *)tinyeff_output(0);
    memcpy(stream_outputs + (size_t)stream_inferences * TE_STREAM_CLASSES, y, TE_STREAM_CLASSES);
    stream_inferences++;
    int32_t c = te_stream_posterior(&stream, y);
    if (c >= 0) {
      stream_report_hop[stream_reports] = stream.hops;
      stream_report_class[stream_reports++] = (uint8_t)c;
    }
  }
  stream_hops = stream.hops;
}

/* te-stream-push LEN CRC N: the first LEN bytes of the raw buffer (whole hops; CRC-32 CRC) into the stream.
 * m-te-stream-[hops heard]-[outputs of each inference, hex]-[reports, hops.class comma-separated]-[model
 * ticks]-[front-end ticks]. N numbers the push: the same N and CRC again is answered from the last push. */
static void te_stream_push(const char *len_arg, const char *crc_arg, const char *n_arg) {
  long len = parse_count(len_arg), n = parse_count(n_arg);
  int ok;
  uint32_t want = parse_hex32(crc_arg, &ok);
  const size_t hop_bytes = 2u * TE_STREAM_HOP_SAMPLES;
  if (len < 0 || !ok || n < 0) { put("e-[Usage: te-stream-push LENGTH CRC32HEX N < 10^9]\r\n"); return; }
  if (!stream_started) { put("e-[te-stream-push: no stream; send te-stream-start first]\r\n"); return; }
  if (len == 0 || (size_t)len % hop_bytes) {
    put("e-[te-stream-push: "); put_u64((uint64_t)len); put(" bytes are not whole hops of ");
    put_u64(hop_bytes); put(" bytes]\r\n");
    return;
  }
  if ((size_t)len > TE_RAW_MAX_BYTES) {
    put("e-[te-stream-push: "); put_u64((uint64_t)len); put(" bytes are more than the ");
    put_u64(TE_RAW_MAX_BYTES); put("-byte raw input buffer]\r\n");
    return;
  }
  uint32_t have = crc32_update(0, raw_buf, (size_t)len);
  if (have != want) { put("e-[te-stream-push input CRC "); put_hex32(have); put(", expected "); put_hex32(want); put("]\r\n"); return; }
  if (n != stream_last_n || have != stream_last_crc) {
    stream_hops_of((size_t)len);
    stream_last_n = n;
    stream_last_crc = have;
  }
  put("m-te-stream-[");
  put_u64((uint64_t)stream_hops);
  put("]-[");
  for (int32_t i = 0; i < stream_inferences * TE_STREAM_CLASSES; ++i) put_hex8((uint8_t)stream_outputs[i]);
  put("]-[");
  for (int32_t i = 0; i < stream_reports; ++i) {
    if (i) put(",");
    put_u64((uint64_t)stream_report_hop[i]); put("."); put_u64(stream_report_class[i]);
  }
  put("]-[");
  put_u64(stream_model_ticks);
  put("]-[");
  put_u64(stream_frontend_ticks);
  put("]\r\n");
}
#endif

#ifdef TE_SPIN_COMMAND
/* te-spin N: built only for the timing tests. A loop of exactly 2N instructions (Thumb SUBS and
 * BNE, N times) between two timer reads, and the ticks it took: an emulator's instruction count
 * is known in advance, so the tests can check the timer's rate against it. */
static void te_spin(const char *arg) {
  long n = parse_count(arg);
  if (n <= 0) { put("e-[Usage: te-spin N, 0 < N < 10^9]\r\n"); return; }
  uint32_t k = (uint32_t)n;
  uint64_t start = te_port_ticks();
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(k) : : "cc");
  uint64_t ticks = te_port_ticks() - start;
  put("m-te-spin-["); put_u64((uint64_t)n); put("]-["); put_u64(ticks); put("]\r\n");
}
#endif

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
  line_crc = 0;
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
        "te-sig, te-out, te-mem, te-layers [F C], te-put OFF LEN CRC, te-fput OFF LEN CRC, te-run CRC [N]"
#ifdef TE_RAW_FRONTEND
        ", te-raw-put OFF LEN CRC, te-raw-fput OFF LEN CRC, te-raw-run LEN CRC [N]"
#endif
#ifdef TE_STREAM
        ", te-stream-start, te-stream-push LEN CRC N"
#endif
        "\r\n");
  } else if (strcmp(tok, "db") == 0) {
    db_command(word[1], word[2]);
  } else if (strcmp(tok, "infer") == 0) {
    infer(word[1], word[2]);
  } else if (strcmp(tok, "results") == 0) {
    results();
  } else if (strcmp(tok, "te-put") == 0) {
    te_put(word[1], word[2], word[3], db, sizeof db, "te-put", "input", 0);
    return; /* replies once its raw bytes are in */
  } else if (strcmp(tok, "te-fput") == 0) {
    te_put(word[1], word[2], word[3], db, sizeof db, "te-fput", "input", 1);
    return;
  } else if (strcmp(tok, "te-run") == 0) {
    te_run(word[1], word[2]);
#ifdef TE_RAW_FRONTEND
  } else if (strcmp(tok, "te-raw-put") == 0) {
    te_put(word[1], word[2], word[3], raw_buf, TE_RAW_MAX_BYTES, "te-raw-put", "raw input buffer", 0);
    return;
  } else if (strcmp(tok, "te-raw-fput") == 0) {
    te_put(word[1], word[2], word[3], raw_buf, TE_RAW_MAX_BYTES, "te-raw-fput", "raw input buffer", 1);
    return;
  } else if (strcmp(tok, "te-raw-run") == 0) {
    te_raw_run(word[1], word[2], word[3]);
#endif
#ifdef TE_STREAM
  } else if (strcmp(tok, "te-stream-start") == 0) {
    te_stream_start();
  } else if (strcmp(tok, "te-stream-push") == 0) {
    te_stream_push(word[1], word[2], word[3]);
#endif
#ifdef TE_FAULT_COMMAND
  } else if (strcmp(tok, "te-fault") == 0) {
    /* built only for the harness's fault tests: an undefined instruction, escalated to HardFault */
    __asm__ volatile("udf #0");
#endif
#ifdef TE_SPIN_COMMAND
  } else if (strcmp(tok, "te-spin") == 0) {
    te_spin(word[1]);
#endif
  } else if (strcmp(tok, "te-sig") == 0) {
    put("m-te-sig-["); put(TINYEFF_MODEL_SHA256); put("]-["); put(TE_RUNTIME); put("]-["); put(TE_BOARD_ID); put("]\r\n");
  } else if (strcmp(tok, "te-out") == 0) {
    put("m-te-out-[");
    put_outputs();
    put("]\r\n");
  } else if (strcmp(tok, "te-mem") == 0) {
    /* declared and used differ under TFLM, whose arena is sized before its kernels ask for scratch */
    put("m-te-mem-arena-"); put_u64(TINYEFF_ARENA_BYTES + TINYEFF_STATE_BYTES); put("-used-"); put_u64(tinyeff_arena_used());
    put("-stack-"); put_u64(te_port_stack_used()); put("\r\n");
  } else if (strcmp(tok, "te-layers") == 0) {
    te_layers(word[1], word[2]);
  } else {
    put("e-[Unknown command: "); put_echo(tok); put("]\r\n");
  }
  if (tok && strncmp(tok, "te-", 3) == 0) crc_line();
  ready();
}

/* A byte within one bit of TE_FEC_START: the lead of a coded request, damaged or not. No command
 * begins with one (commands begin with a lower-case letter, two bits or more away). */
static int fec_lead_like(uint8_t c) {
  uint8_t d = (uint8_t)(c ^ TE_FEC_START);
  return (d & (uint8_t)(d - 1u)) == 0;
}

static void take_byte(char c);

void te_protocol_byte(char c) {
  if (!fec && !bin_left && (uint8_t)c == TE_FEC_START) {
    cmd_len = 0; /* what came before it was noise: no command holds the byte */
    cmd_overflow = 0;
    fec = 1;
    fec_lead = 2;
    fec_have = 0;
    fec_last_tick = te_port_ticks();
    return;
  }
  if (!fec) {
    take_byte(c);
    return;
  }
  fec_last_tick = te_port_ticks();
  if (fec_lead && fec_have == 0 && fec_lead_like((uint8_t)c)) {
    --fec_lead;
    return;
  }
  fec_lead = 0;
  if (fec_have < 2) {
    fec_got[fec_have++] = (uint8_t)c;
    return;
  }
  fec_have = 0;
  uint8_t a = fec_got[0], b = fec_got[1], v = (uint8_t)c;
  take_byte((char)((a & b) | (a & v) | (b & v)));
}

static void take_byte(char c) {
  if (bin_left) {
    te_put_byte((uint8_t)c);
  } else if (c == '%') {
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

void te_protocol_idle(void) {
  /* a coded request cut short: dropped, unanswered (the host asks again once it hears nothing) */
  if (fec && !bin_left && te_port_ticks() - fec_last_tick > te_port_ticks_hz() / 10u) {
    fec = 0;
    cmd_len = 0;
    cmd_overflow = 0;
  }
  /* dropped bytes would leave te-put waiting forever: give up after 100 ms of silence (noticed
   * when the port next returns without a byte: a port that sleeps may notice it later) */
  if (bin_left && te_port_ticks() - bin_last_tick > te_port_ticks_hz() / 10u) {
    line_crc = 0;
    put("e-[te-put timed out with "); put_u64(bin_left); put(" of "); put_u64(bin_len); put(" bytes missing]\r\n");
    bin_left = 0;
    crc_line();
    ready();
  }
}

void te_protocol_main(void) {
#ifdef TE_MICRO_FRONTEND
  micro_init_once();
#endif
  put("m-init-done\r\n");
  ready();
  for (;;) {
    int c = te_port_poll();
    if (c >= 0) te_protocol_byte((char)c);
    else te_protocol_idle();
  }
}
