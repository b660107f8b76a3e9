"""What PlatformIO's builder for each Arm Arduino core adds to every compile.

PlatformIO builds a project's sources and its libraries with the framework's flags, then the
project's build_flags, minus its build_unflags. The framework is downloaded by PlatformIO and is
not here, so these are the flags that change how portable C and C++ compile (language standard,
optimization, code generation, float ABI), read from the builders named in ``source``. Include
paths and the framework's own defines only matter to files that include the framework's headers,
which the kit does not compile.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ArduinoCore:
    name: str
    source: str  # where the flags were read
    c: tuple[str, ...]  # CFLAGS
    cxx: tuple[str, ...]  # CXXFLAGS
    common: tuple[str, ...]  # CCFLAGS, after the board's -mcpu/-mthumb/-mfpu/-mfloat-abi
    float_abi: dict[str, tuple[str, ...]]  # by -mcpu: what the builder appends after the board's flags (the last one wins)


STM32DUINO = ArduinoCore(
    name="stm32duino (framework-arduinoststm32)",
    source="stm32duino/Arduino_Core_STM32 tools/platformio/platformio-build.py, 2.7 and later",
    c=("-std=gnu17",),
    cxx=("-std=gnu++17", "-fno-threadsafe-statics", "-fno-rtti", "-fno-exceptions", "-fno-use-cxa-atexit"),
    common=("-Os", "-mthumb", "-ffunction-sections", "-fdata-sections", "-nostdlib", "--param", "max-inline-insns-single=500"),
    # the same single-precision FPU for the M4 and the M7
    float_abi={"cortex-m4": ("-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"), "cortex-m7": ("-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")},
)

MBED = ArduinoCore(
    name="ArduinoCore-mbed (framework-arduino-mbed)",
    source="arduino/ArduinoCore-mbed variants/*/cflags.txt and cxxflags.txt (ARDUINO_NANO33BLE, RASPBERRY_PI_PICO), "
    "as platformio/builder-framework-arduino-core-mbed passes them",
    c=("-std=gnu11",),
    # C++14: a TFLM project's platformio.ini unflags it for C++17, which TFLM is written in
    cxx=("-std=gnu++14", "-fno-rtti", "-Wvla"),
    common=("-Os", "-mthumb", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter",
            "-fdata-sections", "-ffunction-sections", "-fmessage-length=0", "-fno-exceptions", "-fomit-frame-pointer",
            "-funsigned-char", "-nostdlib"),
    # cflags.txt says softfp, then the builder's configure_fpu_flags appends soft: mbed's Cortex-M4
    # code passes floats in integer registers
    float_abi={"cortex-m4": ("-mfpu=fpv4-sp-d16", "-mfloat-abi=soft")},
)

# by the PlatformIO platform of a board with framework = arduino (raspberrypi: its default core,
# "arduino", which is ArduinoCore-mbed; the Earle Philhower core is another board_build.core)
ARDUINO_CORES = {"ststm32": STM32DUINO, "nordicnrf52": MBED, "raspberrypi": MBED}
