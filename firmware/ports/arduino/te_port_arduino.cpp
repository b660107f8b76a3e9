/* Arduino port (PlatformIO projects for real boards): the USB/UART Serial, a cycle counter where
 * the core has one (DWT CYCCNT on Cortex-M3/M4/M7/M33, CCOUNT on Xtensa), micros() elsewhere (the
 * RP2040's Cortex-M0+ has no cycle counter: its latency is in microseconds), a painted stack span
 * for the stack's high-water mark, and on Arm a fault handler that reports the faulting PC as the
 * CMSDK port does. TE_CLOCK_HZ and TE_BAUD come from the board file through platformio.ini. */
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

/* The stack span painted at te_port_init, below the stack pointer of setup()'s call to it: loop()
 * runs at the same depth as setup() in every core's main(), so the span holds what the protocol
 * and the model use. Its size is what each core is known to leave below that point:
 *   ArduinoCore-mbed (nano33ble, rpi-pico): setup() and loop() run on the main thread's stack,
 *     MBED_CONF_RTOS_MAIN_THREAD_STACK_SIZE = 32 KiB in both variants' mbed_config.h; half of it.
 *   stm32duino: the main stack starts at the end of RAM and grows towards the heap; 16 KiB (every
 *     STM32 board here has 320 KiB or more), stopped short of the heap (see paint_stack).
 *   ESP32: loopTask's stack, 8 KiB (CONFIG_ARDUINO_LOOP_STACK_SIZE); half of it.
 * A figure equal to the painted span means the stack went past it: the real use is larger. */
#if !defined(TE_STACK_SPAN_BYTES)
#if defined(ARDUINO_ARCH_MBED) || defined(ARDUINO_ARCH_STM32)
#define TE_STACK_SPAN_BYTES 16384u
#elif defined(ARDUINO_ARCH_ESP32)
#define TE_STACK_SPAN_BYTES 4096u
#else
#define TE_STACK_SPAN_BYTES 2048u
#endif
#endif
#define TE_STACK_GUARD_BYTES 64u    /* left unpainted below the painting function's own frame */
#define TE_HEAP_HEADROOM_BYTES 4096u /* kept free above the end of .bss for the heap to grow into */
#define TE_STACK_PAINT 0xA5A5A5A5u

/* The end of .bss, where the heap starts (GNU Arm linker scripts name it "end"); weak, so a core
 * without it links and the span is then bounded by its size alone. */
extern "C" char te_bss_end[] __asm__("end") __attribute__((weak));

static uint32_t last_count, wraps;
static uint32_t *stack_bottom, *stack_top; /* the painted span [bottom, top) */

static uint32_t raw_count(void) {
#if defined(TE_TIMER_DWT)
  return DWT_CYCCNT;
#elif defined(TE_TIMER_CCOUNT)
  return ESP.getCycleCount();
#else
  return micros();
#endif
}

/* Not inlined, so its frame is the deepest one while it paints: everything below it is free. */
static void __attribute__((noinline)) paint_stack(void) {
  volatile uint32_t here = 0;
  uintptr_t top = ((uintptr_t)&here - TE_STACK_GUARD_BYTES) & ~(uintptr_t)3u;
  uintptr_t bottom = top - TE_STACK_SPAN_BYTES;
  uintptr_t heap = (uintptr_t)te_bss_end;
  if (heap != 0 && heap < top && heap + TE_HEAP_HEADROOM_BYTES > bottom) { /* the stack sits above the heap */
    bottom = heap + TE_HEAP_HEADROOM_BYTES < top ? heap + TE_HEAP_HEADROOM_BYTES : top;
  }
  stack_bottom = (uint32_t *)((bottom + 3u) & ~(uintptr_t)3u);
  stack_top = (uint32_t *)top;
  for (volatile uint32_t *p = stack_bottom; p < stack_top; ++p) *p = TE_STACK_PAINT;
}

#if defined(__arm__)
/* HardFault: the Arm Arduino cores disagree about who owns HardFault_Handler. stm32duino's startup
 * file defines it weak, but PlatformIO links ArduinoCore-mbed's libmbed.a whole
 * (-Wl,--whole-archive), whose except.S defines it strongly: a definition here would be a
 * duplicate symbol on nano33ble and rpi-pico. So the port defines no handler symbol at all: at
 * te_port_init it writes its handler into the vector table the core runs from (SCB->VTOR) for
 * HardFault (and MemManage, BusFault, UsageFault on ARMv7-M/v8-M, as the CMSDK port does),
 * after copying the table to RAM when it is in flash.
 *
 * The fault is reported from thread mode, not from the handler: Serial is USB CDC or an
 * interrupt-driven UART on these cores and cannot send while a fault handler masks interrupts. The
 * handler rewrites the stacked frame so that the exception returns into te_fault_report(pc), which
 * prints "e-[hardfault pc=0x...]" as the CMSDK port does and stops. A fault while stacking (the
 * stack itself overflowed) cannot be reported this way; the core then locks up. */
#define SCB_VTOR (*(volatile uint32_t *)0xE000ED08u)
#define SCS_ICTR (*(volatile const uint32_t *)0xE000E004u)
#define TE_SRAM_START 0x20000000u /* the Arm memory map's SRAM region: a table there is writable */
#define TE_SRAM_END 0x40000000u
#if defined(__ARM_ARCH_6M__)
#define TE_VECTORS 48u /* 16 system + at most 32 interrupts on ARMv6-M */
#define TE_VECTORS_ALIGN 256
#define TE_FAULT_VECTORS 1u
#else
#define TE_VECTORS 256u /* up to 240 interrupts, more than any board here has (checked against ICTR) */
#define TE_VECTORS_ALIGN 1024
#define TE_FAULT_VECTORS 4u /* HardFault, MemManage, BusFault, UsageFault */
#endif
static uint32_t ram_vectors[TE_VECTORS] __attribute__((aligned(TE_VECTORS_ALIGN)));
static volatile uint32_t faulted;

static void put_hex32(uint32_t v) {
  for (int i = 28; i >= 0; i -= 4) te_port_putc("0123456789abcdef"[(v >> i) & 15u]);
}

extern "C" __attribute__((noreturn, used)) void te_fault_report(uint32_t pc) {
  const char *msg = "\r\ne-[hardfault pc=0x";
  while (*msg) te_port_putc(*msg++);
  put_hex32(pc);
  msg = "]\r\n";
  while (*msg) te_port_putc(*msg++);
  Serial.flush();
  te_port_exit(3);
  for (;;) {
  }
}

/* Called by the handler with the exception's stacked frame: r0-r3, r12, lr, pc, xPSR. */
extern "C" __attribute__((used)) void te_fault_redirect(uint32_t *frame) {
  if (faulted) { /* a fault while reporting one: nothing more can be said */
    for (;;) {
    }
  }
  faulted = 1;
  frame[0] = frame[6];                                 /* r0: te_fault_report's argument, the faulting pc */
  frame[6] = (uint32_t)&te_fault_report & ~1u;         /* where the exception returns to */
  frame[7] = (frame[7] & 0x3FFu) | (1u << 24);         /* keep the exception number and the stack-alignment bit; Thumb, no IT block */
}

/* Finds the frame on the stack the exception used (EXC_RETURN bit 2), lets te_fault_redirect
 * rewrite it, then returns from the exception with EXC_RETURN. ARMv6-M instructions only. */
extern "C" __attribute__((naked, used)) void te_fault_entry(void) {
  __asm__ volatile(
      "mov r2, lr\n"
      "movs r1, #4\n"
      "tst r1, r2\n"
      "bne 1f\n"
      "mrs r0, msp\n"
      "b 2f\n"
      "1:\n"
      "mrs r0, psp\n"
      "2:\n"
      "push {r2, r3}\n"
      "bl te_fault_redirect\n"
      "pop {r2, r3}\n"
      "bx r2\n");
}

static void install_fault_handler(void) {
  uint32_t *table = (uint32_t *)SCB_VTOR;
  uint32_t primask;
  __asm__ volatile("mrs %0, primask\ncpsid i" : "=r"(primask)::"memory");
  if ((uint32_t)table < TE_SRAM_START || (uint32_t)table >= TE_SRAM_END) { /* in flash: run from a copy in RAM */
#if defined(__ARM_ARCH_6M__)
    uint32_t n = TE_VECTORS;
#else
    uint32_t n = 16u + 32u * ((SCS_ICTR & 0xFu) + 1u);
#endif
    if (n > TE_VECTORS) { /* more interrupts than the copy holds: keep the core's handler */
      __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
      return;
    }
    for (uint32_t i = 0; i < n; ++i) ram_vectors[i] = table[i];
    table = ram_vectors;
    __asm__ volatile("dsb" ::: "memory");
    SCB_VTOR = (uint32_t)ram_vectors;
  }
  for (uint32_t i = 0; i < TE_FAULT_VECTORS; ++i) table[3 + i] = (uint32_t)&te_fault_entry;
  __asm__ volatile("dsb\nisb\nmsr primask, %0" ::"r"(primask) : "memory");
}
#endif

void te_port_init(void) {
  paint_stack();
#if defined(__arm__)
  install_fault_handler();
#endif
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
  return 1000000u; /* micros(): microseconds, whatever the core's clock */
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

/* The stack's high-water mark in the painted span: from its top down to the lowest word that no
 * longer holds the paint. */
uint32_t te_port_stack_used(void) {
  const volatile uint32_t *p = stack_bottom;
  while (p < stack_top && *p == TE_STACK_PAINT) ++p;
  return (uint32_t)((uintptr_t)stack_top - (uintptr_t)p);
}

void te_port_exit(int status) {
  (void)status;
  for (;;) yield();
}

/* A real board has no host file: its inputs come over the link (te-put). */
int te_port_host_read(uint8_t *dst, uint32_t len) {
  (void)dst;
  (void)len;
  return -1;
}
