"""Full-int8 post-training quantization and int8 evaluation.

Weights are int8 per output channel, activations int8 per tensor, and the model's input and
output are int8 too, so nothing on the device handles floats. Calibration uses a representative
set drawn (seeded) from the training data. The converter's output is then stripped of tensor
names and signature strings: TFLM never reads them, and on a model of a few KiB they are a
large share of the flash (for example 5,800 -> 4,568 bytes on a small DS-CNN).
"""

from __future__ import annotations

import numpy as np

from tinyeff._native import captured_fds, tensorflow
from tinyeff.footprint.tflite_file import read_model
from tinyeff.models.build import build
from tinyeff.models.spec import ModelSpec

REPRESENTATIVE_SAMPLES = 300


def representative_set(x: np.ndarray, seed: int = 0, n: int = REPRESENTATIVE_SAMPLES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return x[np.sort(rng.choice(len(x), size=min(n, len(x)), replace=False))]


def to_int8_tflite(logits_model, spec: ModelSpec, x_rep: np.ndarray, float_io: bool = False) -> bytes:
    """Full-int8 .tflite bytes of LOGITS_MODEL (built from SPEC) with a softmax, calibrated on X_REP."""
    probs = build(spec, batch_size=1, softmax=True)  # static shapes: see build()
    probs.set_weights(logits_model.get_weights())
    return keras_to_int8(probs, x_rep, float_io=float_io)


def keras_to_int8(model, x_rep, strip: bool = True, float_io: bool = False) -> bytes:
    """Full-int8 .tflite bytes of the Keras MODEL (int8 weights per channel, int8 in and out), calibrated on X_REP
    (an array of samples, or for a model of several inputs a list of them, one per input in the model's order).

    FLOAT_IO keeps a float32 input and output around the int8 graph (QUANTIZE first, DEQUANTIZE
    last), the form some third-party models come in."""
    tf = tensorflow()
    from tensorflow.lite.tools import flatbuffer_utils

    reps = [x_rep] if isinstance(x_rep, np.ndarray) else list(x_rep)
    # the converter may order a model's inputs otherwise than Keras does: several go by name
    names = [t.name for t in model.inputs] if len(reps) > 1 else None

    def samples():
        for i in range(len(reps[0])):
            batch = [r[i : i + 1].astype(np.float32) for r in reps]
            yield dict(zip(names, batch)) if names else batch

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = samples
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.float32 if float_io else tf.int8
    conv.inference_output_type = tf.float32 if float_io else tf.int8
    with captured_fds(1, 2):  # the converter prints its MLIR passes and saved-model paths
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = conv.convert()
    if not strip:
        return bytes(raw)
    flat = flatbuffer_utils.read_model_from_bytearray(bytearray(raw))
    flatbuffer_utils.strip_strings(flat)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float samples to the int8 the model's input expects (round half to even, saturate)."""
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


def run_int8(model: bytes, x_int8: np.ndarray) -> np.ndarray:
    """Int8 outputs of MODEL for each int8 input, one at a time as on a device (LiteRT reference)."""
    from ai_edge_litert.interpreter import Interpreter

    with captured_fds(2):  # "Created TensorFlow Lite XNNPACK delegate" on stderr
        it = Interpreter(model_content=model)
        it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    outputs = []
    for sample in x_int8:
        it.set_tensor(inp, sample[None])
        it.invoke()
        outputs.append(it.get_tensor(out)[0].copy())
    return np.stack(outputs)


def int8_accuracy(model: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the int8 MODEL on float samples X (quantized with its input parameters)."""
    return int8_scores(model, x, y)[0]


def int8_scores(model: bytes, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of the int8 MODEL (probabilities out) on float samples X.

    The loss reads the int8 softmax dequantized, with probabilities floored at half its step
    (1/512), so one confidently wrong sample does not dominate the mean.
    """
    info = read_model(model)
    t, o = info.input(), info.output()
    out = run_int8(model, quantize_input(x, t.scales[0], t.zero_points[0]))
    p = (out.astype(np.float64) - o.zero_points[0]) * o.scales[0]
    loss = -np.log(np.maximum(p[np.arange(len(y)), y], o.scales[0] / 2)).mean() if len(y) else 0.0
    return float((out.argmax(axis=1) == y).mean()), float(loss)
