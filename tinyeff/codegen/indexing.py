"""Index arithmetic of TFLM's data-movement ops, done once in Python instead of on every inference.

TFLM's STRIDED_SLICE resolves its begin, end and stride per axis (negative indices, masks,
clamping) each time it runs, and RESIZE_NEAREST_NEIGHBOR computes every source row and column in
float32. The compiled runtime stores the results: a start, stride and count per axis, and tables of
source rows and columns. Both follow TFLM's own formulas, float32 rounding included, so the bytes
moved are the bytes TFLM moves.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tinyeff.codegen.quant import round_half_away


@dataclasses.dataclass(frozen=True)
class SliceAxis:
    start: int
    stride: int
    count: int  # elements the kernel visits along the axis


def _clamp(v: int, lo: int, hi: int) -> int:
    return hi if v > hi else lo if v < lo else v


def slice_axes(shape, begin, end, strides, begin_mask: int, end_mask: int, shrink_mask: int) -> list[SliceAxis]:
    """Start, stride and count per axis of SHAPE as TFLM's STRIDED_SLICE walks them when it runs
    (a shrunk axis takes one element, or none when its start lies past the end)."""
    axes = []
    for k, size in enumerate(shape):
        stride = int(strides[k])
        start = int(begin[k])
        start += size if start < 0 else 0
        start = _clamp(start, 0, size) if stride > 0 else _clamp(start, -1, size - 1)
        if begin_mask & (1 << k):
            start = 0 if stride > 0 else size - 1
        if shrink_mask & (1 << k):
            stop = start if start >= size else start + 1
        else:
            stop = int(end[k])
            stop += size if stop < 0 else 0
            stop = _clamp(stop, 0, size) if stride > 0 else _clamp(stop, -1, size - 1)
            if end_mask & (1 << k):
                stop = size if stride > 0 else -1
        count = -(-(stop - start) // stride) if stride > 0 else -(-(start - stop) // -stride)
        axes.append(SliceAxis(start, stride, max(count, 0)))
    return axes


def slice_shape(shape, begin, end, strides, begin_mask: int, end_mask: int, shrink_mask: int) -> tuple[int, ...]:
    """The output shape TFLM's STRIDED_SLICE requires when it prepares (its shrunk axes dropped):
    ceil((stop - start) / stride) in float32, with the start and stop of its preparation."""
    out = []
    for k, size in enumerate(shape):
        stride = int(strides[k])
        start = int(begin[k])
        if begin_mask & (1 << k):
            start = 0 if stride > 0 else size - 1
        else:
            start += size if start < 0 else 0
            start = _clamp(start, 0, size) if stride > 0 else _clamp(start, -1, size - 1)
        if shrink_mask & (1 << k):
            continue  # its stop is start + 1 whatever the model says: one element, and no output axis
        if end_mask & (1 << k):
            stop = size if stride > 0 else -1
        else:
            stop = int(end[k])
            stop += size if stop < 0 else 0
            stop = _clamp(stop, 0, size) if stride > 0 else _clamp(stop, -1, size - 1)
        out.append(max(0, math.ceil(float(np.float32(stop - start) / np.float32(stride)))))
    return tuple(out)


def nearest_sources(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> list[int]:
    """The input row (or column) each output row of TFLM's RESIZE_NEAREST_NEIGHBOR copies: with a
    float32 scale and offset, floor((o + offset) * scale), or that product rounded (half away from
    zero) with align_corners; at most the last row, and with half-pixel centres at least the first."""
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    offset = np.float32(0.5 if half_pixel_centers else 0.0)
    sources = []
    for o in range(out_size):
        v = float((np.float32(o) + offset) * scale)
        i = min(round_half_away(v) if align_corners else math.floor(v), in_size - 1)
        sources.append(max(i, 0) if half_pixel_centers else i)
    return sources
