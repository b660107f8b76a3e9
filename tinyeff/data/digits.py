"""scikit-learn's bundled 8x8 handwritten digits: no download, 1,797 images, 10 classes."""

from __future__ import annotations

import numpy as np

from tinyeff.data.dataset import Dataset, stratified_split


def load_digits(seed: int = 0) -> Dataset:
    """The digits with a fixed stratified 25 % test split; pixels scaled from 0..16 to 0..1."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int32)
    return Dataset.from_split("digits", "image", x, y, stratified_split(y, 0.25, seed),
                              tuple(str(i) for i in range(10)), {"type": "image", "scale": "pixel/16"})
