"""A synthetic keyword-spotting dataset spoken by espeak-ng, in the ``.wav`` folder layout
``load_wav_folder`` reads: OUT/<keyword>/*.wav, OUT/_unknown_/*.wav (other English words) and
OUT/_silence_/*.wav (noise only), 16-bit PCM mono, exactly one clip length each.

Nothing is downloaded: espeak-ng is a Debian package that ``make setup`` installs. Its speech is
formant-synthesized, not recorded, so a model trained on it is a pipeline check rather than a
product; OUT/tinyeff-dataset.json says ``"synthetic": true`` so every later report can say so.

Every clip draws its voice, speed, pitch, level, time shift, noise colour and SNR from its own
generator seeded by (seed, class name, clip index): the same settings give the same bytes, and
adding a keyword leaves the clips of the other classes as they were.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import wave
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinyeff.atomic import write_run
from tinyeff.errors import TinyeffError

UNKNOWN = "_unknown_"
SILENCE = "_silence_"
MANIFEST = "tinyeff-dataset.json"

# Words for _unknown_: Speech Commands' auxiliary words, everyday words, and near misses of common
# keywords (yet/yes, know/no, cup/up, town/down, light/right, often/off), which teach a model
# what a keyword is *not*. None of Speech Commands' ten keywords or digits are here, since those
# are what people pick as keywords.
UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "tree", "wow", "learn", "follow",
    "yet", "know", "cup", "town", "light", "often", "forward", "backward", "visual", "apple",
    "window", "river", "yellow", "table", "garden", "music", "paper", "orange", "water", "money",
    "morning", "coffee", "pencil", "monkey", "night", "stuff", "goal", "lift", "write", "dawn",
)

# Checked against Debian 12's espeak-ng 1.51 (`espeak-ng --voices=en`, `--voices=variant`): six
# English accents and, on top of some, variants that change the formants (f = female, m = male);
# mbrola voices are left out, they need the separate mbrola package.
VOICES = (
    "en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc",
    "en-us+f2", "en-us+f4", "en-gb+f3", "en-gb+m3", "en+m5", "en-029+f5",
)

_KEYWORD = re.compile(r"[A-Za-z]+(?:['\- ][A-Za-z]+)*")
_NOISE_TILT = (0.0, 2.0)  # spectral slope of the noise, 1/f^a: white (0) to brown (2)
_NOISE_CORNER_HZ = 100.0  # where the slope starts


@dataclasses.dataclass(frozen=True)
class TtsSettings:
    """What the generator varies and within which ranges (each range is (low, high), inclusive)."""

    keywords: tuple[str, ...]
    unknown_words: tuple[str, ...] = UNKNOWN_WORDS[:20]
    clips_per_class: int = 100
    voices: tuple[str, ...] = VOICES
    speed_wpm: tuple[int, int] = (120, 210)  # espeak-ng's default is 175 words per minute
    pitch: tuple[int, int] = (25, 75)  # espeak-ng's 0-99 scale, default 50
    peak: tuple[float, float] = (0.25, 0.9)  # the word's peak before noise, of full scale
    snr_db: tuple[float, float] = (5.0, 30.0)  # word power over noise power
    silence_dbfs: tuple[float, float] = (-60.0, -35.0)  # RMS of the _silence_ clips
    shift_s: tuple[float, float] = (-0.15, 0.15)  # the word's offset from the clip's centre
    sample_rate_hz: int = 16000
    clip_s: float = 1.0
    seed: int = 0

    @property
    def clip_samples(self) -> int:
        return round(self.clip_s * self.sample_rate_hz)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.keywords + ((UNKNOWN,) if self.unknown_words else ()) + (SILENCE,)


@dataclasses.dataclass(frozen=True)
class TtsSummary:
    """What ``synthesize`` wrote."""

    out: Path
    generator: str  # "espeak-ng 1.51"
    clips: dict[str, int]  # clips per class, in TtsSettings.classes order
    bytes: int  # of all the .wav files

    @property
    def total(self) -> int:
        return sum(self.clips.values())


def unknown_words(n: int, keywords: tuple[str, ...]) -> tuple[str, ...]:
    """The first N words of UNKNOWN_WORDS that are not keywords (a keyword can never be 'unknown')."""
    taken = {k.lower() for k in keywords}
    pool = tuple(w for w in UNKNOWN_WORDS if w not in taken)
    if not 0 <= n <= len(pool):
        raise TinyeffError(f"--unknown {n} is out of range; give 0 to {len(pool)} other words")
    return pool[:n]


def synthesize(settings: TtsSettings, out: Path, *, force: bool = False, jobs: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> TtsSummary:
    """Write the dataset to OUT (whole or not at all), JOBS clips at a time (default: one per CPU)."""
    _check(settings)
    exe, version, data_dir = _espeak()
    _check_voices(exe, data_dir, settings.voices)
    words = {k: (k,) for k in settings.keywords} | {UNKNOWN: settings.unknown_words}
    todo = [(label, i) for label in settings.classes for i in range(settings.clips_per_class)]
    size = 0
    with write_run(Path(out), force=force) as tmp, tempfile.TemporaryDirectory() as scratch:
        for label in settings.classes:
            (tmp / label).mkdir()

        def make(job: tuple[str, int]) -> Path:
            label, i = job
            clip = _clip(settings, label, words.get(label, ()), i, exe, Path(scratch) / f"{label}-{i}.wav")
            _write_wav(tmp / label / f"{i:04d}.wav", clip, settings.sample_rate_hz)
            return tmp / label / f"{i:04d}.wav"

        # Most of the time is espeak-ng's start-up, so clips are made JOBS at a time; each clip has
        # its own seeded generator, so the order they finish in changes no byte.
        pool = concurrent.futures.ThreadPoolExecutor(max(1, jobs or os.cpu_count() or 1))
        try:
            for done, path in enumerate(pool.map(make, todo), 1):
                size += path.stat().st_size
                if progress:
                    progress(done, len(todo))
        finally:
            pool.shutdown(cancel_futures=True)  # on an error or Ctrl-C, start no more espeak-ng
        counts = {label: settings.clips_per_class for label in settings.classes}
        manifest = {"synthetic": True, "generator": f"espeak-ng {version}", "settings": dataclasses.asdict(settings),
                    "classes": counts, "format": "16-bit PCM mono .wav"}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return TtsSummary(Path(out), f"espeak-ng {version}", counts, size)


# ---------------------------------------------------------------- checks


def _check(s: TtsSettings) -> None:
    if not s.keywords:
        raise TinyeffError("no keywords given; name at least one, e.g. --keywords yes,no")
    for k in s.keywords:
        if not _KEYWORD.fullmatch(k):
            # also keeps espeak-ng from reading a word as an option and the class folder name plain
            raise TinyeffError(f"keyword '{k}' is not a word; use letters (with ' - or a space between words)")
    if len({k.lower() for k in s.keywords}) < len(s.keywords):
        raise TinyeffError(f"keywords {', '.join(s.keywords)} repeat one; give each keyword once")
    both = sorted({k.lower() for k in s.keywords} & {w.lower() for w in s.unknown_words})
    if both:
        raise TinyeffError(f"'{both[0]}' is both a keyword and an unknown word; drop it from one of the two lists")
    if s.clips_per_class < 2:
        raise TinyeffError(f"{s.clips_per_class} clips per class is too few to split for training; give --clips 2 or more")
    if not s.voices:
        raise TinyeffError("no voices given; name at least one espeak-ng voice, e.g. en-us")
    if s.seed < 0:
        raise TinyeffError(f"seed {s.seed} is negative; give a seed of 0 or more")
    if s.sample_rate_hz <= 0 or s.clip_samples <= 0:
        raise TinyeffError("the sample rate and clip length must be positive; e.g. 16000 Hz and 1 s")
    for field in ("speed_wpm", "pitch", "peak", "snr_db", "silence_dbfs", "shift_s"):
        lo, hi = getattr(s, field)
        if lo > hi:
            raise TinyeffError(f"the {field} range ({lo}, {hi}) runs backwards; give (low, high)")


def _espeak() -> tuple[str, str, Path]:
    """espeak-ng's path, version and voice data directory, from its --version line."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise TinyeffError("espeak-ng is not installed; install it with 'apt-get install espeak-ng' (make setup does)")
    line = subprocess.run([exe, "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    m = re.search(r"text-to-speech:\s*(\S+)\s+Data at:\s*(.+)", line)
    if m is None:
        raise TinyeffError(f"'{exe} --version' printed {line.strip()!r}, not espeak-ng's version; reinstall espeak-ng")
    return exe, m.group(1), Path(m.group(2).strip())


def _check_voices(exe: str, data_dir: Path, voices: tuple[str, ...]) -> None:
    # espeak-ng falls back without a word from an unlisted dialect (en-xx) to its language and from
    # an unknown variant to none, so a typo would quietly give fewer voices than the settings say:
    # the base must be listed (a language, one of its other languages, or a file) and the variant
    # a file espeak-ng would load
    listing = subprocess.run([exe, "--voices"], capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    rows = [line.split() for line in listing.splitlines()[1:]]
    listed = ({r[1].lower() for r in rows if len(r) >= 5} | {r[4] for r in rows if len(r) >= 5}
              | set(re.findall(r"\(([\w-]+) \d+\)", listing)))  # "Other Languages": (en 2)
    for voice in voices:
        base, _, variant = voice.partition("+")
        # listed is not enough: mbrola voices are listed but need the mbrola package, and fail
        known = (base.lower() in listed or base in listed) and subprocess.run(
            [exe, "-q", "-v", base, "x"], capture_output=True, stdin=subprocess.DEVNULL).returncode == 0
        if known and variant:
            known = (data_dir / "voices" / "!v" / variant).is_file()
        if not known:
            raise TinyeffError(f"espeak-ng has no voice '{voice}'; pick one of 'espeak-ng --voices=en', "
                               "optionally +VARIANT from 'espeak-ng --voices=variant' (e.g. en-us+f3)")


# ---------------------------------------------------------------- audio


def _clip(s: TtsSettings, label: str, words: tuple[str, ...], i: int, exe: str, scratch: Path) -> np.ndarray:
    """Clip I of class LABEL as floats in [-1, 1]: a word at a random place in noise, or noise alone."""
    # crc32, not hash(): Python salts str hashes per process, which would break determinism
    rng = np.random.default_rng([s.seed, zlib.crc32(label.encode()), i])
    n = s.clip_samples
    noise = _noise(rng, n, s.sample_rate_hz)
    if label == SILENCE:
        return noise * 10 ** (rng.uniform(*s.silence_dbfs) / 20)
    word = words[i % len(words)]  # unknown words in turn, so each gets its share of clips
    voice = s.voices[rng.integers(len(s.voices))]
    speed = int(rng.integers(s.speed_wpm[0], s.speed_wpm[1] + 1))
    pitch = int(rng.integers(s.pitch[0], s.pitch[1] + 1))
    speech = _trim(_speak(exe, word, voice, speed, pitch, scratch, s.sample_rate_hz))
    speech *= rng.uniform(*s.peak) / np.abs(speech).max()
    clip = _place(speech, n, round(rng.uniform(*s.shift_s) * s.sample_rate_hz))
    # SNR against the power of the word itself, not of the clip, so a short word gets as clean
    # a signal as a long one
    clip += noise * math.sqrt(np.mean(speech**2) / 10 ** (rng.uniform(*s.snr_db) / 10))
    peak = np.abs(clip).max()
    return clip * (0.99 / peak) if peak > 0.99 else clip


def _speak(exe: str, word: str, voice: str, speed: int, pitch: int, wav: Path, rate_hz: int) -> np.ndarray:
    # a file rather than --stdout: on a pipe espeak-ng cannot go back to fill in the header's sizes
    r = subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), word],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise TinyeffError(f"espeak-ng failed to say '{word}' with voice {voice} ({r.stderr.strip() or r.returncode}); "
                           f"check that 'espeak-ng -v {voice} {word}' works")
    with wave.open(str(wav), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    if width != 2 or channels != 1:
        raise TinyeffError(f"espeak-ng wrote {channels}-channel {8 * width}-bit audio, not 16-bit mono; reinstall espeak-ng")
    x = np.frombuffer(raw, dtype="<i2") / 32768.0
    if not np.any(x):
        raise TinyeffError(f"espeak-ng said nothing for '{word}' with voice {voice}; check that it is an English word")
    return resample(x, rate, rate_hz)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """X resampled by its spectrum: cut (or zero-extended) at the lower of the two Nyquist frequencies.

    Band-limited, so nothing above the new Nyquist folds back as aliasing; the last 5 % of the kept
    band is tapered with a raised cosine, which keeps the ringing of a brick-wall cut short.
    """
    if rate_in == rate_out:
        return x.astype(np.float64)
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    # The FFT treats the signal as periodic: zeros on both sides keep one end's ringing from
    # wrapping onto the other. Whole multiples of DOWN keep the output grid on the input's.
    pad = down * math.ceil(1024 / down)
    n_in = down * math.ceil((len(x) + 2 * pad) / down)
    n_out = n_in // down * up
    spec = np.fft.rfft(np.pad(x, (pad, n_in - len(x) - pad)))
    keep = min(len(spec), n_out // 2 + 1)
    taper = np.ones(keep)
    edge = max(1, keep // 20)
    taper[-edge:] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(edge) + 1) / edge)
    out = np.zeros(n_out // 2 + 1, dtype=complex)
    out[:keep] = spec[:keep] * taper
    y = np.fft.irfft(out, n_out) * (n_out / n_in)
    start = pad // down * up
    return y[start : start + math.ceil(len(x) * up / down)]


def _trim(x: np.ndarray) -> np.ndarray:
    """The word without espeak-ng's leading and trailing silence (below 2 % of its peak)."""
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    return x[loud[0] : loud[-1] + 1].copy()


def _place(speech: np.ndarray, n: int, shift: int) -> np.ndarray:
    """SPEECH in N samples, SHIFT samples off centre but whole when it fits; else its middle N samples."""
    clip = np.zeros(n)
    if len(speech) >= n:
        cut = (len(speech) - n) // 2
        clip[:] = speech[cut : cut + n]
        return clip
    # a keyword cut in half would be a wrong label, so the shift stops at the clip's edges
    start = min(max((n - len(speech)) // 2 + shift, 0), n - len(speech))
    clip[start : start + len(speech)] = speech
    return clip


def _noise(rng: np.random.Generator, n: int, rate_hz: int) -> np.ndarray:
    """N samples of unit-RMS noise with a random 1/f^a colour: rooms hum and rumble, they are rarely white."""
    spec = np.fft.rfft(rng.standard_normal(n))
    # flat below the corner: a slope down to 1 Hz would put most of the power in a drift the front
    # end (20 Hz up) never sees, and the SNR would be higher than it says
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / rate_hz), _NOISE_CORNER_HZ) / _NOISE_CORNER_HZ
    x = np.fft.irfft(spec * f ** (-rng.uniform(*_NOISE_TILT) / 2), n)
    x -= x.mean()
    return x / np.sqrt(np.mean(x**2))


def _write_wav(path: Path, x: np.ndarray, rate_hz: int) -> None:
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(pcm.tobytes())
