"""The C micro frontend (firmware/frontend/te_micro.c) against pymicro-features, the TFLM micro frontend it
re-implements: the same features, bit for bit, at the same hops, and the same int8 model input."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import re
import shutil
import subprocess

import numpy as np
import pytest

pymicro = pytest.importorskip("pymicro_features")

from tinyeff.resources import resource_dir  # noqa: E402

SRC = resource_dir("firmware") / "frontend"
RATE, WINDOW, HOP, CHANNELS = 16000, 480, 160, 40
F32 = np.float32

# te_micro.c plus what the tests look at inside it: the size of te_micro_t and where its tables are, and two
# of its static helpers (included, not linked, to reach them).
SHIM = r"""
#include <stddef.h>
#include "te_micro.c"
size_t shim_sizeof(void) { return sizeof(te_micro_t); }
uint32_t shim_sqrt_round(uint64_t v) { return sqrt_round(v); }
float shim_log1pf(float x) { return log1p_f(x); }
size_t shim_offset(int field) {
  switch (field) {
    case 0: return offsetof(te_micro_t, window_q12);
    case 1: return offsetof(te_micro_t, cos_q15);
    case 2: return offsetof(te_micro_t, band_edge);
    case 3: return offsetof(te_micro_t, rise_q12);
    case 4: return offsetof(te_micro_t, fall_q12);
    case 5: return offsetof(te_micro_t, pcan_gain_small);
    case 6: return offsetof(te_micro_t, pcan_gain_seg);
    default: return offsetof(te_micro_t, log2_corr_q16);
  }
}
"""
TABLES = {"window_q12": (0, np.int16, 480), "cos_q15": (1, np.int16, 129), "band_edge": (2, np.uint16, 42),
          "rise_q12": (3, np.uint16, 257), "fall_q12": (4, np.uint16, 257), "pcan_gain_small": (5, np.int16, 2),
          "pcan_gain_seg": (6, np.int16, 93), "log2_corr_q16": (7, np.uint16, 129)}
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]
M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("micro")
    (tmp / "shim.c").write_text(SHIM)
    so = tmp / "libte_micro.so"
    r = subprocess.run(["gcc", *CFLAGS, "-shared", "-fPIC", f"-I{SRC}", str(tmp / "shim.c"), "-o", str(so)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    c = ctypes.CDLL(str(so))
    c.shim_sizeof.restype = c.shim_offset.restype = ctypes.c_size_t
    c.shim_sqrt_round.restype, c.shim_sqrt_round.argtypes = ctypes.c_uint32, [ctypes.c_uint64]
    c.shim_log1pf.restype, c.shim_log1pf.argtypes = ctypes.c_float, [ctypes.c_float]
    c.te_micro_hop.restype = ctypes.c_int
    c.te_micro_hop.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    c.te_micro_int8.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int32, ctypes.c_float,
                                ctypes.c_int32, ctypes.c_void_p]
    return c


class CMicro:
    """A te_micro_t in a NumPy buffer, driven hop by hop like pymicro-features' MicroFrontend."""

    def __init__(self, lib):
        self.lib = lib
        self.state = np.zeros(lib.shim_sizeof(), np.uint8)
        self.ptr = self.state.ctypes.data
        self.out = np.zeros(CHANNELS, np.uint16)
        lib.te_micro_init(ctypes.c_void_p(self.ptr))

    def reset(self):
        self.lib.te_micro_reset(ctypes.c_void_p(self.ptr))

    def hop(self, samples: np.ndarray) -> list[float]:
        samples = np.ascontiguousarray(samples, np.int16)
        if not self.lib.te_micro_hop(self.ptr, samples.ctypes.data, self.out.ctypes.data):
            return []
        return [int(v) * 10 / 256 for v in self.out]  # exact in double

    def table(self, name: str) -> np.ndarray:
        field, dtype, count = TABLES[name]
        at = self.lib.shim_offset(field)
        return np.frombuffer(self.state[at: at + count * np.dtype(dtype).itemsize].tobytes(), dtype)


def _hops(pcm: np.ndarray) -> list[np.ndarray]:
    return [pcm[i: i + HOP] for i in range(0, len(pcm) - HOP + 1, HOP)]


def _run(frontend, pcm: np.ndarray, reset_at: tuple[int, ...] = ()) -> list[list[float]]:
    """What each hop gives: [] or the 40 features; pymicro-features' MicroFrontend or a CMicro."""
    got = []
    for i, chunk in enumerate(_hops(pcm)):
        if i in reset_at:
            frontend.reset()
        got.append(frontend.hop(chunk) if isinstance(frontend, CMicro)
                   else list(frontend.process_samples(chunk.astype(np.int16).tobytes()).features))
    return got


def _pcm(x) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _speech_like(n: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """Voiced bursts (a 100-250 Hz pulse train through formant-ish resonances) and fricative noise at syllable
    rate, with pauses, so noise reduction and PCAN see onsets, decays and silence."""
    t = np.arange(n) / RATE
    f0 = 100 + 150 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k * (1 + np.sin(2 * np.pi * (0.3 * k) * t)) for k in range(1, 30))
    envelope = np.clip(np.sin(2 * np.pi * 3.7 * t + rng.uniform(0, 6)), 0, None) ** 2
    gate = np.repeat(rng.random(n // 4000 + 1) < 0.75, 4000)[:n]
    fricative = rng.standard_normal(n) * (np.sin(2 * np.pi * 2.3 * t) > 0.8)
    return level * 32768 * (0.12 * voiced * envelope * gate + 0.3 * fricative * gate)


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240611)
    n = RATE  # 1 s: 100 hops, 98 frames
    t = np.arange(n) / RATE
    s = {"silence": np.zeros(n, np.int16),
         "random_int16": rng.integers(-32768, 32768, n).astype(np.int16),
         "noise_clipped": _pcm(rng.standard_normal(n) * 60000),
         "square_full_scale": np.where(np.arange(n) % 40 < 20, 32767, -32768).astype(np.int16),
         "dc_min": np.full(n, -32768, np.int16), "dc_max": np.full(n, 32767, np.int16),
         "dc_1000_noise": _pcm(1000 + rng.standard_normal(n) * 30),
         "dc_minus_300": np.full(n, -300, np.int16),
         "chirp": _pcm(0.5 * 32767 * np.sin(2 * np.pi * (50 * t + (8000 - 50) / 2 * t**2))),
         "chirp_quiet": _pcm(0.002 * 32767 * np.sin(2 * np.pi * (8000 * t - (8000 - 50) / 2 * t**2))),
         "speech_like": _pcm(_speech_like(3 * n, rng, 0.3)),
         "speech_like_loud_clipped": _pcm(_speech_like(n, rng, 3.0))}
    for dbfs in (-90, -75, -60, -40, -20, -6, 0):
        s[f"noise_{dbfs}dBFS"] = _pcm(rng.standard_normal(n) * 32768 * 10 ** (dbfs / 20))
    for hz, amplitude in ((100, 0.9), (440, 0.99), (1000, 0.01), (1000, 1.0), (3111, 0.3), (7000, 0.05),
                          (7999, 1.0), (125, 0.5), (7500, 0.5)):
        s[f"tone_{hz}_{amplitude}"] = _pcm(amplitude * 32767 * np.sin(2 * np.pi * hz * t + rng.uniform(0, 6)))
    # Full-scale negative impulses over faint noise: where one lands on the window's centre (weight 4096) the
    # windowed value is -32768, which the reference leaves out of its peak and then wraps when scaling up.
    impulses = _pcm(rng.standard_normal(n) * 20)
    impulses[::173] = -32768
    impulses[89::331] = 32767
    s["impulses"] = impulses
    # Alone on the window's centre, -32768 is a frame's only nonzero value: no peak, so the scale-up shift is 15
    # and wraps it to 0.
    lone = np.zeros(n, np.int16)
    lone[80::800] = -32768
    s["lone_impulses_on_the_centre"] = lone
    return s


SIGNALS = _signals()


def _assert_same(got: list[list[float]], want: list[list[float]], what: str):
    assert len(got) == len(want)
    frames_got = [i for i, g in enumerate(got) if g]
    frames_want = [i for i, w in enumerate(want) if w]
    assert frames_got == frames_want, f"{what}: frames at different hops"
    g, w = np.array([got[i] for i in frames_got]), np.array([want[i] for i in frames_want])
    bad = np.argwhere(g != w)
    assert not len(bad), (f"{what}: {len(bad)} of {g.size} values differ, first at (frame, channel) "
                          f"{tuple(bad[0])}: C {g[tuple(bad[0])]} vs pymicro-features {w[tuple(bad[0])]}")


@pytest.mark.parametrize("name", SIGNALS)
def test_every_frame_is_bit_exact_with_pymicro_features(lib, name):
    pcm = SIGNALS[name]
    want = _run(pymicro.MicroFrontend(), pcm)
    _assert_same(_run(CMicro(lib), pcm), want, name)
    assert [bool(w) for w in want[:3]] == [False, False, True]  # the first frame comes with the third hop


def test_the_signals_reach_the_whole_range():
    """Not a degenerate test set: zeros (noise reduction and PCAN squash steady sound), features as high as PCAN
    lets loud sound go (measured 26.21, that is 671 * 10 / 256) and many distinct values (measured 335)."""
    values = np.concatenate([np.ravel([f for f in _run(pymicro.MicroFrontend(), pcm) if f])
                             for pcm in SIGNALS.values()])
    assert values.min() == 0.0 and values.max() > 26.0 and len(np.unique(values)) > 300


def test_long_streams_with_resets_are_bit_exact(lib):
    """5 s of speech-like sound from near silence to clipping, so that the noise estimates and PCAN gains
    travel far; resets mid-stream (one mid-window) must forget everything in both."""
    rng = np.random.default_rng(5)
    level = np.repeat(10 ** rng.uniform(-4, 0.3, 10), RATE // 2)
    pcm = _pcm(_speech_like(5 * RATE, rng, 1.0) * level + rng.standard_normal(5 * RATE) * 3)
    c = CMicro(lib)
    for resets in ((), (1, 137, 138, 400)):
        _assert_same(_run(c, pcm, resets), _run(pymicro.MicroFrontend(), pcm, resets), f"resets {resets}")
        c.reset()
    # the same C state carries on to another signal after a reset, like a fresh one
    _assert_same(_run(c, SIGNALS["chirp"]), _run(pymicro.MicroFrontend(), SIGNALS["chirp"]), "after reset")


def test_frames_depend_on_the_past(lib):
    """Noise reduction has memory: the same hop gives other features after other audio (so a C that forgot
    its state between hops would fail the tests above)."""
    tail = SIGNALS["speech_like"][: RATE // 2]
    a = _run(CMicro(lib), np.concatenate([SIGNALS["noise_-20dBFS"][:8000], tail]))[-1]
    b = _run(CMicro(lib), np.concatenate([np.zeros(8000, np.int16), tail]))[-1]
    assert a != b


def _int8_reference(pcm: np.ndarray, clip_samples: int, scale: float, zero_point: int) -> np.ndarray:
    clip = np.zeros(clip_samples, np.int16)
    clip[: min(len(pcm), clip_samples)] = pcm[:clip_samples]
    n_frames = 1 + (clip_samples - WINDOW) // HOP
    feats = [f for f in _run(pymicro.MicroFrontend(), clip[: (n_frames + 2) * HOP]) if f]
    assert len(feats) == n_frames
    q = np.round(np.array(feats, F32) / F32(scale)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


@pytest.mark.parametrize("scale, zero_point", [(0.10196078568696976, -128), (0.05, 0), (0.25, 20),
                                               (2.0**-3, -100), (0.0025, 3)])
def test_int8_input_equals_quantized_pymicro_features(lib, scale, zero_point):
    c = CMicro(lib)  # one state for all clips: each clip starts from a reset
    cases = [("speech_like", 16000, 24000), ("random_int16", 16000, 5000), ("impulses", 16000, 16000),
             ("chirp_quiet", 1000, 16000), ("noise_-40dBFS", 24000, 16000), ("tone_440_0.99", 1279, 333),
             ("silence", 480, 480)]
    for name, clip_samples, n in cases:
        pcm = np.ascontiguousarray(SIGNALS[name][:n] if n <= len(SIGNALS[name]) else
                                   np.resize(SIGNALS[name], n), np.int16)
        want = _int8_reference(pcm, clip_samples, scale, zero_point)
        got = np.full(want.size + 4 * CHANNELS, 99, np.int8)  # and a guard band: nothing may be written past
        lib.te_micro_int8(c.ptr, pcm.ctypes.data, len(pcm), clip_samples, scale, zero_point, got.ctypes.data)
        assert (got[want.size:] == 99).all(), (name, clip_samples, n, "wrote past its frames")
        got = got[: want.size].reshape(want.shape)
        assert np.array_equal(got, want), (name, clip_samples, n, int(np.sum(got != want)))
        assert len(np.unique(want)) > 1 or name == "silence"


def test_int8_of_a_clip_shorter_than_a_window_writes_nothing(lib):
    c = CMicro(lib)
    out = np.full(4 * CHANNELS, 7, np.int8)
    lib.te_micro_int8(c.ptr, SIGNALS["chirp"].ctypes.data, 16000, 479, 0.1, 0, out.ctypes.data)
    assert (out == 7).all()


# ---- Tables ----------------------------------------------------------------------------------------------
# pymicro-features builds its tables at run time with the host's libm (cosf, log1pf, powf) and kissfft's double
# cos/sin. These generators follow its arithmetic step by step in float32 (each NumPy float32 operation rounds
# like C's), taking the libm functions as arguments.


def _window(cosf) -> np.ndarray:
    step = F32(F32(F32(math.pi) * F32(2)) / F32(WINDOW))
    w = [F32(F32(0.5) - F32(0.5) * cosf(F32(step * F32(F32(i) + F32(0.5))))) for i in range(WINDOW)]
    return np.array([math.floor(F32(F32(v * F32(4096)) + F32(0.5))) for v in w], np.int16)


def _filterbank(log1pf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def mel(hz):
        return F32(F32(1127) * log1pf(F32(hz / F32(700))))

    hz_per_bin = F32(F32(F32(0.5) * F32(RATE)) / F32(F32(257) - F32(1)))
    low = mel(F32(125))
    step = F32(F32(mel(F32(7500)) - low) / F32(CHANNELS + 1))
    centres = [F32(low + F32(step * F32(i + 1))) for i in range(CHANNELS + 1)]
    edges, rise, fall = [], np.zeros(257, np.uint16), np.zeros(257, np.uint16)
    b = int(F32(F32(1.5) + F32(F32(125) / hz_per_bin)))
    for band, centre in enumerate(centres):
        edges.append(b)
        below = low if band == 0 else centres[band - 1]
        while (m := mel(F32(F32(b) * hz_per_bin))) <= centre:
            w = F32(F32(centre - m) / F32(centre - below))
            fall[b] = math.floor(F32(F32(w * F32(4096)) + F32(0.5)))
            rise[b] = math.floor(F32(F32(F32(F32(1) - w) * F32(4096)) + F32(0.5)))
            b += 1
    return np.array([*edges, b], np.uint16), rise, fall


def _pcan(powf) -> tuple[np.ndarray, np.ndarray]:
    def gain(x):
        g = F32(F32(2**21) * powf(F32(F32(F32(x) / F32(128)) + F32(80)), F32(-F32(0.95))))
        return 32767 if g > 32767 else int(F32(g + F32(0.5)))

    seg = []
    for e in range(2, 33):
        x0 = 1 << (e - 1)
        y0, y1, y2 = gain(x0), gain(x0 + x0 // 2), gain(x0 + x0 - 1 if e == 32 else 2 * x0)
        a1 = 4 * (y1 - y0) - (y2 - y0)
        seg += [y0, a1, (y2 - y0) - a1]
    return np.array([gain(0), gain(1)], np.int16), np.array(seg, np.int16)


def _kissfft_twiddles() -> np.ndarray:
    """kissfft's Q15 twiddles, floor(0.5 + 32767 cos) in double: the 256 of the complex FFT, then the 128 of
    kiss_fftr's final pass, as (re, im) rows."""
    def q15(phase):
        return [math.floor(0.5 + 32767 * math.cos(phase)), math.floor(0.5 + 32767 * math.sin(phase))]

    pi = 3.141592653589793
    return np.array([q15(-2 * pi * i / 256) for i in range(256)] +
                    [q15(-pi * ((i + 1) / 256 + 0.5)) for i in range(128)])


def _from_quarter_wave(q: np.ndarray, j: int) -> list[int]:
    """exp(-2 pi i j / 512) from 32767 cos over a quarter turn, as te_micro.c derives it."""
    r = j % 128
    c, s = int(q[r]), int(q[128 - r])
    return [[c, -s], [-s, -c], [-c, s], [s, c]][j // 128]


def _correctly_rounded(fn):
    return lambda *a: F32(fn(*(float(v) for v in a)))


def _host_libm():
    path = ctypes.util.find_library("m")
    if path is None:
        pytest.skip("no libm to load")
    m = ctypes.CDLL(path)
    for name, n in (("cosf", 1), ("log1pf", 1), ("powf", 2)):
        getattr(m, name).restype = ctypes.c_float
        getattr(m, name).argtypes = [ctypes.c_float] * n
    return lambda name: (lambda *a: F32(getattr(m, name)(*(float(v) for v in a))))


def test_log1pf_is_the_hosts(lib):
    """pymicro-features' mel scale comes from the host's log1pf, which is not correctly rounded (glibc 2.36, as
    newlib: the fdlibm float algorithm). te_micro.c does the same float operations; they agree on every input
    the filterbank uses and on 200,000 others, of which a correctly rounded log1pf differs on some 8,000."""
    libm = _host_libm()("log1pf")
    rng = np.random.default_rng(3)
    xs = np.concatenate([np.arange(0, 8100, 31.25, dtype=F32) / F32(700), rng.uniform(0, 12, 100_000).astype(F32),
                         (2.0 ** rng.uniform(-29, 40, 100_000)).astype(F32), F32([1, 3, 7, 2**-29, 0.41421354])])
    mine = np.array([lib.shim_log1pf(x) for x in xs.tolist()], F32)
    host = np.array([libm(x) for x in xs.tolist()], F32)
    bad = np.flatnonzero(mine != host)
    assert not len(bad), f"{len(bad)} inputs differ, e.g. log1pf({xs[bad[0]]!r}): {mine[bad[0]]!r} vs {host[bad[0]]!r}"
    assert (mine != np.log1p(xs.astype(np.float64)).astype(F32)).sum() > 5000


def test_sqrt_rounds_to_nearest_but_not_past_16_bits_below_2_to_32(lib):
    """TFLM's square root takes a 32-bit path below 2^32, which stops at 0xFFFF (a quirk no test signal
    reaches: channel sums within 65535 of 2^32)."""
    def reference(v):
        r = math.isqrt(v)
        return r + 1 if v - r * r > r and r != (0xFFFF if v < 2**32 else 0xFFFFFFFF) else r

    rng = np.random.default_rng(11)
    values = [0, 1, 2, 3, 4, 2**32 - 1, 2**32, 2**64 - 1, 0xFFFF**2 + 0xFFFF, 0xFFFF**2 + 0xFFFF + 1,
              0xFFFFFFFF**2 + 0xFFFFFFFF, 0xFFFFFFFF**2 + 0xFFFFFFFF + 1]
    for k in [*rng.integers(1, 2**16, 200), *rng.integers(2**16, 2**32, 200, dtype=np.uint64)]:
        values += [int(k) ** 2 + d for d in (-1, 0, int(k), int(k) + 1) if 0 <= int(k) ** 2 + d < 2**64]
    values += [int(v) >> int(s) for v, s in zip(rng.integers(0, 2**64, 2000, dtype=np.uint64),
                                                rng.integers(0, 64, 2000))]
    bad = [v for v in values if lib.shim_sqrt_round(v) != reference(v)]
    assert not bad, bad[:5]
    assert lib.shim_sqrt_round(2**32 - 1) == 0xFFFF and lib.shim_sqrt_round(2**32) == 0x10000


def test_tables_equal_the_ones_pymicro_features_builds_with_this_hosts_libm(lib):
    libm = _host_libm()
    c = CMicro(lib)
    assert np.array_equal(c.table("window_q12"), _window(libm("cosf")))
    edges, rise, fall = _filterbank(libm("log1pf"))
    assert np.array_equal(c.table("band_edge"), edges)
    assert np.array_equal(c.table("rise_q12"), rise) and np.array_equal(c.table("fall_q12"), fall), (
        "mel weights differ: pymicro-features builds them with the host's log1pf, which te_micro.c takes to be "
        "the fdlibm float algorithm (glibc 2.36, newlib); a correctly rounded log1pf changes two weights")
    small, seg = _pcan(libm("powf"))
    assert np.array_equal(c.table("pcan_gain_small"), small) and np.array_equal(c.table("pcan_gain_seg"), seg)


def test_tables_follow_their_formulas(lib):
    c = CMicro(lib)
    # The window and the PCAN gains come out the same from correctly rounded cosf and powf: te_micro.c computes
    # those in double and rounds once.
    assert np.array_equal(c.table("window_q12"), _window(_correctly_rounded(math.cos)))
    assert c.table("window_q12")[239:241].tolist() == [4096, 4096]  # where -32768 windows to -32768
    small, seg = _pcan(_correctly_rounded(math.pow))
    assert np.array_equal(c.table("pcan_gain_small"), small) and np.array_equal(c.table("pcan_gain_seg"), seg)
    # Every kissfft twiddle is one of the quarter wave's values, sign and place as te_micro.c picks them.
    quarter = np.array([math.floor(0.5 + 32767 * math.cos(2 * math.pi * j / 512)) for j in range(129)])
    assert np.array_equal(c.table("cos_q15"), quarter)
    derived = [_from_quarter_wave(quarter, 2 * i) for i in range(256)] + \
              [_from_quarter_wave(quarter, 129 + i) for i in range(128)]
    assert np.array_equal(_kissfft_twiddles(), np.array(derived))
    # 65536 (log2(1 + i/128) - i/128), rounded: the correction of TFLM's piecewise linear log2
    corr = [math.floor(65536 * (math.log2(1 + i / 128) - i / 128) + 0.5) for i in range(129)]
    assert np.array_equal(c.table("log2_corr_q16"), np.array(corr, np.uint16))
    assert c.table("log2_corr_q16").max() == 5641  # its peak, at i = 57
    # 40 channels over bins 5..240 (156 Hz..7500 Hz), no empty band, weights in [0, 4096]
    edges = c.table("band_edge").astype(int)
    assert edges[0] == 5 and edges[-1] == 241 and (np.diff(edges) > 0).all()
    assert c.table("rise_q12").max() <= 4096 and c.table("fall_q12").max() <= 4096


def test_the_state_fits_in_5_kib_and_the_manifest_says_how_much(lib):
    from tinyeff.data.audio_micro import STATE_BYTES

    assert lib.shim_sizeof() == STATE_BYTES <= 5 * 1024  # what a generated project's tinyeff.json counts as its RAM


# ---- Builds ---------------------------------------------------------------------------------------------------


def _undefined(nm: str, obj) -> set[str]:
    return set(subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True, check=True).stdout.split()) - {"U"}


MEMORY = {"memcpy", "memmove", "memset", "memcmp"}


def test_needs_no_heap_and_no_libm(tmp_path):
    """Unoptimized and without builtins, all it leaves to the C library is memory functions."""
    obj = tmp_path / "te_micro.o"
    r = subprocess.run(["gcc", "-std=c99", "-O0", "-fno-builtin", "-pedantic", "-Wall", "-Wextra", "-Werror",
                        f"-I{SRC}", "-c", str(SRC / "te_micro.c"), "-o", str(obj)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _undefined("nm", obj) <= MEMORY


@pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc"), reason="no arm-none-eabi-gcc")
def test_compiles_for_cortex_m4_without_warnings_or_libm(tmp_path):
    """Only memory functions and, for the init-time doubles on a single-precision FPU, libgcc's soft-float
    helpers (__aeabi_d*, conversions): nothing from libm, no malloc."""
    obj = tmp_path / "te_micro_m4.o"
    r = subprocess.run(["arm-none-eabi-gcc", *M4, *CFLAGS, f"-I{SRC}", "-c", str(SRC / "te_micro.c"), "-o", str(obj)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    soft_float = {s for s in _undefined("arm-none-eabi-nm", obj) if re.fullmatch(r"__aeabi_(d\w+|\w+2d)", s)}
    assert _undefined("arm-none-eabi-nm", obj) - soft_float <= MEMORY
    size = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in size.splitlines()[1].split()[:3])
    assert data == 0 and bss == 0 and text < 8192, size
