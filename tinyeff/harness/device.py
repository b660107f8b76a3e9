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
import tempfile
import time
import urllib.parse
from pathlib import Path

from tinyeff.boards import Board
from tinyeff.errors import TinyeffError


class DeviceTimeout(TinyeffError):
    pass


class LinkClosed(TinyeffError):
    pass


QEMU_ICOUNT_SHIFT = 0  # one emulated instruction per virtual nanosecond


READ_WAIT_S = 0.05  # the longest one read waits for a byte; a reply's own timeout is the caller's
HOST_INPUT_FILE = "tinyeff-input.bin"  # TE_HOST_FILE in firmware/protocol/te_port.h: where te-fput reads


def _plain_tcp(url: str) -> bool:
    """socket://HOST:PORT without pyserial's options (?logging=...), which _TcpPort serves."""
    return url.startswith("socket://") and "?" not in url


class _PyserialPort:
    """Any other pyserial URL (/dev/ttyACM0, rfc2217://, socket://...?logging=debug) behind the same
    calls as _TcpPort."""

    def __init__(self, url: str, baud: int):
        import serial

        self._port = serial.serial_for_url(url, baudrate=baud, timeout=READ_WAIT_S)

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def read_some(self) -> bytes:
        """What has come, or b"" after READ_WAIT_S: read(n) waits for all n bytes, so ask for what is waiting, or one."""
        return self._port.read(self._port.in_waiting or 1)

    def close(self) -> None:
        self._port.close()


class _TcpPort:
    """A socket://HOST:PORT link as a plain TCP socket. An emulated UART sends a reply a byte at a
    time, and pyserial's socket handler spends a select() and its timeout bookkeeping on each: the
    harness's CPU per demo sample was 2.4 ms, most of it there, and on a bench of several emulators
    that work is done under one interpreter lock. Here a read is one recv() with a timeout."""

    def __init__(self, url: str):
        address = urllib.parse.urlsplit(url)
        if not address.hostname or not address.port:
            raise ValueError(f"expected socket://HOST:PORT, got {url}")
        self._sock = socket.create_connection((address.hostname, address.port), timeout=5)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # requests are small; none may wait
        self._sock.settimeout(READ_WAIT_S)

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def read_some(self) -> bytes:
        """What has come, or b"" after READ_WAIT_S without a byte; OSError once the other end has closed."""
        try:
            data = self._sock.recv(4096)
        except TimeoutError:
            return b""
        if not data:
            raise OSError("the other end closed the connection")
        return data

    def close(self) -> None:
        self._sock.close()


class SerialDevice:
    """A byte stream over a pyserial URL (socket://HOST:PORT: a plain TCP socket)."""

    def __init__(self, url: str, baud: int = 115200, board: Board | None = None):
        import serial

        self._serial = serial
        self.url, self.board = url, board
        try:
            self._port = _TcpPort(url) if _plain_tcp(url) else _PyserialPort(url, baud)
        except (serial.SerialException, ValueError, OSError) as e:
            raise TinyeffError(f"cannot open serial port '{url}' ({e}); check the --port URL and that the board is connected") from None
        self._pending = b""
        self.transcript: list[str] = []
        self.host_file: Path | None = None  # a file the device reads inputs from (te-fput): only an emulator the harness started

    def send(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except (OSError, self._serial.SerialException) as e:
            raise LinkClosed(f"the link to {self.url} failed while sending ({e}); check the cable or the emulator") from None

    def _read_some(self) -> bytes:
        try:
            return self._port.read_some()
        except (OSError, self._serial.SerialException) as e:
            last = self.last_lines()
            raise LinkClosed(f"the link to {self.url} closed ({e}); the device's last lines were {last or 'nothing'}") from None

    def last_lines(self, n: int = 5) -> list[str]:
        text = "".join(self.transcript[-3:]) + self._pending.decode("ascii", "replace")
        return [l for l in text.replace("\r", "").split("\n") if l][-n:]

    def read_until(self, marker: bytes, timeout: float) -> bytes:
        """Bytes up to and including MARKER; DeviceTimeout with the last lines seen when it does not come."""
        deadline = time.monotonic() + timeout
        while marker not in self._pending:
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"the device on {self.url} sent no '{marker.decode().strip()}' within {timeout:.0f} s; "
                                    f"its last lines were {self.last_lines() or 'nothing'}; check that it runs tinyeff firmware")
            self._pending += self._read_some()
        i = self._pending.index(marker) + len(marker)
        out, self._pending = self._pending[:i], self._pending[i:]
        self.transcript = self.transcript[-20:] + [out.decode("ascii", "replace")]
        return out

    def drain(self, quiet: float, limit: float) -> bytes:
        """Everything the device sends until it has been silent for QUIET seconds, or LIMIT seconds
        have passed (a device that never stops talking must not hang the harness)."""
        out, since = self._pending, time.monotonic()
        end = since + limit
        self._pending = b""
        while time.monotonic() - since < quiet and time.monotonic() < end:
            chunk = self._read_some()
            if chunk:
                out, since = out + chunk, time.monotonic()
        return out

    # Latency: ticks of the device's timer (te-layers says its rate) in the unit that is honest for
    # the board the firmware was built for, however the harness reached it. A real board's timer runs
    # at its core clock or a known fraction of it. An emulated board's counts QEMU's virtual time,
    # which under -icount (the kit's QemuDevice and a project's 'make run' both pass shift=0) is one
    # emulated instruction per 2^shift ns: instructions, not cycles or a board's time.
    @property
    def quiet(self) -> float:
        """Seconds of silence after which the device has said all it will: an emulator answers in
        microseconds, a board at 115200 baud within milliseconds (USB serial adds its own latency)."""
        return 0.05 if self.board is not None and self.board.emulated else 0.3

    @property
    def latency_unit(self) -> str:
        return "emulated instructions" if self.board is not None and self.board.emulated else "cycles"

    def ticks_to_latency(self, ticks: float, ticks_hz: int) -> float:
        if self.board is not None and self.board.emulated:
            return ticks * 1e9 / ticks_hz / (1 << QEMU_ICOUNT_SHIFT)
        clock = self.board.clock_hz if self.board else ticks_hz
        return ticks * clock / ticks_hz

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


def qemu_monitor(port: int, command: str) -> None:
    """Run COMMAND in the QEMU monitor listening on 127.0.0.1:PORT (system_reset, stop, cont...)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as m:
        m.sendall(command.encode() + b"\n")
        # the monitor runs a command only if the connection stays open until it has: wait for
        # the prompt that follows the command's echo
        seen = b""
        deadline = time.monotonic() + 5
        while seen.count(b"(qemu)") < 2 and time.monotonic() < deadline:
            chunk = m.recv(4096)
            if not chunk:
                break
            seen += chunk


def qemu_command(board: Board, serial: int, *, monitor: int | None = None, elf: Path | None = None,
                 gdb: int | None = None, host: str = "127.0.0.1") -> list[str]:
    """The QEMU command line of an emulated BOARD with its UART on TCP port SERIAL. With ELF the
    board runs it, and does not start until the harness connects (wait=on: no output is lost).
    Without, it starts halted with empty memory behind a GDB server on port GDB, as a board in a
    farm waits to be flashed (gdb_load.py), and its UART takes connections as they come."""
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        raise TinyeffError("qemu-system-arm is not installed; install it with 'apt-get install qemu-system-arm' (make setup does)")
    if (elf is None) == (gdb is None):
        raise TinyeffError("an emulated board either runs an ELF or waits for one on a GDB port; give one of the two")
    # nodelay: the UART sends a byte at a time; with Nagle on QEMU's side and delayed ACKs on
    # ours every exchange would wait ~40 ms (measured: 45 ms per command, 1 ms with nodelay)
    cmd = [qemu, "-M", board.emulator.machine, "-display", "none", "-nographic",
           "-monitor", f"tcp:{host}:{monitor},server=on,wait=off" if monitor else "none",
           "-serial", f"tcp:{host}:{serial},server=on,wait={'on' if elf else 'off'},nodelay=on",
           "-semihosting-config", "enable=on,target=native", "-icount", f"shift={QEMU_ICOUNT_SHIFT}"]
    return cmd + (["-kernel", str(elf)] if elf else ["-S", "-gdb", f"tcp:{host}:{gdb}"])


class QemuDevice(SerialDevice):
    """A QEMU-emulated board running ELF, its UART0 on a local TCP port."""

    def __init__(self, elf: Path, board: Board, connect_timeout: float = 10.0, relay=None):
        """RELAY, when given, maps QEMU's serial address (host, port) to the pyserial URL to talk
        through instead: tests put a fault-injecting relay between the harness and the board."""
        if board.emulator is None or board.emulator.kind != "qemu":
            raise TinyeffError(f"{board.id} has no QEMU machine; choose a qemu-* board or pass --port")
        if not Path(elf).is_file():
            raise TinyeffError(f"no firmware at {elf}; build the project first with 'make -C <project>'")
        port, self._monitor_port = _free_port(), _free_port()
        self.board = board
        self.cmd = qemu_command(board, port, monitor=self._monitor_port, elf=Path(elf).resolve())
        # QEMU runs in a directory of its own, where the firmware's semihosting finds the host input
        # file (TE_HOST_FILE in firmware/protocol/te_port.h) that the harness writes inputs into
        self._workdir = tempfile.TemporaryDirectory(prefix="tinyeff-qemu-")
        input_file = Path(self._workdir.name) / HOST_INPUT_FILE
        input_file.touch()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=self._workdir.name)
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                url = relay(("127.0.0.1", port)) if relay else f"socket://127.0.0.1:{port}"
                super().__init__(url, board.serial_baud, board)
                break
            except TinyeffError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise TinyeffError(f"QEMU did not open its serial port ({' '.join(self.cmd)}); "
                                       "check that the ELF was built for this board") from None
                time.sleep(0.05)
        self.host_file = input_file

    def reset(self) -> None:
        """Reset the emulated board as its reset button would (through QEMU's monitor)."""
        qemu_monitor(self._monitor_port, "system_reset")

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
            self._workdir.cleanup()
