"""Loading firmware through a GDB server: the one flashing path every Cortex-M debug setup offers.

QEMU's gdbstub (``-gdb tcp::PORT``), OpenOCD, pyOCD and J-Link's GDB server all speak GDB's remote
serial protocol. A board farm exports that port next to the board's UART, and the harness loads an
ELF through it from wherever it runs: halt, write the ELF's load segments with ``M`` packets, read
them back to verify, reset through the server's monitor command (``qRcmd``; ``system_reset`` on
QEMU, ``reset`` on OpenOCD or pyOCD), and continue. A Cortex-M reads its stack pointer and reset
vector from the image just written, so nothing else needs setting.

Writes go to memory as the server maps it: QEMU's boards (code in RAM) and servers that program
flash on plain memory writes. A server that asks for GDB's ``vFlash`` packets instead refuses the
first write, and the error says so.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import time
from pathlib import Path

from tinyeff.errors import TinyeffError

PT_LOAD = 1
CHUNK = 1024  # bytes of image per packet (2 hex digits each); every server here takes 4 KiB packets


@dataclasses.dataclass(frozen=True)
class Segment:
    address: int  # where it is loaded (the physical address: a .data image sits in flash)
    data: bytes


def elf_segments(elf: Path) -> list[Segment]:
    """The loadable bytes of a 32-bit little-endian ELF (what a Cortex-M firmware is), by program header."""
    try:
        raw = Path(elf).read_bytes()
    except OSError as e:
        raise TinyeffError(f"cannot read the firmware {elf} ({e.strerror}); build the project first") from None
    if raw[:4] != b"\x7fELF" or len(raw) < 52 or raw[4] != 1 or raw[5] != 1:
        raise TinyeffError(f"{elf} is not a 32-bit little-endian ELF; give the firmware.elf a Cortex-M project's build made")
    phoff, = struct.unpack_from("<I", raw, 28)
    phentsize, phnum = struct.unpack_from("<HH", raw, 42)
    segments = []
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + 32 > len(raw):
            raise TinyeffError(f"{elf} is cut short (its program headers run past the end of the file); rebuild it")
        kind, offset, _vaddr, paddr, filesz = struct.unpack_from("<5I", raw, at)
        if kind != PT_LOAD or filesz == 0:
            continue
        if offset + filesz > len(raw):
            raise TinyeffError(f"{elf} is cut short (a segment runs past the end of the file); rebuild it")
        segments.append(Segment(paddr, raw[offset:offset + filesz]))
    if not segments:
        raise TinyeffError(f"{elf} has nothing to load; give the firmware.elf a project's build made")
    return segments


def _checksum(body: bytes) -> bytes:
    return b"%02x" % (sum(body) & 0xFF)


class GdbRemote:
    """One connection to a GDB server, packets acknowledged as the protocol asks."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.where = f"{host}:{port}"
        self.timeout = timeout
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise TinyeffError(f"cannot reach the GDB server at {self.where} ({e}); check that the board's debug "
                               "server (QEMU -gdb, OpenOCD, pyOCD) runs there") from None
        # one small packet per exchange: without this each waits for a delayed ACK (~40 ms)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pending = b""

    def _recv(self) -> None:
        try:
            chunk = self._sock.recv(65536)
        except socket.timeout:
            raise TinyeffError(f"the GDB server at {self.where} did not answer within {self.timeout:.0f} s; "
                               "check that no debugger holds the board") from None
        except OSError as e:
            raise TinyeffError(f"the GDB server at {self.where} closed the connection ({e})") from None
        if not chunk:
            raise TinyeffError(f"the GDB server at {self.where} closed the connection (a debugger may hold the board)")
        self._pending += chunk

    def _packet(self) -> bytes:
        """The next packet's body, acknowledged; console output packets ('O' + hex) are skipped."""
        while True:
            start = self._pending.find(b"$")
            end = self._pending.find(b"#", start + 1) if start >= 0 else -1
            if start < 0 or end < 0 or len(self._pending) < end + 3:
                self._recv()
                continue
            body, sent_sum = self._pending[start + 1:end], self._pending[end + 1:end + 3]
            self._pending = self._pending[end + 3:]
            if sent_sum.lower() != _checksum(body):
                self._sock.sendall(b"-")  # damaged: the server sends it again
                continue
            self._sock.sendall(b"+")
            if body.startswith(b"O") and body != b"OK":
                continue
            return body

    def request(self, body: bytes) -> bytes:
        """Send one packet and return the reply's body; raises on an 'Exx' error reply."""
        self._sock.sendall(b"$" + body + b"#" + _checksum(body))
        reply = self._packet()
        # a target left running by the last load stops when a debugger connects, and QEMU tells the
        # new connection so with a stop reply of its own: not the answer to this request
        while reply[:1] in (b"T", b"S") and body != b"?":
            reply = self._packet()
        if reply.startswith(b"E") and len(reply) == 3:
            raise TinyeffError(f"the GDB server at {self.where} refused '{body[:24].decode(errors='replace')}...' "
                               f"(error {reply[1:].decode()})")
        return reply

    def write(self, address: int, data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            part = data[i:i + CHUNK]
            reply = self.request(b"M%x,%x:" % (address + i, len(part)) + part.hex().encode())
            if reply != b"OK":
                raise TinyeffError(f"the GDB server at {self.where} did not write {len(part)} bytes at 0x{address + i:08x} "
                                   f"(it answered '{reply[:40].decode(errors='replace')}'); a server that programs flash "
                                   "only through GDB's vFlash packets cannot load this way")

    def read(self, address: int, size: int) -> bytes:
        out = b""
        while len(out) < size:
            n = min(CHUNK, size - len(out))
            reply = self.request(b"m%x,%x" % (address + len(out), n))
            try:
                out += bytes.fromhex(reply.decode())
            except ValueError:
                raise TinyeffError(f"the GDB server at {self.where} answered a memory read with "
                                   f"'{reply[:40].decode(errors='replace')}'") from None
        return out

    def monitor(self, command: str) -> None:
        reply = self.request(b"qRcmd," + command.encode().hex().encode())
        if reply != b"OK":
            raise TinyeffError(f"the GDB server at {self.where} did not run 'monitor {command}' (it answered "
                               f"'{reply[:40].decode(errors='replace')}'); set the reset command its board needs")

    def go(self) -> None:
        """Let the target run and leave the connection (no reply comes until the target stops)."""
        body = b"c"
        self._sock.sendall(b"$" + body + b"#" + _checksum(body))
        time.sleep(0.05)  # the server reads the packet before the socket closes

    def close(self) -> None:
        self._sock.close()


def load_over_gdb(host: str, port: int, elf: Path, reset: str = "system_reset") -> str:
    """Write ELF to the target behind the GDB server at HOST:PORT, verify it, reset and start it;
    returns what was done, in one sentence."""
    segments = elf_segments(elf)
    gdb = GdbRemote(host, port)
    try:
        gdb.request(b"qSupported:multiprocess+")
        gdb.request(b"?")  # the stop reason: the target is halted from here on
        for s in segments:
            gdb.write(s.address, s.data)
        for s in segments:
            if gdb.read(s.address, len(s.data)) != s.data:
                raise TinyeffError(f"the firmware read back from {gdb.where} at 0x{s.address:08x} differs from {elf}; "
                                   "the memory there is not writable this way (flash needs the server's flash loader)")
        gdb.monitor(reset)
        gdb.go()
    finally:
        gdb.close()
    size = sum(len(s.data) for s in segments)
    return f"loaded and verified {size} bytes of {Path(elf).name} through the GDB server at {host}:{port}"
