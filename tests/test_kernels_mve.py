"""The Helium (MVE) kernels against the generic ones, bit for bit, on an emulated Cortex-M55.

tests/c/mve_vs_generic.c is cross-compiled with both kernel paths and run bare-metal in QEMU
mps3-an547; it draws hundreds of seeded random convolutions (kernel 1..5, stride 1..3, dilation
1..2, padding, odd channel counts, int8 extremes, multipliers and shifts from -31 to +4, in
place as the memory plan places it), depthwise convolutions and dense layers, and reports any
byte that differs or any write outside an output, work buffer or ring.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "firmware" / "kernels"
DRIVER = ROOT / "tests" / "c" / "mve_vs_generic.c"
SOURCES = [DRIVER] + [KERNELS / f"te_{name}.c" for name in (
    "conv_generic", "depthwise_generic", "fully_connected_generic", "conv_mve", "depthwise_mve", "fully_connected_mve")]
CFLAGS = ["-mcpu=cortex-m55", "-mfloat-abi=hard", "-mthumb", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]

# AN547: code in the ITCM at 0, data in the DTCM at 0x20000000
LINK_LD = """
MEMORY { ITCM (rx) : ORIGIN = 0x00000000, LENGTH = 512K
         DTCM (rwx) : ORIGIN = 0x20000000, LENGTH = 512K }
ENTRY(Reset_Handler)
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > ITCM
  .ARM.exidx : { *(.ARM.exidx*) } > ITCM
  _sidata = LOADADDR(.data);
  .data : { . = ALIGN(4); _sdata = .; *(.data*) . = ALIGN(4); _edata = .; } > DTCM AT > ITCM
  .bss (NOLOAD) : { . = ALIGN(4); _sbss = .; *(.bss*) *(COMMON) . = ALIGN(4); _ebss = .; } > DTCM
  .stack (NOLOAD) : { . = ALIGN(8); . += 8192; _stack_top = .; } > DTCM
}
"""


def _tools() -> tuple[str, str]:
    gcc, qemu = shutil.which("arm-none-eabi-gcc"), shutil.which("qemu-system-arm")
    missing = [name for name, path in (("arm-none-eabi-gcc", gcc), ("qemu-system-arm", qemu)) if path is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed (apt-get install gcc-arm-none-eabi qemu-system-arm)"
        if os.environ.get("CI"):  # CI installs both: a missing tool there is a broken setup, not a skip
            pytest.fail(reason)
        pytest.skip(reason)
    return gcc, qemu


@pytest.mark.emulator
def test_mve_kernels_equal_the_generic_kernels_in_qemu(tmp_path):
    gcc, qemu = _tools()
    missing = [str(s) for s in SOURCES if not s.exists()]
    assert not missing, f"kernel sources missing: {missing}"
    (tmp_path / "link.ld").write_text(LINK_LD)
    elf = tmp_path / "mve_vs_generic.elf"
    build = subprocess.run([gcc, *CFLAGS, f"-I{KERNELS}", *map(str, SOURCES), "-nostartfiles", "--specs=nano.specs",
                            "--specs=nosys.specs", "-T", str(tmp_path / "link.ld"), "-o", str(elf)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([qemu, "-M", "mps3-an547", "-display", "none", "-nographic", "-monitor", "none",
                          "-serial", "null", "-semihosting-config", "enable=on,target=native",
                          "-icount", "shift=0", "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=120)
    log = run.stdout + run.stderr
    for line in log.splitlines():
        if line.startswith(("bench ", "ran ")):
            print(line)  # coverage, and instruction counts of KWS-shaped layers: shown with pytest -s
    failures = [line for line in log.splitlines() if line.startswith(("FAIL", "  "))]
    details = "\n".join(failures[:20] or [log[-2000:]])
    assert run.returncode == 0 and not failures, f"exit status {run.returncode}:\n{details}"
    assert re.search(r"^ok$", log, re.M), log[-2000:]
    ran = [int(n) for n in re.search(r"^ran [^:]*:((?: \d+)+)$", log, re.M).group(1).split()]
    assert min(ran) >= 300, f"too few cases of some kind (conv, pointwise, depthwise, dense, in place): {ran}"
