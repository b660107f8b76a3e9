"""Choosing the searched model by k-fold cross-validation among the trials the validation slice ranks best.

Trials are ranked on one validation slice of the training split: cheap enough for every trial,
but on grouped data the slice holds a quarter of each class's templates, a few dozen in all,
and which templates land there moves a trial's score by more than the plans differ (German
intents: the chosen trial scored 87.9 % on its slice and ended 1 point below the linear baseline
on the test templates). So the plans of the best few trials that fit are each trained again K
times, each time holding out one of K folds of the training split (whole groups, every class's
groups dealt over the folds) and scoring the int8 model on it; the plan right on the most
held-out samples is the one exported. Every sample is held out exactly once, so the choice
rests on the whole training split instead of a quarter of it.

The fold scores are kept in the study (user attributes of the study: a finished trial cannot
take more), so a search run again, or another worker's report, does not train them again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

FOLDS = 3
CV_ATTR = "cv_trial_"  # + trial number: the study attribute holding that trial's fold scores


def folds(y: np.ndarray, groups: np.ndarray | None, k: int, seed: int) -> list[np.ndarray]:
    """K disjoint index sets that cover Y: each class's groups (each sample its own group when GROUPS
    is None) in a seeded order dealt over the folds in turn, so every fold holds whole groups of
    every class that has at least K of them."""
    if groups is None:
        groups = np.arange(len(y))
    rng = np.random.default_rng(seed)
    fold_of_group: dict = {}
    for c in np.unique(y):
        for i, g in enumerate(rng.permutation(np.unique(groups[y == c]))):
            fold_of_group[(c, g)] = i % k
    fold = np.array([fold_of_group[(c, g)] for c, g in zip(y.tolist(), groups.tolist())])
    return [np.flatnonzero(fold == f) for f in range(k)]


@dataclasses.dataclass(frozen=True)
class FoldScore:
    number: int  # the trial
    right: int  # held-out samples the K int8 models got right, over all folds
    samples: int
    fold_accuracies: tuple[float, ...]

    @property
    def accuracy(self) -> float:
        return self.right / self.samples

    def to_json(self) -> dict:
        return {"right": self.right, "samples": self.samples, "fold_accuracies": list(self.fold_accuracies)}

    @classmethod
    def from_json(cls, number: int, d: dict) -> FoldScore:
        return cls(number, d["right"], d["samples"], tuple(d["fold_accuracies"]))


def stored(study) -> dict[int, FoldScore]:
    """The fold scores the study holds, by trial number."""
    return {int(k[len(CV_ATTR):]): FoldScore.from_json(int(k[len(CV_ATTR):]), v)
            for k, v in study.user_attrs.items() if k.startswith(CV_ATTR)}


def choose(study, candidates: list, objective, *, k: int = FOLDS, seed: int = 0,
           progress: Callable[[str], None] = lambda line: None) -> tuple[object, list[FoldScore]]:
    """The trial of CANDIDATES (TrialRows, best validation first) whose plan is right on the most
    held-out samples over K folds of the training split, and every candidate's score. Ties keep the
    validation slice's order."""
    data = objective.data
    parts = folds(data.y_train, data.train_groups, k, seed)
    have = stored(study)
    scores = []
    for row in candidates:
        score = have.get(row.number)
        if score is None or len(score.fold_accuracies) != k:
            progress(f"cross-validating trial {row.number} on {k} folds of the training split")
            accuracies = tuple(objective.fold_accuracy(study.trials[row.number].params, held) for held in parts)
            right = int(sum(round(a * len(held)) for a, held in zip(accuracies, parts)))
            score = FoldScore(row.number, right, len(data.y_train), accuracies)
            study.set_user_attr(f"{CV_ATTR}{row.number}", score.to_json())
        scores.append(score)
    best = max(range(len(candidates)), key=lambda i: (scores[i].right, -i))
    return candidates[best], scores
