"""A NumPy audio front end (log-mel or MFCC) and loading a folder of .wav files per class.

The front end is written out step by step, with every parameter in ``FrontEnd``, so that the
same computation can be written in C for a device:

1. the clip is cut or zero-padded to ``clip_samples`` (1 s at 16 kHz by default);
2. frames of ``window_samples`` (40 ms) every ``hop_samples`` (20 ms), no padding at the ends,
   so 1 s gives 1 + (16000 - 640) // 320 = 49 frames;
3. each frame times a periodic Hann window, magnitude spectrum by an ``fft_size``-point real FFT;
4. power spectrum through ``n_mels`` triangular filters spaced on the HTK mel scale
   (mel = 2595 log10(1 + f/700)) from ``fmin_hz`` to ``fmax_hz``;
5. natural log of (mel energy + 1e-6);
6. for MFCC, an orthonormal DCT-II over the mel axis, keeping the first ``n_mfcc`` coefficients.

The defaults give the 49 x 10 MFCC input of the MLPerf Tiny keyword-spotting model. With
``arithmetic="fixed"`` the same steps run in integer arithmetic on the 16-bit samples
(``audio_fixed.py``): features within a few thousandths of these at speech levels, and bit-exact with
the firmware's C front end, so a model trained on them gets the very same int8 input on a device.
"""

from __future__ import annotations

import dataclasses
import json
import wave
from pathlib import Path

import numpy as np

from tinyeff.data.dataset import Dataset, stratified_split
from tinyeff.errors import TinyeffError


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    sample_rate_hz: int = 16000
    clip_samples: int = 16000
    window_samples: int = 640
    hop_samples: int = 320
    fft_size: int = 1024
    n_mels: int = 40
    fmin_hz: float = 20.0
    fmax_hz: float = 4000.0
    n_mfcc: int = 10  # 0 means log-mel features
    log_floor: float = 1e-6
    # "fixed": audio_fixed.py's integer MFCC / log-mel, which the firmware runs bit-exactly; "micro": TFLM's micro
    # frontend (audio_micro.py: pymicro-features, and te_micro.c on a device), whose settings are its own
    arithmetic: str = "float"

    @property
    def on_device(self) -> bool:
        """The firmware can run this front end bit-exactly, from the 16-bit samples a clip keeps."""
        return self.arithmetic in ("fixed", "micro")

    @property
    def n_frames(self) -> int:
        return 1 + (self.clip_samples - self.window_samples) // self.hop_samples


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(fe: FrontEnd) -> np.ndarray:
    """(n_mels, fft_size // 2 + 1) triangular filters, peak 1, on the HTK mel scale."""
    n_bins = fe.fft_size // 2 + 1
    bin_hz = np.arange(n_bins) * fe.sample_rate_hz / fe.fft_size
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(fe.fmin_hz)), _hz_to_mel(np.array(fe.fmax_hz)), fe.n_mels + 2))
    fb = np.zeros((fe.n_mels, n_bins))
    for m in range(fe.n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (bin_hz - lo) / (mid - lo)
        falling = (hi - bin_hz) / (hi - mid)
        fb[m] = np.clip(np.minimum(rising, falling), 0.0, None)
    return fb


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II as an (n_out, n_in) matrix."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    d = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    d[0] /= np.sqrt(2.0)
    return d


ARITHMETIC = ("float", "fixed", "micro")  # the front ends train --audio-frontend names


def features(signal: np.ndarray, fe: FrontEnd = FrontEnd()) -> np.ndarray:
    """(n_frames, n_mfcc or n_mels) float32 features of one mono clip of floats in [-1, 1]."""
    if fe.arithmetic == "fixed":
        from tinyeff.data.audio_fixed import fixed_features, pcm16

        return fixed_features(pcm16(signal), fe)
    if fe.arithmetic == "micro":
        from tinyeff.data.audio_fixed import pcm16
        from tinyeff.data.audio_micro import micro_features

        return micro_features(pcm16(signal), fe)
    x = np.zeros(fe.clip_samples, dtype=np.float64)
    n = min(len(signal), fe.clip_samples)
    x[:n] = signal[:n]
    starts = np.arange(fe.n_frames) * fe.hop_samples
    frames = np.stack([x[s : s + fe.window_samples] for s in starts])
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(fe.window_samples) / fe.window_samples)
    power = np.abs(np.fft.rfft(frames * window, n=fe.fft_size)) ** 2
    logmel = np.log(power @ mel_filterbank(fe).T + fe.log_floor)
    if fe.n_mfcc == 0:
        return logmel.astype(np.float32)
    return (logmel @ dct_matrix(fe.n_mfcc, fe.n_mels).T).astype(np.float32)


def _read_pcm(path: Path, expected_rate: int | None) -> tuple[np.ndarray, int]:
    """The samples of a mono PCM .wav file in their own integer type, and its rate."""
    if not Path(path).is_file():
        raise TinyeffError(f"'{path}' does not exist; check the path")
    try:
        with wave.open(str(path), "rb") as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise TinyeffError(f"'{path}' is not a readable PCM .wav file ({e}); convert it to 16-bit PCM") from None
    if expected_rate is not None and rate != expected_rate:
        raise TinyeffError(
            f"'{path}' is sampled at {rate} Hz but the front end expects {expected_rate} Hz; resample it first"
        )
    dtype = {1: np.uint8, 2: np.dtype("<i2"), 4: np.dtype("<i4")}.get(width)
    if dtype is None:
        raise TinyeffError(f"'{path}' has {8 * width}-bit samples; use 8, 16 or 32-bit PCM")
    if channels != 1:
        # a microphone on a device gives one channel, and which mix of several a model was meant to hear is the user's call
        raise TinyeffError(f"'{path}' has {channels} channels and the front end takes one; mix it down to mono first "
                           "(e.g. sox in.wav -c 1 out.wav)")
    return np.frombuffer(raw, dtype=dtype), rate


def read_wav(path: Path, expected_rate: int) -> np.ndarray:
    """Mono float samples in [-1, 1] from a 8/16/32-bit PCM .wav file."""
    a, _ = _read_pcm(path, expected_rate)
    a64 = a.astype(np.float64)
    return (a64 - 128.0) / 128.0 if a.dtype == np.uint8 else a64 / float(np.iinfo(a.dtype).max + 1)


def read_pcm16(path: Path, expected_rate: int | None = None) -> tuple[np.ndarray, int]:
    """The int16 samples of a 16-bit mono .wav file, as a device's microphone gives them, and its rate."""
    a, rate = _read_pcm(path, expected_rate)
    if a.dtype != np.dtype("<i2"):
        raise TinyeffError(f"'{path}' has {8 * a.dtype.itemsize}-bit samples and the device takes 16-bit PCM; "
                           "convert it (e.g. sox in.wav -b 16 out.wav)")
    return a.astype(np.int16), rate


def frontend_for(arithmetic: str) -> FrontEnd:
    """The front end train --audio-frontend ARITHMETIC names: float or fixed MFCC, or TFLM's micro frontend."""
    if arithmetic == "micro":
        from tinyeff.data.audio_micro import MICRO

        return MICRO
    if arithmetic not in ARITHMETIC:
        raise TinyeffError(f"no audio front end '{arithmetic}'; choose one of {', '.join(ARITHMETIC)}")
    return FrontEnd(arithmetic=arithmetic)


def load_wav_folder(root: Path, *, seed: int = 0, fe: FrontEnd = FrontEnd(), test_fraction: float = 0.25) -> Dataset:
    """ROOT/<class>/*.wav turned into front-end features, split stratified by class."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [(c, f) for c in classes for f in sorted((root / c).glob("*.wav"))]
    if len(classes) < 2 or not files:
        raise TinyeffError(f"'{root}' must hold one sub-folder of .wav files per class, at least two classes")
    raw = None
    if fe.on_device:  # keep the 16-bit clips a bench will send the device
        pcm = [read_pcm16(f, fe.sample_rate_hz)[0][: fe.clip_samples] for _, f in files]
        clips = [p / 32768.0 for p in pcm]
        raw = np.zeros((len(clips), fe.clip_samples), np.int16)
        for i, p in enumerate(pcm):
            raw[i, : len(p)] = p
    else:
        clips = [read_wav(f, fe.sample_rate_hz) for _, f in files]
    x = np.stack([features(c, fe) for c in clips])[..., None]
    y = np.array([classes.index(c) for c, _ in files], dtype=np.int32)
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        raise TinyeffError(
            f"class '{classes[int(counts.argmin())]}' in '{root}' has fewer than 2 .wav files; give at least 2 per class"
        )
    return Dataset.from_split(root.name, "audio", x, y, stratified_split(y, test_fraction, seed), tuple(classes),
                              {"type": "mfcc" if fe.n_mfcc else "logmel", **dataclasses.asdict(fe)},
                              synthetic=folder_synthetic(root), raw=raw)


def folder_synthetic(root: Path) -> str:
    """How a .wav folder's speech was made when a generator says so in ROOT/tinyeff-dataset.json
    ('tinyeff data tts' writes it); empty for recordings."""
    try:
        manifest = json.loads((root / "tinyeff-dataset.json").read_text())
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as e:
        raise TinyeffError(f"'{root / 'tinyeff-dataset.json'}' is not readable JSON ({e}); remake the dataset or remove the file") from None
    if not manifest.get("synthetic"):
        return ""
    return f"spoken by {manifest.get('generator', 'a speech synthesizer')}"
