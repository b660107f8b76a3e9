"""The keyword stream: firmware/frontend/te_stream.c, compiled for the host, against its definition in
tinyeff/stream.py (the model inputs it makes hop by hop and the keywords it reports), the recording a
stream is benched on, and the scoring of reports against the recording's truth."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import subprocess
import wave

import numpy as np
import pytest

from test_audio_c import _c_config
from tinyeff.data.audio import FrontEnd
from tinyeff.data.recording import make_recording, read_recording, write_recording
from tinyeff.errors import TinyeffError
from tinyeff.resources import resource_dir
from tinyeff.stream import Event, detections, score, stream_inputs, stream_settings

SRC = resource_dir("firmware") / "frontend"
I8 = ctypes.POINTER(ctypes.c_int8)


class CStreamConfig(ctypes.Structure):
    _fields_ = [*((n, ctypes.c_int32) for n in ("n_frames", "n_out", "every", "average", "threshold", "refractory",
                                                 "n_classes")),
                ("keyword", ctypes.POINTER(ctypes.c_uint8)), ("output_zero_point", ctypes.c_int32)]


class CStream(ctypes.Structure):
    _fields_ = [("cfg", ctypes.c_void_p), ("features", ctypes.c_void_p), ("history", ctypes.c_void_p),
                ("hops", ctypes.c_int32), ("quiet", ctypes.c_int32), ("slot", ctypes.c_int32)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """te_stream.c with both audio front ends it takes rows from, built for the host."""
    so = tmp_path_factory.mktemp("stream") / "libte_stream.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", f"-I{SRC}",
                    *(str(SRC / f) for f in ("te_audio.c", "te_micro.c", "te_stream.c")), "-o", str(so)],
                   check=True, capture_output=True)
    c = ctypes.CDLL(str(so))
    c.te_stream_bytes.restype = c.te_audio_work_bytes.restype = ctypes.c_size_t
    c.te_stream_posterior.restype = ctypes.c_int32
    return c


def _speech_like(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Bursts of harmonics at speech levels over quiet noise: rows of features that change from hop to hop."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = rng.normal(0, 30, len(t))
    for start in np.arange(0.2, seconds - 0.5, 0.7):
        f0, n = rng.uniform(100, 300), int(0.35 * rate)
        i = int(start * rate)
        burst = sum(np.sin(2 * np.pi * k * f0 * t[:n]) / k for k in range(1, 6)) * np.hanning(n)
        x[i : i + n] += 6000 * burst
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _outputs_for(inputs: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """Stand-in model outputs: a class that leads while the input is loud, ties and swings included, so
    that averaging, thresholds, ties and the refractory time all decide something."""
    rng = np.random.default_rng(seed)
    loud = inputs.astype(np.int64).reshape(len(inputs), -1).mean(axis=1)
    out = rng.integers(-128, -60, (len(inputs), n_classes))
    lead = (np.arange(len(inputs)) // 4) % n_classes  # one class leads a few inferences in a row
    strong = loud > np.median(loud)
    out[strong, lead[strong]] = rng.integers(40, 128, strong.sum())
    out[::7, :] = out[::7, :1]  # every class tied
    return out.astype(np.int8)


CONFIGS = [
    ("mfcc 49x10, every 5, average 3", FrontEnd(arithmetic="fixed"), 0.1, 3, 0.6, 1.0),
    ("log-mel, every hop, no averaging, no refractory time", FrontEnd(n_mfcc=0, n_mels=16, arithmetic="fixed"), 0.02, 1, 0.3, 0.0),
    ("hop longer than the window", FrontEnd(clip_samples=4000, window_samples=256, hop_samples=400, fft_size=256, n_mels=20,
                                            n_mfcc=8, arithmetic="fixed"), 0.05, 2, 0.45, 0.3),
]


@pytest.mark.parametrize("name,fe,every_s,average,threshold,refractory_s", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_the_c_stream_makes_the_inputs_and_reports_of_its_definition(lib, name, fe, every_s, average, threshold, refractory_s):
    labels = ["_silence_", "_unknown_", "yes", "no", "up"]
    scale, zp = 0.21, -7
    st = stream_settings(fe, labels, 1 / 256, -128, every_s=every_s, average=average, threshold=threshold,
                         refractory_s=refractory_s)
    pcm = _speech_like(6.0, fe.sample_rate_hz, seed=len(name))

    audio = _c_config(fe)
    n_out = fe.n_mfcc or fe.n_mels
    mask = (ctypes.c_uint8 * len(labels))(*(int(c in st.keywords) for c in range(len(labels))))
    cfg = CStreamConfig(fe.n_frames, n_out, st.every, st.average, st.threshold_q, st.refractory, len(labels), mask,
                        st.output_zero_point)
    mem = np.zeros(lib.te_stream_bytes(ctypes.byref(cfg)), np.int8)
    work = np.zeros(lib.te_audio_work_bytes(ctypes.byref(audio)) // 4, np.int32)
    window, row = np.zeros(fe.window_samples, np.int16), np.zeros(n_out, np.int8)
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    lib.te_audio_frame_int8(ctypes.byref(audio), ptr(window), ctypes.c_size_t(fe.window_samples), 0, ctypes.c_float(scale),
                            zp, ptr(work), ptr(row))  # the row of silence
    state = CStream()
    lib.te_stream_reset(ctypes.byref(state), ctypes.byref(cfg), ptr(mem), ptr(row))

    want_inputs = stream_inputs(pcm, fe, scale, zp, st)
    outputs = _outputs_for(want_inputs, len(labels), seed=3)
    got_inputs, reports = [], []
    buf = np.zeros((fe.n_frames, n_out), np.int8)
    hop = fe.hop_samples
    for k in range(len(pcm) // hop):
        samples = np.ascontiguousarray(pcm[k * hop : (k + 1) * hop])
        lib.te_audio_hop_int8(ctypes.byref(audio), ptr(window), ptr(samples), ctypes.c_float(scale), zp, ptr(work), ptr(row))
        if lib.te_stream_hop(ctypes.byref(state), ptr(row), ptr(buf)):
            got_inputs.append(buf.copy())
            out = np.ascontiguousarray(outputs[len(got_inputs) - 1])
            c = lib.te_stream_posterior(ctypes.byref(state), out.ctypes.data_as(I8))
            if c >= 0:
                reports.append((k + 1, c))
    assert len(got_inputs) == len(want_inputs) == (len(pcm) // hop) // st.every
    np.testing.assert_array_equal(np.stack(got_inputs), want_inputs)
    want_reports = detections(outputs, len(pcm) // hop, st)
    assert tuple(reports) == want_reports
    assert len(want_reports) >= 2  # the stand-in outputs make the rules decide something
    # a report is a keyword, and reports are at least the refractory hops apart
    assert all(c in st.keywords for _, c in reports)
    assert all(b[0] - a[0] >= st.refractory for a, b in zip(reports, reports[1:]))


def test_a_stream_on_the_micro_frontend_waits_for_its_window_and_carries_its_state(lib):
    """te_micro.c under te_stream.c, as the firmware runs them: no row for the first two hops (the window
    fills), then one per hop from a state carried across the whole stream, equal to pymicro-features heard
    without a reset (stream_inputs); reports as the definition makes them."""
    from tinyeff.data.audio_micro import MICRO, STATE_BYTES

    fe, labels, scale, zp = MICRO, ["_silence_", "_unknown_", "yes", "no"], 0.11, -100
    st = stream_settings(fe, labels, 1 / 256, -128, every_s=0.03, average=2, threshold=0.4, refractory_s=0.3)
    pcm = _speech_like(4.0, fe.sample_rate_hz, seed=7)
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    micro = np.zeros(STATE_BYTES, np.uint8)
    lib.te_micro_init(ptr(micro))
    mask = (ctypes.c_uint8 * len(labels))(*(int(c in st.keywords) for c in range(len(labels))))
    cfg = CStreamConfig(fe.n_frames, fe.n_mels, st.every, st.average, st.threshold_q, st.refractory, len(labels), mask,
                        st.output_zero_point)
    mem = np.zeros(lib.te_stream_bytes(ctypes.byref(cfg)), np.int8)
    state = CStream()
    lib.te_stream_reset(ctypes.byref(state), ctypes.byref(cfg), ptr(mem), ptr(np.full(fe.n_mels, zp, np.int8)))

    want_inputs = stream_inputs(pcm, fe, scale, zp, st)
    outputs = _outputs_for(want_inputs, len(labels), seed=5)
    row, buf = np.zeros(fe.n_mels, np.int8), np.zeros((fe.n_frames, fe.n_mels), np.int8)
    got_inputs, reports, made = [], [], []
    for k in range(len(pcm) // fe.hop_samples):
        samples = np.ascontiguousarray(pcm[k * fe.hop_samples : (k + 1) * fe.hop_samples])
        made.append(lib.te_micro_hop_int8(ptr(micro), ptr(samples), ctypes.c_float(scale), zp, ptr(row)))
        if lib.te_stream_hop(ctypes.byref(state), ptr(row) if made[-1] else None, ptr(buf)):
            got_inputs.append(buf.copy())
            c = lib.te_stream_posterior(ctypes.byref(state), ptr(np.ascontiguousarray(outputs[len(got_inputs) - 1])))
            if c >= 0:
                reports.append((k + 1, c))
    assert made[:3] == [0, 0, 1] and all(made[2:])
    assert (want_inputs[0, :-1] == zp).all()  # one row heard after the first three hops, silence above it
    np.testing.assert_array_equal(np.stack(got_inputs), want_inputs)
    assert tuple(reports) == detections(outputs, len(pcm) // fe.hop_samples, st) and len(reports) >= 2


def test_the_first_rows_of_a_stream_are_silence_then_the_newest_hop_is_the_last_row():
    fe = FrontEnd(arithmetic="fixed")
    st = stream_settings(fe, ["yes", "_silence_"], 1 / 256, -128, every_s=0.02)
    pcm = _speech_like(0.5, fe.sample_rate_hz, seed=1)
    x = stream_inputs(pcm, fe, 0.2, 0, st)
    silent = stream_inputs(np.zeros_like(pcm), fe, 0.2, 0, st)
    assert (silent == silent[0, :1]).all()  # every row of a silent stream alike
    np.testing.assert_array_equal(x[0, :-1], silent[0, :-1])  # after one hop, only the newest row heard anything
    assert not np.array_equal(x[0, -1], silent[0, -1])
    np.testing.assert_array_equal(x[1, :-1], x[0, 1:])  # rows move up by one each hop


def test_stream_settings_threshold_in_the_devices_units_and_the_keywords():
    fe = FrontEnd(arithmetic="fixed")
    st = stream_settings(fe, ["down", "_silence_", "_unknown_", "yes"], 1 / 256, -128, average=3, threshold=0.6)
    assert st.keywords == (0, 3) and st.every == 5 and st.refractory == 50
    assert st.threshold_q == 461  # ceil(0.6 * 3 * 256): sum of 3 outputs of (q + 128) / 256
    with pytest.raises(TinyeffError, match="no keyword"):
        stream_settings(fe, ["_silence_", "_unknown_"], 1 / 256, -128)


def test_score_counts_each_keyword_once_and_every_other_report_as_a_false_accept():
    events = [Event("yes", 1.0, 1.4, True), Event("_unknown_", 3.0, 3.5, False), Event("no", 5.0, 5.3, True)]
    reports = [(1.5, "yes"), (1.9, "yes"),  # the second report of one word is a false accept
               (3.2, "yes"),                # during an unknown word
               (6.4, "no")]                 # later than the tolerance after "no"
    s = score(reports + [(8.0, "no")], events, seconds=3600.0, tolerance_s=1.0)
    assert (s.keywords, s.hits, s.false_accepts) == (2, 1, 4)
    assert (s.repeats, s.on_other_words, s.in_noise) == (1, 1, 2)  # 6.4 s and 8.0 s: no word near
    assert s.latencies_s == (0.1,) and s.recall == 0.5 and s.false_accepts_per_hour == 4.0
    assert score([(6.2, "no")], events, 3600.0).hits == 1


def test_a_recording_places_test_clips_apart_with_their_truth_and_reads_back(tmp_path):
    rate, n = 16000, 16000
    rng = np.random.default_rng(0)
    clips = np.zeros((6, n), np.int16)
    labels = np.array([0, 1, 2, 0, 1, 2])
    for i in range(6):
        clips[i, 4000:9000] = rng.normal(0, 3000, 5000).astype(np.int16)  # a "word" from 0.25 to 0.5625 s
    rec = make_recording(clips, labels, ["yes", "_unknown_", "_silence_"], 12.0, rate, seed=3, synthetic="test")
    assert len(rec.pcm) == 12 * rate and rec.pcm.dtype == np.int16
    assert {e.label for e in rec.events} == {"yes", "_unknown_"}  # silence clips are not words
    assert [e.keyword for e in rec.events] == [e.label == "yes" for e in rec.events]
    starts = [e.start_s for e in rec.events]
    assert starts == sorted(starts) and all(b.start_s - a.end_s > 0.4 for a, b in zip(rec.events, rec.events[1:]))
    for e in rec.events:  # the word's span is where the clip is loud
        assert e.end_s - e.start_s == pytest.approx(5000 / rate, abs=0.011)
        i = int(e.start_s * rate)
        assert np.abs(rec.pcm[i : i + 4000].astype(np.int64)).mean() > 1000
    truth = write_recording(rec, tmp_path / "rec.wav")
    back = read_recording(tmp_path / "rec.wav")
    np.testing.assert_array_equal(back.pcm, rec.pcm)
    assert back.events == rec.events and back.synthetic == "test" and json.loads(truth.read_text())["seconds"] == 12.0


def test_a_recording_the_device_cannot_take_is_one_sentence(tmp_path):
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.zeros(3200, "<i2").tobytes())
    with pytest.raises(TinyeffError, match="2 channels and the front end takes one; mix it down"):
        read_recording(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(4), w.setframerate(16000)
        w.writeframes(np.zeros(1600, "<i4").tobytes())
    with pytest.raises(TinyeffError, match="32-bit samples and the device takes 16-bit PCM"):
        read_recording(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.zeros(1600, "<i2").tobytes())
    with pytest.raises(TinyeffError, match="has no 'stereo.json' beside it"):
        read_recording(path)
    (tmp_path / "stereo.json").write_text('{"events": [{"label": "yes"}]}')
    with pytest.raises(TinyeffError, match="needs events with label, start_s, end_s and keyword"):
        read_recording(path)


def test_settings_survive_the_manifest():
    from tinyeff.stream import StreamSettings

    st = stream_settings(FrontEnd(arithmetic="fixed"), ["yes", "_unknown_"], 1 / 256, -128)
    assert StreamSettings.from_json(json.loads(json.dumps(st.to_json()))) == st
    assert dataclasses.replace(st, average=4) != st
