"""The audio front end of ``audio.py`` in integer arithmetic only, bit-exact with firmware/frontend/te_audio.c.

This module defines the computation; the C repeats it operation for operation, so a model trained on
these features gets exactly the same int8 input on a device. Every constant table is made here (floats
allowed, then rounded) and handed to the C, which never computes a table: bit-exactness then depends
only on integer arithmetic. ``>>`` is an arithmetic shift (floor). For int16 PCM and a ``FrontEnd``:

1. the clip is cut or zero-padded to ``clip_samples``; frames of ``window_samples`` every
   ``hop_samples``, no padding at the ends (``FrontEnd.n_frames`` frames);
2. windowed sample ``x = (s * window_q15 + 2^11) >> WINDOW_SHIFT`` (12) with ``window_q15 =
   round(hann * 32767)``, so |x| <= 2^18: with 3 bits kept below the input's LSB, the rounding of this
   product and of the FFT stays well under the int16 input's own quantization noise (>> 15 here puts
   the features of quiet clips, peaks at -60 dBFS, 7 times further from the float ones);
3. FFT of ``fft_size`` = N points (x zero-padded) as an N/2-point complex FFT of
   ``z[t] = x[2t] + i x[2t+1]``: iterative radix-2, decimation in time on bit-reversed input, int32
   data, no scaling. A butterfly is ``a +- t`` with ``t = b * conj-twiddle``, each part of t one
   rounded sum ``(b.re c + b.im s + 2^14) >> 15`` (``t.im = (b.im c - b.re s + 2^14) >> 15``), where
   ``c, s = twiddle_q15[k] = round(2^15 cos, sin(2 pi k / N))`` clipped to 32767. The split into the
   real FFT's bins k = 0..N/2: with ``A = Z[k]``, ``B = conj(Z[(N/2 - k) mod N/2])``, ``E = A + B``,
   ``O = -i (A - B)`` (twice the even and odd samples' spectra), ``X = (E * 2^15 + O * conj-twiddle[k]
   + 2^15) >> 16`` per part, i.e. ``(E + W^k O) / 2`` rounded once. Every |value| of Z and X is at most
   sum |x| <= 2^18 * window_samples / 2 <= 2^29 for N <= 4096 (E and O: 2^30), so int32 holds them;
4. power ``P = (X.re^2 + X.im^2) >> POWER_SHIFT`` (11), int64 (|X|^2 <= 2^58). By Parseval the bins
   0..N/2 hold at most N sum x^2 <= N * 2^36 * 3/8 * window_samples <= 2^58.6, so P sums to <= 2^47.6;
   the shift is the least that keeps step 5 in int64, so P keeps the resolution the float front end's
   1e-6 floor needs (a shift of 16 would floor to 0 every bin under 1e-6 of float power, the floor);
5. mel energy ``e = (sum over the filter's bins of P * weight_q15) >> 15`` with weights
   ``round(mel_filterbank * 32767)`` <= 1: the sum is <= 2^47.6 * 2^15 = 2^62.6 < 2^63, in int64;
6. log-mel ``ln(e + log_floor)`` in Q16: with scale = 32767^3 * 2^6 / 2^(11 + 15) (the window's 32767
   and the 2^3 it keeps, an FFT of gain ~1, the >> 11 and the weights' 32767 / 2^15), ``e ~= scale *
   (power @ fb.T)`` of the float front end (scale ~= 2^25 (1 - 9e-5)),
   ``log_floor = round(FrontEnd.log_floor * scale)`` (34 by default), and
   ``log_offset_q16 = round(ln(scale) 2^16)`` is subtracted so the result approximates the float log.
   ``ln`` is integer: p = the highest set bit of v, m = v normalized to [2^30, 2^31), the next 8 bits
   below the leading one index ``log2_table_q16[i] = round(2^16 log2(1 + i/256))`` (257 entries) and
   the 16 after them interpolate linearly: ``log2 = p 2^16 + t[i] + ((t[i+1] - t[i]) r + 2^15) >> 16``,
   then ``ln = (log2 * LN2_Q30 + 2^29) >> 30 - log_offset_q16``;
7. MFCC: ``(sum_m dct_q15[k, m] * logmel[m] + 2^14) >> 15`` in int64, ``dct_q15 = round(dct * 32767)``;
   with ``n_mfcc == 0`` the log-mel itself.

The features are int32 Q16 (value / 65536); ``fixed_features`` gives them as float32, exact while
|q16| < 2^24 (it clips there, as te_audio_int8 does; the log-mels stay within (-14, 17), so that
takes an MFCC over some 200 mels).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from tinyeff.data.audio import FrontEnd, dct_matrix, mel_filterbank
from tinyeff.errors import TinyeffError

WINDOW_SHIFT = 12
POWER_SHIFT = 11
LOG_TABLE_BITS = 8
LN2_Q30 = round(math.log(2.0) * 2**30)
Q16_LIMIT = 2**24 - 1  # float32 holds every integer up to 2^24 exactly


@dataclasses.dataclass(frozen=True)
class FixedTables:
    window_q15: np.ndarray      # int16 (window_samples,)
    twiddle_q15: np.ndarray     # int16 (fft_size // 2 + 1, 2): cos, sin of 2 pi k / N
    mel_start: np.ndarray       # uint16 (n_mels,): first bin with a nonzero weight
    mel_len: np.ndarray         # uint16 (n_mels,): bins from there on (0 for a filter between bins)
    mel_weights_q15: np.ndarray  # int16 (sum(mel_len),): the filters' weights one after another
    dct_q15: np.ndarray         # int16 (n_mfcc, n_mels); empty for log-mel
    log2_table_q16: np.ndarray  # int32 (2^LOG_TABLE_BITS + 1,)
    log_floor: int
    log_offset_q16: int


def _q15(a: np.ndarray, one: float = 32767.0) -> np.ndarray:
    return np.clip(np.round(a * one), -32767, 32767).astype(np.int16)


@functools.lru_cache(maxsize=16)
def tables(fe: FrontEnd) -> FixedTables:
    n = fe.fft_size
    if n < 4 or n > 4096 or n & (n - 1):
        raise TinyeffError(f"fft_size {n}: the fixed front end needs a power of two from 4 to 4096")
    if not 0 < fe.window_samples <= min(n, fe.clip_samples) or fe.hop_samples < 1:
        raise TinyeffError("the fixed front end needs 0 < window_samples <= fft_size, clip_samples and hop_samples >= 1")
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(fe.window_samples) / fe.window_samples)
    k = np.arange(n // 2 + 1)
    # 2^15 rather than 32767: no gain error but at +-1, which clip to 32767
    twiddle = _q15(np.stack([np.cos(2 * np.pi * k / n), np.sin(2 * np.pi * k / n)], axis=1), 32768.0)
    weights = _q15(mel_filterbank(fe))
    starts, lens, flat = [], [], []
    for row in weights:
        nz = np.flatnonzero(row)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 0)
        starts.append(lo), lens.append(hi - lo), flat.append(row[lo:hi])
    scale = 32767.0**3 * 2.0 ** (2 * (15 - WINDOW_SHIFT)) / 2.0 ** (POWER_SHIFT + 15)
    log_floor = max(1, round(fe.log_floor * scale))
    if log_floor >= 2**31:
        raise TinyeffError(f"log_floor {fe.log_floor} is too large for the fixed front end")
    i = np.arange(2**LOG_TABLE_BITS + 1)
    arrays = dict(
        window_q15=_q15(window), twiddle_q15=twiddle,
        mel_start=np.array(starts, np.uint16), mel_len=np.array(lens, np.uint16),
        mel_weights_q15=np.concatenate(flat).astype(np.int16),
        dct_q15=_q15(dct_matrix(fe.n_mfcc, fe.n_mels)) if fe.n_mfcc else np.zeros((0, fe.n_mels), np.int16),
        log2_table_q16=np.round(np.log2(1.0 + i / 2**LOG_TABLE_BITS) * 65536).astype(np.int32))
    for a in arrays.values():
        a.flags.writeable = False  # shared by the cache
    return FixedTables(**arrays, log_floor=log_floor, log_offset_q16=round(math.log(scale) * 65536))


def pcm16(signal: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (as audio.read_wav gives them) to int16: a 16-bit file's own samples."""
    return np.clip(np.round(np.asarray(signal, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _fft(re: np.ndarray, im: np.ndarray, tw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 3's complex FFT along the last axis of bit-reversed RE, IM (int64, M points)."""
    lead, m = re.shape[:-1], re.shape[-1]
    h = 1
    while h < m:
        k = np.arange(h) * (m // h)  # W_M^(j M / 2h) = W_N^(j M / h)
        c, s = tw[k, 0], tw[k, 1]
        r, i = re.reshape(*lead, m // (2 * h), 2, h), im.reshape(*lead, m // (2 * h), 2, h)
        a_re, a_im, b_re, b_im = r[..., 0, :], i[..., 0, :], r[..., 1, :], i[..., 1, :]
        t_re = (b_re * c + b_im * s + 2**14) >> 15
        t_im = (b_im * c - b_re * s + 2**14) >> 15
        re = np.stack([a_re + t_re, a_re - t_re], axis=-2).reshape(*lead, m)
        im = np.stack([a_im + t_im, a_im - t_im], axis=-2).reshape(*lead, m)
        h *= 2
    return re, im


def _ln_q16(v: np.ndarray, t: FixedTables) -> np.ndarray:
    """Step 6's natural log of V >= 1 (int64) in Q16, offset by log_offset_q16."""
    p = np.zeros_like(v)
    for s in (32, 16, 8, 4, 2, 1):
        p += np.where((v >> (p + s)) > 0, s, 0)
    m = np.where(p <= 30, v << np.maximum(30 - p, 0), v >> np.maximum(p - 30, 0))
    i = (m >> (30 - LOG_TABLE_BITS)) & (2**LOG_TABLE_BITS - 1)
    r = (m >> (14 - LOG_TABLE_BITS)) & 0xFFFF
    tab = t.log2_table_q16.astype(np.int64)
    log2 = (p << 16) + tab[i] + (((tab[i + 1] - tab[i]) * r + 2**15) >> 16)
    return ((log2 * LN2_Q30 + 2**29) >> 30) - t.log_offset_q16


def _frames_q16(frames: np.ndarray, fe: FrontEnd, t: FixedTables) -> np.ndarray:
    """Steps 2-7 for int64 FRAMES (..., window_samples) of samples."""
    n, m = fe.fft_size, fe.fft_size // 2
    x = np.zeros((*frames.shape[:-1], n), np.int64)
    x[..., : fe.window_samples] = (frames * t.window_q15.astype(np.int64) + 2 ** (WINDOW_SHIFT - 1)) >> WINDOW_SHIFT
    bits = m.bit_length() - 1
    rev = np.array([int(f"{j:0{bits}b}"[::-1], 2) if bits else 0 for j in range(m)])
    tw = t.twiddle_q15.astype(np.int64)
    z_re, z_im = _fft(x[..., 0::2][..., rev], x[..., 1::2][..., rev], tw)
    k = np.arange(m + 1)
    a_re, a_im = z_re[..., k % m], z_im[..., k % m]
    b_re, b_im = z_re[..., (m - k) % m], -z_im[..., (m - k) % m]
    e_re, e_im = a_re + b_re, a_im + b_im
    o_re, o_im = a_im - b_im, b_re - a_re
    c, s = tw[:, 0], tw[:, 1]
    x_re = (e_re * 2**15 + o_re * c + o_im * s + 2**15) >> 16
    x_im = (e_im * 2**15 + o_im * c - o_re * s + 2**15) >> 16
    power = (x_re * x_re + x_im * x_im) >> POWER_SHIFT
    fb = np.zeros((m + 1, fe.n_mels), np.int64)
    offset = 0
    for j, (lo, length) in enumerate(zip(t.mel_start.tolist(), t.mel_len.tolist())):
        fb[lo : lo + length, j] = t.mel_weights_q15[offset : offset + length]
        offset += length
    logmel = _ln_q16(((power @ fb) >> 15) + t.log_floor, t)
    if fe.n_mfcc == 0:
        return logmel.astype(np.int32)
    return ((logmel @ t.dct_q15.astype(np.int64).T + 2**14) >> 15).astype(np.int32)


def fixed_features_q16_batch(pcm: np.ndarray, fe: FrontEnd = FrontEnd()) -> np.ndarray:
    """(clips, n_frames, n_out) int32 Q16 features of int16 clips PCM (clips, samples), one at a time in C."""
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 2:
        raise ValueError("the fixed front end takes int16 PCM, one clip per row")
    n = min(pcm.shape[1], fe.clip_samples)
    index = (np.arange(fe.n_frames) * fe.hop_samples)[:, None] + np.arange(fe.window_samples)
    out = np.zeros((len(pcm), fe.n_frames, fe.n_mfcc or fe.n_mels), np.int32)
    for i in range(0, len(pcm), 64):  # the FFT's int64 temporaries take some 4 MB per clip
        clip = np.zeros((len(pcm[i : i + 64]), fe.clip_samples), np.int64)
        clip[:, :n] = pcm[i : i + 64, :n]
        out[i : i + 64] = _frames_q16(clip[:, index], fe, tables(fe))
    return out


def windows_q16(windows: np.ndarray, fe: FrontEnd = FrontEnd()) -> np.ndarray:
    """(n, n_out) int32 Q16 features of N frames given as int16 WINDOWS (n, window_samples): te_audio_frame on
    each, as a stream computes one row per hop."""
    windows = np.asarray(windows)
    if windows.dtype != np.int16 or windows.ndim != 2 or windows.shape[1] != fe.window_samples:
        raise ValueError(f"the fixed front end takes int16 windows of {fe.window_samples} samples, one per row")
    out = np.zeros((len(windows), fe.n_mfcc or fe.n_mels), np.int32)
    for i in range(0, len(windows), 2048):  # as fixed_features_q16_batch: bounded int64 temporaries
        out[i : i + 2048] = _frames_q16(windows[i : i + 2048].astype(np.int64), fe, tables(fe))
    return out


def q16_float(q16: np.ndarray) -> np.ndarray:
    """Q16 features as the float32 a model is trained on (exact: clipped where float32 stops holding integers)."""
    return np.clip(q16, -Q16_LIMIT, Q16_LIMIT).astype(np.float32) / np.float32(65536.0)


def fixed_features_q16(pcm: np.ndarray, fe: FrontEnd = FrontEnd()) -> np.ndarray:
    """(n_frames, n_mfcc or n_mels) int32 Q16 features of one int16 clip."""
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        raise ValueError("the fixed front end takes one clip of int16 PCM")
    return fixed_features_q16_batch(pcm[None], fe)[0]


def fixed_features(pcm: np.ndarray, fe: FrontEnd = FrontEnd()) -> np.ndarray:
    """The features as float32 (q16 / 65536, exact): what a model trained for the device sees."""
    return q16_float(fixed_features_q16(pcm, fe))
