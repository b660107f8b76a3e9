"""The Debian arm-none-eabi toolchain: finding it, compiling many files incrementally, sizes.

An object is rebuilt when its command line changed (kept beside it as .cmd) or when the source
or any header it included (gcc's -MMD list, kept as .d) is newer than it; so a second build is
cheap and a build against another TFLM tree or with other flags recompiles what it must.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

from tinyeff.errors import TinyeffError

PREFIX = "arm-none-eabi-"
INSTALL = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
INSTALL_CXX = "apt-get install libstdc++-arm-none-eabi-newlib"
ERROR_TAIL_CHARS = 1500  # of a failing compiler's output, in an error message


@dataclasses.dataclass(frozen=True)
class Sizes:
    text: int
    data: int
    bss: int

    def line(self) -> str:
        return f"text {self.text:,} B, data {self.data:,} B, bss {self.bss:,} B"


@dataclasses.dataclass(frozen=True)
class Unit:
    """One translation unit: SOURCE compiled to OBJ by ARGV (without the dependency-file flags)."""

    name: str  # what the user reads: the path in the project or in the TFLM tree
    source: Path
    obj: Path
    argv: tuple[str, ...]


def tool(name: str) -> str:
    """The full path of arm-none-eabi-NAME, or a TinyeffError saying how to install it."""
    path = shutil.which(PREFIX + name)
    if path is None:
        raise TinyeffError(f"'{PREFIX}{name}' is not installed; install the Debian toolchain with '{INSTALL}' (make setup does)")
    return path


def require_libraries(arch: tuple[str, ...], cxx: bool) -> None:
    """Newlib (and libstdc++ for C++) for the multilib ARCH selects, or a TinyeffError."""
    gxx = tool("g++" if cxx else "gcc")
    for lib, install in (("libc_nano.a", INSTALL),) + ((("libstdc++_nano.a", INSTALL_CXX),) if cxx else ()):
        found = subprocess.run([gxx, *arch, f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
        if not os.path.isabs(found):
            raise TinyeffError(f"the arm-none-eabi toolchain has no {lib} for {' '.join(arch)}; install it with '{install}'")


def _depfile_inputs(dep: Path) -> list[str]:
    text = dep.read_text().replace("\\\n", " ").replace("\\ ", "\0")
    _, _, deps = text.partition(": ")
    return [d.replace("\0", " ") for d in deps.split()]


def _up_to_date(unit: Unit) -> bool:
    cmd, dep = unit.obj.with_suffix(".cmd"), unit.obj.with_suffix(".d")
    if not (unit.obj.is_file() and cmd.is_file() and dep.is_file()) or cmd.read_text() != "\0".join(unit.argv):
        return False
    built = unit.obj.stat().st_mtime
    try:
        return all(os.stat(d).st_mtime <= built for d in _depfile_inputs(dep))
    except OSError:  # a header it used is gone
        return False


def _compile(unit: Unit) -> tuple[Unit, int, str]:
    unit.obj.parent.mkdir(parents=True, exist_ok=True)
    dep = unit.obj.with_suffix(".d")
    r = subprocess.run([*unit.argv, "-MMD", "-MF", str(dep)], capture_output=True, text=True)
    if r.returncode == 0:
        unit.obj.with_suffix(".cmd").write_text("\0".join(unit.argv))
    return unit, r.returncode, r.stderr


def compile_units(units: list[Unit], jobs: int, log: Path, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Compile what is out of date, JOBS at a time; the compiler's messages go to LOG.
    Returns (units compiled now, units with warnings); the first failure is a TinyeffError."""
    todo = [u for u in units if not _up_to_date(u)]
    warned, failed = 0, None
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out, concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = [pool.submit(_compile, u) for u in todo]
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            if future.cancelled():  # after a failure
                continue
            unit, rc, stderr = future.result()
            if stderr:
                out.write(f"== {unit.name}\n$ {' '.join(unit.argv)}\n{stderr}\n")
                warned += rc == 0
            if rc and failed is None:
                failed = (unit, stderr)
                for f in futures:
                    f.cancel()
            if progress:
                progress(done, len(todo))
    if failed:
        unit, stderr = failed
        raise TinyeffError(f"compiling {unit.name} failed (all messages in {log}); the compiler's last lines:\n"
                           f"{stderr.strip()[-ERROR_TAIL_CHARS:]}")
    return len(todo), warned


def sizes(elf: Path) -> Sizes:
    """text, data and bss of ELF, as arm-none-eabi-size counts them."""
    out = subprocess.run([tool("size"), str(elf)], capture_output=True, text=True, check=True).stdout.splitlines()
    text, data, bss = (int(v) for v in out[1].split()[:3])
    return Sizes(text, data, bss)


def version() -> str:
    out = subprocess.run([tool("gcc"), "-dumpversion"], capture_output=True, text=True).stdout.strip()
    return f"arm-none-eabi-gcc {out}"
