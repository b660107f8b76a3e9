"""A real labgrid farm on this machine: a coordinator, one exporter, and emulated boards as places.

Each place is a QEMU board started halted with empty memory behind its GDB server, its UART a TCP
port: the exporter exports both (a NetworkSerialPort with protocol raw, and a TinyeffGDBServer),
and the place matches the exporter's group of the same name. Nothing here is mocked: tinyeff talks
gRPC to labgrid-coordinator, loads the firmware through QEMU's gdbstub and benches over the UART.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from tinyeff.boards import Board
from tinyeff.harness.device import qemu_command

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether something listens on PORT (read from the kernel: connecting to probe would be a
    connection; gRPC listens on an IPv6 socket that also takes IPv4)."""
    tables = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
    return re.search(rf":{port:04X} 0+:0000 0A", tables) is not None


class LabgridLab:
    """Coordinator, exporter and one halted QEMU board per place name; stopped on close. RUNNING maps
    more place names to an ELF their board already runs: those places export the UART only, as a
    board flashed by hand whose debug port the farm does not export."""

    def __init__(self, workdir: Path, board: Board, places: list[str], running: dict[str, Path] | None = None):
        self.workdir, self.running = workdir, running or {}
        self.places = places + list(self.running)
        self.address = f"127.0.0.1:{free_port()}"
        self._procs: list[subprocess.Popen] = []
        try:
            self._start(board)
        except BaseException:
            self.close()
            raise

    def _spawn(self, cmd: list[str], log: str, env: dict | None = None) -> subprocess.Popen:
        out = open(self.workdir / log, "wb")
        # cwd: the coordinator keeps its places in places.yaml where it runs
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        out.close()
        self._procs.append(proc)
        return proc

    def _wait_for(self, what: str, ready, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p for p in self._procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = {f.name: f.read_text(errors="replace")[-600:] for f in self.workdir.glob("*.log")}
                raise RuntimeError(f"the labgrid lab did not get {what}; logs: {logs}")
            time.sleep(0.1)

    def _start(self, board: Board) -> None:
        coordinator = self._spawn([str(BIN / "labgrid-coordinator"), "--listen", self.address], "coordinator.log")
        port = int(self.address.rsplit(":", 1)[1])
        self._wait_for("a coordinator", lambda: _listening(port))
        groups = []
        for name in self.places:
            serial, gdb = free_port(), free_port()
            group = (f"{name}:\n  NetworkSerialPort:\n    host: 127.0.0.1\n    port: {serial}\n    protocol: raw\n"
                     f"    speed: {board.serial_baud}\n")
            if name in self.running:  # runs its firmware once the harness connects (wait=on)
                self._spawn(qemu_command(board, serial, elf=self.running[name]), f"qemu-{name}.log")
                self._wait_for(f"QEMU for {name}", lambda: _listening(serial))
            else:
                self._spawn(qemu_command(board, serial, gdb=gdb), f"qemu-{name}.log")
                self._wait_for(f"QEMU for {name}", lambda: _listening(serial) and _listening(gdb))
                group += f"  TinyeffGDBServer:\n    host: 127.0.0.1\n    port: {gdb}\n    reset: system_reset\n"
            groups.append(group)
        config = self.workdir / "exporter.yaml"
        config.write_text("".join(groups))
        self._spawn([str(BIN / "labgrid-exporter"), "--coordinator", self.address, "--name", "lab", str(config)],
                    "exporter.log")
        self._wait_for("the exporter's resources", lambda: all(
            f"lab/{name}/NetworkSerialPort" in self.client("resources") for name in self.places))
        for name in self.places:
            self.client("-p", name, "create")
            self.client("-p", name, "add-match", f"lab/{name}/*")
        assert coordinator.poll() is None

    def client(self, *args: str, user: str | None = None, check: bool = True) -> str:
        """labgrid-client ARGS against this lab's coordinator, as USER when given (someone else)."""
        env = {**os.environ, "LG_COORDINATOR": self.address}
        if user:
            env["LG_USERNAME"] = user
        r = subprocess.run([str(BIN / "labgrid-client"), *args], capture_output=True, text=True, env=env, timeout=60)
        if check and r.returncode:
            raise RuntimeError(f"labgrid-client {' '.join(args)} failed: {r.stdout}{r.stderr}")
        return r.stdout + r.stderr

    def holder(self, place: str) -> str | None:
        for line in self.client("-p", place, "show").splitlines():
            if line.strip().startswith("acquired:"):
                value = line.split(":", 1)[1].strip()
                return None if value == "None" else value
        return None

    def close(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
