/* Arduino port (PlatformIO projects for real boards): the USB/UART Serial, a cycle counter where
 * the core has one (DWT CYCCNT on Cortex-M3/M4/M7/M33, CCOUNT on Xtensa), micros() elsewhere.
 * TE_CLOCK_HZ and TE_BAUD come from the board file through platformio.ini. */
#include <Arduino.h>

extern "C" {
#include "te_port.h"
}

#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)
#define TE_TIMER_DWT 1
#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)
#elif defined(ESP32) || defined(ARDUINO_ARCH_ESP32)
#define TE_TIMER_CCOUNT 1
#endif

static uint32_t last_count, wraps;

static uint32_t raw_count(void) {
#if defined(TE_TIMER_DWT)
  return DWT_CYCCNT;
#elif defined(TE_TIMER_CCOUNT)
  return ESP.getCycleCount();
#else
  return micros();
#endif
}

void te_port_init(void) {
  Serial.begin(TE_BAUD);
  while (!Serial) { /* USB CDC boards: wait for the host to open the port */
  }
#if defined(TE_TIMER_DWT)
  DEMCR |= 1u << 24;    /* TRCENA: enable the DWT */
  DWT_LAR = 0xC5ACCE55u; /* Cortex-M7 locks the DWT until this key is written; elsewhere ignored */
  DWT_CYCCNT = 0;
  DWT_CTRL |= 1u;       /* CYCCNTENA */
#endif
}

void te_port_putc(char c) { Serial.write((uint8_t)c); }

int te_port_poll(void) {
  if (Serial.available() > 0) return Serial.read();
  yield(); /* let the core's USB stack and watchdogs run while the protocol waits */
  return -1;
}

/* The counters are 32-bit: called at least once per wrap (the protocol polls continuously and
 * reads the timer around every layer), a wrap shows as a smaller value than the last one. */
uint64_t te_port_ticks(void) {
  uint32_t now = raw_count();
  if (now < last_count) ++wraps;
  last_count = now;
  return ((uint64_t)wraps << 32) | now;
}

uint32_t te_port_ticks_hz(void) {
#if defined(TE_TIMER_DWT) || defined(TE_TIMER_CCOUNT)
  return TE_CLOCK_HZ;
#else
  return 1000000u;
#endif
}

const char *te_port_timer_name(void) {
#if defined(TE_TIMER_DWT)
  return "dwt";
#elif defined(TE_TIMER_CCOUNT)
  return "ccount";
#else
  return "micros";
#endif
}

uint32_t te_port_stack_used(void) { return 0; /* Arduino cores own the stack: unknown here */ }

void te_port_exit(int status) {
  (void)status;
  for (;;) yield();
}
