"""tinyeff bench on emulated boards, and the faults a bench must survive or name.

The kit's own digits model runs in QEMU through the serial protocol; its outputs must be the
host TFLM interpreter's, byte for byte. The faults are real: QEMU's board is reset through its
monitor mid-bench, a relay damages 1 % of the bytes on the link, firmware built from another
model is refused, and a firmware that faults reports its PC.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

from pathlib import Path

import numpy as np
import pytest

from link_faults import FaultyRelay
from tinyeff.boards import get_board
from tinyeff.cli import main
from tinyeff.errors import TinyeffError
from tinyeff.generate import generate
from tinyeff.harness.bench import Project, bench_inputs, run_bench
from tinyeff.harness.device import QemuDevice, qemu_command, qemu_monitor
from tinyeff.harness.dut import DeviceFault, Dut
from tinyeff.harness.flash import build


def _project(tiny_run, tmp_path, board_id, extra_cflags: str = "") -> Project:
    out = generate(tiny_run / "model.int8.tflite", board_id, "compiled", tmp_path / board_id)
    if extra_cflags:
        r = subprocess.run(["make", "-s", "-C", str(out), f"EXTRA_CFLAGS={extra_cflags}"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    project = Project.load(out)
    build(project)
    return project


@pytest.fixture(scope="session")
def built_project(tiny_run, tmp_path_factory, machine_cached):
    """BUILT_PROJECT(board, cflags): the tiny run's compiled-runtime project for a board, built once per
    session and shared by the tests that only run it (once per machine under mutation testing, whose
    runs mutate nothing that generates or builds it)."""
    made: dict[tuple[str, str], Project] = {}

    def get(board_id: str, extra_cflags: str = "") -> Project:
        if (board_id, extra_cflags) not in made:
            name = f"bench-qemu-{board_id}" + (f"-{extra_cflags.lstrip('-').replace('=', '_')}" if extra_cflags else "")
            path = machine_cached(name, lambda: _project(tiny_run, tmp_path_factory.mktemp(name), board_id, extra_cflags).path)
            made[(board_id, extra_cflags)] = Project.load(path)
        return made[(board_id, extra_cflags)]
    return get


def _inputs(project, tiny_run, n):
    return bench_inputs(str(tiny_run), project.model, limit=n)


def _bench(project, board_id, x, y, relay=None, **dut_options):
    """Run_bench on a fresh QEMU for BOARD_ID; behind a RELAY the inputs go over the damaged link (what
    is tested there), not through the emulator's host file."""
    if relay:
        dut_options.setdefault("host_file", False)
    with QemuDevice(project.elf, get_board(board_id), relay=relay) as device:
        dut = Dut(device, **{"timeout": 10, **dut_options})
        dut.wait_ready()
        return run_bench(project, [dut], x, y)


def _check_complete_and_exact(result, n):
    assert [r.index for r in result.results] == list(range(n))  # none lost, none twice
    assert result.errors == 0
    assert result.exact_agreement == 1.0 and result.accuracy == result.host_accuracy


@pytest.mark.emulator
@pytest.mark.parametrize("board_id", ["qemu-mps2-an386", "qemu-mps3-an547"])
def test_bench_in_qemu_is_bit_exact_with_host_tflm(tiny_run, built_project, board_id):
    project = built_project(board_id)
    x, y = _inputs(project, tiny_run, 120)
    result = _bench(project, board_id, x, y)
    _check_complete_and_exact(result, 120)
    assert result.resets == 0 and result.retries == 0
    assert result.latency_unit == "emulated instructions" and result.latency_min > 0
    assert len(result.layers) == len(project.manifest["layers"]) and sum(l.latency for l in result.layers) > 0
    assert result.arena_bytes == project.manifest["arena_bytes"] and 0 < result.stack_bytes < 1024


@pytest.mark.emulator
def test_a_float_io_model_benches_bit_exact_in_qemu(tiny_run, tmp_path):
    """The same model converted with float32 input and output (QUANTIZE ... DEQUANTIZE): the
    harness sends float bytes and compares the device's float outputs with host TFLM's."""
    from tinyeff.compress.quantize import representative_set, to_int8_tflite
    from tinyeff.train import Run, features_of

    run = Run.load(tiny_run)
    x_train = features_of(run.spec, run.data.x_train)
    model = tmp_path / "float_io.tflite"
    model.write_bytes(to_int8_tflite(run.keras_model(), run.spec, representative_set(x_train), float_io=True))
    out = generate(model, "qemu-mps2-an386", "compiled", tmp_path / "project")
    project = Project.load(out)
    assert project.manifest["inputs"][0]["dtype"] == "float32" and project.manifest["outputs"][0]["dtype"] == "float32"
    assert project.manifest["ops"][0] == "QUANTIZE" and project.manifest["ops"][-1] == "DEQUANTIZE"
    build(project)
    x, y = bench_inputs(str(tiny_run), project.model, limit=40)
    assert len(x) == 1 and x[0].dtype == np.float32
    result = _bench(project, "qemu-mps2-an386", x, y)
    _check_complete_and_exact(result, 40)
    assert isinstance(result.results[0].output[0], float)


@pytest.mark.emulator
def test_bench_command_writes_json_junit_and_plot(tiny_run, built_project, tmp_path, capsys):
    project = built_project("qemu-mps2-an386")
    rc = main(["bench", str(project.path), "--data", str(tiny_run), "--limit", "40", "--min-accuracy", "0.5",
               "--json", str(tmp_path / "b.json"), "--junit", str(tmp_path / "b.xml"), "--plot", str(tmp_path / "b.png"),
               "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "100.0 % of outputs bit-exact" in out and "emulated instructions per inference" in out
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["samples"] == 40 and report["exact_agreement"] == 1.0
    suite = ET.parse(tmp_path / "b.xml").getroot()
    assert suite.get("tests") == "41" and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@contextlib.contextmanager
def _qemu_by_hand(board, elf, monitor: int | None = None):
    """QEMU started as a project's 'make run' starts it, but with its UART on a TCP port (waiting for
    the first connection before the board runs): what a user benches with --port socket://...
    MONITOR: a local TCP port for QEMU's monitor (qemu_monitor(MONITOR, "stop") pauses the board)."""
    port = _free_port()
    qemu = subprocess.Popen(qemu_command(board, port, monitor=monitor, elf=elf),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until QEMU listens (probing would count as its one connection)
            if f":{port:04X} 00000000:0000 0A" in Path("/proc/net/tcp").read_text():
                break
            time.sleep(0.05)
        yield ("127.0.0.1", port)
    finally:
        qemu.kill()
        qemu.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.emulator
def test_bench_over_a_port_labels_an_emulated_board_by_its_board_data(tiny_run, built_project, tmp_path, capsys):
    """Benched with --port socket://...: the firmware's board is emulated, so its timing is emulated
    instructions, the same count the harness's own QEMU gives (-icount makes it repeatable)."""
    board = get_board("qemu-mps2-an386")
    project = built_project(board.id)
    x, y = _inputs(project, tiny_run, 20)
    own = _bench(project, board.id, x, y)
    with _qemu_by_hand(board, project.elf) as (host, port):
        rc = main(["bench", str(project.path), "--port", f"socket://{host}:{port}", "--data", str(tiny_run),
                   "--limit", "20", "--json", str(tmp_path / "port.json"), "--quiet"])
    assert rc == 0, capsys.readouterr().out
    report = json.loads((tmp_path / "port.json").read_text())
    assert report["latency_unit"] == "emulated instructions" and report["latency_us_median"] is None
    assert report["exact_agreement"] == 1.0
    # the same instructions, read through a timer whose ticks fall where the wait for input left them:
    # one tick apart at most (1e9 / 25 MHz = 40 instructions)
    tick = 1e9 / board.clock_hz  # SysTick counts the core clock
    assert all(abs(r["latency"] - o.latency) <= tick for r, o in zip(report["results"], own.results))


@pytest.fixture(scope="module")
def an386_project(built_project) -> Project:
    return built_project("qemu-mps2-an386")


def _resets_and_a_hang(monitor: int):
    """An on_run hook: the board is reset right after the 8th and the 20th te-run request, and paused
    (QEMU's monitor 'stop') for 3 s right after the 14th: longer than the harness waits for a reply."""
    def on_run(n: int) -> None:
        if n in (8, 20):
            qemu_monitor(monitor, "system_reset")
        elif n == 14:
            qemu_monitor(monitor, "stop")
            threading.Timer(3.0, qemu_monitor, (monitor, "cont")).start()
    return on_run


# fault -> FaultyRelay options (a callable: made from the QEMU monitor's port)
LINK_FAULTS = {
    "0.1 % of bytes damaged": dict(rate=0.001, seed=3),
    "1 % of bytes damaged": dict(rate=0.01, seed=4),
    "5 % of bytes damaged": dict(rate=0.05, seed=8),
    "1 % of bytes dropped": dict(drop=0.01, seed=5),
    "1 % of bytes doubled": dict(duplicate=0.01, seed=6),
    "garbage at boot": dict(boot_garbage=bytes(random.Random(7).randrange(256) for _ in range(300)) + b"\r\n"),
    "two resets and a hang": lambda monitor: dict(on_run=_resets_and_a_hang(monitor)),
}


@pytest.mark.emulator
@pytest.mark.parametrize("fault", LINK_FAULTS)
def test_the_bench_command_survives(fault, an386_project, tiny_run, tmp_path, capsys):
    """What a user runs (tinyeff bench --port), with the settings a user gets, on a link or a board with
    FAULT: every sample exact (host TFLM's bytes, as a clean run gives), the per-layer ticks (asked for
    a few layers at a time) read, and the report counting what happened."""
    board, project = get_board("qemu-mps2-an386"), an386_project
    n = 10 if fault == "5 % of bytes damaged" else 25  # at 5 % a sample takes two seconds: ten make the point
    monitor = _free_port()
    options = LINK_FAULTS[fault]
    relay = FaultyRelay(**(options(monitor) if callable(options) else options))
    try:
        with _qemu_by_hand(board, project.elf, monitor) as target:
            rc = main(["bench", str(project.path), "--port", relay(target), "--data", str(tiny_run), "--limit", str(n),
                       "--json", str(tmp_path / "bench.json"), "--quiet"])
    finally:
        relay.close()
    out = capsys.readouterr().out
    assert rc == 0, out
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["complete"] and report["samples"] == n and report["errors"] == 0 and report["exact_agreement"] == 1.0
    assert [r["index"] for r in report["results"]] == list(range(n))  # none lost, none twice
    assert report["missing"] == [] and len(report["layers"]) == len(project.manifest["layers"])
    if "bytes" in fault:
        # the damage was met, not missed: exchanges sent again, or coded (each byte three times, voted)
        assert relay.corrupted > 0 and (report["retries"] > 0 or report["coded_exchanges"] > 0)
    if fault == "5 % of bytes damaged":
        assert report["coded_exchanges"] > 0  # the host coded the link (each byte three times, voted)
    if fault == "two resets and a hang":
        assert report["resets"] == 2 and report["retries"] > 0
        assert sum(r["resets"] for r in report["results"]) == 2
    assert f"{report['resets']} device resets, {report['retries']} exchanges retried, 0 samples lost" in out


@pytest.mark.emulator
def test_a_sample_the_board_resets_on_each_time_is_given_up_after_four_and_the_bench_goes_on(an386_project, tiny_run,
                                                                                             tmp_path, capsys):
    """The board is reset right after each of the te-run requests 3 to 6: the sample they carry is sent
    again after each reset, and after the fourth it is reported as an error; the samples after it are
    exact."""
    from tinyeff.harness.bench import RESETS_PER_SAMPLE

    board, project = get_board("qemu-mps2-an386"), an386_project
    monitor = _free_port()
    resets = range(3, 3 + RESETS_PER_SAMPLE + 1)
    relay = FaultyRelay(on_run=lambda n: qemu_monitor(monitor, "system_reset") if n in resets else None)
    try:
        with _qemu_by_hand(board, project.elf, monitor) as target:
            port = relay(target)
            main(["bench", str(project.path), "--port", port, "--data", str(tiny_run), "--limit", "6",
                  "--json", str(tmp_path / "bench.json"), "--quiet"])
    finally:
        relay.close()
    report = json.loads((tmp_path / "bench.json").read_text())
    failed = [r for r in report["results"] if r["error"]]
    assert [(r["error"], r["resets"]) for r in failed] == [(f"the device reset {len(resets)} times on this sample", len(resets))]
    assert report["resets"] == len(resets) and report["errors"] == 1 and report["samples"] == 6
    given_up = failed[0]  # still the sample's: its label, host TFLM's output, the device it failed on
    assert given_up["output"] is None and given_up["device"] == port and given_up["label"] >= 0
    assert len(given_up["reference"]) == len(report["results"][0]["reference"]) > 0
    assert all(r["exact"] for r in report["results"] if not r["error"])


@pytest.mark.emulator
def test_the_bench_command_on_two_emulators_gives_what_one_gives(an386_project, tiny_run, tmp_path, capsys):
    """--jobs 2 starts two QEMU boards that share the samples: the merged report holds every sample once,
    with the one-board run's outputs and instruction counts (-icount: one SysTick tick apart at most, as
    the waits before a sample leave the timer), and says which board ran which. The emulators read their
    inputs from a host file; with --inputs-over-link every byte goes over the UART, to the same result."""
    project = an386_project
    common = ["bench", str(project.path), "--data", str(tiny_run), "--limit", "40", "--quiet"]
    assert main(common + ["--json", str(tmp_path / "one.json")]) == 0
    assert main(common + ["--jobs", "2", "--json", str(tmp_path / "two.json"), "--plot", str(tmp_path / "two.png")]) == 0
    out = capsys.readouterr().out
    assert main(common + ["--inputs-over-link", "--json", str(tmp_path / "link.json")]) == 0
    one, two, link = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two", "link"))
    assert one["inputs_from_host_file"] and two["inputs_from_host_file"] and not link["inputs_from_host_file"]
    assert "inputs read from a host file by the emulator (semihosting)" in out
    assert [(r["index"], r["output"]) for r in two["results"]] == [(r["index"], r["output"]) for r in one["results"]]
    assert [(r["index"], r["output"]) for r in link["results"]] == [(r["index"], r["output"]) for r in one["results"]]
    assert two["exact_agreement"] == 1.0 and two["accuracy"] == one["accuracy"]
    tick = 1e9 / get_board("qemu-mps2-an386").clock_hz
    assert all(abs(a["latency"] - b["latency"]) <= tick for a, b in zip(one["results"], two["results"]))
    assert all(abs(a["latency"] - b["latency"]) <= tick for a, b in zip(one["results"], link["results"]))
    assert len(two["devices"]) == 2 and all(d["samples"] > 0 for d in two["devices"])
    assert sum(d["samples"] for d in two["devices"]) == 40 and {r["device"] for r in two["results"]} == {d["url"] for d in two["devices"]}
    assert "devices                  2, sharing the samples:" in out
    assert (tmp_path / "two.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _ResetDuringInference:
    """The link to a real QEMU board that presses the board's reset right after the harness's Nth
    te-run request (counting retries) has gone out, for each N in AT: the board is then mid-sample,
    at the same protocol step in every run, which a timer could not promise."""

    def __init__(self, device, at: set[int]):
        self._device, self._at = device, at
        self.runs_sent = 0
        self.resets_sent: list[int] = []

    def send(self, data: bytes) -> None:
        self._device.send(data)
        if data.startswith(b"te-run "):
            self.runs_sent += 1
            if self.runs_sent in self._at:
                self._device.reset()
                self.resets_sent.append(self.runs_sent)

    def __getattr__(self, name):
        return getattr(self._device, name)


@pytest.mark.emulator
@pytest.mark.parametrize("board_id", ["qemu-mps2-an386", "qemu-mps3-an547"])
def test_reset_in_the_middle_of_a_bench_loses_and_duplicates_nothing(tiny_run, built_project, board_id):
    project = built_project(board_id)
    x, y = _inputs(project, tiny_run, 200)
    with QemuDevice(project.elf, get_board(board_id)) as device:
        link = _ResetDuringInference(device, at={50, 120})
        dut = Dut(link, timeout=10)
        dut.wait_ready()
        result = run_bench(project, [dut], x, y)
    assert link.resets_sent == [50, 120]
    # the reply to each interrupted te-run is the banner: both resets are seen and the two samples sent again
    assert result.resets == 2
    _check_complete_and_exact(result, 200)


@pytest.mark.emulator
@pytest.mark.parametrize("board_id", ["qemu-mps2-an386", "qemu-mps3-an547"])
def test_one_percent_of_bytes_corrupted_still_gives_the_exact_result(tiny_run, built_project, board_id):
    project = built_project(board_id)
    x, y = _inputs(project, tiny_run, 30)
    relay = FaultyRelay(rate=0.01, seed=7)
    try:
        result = _bench(project, board_id, x, y, relay=relay, timeout=0.5, retries=20, quiet=0.05)
    finally:
        relay.close()
    assert relay.corrupted > 0.005 * relay.relayed
    assert result.retries > 0 or result.coded_exchanges > 0
    print(f"{relay.corrupted} of {relay.relayed} bytes damaged, {result.retries} exchanges retried, "
          f"{result.coded_exchanges} coded")
    _check_complete_and_exact(result, 30)


class _NoLayerReplies:
    """The link to a real QEMU board, except that every te-layers request is lost on the way: the
    samples go through, the per-layer extra after them cannot."""

    def __init__(self, device):
        self._device = device

    def send(self, data: bytes) -> None:
        if not data.startswith(b"te-layers") or not self.samples_done:
            self._device.send(data)

    def __getattr__(self, name):
        return getattr(self._device, name)


@pytest.mark.emulator
def test_an_extra_that_cannot_be_read_is_named_and_loses_no_sample(tiny_run, built_project, capsys):
    from tinyeff.cli.bench import bench_summary

    board_id = "qemu-mps2-an386"
    project = built_project(board_id)
    x, y = _inputs(project, tiny_run, 12)
    with QemuDevice(project.elf, get_board(board_id)) as device:
        link = _NoLayerReplies(device)
        link.samples_done = False
        dut = Dut(link, timeout=2, retries=1, retry_for=0)
        dut.wait_ready()
        result = run_bench(project, [dut], x, y, lambda i, n: setattr(link, "samples_done", i == n))
    _check_complete_and_exact(result, 12)
    assert result.layers == [] and len(result.missing) == 1 and result.missing[0].startswith("per-layer ticks: ")
    assert result.arena_bytes == project.manifest["arena_bytes"]  # the extra after it is still read
    assert any(l.startswith("  missing                  per-layer ticks") for l in bench_summary(result))


@pytest.mark.emulator
def test_bench_refuses_firmware_built_from_another_model(tiny_run, built_project):
    project = built_project("qemu-mps2-an386")
    other = dataclasses.replace(project, manifest={**project.manifest, "model_sha256": "0" * 64})
    x, y = _inputs(project, tiny_run, 3)
    with QemuDevice(project.elf, get_board("qemu-mps2-an386")) as device:
        dut = Dut(device, timeout=10)
        dut.wait_ready()
        with pytest.raises(TinyeffError, match="flash this project first"):
            run_bench(other, [dut], x, y)


@pytest.mark.emulator
def test_hardfault_is_reported_with_its_pc(tiny_run, built_project):
    project = built_project("qemu-mps2-an386", extra_cflags="-DTE_FAULT_COMMAND")
    with QemuDevice(project.elf, get_board("qemu-mps2-an386")) as device:
        dut = Dut(device, timeout=10)
        dut.wait_ready()
        with pytest.raises(DeviceFault, match=r"pc=0x[0-9a-f]{8}") as err:
            dut.command("te-fault")
    pc = str(err.value).split("pc=")[1][:10]
    where = subprocess.run(["arm-none-eabi-addr2line", "-f", "-i", "-e", str(project.elf), pc], capture_output=True, text=True).stdout
    assert "run_command" in where  # the PC is the udf in the command dispatcher, wherever it was inlined
