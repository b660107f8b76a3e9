"""Getting a generated project onto a device: build it, flash it, open the device to talk to it.

Bare-metal projects (the QEMU boards) are built with their Makefile and the Debian
arm-none-eabi-gcc; "flashing" an emulator is starting it with the ELF, which ``open_device``
does. PlatformIO projects (real boards) are built and uploaded with ``pio run -t upload``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tinyeff.boards import get_board
from tinyeff.errors import TinyeffError
from tinyeff.harness.bench import Project
from tinyeff.harness.device import QemuDevice, SerialDevice

EMULATORS = ("qemu", "renode")


def build(project: Project) -> Path:
    """Build a bare-metal project's firmware ELF (make is incremental: cheap when up to date)."""
    if not (project.path / "Makefile").is_file():
        raise TinyeffError(f"'{project.path}' has no Makefile; it is a PlatformIO project, build it with 'pio run -d {project.path}'")
    for tool in ("make", "arm-none-eabi-gcc"):
        if shutil.which(tool) is None:
            raise TinyeffError(f"'{tool}' is not installed; install it with 'apt-get install make gcc-arm-none-eabi "
                               "libnewlib-arm-none-eabi' (make setup does)")
    r = subprocess.run(["make", "-s", "-C", str(project.path)], capture_output=True, text=True)
    if r.returncode:
        raise TinyeffError(f"building {project.path} failed; the compiler said: {r.stderr.strip()[-600:]}")
    return project.elf


def flash(project: Project, port: str | None = None) -> str:
    """Build and, for a real board, upload the firmware; returns what was done, in one sentence."""
    board = get_board(project.manifest["board"])
    if board.baremetal is not None:
        elf = build(project)
        return f"built {elf} for {board.id}; an emulator loads it when a bench starts (no flashing needed)"
    pio = shutil.which("pio") or shutil.which("platformio")
    if pio is None:
        raise TinyeffError("PlatformIO is not installed; install it with 'pip install platformio' to flash real boards")
    cmd = [pio, "run", "-d", str(project.path), "-t", "upload"] + (["--upload-port", port] if port else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise TinyeffError(f"'{' '.join(cmd)}' failed (PlatformIO needs its {board.platformio.platform} platform, which it "
                           f"downloads once with network access); its last words: {r.stdout.strip()[-400:]}")
    return f"flashed {board.id} through PlatformIO"


def open_device(project: Project, port: str | None = None, emulator: str | None = None):
    """The device to bench PROJECT on: the serial PORT, or the board's emulator."""
    board = get_board(project.manifest["board"])
    if port and emulator:
        raise TinyeffError("give either --port or --emulator, not both")
    if port:
        return SerialDevice(port, board.serial_baud, board)
    emulator = emulator or (board.emulator.kind if board.emulator else None)
    if emulator not in EMULATORS:
        raise TinyeffError(f"{board.id} is a real board; pass its serial port with --port (e.g. /dev/ttyACM0)")
    if emulator == "renode":
        if shutil.which("renode") is None:
            raise TinyeffError("renode is not installed; install it from renode.io or bench on QEMU with --emulator qemu")
        raise TinyeffError("this version of tinyeff does not drive Renode yet; bench a qemu-* board with --emulator qemu "
                           "or a real board with --port")
    build(project)
    return QemuDevice(project.elf, board)
