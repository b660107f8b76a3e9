/* The stand-in Arduino core's body (see Arduino.h): startup, vector table, Serial, micros().
 * Like ArduinoCore-mbed it defines HardFault_Handler strongly, so a port that defined its own
 * would not link, and with -DTE_STUB_RAM_VECTORS it runs from a copy of its vector table in RAM,
 * as mbed does on the nRF52840 and the RP2040; without it the table stays in flash, as stm32duino's.
 * TE_UART_BASE and TE_QEMU_HZ (the emulated CPU clock) come from the test. */
#include "Arduino.h"

#include <string.h>

#define REG(addr) (*(volatile uint32_t *)(addr))
#define UART_DATA REG(TE_UART_BASE + 0x00)
#define UART_STATE REG(TE_UART_BASE + 0x04)
#define UART_CTRL REG(TE_UART_BASE + 0x08)
#define UART_BAUDDIV REG(TE_UART_BASE + 0x10)
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)
#define SCB_VTOR REG(0xE000ED08)
#define SCB_CPACR REG(0xE000ED88)

extern "C" {
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
void Reset_Handler(void);
void HardFault_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);
}

StubSerial Serial;
static volatile uint32_t systick_wraps;

size_t StubSerial::write(uint8_t c) {
  while (UART_STATE & 1u) { /* TX full */
  }
  UART_DATA = c;
  return 1;
}

int StubSerial::available() { return (UART_STATE & 2u) ? 1 : 0; }

int StubSerial::read() { return (UART_STATE & 2u) ? (int)(UART_DATA & 0xFFu) : -1; }

void yield(void) {}

uint32_t micros(void) {
  uint32_t wraps, value;
  do {
    wraps = systick_wraps;
    value = SYST_CVR;
  } while (wraps != systick_wraps);
  return (uint32_t)((((uint64_t)wraps << 24) + (0x00FFFFFFu - value)) / (TE_QEMU_HZ / 1000000u));
}

static void semihost_exit(int status) {
  uint32_t block[2] = {0x20026u, (uint32_t)status};
  register int r0 __asm__("r0") = 0x20;
  register void *r1 __asm__("r1") = block;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  for (;;) {
  }
}

void SysTick_Handler(void) { ++systick_wraps; }

/* The core's own handler: the test fails if this one reports instead of the port's. */
void HardFault_Handler(void) {
  const char *msg = "\r\ne-[the stand-in core's own HardFault handler ran]\r\n";
  while (*msg) Serial.write((uint8_t)*msg++);
  semihost_exit(5);
}

void Default_Handler(void) { HardFault_Handler(); }

__attribute__((section(".vectors"), used)) void (*const vectors[48])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, HardFault_Handler,
    HardFault_Handler, HardFault_Handler, HardFault_Handler, 0, 0, 0, 0,
    Default_Handler, Default_Handler, 0, Default_Handler, SysTick_Handler,
};

#if defined(TE_STUB_RAM_VECTORS)
static uint32_t ram_vectors[48] __attribute__((aligned(256)));
#endif

int main(void) {
  setup();
  for (;;) loop();
}

void Reset_Handler(void) {
  memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
  memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
#if defined(__ARM_FP)
  SCB_CPACR |= 0xFu << 20;
  __asm__ volatile("dsb\nisb");
#endif
#if defined(TE_STUB_RAM_VECTORS)
  memcpy(ram_vectors, vectors, sizeof vectors);
  __asm__ volatile("dsb");
  SCB_VTOR = (uint32_t)ram_vectors;
  __asm__ volatile("dsb\nisb");
#endif
  UART_BAUDDIV = 16;
  UART_CTRL = 3;
  SYST_RVR = 0x00FFFFFFu;
  SYST_CVR = 0;
  SYST_CSR = 7;
  for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f) (*f)();
  semihost_exit(main());
}
