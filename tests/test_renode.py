"""Benching under Renode: the script the harness gives Renode, checked line by line against the
board data and against what was read in Renode's tree; the one sentence when Renode is missing;
and, where `renode` is installed, a bench that must be bit-exact with host TFLM.

Renode is on no registry this machine reaches, so the last test only runs elsewhere: it skips
with its reason, and TINYEFF_REQUIRE_RENODE=1 makes that skip a failure.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tinyeff.boards import all_boards, get_board
from tinyeff.cli import main
from tinyeff.errors import TinyeffError
from tinyeff.generate import generate
from tinyeff.harness.bench import Project, bench_inputs, run_bench
from tinyeff.harness.dut import Dut
from tinyeff.harness.flash import firmware_elf, open_device
from tinyeff.harness.renode import (CPU, DWT_BASE, TERMINAL, RenodeDevice, free_port, renode_binary,
                                    renode_command, resc_script)


@dataclasses.dataclass(frozen=True)
class RenodePlatform:
    repl: str  # the board's platform, as Renode's scripts name it (relative to Renode's tree)
    cpu_repl: str  # the SoC description it includes, where the UART, memories and core are
    uart: str
    uart_base: int
    cpu_type: str
    flash: tuple[int, int]  # (base, size)
    ram: tuple[int, int]


# Read from renode/renode at commit 06854d4d1def596a9a88aa841030c600df2249d3 (its src/Infrastructure
# submodule: renode/renode-infrastructure at 0c7d076201b52a23cf62ef836f537dc8f36222cc). Facts only.
RENODE_COMMIT = "06854d4d1def596a9a88aa841030c600df2249d3"
CHECKED = {
    "nano33ble": RenodePlatform("platforms/boards/arduino_nano_33_ble.repl", "platforms/cpus/nrf52840.repl",
                                "sysbus.uart0", 0x40002000, "cortex-m4", (0x0, 0x100000), (0x20000000, 0x40000)),
    "disco-f746ng": RenodePlatform("platforms/boards/stm32f7_discovery-bb.repl", "platforms/cpus/stm32f746.repl",
                                   "sysbus.usart1", 0x40011000, "cortex-m7", (0x08000000, 0x200000), (0x20000000, 0x60000)),
}
# Options of the renode launcher (renode-infrastructure src/UI/Options.cs); --disable-xwt is --disable-gui's alias.
RENODE_OPTIONS = {"--disable-xwt", "--disable-gui", "--plain", "--port", "--console", "--hide-log", "--execute"}

ELF = Path("/projects/kws/.pio/build/board/firmware.elf")  # the script names it; Renode reads it


def test_the_boards_name_the_checked_renode_platforms():
    renode = {b.id: b.emulator for b in all_boards().values() if b.emulator and b.emulator.kind == "renode"}
    assert set(renode) == set(CHECKED)
    for board_id, emulator in renode.items():
        assert (emulator.platform, emulator.uart) == (CHECKED[board_id].repl, CHECKED[board_id].uart)


@pytest.mark.parametrize("board_id", sorted(CHECKED))
def test_the_board_fits_its_renode_platform(board_id):
    """The core the firmware is compiled for is the platform's, and the board's flash and RAM lie within
    the platform's memories (PlatformIO's linker scripts place them at the same addresses)."""
    board, platform = get_board(board_id), CHECKED[board_id]
    assert f"-mcpu={platform.cpu_type}" in board.cflags
    assert board.flash_kib * 1024 <= platform.flash[1] and board.ram_kib * 1024 <= platform.ram[1]


@pytest.mark.parametrize("board_id", sorted(CHECKED))
def test_the_resc_script_line_by_line(board_id):
    board = get_board(board_id)
    port = 40123
    mips = board.clock_hz // 1_000_000
    assert resc_script(board, ELF, port).splitlines() == [
        "logLevel 3",
        f'mach create "{board_id}"',
        f"machine LoadPlatformDescription @{CHECKED[board_id].repl}",
        f'machine LoadPlatformDescriptionFromString "dwt: Miscellaneous.DWT @ sysbus 0xE0001000 {{ frequency: {board.clock_hz} }}"',
        f"sysbus.cpu PerformanceInMips {mips}",
        f'emulation CreateServerSocketTerminal {port} "{TERMINAL}" false',
        f"connector Connect {CHECKED[board_id].uart} {TERMINAL}",
        f"sysbus LoadELF @{ELF}",
        "start",
    ]
    assert (DWT_BASE, CPU) == (0xE0001000, "sysbus.cpu")  # both platforms call their core 'cpu'; neither maps a DWT


@pytest.mark.parametrize("board_id", sorted(CHECKED))
def test_one_dwt_count_is_one_emulated_instruction(board_id):
    """Renode's virtual time is instructions / (PerformanceInMips * 1e6) s and its DWT counts virtual time at
    its frequency: the script makes that one count per instruction, which is what the device reports."""
    board = get_board(board_id)
    lines = resc_script(board, ELF, 1).splitlines()
    frequency = int(lines[3].split("frequency: ")[1].split()[0])
    mips = int(lines[4].split()[-1])
    assert frequency == mips * 1_000_000 == board.clock_hz
    # the firmware reports its DWT at the board's clock (TE_CLOCK_HZ): its ticks are the instructions
    device = RenodeDevice.__new__(RenodeDevice)  # the arithmetic alone: no Renode is started
    device.board = board
    assert device.ticks_to_latency(123_456, board.clock_hz) == 123_456
    assert device.latency_unit == "emulated instructions"


def test_paths_with_spaces_are_escaped_and_a_semicolon_is_refused(tmp_path):
    board = get_board("disco-f746ng")
    assert f"sysbus LoadELF @{tmp_path}/my\\ project/firmware.elf" in resc_script(board, tmp_path / "my project" / "firmware.elf", 1)
    with pytest.raises(TinyeffError, match="has a ';'"):
        resc_script(board, tmp_path / "a;b" / "firmware.elf", 1)


def test_a_board_without_a_renode_platform_is_refused():
    with pytest.raises(TinyeffError, match="qemu-mps2-an386 has no Renode platform"):
        resc_script(get_board("qemu-mps2-an386"), ELF, 1)


def test_the_uart_port_is_free_on_every_interface():
    """Renode's socket terminal listens on all interfaces (SocketServerProvider binds IPAddress.Any)."""
    port = free_port()
    with socket.socket() as s:
        s.bind(("0.0.0.0", port))
    assert 0 < port < 65536


def test_the_command_line_uses_renodes_options(tmp_path):
    cmd = renode_command("/opt/renode/renode", 40000, tmp_path / "b.resc")
    assert cmd == ["/opt/renode/renode", "--disable-xwt", "--plain", "--port", "40000", str(tmp_path / "b.resc")]
    assert {a for a in cmd if a.startswith("--")} <= RENODE_OPTIONS


# ---------------------------------------------------------------- without Renode


@pytest.fixture(scope="module")
def renode_projects(tiny_run, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("renode")
    return {b: generate(tiny_run / "model.int8.tflite", b, "compiled", root / b) for b in sorted(CHECKED)}


def _tree(path: Path) -> dict[str, float]:
    return {str(p.relative_to(path)): p.stat().st_mtime for p in path.rglob("*")}


@pytest.mark.parametrize("board_id", sorted(CHECKED))
@pytest.mark.parametrize("asked", [True, False], ids=["--emulator renode", "the board's emulator"])
def test_without_renode_a_bench_is_one_sentence_and_starts_nothing(board_id, asked, renode_projects, tiny_run, tmp_path,
                                                                     monkeypatch, capsys):
    project = renode_projects[board_id]
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no renode (and nothing else) on PATH
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where a .resc would be written

    def no_process(*args, **kwargs):
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    before = _tree(project)
    capsys.readouterr()
    argv = ["bench", str(project), "--data", str(tiny_run), "--limit", "2"] + (["--emulator", "renode"] if asked else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyeff: error: ") and "\n" not in err and "Traceback" not in err, err
    assert "renode is not installed" in err and "renode.io" in err and "antmicro/renode" in err
    assert _tree(project) == before and not any(scratch.iterdir())


def test_renode_binary_is_the_one_on_path(tmp_path, monkeypatch):
    (tmp_path / "renode").write_text("")  # never run: which() only looks for an executable file
    (tmp_path / "renode").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert renode_binary() == str(tmp_path / "renode")


def test_renode_needs_platformios_elf(renode_projects):
    """Renode runs the firmware PlatformIO links with the board's framework; before 'pio run' there is none."""
    with pytest.raises(TinyeffError, match=r"has not been built; run 'pio run -d .*' first"):
        firmware_elf(Project.load(renode_projects["disco-f746ng"]))


# ---------------------------------------------------------------- with Renode


@pytest.fixture
def renode_and_pio() -> None:
    for tool in ("renode", "pio"):
        if shutil.which(tool) is None:
            reason = f"{tool} is not on PATH (Renode: renode.io or the antmicro/renode Docker image; PlatformIO: pip install platformio)"
            if os.environ.get("TINYEFF_REQUIRE_RENODE") == "1":
                pytest.fail(reason)
            pytest.skip(reason)


NANO_SERIAL_IS_USB = pytest.mark.xfail(strict=True, reason=(
    "ArduinoCore-mbed's Serial on the Nano 33 BLE is USB CDC (variants/ARDUINO_NANO33BLE/pins_arduino.h: SERIAL_CDC, "
    "SERIAL_PORT_MONITOR SerialUSB), which Renode's nrf52840 platform does not model; the Arduino port talks on "
    "Serial, not on UARTE0 (Serial1), where sysbus.uart0 is"))


@pytest.mark.emulator
@pytest.mark.parametrize("board_id", sorted(CHECKED))
def test_bench_under_renode_is_bit_exact_with_host_tflm(board_id, renode_and_pio, tiny_run, tmp_path, request):
    if board_id == "nano33ble":  # marked here, past the tools' check, so that a missing tool is never an xfail
        request.node.add_marker(NANO_SERIAL_IS_USB)
    out = generate(tiny_run / "model.int8.tflite", board_id, "compiled", tmp_path / board_id)
    r = subprocess.run(["pio", "run", "-d", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:]
    project = Project.load(out)
    x, y = bench_inputs(str(tiny_run), project.model, limit=40)
    with open_device(project, None, "renode") as device:
        assert isinstance(device, RenodeDevice)
        dut = Dut(device, timeout=120)
        dut.wait_ready()
        result = run_bench(project, [dut], x, y)
    assert [s.index for s in result.results] == list(range(40)) and result.errors == 0
    assert result.exact_agreement == 1.0 and result.accuracy == result.host_accuracy
    assert result.latency_unit == "emulated instructions" and result.latency_min > 0 and result.latency_us_median is None
