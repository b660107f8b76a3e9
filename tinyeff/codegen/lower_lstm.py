"""Lower UNIDIRECTIONAL_SEQUENCE_LSTM (TFLM's integer LSTM) to one te_lstm call.

Everything TFLM prepares is prepared here: the Q31 multipliers of the eight gate matrix products
(each onto the gate scale 2^-12) and of the three elementwise products of the cell and hidden
updates, the input and hidden zero points folded into the gates' biases, the int16 cell clip and
the scaling of the cell state into the int16 tanh. The kernel (te_lstm.c) then runs only the
arithmetic, reading and updating the hidden and cell state in their variable tensors, which the
compiled runtime keeps outside the arena from one inference to the next as TFLM does.
"""

from __future__ import annotations

import numpy as np

from tinyeff.codegen import paths, quant
from tinyeff.codegen.checks_lstm import (ACTIVATION_SCALE, BIASES, CELL, GATE_SCALE, H_WEIGHTS, HIDDEN, INPUT, OP,
                                         X_WEIGHTS, cell_scale_power, cell_tanh_scaling, quantized_cell_clip)
from tinyeff.codegen.lower import Layer, _array, _Lowering, _scale, _wrap_int32, _zp
from tinyeff.footprint.tflite_file import OpInfo

__all__ = ["KERNEL", "OP", "lower_op"]

KERNEL = "te_lstm"
_GATES = 4


def _product_multiplier(a: float, b: float, out: float) -> tuple[int, int]:
    """A product of two int16 values requantized onto OUT, as TFLM's LSTM prepares it (double arithmetic)."""
    return quant.quantize_multiplier(float(a) * float(b) / float(out))


def lower_op(low: _Lowering, op: OpInfo, name: str) -> Layer:
    """The te_lstm Layer of OP, named NAME; its inputs are the sequence, the hidden state and the cell state."""
    x, hidden, cell = low.t(op.inputs[INPUT]), low.t(op.inputs[HIDDEN]), low.t(op.inputs[CELL])
    time_major = bool(op.options.get("time_major", False))
    steps = x.shape[0] if time_major else x.shape[1]  # the batch is 1 (checks_lstm)
    features, cells = x.shape[2], hidden.shape[1]

    x_weights = [low.const(op.inputs[k]).astype(np.int64) for k in X_WEIGHTS]
    h_weights = [low.const(op.inputs[k]).astype(np.int64) for k in H_WEIGHTS]
    biases = [low.const(op.inputs[k]).astype(np.int64).reshape(-1) for k in BIASES]
    # the kernels multiply raw codes: each bias holds -zero point * the row's weight sum
    x_bias = [b - _zp(x) * w.sum(axis=1) for b, w in zip(biases, x_weights)]
    h_bias = [-_zp(hidden) * w.sum(axis=1) for w in h_weights]
    x_mults = [quant.per_tensor_multiplier(_scale(x), _scale(low.t(op.inputs[k])), GATE_SCALE) for k in X_WEIGHTS]
    h_mults = [quant.per_tensor_multiplier(_scale(hidden), _scale(low.t(op.inputs[k])), GATE_SCALE) for k in H_WEIGHTS]

    cell_scale = _scale(cell)
    forget_mult, forget_shift = _product_multiplier(ACTIVATION_SCALE, cell_scale, cell_scale)
    input_mult, input_shift = _product_multiplier(ACTIVATION_SCALE, ACTIVATION_SCALE, cell_scale)
    hidden_mult, hidden_shift = _product_multiplier(ACTIVATION_SCALE, ACTIVATION_SCALE, _scale(hidden))
    tanh_mult, tanh_shift = cell_tanh_scaling(cell_scale_power(cell_scale))
    clip = float(np.float32(op.options.get("cell_clip", 0.0) or 0.0))

    arrays = (
        _array(f"{name}_x_weights", np.concatenate([w.reshape(-1) for w in x_weights]), "int8_t"),
        _array(f"{name}_h_weights", np.concatenate([w.reshape(-1) for w in h_weights]), "int8_t"),
        _array(f"{name}_x_bias", _wrap_int32(np.concatenate(x_bias)), "int32_t"),
        _array(f"{name}_h_bias", _wrap_int32(np.concatenate(h_bias)), "int32_t"),
        _array(f"{name}_x_mult", [m for m, _ in x_mults], "int32_t"),
        _array(f"{name}_x_shift", [s for _, s in x_mults], "int32_t"),
        _array(f"{name}_h_mult", [m for m, _ in h_mults], "int32_t"),
        _array(f"{name}_h_shift", [s for _, s in h_mults], "int32_t"),
    )
    fields = dict(
        steps=steps, n_input=features, n_cell=cells,
        x_weights=f"{name}_x_weights", h_weights=f"{name}_h_weights", x_bias=f"{name}_x_bias", h_bias=f"{name}_h_bias",
        x_mult=f"{name}_x_mult", x_shift=f"{name}_x_shift", h_mult=f"{name}_h_mult", h_shift=f"{name}_h_shift",
        forget_mult=forget_mult, forget_shift=forget_shift, input_mult=input_mult, input_shift=input_shift,
        hidden_mult=hidden_mult, hidden_shift=hidden_shift, hidden_zp=_zp(hidden),
        clip=int(clip > 0), cell_clip=quantized_cell_clip(clip, cell_scale) if clip > 0 else 0,
        tanh_mult=tanh_mult, tanh_shift=tanh_shift,
        work="NULL",  # emit points it at the layer's work buffer in the arena
    )
    kernel = (paths.choose(low.path, op.op, fields) or paths.KernelChoice(KERNEL)).name
    return Layer(op.index, op.op, kernel, "te_lstm_t", fields, arrays,
                 (op.inputs[INPUT], op.inputs[HIDDEN], op.inputs[CELL]), op.outputs[0],
                 work_bytes=_GATES * cells * 2)  # the four gates of one step, int16
