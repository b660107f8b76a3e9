"""The host reference for on-device results: TFLite Micro itself, built for the host.

Bit-exactness of the compiled runtime and of firmware on a device is judged against these
outputs, never against a re-implementation.
"""

from __future__ import annotations

import numpy as np

from tinyeff.footprint.arena import tflm_interpreter


def tflm_outputs(model: bytes, inputs: np.ndarray, name: str = "model") -> np.ndarray:
    """Output 0 of the host TFLM interpreter for each input in INPUTS (first axis = samples; int8, or float32 for a float-input model)."""
    interp = tflm_interpreter(model, name)
    details = interp.get_input_details(0)
    shape, dtype = tuple(int(d) for d in details["shape"]), details["dtype"]
    outs = []
    for x in inputs:
        interp.set_input(np.ascontiguousarray(x, dtype=dtype).reshape(shape), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0), copy=True))
    return np.stack(outs) if outs else np.zeros((0,), np.int8)
