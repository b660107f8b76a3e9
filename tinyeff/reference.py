"""The host reference for on-device results: TFLite Micro itself, built for the host.

Bit-exactness of the compiled runtime and of firmware on a device is judged against these
outputs, never against a re-implementation.
"""

from __future__ import annotations

import numpy as np

from tinyeff.footprint.arena import tflm_interpreter
from tinyeff.footprint.tflite_file import read_model


def tflm_run(model: bytes, inputs, name: str = "model") -> list[np.ndarray]:
    """Every output (samples first) of the host TFLM interpreter for INPUTS: one array per model input,
    first axis = samples, in the input's type. The interpreter is made once, so a stateful model (an
    LSTM that keeps its state in variables) carries its state from one sample to the next, as on a device."""
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    n_outputs = len(read_model(model, name).outputs)
    interp = tflm_interpreter(model, name)
    details = [interp.get_input_details(i) for i in range(len(inputs))]
    n = len(inputs[0]) if inputs else 0
    outs: list[list[np.ndarray]] = []
    for s in range(n):
        for i, d in enumerate(details):
            shape = tuple(int(v) for v in d["shape"])
            interp.set_input(np.ascontiguousarray(inputs[i][s], dtype=d["dtype"]).reshape(shape), i)
        interp.invoke()
        outs.append([np.array(interp.get_output(k), copy=True) for k in range(n_outputs)])
    if not outs:
        return []
    return [np.stack([o[k] for o in outs]) for k in range(len(outs[0]))]


def tflm_outputs(model: bytes, inputs: np.ndarray, name: str = "model") -> np.ndarray:
    """Output 0 of the host TFLM interpreter for each input in INPUTS (first axis = samples) of a one-input model."""
    outs = tflm_run(model, [inputs], name)
    return outs[0] if outs else np.zeros((0,), np.int8)
