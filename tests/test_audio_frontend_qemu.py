"""Issue 12's audio front end around a KWS DS-CNN the kit trains on synthesized keywords through the
integer front end and generates with it for the emulated Cortex-M4F: the same C front end, compiled
for the host, makes the very int8 inputs the model was scored on from every clip of the test split;
the device refuses malformed PCM by name; a run on the float front end cannot take it to a device.
The bench from raw PCM in QEMU is `tinyeff demo --kws` (tests/test_demo.py)."""

from __future__ import annotations

import ctypes
import shutil

import numpy as np
import pytest

from test_audio_c import I16, _c_config, _work, lib  # noqa: F401 (lib: the host build of te_audio.c, a fixture)
from tinyeff.cli import main
from tinyeff.compress.quantize import quantize_input
from tinyeff.data.audio import FrontEnd
from tinyeff.harness.bench import Project
from tinyeff.model_io import io_tensors
from tinyeff.footprint import read_model
from tinyeff.train import Run

KEYWORDS = "yes,no,up,down"  # + _unknown_ and _silence_


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    """(run, firmware project) of a small keyword spotter on synthetic speech, as a user makes them."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed; make setup installs it")
    root = tmp_path_factory.mktemp("kws")
    data, run, fw = root / "data", root / "run", root / "fw"
    assert main(["data", "tts", "--keywords", KEYWORDS, "--clips", "24", "--unknown", "8", "--out", str(data), "--quiet"]) == 0
    assert main(["train", "dscnn", "--data", str(data), "--audio-frontend", "fixed", "--width", "16", "--depth", "2",
                 "--epochs", "40", "--out", str(run), "--quiet"]) == 0
    assert main(["generate", str(run / "model.int8.tflite"), "--board", "qemu-mps2-an386", "--frontend", str(run),
                 "--out", str(fw)]) == 0
    assert main(["build", str(fw), "--quiet"]) == 0
    return run, fw


@pytest.mark.slow
def test_the_c_front_end_makes_the_model_inputs_of_every_test_clip(kws, lib):
    """The firmware's te_audio.c, compiled for the host, on every raw test clip the run kept: the int8
    input it writes is the one the host quantized from the Python front end's features, to the byte."""
    run_dir, _ = kws
    run = Run.load(run_dir)
    fe = FrontEnd(**{k: v for k, v in run.data.frontend.items() if k != "type"})
    assert fe.arithmetic == "fixed" and run.data.raw_test.dtype == np.int16
    t = io_tensors(read_model((run_dir / "model.int8.tflite").read_bytes()))[0][0]
    cfg = _c_config(fe)
    work = _work(lib, cfg)
    want = quantize_input(run.data.x_test, np.float32(t.scale), t.zero_point)
    for i, pcm in enumerate(run.data.raw_test):
        got = np.zeros(want.shape[1:], np.int8)
        lib.te_audio_int8(ctypes.byref(cfg), np.ascontiguousarray(pcm).ctypes.data_as(I16), ctypes.c_size_t(len(pcm)),
                          ctypes.c_float(t.scale), ctypes.c_int32(t.zero_point), work.ctypes.data_as(ctypes.c_void_p),
                          got.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
        assert np.array_equal(got, want[i]), f"test clip {i}"


@pytest.mark.slow
@pytest.mark.emulator
def test_the_device_refuses_odd_empty_and_long_pcm_by_name(kws):
    from tinyeff.boards import get_board
    from tinyeff.harness.device import QemuDevice
    from tinyeff.harness.dut import DeviceRefused, Dut

    project = Project.load(kws[1])
    max_bytes = project.manifest["frontend"]["max_raw_bytes"]
    assert max_bytes == 2 * project.manifest["frontend"]["clip_samples"]
    with QemuDevice(project.elf, get_board("qemu-mps2-an386")) as device:
        dut = Dut(device, timeout=10)
        dut.wait_ready()
        for pcm, says in ((b"", "the sample is empty"), (b"\x01\x02\x03", "3 bytes are not whole 16-bit samples"),
                          (bytes(max_bytes + 2), f"past the end of the {max_bytes}-byte raw input buffer")):
            with pytest.raises(DeviceRefused, match=says):
                dut.run_raw(pcm)
        # a short clip is zero-padded, as the host pads it
        assert dut.run_raw(np.zeros(1600, "<i2").tobytes()).frontend_ticks > 0


@pytest.mark.slow
def test_a_run_on_the_float_front_end_cannot_take_its_front_end_to_the_device(kws, tmp_path, capsys):
    run_dir, _ = kws
    data = tmp_path / "data"
    shutil.copytree(run_dir.parent / "data", data)
    float_run = tmp_path / "float"
    assert main(["train", "dscnn", "--data", str(data), "--width", "8", "--depth", "1", "--epochs", "2",
                 "--out", str(float_run), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "fw"
    assert main(["generate", str(float_run / "model.int8.tflite"), "--board", "qemu-mps2-an386", "--frontend", str(float_run),
                 "--out", str(out)]) != 0
    assert "train it again with --audio-frontend fixed" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.emulator
def test_a_keyword_stream_on_the_device_reports_what_the_host_simulation_reports(kws, tmp_path, capsys):
    """Issue 12's streaming: a recording of the run's test clips at known times in noise, played hop by
    hop through the firmware's keyword stream (te-stream-push, in QEMU) and through the host simulation
    (tinyeff/stream.py on host TFLM): every inference's outputs bit-exact, the same keywords reported at
    the same hops, scored against the recording's truth."""
    import json

    from tinyeff.data.recording import read_recording
    from tinyeff.stream import StreamSettings

    run_dir, fw = kws
    rec, report = tmp_path / "rec.wav", tmp_path / "stream.json"
    assert main(["data", "recording", "--run", str(run_dir), "--out", str(rec), "--seconds", "10", "--seed", "5"]) == 0
    assert main(["bench", str(fw), "--stream", str(rec), "--json", str(report), "--quiet"]) == 0
    out = capsys.readouterr().out
    r = json.loads(report.read_text())
    st = StreamSettings.from_json(Project.load(fw).manifest["frontend"]["stream"])
    assert r["hops"] == 10 * 16000 // 320 and r["inferences"] == r["hops"] // st.every == r["exact_inferences"]
    assert r["reports_equal"] and r["exact"] and r["device_score"] == r["host_score"]
    truth = read_recording(rec)
    assert r["device_score"]["keywords"] == sum(e.keyword for e in truth.events) > 0
    assert r["model_latency"] > 0 and r["frontend_latency"] > 0
    assert f"{r['inferences']:,} of {r['inferences']:,} inferences bit-exact, reports identical" in out
    assert "emulated instructions per second of audio" in out and "synthetic (spoken by espeak-ng" in out


@pytest.mark.slow
@pytest.mark.emulator
def test_the_device_refuses_a_stream_push_of_part_of_a_hop_or_before_a_start(kws):
    from tinyeff.boards import get_board
    from tinyeff.harness.device import QemuDevice
    from tinyeff.harness.dut import DeviceRefused, Dut

    project = Project.load(kws[1])
    fe = project.manifest["frontend"]
    hop_bytes, classes = 2 * fe["hop_samples"], len(fe["stream"]["labels"])
    with QemuDevice(project.elf, get_board("qemu-mps2-an386")) as device:
        dut = Dut(device, timeout=10)
        dut.wait_ready()
        with pytest.raises(DeviceRefused, match="no stream; send te-stream-start first"):
            dut.stream_push(bytes(hop_bytes), classes)
        assert dut.stream_start() == fe["hop_samples"]
        with pytest.raises(DeviceRefused, match=f"{hop_bytes + 2} bytes are not whole hops of {hop_bytes} bytes"):
            dut.stream_push(bytes(hop_bytes + 2), classes)
        with pytest.raises(DeviceRefused, match=f"past the end of the {fe['max_raw_bytes']}-byte raw input buffer"):
            dut.stream_push(bytes(fe["max_raw_bytes"] + hop_bytes), classes)
        # the stream was not moved by what it refused
        push = dut.stream_push(bytes(hop_bytes * 5), classes)
        assert push.hops == 5 and push.outputs.shape == (5 // fe["stream"]["every"], classes)


@pytest.fixture(scope="module")
def micro_kws(kws, tmp_path_factory):
    """(run, firmware project) of the same keywords through TFLM's micro frontend (pymicro-features)."""
    root = tmp_path_factory.mktemp("micro")
    run, fw = root / "run", root / "fw"
    assert main(["train", "dscnn", "--data", str(kws[0].parent / "data"), "--audio-frontend", "micro", "--width", "16",
                 "--depth", "2", "--epochs", "40", "--out", str(run), "--quiet"]) == 0
    assert main(["generate", str(run / "model.int8.tflite"), "--board", "qemu-mps2-an386", "--frontend", str(run),
                 "--out", str(fw)]) == 0
    assert main(["build", str(fw), "--quiet"]) == 0
    return run, fw


@pytest.mark.slow
def test_the_c_micro_frontend_makes_the_model_inputs_of_every_test_clip(micro_kws, tmp_path):
    """te_micro.c, compiled for the host, on every raw test clip of the micro run: the int8 input it writes
    is the one the host quantized from pymicro-features' features (what the model was scored on)."""
    import subprocess

    from tinyeff.data.audio_micro import STATE_BYTES
    from tinyeff.resources import resource_dir

    src = resource_dir("firmware") / "frontend"
    so = tmp_path / "libte_micro.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-shared", "-fPIC", f"-I{src}", str(src / "te_micro.c"), "-o", str(so)],
                   check=True, capture_output=True)
    c = ctypes.CDLL(str(so))
    run = Run.load(micro_kws[0])
    t = io_tensors(read_model((micro_kws[0] / "model.int8.tflite").read_bytes()))[0][0]
    want = quantize_input(run.data.x_test, np.float32(t.scale), t.zero_point)
    state = np.zeros(STATE_BYTES, np.uint8)
    c.te_micro_init(state.ctypes.data_as(ctypes.c_void_p))
    for i, pcm in enumerate(run.data.raw_test):
        got = np.zeros(want.shape[1:], np.int8)
        c.te_micro_int8(state.ctypes.data_as(ctypes.c_void_p), np.ascontiguousarray(pcm).ctypes.data_as(I16),
                        ctypes.c_size_t(len(pcm)), ctypes.c_int32(run.data.raw_test.shape[1]), ctypes.c_float(t.scale),
                        ctypes.c_int32(t.zero_point), got.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
        assert np.array_equal(got, want[i]), f"test clip {i}"


@pytest.mark.slow
@pytest.mark.emulator
def test_the_micro_frontend_on_the_device_answers_as_host_tflm_on_pymicro_features(micro_kws):
    """Issue 12's second audio front end: a model trained on pymicro-features' features, benched from raw PCM
    in QEMU through te_micro.c: every output bit-exact with host TFLM on the host's own features (8 clips
    here; the C on every test clip is the host test above)."""
    import json

    run, fw = micro_kws
    fe = Project.load(fw).manifest["frontend"]
    assert fe["arithmetic"] == "micro" and fe["stream"]["every"] == 10  # 100 ms of 10 ms hops
    report = fw.parent / "bench.json"
    assert main(["bench", str(fw), "--data", str(run), "--limit", "8", "--json", str(report), "--quiet"]) == 0
    bench = json.loads(report.read_text())
    assert bench["raw_input"] == "16-bit PCM" and bench["samples"] == 8
    assert bench["exact_agreement"] == 1.0 and bench["accuracy"] == bench["host_accuracy"] and bench["errors"] == 0
    assert bench["frontend_latency_median"] > 0
    # and as a stream, the micro frontend's state carried from hop to hop on both sides
    rec, stream = fw.parent / "rec.wav", fw.parent / "stream.json"
    assert main(["data", "recording", "--run", str(run), "--out", str(rec), "--seconds", "4"]) == 0
    assert main(["bench", str(fw), "--stream", str(rec), "--json", str(stream), "--quiet"]) == 0
    r = json.loads(stream.read_text())
    assert r["exact"] and r["inferences"] == 4 * 100 // 10 == r["exact_inferences"]
