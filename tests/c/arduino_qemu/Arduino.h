/* A stand-in for an Arduino core on QEMU's MPS2 boards, for tests only: Serial on the CMSDK UART,
 * micros() from SysTick, main() calling setup() then loop(). It lets the Arduino port
 * (firmware/ports/arduino) and a PlatformIO project's own sources, as `tinyeff build` compiled
 * them, run in QEMU; it says nothing about a real core's Serial or timing. */
#ifndef TE_ARDUINO_QEMU_H
#define TE_ARDUINO_QEMU_H

#include <stddef.h>
#include <stdint.h>

class StubSerial {
 public:
  void begin(unsigned long) {}
  explicit operator bool() const { return true; }
  size_t write(uint8_t c);
  int available();
  int read();
  void flush() {}
};

extern StubSerial Serial;

uint32_t micros(void);
void yield(void);
void setup(void);
void loop(void);

#endif
