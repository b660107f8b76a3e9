"""The real firmware - protocol and compiled model - as a host process, driven by the real harness.

tests/host_firmware.py builds a generated project's C for this computer with the POSIX port
(firmware/ports/posix), whose UART is a TCP socket: SerialDevice, Dut and run_bench talk to it
over socket://127.0.0.1:PORT as they talk to a QEMU board, in microseconds per exchange. The
firmware is built once per module; every test starts its own process, so each finds a freshly
booted device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

import tinyeff
from host_firmware import EXECUTABLE, build_host_firmware, host_firmware, run_host_firmware
from link_faults import FaultyRelay
from tinyeff.boards import get_board
from tinyeff.errors import TinyeffError
from tinyeff.generate import generate
from tinyeff.harness.bench import Project, bench_inputs, run_bench
from tinyeff.harness.device import HOST_INPUT_FILE, SerialDevice
from tinyeff.harness.report import resumable
from tinyeff.harness.dut import (FEC_SHIFTED_SHARE, READY_PROBE_S, DeviceError, DeviceMemory, DeviceRefused, Dut, Signature,
                                 fec_decode, fec_encode)
from tinyeff.reference import tflm_outputs

BOARD = "qemu-mps2-an386"  # a Cortex-M4F board: its DSP-path kernels, in their portable C form on the host


@pytest.fixture(scope="module")
def host_project(tiny_run, tmp_path_factory, machine_cached) -> tuple[Project, Path]:
    """The tiny run's compiled-runtime project for BOARD, and its firmware built for the host (in the
    project's host-build/: a mutation run builds it once and copies it whole)."""
    def make() -> Path:
        out = generate(tiny_run / "model.int8.tflite", BOARD, "compiled", tmp_path_factory.mktemp("host_firmware") / "project")
        build_host_firmware(out, out / "host-build")
        return out

    path = machine_cached(f"host-project-{BOARD}", make)
    return Project.load(path), path / "host-build" / EXECUTABLE


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


def _check_totals(result, started: float, retried: int) -> None:
    """The bench's totals are its samples' results summed up: what a report's summary line prints.
    STARTED: time.monotonic() before run_bench; RETRIED: the exchanges its Duts retried in it (the
    bench counts those of the samples and of the extras read after them, not the signature check's)."""
    rs = result.results
    finished = [r for r in rs if r.output is not None]
    lat = [r.latency for r in finished]
    assert (result.samples, result.errors) == (len(rs), len(rs) - len(finished))
    assert result.exact_agreement == sum(r.exact for r in finished) / len(rs)
    # an output of the wrong size is kept empty, and agrees with nothing
    assert result.top1_agreement == sum(bool(r.output) and np.argmax(r.output) == np.argmax(r.reference) for r in finished) / max(len(finished), 1)
    assert result.accuracy == sum(bool(r.output) and np.argmax(r.output) == r.label for r in finished) / len(rs)
    assert result.host_accuracy == sum(np.argmax(r.reference) == r.label for r in rs) / len(rs)
    assert (result.latency_median, result.latency_min, result.latency_max) == ((np.median(lat), min(lat), max(lat)) if lat else (0.0,) * 3)
    # the board is an emulated one: its unit is instructions, and only a cycle counter's ticks convert to µs
    assert result.latency_unit == "emulated instructions" and result.latency_us_median is None
    fe = [r.frontend_latency for r in finished if r.frontend_latency is not None]
    assert result.frontend_latency_median == (np.median(fe) if fe else None)
    assert result.resets == sum(r.resets for r in rs) and sum(r.retries for r in rs) <= result.retries <= retried
    assert 0 < result.wall_seconds < time.monotonic() - started
    assert result.device == ", ".join(d.url for d in result.devices)
    assert result.inputs_from_host_file is False  # a socket, not an emulator the harness started


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


def test_inputs_read_from_the_host_file_give_host_tflm_s_outputs_and_its_crc_is_checked(host_project, samples, tmp_path):
    """te-fput, as an emulator the harness started takes its inputs: the harness writes each input into
    the device's host input file and sends one short request. The device reads the file itself (a file
    that does not hold what the request's CRC says is refused); a device that finds no file is given its
    inputs over the link from then on (as firmware for a port without one: the Arduino core's)."""
    project, exe = host_project
    x, _ = samples
    want = _reference(project, x[:8])
    board = get_board(BOARD)
    with run_host_firmware(exe, cwd=tmp_path) as url, SerialDevice(url, board.serial_baud, board) as device:
        device.host_file = tmp_path / HOST_INPUT_FILE  # what QemuDevice sets for the QEMU it starts
        device.host_file.touch()
        dut = Dut(device, timeout=10)
        dut.wait_ready()
        before = dut._exchanges
        assert [dut.run(s.tobytes()).output.tobytes() for s in x[:8]] == want
        assert device.host_file.read_bytes() == x[7].tobytes() and dut.host_file is not None and dut.retried == 0
        assert dut._exchanges - before == 2 * 8  # a te-fput and a te-run each: no input byte went over the link
        size = x[0].nbytes
        with pytest.raises(DeviceRefused, match=rf"^the device refused the upload: te-fput past the end of the {size}-byte input$"):
            dut.put_input(bytes(size + 64))
        assert dut.host_file is not None  # a refusal is the device's answer, not a sign it has no host file
        sent = x[0].tobytes()
        device.host_file.write_bytes(bytes(len(sent)))
        with pytest.raises(DeviceError, match="te-put CRC mismatch"):
            dut.command(f"te-fput 0 {len(sent)} {zlib.crc32(sent):08x}")
        device.host_file.unlink()  # and the harness writes elsewhere: the device finds no file in its directory
        (tmp_path / "elsewhere").mkdir()
        dut.host_file = tmp_path / "elsewhere" / HOST_INPUT_FILE
        retried = dut.retried
        assert dut.run(sent).output.tobytes() == want[0] and dut.host_file is None
        assert dut.retried == retried  # the same request then takes the bytes over the link: not a stale input run again


def test_firmware_without_te_fput_gets_its_inputs_over_the_link(host_project, samples, tmp_path):
    """A project generated before te-fput existed (its protocol answers 'Unknown command'): the harness
    goes back to sending every input byte over the link, and the bench goes on exact."""
    project, _ = host_project
    x, _ = samples
    old = tmp_path / "old-project"
    shutil.copytree(project.path, old)
    source = old / "src" / "tinyeff" / "protocol" / "te_protocol.c"
    code = source.read_text()
    assert code.count('strcmp(tok, "te-fput")') == 1
    source.write_text(code.replace('strcmp(tok, "te-fput")', 'strcmp(tok, "te-fput-not-in-this-firmware")'))
    exe = build_host_firmware(old, tmp_path / "build")
    board = get_board(BOARD)
    with run_host_firmware(exe, cwd=tmp_path) as url, SerialDevice(url, board.serial_baud, board) as device:
        device.host_file = tmp_path / HOST_INPUT_FILE
        device.host_file.touch()
        dut = Dut(device, timeout=10)
        dut.wait_ready()
        assert [dut.run(s.tobytes()).output.tobytes() for s in x[:3]] == _reference(project, x[:3])
        assert dut.host_file is None and dut.retried == 0


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
        started = time.monotonic()
        result = run_bench(project, [dut], [x], y)
    _check_complete_and_exact(result, 30)
    _check_totals(result, started, 0)
    assert result.resets == 0 and result.retries == 0
    assert result.timer == "posix_monotonic"
    assert [r.latency for r in result.results] == [float(r.ticks) for r in result.results]  # 1 GHz ticks: ns
    assert [(l.index, l.op) for l in result.layers] == [(l["index"], l["op"]) for l in project.manifest["layers"]]
    assert (result.arena_bytes, result.arena_used_bytes, result.stack_bytes) == (project.manifest["arena_bytes"],) * 2 + (0,)
    assert result.missing == []


def _bench_behind_each(host_project, links: list[tuple[FaultyRelay, dict]], x: np.ndarray, y: np.ndarray):
    """X benched on one host firmware process per (relay, Dut options) of LINKS, each behind its relay
    (all closed after): (the result, its totals checked; the Duts)."""
    project, exe = host_project
    board = get_board(BOARD)
    try:
        with contextlib.ExitStack() as stack:
            duts = []
            for relay, options in links:
                target = urlparse(stack.enter_context(run_host_firmware(exe)))
                device = stack.enter_context(SerialDevice(relay((target.hostname, target.port)), board.serial_baud, board))
                duts.append(Dut(device, **options))
            for dut in duts:
                dut.wait_ready()
            started, before = time.monotonic(), sum(d.retried for d in duts)
            result = run_bench(project, duts, [x], y)
            _check_totals(result, started, sum(d.retried for d in duts) - before)
            return result, duts
    finally:
        for relay, _ in links:
            relay.close()


def _bench_behind(relay: FaultyRelay, host_project, samples, **dut_options):
    """Ten samples benched on the host firmware through RELAY (closed after): (the result, the Dut)."""
    result, (dut,) = _bench_behind_each(host_project, [(relay, dut_options)], samples[0][:10], samples[1][:10])
    return result, dut


def test_samples_without_labels_or_with_some_missing_give_no_accuracy_but_still_agreement(host_project, samples):
    """Accuracy, on the device and on the host, needs every sample's label: with none (-1), or one
    missing, both are None rather than a score against -1; exactness is judged all the same."""
    project, exe = host_project
    x = samples[0][:4]
    some = samples[1][:4].copy()
    some[2] = -1
    with _dut(exe) as (dut, _):
        for y in (np.full(4, -1), some):
            result = run_bench(project, [dut], [x], y)
            assert (result.accuracy, result.host_accuracy) == (None, None)
            assert result.exact_agreement == 1.0 and [r.label for r in result.results] == y.tolist()


def test_one_percent_of_bytes_damaged_still_gives_every_sample_exact(host_project, samples):
    """The bench through a relay that damages 1 % of the bytes both ways, with the Dut settings the QEMU
    test uses: every damaged exchange is retried until its CRC passes. Ten samples: at 1 % most
    te-put exchanges (some 150 bytes both ways) fail at least once, and the Dut's backoff between
    tries, not the firmware, sets the pace (about half a second a sample)."""
    project = host_project[0]
    relay = FaultyRelay(rate=0.01, seed=7)
    result, _ = _bench_behind(relay, host_project, samples, timeout=0.5, retries=20, quiet=0.05)
    assert relay.corrupted > 0.005 * relay.relayed
    # the damage was met, not missed: exchanges were sent again, or coded (each byte three times) from the start
    assert result.retries > 0 or result.coded_exchanges > 0
    _check_complete_and_exact(result, 10)
    assert [(l.index, l.op) for l in result.layers] == [(l["index"], l["op"]) for l in project.manifest["layers"]]
    assert result.missing == []


def test_five_percent_of_bytes_damaged_is_coded_and_every_sample_exact(host_project, samples):
    """At 5 % a plain 40-byte reply comes whole one time in eight. With the Dut a user's bench gets, the
    link is coded once two damaged replies differ as flipped bits leave them (each byte three times,
    the bitwise majority kept) and the samples come back exact with a few retries each, not dozens."""
    relay = FaultyRelay(rate=0.05, seed=9)
    result, dut = _bench_behind(relay, host_project, samples)
    assert relay.corrupted > 0.04 * relay.relayed
    assert result.coded_exchanges > 0 and dut.fec
    _check_complete_and_exact(result, 10)
    assert result.missing == []
    assert result.retries < 10 * 10  # plain, each exchange took about 30 tries here


def test_a_coded_link_that_has_become_clean_goes_back_to_plain_bytes(host_project, samples):
    """Coding triples every byte: once FEC_CLEAN_THREES threes have come with (almost) no copy differing,
    the harness stops coding, and the samples stay exact. Counted from the replies' own threes: here the
    link is clean from the start, so it goes back after a few dozen coded inferences, not at the first."""
    from tinyeff.harness.dut import FEC_CLEAN_THREES

    project, exe = host_project
    x, _ = samples
    want = _reference(project, x)
    with _dut(exe) as (dut, _):
        dut.fec = True
        outputs = []
        while dut.fec and len(outputs) < 4 * len(x):
            outputs.append(dut.run(x[len(outputs) % len(x)].tobytes()).output.tobytes())
        assert not dut.fec and 1 < len(outputs) < 4 * len(x)
        assert dut.coded * 40 < FEC_CLEAN_THREES < dut.coded * 400  # tens to hundreds of threes a coded exchange
        assert outputs == [want[i % len(x)] for i in range(len(outputs))]
        coded = dut.coded
        assert dut.run(x[0].tobytes()).output.tobytes() == want[0] and dut.coded == coded  # plain again


def test_a_coded_link_that_still_damages_bytes_stays_coded(host_project, samples):
    """The other side of going back: with 1 % of the bytes damaged, well over FEC_CLEAN_SHARE of the
    threes differ, so however many threes have come the link stays coded (and every sample exact)."""
    from tinyeff.harness.dut import FEC_CLEAN_THREES

    project, exe = host_project
    x, _ = samples
    want = _reference(project, x)
    board = get_board(BOARD)
    relay = FaultyRelay(rate=0.01, seed=12)
    try:
        with run_host_firmware(exe) as url:
            target = urlparse(url)
            with SerialDevice(relay((target.hostname, target.port)), board.serial_baud, board) as device:
                dut = Dut(device)
                dut.wait_ready()
                dut.fec, before = True, dut._exchanges
                outputs = [dut.run(x[i % len(x)].tobytes()).output.tobytes() for i in range(2 * FEC_CLEAN_THREES // 100)]
    finally:
        relay.close()
    assert dut.coded * 40 > FEC_CLEAN_THREES  # judged at least once (40 threes an exchange at least) ...
    assert dut.fec and dut.coded == dut._exchanges - before  # ... and every exchange answered coded
    assert outputs == [want[i % len(x)] for i in range(len(outputs))]


def test_coding_keeps_the_majority_of_each_three_bits():
    request = b"te-put 0 4 8bb98613%\x00\x01\x02\xff"
    coded = fec_encode(request)
    assert coded[:3] == b"\x01\x01\x01" and coded[3:] == bytes(b for b in request for _ in range(3))
    raw = bytearray(coded[3:])
    raw[0] ^= 0x40  # one copy of a byte damaged: outvoted
    raw[4] ^= 0x01  # copies of one byte damaged in different bits: each bit still has two good copies
    raw[5] ^= 0x80
    voted, threes, differed = fec_decode(bytes(raw) + b"x")  # a byte short of a three is left out
    assert voted == request and threes == len(request) and differed == 2
    raw[7] ^= 0x02
    raw[8] ^= 0x02  # two copies of one byte lost the same bit: the vote is wrong (the CRC then says so)
    assert fec_decode(bytes(raw))[0][2] == request[2] ^ 0x02
    # a byte lost on the link shifts every three after it: most of their copies differ
    voted, threes, differed = fec_decode(coded[3:10] + coded[11:])
    assert differed >= FEC_SHIFTED_SHARE * threes


def test_a_coded_request_is_answered_coded_and_the_next_plain_one_plainly(host_project):
    """The device codes its reply when the request came coded, and only that reply; a coded request cut
    short is dropped after 100 ms of silence, and the device then answers a plain one."""
    _, exe = host_project
    with _dut(exe) as (dut, _):
        device = dut.device
        device.send(fec_encode(b"te-sig%"))
        raw = device.read_until(b"y" * 3 + b"\r" * 3 + b"\n" * 3, 5)
        voted, threes, differed = fec_decode(raw)
        assert differed == 0 and voted.endswith(b"m-ready\r\n") and b"m-te-sig-[" in voted
        assert dut.signature().board == BOARD  # plain again
        device.send(fec_encode(b"te-sig%")[:20])  # cut short
        time.sleep(0.3)
        assert device.drain(0.2, limit=2) == b""  # unanswered
        device.send(b"te-mem%")
        assert b"m-te-mem-arena-" in device.read_until(b"m-ready\r\n", 5)


def test_a_stream_asked_of_firmware_without_one_says_how_to_generate_one(host_project):
    """The digits model's firmware has no keyword stream: its 'Unknown command' becomes what to do, at once."""
    _, exe = host_project
    with _dut(exe) as (dut, _):
        t = time.monotonic()
        with pytest.raises(DeviceError, match=r"^the firmware has no keyword stream; generate the project with --frontend RUN "
                                              r"from a keyword classifier's run$"):
            dut.stream_start()
        assert dut.retried == 0 and time.monotonic() - t < 2


def test_a_command_the_device_refuses_is_named_with_the_device_s_words(host_project):
    _, exe = host_project
    with _dut(exe) as (dut, _):
        with pytest.raises(DeviceError, match=r"^the device refused 'db frobnicate': e-\[.+\]$") as e:
            dut.command("db frobnicate")
        first = [l for l in dut.device.last_lines() if l.startswith("e-[")]
        assert first and str(e.value).endswith(first[0])


def test_an_upload_past_the_input_is_refused_in_the_device_s_words_and_the_device_goes_on(host_project, samples):
    """te-put past the end of the input buffer: refused by name every time it is sent, so the harness
    believes it (REFUSALS_BELIEVED in a row) and says the device's words without its command prefix; the
    refused bytes do not wedge the link, and an inference after it is exact."""
    from tinyeff.harness.dut import REFUSALS_BELIEVED, DeviceRefused

    project, exe = host_project
    x, _ = samples
    size = x[0].nbytes  # the model's one input
    with _dut(exe) as (dut, _):
        with pytest.raises(DeviceRefused, match=rf"^the device refused the upload: te-put past the end of the "
                                                 rf"{size}-byte input$"):
            dut.put_input(bytes(size + 64))
        assert dut.retried >= REFUSALS_BELIEVED - 1  # sent again until believed, not taken at the first reply
        assert dut.run(x[0].tobytes()).output.tobytes() == _reference(project, x[:1])[0]


@pytest.fixture(scope="module")
def host_kws(tiny_kws_run, tmp_path_factory, machine_cached) -> tuple[Project, Path]:
    """The tiny keyword run's project with its audio front end and keyword stream, built for the host."""
    def make() -> Path:
        out = generate(tiny_kws_run / "model.int8.tflite", BOARD, "compiled", tmp_path_factory.mktemp("host_kws") / "project",
                       frontend=tiny_kws_run)
        build_host_firmware(out, out / "host-build")
        return out

    path = machine_cached(f"host-kws-project-{BOARD}", make)
    project = Project.load(path)
    assert project.manifest["frontend"]["stream"]
    return project, path / "host-build" / EXECUTABLE


def test_raw_clips_through_the_host_firmware_s_front_end_are_exact(host_kws, tiny_kws_run):
    from tinyeff.harness.bench import bench_raw

    project, exe = host_kws
    (x,), y = bench_inputs(str(tiny_kws_run), project.model)
    raw = bench_raw(str(tiny_kws_run), project)
    with _dut(exe) as (dut, _):
        started, before = time.monotonic(), dut.retried
        result = run_bench(project, [dut], x, y, raw=raw)
        _check_totals(result, started, dut.retried - before)
        with pytest.raises(DeviceError, match="the device refused the sample: 3 bytes are not whole 16-bit samples"):
            dut.run_raw(b"\x01\x02\x03")
    assert result.exact_agreement == 1.0 and result.errors == 0 and result.raw_input == "16-bit PCM"
    assert all(r.frontend_latency > 0 for r in result.results)


def test_a_stream_on_the_host_firmware_is_the_host_simulation_s_and_a_push_asked_again_is_not_heard_twice(
        host_kws, tiny_kws_run, tmp_path):
    """bench_stream on the host build (te-stream-start, te-stream-push in 1 s pushes): every inference and
    report equal to tinyeff/stream.py on host TFLM. Then the same push number sent twice: the second is
    answered from the first (the device's stream does not move), a new number moves it on."""
    from tinyeff.data.recording import make_recording
    from tinyeff.harness.stream_bench import bench_stream
    from tinyeff.train import Run

    project, exe = host_kws
    run = Run.load(tiny_kws_run)
    rec = make_recording(run.data.raw_test, run.data.y_test, list(run.data.labels), 5.0, 16000, seed=2)
    fe = project.manifest["frontend"]
    hop_bytes, every = 2 * fe["hop_samples"], fe["stream"]["every"]
    with _dut(exe) as (dut, _):
        r = bench_stream(project, dut, rec)
        assert r.exact and r.inferences == 5 * 16000 // fe["hop_samples"] // every == r.exact_inferences
        assert r.device_score == r.host_score
        # the sweep re-runs the rules on the device's outputs: at the firmware's own threshold it is the device
        own = next(w for w in r.sweep if w["threshold"] == fe["stream"]["threshold"])
        assert (own["hits"], own["false_accepts"]) == (r.device_score.hits, r.device_score.false_accepts)
        assert dut.stream_start() == fe["hop_samples"]
        data = rec.pcm[: every * fe["hop_samples"]].astype("<i2").tobytes()
        first = dut.stream_push(data, len(fe["stream"]["labels"]))
        dut.put_input(data, "te-raw-put")
        again = dut._exchange(f"te-stream-push {len(data)} {zlib.crc32(data):08x} {dut.runs}%".encode(),
                              lambda lines: next((l for l in lines if l.startswith("m-te-stream-[")), None), "the push again")
        assert first.hops == every and again.startswith(f"m-te-stream-[{every}]-[")
        assert dut.stream_push(data, len(fe["stream"]["labels"])).hops == 2 * every
        with pytest.raises(DeviceError, match=f"the device refused the sample: 2 bytes are not whole hops of {hop_bytes} bytes"):
            dut.stream_push(b"\x00\x00", 1)


# ------------------------------------------------------------ several devices, and a bench that is cut off


def _bench_cli(project: Project, tiny_run: Path, ports: list[str], *more: str) -> int:
    from tinyeff.cli import main

    return main(["bench", str(project.path), "--data", str(tiny_run), "--limit", "30", "--quiet",
                 *[a for p in ports for a in ("--port", p)], *more])


def _check_device_summaries(result) -> None:
    """Each device's line of the report counts and times the results it ran, errors included."""
    for d in result.devices:
        mine = [r for r in result.results if r.device == d.url]
        lat = [r.latency for r in mine if r.latency is not None]
        assert (d.samples, d.errors) == (len(mine), sum(r.error is not None for r in mine))
        assert (d.latency_median, d.latency_min, d.latency_max) == ((float(np.median(lat)), min(lat), max(lat)) if lat else (None,) * 3)
    assert sum(d.samples for d in result.devices) == len(result.results)


def _outcome(report: dict) -> list[tuple]:
    """What must not depend on how many devices ran the bench, or on its being resumed: each sample's
    index, label, output and reference bytes, exactness."""
    return [(r["index"], r["label"], r["output"], r["reference"], r["exact"], r["error"]) for r in report["results"]]


def test_two_boards_share_a_bench_and_give_what_one_gives(host_project, tiny_run, tmp_path):
    """tinyeff bench with two --port: both devices run samples, the merged report is the one-device
    report sample for sample, and it says which device ran which."""
    project, exe = host_project
    with run_host_firmware(exe) as one:
        assert _bench_cli(project, tiny_run, [one], "--json", str(tmp_path / "one.json")) == 0
    with run_host_firmware(exe) as a, run_host_firmware(exe) as b:
        assert _bench_cli(project, tiny_run, [a, b], "--json", str(tmp_path / "two.json"),
                          "--junit", str(tmp_path / "two.xml")) == 0
    single, merged = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert _outcome(merged) == _outcome(single) and merged["samples"] == 30 and merged["complete"]
    assert merged["accuracy"] == single["accuracy"] == merged["host_accuracy"]
    assert [d["url"] for d in merged["devices"]] == [a, b] and merged["device"] == f"{a}, {b}"
    shares = {d["url"]: d["samples"] for d in merged["devices"]}
    assert sum(shares.values()) == 30 and min(shares.values()) > 0, shares
    assert {r["device"] for r in merged["results"]} == {a, b}
    assert all(d["stopped"] is None and d["errors"] == 0 for d in merged["devices"])
    assert len(ET.parse(tmp_path / "two.xml").getroot()) == 30


def test_a_killed_bench_leaves_a_valid_report_and_resume_finishes_it(host_project, tiny_run, tmp_path):
    """The bench runs as a user runs it (the tinyeff command, a process of its own); the link dies with
    the 12th te-run request, and the process is killed while it waits. The JSON and JUnit it leaves
    are whole documents holding the 11 samples finished; --resume keeps them, runs the other 19, and ends
    with the report of an uninterrupted bench."""
    project, exe = host_project
    report, junit = tmp_path / "bench.json", tmp_path / "bench.xml"
    with run_host_firmware(exe) as url:
        relay = FaultyRelay(cut_at_run=12)
        target = urlparse(url)
        try:
            cmd = [str(Path(sys.executable).with_name("tinyeff")), "bench", str(project.path), "--data", str(tiny_run),
                   "--limit", "30", "--quiet", "--port", relay((target.hostname, target.port)),
                   "--json", str(report), "--junit", str(junit)]
            bench = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 60
            while relay.runs < 12 and bench.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            bench.kill()
            assert bench.wait() == -signal.SIGKILL, bench.stdout.read()
            bench.stdout.close()
        finally:
            relay.close()
    partial = json.loads(report.read_text())
    assert partial["complete"] is False and partial["samples"] == 30
    assert [r["index"] for r in partial["results"]] == list(range(11))
    assert all(r["exact"] and r["error"] is None for r in partial["results"])
    assert [c.get("name") for c in ET.parse(junit).getroot()] == [f"sample-{i}" for i in range(11)]
    # killed in the middle of writing an entry: the whole entries before it are kept
    cut = tmp_path / "cut.json"
    cut.write_text(report.read_text()[:-40])
    kept = resumable(cut, partial["model_sha256"], partial["inputs_sha256"])
    assert [dataclasses.asdict(r) for r in kept] == partial["results"][:10]

    with run_host_firmware(exe) as url:
        assert _bench_cli(project, tiny_run, [url], "--json", str(report), "--junit", str(junit), "--resume") == 0
        finished = report.read_text()
        # the finished report is one a resume takes too (its inputs_sha256 is the bench's): every sample kept
        assert _bench_cli(project, tiny_run, [url], "--json", str(report), "--resume") == 0
        assert json.loads(report.read_text())["results"] == json.loads(finished)["results"]
        with run_host_firmware(exe) as again:
            assert _bench_cli(project, tiny_run, [again], "--json", str(tmp_path / "whole.json")) == 0
    resumed, whole = json.loads(report.read_text()), json.loads((tmp_path / "whole.json").read_text())
    assert resumed["complete"] and _outcome(resumed) == _outcome(whole)
    assert resumed["results"][:11] == partial["results"]  # kept, not run again
    assert (resumed["accuracy"], resumed["exact_agreement"]) == (whole["accuracy"], 1.0)
    assert ET.parse(junit).getroot().get("tests") == "30"


def _interrupted_while_a_device_waits(exe: Path, x: np.ndarray, command) -> tuple[int, str, float]:
    """COMMAND(ports) run against two host firmwares behind relays that never pass on sample 5's te-run,
    and sent Ctrl-C once a device waits for that reply: (its exit code, its output, the seconds it took
    to end after the signal). It runs the tinyeff this test imported (a mutation run's copy, not the
    installed one)."""
    relays = [FaultyRelay(lose=_run_request(x[5])) for _ in range(2)]
    env = {**os.environ, "PYTHONPATH": str(Path(tinyeff.__file__).resolve().parents[1])}
    with run_host_firmware(exe) as a, run_host_firmware(exe) as b:
        ports = [relay((u.hostname, u.port)) for relay, u in zip(relays, map(urlparse, (a, b)))]
        # SIGINT back to its default in the child (a test run in the background ignores it, and so would the child)
        proc = subprocess.Popen(command(ports), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 60
            while not any(r.lost for r in relays) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # the other device's samples go on
            proc.send_signal(signal.SIGINT)
            interrupted = time.monotonic()
            out, _ = proc.communicate(timeout=20)
            return proc.returncode, out, time.monotonic() - interrupted
        finally:
            proc.kill()
            for relay in relays:
                relay.close()


def test_ctrl_c_ends_a_bench_at_once_while_a_device_waits_for_a_reply(host_project, tiny_run, samples, tmp_path):
    """Ctrl-C while one of two devices waits (up to its 30 s timeout) for a reply that will not come: the
    command ends with 130 within seconds, not after that wait, and its report keeps the samples
    finished, exact."""
    project, exe = host_project
    report = tmp_path / "bench.json"
    rc, out, ended = _interrupted_while_a_device_waits(exe, samples[0], lambda ports: [
        str(Path(sys.executable).with_name("tinyeff")), "bench", str(project.path), "--data", str(tiny_run), "--limit", "30",
        "--quiet", "--timeout", "30", "--json", str(report), *[a for p in ports for a in ("--port", p)]])
    assert rc == 130, out
    assert ended < 10, f"the bench took {ended:.0f} s to end after Ctrl-C"
    partial = json.loads(report.read_text())
    assert partial["complete"] is False and 0 < len(partial["results"]) < 30
    assert all(r["exact"] for r in partial["results"]) and 5 not in [r["index"] for r in partial["results"]]


_INTERRUPTED_SCRIPT = """
import sys
import numpy as np
from tinyeff.boards import get_board
from tinyeff.harness.bench import Project, run_bench
from tinyeff.harness.device import SerialDevice
from tinyeff.harness.dut import Dut

project, board = Project.load(sys.argv[1]), get_board(sys.argv[2])
samples = np.load(sys.argv[3])
duts = [Dut(SerialDevice(port, board.serial_baud, board), timeout=30) for port in sys.argv[4:]]  # left open
for dut in duts:
    dut.wait_ready()
run_bench(project, duts, [samples["x"]], samples["y"])
"""


def test_ctrl_c_ends_a_script_s_bench_at_once_though_its_devices_stay_open(host_project, samples, tmp_path):
    """A script that calls run_bench on two devices and leaves them open, interrupted while one device
    waits (up to 30 s) for a reply that will not come: the interpreter exits within seconds, as the
    devices' threads do not hold it."""
    project, exe = host_project
    np.savez(tmp_path / "samples.npz", x=samples[0], y=samples[1])
    _, out, ended = _interrupted_while_a_device_waits(exe, samples[0], lambda ports: [
        sys.executable, "-c", _INTERRUPTED_SCRIPT, str(project.path), BOARD, str(tmp_path / "samples.npz"), *ports])
    assert "KeyboardInterrupt" in out, out
    assert ended < 10, f"the script took {ended:.0f} s to exit after Ctrl-C"


def test_resume_refuses_a_report_of_other_inputs(host_project, tiny_run, tmp_path, capsys):
    project, exe = host_project
    with run_host_firmware(exe) as url:
        assert _bench_cli(project, tiny_run, [url], "--json", str(tmp_path / "bench.json")) == 0
    before = (tmp_path / "bench.json").read_bytes()
    from tinyeff.cli import main

    rc = main(["bench", str(project.path), "--data", str(tiny_run), "--limit", "20", "--port", "socket://127.0.0.1:9",
               "--json", str(tmp_path / "bench.json"), "--resume"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "reports a bench of other inputs (another --data or --limit)" in err and "Traceback" not in err
    assert (tmp_path / "bench.json").read_bytes() == before  # refused before anything was written
    assert main(["bench", str(project.path), "--data", str(tiny_run), "--resume"]) != 0
    assert "--resume continues the report a bench wrote with --json" in capsys.readouterr().err


def test_a_device_that_goes_silent_leaves_the_bench_and_the_others_finish_its_samples(host_project, samples):
    """Of two devices, one's link dies with its third te-run: each sample it fails goes to the other
    device, and after three in a row it leaves the bench (named in the report): nothing is lost. The
    other device answers slowly (its replies held 0.1 s), so the silent one fails its three (about 0.7 s
    each) while samples are left."""
    x, y = samples
    result, (_, bad) = _bench_behind_each(host_project, [(FaultyRelay(delay=0.1), dict(timeout=10)),
                                                         (FaultyRelay(cut_at_run=3), dict(timeout=0.3, retries=1, retry_for=0.3))], x, y)
    _check_complete_and_exact(result, 30)
    gone = result.devices[1]
    assert gone.url == bad.device.url and re.fullmatch(r"failed samples \d+, \d+, \d+ in a row, the last with: .+", gone.stopped)
    assert gone.samples == 2  # the two it answered before the cut; its three failed ones went to the other
    assert result.devices[0].samples == 28 and result.devices[0].stopped is None
    assert any(m.startswith(f"device {bad.device.url} left the bench") for m in result.missing)
    _check_device_summaries(result)


def test_a_bench_every_device_leaves_ends_naming_each_and_counting_the_samples_finished(host_project, samples):
    """Two devices whose links die with their third and fifth te-run: each fails three samples in a row
    and leaves, and the bench ends with an error that names both devices with their reasons, counts the
    2 + 4 samples they finished, and says a --json report keeps them."""
    x, y = samples[0][:10], samples[1][:10]
    relays = [FaultyRelay(cut_at_run=3), FaultyRelay(cut_at_run=5)]
    with pytest.raises(TinyeffError) as e:
        _bench_behind_each(host_project, [(relay, dict(timeout=0.3, retries=1, retry_for=0.3)) for relay in relays], x, y)
    gone = r"the device on (socket://127\.0\.0\.1:\d+) failed samples \d+, \d+, \d+ in a row, the last with: .+ failed .+"
    said = re.fullmatch(rf"{gone}; {gone}; 6 of 10 samples finished \(a --json report keeps them: --resume runs the rest\); "
                        "check the device and the link", str(e.value))
    assert said and said.group(1) != said.group(2), str(e.value)


def test_a_sample_failed_on_one_device_and_left_for_another_that_leaves_the_bench_is_reported_failed(host_project,
                                                                                                    samples):
    """Sample 0 is one no device answers. The slow device fails it first, and it waits in the queue for
    the other device, whose link dies with its first te-run; that device leaves the bench after three
    failures in a row without having taken sample 0, which is then reported with the first device's
    error instead of waiting for a device that is gone. The device that left finished no sample: its
    summary has no latency."""
    x, y = samples
    result, _ = _bench_behind_each(host_project, [
        (FaultyRelay(delay=0.1, lose=_run_request(x[0])), dict(timeout=0.5, retries=1, retry_for=0.5)),
        (FaultyRelay(cut_at_run=1, lose=_run_request(x[0])), dict(timeout=0.3, retries=1, retry_for=0.3))], x, y)
    assert [r.index for r in result.results] == list(range(30)) and result.errors == 1
    assert result.results[0].error and all(r.exact for r in result.results[1:])
    assert result.devices[0].stopped is None and "in a row" in result.devices[1].stopped
    assert result.devices[1].samples == 0 and result.devices[1].latency_min is None
    _check_device_summaries(result)


def test_raw_samples_for_a_project_without_a_front_end_are_refused_before_the_device_is_asked(host_project, samples):
    project, exe = host_project
    x, y = samples
    with _dut(exe) as (dut, _):
        with pytest.raises(TinyeffError, match=re.escape(f"{project.path} has no front end; generate it with --frontend RUN "
                                                         "to bench from raw samples")):
            run_bench(project, [dut], [x[:2]], y[:2], raw=[b"\0\0"] * 2)
        assert dut.retried == 0 and dut.run(x[0].tobytes()).output.tobytes() == _reference(project, x[:1])[0]


@pytest.mark.parametrize("devices", [1, 2])
def test_an_error_while_a_sample_is_recorded_ends_the_bench_with_it(host_project, samples, devices):
    """What the caller does with each sample as it comes (the CLI writes its --json report) can fail, a
    full disk say: the bench ends with that error, from whichever device's thread recorded the sample,
    and does not go on with samples it can no longer report."""
    project, exe = host_project
    x, y = samples
    recorded = []

    def on_sample(r):
        recorded.append(r.index)
        if len(recorded) == 3:
            raise OSError(28, "No space left on device")

    with contextlib.ExitStack() as stack:
        duts = [stack.enter_context(_dut(exe))[0] for _ in range(devices)]
        with pytest.raises(OSError, match="No space left on device"):
            run_bench(project, duts, [x], y, on_sample=on_sample)
    assert len(recorded) <= 3 + devices - 1  # a device in the middle of a sample may finish it


def _run_request(x: np.ndarray) -> bytes:
    """The te-run request of input X, as the Dut words it (the CRC of the bytes it uploaded)."""
    return b"te-run %08x" % zlib.crc32(x.tobytes())


def test_samples_no_device_answers_are_errors_the_first_too_and_the_bench_goes_on(host_project, samples):
    """The device never hears the te-run of samples 0 and 5: each ends in an error naming the timeout,
    counting its own retries, and the other eight are benched exact on the same device."""
    x = samples[0]
    relay = FaultyRelay(lose=re.escape(_run_request(x[0])) + b"|" + re.escape(_run_request(x[5])))
    result, _ = _bench_behind(relay, host_project, samples, timeout=0.3, retries=1, retry_for=0.3)
    assert relay.lost >= 4  # each asked, then asked again
    assert [r.index for r in result.results] == list(range(10)) and result.errors == 2
    first, sixth = result.results[0], result.results[5]
    assert first.output is None and "te-run" in first.error and first.exact is False
    assert first.retries == sixth.retries > 0 and sixth.error == first.error
    assert all(r.exact and r.error is None for r in result.results if r.index not in (0, 5))
    assert result.devices[0].stopped is None and result.devices[0].errors == 2
    _check_device_summaries(result)


@pytest.mark.parametrize("lost", [[0], [0, 1]], ids=["one of two", "both"])
def test_a_bench_of_few_samples_some_unanswered_counts_agreement_over_those_finished(host_project, samples, lost):
    """Two samples, one or both never answered (fewer than the failures in a row that send a device
    away): the bench ends with them as errors; top-1 agreement is over the samples finished (1 of 1),
    and with none finished, nothing agrees and the latencies are 0."""
    x, y = samples[0][:2], samples[1][:2]
    relay = FaultyRelay(lose=b"|".join(re.escape(_run_request(x[i])) for i in lost))
    result, _ = _bench_behind_each(host_project, [(relay, dict(timeout=0.3, retries=1, retry_for=0.3))], x, y)
    assert [r.error is not None for r in result.results] == [i in lost for i in range(2)]
    assert result.top1_agreement == (0.0 if len(lost) == 2 else 1.0) and result.devices[0].stopped is None
    if len(lost) == 2:
        assert (result.latency_median, result.latency_min, result.latency_max) == (0.0, 0.0, 0.0)


def test_a_board_s_ticks_are_cycles_at_its_clock_and_microseconds(host_project, samples):
    """The firmware reached as a real board (not emulated) would be: latencies are its timer's ticks in
    core cycles, and the median is also given in microseconds of the timer's rate."""
    project, exe = host_project
    board = get_board("disco-f746ng")
    x, y = samples[0][:6], samples[1][:6]
    with run_host_firmware(exe) as url, SerialDevice(url, board.serial_baud, board) as device:
        dut = Dut(device, timeout=10)
        dut.wait_ready()
        _, hz, _ = dut.timer()
        result = run_bench(project, [dut], [x], y)
        layer_ticks = dut.layer_ticks()  # of the last inference, as the bench read them
    ticks = [r.ticks for r in result.results]
    assert result.latency_unit == "cycles" and hz > 0 and min(ticks) > 0
    assert [r.latency for r in result.results] == [t * board.clock_hz / hz for t in ticks]
    assert result.latency_us_median == float(np.median(ticks)) * 1e6 / hz
    assert result.latency_median == float(np.median([r.latency for r in result.results]))
    assert [l.latency for l in result.layers] == [t * board.clock_hz / hz for t in layer_ticks]


def test_memory_use_that_cannot_be_read_is_named_and_the_samples_stay(host_project, samples):
    """The device never hears te-mem: the bench ends with every sample exact and the per-layer ticks,
    its memory figures empty and the reason in what is missing."""
    result, _ = _bench_behind(FaultyRelay(lose=rb"te-mem"), host_project, samples, timeout=0.3, retries=1, retry_for=0.3)
    _check_complete_and_exact(result, 10)
    assert (result.arena_bytes, result.arena_used_bytes, result.stack_bytes) == (None, None, None)
    assert len(result.missing) == 1 and result.missing[0].startswith("memory use: reading memory use (te-mem) failed")
    assert result.layers and all(l.latency > 0 for l in result.layers)


def test_a_sample_every_device_fails_is_tried_once_on_each_and_reported_failed(host_project, samples):
    """The last sample is one no device answers. The device that takes it fails it and the other,
    idle by then, takes it from the queue (never the one that failed it: a sound device failing one
    sample again and again must not leave the bench); after both have failed it once, it is reported
    as an error and the bench ends with every sample accounted for."""
    x, y = samples[0][:8], samples[1][:8]
    relays = [FaultyRelay(lose=_run_request(x[-1])) for _ in range(2)]
    result, _ = _bench_behind_each(host_project, [(relay, dict(timeout=0.3, retries=1, retry_for=0.3)) for relay in relays], x, y)
    assert relays[0].lost == relays[1].lost > 0  # each device was asked for it, as often
    assert [r.index for r in result.results] == list(range(8)) and result.errors == 1
    assert result.results[-1].error and all(r.exact for r in result.results[:-1])
    assert result.exact_agreement == 7 / 8
    assert [d.stopped for d in result.devices] == [None, None] and result.missing == []
    _check_device_summaries(result)


def _one_output_byte_short(reply: bytes) -> bytes:
    """REPLY with the last byte of a te-run output cut off and its CRC made anew: what firmware built for
    another output size would send, well-formed."""
    signed = re.fullmatch(rb"(.*)m-te-crc-\[[0-9a-f]{8}\]\r\n(m-ready\r\n)", reply, re.S)  # not the boot banner
    if not signed:
        return reply
    body, ready = signed.groups()
    cut = re.sub(rb"(m-te-run-\[(?:[0-9a-f]{2})*)[0-9a-f]{2}\]", rb"\1]", body)
    return cut + b"m-te-crc-[%08x]\r\n" % zlib.crc32(cut) + ready


def test_an_output_of_the_wrong_size_is_reported_inexact_without_output_and_the_bench_goes_on(host_project, samples):
    """Firmware that sends one output byte too few, with a reply that passes its CRC: no sample is taken
    for exact nor read as an output of the model (whose bytes it is not), and every sample is still
    reported, with its reference."""
    relay = FaultyRelay(rewrite=_one_output_byte_short)
    result, _ = _bench_behind(relay, host_project, samples, timeout=10)
    assert [r.index for r in result.results] == list(range(10)) and result.errors == 0
    assert all(r.output == [] and not r.exact and r.reference for r in result.results)
    assert result.exact_agreement == 0.0 and result.accuracy == 0.0 and result.top1_agreement == 0.0


class _RunReplies:
    """A REWRITE for FaultyRelay: the Kth reply to a te-run is replaced as FAULTS[K] says - "damaged" (a
    digit of it changed, so its CRC fails and the Dut asks again) or "reset" (the banner of a board that
    has just reset); the others pass as they are."""

    def __init__(self, faults: dict[int, str]):
        self.faults, self.seen = faults, 0

    def __call__(self, reply: bytes) -> bytes:
        if b"m-te-run-[" not in reply:
            return reply
        fault, self.seen = self.faults.get(self.seen), self.seen + 1
        if fault == "damaged":
            digit = re.search(rb"m-te-run-\[([0-9a-f])", reply).span(1)
            return reply[:digit[0]] + (b"1" if reply[digit[0]:digit[1]] == b"0" else b"0") + reply[digit[1]:]
        return b"m-init-done\r\nm-ready\r\n" if fault == "reset" else reply


def test_a_sample_the_device_resets_on_four_times_is_given_up_with_the_retries_it_took(host_project, samples):
    """Sample 0's reply comes damaged once; sample 2's once too, then the device seems to reset (its
    banner) on each of four tries: sample 2 is given up, counting the one retry made for it alone, and
    the bench goes on exact."""
    from tinyeff.harness.bench import RESETS_PER_SAMPLE

    tries = RESETS_PER_SAMPLE + 1
    relay = FaultyRelay(rewrite=_RunReplies({0: "damaged", 3: "damaged"} | {4 + k: "reset" for k in range(tries)}))
    x, y = samples[0][:5], samples[1][:5]
    result, _ = _bench_behind_each(host_project, [(relay, dict(timeout=10))], x, y)
    assert [(r.index, r.resets, r.retries) for r in result.results] == [(0, 0, 1), (1, 0, 0), (2, tries, 1), (3, 0, 0), (4, 0, 0)]
    given_up = result.results[2]
    assert given_up.error == f"the device reset {tries} times on this sample" and given_up.output is None
    (want,) = tflm_outputs(host_project[0].model, x[2:3])
    assert (given_up.label, given_up.reference, given_up.device) == (int(y[2]), want.reshape(-1).tolist(), result.devices[0].url)
    assert result.errors == 1 and result.resets == tries and result.retries == 2
    assert all(r.exact for r in result.results if r.index != 2)


def test_mlperf_results_of_a_float_output_model_print_its_floats(tmp_path):
    """A model with float32 input and output (int8 inside): `db load` takes the float bytes, and
    `results` prints the float outputs themselves, truncated to thousandths as the C computes them."""
    from op_models import FLOAT_IO, make_case

    model = tmp_path / "float_io.tflite"
    model.write_bytes(make_case(FLOAT_IO + "dense_softmax"))
    project = Project.load(generate(model, BOARD, "compiled", tmp_path / "project"))
    exe = build_host_firmware(project.path, tmp_path / "build")
    x = np.random.default_rng(0).normal(0, 2, (1, 16)).astype(np.float32)
    (want,) = tflm_outputs(project.model, x)
    want = np.asarray(want, np.float32).reshape(-1)
    with _dut(exe) as (dut, _):
        dut.load(x[0].tobytes())
        _, lines = dut.infer(1, 0)
    milli = (want * np.float32(1000)).astype(np.int32)
    text = ",".join(f"{'-' if m < 0 else ''}{abs(m) // 1000}.{abs(m) % 1000:03d}" for m in milli)
    assert [l for l in lines if l.startswith("m-results-")] == [f"m-results-[{text}]"]
    assert 0.99 < want.sum() < 1.01 and want.max() > 0.2  # a softmax's floats, not codes: the test would see a mix-up
