"""A generated compiled-runtime project's firmware built for this computer and run as a process.

The protocol and the model are the project's own C, compiled with the host's cc; the board's port
(firmware/ports/cmsdk) is swapped for firmware/ports/posix, whose UART is a TCP socket on
127.0.0.1. The harness then reaches it exactly as it reaches a QEMU board, through
socket://127.0.0.1:PORT, but an exchange takes microseconds, not the emulator's milliseconds.

The sources and the -I/-D options come from the project's Makefile (its SOURCES and CFLAGS), so
the host build compiles what the board build compiles; the board's -mcpu/-mfpu flags are left out.
No define picks the kernels: generate chose the path, and the model's C calls that path's kernels by
name. Without __ARM_FEATURE_DSP a DSP-path project's kernels take their portable C forms
(te_simd_dsp.h), so a project generated for a Cortex-M4F board runs its own kernel path here; the
MVE path (Cortex-M55) is Helium intrinsics only and is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

from tinyeff.resources import resource_dir

EXECUTABLE = "te_firmware_host"
HOST_CFLAGS = ("-std=c99", "-O2", "-g", "-Wall", "-Wextra", "-Werror")
BOARD_PORT = "src/tinyeff/ports/cmsdk/te_port_cmsdk.c"
START_TIMEOUT_S = 10.0


def _posix_port() -> Path:
    return resource_dir("firmware") / "ports" / "posix" / "te_port_posix.c"


def project_build_vars(project_dir: Path) -> tuple[list[str], list[str]]:
    """(SOURCES, CFLAGS) as the project's Makefile sets them, relative to PROJECT_DIR. $(info) prints
    them unquoted by any shell, so -DTE_BOARD_ID='"id"' splits into the argument cc must get."""
    r = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(project_dir),
                        "--eval", "te-host-vars: ; $(info $(SOURCES))$(info $(CFLAGS))", "te-host-vars"],
                       capture_output=True, text=True)
    lines = r.stdout.splitlines()
    if r.returncode or len(lines) != 2:
        raise RuntimeError(f"cannot read SOURCES and CFLAGS from {project_dir}/Makefile:\n{r.stdout}{r.stderr}")
    return shlex.split(lines[0]), shlex.split(lines[1])


def build_command(project_dir: Path, exe: Path) -> list[str]:
    """The cc command that builds PROJECT_DIR's firmware for the host into EXE (run in PROJECT_DIR)."""
    manifest = json.loads((Path(project_dir) / "tinyeff.json").read_text())
    if manifest["runtime"] != "compiled" or manifest.get("kernel_path") == "mve":
        # the MVE kernels are Helium intrinsics (arm_mve.h) with no portable form, unlike the DSP path's
        raise RuntimeError(f"{project_dir} is a {manifest['runtime']} project on the {manifest.get('kernel_path')} kernel path; "
                           "the host build takes the compiled runtime on the generic or DSP path (generate it for a QEMU "
                           "board other than the Cortex-M55 one, or with optimize='size')")
    sources, cflags = project_build_vars(project_dir)
    if BOARD_PORT not in sources:
        raise RuntimeError(f"{project_dir} does not build the CMSDK port ({BOARD_PORT}); generate the project for a "
                           "QEMU Cortex-M board with the compiled runtime")
    sources = [str(_posix_port()) if s == BOARD_PORT else s for s in sources]
    # the project's include directories and defines (board id, runtime, the layer hook); its other
    # options are for the Arm target and its own warnings, which HOST_CFLAGS restates
    keep = [f for f in cflags if f.startswith(("-I", "-D"))]
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no host C compiler (cc) on PATH")
    return [cc, *HOST_CFLAGS, *keep, *sources, "-o", str(Path(exe).resolve())]


def build_host_firmware(project_dir: Path, build_dir: Path) -> Path:
    """Compile PROJECT_DIR's firmware for the host into BUILD_DIR; returns the executable."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / EXECUTABLE
    cmd = build_command(Path(project_dir), exe)
    r = subprocess.run(cmd, cwd=project_dir, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"host firmware build failed:\n{shlex.join(cmd)}\n{r.stderr}")
    (build_dir / "build-command.txt").write_text(shlex.join(cmd) + "\n")  # to rebuild by hand when debugging
    return exe


def _stale(project_dir: Path, exe: Path) -> bool:
    if not exe.exists():
        return True
    inputs = [*Path(project_dir).glob("src/**/*.[ch]"), Path(project_dir) / "Makefile", _posix_port()]
    return max(p.stat().st_mtime for p in inputs) > exe.stat().st_mtime


def _read_port(proc: subprocess.Popen, timeout: float) -> int:
    """The port from the firmware's first stdout line, 'te-posix-port N'."""
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RuntimeError(f"the host firmware printed no port within {timeout:.0f} s (got {seen!r})")
        chunk = os.read(fd, 256)
        if not chunk:
            raise RuntimeError(f"the host firmware exited with {proc.wait()} before printing its port (got {seen!r})")
        seen += chunk
    first = seen.split(b"\n")[0]
    m = re.fullmatch(rb"te-posix-port (\d+)", first)
    if not m:
        raise RuntimeError(f"the host firmware's first line is {first!r}, not 'te-posix-port N'")
    return int(m.group(1))


@contextlib.contextmanager
def run_host_firmware(exe: Path, port: int = 0, cwd: Path | None = None) -> Iterator[str]:
    """Start EXE listening on PORT (0: any free port) in the directory CWD (where it finds its host input
    file, as QEMU's semihosting finds it in QEMU's); yields its socket:// URL, stops it after."""
    proc = subprocess.Popen([str(Path(exe).resolve()), str(port)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, cwd=cwd)
    try:
        yield f"socket://127.0.0.1:{_read_port(proc, START_TIMEOUT_S)}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


@contextlib.contextmanager
def host_firmware(project_dir: Path, build_dir: Path) -> Iterator[str]:
    """PROJECT_DIR's firmware running on the host (built into BUILD_DIR unless it is up to date
    there); yields the socket:// URL a SerialDevice opens. The firmware boots, and sends its banner,
    when the first connection is in."""
    exe = Path(build_dir) / EXECUTABLE
    if _stale(Path(project_dir), exe):
        build_host_firmware(project_dir, build_dir)
    with run_host_firmware(exe) as url:
        yield url
