"""TFLM's micro frontend, the front end of its micro_speech example and of microWakeWord, as a third way
to turn audio into features: ``pymicro-features`` (PyPI) runs it on the host, and
firmware/frontend/te_micro.c repeats it bit-exactly on a device.

Its settings are those pymicro-features builds in: 16 kHz, 30 ms Hann windows every 10 ms, a 512-point
FFT, 40 channels from 125 to 7,500 Hz, noise reduction, PCAN gain control and a log scale; each frame is
40 uint16 values, given as value * 10 / 256 (exact in float32). Noise reduction and gain control carry
state from frame to frame: a clip is heard from a fresh state, as ``MicroFrontend()`` starts. A frame
needs a whole window, so a clip of ``clip_samples`` gives ``1 + (clip_samples - 480) // 160`` frames
(98 for 1 s).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tinyeff.data.audio import FrontEnd
from tinyeff.errors import TinyeffError

MICRO = FrontEnd(window_samples=480, hop_samples=160, fft_size=512, n_mels=40, n_mfcc=0, fmin_hz=125.0, fmax_hz=7500.0,
                 arithmetic="micro")
FEATURE_SCALE = 10.0 / 256.0  # what pymicro-features multiplies the uint16 features by
STATE_BYTES = 4924  # sizeof(te_micro_t) (tests/test_micro_c.py checks it): tables, window, FFT and carried state


def check_micro(fe: FrontEnd) -> None:
    """One sentence when FE asks the micro frontend for settings it does not have (only the clip's length may vary)."""
    if dataclasses.replace(fe, clip_samples=MICRO.clip_samples) != MICRO:
        raise TinyeffError("the micro frontend has fixed settings (16 kHz, 30 ms windows every 10 ms, 40 channels); "
                           "only the clip length can change")
    if fe.clip_samples < fe.window_samples:
        raise TinyeffError(f"a clip of {fe.clip_samples} samples is shorter than the micro frontend's 480-sample window")


def micro_features_u16(pcm: np.ndarray, fe: FrontEnd = MICRO) -> np.ndarray:
    """(n_frames, 40) uint16 features of one int16 clip, cut or zero-padded to clip_samples, from a fresh state."""
    check_micro(fe)
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError("the micro frontend takes one clip of int16 PCM")
    clip = np.zeros(fe.clip_samples, np.int16)
    clip[: min(len(pcm), fe.clip_samples)] = pcm[: fe.clip_samples]
    frames, made = micro_stream_u16(clip, fe)
    assert made.sum() == fe.n_frames, made.sum()  # one frame per hop from the third on
    return frames[made]


def u16_float(u16: np.ndarray) -> np.ndarray:
    """uint16 features as the float32 pymicro-features gives (value * 10 / 256, exact) and a model trains on."""
    return u16.astype(np.float32) * np.float32(FEATURE_SCALE)


def micro_features(pcm: np.ndarray, fe: FrontEnd = MICRO) -> np.ndarray:
    """The features of one clip as float32, as pymicro-features gives them."""
    return u16_float(micro_features_u16(pcm, fe))


def micro_stream_u16(pcm: np.ndarray, fe: FrontEnd = MICRO) -> tuple[np.ndarray, np.ndarray]:
    """The micro frontend on a stream of int16 PCM from a fresh state, never reset: (frames, made) where
    frames (hops, 40) uint16 holds the frame each whole hop made (zeros where none) and made (hops,) whether
    it made one."""
    from pymicro_features import MicroFrontend

    check_micro(fe)
    pcm = np.asarray(pcm, "<i2")
    hops = len(pcm) // fe.hop_samples
    frontend = MicroFrontend()
    frames, made = np.zeros((hops, fe.n_mels), np.uint16), np.zeros(hops, bool)
    for k in range(hops):
        out = frontend.process_samples(pcm[k * fe.hop_samples : (k + 1) * fe.hop_samples].tobytes())
        if out.features:
            frames[k] = np.rint(np.asarray(out.features, np.float64) / FEATURE_SCALE)
            made[k] = True
    return frames, made
