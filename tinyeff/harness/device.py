"""Devices the harness talks to: a byte stream with timeouts, opened and always released.

``SerialDevice`` wraps any pyserial URL (/dev/ttyACM0, socket://host:port, rfc2217://...).
``QemuDevice`` starts QEMU for an emulated board with its UART on a TCP port (``wait=on``:
the emulated CPU does not start until the harness is connected, so no output is lost),
``-icount`` for repeatable timing and semihosting for the exit status; QEMU is stopped by its
own PID when the device closes, also after errors.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tinyeff.boards import Board
from tinyeff.errors import TinyeffError


class DeviceTimeout(TinyeffError):
    pass


class SerialDevice:
    """A byte stream over a pyserial URL."""

    def __init__(self, url: str, baud: int = 115200):
        import serial

        self.url = url
        try:
            self._port = serial.serial_for_url(url, baudrate=baud, timeout=0.05)
        except (serial.SerialException, ValueError, OSError) as e:
            raise TinyeffError(f"cannot open serial port '{url}' ({e}); check the --port URL and that the board is connected") from None
        self._pending = b""
        self.transcript: list[str] = []

    def send(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def read_until(self, marker: bytes, timeout: float) -> bytes:
        """Bytes up to and including MARKER; DeviceTimeout with the last lines seen when it does not come."""
        deadline = time.monotonic() + timeout
        while marker not in self._pending:
            if time.monotonic() > deadline:
                last = self._pending.decode("ascii", "replace").strip().splitlines()[-5:]
                raise DeviceTimeout(f"the device on {self.url} sent no '{marker.decode()}' within {timeout:.0f} s; "
                                    f"its last lines were {last or 'nothing'}; check that it runs tinyeff firmware")
            chunk = self._port.read(4096)
            if chunk:
                self._pending += chunk
        i = self._pending.index(marker) + len(marker)
        out, self._pending = self._pending[:i], self._pending[i:]
        self.transcript.append(out.decode("ascii", "replace"))
        return out

    def close(self) -> None:
        self._port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuDevice(SerialDevice):
    """A QEMU-emulated board running ELF, its UART0 on a local TCP port."""

    ICOUNT_SHIFT = 0  # one emulated instruction per virtual nanosecond

    def __init__(self, elf: Path, board: Board, connect_timeout: float = 10.0):
        if board.emulator is None or board.emulator.kind != "qemu":
            raise TinyeffError(f"{board.id} has no QEMU machine; choose a qemu-* board or pass --port")
        qemu = shutil.which("qemu-system-arm")
        if qemu is None:
            raise TinyeffError("qemu-system-arm is not installed; install it with 'apt-get install qemu-system-arm' (make setup does)")
        if not Path(elf).is_file():
            raise TinyeffError(f"no firmware at {elf}; build the project first with 'make -C <project>'")
        port = _free_port()
        self.board = board
        self.cmd = [qemu, "-M", board.emulator.machine, "-display", "none", "-monitor", "none", "-nographic",
                    "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
                    "-semihosting-config", "enable=on,target=native", "-icount", f"shift={self.ICOUNT_SHIFT}",
                    "-kernel", str(elf)]
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                super().__init__(f"socket://127.0.0.1:{port}", board.serial_baud)
                break
            except TinyeffError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise TinyeffError(f"QEMU did not open its serial port ({' '.join(self.cmd)}); "
                                       "check that the ELF was built for this board") from None
                time.sleep(0.05)

    def ticks_to_instructions(self, ticks: int) -> float:
        """SysTick ticks as emulated instructions: each tick is 1/clock s of virtual time, each instruction 2^shift ns."""
        return ticks * 1e9 / self.board.clock_hz / (1 << self.ICOUNT_SHIFT)

    def close(self) -> None:
        try:
            if hasattr(self, "_port"):
                super().close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
            if self.proc.stdout:
                self.proc.stdout.close()
