"""The front end a generated project can carry, so the device takes the raw sample, not a tensor.

Three front ends, each defined by the Python the model was trained on and repeated in C bit-exactly:
the text projection (``tinyeff/models/projection_features.py``, ``firmware/frontend/te_projection.c``)
for projection models, the integer MFCC / log-mel (``tinyeff/data/audio_fixed.py``,
``firmware/frontend/te_audio.c``) for models trained with ``train --audio-frontend fixed`` (with a
keyword stream, ``te_stream.c``, for keyword classifiers), and TFLM's micro frontend
(``tinyeff/data/audio_micro.py`` on pymicro-features, ``firmware/frontend/te_micro.c``) for models
trained with ``--audio-frontend micro``. With
``tinyeff generate --frontend RUN`` the firmware takes raw bytes (UTF-8, or 16-bit little-endian PCM)
through ``te-raw-put`` / ``te-raw-run`` (te_protocol.h), runs the front end straight into the model's
int8 input and times it apart from the model. What the project needs for it - the front end's
settings and tables, which only the run knows, and the input's quantization, which the model holds -
is written into ``src/tinyeff_frontend.h``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from tinyeff.data.audio import FrontEnd
from tinyeff.errors import TinyeffError
from tinyeff.model_io import IoTensor
from tinyeff.models.projection_features import ProjectionConfig
from tinyeff.stream import StreamSettings, is_keyword, stream_settings

# The longest sentence the device takes; the intents' longest test sentences are under 120 bytes.
TEXT_MAX_BYTES = 256
HEADER = "tinyeff_frontend.h"


def _c_array(ctype: str, name: str, values) -> str:
    flat = [int(v) for v in np.asarray(values).reshape(-1)] or [0]  # C has no empty arrays
    rows = [", ".join(map(str, flat[i : i + 16])) for i in range(0, len(flat), 16)]
    return f"static const {ctype} {name}[{len(flat)}] = {{\n  " + ",\n  ".join(rows) + "\n};"


def _guarded(banner: str, lines: list[str]) -> str:
    return "\n".join([f"/* {banner} */", "#ifndef TINYEFF_FRONTEND_H", "#define TINYEFF_FRONTEND_H", *lines, "#endif", ""])


def _scale_literal(scale: float) -> str:
    # float32 with 9 significant digits: the C float is then the very float32 the host divides by
    return f"{float(np.float32(scale)):.9g}f"


@dataclasses.dataclass(frozen=True)
class TextFrontend:
    projection: ProjectionConfig
    input_scale: float  # the model input's quantization, which the front end's output takes
    input_zero_point: int
    max_bytes: int = TEXT_MAX_BYTES
    files = ("frontend/te_projection.c", "frontend/te_projection.h", "frontend/te_quantize.h")
    raw_input = "UTF-8 text"

    @property
    def ram_bytes(self) -> int:
        """What the front end adds to the firmware's RAM: the text buffer and one int16 token row."""
        return self.max_bytes + 2 * self.projection.features

    def to_json(self) -> dict:
        return {"type": "text", **dataclasses.asdict(self.projection), "max_raw_bytes": self.max_bytes,
                "input_scale": self.input_scale, "input_zero_point": self.input_zero_point, "ram_bytes": self.ram_bytes}

    def header(self, banner: str) -> str:
        p = self.projection
        return _guarded(banner, [
            "/* The text front end: the projection the model was trained on (tinyeff/models/projection_features.py)",
            " * and the quantization of the model's input it writes. */",
            '#include "te_projection.h"',
            "#define TE_TEXT_FRONTEND 1",
            f"#define TE_RAW_MAX_BYTES {self.max_bytes}u",
            f"#define TE_TEXT_FEATURES {p.features}",
            f"#define TE_TEXT_MAX_TOKENS {p.max_tokens}",
            f"#define TE_TEXT_NGRAM {p.ngram}",
            f"#define TE_TEXT_MIN_NGRAM {p.min_ngram}",
            f"#define TE_TEXT_WORD_PAIRS {int(p.word_pairs)}",
            f"#define TE_INPUT_SCALE {_scale_literal(self.input_scale)}",
            f"#define TE_INPUT_ZERO_POINT ({self.input_zero_point})",
        ])

    def raw(self, sample) -> bytes:
        return text_bytes(str(sample), self.max_bytes)


@dataclasses.dataclass(frozen=True)
class _Audio:
    """What the two audio front ends share: 16-bit PCM in, a clip or a keyword stream of it. Each says what
    RAM it takes itself beside the clip buffer (work_bytes) and which files carry it (own_files)."""

    fe: FrontEnd
    input_scale: float  # the model input's quantization, which the front end's output takes
    input_zero_point: int
    stream: StreamSettings | None = None  # a classifier of keywords also spots them in a stream (tinyeff/stream.py)
    raw_input = "16-bit PCM"
    own_files: ClassVar[tuple[str, ...]] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return self.own_files + (("frontend/te_stream.c", "frontend/te_stream.h") if self.stream else ())

    @property
    def max_bytes(self) -> int:
        return 2 * self.fe.clip_samples

    @property
    def stream_window_bytes(self) -> int:
        """Samples the device keeps for a stream's front end, beside what work_bytes holds."""
        return 0

    @property
    def stream_state_bytes(self) -> int:
        """te_stream_bytes: the feature rows and the averaged outputs."""
        fe, st = self.fe, self.stream
        return fe.n_frames * (fe.n_mfcc or fe.n_mels) + st.average * st.n_classes if st else 0

    @property
    def stream_bytes(self) -> int:
        """A stream's state, its front end's window and newest row, and the last push's outputs and reports the
        device keeps to answer a repeated request."""
        if not self.stream:
            return 0
        return (self.stream_state_bytes + self.stream_window_bytes + (self.fe.n_mfcc or self.fe.n_mels)
                + self.stream_max_inferences * (self.stream.n_classes + 5))

    @property
    def stream_max_inferences(self) -> int:
        """Inferences one push of a full raw buffer can ask for."""
        return -(-(self.max_bytes // (2 * self.fe.hop_samples)) // self.stream.every) if self.stream else 0

    @property
    def ram_bytes(self) -> int:
        """The clip buffer, the front end's own RAM and a stream's state."""
        return self.max_bytes + self.work_bytes + self.stream_bytes

    def to_json(self) -> dict:
        return {"type": "audio", **dataclasses.asdict(self.fe), "max_raw_bytes": self.max_bytes,
                "input_scale": self.input_scale, "input_zero_point": self.input_zero_point, "ram_bytes": self.ram_bytes,
                **({"stream": self.stream.to_json()} if self.stream else {})}

    def _stream_lines(self) -> list[str]:
        st, fe = self.stream, self.fe
        if not st:
            return []
        return [
            f"/* The keyword stream (tinyeff/stream.py): a model every {st.every} hops, outputs averaged over {st.average},",
            f" * a keyword reported at an averaged probability of {st.threshold}, the next {st.refractory} hops later at the earliest. */",
            '#include "te_stream.h"',
            "#define TE_STREAM 1",
            f"#define TE_STREAM_HOP_SAMPLES {fe.hop_samples}u",
            f"#define TE_STREAM_WINDOW_SAMPLES {fe.window_samples}u",
            f"#define TE_STREAM_N_OUT {fe.n_mfcc or fe.n_mels}u",
            f"#define TE_STREAM_CLASSES {st.n_classes}",
            f"#define TE_STREAM_STATE_BYTES {self.stream_state_bytes}u",
            f"#define TE_STREAM_MAX_INFERENCES {self.stream_max_inferences}u",
            _c_array("uint8_t", "te_stream_keyword", [int(c in st.keywords) for c in range(st.n_classes)]),
            "static const te_stream_config_t te_stream_config = {",
            f"  {fe.n_frames}, TE_STREAM_N_OUT, {st.every}, {st.average}, {st.threshold_q}, {st.refractory}, TE_STREAM_CLASSES,",
            f"  te_stream_keyword, {st.output_zero_point}}};",
        ]

    def raw(self, sample) -> bytes:
        """One clip of the run's raw test split (int16 samples) as the little-endian bytes the device takes."""
        return np.asarray(sample, "<i2").tobytes()


@dataclasses.dataclass(frozen=True)
class AudioFrontend(_Audio):
    """The integer MFCC / log-mel (tinyeff/data/audio_fixed.py, firmware/frontend/te_audio.c) of models trained
    with ``train --audio-frontend fixed``."""

    own_files: ClassVar[tuple[str, ...]] = ("frontend/te_audio.c", "frontend/te_audio.h", "frontend/te_quantize.h")

    @property
    def work_bytes(self) -> int:
        """te_audio_int8's scratch (te_audio_work_bytes)."""
        n_out = self.fe.n_mfcc or self.fe.n_mels
        return 4 * (self.fe.fft_size + 2 + (self.fe.n_mels if self.fe.n_mfcc else 0) + n_out)

    @property
    def stream_window_bytes(self) -> int:
        return 2 * self.fe.window_samples

    def header(self, banner: str) -> str:
        from tinyeff.data.audio_fixed import tables

        fe, t = self.fe, tables(self.fe)
        dct = "te_audio_dct_q15" if fe.n_mfcc else "NULL"
        return _guarded(banner, [
            "/* The audio front end: the integer MFCC / log-mel the model was trained on (tinyeff/data/audio_fixed.py,",
            f" * {fe.sample_rate_hz} Hz), its tables as that module makes them, and the quantization of the model's input. */",
            '#include "te_audio.h"',
            "#define TE_AUDIO_FRONTEND 1",
            f"#define TE_RAW_MAX_BYTES {self.max_bytes}u",
            f"#define TE_AUDIO_WORK_BYTES {self.work_bytes}u",
            f"#define TE_INPUT_SCALE {_scale_literal(self.input_scale)}",
            f"#define TE_INPUT_ZERO_POINT ({self.input_zero_point})",
            _c_array("int16_t", "te_audio_window_q15", t.window_q15),
            _c_array("int16_t", "te_audio_twiddle_q15", t.twiddle_q15),
            _c_array("uint16_t", "te_audio_mel_start", t.mel_start),
            _c_array("uint16_t", "te_audio_mel_len", t.mel_len),
            _c_array("int16_t", "te_audio_mel_weights_q15", t.mel_weights_q15),
            _c_array("int16_t", "te_audio_dct_q15", t.dct_q15),
            _c_array("int32_t", "te_audio_log2_table_q16", t.log2_table_q16),
            "static const te_audio_t te_audio_config = {",
            f"  {fe.clip_samples}, {fe.window_samples}, {fe.hop_samples}, {fe.fft_size}, {fe.n_mels}, {fe.n_mfcc},",
            "  te_audio_window_q15, te_audio_twiddle_q15, te_audio_mel_start, te_audio_mel_len, te_audio_mel_weights_q15,",
            f"  {dct}, te_audio_log2_table_q16, {t.log_floor}, {t.log_offset_q16}}};",
            *self._stream_lines(),
        ])


@dataclasses.dataclass(frozen=True)
class MicroFrontend(_Audio):
    """TFLM's micro frontend (tinyeff/data/audio_micro.py, firmware/frontend/te_micro.c) of models trained with
    ``train --audio-frontend micro``: its settings are fixed, only the clip length comes from the run. It keeps
    its own window and the noise and gain state it carries from hop to hop."""

    own_files: ClassVar[tuple[str, ...]] = ("frontend/te_micro.c", "frontend/te_micro.h", "frontend/te_quantize.h")

    @property
    def work_bytes(self) -> int:
        """te_micro_t: its tables, window, FFT scratch and the state it carries."""
        from tinyeff.data.audio_micro import STATE_BYTES

        return STATE_BYTES

    def header(self, banner: str) -> str:
        return _guarded(banner, [
            "/* TFLM's micro frontend, as pymicro-features runs it (tinyeff/data/audio_micro.py), and the quantization",
            " * of the model's input it writes. */",
            '#include "te_micro.h"',
            "#define TE_MICRO_FRONTEND 1",
            f"#define TE_RAW_MAX_BYTES {self.max_bytes}u",
            f"#define TE_MICRO_CLIP_SAMPLES {self.fe.clip_samples}",
            f"#define TE_INPUT_SCALE {_scale_literal(self.input_scale)}",
            f"#define TE_INPUT_ZERO_POINT ({self.input_zero_point})",
            *self._stream_lines(),
        ])


def frontend_from_json(d: dict) -> "TextFrontend | AudioFrontend | MicroFrontend":
    if d["type"] == "audio":
        keys = {f.name for f in dataclasses.fields(FrontEnd)}
        stream = StreamSettings.from_json(d["stream"]) if d.get("stream") else None
        make = MicroFrontend if d.get("arithmetic") == "micro" else AudioFrontend
        return make(FrontEnd(**{k: v for k, v in d.items() if k in keys}), d["input_scale"], d["input_zero_point"], stream)
    return TextFrontend(ProjectionConfig(d["features"], d["max_tokens"], d["ngram"], d.get("min_ngram", 0),
                                         d.get("word_pairs", False)), d["input_scale"], d["input_zero_point"],
                        d["max_raw_bytes"])


def audio_frontend_of(run_dir: Path) -> FrontEnd | None:
    """The audio front end a run's data went through, when its split says (None for other data)."""
    from tinyeff.data.dataset import Dataset

    split = Path(run_dir) / "split.npz"
    if not split.is_file():
        return None
    d = Dataset.load(split).frontend
    if d.get("type") not in ("mfcc", "logmel"):
        return None
    keys = {f.name for f in dataclasses.fields(FrontEnd)}
    return FrontEnd(**{k: v for k, v in d.items() if k in keys})


def projection_of(run_dir: Path) -> ProjectionConfig:
    """The projection a run trained its model on: a run of train or shrink (config.json), or a search (search.json)."""
    run_dir = Path(run_dir)
    for name, spec_of in (("config.json", lambda c: c.get("model")), ("search.json", lambda c: (c.get("best") or {}).get("spec"))):
        path = run_dir / name
        if path.is_file():
            spec = spec_of(json.loads(path.read_text()))
            if not spec or not spec.get("projection"):
                raise TinyeffError(f"the model of '{run_dir}' is not a text projection model, and only those have a front end "
                                   "in the firmware; generate without --frontend")
            return ProjectionConfig(**spec["projection"])
    raise TinyeffError(f"'{run_dir}' is not a tinyeff run or search directory (no config.json or search.json); give --frontend "
                       "the directory 'tinyeff train', 'shrink' or 'search' wrote the model into")


def frontend_of(run_dir: Path, inputs: tuple[IoTensor, ...], outputs: tuple[IoTensor, ...],
                model_name: str) -> "TextFrontend | AudioFrontend | MicroFrontend":
    """The front end of the run in RUN_DIR for a model with INPUTS, checked to make the input it feeds. An
    audio model with one int8 output per class of the run (OUTPUTS) also gets the keyword stream."""
    run_dir = Path(run_dir)
    fe = audio_frontend_of(run_dir)
    if fe is not None:
        if not fe.on_device:
            raise TinyeffError(f"'{run_dir}' was trained on the float audio front end, which a device cannot repeat bit-exactly; "
                               "train it again with --audio-frontend fixed (or micro)")
        want, make = (fe.n_frames, fe.n_mfcc or fe.n_mels, 1), MicroFrontend if fe.arithmetic == "micro" else AudioFrontend
        what = f"the audio front end of '{run_dir}'"
    else:
        cfg = projection_of(run_dir)
        want, make, fe = (1, cfg.max_tokens, cfg.features), TextFrontend, cfg
        what = f"the projection of '{run_dir}'"
    if len(inputs) != 1 or inputs[0].dtype != "int8" or inputs[0].sample_shape != want:
        got = ", ".join(f"{t.dtype} {list(t.sample_shape)}" for t in inputs)
        raise TinyeffError(f"'{model_name}' takes {got}, but {what} makes int8 {list(want)}; the front end "
                           "must come from the run the model was trained in")
    if make is not TextFrontend:
        return make(fe, inputs[0].scale, inputs[0].zero_point, _stream_of(run_dir, fe, outputs))
    return make(fe, inputs[0].scale, inputs[0].zero_point)


def _stream_of(run_dir: Path, fe: FrontEnd, outputs: tuple[IoTensor, ...]) -> StreamSettings | None:
    """The keyword stream for a classifier whose one int8 output holds a probability per class of the run."""
    from tinyeff.data.dataset import Dataset

    labels = list(Dataset.load(Path(run_dir) / "split.npz").labels)
    if len(outputs) != 1 or outputs[0].dtype != "int8" or int(np.prod(outputs[0].sample_shape)) != len(labels):
        return None
    if not any(map(is_keyword, labels)):
        return None
    return stream_settings(fe, labels, outputs[0].scale, outputs[0].zero_point)


def text_bytes(text: str, max_bytes: int = TEXT_MAX_BYTES) -> bytes:
    """TEXT as the UTF-8 the device takes, or a one-sentence error for what it would refuse."""
    if not isinstance(text, str):
        raise TinyeffError(f"a text front end takes strings, not {type(text).__name__}; decode the bytes as UTF-8 first")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates from a decode with errors='surrogateescape'
        raise TinyeffError(f"the text {text[:40]!r} is not valid Unicode at character {e.start}; fix or drop it") from None
    if not data:
        raise TinyeffError("an empty text has no tokens for the model; drop it from the data")
    if len(data) > max_bytes:
        raise TinyeffError(f"the text {text[:40]!r}... is {len(data)} bytes of UTF-8, and the device's buffer holds {max_bytes}; "
                           "shorten it")
    return data
