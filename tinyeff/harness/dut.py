"""The host side of the serial protocol: MLPerf Tiny DUT commands and tinyeff's te- commands."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from tinyeff.errors import TinyeffError

READY = b"m-ready\r\n"
HEX_PER_COMMAND = 76  # "db " + 76 hex digits + "%" stays under the 80-byte command limit


@dataclasses.dataclass(frozen=True)
class Signature:
    sha256: str
    runtime: str
    board: str


class DeviceError(TinyeffError):
    pass


class Dut:
    """A device running tinyeff firmware, driven over DEVICE (anything with send/read_until)."""

    def __init__(self, device, timeout: float = 30.0):
        self.device, self.timeout = device, timeout

    def wait_ready(self) -> list[str]:
        return self._lines(self.device.read_until(READY, self.timeout))

    @staticmethod
    def _lines(raw: bytes) -> list[str]:
        return [l for l in raw.decode("ascii", "replace").replace("\r", "").split("\n") if l]

    def command(self, cmd: str) -> list[str]:
        """Send CMD, return the reply lines before m-ready; an e-[...] reply raises DeviceError."""
        self.device.send(cmd.encode("ascii") + b"%")
        lines = self._lines(self.device.read_until(READY, self.timeout))[:-1]
        errors = [l for l in lines if l.startswith("e-[")]
        if errors:
            raise DeviceError(f"the device refused '{cmd}': {errors[0]}")
        return lines

    def signature(self) -> Signature:
        for line in self.command("te-sig"):
            m = re.fullmatch(r"m-te-sig-\[([0-9a-f]{64})\]-\[(\w+)\]-\[([\w.-]+)\]", line)
            if m:
                return Signature(*m.groups())
        raise DeviceError("the device sent no m-te-sig line; flash it with firmware that tinyeff generated")

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
        for line in self.command("te-out"):
            m = re.fullmatch(r"m-te-out-\[([0-9a-f]*)\]", line)
            if m:
                return np.frombuffer(bytes.fromhex(m.group(1)), np.int8)
        raise DeviceError("the device sent no m-te-out line")

    def layer_ticks(self) -> list[int]:
        return [int(l.rsplit("-", 1)[1]) for l in self.command("te-layers") if l.startswith("m-te-layer-")]

    def memory(self) -> tuple[int, int]:
        for line in self.command("te-mem"):
            m = re.fullmatch(r"m-te-mem-arena-(\d+)-stack-(\d+)", line)
            if m:
                return int(m.group(1)), int(m.group(2))
        raise DeviceError("the device sent no m-te-mem line")
