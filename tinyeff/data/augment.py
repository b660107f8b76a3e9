"""Data augmentation on feature arrays, drawn from a seeded generator.

Images and audio features: shifts (both axes for images, time only for audio) with zero fill,
plus Gaussian noise. Text: applied to the projected token matrix, where row t is token t, so
dropping a token is removing its row and swapping two tokens is swapping two rows. Mixup blends
pairs of samples and their targets.
"""

from __future__ import annotations

import numpy as np


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(x)
    h, w = x.shape[0], x.shape[1]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = x[ys, xs]
    return out


def shift_and_noise(x: np.ndarray, rng: np.random.Generator, *, kind: str, max_shift: int = 1, noise: float = 0.05) -> np.ndarray:
    """Random shifts of up to MAX_SHIFT cells (time axis only for audio) and noise of std NOISE x data std."""
    out = np.empty_like(x)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(len(x), 2))
    if kind == "audio":
        shifts[:, 1] = 0
    for i in range(len(x)):
        out[i] = _shift(x[i], int(shifts[i, 0]), int(shifts[i, 1]))
    return out + rng.normal(0.0, noise * float(x.std() or 1.0), size=x.shape).astype(x.dtype)


def token_drop_swap(x: np.ndarray, rng: np.random.Generator, *, p_drop: float = 0.1, p_swap: float = 0.1) -> np.ndarray:
    """Drop token rows (the rest move up) and swap neighbouring token rows of (n, 1, T, F) matrices."""
    out = np.zeros_like(x)
    n, _, t, _ = x.shape
    for i in range(n):
        rows = [r for r in range(t) if x[i, 0, r].any()]
        kept = [r for r in rows if rng.random() >= p_drop] or rows
        for j in range(len(kept) - 1):
            if rng.random() < p_swap:
                kept[j], kept[j + 1] = kept[j + 1], kept[j]
        out[i, 0, : len(kept)] = x[i, 0, kept]
    return out


def augment(x: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    if kind == "text":
        return token_drop_swap(x, rng)
    return shift_and_noise(x, rng, kind=kind)


def mixup(x: np.ndarray, targets: np.ndarray, rng: np.random.Generator, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Blend each sample with a random partner by a Beta(alpha, alpha) weight."""
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    perm = rng.permutation(len(x))
    lx = lam.reshape((-1,) + (1,) * (x.ndim - 1))
    return lx * x + (1 - lx) * x[perm], lam[:, None] * targets + (1 - lam[:, None]) * targets[perm]
