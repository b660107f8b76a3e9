"""A long recording with words at known times, made from a run's raw test clips, to bench a stream on.

The clips are the run's test split (never trained on), laid one after another into low noise with a random
gap between them: keyword clips make the events a stream should report, ``_unknown_`` clips the words it
should not, ``_silence_`` clips are left out (the noise between words is silence enough). A word's time is
where its clip is loud: from the first to the last 10 ms frame within 20 dB of the clip's loudest. The
truth goes into a JSON file beside the .wav: ``{"sample_rate_hz", "seconds", "synthetic", "events":
[{"label", "start_s", "end_s", "keyword"}]}``; ``read_recording`` reads both back.
"""

from __future__ import annotations

import dataclasses
import io
import json
import wave
from pathlib import Path

import numpy as np

from tinyeff.atomic import replace_file
from tinyeff.errors import TinyeffError
from tinyeff.stream import Event, is_keyword

NOISE_DBFS = -60.0
GAP_S = (0.4, 1.6)
ACTIVE_DB = 20.0


@dataclasses.dataclass(frozen=True)
class Recording:
    pcm: np.ndarray  # int16
    sample_rate_hz: int
    events: tuple[Event, ...]
    synthetic: str = ""

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.sample_rate_hz


def _word_span(clip: np.ndarray, rate: int) -> tuple[int, int]:
    """Samples [start, end) of the loud part of CLIP (10 ms frames within ACTIVE_DB of its loudest)."""
    frame = max(1, rate // 100)
    n = len(clip) // frame
    energy = (clip[: n * frame].astype(np.float64).reshape(n, frame) ** 2).mean(axis=1)
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (-ACTIVE_DB / 10)) if n and energy.max() > 0 else np.array([0])
    return int(loud[0]) * frame, (int(loud[-1]) + 1) * frame


def make_recording(clips: np.ndarray, labels: np.ndarray, names: list[str], seconds: float, rate: int, seed: int = 0,
                   synthetic: str = "") -> Recording:
    """About SECONDS of CLIPS (int16, one per row, of class LABELS) in noise, in a seeded random order."""
    clips, labels = np.asarray(clips), np.asarray(labels)
    if clips.dtype != np.int16 or clips.ndim != 2:
        raise TinyeffError("a recording is made of int16 clips; train the run with --audio-frontend fixed or micro, which keep them")
    usable = [i for i, y in enumerate(labels) if names[y] != "_silence_"]
    if not usable:
        raise TinyeffError("the run's test split holds no spoken clip to make a recording of")
    rng = np.random.default_rng(seed)
    total = int(seconds * rate)
    pcm = rng.normal(0.0, 32768.0 * 10 ** (NOISE_DBFS / 20), total + clips.shape[1])
    events, at, order = [], int(rate * GAP_S[0]), []
    while at + clips.shape[1] <= total:
        if not order:
            order = list(rng.permutation(usable))
        i = order.pop()
        pcm[at : at + clips.shape[1]] += clips[i]
        start, end = _word_span(clips[i], rate)
        name = names[labels[i]]
        events.append(Event(name, (at + start) / rate, (at + end) / rate, is_keyword(name)))
        at += clips.shape[1] + int(rate * rng.uniform(*GAP_S))
    return Recording(np.clip(np.round(pcm[:total]), -32768, 32767).astype(np.int16), rate, tuple(events), synthetic)


def write_recording(rec: Recording, path: Path) -> Path:
    """REC as a 16-bit mono .wav at PATH and its truth beside it (PATH with .json); returns the JSON's path."""
    path = Path(path)
    if path.suffix != ".wav":
        raise TinyeffError(f"'{path}' does not end in .wav; name the recording something.wav")
    truth = path.with_suffix(".json")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rec.sample_rate_hz)
        w.writeframes(rec.pcm.astype("<i2").tobytes())
    replace_file(path, buf.getvalue())
    replace_file(truth, json.dumps({"sample_rate_hz": rec.sample_rate_hz, "seconds": rec.seconds, "synthetic": rec.synthetic,
                                    "events": [e.to_json() for e in rec.events]}, indent=1) + "\n")
    return truth


def read_recording(path: Path) -> Recording:
    """The recording at PATH (16-bit mono .wav) with the truth beside it (PATH with .json)."""
    from tinyeff.data.audio import read_pcm16

    path, truth = Path(path), Path(path).with_suffix(".json")
    pcm, rate = read_pcm16(path)
    if not truth.is_file():
        raise TinyeffError(f"'{path}' has no '{truth.name}' beside it saying when each word is spoken; make one as "
                           "tinyeff data recording does ({\"events\": [{\"label\", \"start_s\", \"end_s\", \"keyword\"}]})")
    try:
        d = json.loads(truth.read_text())
        events = tuple(Event(str(e["label"]), float(e["start_s"]), float(e["end_s"]), bool(e["keyword"])) for e in d["events"])
    except (ValueError, KeyError, TypeError) as e:
        raise TinyeffError(f"cannot read the truth of '{path}' from '{truth}' ({e}); "
                           "it needs events with label, start_s, end_s and keyword") from None
    return Recording(pcm, rate, events, str(d.get("synthetic", "")))
