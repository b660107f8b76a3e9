"""The Dataset record shared by every stage, and its on-disk form in a run directory."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from tinyeff.errors import TinyeffError


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A fixed train/test split.

    For ``kind == "text"`` the x arrays hold strings (NumPy unicode arrays); otherwise
    float32 feature arrays of shape (n, height, width, channels).
    """

    name: str
    kind: str  # "image" | "audio" | "text"
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: tuple[str, ...]
    # How x was made, so the same front end can be rebuilt on a device (e.g. audio parameters).
    frontend: dict = dataclasses.field(default_factory=dict)
    # Empty for recorded data; else how the data was made ("spoken by espeak-ng 1.51"), carried into
    # every report of a model trained or benched on it
    synthetic: str = ""
    # What each training sample was made from (the template of a generated sentence), when samples of
    # one group are near copies: a validation slice must then hold out whole groups, as the test split does
    train_groups: np.ndarray | None = None
    # The test samples before the front end (16-bit PCM clips of a .wav folder), when a device can run
    # that front end itself: a bench then sends these and compares with what the host made of them
    raw_test: np.ndarray | None = None

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if len(x) != len(y):
                raise TinyeffError(
                    f"dataset '{self.name}' has {len(x)} {part} inputs but {len(y)} {part} labels; "
                    "give one label per input"
                )
            if len(x) == 0:
                raise TinyeffError(f"dataset '{self.name}' has no {part} samples; give at least one per class")
        if self.raw_test is not None and len(self.raw_test) != len(self.y_test):
            raise TinyeffError(f"dataset '{self.name}' has {len(self.raw_test)} raw test samples for {len(self.y_test)} "
                               "test samples; give one per sample")
        if self.train_groups is not None and len(self.train_groups) != len(self.y_train):
            raise TinyeffError(f"dataset '{self.name}' has {len(self.train_groups)} training groups for "
                               f"{len(self.y_train)} training samples; give one group per sample")
        n = len(self.labels)
        for part in ("train", "test"):
            y = getattr(self, f"y_{part}")
            if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= n:
                raise TinyeffError(
                    f"dataset '{self.name}' has {part} labels outside 0..{n - 1}; labels must be class indices"
                )

    @classmethod
    def from_split(cls, name: str, kind: str, x: np.ndarray, y: np.ndarray, split: tuple[np.ndarray, np.ndarray],
                   labels: tuple[str, ...], frontend: dict, synthetic: str = "", raw: np.ndarray | None = None) -> "Dataset":
        """A Dataset from all samples X, Y (and RAW, the samples before the front end) and (train, test) index arrays."""
        tr, te = split
        return cls(name=name, kind=kind, x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
                   labels=labels, frontend=frontend, synthetic=synthetic, raw_test=None if raw is None else raw[te])

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (text: empty, as its shape comes from the projection)."""
        return () if self.kind == "text" else tuple(self.x_train.shape[1:])

    def save(self, path: Path) -> None:
        """Write the split as .npz (strings stay unicode arrays, so no pickle is needed)."""
        np.savez_compressed(
            path,
            x_train=self.x_train,
            y_train=self.y_train,
            x_test=self.x_test,
            y_test=self.y_test,
            labels=np.array(self.labels),
            **({"train_groups": self.train_groups} if self.train_groups is not None else {}),
            **({"raw_test": self.raw_test} if self.raw_test is not None else {}),
            meta=np.array(json.dumps({"name": self.name, "kind": self.kind, "frontend": self.frontend,
                                      "synthetic": self.synthetic})),
        )

    @classmethod
    def load(cls, path: Path) -> "Dataset":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(
                name=meta["name"],
                kind=meta["kind"],
                x_train=z["x_train"],
                y_train=z["y_train"],
                x_test=z["x_test"],
                y_test=z["y_test"],
                labels=tuple(str(s) for s in z["labels"]),
                frontend=meta["frontend"],
                synthetic=meta.get("synthetic", ""),  # splits saved before the field read as recorded data
                train_groups=z["train_groups"] if "train_groups" in z.files else None,
                raw_test=z["raw_test"] if "raw_test" in z.files else None,
            )


def stratified_split(n_items: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified split of items whose class labels are N_ITEMS."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(n_items))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=n_items)
    return np.sort(tr), np.sort(te)


def group_split(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out) that hold out about FRACTION of each class's groups, whole, at least one
    group of every class that has two or more (a class of one group stays whole on the kept side)."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for c in np.unique(y):
        g = np.unique(groups[y == c])
        if len(g) >= 2:
            held.extend(rng.permutation(g)[: max(1, round(fraction * len(g)))].tolist())
    out = np.isin(groups, held)
    return np.flatnonzero(~out), np.flatnonzero(out)
