"""The host side of the serial protocol: MLPerf Tiny DUT commands and tinyeff's te- commands.

``command`` speaks the MLPerf Tiny protocol as a test runner does: one command, its reply up to
``m-ready``. ``run`` is what benches use: the input goes up in CRC-checked binary chunks
(``te-put``), the inference runs only if the whole input's CRC matches (``te-run``), and the
reply carries a CRC of its own. A corrupted or lost exchange is retried (bounded); a reset of
the device (its ``m-init-done`` banner) and a HardFault report are raised as such, so a bench can
redo the sample or stop, and no sample is counted twice or lost silently.
"""

from __future__ import annotations

import dataclasses
import re
import time
import zlib

import numpy as np

from tinyeff.errors import TinyeffError
from tinyeff.harness.device import DeviceTimeout, LinkClosed

READY = b"m-ready\r\n"
BANNER = "m-init-done"
HEX_PER_COMMAND = 76  # "db " + 76 hex digits + "%" stays under the 80-byte command limit
PUT_CHUNK = 64  # raw bytes per te-put: small enough that a corrupted chunk costs little to resend
_STALE = object()


@dataclasses.dataclass(frozen=True)
class Signature:
    sha256: str
    runtime: str
    board: str


@dataclasses.dataclass(frozen=True)
class Inference:
    output: np.ndarray  # int8 output bytes, exactly as the device computed them
    ticks: int  # device timer ticks for the inference


@dataclasses.dataclass(frozen=True)
class DeviceMemory:
    arena_bytes: int  # declared: what the firmware reserves for the model
    arena_used_bytes: int  # what the runtime's planner took of it
    stack_bytes: int  # painted high-water mark


class DeviceError(TinyeffError):
    pass


class DeviceReset(DeviceError):
    """The device sent its boot banner in the middle of an exchange: its state is gone."""


class DeviceFault(DeviceError):
    """The device reported a HardFault and stopped."""


def _verified(lines: list[str]) -> list[str] | None:
    """The lines of a te- reply before its m-te-crc line, if their CRC-32 matches; else None."""
    for k, line in enumerate(lines):
        m = re.fullmatch(r"m-te-crc-\[([0-9a-f]{8})\]", line)
        if m:
            body = lines[:k]
            sent = "".join(l + "\r\n" for l in body).encode("ascii", "replace")
            return body if zlib.crc32(sent) == int(m.group(1), 16) else None
    return None


def _ready_like(line: str) -> bool:
    """'m-ready' at the end of LINE with at most two characters damaged on the link."""
    tail = line[-7:]
    return len(tail) == 7 and sum(a != b for a, b in zip(tail, "m-ready")) <= 2


class Dut:
    """A device running tinyeff firmware, driven over DEVICE (anything with send/read_until/drain)."""

    def __init__(self, device, timeout: float = 30.0, retries: int = 8, quiet: float = 0.3):
        """TIMEOUT: seconds to wait for a reply; RETRIES: how often a damaged exchange is sent
        again; QUIET: seconds of silence that end a resync (an emulator answers in microseconds,
        a board at 115200 baud in milliseconds)."""
        self.device, self.timeout, self.retries, self.quiet = device, timeout, retries, quiet
        self.retried = 0  # exchanges sent again after a corrupted or lost reply
        self.runs = 0  # inferences asked for with te-run: each one's number, so a retry never runs twice

    def wait_ready(self) -> list[str]:
        return self._lines(self._read(READY, self.timeout))

    def _read(self, marker: bytes, timeout: float) -> bytes:
        try:
            return self.device.read_until(marker, timeout)
        except LinkClosed:
            # a fault report is the device's last word before an emulator exits: name it
            self._check_faults(self.device.last_lines())
            raise

    @staticmethod
    def _lines(raw: bytes) -> list[str]:
        return [l for l in raw.decode("ascii", "replace").replace("\r", "").split("\n") if l]

    def _check_faults(self, lines: list[str]) -> None:
        for line in lines:
            m = re.search(r"e-\[hardfault pc=(0x[0-9a-f]{8})\]", line)
            if m:
                raise DeviceFault(f"the device hit a HardFault at pc={m.group(1)} and stopped; "
                                  f"look the address up with arm-none-eabi-addr2line -e build/firmware.elf {m.group(1)}")
        if any(BANNER in line for line in lines):
            raise DeviceReset("the device reset during an exchange")

    def command(self, cmd: str) -> list[str]:
        """Send CMD, return the reply lines before m-ready; an e-[...] reply raises DeviceError."""
        self.device.send(cmd.encode("ascii") + b"%")
        lines = self._lines(self._read(READY, self.timeout))
        self._check_faults(lines)
        lines = lines[:-1]
        errors = [l for l in lines if l.startswith("e-[")]
        if errors:
            raise DeviceError(f"the device refused '{cmd}': {errors[0]}")
        return lines

    # ------------------------------------------------------------ exchanges that survive a noisy link

    def _read_reply(self, timeout: float) -> list[str]:
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self._read(b"\n", max(deadline - time.monotonic(), 0.0)).decode("ascii", "replace").replace("\r", "").rstrip("\n")
            if line:
                lines.append(line)
            self._check_faults(lines)
            if _ready_like(line):
                return lines

    def resync(self) -> None:
        """Bring the device back to an empty command line: a lone '%' ends any half-received
        command (or is a byte of an unfinished te-put, which then fails its CRC or times out),
        and whatever it replies is read and dropped."""
        self.device.send(b"%")
        self._check_faults(self._lines(self.device.drain(self.quiet, limit=self.timeout)))

    def _exchange(self, request: bytes, parse, what: str, timeout: float | None = None):
        """Send the te- REQUEST until its reply passes its CRC and PARSE accepts the lines
        (returns non-None); bounded retries."""
        last: list[str] = []
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                self.resync()
            self.device.send(request)
            try:
                lines = self._read_reply(timeout or self.timeout)
            except DeviceTimeout:
                last = self.device.last_lines()
                continue
            body = _verified(lines)
            value = parse(body) if body is not None else None
            if value is not None:
                return value
            last = lines
        raise DeviceError(f"{what} failed {self.retries + 1} times; the device's last lines were {last}; "
                          "check the link (baud rate, cable) and that the board runs this firmware")

    def signature(self) -> Signature:
        """The model, runtime and board the firmware was built for; read until two readings agree."""
        def parse(lines):
            for line in lines:
                m = re.fullmatch(r"m-te-sig-\[([0-9a-f]{64})\]-\[(\w+)\]-\[([\w.-]+)\]", line)
                if m:
                    return Signature(*m.groups())
            return None

        return self._exchange(b"te-sig%", parse, "reading the firmware signature (te-sig)")

    def put_input(self, data: bytes) -> None:
        """Load DATA into the device's input buffer in CRC-checked binary chunks."""
        for off in range(0, len(data), PUT_CHUNK):
            chunk = data[off : off + PUT_CHUNK]
            request = f"te-put {off} {len(chunk)} {zlib.crc32(chunk):08x}%".encode() + chunk
            self._exchange(request, lambda lines: True if any("m-te-put-ok" in l for l in lines) else None,
                           f"uploading input bytes {off}..{off + len(chunk)}")

    def run(self, data: bytes, timeout: float | None = None) -> Inference:
        """One inference on DATA: upload, run, and the output bytes with the ticks it took. The request
        carries this inference's number, so asking again after a damaged reply does not run the model
        a second time (a model with state would move on)."""
        self.runs += 1
        request = f"te-run {zlib.crc32(data):08x} {self.runs % 1_000_000_000}%".encode()

        def parse(lines):
            for line in lines:
                m = re.fullmatch(r"m-te-run-\[([0-9a-f]*)\]-\[(\d+)\]", line)
                if m:
                    return Inference(np.frombuffer(bytes.fromhex(m.group(1)), np.int8).copy(), int(m.group(2)))
            # the input on the device is not what was sent (a chunk went to the wrong offset, or
            # the request itself was damaged): upload again rather than retry the same request
            return _STALE if any("te-run input CRC" in l for l in lines) else None

        for _ in range(self.retries + 1):
            self.put_input(data)
            result = self._exchange(request, parse, "running an inference (te-run)", timeout)
            if result is not _STALE:
                return result
            self.retried += 1
        raise DeviceError(f"the device's input never matched the {len(data)} bytes sent after {self.retries + 1} uploads; "
                          "check the link")

    # ------------------------------------------------------------ MLPerf Tiny style commands

    def load(self, data: bytes) -> None:
        self.command(f"db load {len(data)}")
        text = data.hex()
        for i in range(0, len(text), HEX_PER_COMMAND):
            self.command(f"db {text[i : i + HEX_PER_COMMAND]}")

    def infer(self, n: int = 1, warmup: int = 0) -> tuple[int, list[str]]:
        """Run N inferences after WARMUP; (microseconds between the two laps, reply lines)."""
        lines = self.command(f"infer {n} {warmup}")
        laps = [int(l.rsplit("-", 1)[1]) for l in lines if l.startswith("m-lap-us-")]
        if len(laps) != 2:
            raise DeviceError(f"'infer' replied without two m-lap-us lines: {lines}")
        return laps[1] - laps[0], lines

    def output(self) -> np.ndarray:
        """The output bytes of the last inference (te-out)."""
        def parse(lines):
            for line in lines:
                m = re.fullmatch(r"m-te-out-\[([0-9a-f]*)\]", line)
                if m:
                    return np.frombuffer(bytes.fromhex(m.group(1)), np.int8).copy()
            return None
        return self._exchange(b"te-out%", parse, "reading the output (te-out)")

    def timer(self) -> tuple[str, int, list[int]]:
        """The device timer's name and rate, and the ticks each layer took in the last inference."""
        def parse(lines):
            head = [m for m in (re.fullmatch(r"m-te-timer-\[(\w+)\]-hz-(\d+)", l) for l in lines) if m]
            ticks = [int(l.rsplit("-", 1)[1]) for l in lines if re.fullmatch(r"m-te-layer-\d+-\d+", l)]
            return (head[0].group(1), int(head[0].group(2)), ticks) if head else None
        return self._exchange(b"te-layers%", parse, "reading per-layer ticks (te-layers)")

    def layer_ticks(self) -> list[int]:
        return self.timer()[2]

    def memory(self) -> "DeviceMemory":
        """The model's arena, the part of it in use, and the stack's painted high-water mark (te-mem)."""
        def parse(lines):
            for line in lines:
                m = re.fullmatch(r"m-te-mem-arena-(\d+)-used-(\d+)-stack-(\d+)", line)
                if m:
                    return DeviceMemory(*map(int, m.groups()))
            return None
        return self._exchange(b"te-mem%", parse, "reading memory use (te-mem)")
