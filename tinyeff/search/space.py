"""What a search may change, as Optuna suggestions: the architecture and how it is trained.

One trial draws a ``TrialPlan``: a ModelSpec (depth, per-layer widths, kernel size, where the
feature map is downsampled; for text also the projection's size, n-gram lengths, word pairs and token
count) and a TrainConfig (learning rate, epochs, dropout, augmentation, mixup, distillation
temperature and weight when a teacher is given), plus whether the int8 model gets
quantization-aware fine-tuning. ``smallest`` is the plan with the smallest footprint the space
can reach: an impossible budget is reported against it before any training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from tinyeff.data.dataset import Dataset
from tinyeff.models.projection_features import ProjectionConfig, tokenize
from tinyeff.models.spec import ModelSpec
from tinyeff.train.fit import TrainConfig

QAT_CHOICES = ("off", "always")
# The practitioner's recipes of Menghani (2021), section 5: search the model that fits directly;
# train a model (of any size) and shrink it into the budget, improving it back by distillation
# (footprint first); or grow the model, improve its quality with learning techniques (augmentation,
# mixup), then shrink it into the budget distilling from the grown one (quality first).
RECIPES = ("plain", "shrink-and-improve", "grow-improve-shrink")
# What the parameters of a trial mean: a study whose trials were drawn from another version of the
# space cannot be resumed or refit (2: text plans also draw min_ngram and pool; 3: and word_pairs).
SPACE_VERSION = 3


@dataclasses.dataclass(frozen=True)
class SpaceLimits:
    """The ranges searched; the defaults cover what fits microcontrollers of 2-64 KiB RAM."""

    max_depth: int = 4  # DS-CNN blocks after the stem; projection conv layers
    min_width: int = 4
    max_width: int = 64
    width_step: int = 4
    min_epochs: int = 20
    max_epochs: int = 100


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    spec: ModelSpec  # the model trained first: the one that must fit (plain), or the one shrunk into the budget
    train: TrainConfig
    qat: str  # "off" | "always"

    def describe(self) -> str:
        extra = f" kernel {self.spec.kernel}"
        if self.spec.projection:
            p = self.spec.projection
            extra += f" projection {p.describe()}, {self.spec.pool} pool"
        return f"{self.spec.describe()}{extra}"


def _downsampled_strides(input_shape: tuple[int, ...], n_layers: int, downsample: int) -> tuple[int, ...]:
    """Stride 2 at the first DOWNSAMPLE layers whose input is still at least 4 on both sides."""
    h, w = input_shape[0], input_shape[1]
    strides = []
    for _ in range(n_layers):
        if downsample and min(h, w) >= 4:
            strides.append(2)
            h, w, downsample = -(-h // 2), -(-w // 2), downsample - 1
        else:
            strides.append(1)
    return tuple(strides)


def _widths(trial, depth: int, limits: SpaceLimits) -> tuple[int, ...]:
    return tuple(trial.suggest_int(f"width{i}", limits.min_width, limits.max_width, step=limits.width_step) for i in range(depth))


def suggest(trial, data: Dataset, limits: SpaceLimits, *, teacher: ModelSpec | None, seed: int,
            recipe: str = "plain") -> TrialPlan:
    """The plan of TRIAL (an optuna.Trial) for DATA, distilled from a model of spec TEACHER if given.

    A teacher sees the student's input, so with a text teacher the projection is the teacher's.
    grow-improve-shrink widens every layer by a searched factor and always trains with
    augmentation and mixup (the "improve" of the recipe)."""
    if data.kind == "text":
        depth = trial.suggest_int("depth", 1, limits.max_depth)
        if teacher is not None:
            cfg = teacher.projection
        else:
            ngram = trial.suggest_int("ngram", 2, 4)
            # the shortest n-gram summed: equal to ngram is one length only, as the default model has
            cfg = ProjectionConfig(features=trial.suggest_int("features", 16, 128, step=16),
                                   max_tokens=trial.suggest_int("max_tokens", 8, 24, step=4), ngram=ngram,
                                   min_ngram=trial.suggest_int("min_ngram", 2, ngram),
                                   word_pairs=trial.suggest_categorical("word_pairs", [False, True]))
        spec = ModelSpec("projection", (1, cfg.max_tokens, cfg.features), data.n_classes, _widths(trial, depth, limits),
                         (1,) * depth, kernel=trial.suggest_categorical("kernel", [1, 3, 5]),
                         dropout=trial.suggest_float("dropout", 0.0, 0.4), projection=cfg,
                         pool=trial.suggest_categorical("pool", ["max", "avg"]))
    else:
        blocks = trial.suggest_int("depth", 1, limits.max_depth)
        n = blocks + 1  # the stem and the blocks
        spec = ModelSpec("dscnn", tuple(data.input_shape), data.n_classes, _widths(trial, n, limits),
                         _downsampled_strides(data.input_shape, n, trial.suggest_int("downsample", 0, 2)),
                         kernel=trial.suggest_categorical("kernel", [3, 5]),
                         dropout=trial.suggest_float("dropout", 0.0, 0.4))
    grow = recipe == "grow-improve-shrink"
    if grow:
        factor = trial.suggest_float("grow", 1.5, 3.0, step=0.25)
        spec = spec.with_widths(tuple(max(1, round(w * factor)) for w in spec.widths))
    train = TrainConfig(
        epochs=trial.suggest_int("epochs", limits.min_epochs, limits.max_epochs, step=10),
        learning_rate=trial.suggest_float("learning_rate", 5e-4, 1e-2, log=True),
        augment=True if grow else trial.suggest_categorical("augment", [True, False]),
        mixup_alpha=trial.suggest_categorical("mixup", [0.2, 0.4] if grow else [0.0, 0.2, 0.4]),
        temperature=trial.suggest_categorical("temperature", [1.0, 2.0, 4.0]) if teacher is not None else TrainConfig.temperature,
        alpha=trial.suggest_float("alpha", 0.1, 0.9) if teacher is not None else TrainConfig.alpha,
        seed=seed,
        restore_best=False,  # the trial's score is its last epoch's (see TrainConfig.restore_best)
    )
    return TrialPlan(spec, train, trial.suggest_categorical("qat", list(QAT_CHOICES)))


def smallest(data: Dataset, limits: SpaceLimits) -> ModelSpec:
    """The spec of the smallest footprint in the space: one layer (stem and one block for a DS-CNN)
    of the fewest channels, downsampled as far as the space allows, the smallest projection."""
    if data.kind == "text":
        cfg = ProjectionConfig(features=16, max_tokens=8, ngram=2)
        return ModelSpec("projection", (1, cfg.max_tokens, cfg.features), data.n_classes, (limits.min_width,), (1,),
                         kernel=1, projection=cfg)
    return ModelSpec("dscnn", tuple(data.input_shape), data.n_classes, (limits.min_width,) * 2,
                     _downsampled_strides(data.input_shape, 2, 2), kernel=3)


def baseline_like_plans(data: Dataset, limits: SpaceLimits) -> Iterator[dict]:
    """Text: the parameters of the projection model that mirrors the linear baseline's character
    features (byte 2-4-grams and word pairs summed per token, kernel 1, tokens averaged: a bag of
    n-grams before the classifier), two conv layers, from the widest the space allows down. The search enqueues
    the first that fits as its first trial, so TPE refines from the model nearest the baseline the
    search is measured against instead of hoping to draw it. Its tokens: the fewest of the space
    that hold 95 % of the training sentences whole."""
    if data.kind != "text":
        return
    counts = np.array([len(tokenize(str(t))) for t in data.x_train])
    tokens = next((n for n in range(8, 25, 4) if np.mean(counts <= n) >= 0.95), 24)
    grid = range(limits.min_width, limits.max_width + 1, limits.width_step)  # the widths suggest draws
    epochs = min(limits.max_epochs, limits.min_epochs + max(0, 40 - limits.min_epochs) // 10 * 10)  # ~40, on the grid
    depth = min(2, limits.max_depth)
    for width in reversed(grid):
        second = max(w for w in grid if w <= max(limits.min_width, width // 2))
        yield {"depth": depth, "ngram": 4, "min_ngram": 2, "word_pairs": True, "features": 128, "max_tokens": tokens, "width0": width,
               **({"width1": second} if depth == 2 else {}), "kernel": 1, "dropout": 0.1, "pool": "avg",
               "epochs": epochs, "learning_rate": TrainConfig.learning_rate, "augment": False, "mixup": 0.0, "qat": "off"}
