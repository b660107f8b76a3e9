"""The text front end a generated project can carry, so the device takes a sentence, not a tensor.

A projection model is trained on ``tinyeff/models/projection_features.py``'s projection of each
sentence, quantized as the model's int8 input. ``firmware/frontend/te_projection.c`` is the same
projection in C, bit-exact; with ``tinyeff generate --frontend RUN`` the firmware runs it on UTF-8
the host sends (``te-text-put`` / ``te-text-run``, te_protocol.h) straight into the model's input,
one token row at a time, and times it apart from the model. What the project needs for it - the
projection's settings, which only the run that trained the model knows, and the input's
quantization, which the model holds - is written into ``src/tinyeff_frontend.h``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from tinyeff.errors import TinyeffError
from tinyeff.model_io import IoTensor
from tinyeff.models.projection_features import ProjectionConfig

# The longest sentence the device takes; the intents' longest test sentences are under 120 bytes.
TEXT_MAX_BYTES = 256
FILES = ("frontend/te_projection.c", "frontend/te_projection.h")
HEADER = "tinyeff_frontend.h"


@dataclasses.dataclass(frozen=True)
class TextFrontend:
    projection: ProjectionConfig
    input_scale: float  # the model input's quantization, which the front end's output takes
    input_zero_point: int
    max_bytes: int = TEXT_MAX_BYTES

    @property
    def ram_bytes(self) -> int:
        """What the front end adds to the firmware's RAM: the text buffer and one int16 token row."""
        return self.max_bytes + 2 * self.projection.features

    def to_json(self) -> dict:
        return {"type": "text", **dataclasses.asdict(self.projection), "max_text_bytes": self.max_bytes,
                "input_scale": self.input_scale, "input_zero_point": self.input_zero_point, "ram_bytes": self.ram_bytes}

    @classmethod
    def from_json(cls, d: dict) -> "TextFrontend":
        return cls(ProjectionConfig(d["features"], d["max_tokens"], d["ngram"]), d["input_scale"], d["input_zero_point"],
                   d["max_text_bytes"])

    def header(self, banner: str) -> str:
        p = self.projection
        # the scale as float32 with 9 significant digits: the C float is then the very float32 the host divides by
        scale = f"{float(np.float32(self.input_scale)):.9g}"
        return "\n".join([
            f"/* {banner} */",
            "/* The text front end's settings: the projection the model was trained on (tinyeff/models/projection_features.py)",
            " * and the quantization of the model's input it writes. */",
            "#ifndef TINYEFF_FRONTEND_H",
            "#define TINYEFF_FRONTEND_H",
            f"#define TE_TEXT_FEATURES {p.features}",
            f"#define TE_TEXT_MAX_TOKENS {p.max_tokens}",
            f"#define TE_TEXT_NGRAM {p.ngram}",
            f"#define TE_TEXT_MAX_BYTES {self.max_bytes}u",
            f"#define TE_TEXT_INPUT_SCALE {scale}f",
            f"#define TE_TEXT_INPUT_ZERO_POINT ({self.input_zero_point})",
            "#endif",
            "",
        ])


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


def text_frontend(run_dir: Path, inputs: tuple[IoTensor, ...], model_name: str) -> TextFrontend:
    """The front end of RUN_DIR's projection for a model with INPUTS, checked to be the input it feeds."""
    cfg = projection_of(run_dir)
    want = (1, cfg.max_tokens, cfg.features)
    if len(inputs) != 1 or inputs[0].dtype != "int8" or inputs[0].sample_shape != want:
        got = ", ".join(f"{t.dtype} {list(t.sample_shape)}" for t in inputs)
        raise TinyeffError(f"'{model_name}' takes {got}, but the projection of '{run_dir}' makes int8 {list(want)}; give --frontend "
                           "the run the model was trained in")
    return TextFrontend(cfg, inputs[0].scale, inputs[0].zero_point)


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
