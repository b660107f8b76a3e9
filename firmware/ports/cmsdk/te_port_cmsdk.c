/* Bare-metal port for Arm MPS2/MPS3 boards (QEMU mps2-an386/an500/an505, mps3-an547):
 * vector table and reset, CMSDK UART, SysTick as a 64-bit tick counter, a painted stack for
 * its high-water mark, a HardFault handler that reports the faulting PC, semihosting exit.
 * TE_UART_BASE, TE_UART_RX_IRQ and TE_CLOCK_HZ come from the board file through the generated
 * Makefile.
 *
 * While no byte is waiting the core sleeps (WFI) until the UART's receive interrupt or the SysTick
 * wrap: a polling loop would keep an emulator's host core busy all the time the harness is not
 * talking to it, and several emulated boards benching at once would take the cores from each other
 * (measured on 2 cores: two QEMU boards 1.3x faster than one with the polling loop). */
#include <stdint.h>
#include <string.h>

#include "te_port.h"
#include "te_protocol.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define UART_DATA REG(TE_UART_BASE + 0x00)
#define UART_STATE REG(TE_UART_BASE + 0x04)
#define UART_CTRL REG(TE_UART_BASE + 0x08)
#define UART_INTCLEAR REG(TE_UART_BASE + 0x0C)
#define UART_BAUDDIV REG(TE_UART_BASE + 0x10)
#define NVIC_ISER(irq) REG(0xE000E100u + 4u * ((irq) / 32u))
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)
#define SCB_CPACR REG(0xE000ED88)
#define STACK_PAINT 0xA5A5A5A5u

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top, _stack_limit;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

static volatile uint32_t systick_wraps;

void te_port_init(void) {
  UART_BAUDDIV = 16;
  UART_CTRL = 3u | 8u; /* TX and RX enabled, an interrupt when a byte is received */
  NVIC_ISER(TE_UART_RX_IRQ) = 1u << (TE_UART_RX_IRQ % 32u);
  SYST_RVR = 0x00FFFFFFu;
  SYST_CVR = 0;
  SYST_CSR = 7; /* processor clock, interrupt on wrap, enabled */
}

void te_port_putc(char c) {
  while (UART_STATE & 1u) { /* TX full */ }
  UART_DATA = (uint8_t)c;
}

/* Empty polls before the core sleeps: a burst of bytes (a te-put) arrives faster than this, and
 * waking per byte costs an emulator a round of its event loop each (measured: the demo's samples
 * 25 % slower when the core slept after every byte). About 20,000 instructions. */
#ifndef SPINS_BEFORE_SLEEP
#define SPINS_BEFORE_SLEEP 1000u
#endif

int te_port_poll(void) {
  static uint32_t empty_polls;
  if (!(UART_STATE & 2u)) { /* RX empty */
    if (++empty_polls < SPINS_BEFORE_SLEEP) return -1;
    /* with interrupts masked, a byte that comes between the test and the WFI leaves its interrupt
     * pending, and a pending interrupt ends WFI at once: none is slept through */
    __asm__ volatile("cpsid i" ::: "memory");
    if (!(UART_STATE & 2u)) __asm__ volatile("dsb\n\twfi" ::: "memory");
    __asm__ volatile("cpsie i\n\tisb" ::: "memory"); /* the UART and SysTick handlers run here */
    if (!(UART_STATE & 2u)) return -1;
  }
  empty_polls = 0;
  return (int)(UART_DATA & 0xFFu);
}

/* The receive interrupt only wakes the core; the byte is read by te_port_poll. */
void te_uart_rx_handler(void) { UART_INTCLEAR = 2u; }

void SysTick_Handler(void) { ++systick_wraps; }

uint64_t te_port_ticks(void) {
  uint32_t wraps, value;
  do { /* a wrap between the two reads would pair a new count with an old wrap number */
    wraps = systick_wraps;
    value = SYST_CVR;
  } while (wraps != systick_wraps);
  return ((uint64_t)wraps << 24) + (0x00FFFFFFu - value);
}

uint32_t te_port_ticks_hz(void) { return TE_CLOCK_HZ; }

const char *te_port_timer_name(void) { return "systick"; }

uint32_t te_port_stack_used(void) {
  const uint32_t *p = &_stack_limit;
  while (p < &_stack_top && *p == STACK_PAINT) ++p;
  return (uint32_t)((const char *)&_stack_top - (const char *)p);
}

static int semihost(int op, void *arg) {
  register int r0 __asm__("r0") = op;
  register void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

/* The host's input file through semihosting (QEMU runs with -semihosting-config target=native, in
 * the directory where the harness writes the file): opened once, then each te-fput seeks to its
 * start and reads. A board without a debugger attached would fault on the BKPT; the harness asks for
 * the file only from an emulator it started. */
int te_port_host_read(uint8_t *dst, uint32_t len) {
  static int handle = -1;
  if (handle < 0) {
    static const char name[] = TE_HOST_FILE;
    uint32_t open_block[3] = {(uint32_t)name, 1u /* "rb" */, sizeof name - 1u};
    handle = semihost(0x01 /* SYS_OPEN */, open_block);
    if (handle < 0) return -1;
  }
  uint32_t seek_block[2] = {(uint32_t)handle, 0u};
  uint32_t read_block[3] = {(uint32_t)handle, (uint32_t)dst, len};
  if (semihost(0x0A /* SYS_SEEK */, seek_block) != 0) return -1;
  return semihost(0x06 /* SYS_READ: the bytes not read */, read_block) == 0 ? 0 : -1;
}

void te_port_exit(int status) {
  uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
  semihost(0x20 /* SYS_EXIT_EXTENDED */, block);
  for (;;) {}
}

static void put_hex32(uint32_t v) {
  for (int i = 28; i >= 0; i -= 4) te_port_putc("0123456789abcdef"[(v >> i) & 15u]);
}

/* Report where the fault happened, then stop the emulator with status 3. */
void te_fault_report(uint32_t *frame) {
  const char *msg = "\r\ne-[hardfault pc=0x";
  while (*msg) te_port_putc(*msg++);
  put_hex32(frame[6]);
  te_port_putc(']');
  te_port_putc('\r');
  te_port_putc('\n');
  te_port_exit(3);
}

__attribute__((naked)) void HardFault_Handler(void) {
  __asm__ volatile(
      "tst lr, #4\n"
      "ite eq\n"
      "mrseq r0, msp\n"
      "mrsne r0, psp\n"
      "b te_fault_report\n");
}

void Default_Handler(void) { HardFault_Handler(); }

int main(void);

__attribute__((noreturn)) void Reset_Handler(void) {
  memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
  memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
#if defined(__ARM_FP)
  SCB_CPACR |= 0xFu << 20; /* CP10 and CP11: the FPU */
  __asm__ volatile("dsb\nisb");
#endif
  /* paint the unused stack below the current frame, to measure its high-water mark later */
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (uint32_t *p = &_stack_limit; p < sp - 16; ++p) *p = STACK_PAINT;
  for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f) (*f)();
  te_port_init();
  te_port_exit(main());
  for (;;) {}
}

#ifndef TE_UART_RX_IRQ
#error "TE_UART_RX_IRQ (the board's UART receive interrupt) is not defined: build with the generated Makefile"
#endif

/* the 16 exception vectors, then the external interrupts up to the UART's receive interrupt */
__attribute__((section(".vectors"), used)) void (*const te_vectors[16 + TE_UART_RX_IRQ + 1])(void) = {
    (void (*)(void))(&_stack_top), Reset_Handler, Default_Handler, HardFault_Handler,
    HardFault_Handler, HardFault_Handler, HardFault_Handler, 0, 0, 0, 0,
    Default_Handler, Default_Handler, 0, Default_Handler, SysTick_Handler,
#if TE_UART_RX_IRQ > 0
    [16 ... 16 + TE_UART_RX_IRQ - 1] = Default_Handler,
#endif
    [16 + TE_UART_RX_IRQ] = te_uart_rx_handler,
};

int main(void) {
  te_protocol_main();
  return 0;
}
