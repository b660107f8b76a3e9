"""The Cortex-M DSP kernels against the generic ones, bit for bit.

tests/c/dsp_vs_generic.c draws thousands of seeded random layers (kernel 1..5, stride 1..3,
dilation 1..2, asymmetric padding, odd channel counts, int8 extremes, multipliers with shifts
from -31 to +4, narrow activation ranges; out of place and in place as the memory plan places
it) and reports any output byte that differs from the generic kernel, or any write outside an
output, work buffer or ring. It runs three ways:

- on the host, where te_simd_dsp.h supplies the DSP instructions in portable C (also under
  AddressSanitizer and UndefinedBehaviorSanitizer);
- compiled for Cortex-M4, M7 and M33 with -Werror (the sources the generated projects build);
- on emulated Cortex-M4, M7 and M33 boards (QEMU mps2-an386, -an500, -an505), which run the
  instructions and the assembly loops themselves, and print the emulated instructions of the
  KWS layers (pytest -s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "firmware" / "kernels"
DRIVER = ROOT / "tests" / "c" / "dsp_vs_generic.c"
DSP_SOURCES = [KERNELS / f"te_{name}_dsp.c" for name in ("conv", "depthwise", "fully_connected")]
SOURCES = [DRIVER, *DSP_SOURCES] + [KERNELS / f"te_{name}_generic.c" for name in ("conv", "depthwise", "fully_connected")]
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{KERNELS}"]
CORES = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-mthumb"],
    "cortex-m33": ["-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard", "-mthumb"],
}
SEEDS = (1, 2, 3)
HOST_CASES = 2000  # per seed: well under a second each

# The emulated boards, one per core: QEMU machine, and where its code and RAM are
BOARDS = {
    "cortex-m4": ("mps2-an386", 0x00000000, 0x20000000),
    "cortex-m7": ("mps2-an500", 0x00000000, 0x20000000),
    "cortex-m33": ("mps2-an505", 0x10000000, 0x38000000),
}
# the driver brings its own vector table and start
LINK_LD = """
MEMORY {{ FLASH (rx) : ORIGIN = {code:#010x}, LENGTH = 2M
         RAM (rwx)  : ORIGIN = {ram:#010x}, LENGTH = 2M }}
SECTIONS {{
  .text : {{ KEEP(*(.vectors)) *(.text*) *(.rodata*) }} > FLASH
  .ARM.exidx : {{ *(.ARM.exidx*) }} > FLASH
  .data : {{ _data_start = .; *(.data*) . = ALIGN(4); _data_end = .; }} > RAM AT > FLASH
  _data_load = LOADADDR(.data);
  .bss (NOLOAD) : {{ _bss_start = .; *(.bss*) *(COMMON) . = ALIGN(4); _bss_end = .; }} > RAM
  end = .;
  _stack_top = ORIGIN(RAM) + LENGTH(RAM);
}}
"""


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install {package})"
        if os.environ.get("CI"):  # CI installs it: a missing tool there is a broken setup, not a skip
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _run_driver(args: list[str], timeout: float) -> str:
    run = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    log = run.stdout + run.stderr
    failures = [line for line in log.splitlines() if line.startswith("FAIL")]
    assert run.returncode == 0 and not failures, f"exit status {run.returncode}:\n" + "\n".join(failures or [log[-2000:]])
    assert "dsp_vs_generic: ok" in log, log[-2000:]
    return log


@pytest.fixture(scope="module")
def host_driver(tmp_path_factory) -> Path:
    gcc = _tool("gcc", "gcc")
    exe = tmp_path_factory.mktemp("dsp") / "dsp_vs_generic"
    build = subprocess.run([gcc, *CFLAGS, *map(str, SOURCES), "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return exe


@pytest.mark.parametrize("seed", SEEDS)
def test_dsp_kernels_equal_the_generic_kernels_on_the_host(host_driver, seed):
    _run_driver([str(host_driver), str(seed), str(HOST_CASES)], timeout=60)


def test_dsp_kernels_are_clean_under_sanitizers(tmp_path):
    """Out-of-bounds reads (a partial word past a row), signed overflow, misaligned words."""
    gcc = _tool("gcc", "gcc")
    exe = tmp_path / "dsp_vs_generic_sanitized"
    flags = [f for f in CFLAGS if f != "-O2"] + ["-O1", "-g", "-fsanitize=address,undefined",
                                                 "-fno-sanitize-recover=undefined"]
    build = subprocess.run([gcc, *flags, *map(str, SOURCES), "-o", str(exe)], capture_output=True, text=True)
    if build.returncode != 0 and "sanitize" in build.stderr:
        reason = f"this gcc has no sanitizer runtime (apt-get install libc6-dev gcc): {build.stderr.strip()[:200]}"
        if os.environ.get("CI"):  # Debian's gcc brings libasan and libubsan: CI must run this
            pytest.fail(reason)
        pytest.skip(reason)
    assert build.returncode == 0, build.stderr
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    run = subprocess.run([str(exe), "11", "1000"], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0 and "dsp_vs_generic: ok" in run.stdout, (run.stdout + run.stderr)[-3000:]


@pytest.mark.parametrize("core", sorted(CORES))
def test_dsp_kernels_compile_for_the_core(tmp_path, core):
    gcc = _tool("arm-none-eabi-gcc", "gcc-arm-none-eabi")
    for source in DSP_SOURCES:
        build = subprocess.run([gcc, *CORES[core], *CFLAGS, "-c", str(source), "-o", str(tmp_path / f"{source.stem}.o")],
                               capture_output=True, text=True)
        assert build.returncode == 0, f"{source.name} for {core}:\n{build.stderr}"


@pytest.mark.emulator
@pytest.mark.parametrize("core", sorted(BOARDS))
def test_dsp_kernels_equal_the_generic_kernels_on_an_emulated_core(tmp_path, core):
    gcc = _tool("arm-none-eabi-gcc", "gcc-arm-none-eabi")
    qemu = _tool("qemu-system-arm", "qemu-system-arm")
    machine, code, ram = BOARDS[core]
    (tmp_path / "link.ld").write_text(LINK_LD.format(code=code, ram=ram))
    elf = tmp_path / "dsp_vs_generic.elf"
    build = subprocess.run([gcc, *CORES[core], *CFLAGS, "-DTE_SEED=5", "-DTE_CASES=700", *map(str, SOURCES),
                            "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections",
                            "-T", str(tmp_path / "link.ld"), "-o", str(elf)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    log = _run_driver([qemu, "-M", machine, "-display", "none", "-monitor", "none", "-serial", "null",
                       "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)],
                      timeout=120)
    for line in log.splitlines():
        if line.startswith("bench "):
            print(core, line)  # emulated instructions of the KWS layers, generic and DSP (pytest -s)
    assert "MISMATCH" not in log, log
