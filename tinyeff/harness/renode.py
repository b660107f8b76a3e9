"""Boards emulated by Renode: the board's platform from Renode's own tree running the firmware ELF
that PlatformIO built, its UART on a local TCP socket that the harness opens as socket://, as for QEMU.

Renode is driven by a generated .resc script (``resc_script``) given to ``renode`` on its command
line. What the script relies on was read in Renode's sources (renode/renode, renode-infrastructure):
``CreateServerSocketTerminal PORT NAME false`` is a raw (not telnet) socket whose output queue keeps
what the firmware sends before the harness connects, so the boot banner is not lost although the
script starts the CPU at once. LoadELF sets no vector table: the Cortex-M model takes the lowest
loaded address, which is where a PlatformIO ELF puts it (nano33ble's links above its bootloader, not at 0).

Timing: neither platform maps the DWT (reads of CYCCNT would give 0), so the script adds Renode's
DWT model. It counts virtual time at its ``frequency``, and virtual time is executed instructions
divided by the CPU's ``PerformanceInMips``; with both set from the board's clock, CYCCNT advances by
one per instruction: emulated instructions, not a board's cycles.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tinyeff.boards import Board
from tinyeff.errors import TinyeffError
from tinyeff.harness.device import SerialDevice

DWT_BASE = 0xE0001000  # the Armv7-M DWT; Renode's model is Miscellaneous.DWT
CPU = "sysbus.cpu"  # what both Renode platforms here call their core
TERMINAL = "tinyeff_uart"
CONNECT_TIMEOUT_S = 60.0  # Renode's runtime starts in seconds, and a platform's SVD file is fetched on first use
# Renode runs virtual time a quantum at a time and its socket terminal sends from a thread of its own:
# it answers more slowly than QEMU, sooner than a board over USB (not measured here: no Renode on this machine)
RENODE_QUIET_S = 0.2


def renode_binary() -> str:
    """The ``renode`` launcher on PATH, or the one sentence that says what to install."""
    path = shutil.which("renode")
    if path is None:
        raise TinyeffError("renode is not installed; install Renode from renode.io (or run its Docker image "
                           "antmicro/renode) so that 'renode' is on PATH, or bench on QEMU with --emulator qemu")
    return path


def free_port() -> int:
    # Renode's socket terminal listens on every interface (IPAddress.Any), so the port must be free on all
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def renode_path(path: Path) -> str:
    """PATH as a Renode monitor path token: '@' and the path, spaces escaped (a ';' would end the token)."""
    text = str(path)
    if ";" in text or any(c.isspace() and c != " " for c in text):
        raise TinyeffError(f"Renode cannot be given the path '{text}' (it has a ';' or a tab or newline); move the project")
    return "@" + text.replace(" ", "\\ ")


def resc_script(board: Board, elf: Path, uart_port: int, terminal: str = TERMINAL) -> str:
    """The Renode script that runs ELF on BOARD's platform, its UART on TCP port UART_PORT."""
    if board.emulator is None or board.emulator.kind != "renode":
        raise TinyeffError(f"{board.id} has no Renode platform; bench it on its serial port with --port "
                           "or on its own emulator without --emulator renode")
    if board.clock_hz % 1_000_000:
        raise TinyeffError(f"{board.id}'s clock_hz {board.clock_hz} is not whole MHz, and Renode sets a core's speed in whole MIPS")
    return "\n".join([
        "logLevel 3",  # errors only: warnings about registers a platform does not model could fill the disk
        f"mach create \"{board.id}\"",
        f"machine LoadPlatformDescription @{board.emulator.platform}",
        f"machine LoadPlatformDescriptionFromString \"dwt: Miscellaneous.DWT @ sysbus 0x{DWT_BASE:X} "
        f"{{ frequency: {board.clock_hz} }}\"",
        f"{CPU} PerformanceInMips {board.clock_hz // 1_000_000}",
        f"emulation CreateServerSocketTerminal {uart_port} \"{terminal}\" false",
        f"connector Connect {board.emulator.uart} {terminal}",
        f"sysbus LoadELF {renode_path(elf)}",
        "start",
    ]) + "\n"


def renode_command(binary: str, monitor_port: int, script: Path) -> list[str]:
    # --disable-xwt: no window (it also hides the monitor window); the monitor then listens on a telnet port,
    # 1234 unless given, which two Renodes of a --jobs bench would both want. Not --console: its monitor reads
    # stdin and would see end-of-file at once.
    return [binary, "--disable-xwt", "--plain", "--port", str(monitor_port), str(script)]


class RenodeDevice(SerialDevice):
    """A Renode-emulated board running ELF, its UART on a local TCP port."""

    def __init__(self, elf: Path, board: Board, connect_timeout: float = CONNECT_TIMEOUT_S, relay=None):
        """RELAY, when given, maps the UART's address (host, port) to the pyserial URL to talk through instead."""
        binary = renode_binary()  # first: without Renode nothing is written or started
        elf = Path(elf).resolve()
        if not elf.is_file():
            raise TinyeffError(f"no firmware at {elf}; build the project first with 'pio run'")
        uart_port = free_port()
        script = resc_script(board, elf, uart_port)
        self.board, self.proc = board, None
        self._dir = Path(tempfile.mkdtemp(prefix="tinyeff-renode-"))
        self._log = None
        try:
            (self._dir / f"{board.id}.resc").write_text(script)
            self.cmd = renode_command(binary, free_port(), self._dir / f"{board.id}.resc")
            self._log = open(self._dir / "renode.log", "wb")
            # its own session: the launcher is a script that starts Renode's runtime as a child, and the
            # whole group must go when the device closes; cwd: no platforms/ of the user's shadows Renode's
            self.proc = subprocess.Popen(self.cmd, cwd=self._dir, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + connect_timeout
            while True:
                try:
                    url = relay(("127.0.0.1", uart_port)) if relay else f"socket://127.0.0.1:{uart_port}"
                    super().__init__(url, board.serial_baud, board)
                    break
                except TinyeffError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise TinyeffError(f"Renode did not open {board.id}'s UART {board.emulator.uart} "
                                           f"({' '.join(self.cmd)}); its log ends: {self._log_tail() or 'nothing'}") from None
                    time.sleep(0.1)
        except BaseException:
            self.close()
            raise

    def _log_tail(self) -> str:
        try:
            lines = (self._dir / "renode.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " / ".join(lines[-3:])

    @property
    def quiet(self) -> float:
        return RENODE_QUIET_S

    # An emulated board counts emulated instructions however it is reached (see the module docstring):
    # the firmware's timer runs at TICKS_HZ of virtual time, instructions at the board's clock_hz.
    @property
    def latency_unit(self) -> str:
        return "emulated instructions"

    def ticks_to_latency(self, ticks: float, ticks_hz: int) -> float:
        return ticks * self.board.clock_hz / ticks_hz

    def close(self) -> None:
        try:
            if hasattr(self, "_port"):
                super().close()
        finally:
            if self.proc is not None:
                if self.proc.poll() is None:
                    _signal_group(self.proc.pid, signal.SIGTERM)  # Renode then removes its own temporary files
                    try:
                        self.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        pass
                _signal_group(self.proc.pid, signal.SIGKILL)  # what is left of the group, launcher gone or not
                self.proc.wait(timeout=10)
                self.proc = None  # closed twice (with-block after an error): its id may be another's by then
            if self._log is not None:
                self._log.close()
            shutil.rmtree(self._dir, ignore_errors=True)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
