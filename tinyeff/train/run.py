"""A run directory: the float model, its spec and training config, the data split and metrics.

Layout: ``config.json`` (tinyeff version, data, model spec, training config), ``model.keras``
(float, logits out), ``split.npz`` (the exact train/test data), ``metrics.json``, and whatever
later stages add (``model.int8.tflite``). Runs are written to a temporary sibling directory
and renamed into place at the end, so a failure leaves no partial run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from tinyeff import __version__
from tinyeff._native import tensorflow
from tinyeff.data.dataset import Dataset
from tinyeff.errors import TinyeffError
from tinyeff.models.projection_features import project
from tinyeff.models.spec import ModelSpec
from tinyeff.train.fit import TrainConfig

CONFIG = "config.json"
MODEL = "model.keras"
SPLIT = "split.npz"
METRICS = "metrics.json"
INT8 = "model.int8.tflite"


def features_of(spec: ModelSpec, x: np.ndarray) -> np.ndarray:
    """The network input for raw samples X: the projection for text, the samples themselves otherwise."""
    return project(x, spec.projection) if spec.kind == "projection" else x


@dataclasses.dataclass(frozen=True)
class Run:
    path: Path
    spec: ModelSpec
    train: TrainConfig
    data: Dataset
    config: dict

    @classmethod
    def load(cls, path: Path) -> "Run":
        path = Path(path)
        if not (path / CONFIG).is_file() or not (path / MODEL).is_file() or not (path / SPLIT).is_file():
            raise TinyeffError(f"'{path}' is not a tinyeff run directory; create one with 'tinyeff train'")
        config = json.loads((path / CONFIG).read_text())
        return cls(
            path=path,
            spec=ModelSpec.from_json(config["model"]),
            train=TrainConfig(**config["train"]),
            data=Dataset.load(path / SPLIT),
            config=config,
        )

    def keras_model(self):
        tensorflow()
        import keras

        return keras.models.load_model(self.path / MODEL, compile=False)

    def metrics(self) -> dict:
        p = self.path / METRICS
        return json.loads(p.read_text()) if p.exists() else {}


def save_run(tmp: Path, *, spec: ModelSpec, train: TrainConfig, data: Dataset, data_source: dict, model, metrics: dict) -> None:
    """Write the files of a run into TMP (a directory from write_run)."""
    model.save(tmp / MODEL)
    data.save(tmp / SPLIT)
    config = {
        "tinyeff_version": __version__,
        "data": data_source,
        "model": spec.to_json(),
        "train": dataclasses.asdict(train),
    }
    (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (tmp / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
