"""User datasets stored as .npz arrays or as a text,label CSV."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from tinyeff.data.dataset import Dataset, stratified_split
from tinyeff.errors import TinyeffError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: Path) -> Dataset:
    """x_train, y_train, x_test, y_test (and optional labels) from a .npz file."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise TinyeffError(f"'{path}' is not a readable .npz file ({e}); save it with numpy.savez") from None
    with z:
        missing = [k for k in NPZ_KEYS if k not in z.files]
        if missing:
            raise TinyeffError(f"'{path}' lacks the arrays {', '.join(missing)}; save x_train, y_train, x_test, y_test")
        arrays = {k: z[k] for k in NPZ_KEYS}
        y_all = np.concatenate([arrays["y_train"].ravel(), arrays["y_test"].ravel()])
        if y_all.dtype.kind not in "iu":
            raise TinyeffError(f"'{path}' has labels of type {y_all.dtype}; labels must be integer class indices")
        n_classes = int(y_all.max()) + 1 if y_all.size else 0
        labels = tuple(str(s) for s in z["labels"]) if "labels" in z.files else tuple(str(i) for i in range(n_classes))
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    if x_train.dtype.kind in "US":
        kind = "text"
    else:
        if x_train.ndim == 2:  # plain feature vectors become 1-pixel-high images
            x_train, x_test = x_train[:, None, :, None], x_test[:, None, :, None]
        elif x_train.ndim == 3:
            x_train, x_test = x_train[..., None], x_test[..., None]
        if x_train.shape[1:] != x_test.shape[1:]:
            raise TinyeffError(
                f"'{path}' has train samples of shape {x_train.shape[1:]} but test samples of {x_test.shape[1:]}; "
                "they must match"
            )
        x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
        kind = "image"
    return Dataset(
        name=path.stem,
        kind=kind,
        x_train=x_train,
        y_train=arrays["y_train"].astype(np.int32).ravel(),
        x_test=x_test,
        y_test=arrays["y_test"].astype(np.int32).ravel(),
        labels=labels,
        frontend={"type": "npz"},
    )


def load_csv(path: Path, *, seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """A text,label CSV with a header row, split stratified by label with the given seed."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise TinyeffError(f"cannot read '{path}' as UTF-8 CSV ({e}); give a text,label CSV file") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["text", "label"]:
        raise TinyeffError(f"'{path}' must start with the header 'text,label'")
    body = rows[1:]
    bad = next((i for i, r in enumerate(body, start=2) if len(r) != 2 or not r[0].strip()), None)
    if bad is not None:
        raise TinyeffError(f"'{path}' line {bad} does not have exactly a non-empty text and a label; fix that line")
    texts = np.array([r[0] for r in body])
    names = sorted({r[1] for r in body})
    y = np.array([names.index(r[1]) for r in body], dtype=np.int32)
    counts = np.bincount(y, minlength=len(names))
    if counts.min() < 2:
        raise TinyeffError(
            f"'{path}' has a class with fewer than 2 examples ('{names[int(counts.argmin())]}'); "
            "give at least 2 per class so both splits see it"
        )
    return Dataset.from_split(path.stem, "text", texts, y, stratified_split(y, test_fraction, seed), tuple(names),
                              {"type": "text"})
