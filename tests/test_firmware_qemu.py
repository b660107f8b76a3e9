"""Generated compiled-runtime firmware, built with arm-none-eabi-gcc and run in QEMU.

A sample of inputs goes through the MLPerf Tiny protocol on the emulated UART; the output
bytes must equal the host TFLM interpreter's, and the latency the harness reports must be the
instruction count that QEMU's -icount defines.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tinyeff.boards import get_board
from tinyeff.footprint import load_model_file
from tinyeff.generate import generate
from tinyeff.harness.device import QEMU_ICOUNT_SHIFT, QemuDevice
from tinyeff.harness.dut import Dut
from tinyeff.reference import tflm_outputs

QEMU_BOARDS = ("qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505", "qemu-mps3-an547")
SAMPLES = 6


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process PID so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _build(model, board_id, tmp_path, extra_cflags: str = ""):
    project = generate(model, board_id, "compiled", tmp_path / board_id)
    r = subprocess.run(["make", "-s", "-C", str(project), f"EXTRA_CFLAGS={extra_cflags}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return project / "build" / "firmware.elf"


@pytest.mark.emulator
# the reference on every board; the kit's KWS-shaped model (there without shared/) on one board per
# non-generic kernel path, so the emulator builds stay few
@pytest.mark.parametrize(("kws_shaped_model", "board_id"),
                         [("kws_model", b) for b in QEMU_BOARDS] + [("kws_like_model", "qemu-mps2-an386"),
                                                                    ("kws_like_model", "qemu-mps3-an547")],
                         indirect=["kws_shaped_model"])
def test_kws_firmware_is_bit_exact_in_qemu(kws_shaped_model, board_id, tmp_path):
    """Bit-exact outputs, and latency that is what -icount makes it: with shift=0 one emulated
    instruction is one virtual nanosecond, so te-spin's loop of exactly 2N instructions must come
    back, through the SysTick rate the firmware reports and the harness's conversion (the path of
    every benched inference), as 2N emulated instructions. A board file whose clock_hz is not the
    SysTick rate of QEMU's machine misses by their ratio (mps2-an505 at 25 MHz: by 20 %)."""
    elf = _build(kws_shaped_model, board_id, tmp_path, extra_cflags="-DTE_SPIN_COMMAND")
    data, info = load_model_file(kws_shaped_model)
    rng = np.random.default_rng(4)
    zp = info.input().zero_points[0]
    x = np.clip(np.round(rng.normal(zp, 8, (SAMPLES, *info.input().shape))), -128, 127).astype(np.int8)
    want = tflm_outputs(data, x).reshape(SAMPLES, -1)
    with QemuDevice(elf, get_board(board_id)) as device:
        dut = Dut(device)
        assert dut.wait_ready()[-1] == "m-ready"
        assert dut.command("name") == ["m-name-dut-[tinyeff]"]
        sig = dut.signature()
        assert (sig.sha256, sig.runtime, sig.board) == (info.sha256, "compiled", board_id)
        for i in range(SAMPLES):
            dut.load(x[i].tobytes())
            micros, lines = dut.infer(1, 0)
            assert micros > 0 and lines[-1].startswith("m-results-[")
            assert np.array_equal(dut.output(), want[i])
        timer, hz, timed = dut.timer()
        ticks = dut.layer_ticks()
        assert timed == len(ticks) == len(info.ops) and sum(ticks) > 0
        assert (timer, hz) == ("systick", get_board(board_id).clock_hz)
        assert QEMU_ICOUNT_SHIFT == 0
        n = 1_000_000
        reply = dut.command(f"te-spin {n}")
        spin = re.fullmatch(rf"m-te-spin-\[{n}\]-\[(\d+)\]", reply[0])
        assert spin, reply
        # 2N loop instructions plus the two timer reads around them; a tick is 31 to 50 instructions
        assert abs(device.ticks_to_latency(int(spin.group(1)), hz) - 2 * n) < 500
        mem = dut.memory()
        # RAM for the model: its arena plus the stack its kernels used, measured by painting
        assert 0 < mem.stack_bytes < 1024 and mem.arena_bytes + mem.stack_bytes < 0.6 * 24_272
        assert mem.arena_used_bytes == mem.arena_bytes  # the compiled runtime's arena is its plan


@pytest.mark.emulator
def test_protocol_refuses_bad_commands_and_survives_long_input(kws_model, tmp_path):
    elf = _build(kws_model, "qemu-mps2-an386", tmp_path)
    with QemuDevice(elf, get_board("qemu-mps2-an386")) as device:
        dut = Dut(device)
        dut.wait_ready()
        device.send(b"x" * 5000 + b"%")
        assert any("longer than 80" in l for l in Dut._lines(device.read_until(b"m-ready\r\n", 30)))
        device.send(b"bogus%")
        assert any(l.startswith("e-[Unknown command: bogus]") for l in Dut._lines(device.read_until(b"m-ready\r\n", 30)))
        device.send(b"infer 1 0%")  # nothing loaded yet
        assert any(l.startswith("e-[Input db has 0 bytes") for l in Dut._lines(device.read_until(b"m-ready\r\n", 30)))
        device.send(b"db load 99999%")
        assert any("exceeds maximum" in l for l in Dut._lines(device.read_until(b"m-ready\r\n", 30)))
        assert dut.command("name") == ["m-name-dut-[tinyeff]"]  # still serving
        # The CMSDK port sleeps (WFI on the UART's receive interrupt) while no byte comes: an idle
        # QEMU takes almost no CPU (a firmware polling its UART would take a core, or all it gets)
        cpu = _cpu_seconds(device.proc.pid)
        time.sleep(2.0)
        assert _cpu_seconds(device.proc.pid) - cpu < 0.3


@pytest.mark.emulator
@pytest.mark.parametrize("board_id", ["qemu-mps2-an386", "qemu-mps3-an547"])
def test_a_plain_mlperf_tiny_client_gets_the_host_reference(kws_model, board_id, tmp_path):
    """Only the MLPerf Tiny DUT commands, as raw bytes over the UART: no tinyeff client code."""
    elf = _build(kws_model, board_id, tmp_path)
    data, info = load_model_file(kws_model)
    out_t = info.output()
    rng = np.random.default_rng(5)
    x = np.clip(np.round(rng.normal(info.input().zero_points[0], 10, (3, *info.input().shape))), -128, 127).astype(np.int8)
    want = tflm_outputs(data, x).reshape(3, -1)
    with QemuDevice(elf, get_board(board_id)) as device:
        def send(cmd: str) -> str:
            device.send(cmd.encode() + b"%")
            return device.read_until(b"m-ready\r\n", 30).decode()

        device.read_until(b"m-ready\r\n", 30)
        assert "m-name-dut-[tinyeff]" in send("name")
        for i in range(3):
            raw = x[i].tobytes()
            assert f"m-[Expecting {len(raw)} bytes]" in send(f"db load {len(raw)}")
            for k in range(0, len(raw), 32):
                send("db " + raw[k : k + 32].hex())
            reply = send("infer 1 0")
            assert "m-infer-done" in reply and "m-lap-us-" in reply
            results = send("results").split("m-results-[")[1].split("]")[0]
            got = [round(float(v) * 1000) for v in results.split(",")]
            # the firmware prints (q - zero_point) * scale in float32, truncated to 3 decimals
            q = want[i].astype(np.float32) - np.float32(out_t.zero_points[0])
            expected = np.trunc(q * np.float32(out_t.scales[0]) * np.float32(1000)).astype(int).tolist()
            assert got == expected
