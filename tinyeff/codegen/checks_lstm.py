"""Refuse, in one sentence each, UNIDIRECTIONAL_SEQUENCE_LSTM ops the compiled runtime cannot run
as TFLM does.

The compiled runtime runs TFLM's integer LSTM: int8 input, output and hidden state, int8 weights,
int32 biases and an int16 cell state, with the four gates of a Keras LSTM layer (no CIFG, peephole,
projection or layer normalisation) and a batch of one. TFLM fixes the gates' inner quantization
itself (gate pre-activations on the scale 2^-12, sigmoid and tanh outputs on 2^-15) and ignores
the op's "intermediate" tensors, so only the tensors below matter.
``checks.check_model`` sends every LSTM op here.
"""

from __future__ import annotations

import math

import numpy as np

from tinyeff.codegen.checks import REEXPORT, _op_error
from tinyeff.errors import TinyeffError
from tinyeff.footprint.tflite_file import ModelInfo, OpInfo, TensorInfo, constant_array

OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"

# the op's 24 inputs (TFLM's lstm_shared.h numbering)
INPUT = 0
X_WEIGHTS = (1, 2, 3, 4)  # input to the input, forget, cell and output gate: [cells, features]
H_WEIGHTS = (5, 6, 7, 8)  # hidden state to the four gates: [cells, cells]
PEEPHOLE = (9, 10, 11)
BIASES = (12, 13, 14, 15)
PROJECTION = (16, 17)
HIDDEN, CELL = 18, 19
LAYER_NORM = (20, 21, 22, 23)
GATES = ("input", "forget", "cell", "output")

GATE_SCALE = 2.0**-12  # a gate's pre-activation: int16 Q3.12
ACTIVATION_SCALE = 2.0**-15  # a sigmoid or tanh output: int16 Q0.15
_INT32_MAX = 2**31 - 1
_OPERAND_BOUND = 256  # |x - zero point| of an int8 value, rounded up
# the tanh of the cell state scales it by 3 << shift in int32: |cell| * (3 << 14) stays below 2^31
_MAX_TANH_LEFT_SHIFT = 14
_MAX_TANH_RIGHT_SHIFT = 30


def cell_scale_power(scale: float) -> int:
    """The power of two nearest the cell state's scale, as TFLM finds it (log in float32, rounded half away)."""
    x = np.float32(np.log(np.float32(scale))) * (np.float32(1.0) / np.float32(np.log(np.float32(2.0))))
    return int(math.copysign(math.floor(abs(float(x)) + 0.5), float(x)))


def cell_tanh_scaling(power: int) -> tuple[int, int]:
    """(multiplier, right shift) that bring the cell state to the int16 tanh's input: (c * m + round) >> shift.

    TFLM scales a Q3.12 gate by 3 (its lookup table spans +-8 as +-10.7 on the 3/4 scale); a cell
    state on 2^POWER needs 12 + POWER more bits, or fewer."""
    left = 12 + power
    return (3, -left) if left < 0 else (3 << left, 0)


def quantized_cell_clip(cell_clip: float, cell_scale: float) -> int:
    """TFLM's int16 cell clip: clip / scale in double, saturated to int16, truncated toward zero."""
    return int(min(max(float(np.float32(cell_clip)) / float(np.float32(cell_scale)), -32768.0), 32767.0))


class _Lstm:
    def __init__(self, data: bytes, info: ModelInfo, op: OpInfo):
        self.data, self.info, self.op = data, info, op

    def fail(self, why: str) -> TinyeffError:
        return _op_error(self.info, self.op, why)

    def t(self, k: int) -> TensorInfo | None:
        i = self.op.inputs[k]
        return self.info.tensors[i] if i >= 0 else None

    def present(self, k: int, what: str) -> TensorInfo:
        t = self.t(k)
        if t is None:
            raise self.fail(f"lacks its {what} (input {k}); {REEXPORT}")
        return t

    def shape(self, t: TensorInfo, shape: tuple[int, ...], what: str) -> None:
        if tuple(t.shape) != shape:
            raise self.fail(f"has {what} of shape {t.shape}, where its input and state give {list(shape)}; {REEXPORT}")


def _hint() -> str:
    from tinyeff.codegen.lower import TFLM_HINT  # lower imports this module's stage

    return TFLM_HINT


def check_op(data: bytes, info: ModelInfo, op: OpInfo) -> None:
    """Raise TinyeffError, one sentence, for an LSTM op the compiled runtime cannot run as TFLM does."""
    c = _Lstm(data, info, op)
    if len(op.inputs) != 24 or len(op.outputs) != 1:
        raise c.fail(f"has {len(op.inputs)} inputs and {len(op.outputs)} outputs; it takes 24 inputs and one output, {REEXPORT}")
    x = c.present(INPUT, "input")
    out = info.tensors[op.outputs[0]]
    if x.dtype == "FLOAT32":
        raise c.fail(f"is a float LSTM; the compiled runtime runs integer LSTMs only, so quantize the model fully to int8 "
                     f"(int8 input and output), or {_hint()}")
    if x.dtype == "INT16":
        raise c.fail(f"runs on int16 activations (TFLM's 16x8 LSTM), which the compiled runtime does not run; {_hint()}")
    if x.dtype != "INT8":
        raise c.fail(f"has a {x.dtype.lower()} input; the compiled runtime runs LSTMs on int8, {REEXPORT}")
    if x.constant:
        raise c.fail(f"reads the constant tensor {op.inputs[INPUT]} as its input, where the compiled runtime needs an activation; "
                     f"{_hint()}")
    written = set(info.inputs) | {i for o in info.ops[:info.ops.index(op)] for i in o.outputs}
    if x.index not in written:
        raise c.fail(f"reads tensor {x.index}, which holds no data and which no earlier op writes; the file is corrupt or the "
                     f"graph out of order, {REEXPORT}")
    variants = [("CIFG (no input gate)", (X_WEIGHTS[0], H_WEIGHTS[0], BIASES[0]), False),
                ("peephole", PEEPHOLE, True), ("projection", PROJECTION, True), ("layer normalisation", LAYER_NORM, True)]
    for name, ks, present in variants:
        if any((op.inputs[k] >= 0) == present for k in ks):
            raise c.fail(f"is an LSTM with {name}, which TFLM's integer LSTM and the compiled runtime do not run; "
                         "use a plain Keras LSTM layer")
    hidden, cell = c.present(HIDDEN, "hidden state"), c.present(CELL, "cell state")
    for t, what in ((hidden, "hidden"), (cell, "cell")):
        if not t.variable or t.constant:
            raise c.fail(f"keeps its {what} state in tensor {t.index}, which is not a variable tensor; {REEXPORT}")
    if hidden.dtype != "INT8" or out.dtype != "INT8" or cell.dtype != "INT16":
        raise c.fail(f"has a {hidden.dtype.lower()} hidden state, {cell.dtype.lower()} cell state and {out.dtype.lower()} output; "
                     f"TFLM's integer LSTM needs int8, int16 and int8, {REEXPORT}")
    o = op.options
    if len(x.shape) != 3 or len(hidden.shape) != 2:
        raise c.fail(f"has an input of shape {x.shape} and a hidden state of shape {hidden.shape}; it needs [batch, time, features] "
                     f"and [batch, units], {REEXPORT}")
    time_major = bool(o.get("time_major", False))
    steps, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    features, cells = x.shape[2], hidden.shape[1]
    if batch != 1:
        raise c.fail(f"runs a batch of {batch}; export the model with a batch of 1")
    if min(steps, features, cells) < 1:
        raise c.fail(f"has input shape {x.shape} and hidden state shape {hidden.shape}; {REEXPORT}")
    if o.get("diagonal_recurrent_tensors", False):
        raise c.fail(f"has diagonal recurrent weights, which TFLM's integer LSTM does not run; {REEXPORT}")
    activation = o.get("fused_activation_function", "NONE")
    if activation != "TANH":  # the only one a .tflite can name that TFLM's LSTM applies
        raise c.fail(f"applies {activation!r} to its cell gate, where TFLM's LSTM applies TANH; {REEXPORT}")
    if cell.elements != cells:
        raise c.fail(f"has a cell state of {cell.elements} values for {cells} units; {REEXPORT}")
    want = (x.shape[0], x.shape[1], cells)
    if tuple(out.shape) != want:
        raise c.fail(f"has output shape {out.shape}, where its input and {cells} units give {list(want)}; {REEXPORT}")

    for ks, cols, what in ((X_WEIGHTS, features, "input weights"), (H_WEIGHTS, cells, "recurrent weights")):
        for g, k in zip(GATES, ks):
            w = c.present(k, f"{g} gate's {what}")
            if not w.constant or w.dtype != "INT8":
                raise c.fail(f"has {g} gate {what} (tensor {w.index}) that are not int8 constants; an integer LSTM has int8 "
                             f"weights, {REEXPORT}")
            c.shape(w, (cells, cols), f"{g} gate {what}")
            if len(w.scales) != 1:
                raise c.fail(f"quantizes its {g} gate {what} per channel, where TFLM's LSTM reads one scale per weight tensor; "
                             f"{REEXPORT}")
            if w.zero_points[0] != 0:
                raise c.fail(f"has {g} gate {what} with zero point {w.zero_points[0]}; int8 weights are symmetric (zero point 0), "
                             f"{REEXPORT}")
    for g, k in zip(GATES, BIASES):
        b = c.present(k, f"{g} gate's bias")
        if not b.constant or b.dtype != "INT32":
            raise c.fail(f"has a {g} gate bias (tensor {b.index}) that is not an int32 constant; {REEXPORT}")
        c.shape(b, (cells,), f"a {g} gate bias")

    cell_scale = cell.scales[0] if cell.scales else 0.0
    if not (math.isfinite(cell_scale) and cell_scale > 0) or any(cell.zero_points):
        raise c.fail(f"has a cell state quantized with scale {cell_scale!r} and zero points {list(cell.zero_points)}; the int16 cell "
                     f"state needs a positive scale and zero point 0, {REEXPORT}")
    mult, shift = cell_tanh_scaling(cell_scale_power(cell_scale))
    if mult > 3 << _MAX_TANH_LEFT_SHIFT or shift > _MAX_TANH_RIGHT_SHIFT:
        raise c.fail(f"has a cell state scale {cell_scale!r}, too far from 2^-12 for TFLM's int16 tanh to take; {REEXPORT}")
    clip = float(o.get("cell_clip", 0.0) or 0.0)
    if not math.isfinite(clip):
        raise c.fail(f"has cell clip {clip!r}; {REEXPORT}")

    # no int32 accumulator of a gate can overflow (TFLM's would, undefined in C++)
    for g, kx, kh, kb in zip(GATES, X_WEIGHTS, H_WEIGHTS, BIASES):
        b = np.abs(constant_array(data, c.t(kb)).astype(np.int64))
        for k, bias in ((kx, b), (kh, 0)):
            w = np.abs(constant_array(data, c.t(k)).astype(np.int64)).sum(axis=1)
            if (bias + _OPERAND_BOUND * w).max(initial=0) > _INT32_MAX:
                raise c.fail(f"can overflow the int32 accumulator of its {g} gate; {REEXPORT}")
    for ks, scale, what in ((X_WEIGHTS, x.scales[0], "input"), (H_WEIGHTS, hidden.scales[0], "hidden state")):
        for k in ks:
            m = float(np.float32(scale) * np.float32(c.t(k).scales[0])) / GATE_SCALE
            if not (math.isfinite(m) and m < 2.0**31):
                raise c.fail(f"rescales its {what} by {m!r} into a gate, more than integer requantization represents; {REEXPORT}")
