"""The real firmware - protocol and compiled model - as a host process, driven by the real harness.

tests/host_firmware.py builds a generated project's C for this computer with the POSIX port
(firmware/ports/posix), whose UART is a TCP socket: SerialDevice, Dut and run_bench talk to it
over socket://127.0.0.1:PORT as they talk to a QEMU board, in microseconds per exchange. The
firmware is built once per module; every test starts its own process, so each finds a freshly
booted device.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from host_firmware import build_host_firmware, host_firmware, run_host_firmware
from link_faults import CorruptingRelay
from tinyeff.boards import get_board
from tinyeff.generate import generate
from tinyeff.harness.bench import Project, bench_inputs, run_bench
from tinyeff.harness.device import SerialDevice
from tinyeff.harness.dut import READY_PROBE_S, DeviceError, DeviceMemory, Dut, Signature
from tinyeff.reference import tflm_outputs

BOARD = "qemu-mps2-an386"  # a Cortex-M4F board: its DSP-path kernels, in their portable C form on the host


@pytest.fixture(scope="module")
def host_project(tiny_run, tmp_path_factory) -> tuple[Project, Path]:
    """The tiny run's compiled-runtime project for BOARD, and its firmware built for the host."""
    root = tmp_path_factory.mktemp("host_firmware")
    project = Project.load(generate(tiny_run / "model.int8.tflite", BOARD, "compiled", root / "project"))
    return project, build_host_firmware(project.path, root / "build")


@pytest.fixture(scope="module")
def samples(host_project, tiny_run) -> tuple[np.ndarray, np.ndarray]:
    """30 digits test inputs (int8, as the model takes them) and their labels."""
    project, _ = host_project
    (x,), y = bench_inputs(str(tiny_run), project.model, limit=30)
    return x, y


@contextlib.contextmanager
def _dut(exe: Path, **options):
    """A fresh firmware process and a Dut on it, past its boot banner (which it returns)."""
    with run_host_firmware(exe) as url, SerialDevice(url, get_board(BOARD).serial_baud, get_board(BOARD)) as device:
        dut = Dut(device, **{"timeout": 10, **options})
        yield dut, dut.wait_ready()


def _reference(project: Project, x: np.ndarray) -> list[bytes]:
    """Host TFLM's output bytes for each sample of X."""
    return [o.tobytes() for o in tflm_outputs(project.model, x)]


def _check_complete_and_exact(result, n):
    assert [r.index for r in result.results] == list(range(n))  # none lost, none twice
    assert result.errors == 0
    assert result.exact_agreement == 1.0 and result.accuracy == result.host_accuracy


def test_the_context_manager_builds_and_boots_with_the_board_banner(host_project):
    """host_firmware() reuses the module's up-to-date build; the process speaks as the board does."""
    project, exe = host_project
    built = exe.stat().st_mtime_ns
    with host_firmware(project.path, exe.parent) as url:
        assert urlparse(url).scheme == "socket" and urlparse(url).hostname == "127.0.0.1"
        with SerialDevice(url, 115200, get_board(BOARD)) as device:
            dut = Dut(device, timeout=10)
            assert dut.wait_ready() == ["m-init-done", "m-ready"]
            assert dut.command("name") == ["m-name-dut-[tinyeff]"]
            assert dut.signature() == Signature(project.manifest["model_sha256"], "compiled", BOARD)
    assert exe.stat().st_mtime_ns == built


def test_outputs_are_host_tflm_s_byte_for_byte(host_project, samples):
    project, exe = host_project
    x, _ = samples
    want = _reference(project, x[:8])
    with _dut(exe) as (dut, _):
        runs = [dut.run(s.tobytes()) for s in x[:8]]
        assert [r.output.tobytes() for r in runs] == want
        assert dut.output().tobytes() == want[-1]  # te-out: the last inference's outputs
        assert dut.retried == 0 and dut.runs == 8


def test_mlperf_commands_load_infer_and_results(host_project, samples):
    """db load / db HEX / infer / results, as an MLPerf Tiny runner sends them: the same outputs, and the
    results line is output 0 dequantized, truncated to thousandths, as the C computes it in float."""
    project, exe = host_project
    x, _ = samples
    (want,) = _reference(project, x[3:4])
    out = project.manifest["outputs"][0]
    with _dut(exe) as (dut, _):
        dut.load(x[3].tobytes())
        assert dut.command("db print")[0] == "m-buffer-" + "-".join(f"{b:02x}" for b in x[3].tobytes()[:8])
        us, lines = dut.infer(3, 2)
        assert [l for l in lines if not l.startswith(("m-lap-us-", "m-results-"))] == [
            "m-warmup-start-2", "m-warmup-done", "m-infer-start-3", "m-infer-done"]
        laps = [int(l.removeprefix("m-lap-us-")) for l in lines if l.startswith("m-lap-us-")]
        assert len(laps) == 2 and us == laps[1] - laps[0] >= 0  # the time between the laps, as the runner reports it
        assert dut.output().tobytes() == want
        _, lines = dut.infer()  # one inference, no warm-up
        assert [l for l in lines if l.startswith(("m-warmup-start", "m-infer-start"))] == ["m-warmup-start-0", "m-infer-start-1"]
    q = np.frombuffer(want, np.int8).astype(np.float32)
    real = (q - np.float32(out["zero_point"])) * np.float32(out["scale"]) * np.float32(1000)
    milli = real.astype(np.int32)
    text = ",".join(f"{'-' if m < 0 else ''}{abs(m) // 1000}.{abs(m) % 1000:03d}" for m in milli)
    assert [l for l in lines if l.startswith("m-results-")] == [f"m-results-[{text}]"]


def test_memory_timer_and_layer_ticks(host_project, samples):
    project, exe = host_project
    x, _ = samples
    layers = len(project.manifest["layers"])
    with _dut(exe) as (dut, _):
        assert dut.timer() == ("posix_monotonic", 1_000_000_000, 0)  # nothing timed before an inference
        assert dut.memory() == DeviceMemory(project.manifest["arena_bytes"], project.manifest["arena_bytes"], 0)
        run = dut.run(x[0].tobytes())
        assert dut.timer() == ("posix_monotonic", 1_000_000_000, layers)
        ticks = dut.layer_ticks()  # asked for LAYERS_PER_REPLY layers at a time
        assert len(ticks) == layers
        # the same stored figures as one te-layers reply lists them
        whole = dut.command("te-layers")
        assert whole[0] == f"m-te-timer-[posix_monotonic]-hz-1000000000-layers-{layers}"
        assert whole[1:-1] == [f"m-te-layer-{i}-{t}" for i, t in enumerate(ticks)]
        # the layers run between te-run's two timer reads
        assert sum(ticks) <= run.ticks


def test_a_stalled_te_put_times_out_while_the_device_idles(host_project):
    """te_protocol_idle runs between the port's polls: 100 ms after the last byte, te-put gives up."""
    _, exe = host_project
    with _dut(exe) as (dut, _):
        dut.device.send(b"te-put 0 16 00000000%" + bytes(5))
        lines = dut._lines(dut.device.read_until(b"m-ready\r\n", 5))
    assert lines[0] == "e-[te-put timed out with 11 of 16 bytes missing]"
    assert zlib.crc32(f"{lines[0]}\r\n".encode()) == int(lines[1][len("m-te-crc-["):-1], 16)
    assert lines[2:] == ["m-ready"]


def test_a_reconnected_harness_finds_the_device_as_it_left_it(host_project, samples):
    """Like a board whose cable is plugged in again: no new banner, the last inference still there."""
    project, exe = host_project
    x, _ = samples
    board = get_board(BOARD)
    with run_host_firmware(exe) as url:
        with SerialDevice(url, board.serial_baud, board) as device:
            dut = Dut(device, timeout=10)
            dut.wait_ready()
            first = dut.run(x[5].tobytes()).output.tobytes()
        with SerialDevice(url, board.serial_baud, board) as device:
            assert device.drain(quiet=0.1, limit=1.0) == b""
            dut = Dut(device, timeout=10)
            assert dut.output().tobytes() == first == _reference(project, x[5:6])[0]
            assert dut.signature().sha256 == project.manifest["model_sha256"]
        # what `tinyeff bench --port` does first: wait_ready asks the silent device instead of timing out
        with SerialDevice(url, board.serial_baud, board) as device:
            dut = Dut(device, timeout=10)
            started = time.monotonic()
            assert dut.wait_ready() == ["m-ready"]
            assert READY_PROBE_S <= time.monotonic() - started < READY_PROBE_S + 2
            assert dut.run(x[6].tobytes()).output.tobytes() == _reference(project, x[6:7])[0]


def test_bench_on_the_host_firmware_is_bit_exact(host_project, samples):
    project, exe = host_project
    x, y = samples
    with _dut(exe) as (dut, banner):
        assert banner == ["m-init-done", "m-ready"]
        result = run_bench(project, dut, dut.device, [x], y)
    _check_complete_and_exact(result, 30)
    assert result.resets == 0 and result.retries == 0
    assert result.timer == "posix_monotonic"
    assert [r.latency for r in result.results] == [float(r.ticks) for r in result.results]  # 1 GHz ticks: ns
    assert [(l.index, l.op) for l in result.layers] == [(l["index"], l["op"]) for l in project.manifest["layers"]]
    assert (result.arena_bytes, result.arena_used_bytes, result.stack_bytes) == (project.manifest["arena_bytes"],) * 2 + (0,)
    assert result.missing == []


def test_one_percent_of_bytes_damaged_still_gives_every_sample_exact(host_project, samples):
    """The bench through a relay that damages 1 % of the bytes both ways, with the Dut settings the QEMU
    test uses: every damaged exchange is retried until its CRC passes. Ten samples: at 1 % most
    te-put exchanges (some 150 bytes both ways) fail at least once, and the Dut's backoff between
    tries, not the firmware, sets the pace (about half a second a sample)."""
    project, exe = host_project
    x, y = samples[0][:10], samples[1][:10]
    board = get_board(BOARD)
    relay = CorruptingRelay(rate=0.01, seed=7)
    try:
        with run_host_firmware(exe) as url:
            target = urlparse(url)
            with SerialDevice(relay((target.hostname, target.port)), board.serial_baud, board) as device:
                dut = Dut(device, timeout=0.5, retries=20, quiet=0.05)
                dut.wait_ready()
                result = run_bench(project, dut, device, [x], y)
    finally:
        relay.close()
    assert relay.corrupted > 0.005 * relay.relayed
    assert result.retries > 0  # the damage was met, not missed
    _check_complete_and_exact(result, 10)
    assert [(l.index, l.op) for l in result.layers] == [(l["index"], l["op"]) for l in project.manifest["layers"]]
    assert result.missing == []


def test_a_command_the_device_refuses_is_named_with_the_device_s_words(host_project):
    _, exe = host_project
    with _dut(exe) as (dut, _):
        with pytest.raises(DeviceError, match=r"^the device refused 'db frobnicate': e-\[.+\]$") as e:
            dut.command("db frobnicate")
        first = [l for l in dut.device.last_lines() if l.startswith("e-[")]
        assert first and str(e.value).endswith(first[0])
