"""Quantization-aware fine-tuning: the fallback when post-training quantization costs too much.

Post-training quantization (PTQ) is tried first; QAT runs only when the int8 model's accuracy
on the validation slice is more than ``QAT_THRESHOLD_POINTS`` below the float model's. One point
is the kit's promise for every model it emits (int8 within 1 point of float); below it, the
extra fine-tuning is not worth its time.

What QAT simulates: the int8 tensors of the converted model. The converter folds batch norm into
the convolutions and fuses ReLU, so the int8 activations are the outputs of each ReLU, the
pooling, and the logits, and the model's input. A fake-quantization layer sits at each of those
points (``tf.quantization.fake_quant_with_min_max_vars``: 8 bits, a range nudged so that zero is
exact, straight-through gradients inside the range), its range tracked as a moving average of
the batch minimum and maximum, as the converter's calibration would see it. Weights are left in
float: they are quantized per output channel, whose error is small next to that of activations
quantized per tensor. After fine-tuning, the fake-quant layers are dropped (they hold no
weights) and the model is converted with PTQ as usual; the QAT result is kept only if its int8
validation accuracy beats the PTQ result's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from tinyeff._native import seed_everything, tensorflow
from tinyeff.compress.quantize import int8_accuracy, to_int8_tflite
from tinyeff.models.build import build
from tinyeff.models.spec import ModelSpec
from tinyeff.train.fit import TrainConfig, evaluate, fit

QAT_THRESHOLD_POINTS = 1.0
QAT_FINETUNE = TrainConfig(epochs=15, patience=6, learning_rate=5e-4)
EMA_MOMENTUM = 0.95


@dataclasses.dataclass(frozen=True)
class Quantized:
    """An int8 model and how it was reached."""

    tflite: bytes
    model: object  # the float keras model the int8 one was converted from
    float_val_accuracy: float
    int8_val_accuracy: float
    ptq_val_accuracy: float
    method: str  # "ptq" or "qat"


def _fake_quant_layer():
    tf = tensorflow()
    import keras

    class ActivationFakeQuant(keras.layers.Layer):
        """8-bit fake quantization of a tensor over a moving-average [min, max] range."""

        def build(self, input_shape):
            self.lo = self.add_weight(shape=(), initializer="zeros", trainable=False, name="lo")
            self.hi = self.add_weight(shape=(), initializer="zeros", trainable=False, name="hi")
            self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, name="seen")

        def call(self, x, training=False):
            if training:
                # the range always holds zero, as the converter's does
                lo = tf.minimum(tf.reduce_min(x), 0.0)
                hi = tf.maximum(tf.reduce_max(x), 0.0)
                first = tf.cast(self.seen < 0.5, x.dtype)
                m = EMA_MOMENTUM * (1.0 - first)
                self.lo.assign(m * self.lo + (1.0 - m) * lo)
                self.hi.assign(m * self.hi + (1.0 - m) * hi)
                self.seen.assign(1.0)
            hi = tf.maximum(self.hi, self.lo + 1e-6)
            return tf.quantization.fake_quant_with_min_max_vars(x, self.lo, hi, num_bits=8)

    return ActivationFakeQuant


def qat_model(spec: ModelSpec, weights_from):
    """SPEC's model with fake quantization at each int8 tensor, holding WEIGHTS_FROM's weights."""
    tensorflow()
    import keras

    FakeQuant = _fake_quant_layer()
    plain = build(spec)
    taps = {layer.name for layer in plain.layers if layer.name.endswith("_relu") or layer.name in ("pool", "logits")}
    # Rebuild the same graph, calling a fake-quant layer after every tapped layer.
    inp = keras.Input(spec.input_shape, name="input")
    x = FakeQuant(name="fq_input")(inp)
    for layer in plain.layers[1:]:
        x = layer(x)
        if layer.name in taps:
            x = FakeQuant(name=f"fq_{layer.name}")(x)
    model = keras.Model(inp, x, name=f"{spec.kind}_qat")
    _copy_weights(weights_from, model)
    return model


def _copy_weights(src, dst) -> None:
    """Weights of SRC's layers into DST's layers of the same name (fake-quant layers have none in SRC)."""
    names = {layer.name for layer in dst.layers}
    for layer in src.layers:
        if layer.weights and layer.name in names:
            dst.get_layer(layer.name).set_weights(layer.get_weights())


def quantize_with_fallback(
    model,
    spec: ModelSpec,
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_rep: np.ndarray,
    *,
    kind: str,
    qat: str = "auto",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Quantized:
    """PTQ of MODEL; QAT fine-tuning on (X_FIT, Y_FIT) as well when QAT is "always", or "auto" and
    PTQ loses more than QAT_THRESHOLD_POINTS on (X_VAL, Y_VAL). MODEL itself is left unchanged."""
    ptq = to_int8_tflite(model, spec, x_rep)
    float_val = evaluate(model, x_val, y_val)
    ptq_val = int8_accuracy(ptq, x_val, y_val)
    result = Quantized(ptq, model, float_val, ptq_val, ptq_val, "ptq")
    drop = 100 * (float_val - ptq_val)
    if qat == "off" or (qat == "auto" and drop <= QAT_THRESHOLD_POINTS):
        return result
    if progress:
        progress(f"int8 loses {drop:.1f} points on validation; quantization-aware fine-tuning")
    seed_everything(seed)  # the dropout layer of the model built here takes its seed from the global state
    fq = qat_model(spec, model)
    fit(fq, x_fit, y_fit, dataclasses.replace(QAT_FINETUNE, seed=seed), kind=kind, validation=(x_val, y_val))
    tuned = build(spec)
    _copy_weights(fq, tuned)
    tfl = to_int8_tflite(tuned, spec, x_rep)
    qat_val = int8_accuracy(tfl, x_val, y_val)
    if progress:
        progress(f"int8 validation accuracy {100 * ptq_val:.1f} % after PTQ, {100 * qat_val:.1f} % after QAT")
    if qat_val <= ptq_val and qat != "always":
        return result
    return Quantized(tfl, tuned, evaluate(tuned, x_val, y_val), qat_val, ptq_val, "qat")
