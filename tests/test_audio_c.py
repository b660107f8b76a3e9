"""The integer audio front end in C (firmware/frontend/te_audio.c) against its Python definition
(tinyeff/data/audio_fixed.py), and that definition against the float front end it stands in for."""

from __future__ import annotations

import ctypes
import dataclasses
import shutil
import subprocess

import numpy as np
import pytest

from tinyeff.compress.quantize import quantize_input
from tinyeff.data.audio import FrontEnd, features
from tinyeff.data.audio_fixed import fixed_features, fixed_features_q16_batch, pcm16, tables
from tinyeff.resources import resource_dir

SRC = resource_dir("firmware") / "frontend"
I16, U16, I32 = ctypes.POINTER(ctypes.c_int16), ctypes.POINTER(ctypes.c_uint16), ctypes.POINTER(ctypes.c_int32)


class CAudio(ctypes.Structure):
    _fields_ = [*((name, ctypes.c_int32) for name in
                  ("clip_samples", "window_samples", "hop_samples", "fft_size", "n_mels", "n_mfcc")),
                ("window_q15", I16), ("twiddle_q15", I16), ("mel_start", U16), ("mel_len", U16),
                ("mel_weights_q15", I16), ("dct_q15", I16), ("log2_table_q16", I32),
                ("log_floor", ctypes.c_int32), ("log_offset_q16", ctypes.c_int32)]


def _c_config(fe: FrontEnd) -> CAudio:
    t = tables(fe)
    arrays = [np.ascontiguousarray(a) for a in (t.window_q15, t.twiddle_q15, t.mel_start, t.mel_len,
                                                t.mel_weights_q15, t.dct_q15, t.log2_table_q16)]
    window, twiddle, start, length, weights, dct, log2 = (a.ctypes.data_as(p) for a, p in
                                                         zip(arrays, (I16, I16, U16, U16, I16, I16, I32)))
    cfg = CAudio(fe.clip_samples, fe.window_samples, fe.hop_samples, fe.fft_size, fe.n_mels, fe.n_mfcc,
                 window, twiddle, start, length, weights, dct if fe.n_mfcc else None, log2,
                 t.log_floor, t.log_offset_q16)
    cfg.keep = arrays  # the C reads them through the pointers
    return cfg


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    so = tmp_path_factory.mktemp("audio") / "libte_audio.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", f"-I{SRC}",
                    str(SRC / "te_audio.c"), "-o", str(so)], check=True, capture_output=True)
    c = ctypes.CDLL(str(so))
    c.te_audio_work_bytes.restype = ctypes.c_size_t
    return c


def _work(lib, cfg: CAudio) -> np.ndarray:
    return np.zeros(lib.te_audio_work_bytes(ctypes.byref(cfg)) // 4, np.int32)


def _c_features(lib, cfg: CAudio, fe: FrontEnd, pcm: np.ndarray) -> np.ndarray:
    pcm = np.ascontiguousarray(pcm, np.int16)
    work = _work(lib, cfg)
    out = np.zeros((fe.n_frames, fe.n_mfcc or fe.n_mels), np.int32)
    for f in range(fe.n_frames):
        lib.te_audio_frame(ctypes.byref(cfg), pcm.ctypes.data_as(I16), ctypes.c_size_t(len(pcm)), ctypes.c_int32(f),
                           work.ctypes.data_as(ctypes.c_void_p), out[f].ctypes.data_as(I32))
    return out


CONFIGS = {
    "mfcc_49x10": FrontEnd(),
    "logmel_32": FrontEnd(n_mfcc=0, n_mels=32),
    "small": FrontEnd(clip_samples=4000, window_samples=256, hop_samples=128, fft_size=256, n_mels=20, n_mfcc=13),
    "fft4096": FrontEnd(clip_samples=8192, window_samples=4096, hop_samples=2048, fft_size=4096, n_mels=64, n_mfcc=0),
}


def _sweep(n: int, rate: int, amplitude: float, seed: int) -> np.ndarray:
    """An exponential sine sweep from 100 Hz to 4 kHz plus noise 20 dB below: speech-like level and spread."""
    t = np.arange(n) / rate
    f = 100.0 * 40.0 ** (t / t[-1])
    noise = np.random.default_rng(seed).standard_normal(n)
    return amplitude * np.sin(2 * np.pi * np.cumsum(f) / rate) + 0.1 * amplitude * noise


def _clips(fe: FrontEnd) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = fe.clip_samples
    t = np.arange(n) / fe.sample_rate_hz
    clips = {"silence": np.zeros(n, np.int16), "empty": np.zeros(0, np.int16),
             "square_full_scale": np.where(np.arange(n) % 16 < 8, 32767, -32768).astype(np.int16),
             "square_slow": np.where(np.arange(n) % 100 < 50, 32767, -32768).astype(np.int16),
             "dc_min": np.full(n, -32768, np.int16),
             "random_int16": rng.integers(-32768, 32768, n).astype(np.int16),
             "sweep": pcm16(_sweep(n, fe.sample_rate_hz, 0.1, 1)),
             "short": pcm16(_sweep(n // 3, fe.sample_rate_hz, 0.3, 2)),
             "long": pcm16(_sweep(n + 777, fe.sample_rate_hz, 0.05, 3))}
    for hz, amplitude in ((440.0, 0.99), (1000.0, 0.01), (3111.0, 0.5), (7999.0, 1.0)):
        clips[f"sine_{hz:g}_{amplitude:g}"] = pcm16(amplitude * np.sin(2 * np.pi * hz * t))
    for std in (0.5, 3.0, 100.0, 3000.0, 20000.0):
        clips[f"noise_{std:g}"] = np.clip(np.round(rng.standard_normal(n) * std), -32768, 32767).astype(np.int16)
    return clips


def _padded(clips: dict[str, np.ndarray], fe: FrontEnd) -> np.ndarray:
    """The clips as one batch for the Python, cut or zero-padded as the front end does."""
    batch = np.zeros((len(clips), fe.clip_samples), np.int16)
    for row, c in zip(batch, clips.values()):
        row[: min(len(c), fe.clip_samples)] = c[: fe.clip_samples]
    return batch


@pytest.mark.parametrize("name", CONFIGS)
def test_c_front_end_is_bit_exact_with_python(lib, name):
    fe = CONFIGS[name]
    cfg, clips = _c_config(fe), _clips(fe)
    want = fixed_features_q16_batch(_padded(clips, fe), fe)
    assert len(np.unique(want)) > 1000  # not a degenerate output
    got = [_c_features(lib, cfg, fe, pcm) for pcm in clips.values()]
    bad = [(clip, int(np.sum(g != w))) for clip, g, w in zip(clips, got, want) if not np.array_equal(g, w)]
    assert not bad, f"clips with values that differ (clip, count): {bad}"


def test_c_front_end_is_bit_exact_on_many_noise_clips(lib):
    """Enough values (some 100,000) that each rounding, even the DCT's, meets its exact half-way case."""
    fe = CONFIGS["small"]
    rng = np.random.default_rng(7)
    std = np.exp(rng.uniform(0.0, np.log(20000.0), (250, 1)))
    clips = np.clip(np.round(rng.standard_normal((250, fe.clip_samples)) * std), -32768, 32767).astype(np.int16)
    want = fixed_features_q16_batch(clips, fe)
    cfg = _c_config(fe)
    bad = [i for i, (pcm, w) in enumerate(zip(clips, want)) if not np.array_equal(_c_features(lib, cfg, fe, pcm), w)]
    assert not bad, f"{len(bad)} clips differ"


def test_one_clip_and_the_batch_agree():
    fe = CONFIGS["small"]
    clips = _clips(fe)
    batch = fixed_features_q16_batch(_padded(clips, fe), fe)
    for w, pcm in zip(batch, clips.values()):
        assert np.array_equal(fixed_features(pcm, fe), w.astype(np.float32) / np.float32(65536))


@pytest.mark.parametrize("name", ["mfcc_49x10", "logmel_32"])
@pytest.mark.parametrize("scale, zero_point", [(0.1, -5), (0.25, 20), (2.0**-7, 0), (0.0588235, -128)])
def test_c_int8_input_equals_the_hosts_quantized_fixed_features(lib, name, scale, zero_point):
    fe = CONFIGS[name]
    cfg = _c_config(fe)
    work = _work(lib, cfg)
    for clip, pcm in list(_clips(fe).items())[::2]:
        want = quantize_input(fixed_features(pcm, fe), np.float32(scale), zero_point)
        got = np.zeros_like(want)
        lib.te_audio_int8(ctypes.byref(cfg), pcm.ctypes.data_as(I16), ctypes.c_size_t(len(pcm)), ctypes.c_float(scale),
                          ctypes.c_int32(zero_point), work.ctypes.data_as(ctypes.c_void_p),
                          got.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
        assert np.array_equal(want, got), clip


def test_work_bytes_of_the_default_front_end(lib):
    # 4 * (1024 + 2 bins' re/im + 40 log-mels + 10 outputs)
    assert lib.te_audio_work_bytes(ctypes.byref(_c_config(FrontEnd()))) == 4304


# sweep amplitude -> (mean, max) |fixed - float| allowed; measured at most a third of these on all four configs
APPROXIMATION = {0.7: (0.001, 0.004), 0.1: (0.001, 0.004), 0.01: (0.004, 0.02), 0.001: (0.05, 0.25)}


@pytest.mark.parametrize("name", CONFIGS)
def test_fixed_features_approximate_the_float_front_end(name):
    """Sweeps plus noise with peaks at -3, -20 (speech), -40 and -60 dBFS: the integer features are within
    1e-3 of the float ones on average (measured <= 0.0003 against a spread, std, of 2-20) down to -20 dBFS,
    4e-3 at -40 (measured <= 0.0014, max 0.007) and 0.05 at -60 (measured <= 0.015, max 0.09), where
    mel energies near the 1e-6 floor meet the rounding of the window product and the FFT. Silence differs
    by the floor's rounding, ln(17 / 16.78) = 0.013 per log-mel. Full-scale clips, where an overflow in
    int32 or int64 would show, agree to 0.002 (allowed 0.005) in every log-mel within 12 (52 dB) of the
    clip's loudest; below that the Q15 twiddles' leakage (some 95 dB under a full-scale tone) fills
    spectral valleys that the float front end sees down to its floor."""
    fe = CONFIGS[name]
    for amplitude, (mean, most) in APPROXIMATION.items():
        signal = pcm16(_sweep(fe.clip_samples, fe.sample_rate_hz, amplitude, 4)) / 32768.0
        diff = np.abs(fixed_features(pcm16(signal), fe) - features(signal, fe))
        assert diff.mean() < mean and diff.max() < most, (amplitude, diff.mean(), diff.max())
    clips = _clips(fe)
    logmel = dataclasses.replace(fe, n_mfcc=0)
    for clip in ("square_full_scale", "square_slow", "random_int16", "sine_440_0.99"):
        want = features(clips[clip] / 32768.0, logmel)
        loud = want > want.max() - 12.0
        diff = np.abs(fixed_features(clips[clip], logmel) - want)[loud]
        assert diff.max() < 0.005, (clip, diff.max())
    silent = features(np.zeros(fe.clip_samples), fe)
    tolerance = 0.014 * (fe.n_mels**0.5 if fe.n_mfcc else 1.0)  # MFCC: c0 sums the log-mels / sqrt(n_mels)
    np.testing.assert_allclose(fixed_features(clips["silence"], fe), silent, atol=tolerance)
    assert not np.array_equal(fixed_features(clips["silence"], fe), silent)


def test_pcm16_gives_back_a_16_bit_files_samples():
    samples = np.arange(-32768, 32768, dtype=np.int16)
    assert np.array_equal(pcm16(samples / 32768.0), samples)
    assert pcm16(np.array([-1.5, 1.0, 1.5])).tolist() == [-32768, 32767, 32767]


def _undefined(obj) -> set[str]:
    nm = shutil.which("arm-none-eabi-nm") if "m4" in obj.name else "nm"
    return set(subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True, check=True).stdout.split()) - {"U"}


def test_the_c_front_end_needs_no_heap_and_no_libm(tmp_path):
    """Unoptimized and without builtins, every symbol it leaves to the C library is a memory one (it uses none)."""
    obj = tmp_path / "te_audio.o"
    subprocess.run(["gcc", "-std=c99", "-O0", "-fno-builtin", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{SRC}",
                    "-c", str(SRC / "te_audio.c"), "-o", str(obj)], check=True, capture_output=True)
    assert _undefined(obj) <= {"memcpy", "memmove", "memset", "memcmp"}


@pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc"), reason="no arm-none-eabi-gcc")
def test_the_c_front_end_compiles_for_cortex_m4_without_warnings_or_library_calls(tmp_path):
    obj = tmp_path / "te_audio_m4.o"
    r = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                        "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{SRC}", "-c", str(SRC / "te_audio.c"),
                        "-o", str(obj)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _undefined(obj) <= {"memcpy", "memmove", "memset", "memcmp"}
