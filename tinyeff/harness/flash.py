"""Getting a generated project onto a device: build it, flash it, open the device to talk to it.

Building is tinyeff.build's one way for every board: the project's Makefile for the QEMU boards,
whose "flashing" is starting the emulator with the ELF (``open_device`` does). Real boards are
built and uploaded by PlatformIO (``pio run -t upload``), which has the board's framework; a real
board with a Renode platform runs the ELF of 'pio run' in Renode instead.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tinyeff.boards import get_board
from tinyeff.build import build_project
from tinyeff.errors import TinyeffError
from tinyeff.harness.bench import Project
from tinyeff.harness.device import QemuDevice, SerialDevice
from tinyeff.harness.farm import Place
from tinyeff.harness.gdb_load import load_over_gdb
from tinyeff.harness.renode import RenodeDevice, renode_binary

EMULATORS = ("qemu", "renode")


def build(project: Project, tflm_dir: Path | None = None) -> Path:
    """Build a QEMU board's project (incrementally) and return its firmware ELF; a tflm project
    uses TFLM_DIR or the TFLM tree of its last 'tinyeff build'."""
    if get_board(project.manifest["board"]).baremetal is None:
        raise TinyeffError(f"'{project.path}' is a PlatformIO project: 'tinyeff build' checks it here, "
                           f"'tinyeff flash' builds and uploads it with PlatformIO")
    return build_project(project.path, tflm_dir).elf


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


def open_devices(project: Project, ports: list[str], emulator: str | None, jobs: int | None, stack,
                 places: list[Place] = ()) -> list:
    """The devices to bench PROJECT on at once, entered into STACK (a contextlib.ExitStack) so that all
    are released, also when one fails to open: one per serial port in PORTS, one per labgrid place in
    PLACES (acquired by the caller; loaded through the place's GDB server when it has one), or JOBS emulators."""
    if places:
        if ports or jobs or emulator:
            raise TinyeffError("--labgrid benches on the farm's boards; leave out --port, --jobs and --emulator")
        return [stack.enter_context(open_place(project, place)) for place in places]
    if ports and jobs:
        raise TinyeffError("--jobs starts emulators; to bench on several boards give one --port per board")
    if len(set(ports)) != len(ports):
        raise TinyeffError(f"a port is given twice ({', '.join(ports)}); give each board's port once")
    if jobs is not None and jobs < 1:
        raise TinyeffError(f"--jobs {jobs}: give the number of emulators to start, 1 or more")
    if ports:
        return [stack.enter_context(open_device(project, port, emulator)) for port in ports]
    return [stack.enter_context(open_device(project, None, emulator)) for _ in range(jobs or 1)]


def firmware_elf(project: Project) -> Path:
    """The ELF to load onto a board: a QEMU board's project is built here, a PlatformIO project's
    must have been built with 'pio run' (its ELF is under .pio/build/<env>/)."""
    if get_board(project.manifest["board"]).baremetal is not None:
        return build(project)
    elfs = sorted((project.path / ".pio" / "build").glob("*/firmware.elf"))
    if not elfs:
        raise TinyeffError(f"'{project.path}' has not been built; run 'pio run -d {project.path}' first, then bench")
    return elfs[0]


def open_place(project: Project, place: Place) -> SerialDevice:
    """The UART of a labgrid place's board, opened before the firmware is loaded so that its boot
    banner is read from the first byte."""
    board = get_board(project.manifest["board"])
    device = SerialDevice(place.serial_url, board.serial_baud, board)
    device.url = f"{place.name} ({place.serial_url})"  # how reports and errors name the board
    try:
        if place.gdb is not None:
            load_over_gdb(place.gdb.host, place.gdb.port, firmware_elf(project), place.gdb.reset)
    except BaseException:
        device.close()
        raise
    return device


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
        renode_binary()  # first: without Renode nothing is built, written or started
        if board.emulator is None or board.emulator.kind != "renode":
            raise TinyeffError(f"{board.id} has no Renode platform; bench it without --emulator renode")
        return RenodeDevice(firmware_elf(project), board)  # PlatformIO's ELF: the board's own framework and linker script
    build(project)
    return QemuDevice(project.elf, board)
