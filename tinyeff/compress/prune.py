"""Structured pruning: remove whole output channels and rebuild a narrower model.

Saliency of a channel is the L1 norm of its filter after folding in the following batch norm
(``|gamma| / sqrt(var + eps)`` times the filter's mean absolute weight): the size of the filter
the int8 model will really hold. Removing channel c of a layer removes row c of its filter, its
batch-norm entries, the matching depthwise filter of the next block and column c of the next
layer's input, so the rebuilt model has fewer weights and smaller activations.

Allocation is per layer, not one ratio for all: a channel's priority is its share of its
layer's total saliency (so a channel of a wide layer, one of many, goes before one of a narrow
layer), divided by what one channel of that layer costs against the budgets that are still exceeded
(flash: its weights and quantization parameters; RAM: its activation map and per-channel
kernel data), and the lowest ranked channels across the model go first. The stem and the
layer feeding the classifier are protected by floors and a higher weight, since they usually
tolerate pruning least.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tinyeff.models.build import build
from tinyeff.models.spec import ModelSpec

# Never go below this share of a layer's original channels, nor below MIN_CHANNELS.
FLOOR_INNER = 0.125
FLOOR_EDGE = 0.25  # stem and last prunable layer
EDGE_WEIGHT = 1.5  # their saliency counts this much more
MIN_CHANNELS = 4
QUANT_PARAM_BYTES = 16  # per output channel in the .tflite: float scale, int64 zero point, int32 bias


@dataclasses.dataclass(frozen=True)
class Pressure:
    """How far over budget the model is; only exceeded budgets steer the allocation."""

    flash: float
    ram: float


def saliency(model, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Per-channel BN-folded L1 saliency of every prunable layer."""
    out = {}
    for name in spec.prunable:
        kernel = model.get_layer(name).get_weights()[0]
        l1 = np.abs(kernel).reshape(-1, kernel.shape[-1]).mean(axis=0)
        gamma, _, _, var = model.get_layer(f"{name}_bn").get_weights()
        eps = model.get_layer(f"{name}_bn").epsilon
        out[name] = l1 * np.abs(gamma) / np.sqrt(var + eps)
    return out


def _channel_costs(model, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(flash bytes, RAM bytes) that one output channel of each prunable layer costs."""
    flash, ram = [], []
    names = spec.prunable
    for i, name in enumerate(names):
        layer = model.get_layer(name)
        kernel = layer.get_weights()[0]
        own = int(np.prod(kernel.shape[:-1]))
        if i + 1 < len(names):
            nxt = model.get_layer(names[i + 1]).get_weights()[0]
            downstream = spec.kernel * spec.kernel + QUANT_PARAM_BYTES if spec.kind == "dscnn" else 0
            downstream += int(np.prod(nxt.shape[:-2])) * nxt.shape[-1]
        else:
            downstream = spec.n_classes
        h, w = layer.output.shape[1:3]
        flash.append(own + downstream + QUANT_PARAM_BYTES)
        # its activation map, and the per-channel multiplier and shift TFLM keeps in the arena
        ram.append(h * w * (2 if spec.kind == "dscnn" else 1) + 16)
    return np.array(flash), np.array(ram)


def floors(original: ModelSpec) -> tuple[int, ...]:
    n = len(original.widths)
    return tuple(
        min(w, max(MIN_CHANNELS, math.ceil(w * (FLOOR_EDGE if i in (0, n - 1) else FLOOR_INNER))))
        for i, w in enumerate(original.widths)
    )


def plan(model, spec: ModelSpec, original: ModelSpec, fraction: float, pressure: Pressure) -> dict[str, np.ndarray] | None:
    """Channel indices to keep per layer after removing FRACTION of all channels; None at the floors."""
    sal = saliency(model, spec)
    flash_cost, ram_cost = _channel_costs(model, spec)
    pf, pr = max(pressure.flash, 0.0), max(pressure.ram, 0.0)
    if pf + pr == 0:
        pf = pr = 1.0
    cost = pf * flash_cost / flash_cost.mean() + pr * ram_cost / ram_cost.mean()
    n_layers = len(spec.prunable)
    ranked = []  # (priority, layer index, channel)
    for li, name in enumerate(spec.prunable):
        total = sal[name].sum()
        s = sal[name] / total if total > 0 else sal[name]  # a layer of all-zero filters: every share is 0
        if li in (0, n_layers - 1):
            s = s * EDGE_WEIGHT
        ranked += [(float(v) / cost[li], li, c) for c, v in enumerate(s)]
    ranked.sort()
    lows = floors(original)
    removable = sum(w - f for w, f in zip(spec.widths, lows))
    n_remove = min(removable, max(1, round(fraction * sum(spec.widths))))
    if n_remove <= 0:
        return None
    dropped = [set() for _ in spec.prunable]
    for _, li, c in ranked:
        if n_remove == 0:
            break
        if spec.widths[li] - len(dropped[li]) > lows[li]:
            dropped[li].add(c)
            n_remove -= 1
    return {name: np.array(sorted(set(range(w)) - dropped[i])) for i, (name, w) in enumerate(zip(spec.prunable, spec.widths))}


def pruned_copy(model, spec: ModelSpec, keep: dict[str, np.ndarray]):
    """A new, narrower model holding the kept channels' weights, and its spec."""
    new_spec = spec.with_widths(tuple(len(keep[n]) for n in spec.prunable))
    new = build(new_spec)
    current = None  # kept channel indices of the tensor flowing into the next layer
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        cls = type(layer).__name__
        if cls == "Conv2D":
            k = weights[0] if current is None else weights[0][:, :, current, :]
            current = keep[layer.name]  # every Conv2D the kit builds is a prunable layer
            sliced = [k[..., current]] + [b[current] for b in weights[1:]]
        elif cls == "DepthwiseConv2D":
            sliced = [weights[0][:, :, current, :]] + [b[current] for b in weights[1:]]
        elif cls == "BatchNormalization":
            sliced = [w[current] for w in weights]
        elif cls == "Dense":
            sliced = [weights[0][current, :]] + weights[1:]
            current = None
        else:
            raise TypeError(f"pruning does not know layer type {cls}")
        new.get_layer(layer.name).set_weights(sliced)
    return new, new_spec
