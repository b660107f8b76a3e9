"""ModelSpec: the architecture as data, so pruning can rebuild a narrower copy of a model."""

from __future__ import annotations

import dataclasses
import json

from tinyeff.errors import TinyeffError
from tinyeff.models.projection_features import ProjectionConfig

KINDS = ("dscnn", "projection")
POOLS = ("max", "avg")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A chain of prunable layers. ``widths[i]`` is the output channel count of ``prunable[i]``."""

    kind: str
    input_shape: tuple[int, ...]
    n_classes: int
    widths: tuple[int, ...]
    strides: tuple[int, ...]
    kernel: int = 3
    dropout: float = 0.1
    projection: ProjectionConfig | None = None
    # How a projection model pools its token rows: max (the default model) or average, which sums
    # evidence over tokens as a bag-of-n-grams classifier does (a DS-CNN always averages).
    pool: str = "max"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TinyeffError(f"unknown model kind '{self.kind}'; choose one of {', '.join(KINDS)}")
        if self.pool not in POOLS:
            raise TinyeffError(f"unknown pooling '{self.pool}'; choose one of {', '.join(POOLS)}")
        if len(self.widths) != len(self.strides) or not self.widths:
            raise TinyeffError("a model needs as many strides as widths, and at least one layer")
        if self.kernel < 1:
            raise TinyeffError(f"a kernel covers at least one position, got {self.kernel}; give a kernel size of 1 or more")
        if min(self.widths) < 1:
            raise TinyeffError(f"every layer needs at least one channel, got widths {list(self.widths)}")

    @property
    def prunable(self) -> tuple[str, ...]:
        """Names of the layers whose output channels pruning may remove, in order."""
        if self.kind == "dscnn":
            return ("stem",) + tuple(f"b{i}_pw" for i in range(1, len(self.widths)))
        return tuple(f"conv{i}" for i in range(1, len(self.widths) + 1))

    def with_widths(self, widths: tuple[int, ...]) -> "ModelSpec":
        return dataclasses.replace(self, widths=tuple(int(w) for w in widths))

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["projection"] = dataclasses.asdict(self.projection) if self.projection else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ModelSpec":
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        d["widths"] = tuple(d["widths"])
        d["strides"] = tuple(d["strides"])
        d["projection"] = ProjectionConfig(**d["projection"]) if d.get("projection") else None
        return cls(**d)

    def describe(self) -> str:
        return f"{self.kind} widths={list(self.widths)}"

    def __str__(self) -> str:  # for logs
        return json.dumps(self.to_json())
