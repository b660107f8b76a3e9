"""A keyword spotter on a stream: the steps a wake word runs, defined here and repeated by firmware/frontend/te_stream.c.

The firmware hears audio hop by hop. Its front end turns each hop into a new row of int8 features,
quantized as the model's input: the integer MFCC of ``data/audio_fixed.py`` from the last window of
samples (zeros before the stream began), one row every hop; or TFLM's micro frontend
(``data/audio_micro.py``), which carries its state from hop to hop and makes its first row once its
window has filled. The stream keeps the last ``n_frames`` rows (those of silence before the stream
began: ``silence_row``) and every ``every`` hops runs the model on them. A keyword is reported when its output, summed
over the last ``average`` inferences as ``output - zero_point``, reaches ``threshold_q`` (the averaged
probability ``threshold`` in the output's units); the next report comes ``refractory`` hops later at the
earliest. Every step is integer or the front end's own quantization, so this host simulation, on host
TFLM, gives the very outputs and reports the device gives: that equality is what ``tinyeff bench
--stream`` checks.

``score`` judges the reports against the truth of a recording (``data/recording.py``): a report of the
right keyword while it is spoken or within ``tolerance_s`` after (the model's window still holds the
word) is a hit, and each keyword is hit once; every other report is a false accept.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tinyeff.data.audio import FrontEnd
from tinyeff.errors import TinyeffError

INFER_EVERY_S = 0.1   # a new answer ten times a second
AVERAGE = 3           # over the last three answers (0.3 s)
THRESHOLD = 0.6       # averaged probability of a keyword that reports it
REFRACTORY_S = 1.0    # one report per spoken word: a clip is 1 s long


def is_keyword(label: str) -> bool:
    """A class a stream reports: not one written like ``_unknown_`` or ``_silence_`` (the Speech Commands
    convention the kit's data follows)."""
    return not (label.startswith("_") and label.endswith("_"))


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    every: int            # hops between inferences
    average: int          # inferences averaged
    threshold: float      # averaged probability that reports a keyword
    threshold_q: int      # the same in the device's units: sum of (output - zero point) over AVERAGE outputs
    refractory: int       # hops from a report to the earliest next one
    keywords: tuple[int, ...]  # the classes that are reported
    labels: tuple[str, ...]    # every class's name, in the model's output order
    output_zero_point: int

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "keywords": list(self.keywords), "labels": list(self.labels)}

    @classmethod
    def from_json(cls, d: dict) -> "StreamSettings":
        return cls(**{**d, "keywords": tuple(d["keywords"]), "labels": tuple(d["labels"])})


def stream_settings(fe: FrontEnd, labels: list[str], output_scale: float, output_zero_point: int, *,
                    every_s: float = INFER_EVERY_S, average: int = AVERAGE, threshold: float = THRESHOLD,
                    refractory_s: float = REFRACTORY_S) -> StreamSettings:
    """The settings for a model whose outputs are LABELS' probabilities; the keywords are those is_keyword names."""
    keywords = tuple(i for i, name in enumerate(labels) if is_keyword(name))
    if not keywords:
        raise TinyeffError(f"the classes {labels} hold no keyword (every one is written _like_this_); a stream reports keywords")
    if not 0.0 < threshold <= 1.0 or average < 1:
        raise TinyeffError("a stream needs a threshold in (0, 1] and at least one inference to average")
    hop_s = fe.hop_samples / fe.sample_rate_hz
    settings = StreamSettings(
        every=max(1, round(every_s / hop_s)), average=average, threshold=threshold, threshold_q=0,
        refractory=max(0, round(refractory_s / hop_s)), keywords=keywords, labels=tuple(labels),
        output_zero_point=output_zero_point)
    return with_threshold(settings, threshold, output_scale)


@dataclasses.dataclass(frozen=True)
class StreamRun:
    """What a stream did: the model's int8 outputs at every inference and the reports (hops heard, class)."""

    hops: int
    every: int
    outputs: np.ndarray  # (inferences, classes) int8; inference i after hop (i + 1) * every
    detections: tuple[tuple[int, int], ...]

    def detection_times(self, fe: FrontEnd) -> list[tuple[float, int]]:
        """Each report's time in the recording (the end of the hop that made it), with its class."""
        return [(hops * fe.hop_samples / fe.sample_rate_hz, c) for hops, c in self.detections]


def hops_in(pcm: np.ndarray, fe: FrontEnd) -> int:
    """Whole hops in PCM: a stream reports on whole hops, and the device takes them whole."""
    return len(pcm) // fe.hop_samples


def stream_rows(pcm: np.ndarray, fe: FrontEnd, input_scale: float, input_zero_point: int) -> tuple[np.ndarray, np.ndarray]:
    """The front end on a stream of int16 PCM, hop by hop: (rows, made), rows (hops, n_out) int8 the row each
    whole hop made and made (hops,) whether it made one (the micro frontend makes none while its first window
    fills; the integer MFCC keeps the window itself, zeros before the stream, and makes one every hop)."""
    from tinyeff.compress.quantize import quantize_input

    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise TinyeffError("a stream is one channel of 16-bit PCM")
    hops, w, h = hops_in(pcm, fe), fe.window_samples, fe.hop_samples
    if fe.arithmetic == "micro":
        from tinyeff.data.audio_micro import micro_stream_u16, u16_float

        u16, made = micro_stream_u16(pcm[: hops * h], fe)
        return quantize_input(u16_float(u16), input_scale, input_zero_point), made
    from tinyeff.data.audio_fixed import q16_float, windows_q16

    padded = np.concatenate([np.zeros(w, np.int16), pcm[: hops * h]])
    ends = w + (np.arange(hops) + 1) * h  # hop k's window ends where the hop does
    windows = padded[ends[:, None] - w + np.arange(w)]
    return quantize_input(q16_float(windows_q16(windows, fe)), input_scale, input_zero_point), np.ones(hops, bool)


def silence_row(fe: FrontEnd, input_scale: float, input_zero_point: int) -> np.ndarray:
    """The row a stream's feature rows all hold before it hears anything: the features of a window of zeros
    (integer MFCC), or features of 0 (the micro frontend, which makes no row of its own for silence)."""
    from tinyeff.compress.quantize import quantize_input

    if fe.arithmetic == "micro":
        return np.full(fe.n_mels, input_zero_point, np.int8)
    from tinyeff.data.audio_fixed import q16_float, windows_q16

    return quantize_input(q16_float(windows_q16(np.zeros((1, fe.window_samples), np.int16), fe)), input_scale,
                          input_zero_point)[0]


def stream_inputs(pcm: np.ndarray, fe: FrontEnd, input_scale: float, input_zero_point: int,
                  settings: StreamSettings) -> np.ndarray:
    """(inferences, n_frames, n_out) int8: the model's input at each inference of the stream."""
    rows, made = stream_rows(pcm, fe, input_scale, input_zero_point)
    features = np.repeat(silence_row(fe, input_scale, input_zero_point)[None], fe.n_frames, axis=0)
    inputs = []
    for k in range(len(rows)):
        if made[k]:
            features = np.concatenate([features[1:], rows[k : k + 1]])
        if (k + 1) % settings.every == 0:
            inputs.append(features)
    return np.stack(inputs) if inputs else np.zeros((0, fe.n_frames, rows.shape[1] if rows.ndim == 2 else 0), np.int8)


def detections(outputs: np.ndarray, hops: int, settings: StreamSettings) -> tuple[tuple[int, int], ...]:
    """The reports te_stream_posterior makes for the int8 OUTPUTS of a stream of HOPS hops."""
    history = np.full((settings.average, outputs.shape[1] if outputs.ndim == 2 else 0), settings.output_zero_point,
                      np.int64)
    reported, quiet, inference = [], 0, 0
    for heard in range(1, hops + 1):
        quiet = max(0, quiet - 1)
        if heard % settings.every:
            continue
        history[inference % settings.average] = outputs[inference]
        inference += 1
        scores = (history - settings.output_zero_point).sum(axis=0)
        best = max(settings.keywords, key=lambda c: (scores[c], -c))  # the first of the highest, as in C
        if quiet == 0 and scores[best] >= settings.threshold_q:
            reported.append((heard, int(best)))
            quiet = settings.refractory
    return tuple(reported)


def with_threshold(settings: StreamSettings, threshold: float, output_scale: float) -> StreamSettings:
    """SETTINGS reporting at another averaged probability (the device's outputs stay what they were)."""
    return dataclasses.replace(settings, threshold=threshold,
                               threshold_q=math.ceil(threshold * settings.average / output_scale - 1e-9))


def simulate(model: bytes, pcm: np.ndarray, fe: FrontEnd, input_scale: float, input_zero_point: int,
             settings: StreamSettings) -> StreamRun:
    """The stream of int16 PCM as the device runs it, with host TFLM as the model."""
    from tinyeff.reference import tflm_outputs

    inputs = stream_inputs(pcm, fe, input_scale, input_zero_point, settings)
    hops = hops_in(np.asarray(pcm), fe)
    outputs = tflm_outputs(model, inputs[..., None]).reshape(len(inputs), -1) if len(inputs) else np.zeros((0, 0), np.int8)
    return StreamRun(hops, settings.every, outputs.astype(np.int8), detections(outputs, hops, settings))


@dataclasses.dataclass(frozen=True)
class Event:
    """A word spoken in a recording, from START_S to END_S; KEYWORD when a stream should report it."""

    label: str
    start_s: float
    end_s: float
    keyword: bool

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class StreamScore:
    keywords: int            # keywords spoken
    hits: int                # ... reported while spoken or within the tolerance after
    false_accepts: int       # every other report, of which:
    on_other_words: int      #   while another word was spoken (an unknown word, another keyword)
    repeats: int             #   a keyword reported again
    in_noise: int            #   with no word near
    seconds: float
    latencies_s: tuple[float, ...]  # each hit's report time after its word ended

    @property
    def false_accepts_per_hour(self) -> float:
        return self.false_accepts * 3600.0 / self.seconds if self.seconds else 0.0

    @property
    def recall(self) -> float:
        return self.hits / self.keywords if self.keywords else 0.0

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "latencies_s": list(self.latencies_s), "recall": self.recall,
                "false_accepts_per_hour": self.false_accepts_per_hour}


def score(reports: list[tuple[float, str]], events: list[Event], seconds: float, tolerance_s: float = 1.0) -> StreamScore:
    """REPORTS (time, label) against the EVENTS of a recording of SECONDS."""
    hit: set[int] = set()
    latencies: list[float] = []
    kinds = {"on_other_words": 0, "repeats": 0, "in_noise": 0}
    for t, label in reports:
        near = [i for i, e in enumerate(events) if e.start_s <= t <= e.end_s + tolerance_s]
        match = next((i for i in near if events[i].keyword and events[i].label == label and i not in hit), None)
        if match is not None:
            hit.add(match)
            latencies.append(round(t - events[match].end_s, 6))
        elif any(events[i].label == label for i in near):
            kinds["repeats"] += 1
        else:
            kinds["on_other_words" if near else "in_noise"] += 1
    return StreamScore(sum(e.keyword for e in events), len(hit), sum(kinds.values()), **kinds, seconds=seconds,
                       latencies_s=tuple(latencies))
