"""One search trial: draw a plan, check it can fit, train, quantize to int8, measure.

The footprint of an architecture hardly depends on its weights: the arena not at all, the flash
only where the converter stores identical constant buffers once or leaves an all-zero bias out -
the zero biases of a fresh model (240 B on a 12 KiB DS-CNN; 584 B on a 16 KiB projection model,
whose zero classifier bias was dropped with its tensor). So every trial is first converted to int8
untrained, with random batch-norm offsets and biases standing in for trained ones, and measured
(to the byte, as the trained model measures): a plan that does not fit
this way is recorded as infeasible (its measured footprint as Optuna constraints) without
spending a training run on it. A trained model is measured again from its own artifact, and
that measurement is the one the study keeps. Only the validation slice of the training split
(whole templates held out, for generated sentences) ranks trials; the test split stays unseen
until the one chosen model is reported.

What a trial leaves in the study (user attributes, so every worker on every machine sees it):
the spec, the measured footprint, the int8 validation accuracy and loss, and for a trial that
fits, the int8 ``.tflite`` itself (base64) - the export needs nothing from the worker's disk.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import socket

import numpy as np

from tinyeff._native import seed_everything
from tinyeff.compress.qat import quantize_with_fallback
from tinyeff.compress.quantize import int8_scores, representative_set, to_int8_tflite
from tinyeff.compress.shrink import Budget
from tinyeff.data.dataset import Dataset, group_split
from tinyeff.errors import TinyeffError
from tinyeff.footprint import Footprint, measure
from tinyeff.models.build import build
from tinyeff.models.spec import ModelSpec
from tinyeff.search.space import SpaceLimits, suggest
from tinyeff.train.fit import TrainConfig, fit, validation_split
from tinyeff.train.run import features_of

TFLITE_ATTR = "int8_tflite_b64"
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # which worker ran a trial, for the study's record


def constraints(budget: Budget, fp: Footprint) -> dict[str, float]:
    """Bytes over the flash and RAM budgets (<= 0 where it fits), as Optuna's constraints read them."""
    return {"flash_over_bytes": float(fp.flash_bytes - budget.flash_bytes) if budget.flash_bytes else 0.0,
            "ram_over_bytes": float(fp.ram_bytes - budget.ram_bytes) if budget.ram_bytes else 0.0}


def tflite_of(trial) -> bytes | None:
    """The int8 model a feasible trial stored in the study."""
    b64 = trial.user_attrs.get(TFLITE_ATTR)
    return base64.b64decode(b64) if b64 else None



def shrink_finetune_epochs(train_epochs: int) -> int:
    """Epochs of fine-tuning after each pruning step of the shrink recipes: a quarter of what the trial
    trained, at least 10 (the shrink command's fixed 40 would make a short trial mostly fine-tuning,
    at several steps per trial)."""
    return max(10, train_epochs // 4)

# Larger than training's 10 %: a search ranks many trials on this slice, and on a small one the best
# of 150 trials is chosen by its luck (digits: 100 % of 135 validation samples, 96.4 % on the test split).
# For grouped data, a quarter of each class's groups, as the intents test split holds out a quarter of its templates.
VALIDATION_FRACTION = 0.25


def search_validation(data: Dataset, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (fit, validation) indices of the training split that rank trials. Where samples come in
    groups of near copies (sentences of one template), the validation slice holds out whole groups:
    a slice of sentences whose templates were trained on would rank models by memory, not by how
    they do on the unseen templates of the test split."""
    if data.train_groups is not None:
        return group_split(data.y_train, data.train_groups, VALIDATION_FRACTION, seed)
    return validation_split(data.y_train, TrainConfig(seed=seed, val_fraction=VALIDATION_FRACTION))


def untrained_probe(spec: ModelSpec, seed: int):
    """A fresh model of SPEC whose biases are not zero (random batch-norm offsets and layer biases):
    converted, it takes the flash a trained one takes. A fresh one's equal zero biases would be stored
    once, and an all-zero classifier bias is left out of the model altogether (584 B of a 16 KiB
    projection model: its data, tensor and quantization records)."""
    seed_everything(seed)
    model = build(spec)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name.endswith("_bn"):
            w = layer.get_weights()
            w[1] = rng.normal(0.0, 0.1, w[1].shape).astype(np.float32)  # beta
            layer.set_weights(w)
        elif getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0.0, 0.1, tuple(layer.bias.shape)).astype(np.float32))
    return model


@dataclasses.dataclass
class Objective:
    """Optuna's objective for DATA under BUDGET: int8 validation accuracy (maximised), and with
    PARETO also flash and RAM bytes (minimised)."""

    data: Dataset
    budget: Budget
    limits: SpaceLimits = SpaceLimits()
    pareto: bool = False
    seed: int = 0
    teacher: object | None = None  # a float keras model trained on the same data
    teacher_spec: ModelSpec | None = None
    latency_board: str | None = None  # measure emulated instructions on this QEMU board (an objective with PARETO)
    recipe: str = "plain"  # see space.RECIPES

    def __post_init__(self) -> None:
        self._fit, self._val = search_validation(self.data, self.seed)
        self._features: dict = {}

    def features(self, spec: ModelSpec) -> np.ndarray:
        """The training split as SPEC's input (the projection of text is computed once per setting)."""
        key = spec.projection
        if key not in self._features:
            self._features[key] = features_of(spec, self.data.x_train)
        return self._features[key]

    def __call__(self, trial):
        import optuna

        plan = suggest(trial, self.data, self.limits, teacher=self.teacher_spec, seed=self.seed, recipe=self.recipe)
        x = self.features(plan.spec)
        y = self.data.y_train
        x_fit, y_fit, x_val, y_val = x[self._fit], y[self._fit], x[self._val], y[self._val]
        x_rep = representative_set(x, self.seed)
        trial.set_user_attr("spec", plan.spec.to_json())
        trial.set_user_attr("describe", plan.describe())
        trial.set_user_attr("worker", WORKER)

        try:
            fp = measure(to_int8_tflite(untrained_probe(plan.spec, self.seed), plan.spec, x_rep), f"trial {trial.number}")
        except TinyeffError as e:
            # An untrained layer can output only zeros on the calibration set (every ReLU dead): the
            # converter then gives it a scale of ~1e-8, which TFLM refuses. Training decides instead.
            trial.set_user_attr("probe", str(e))
            fp = None
        seed_everything(self.seed)  # initial weights and the dropout layer's seed
        model = build(plan.spec)
        if fp is not None:
            self._record(trial, fp, trained=False)
        if self.recipe == "plain" and fp is not None and not self.budget.fits(fp):
            self._constrain(trial, fp)
            # Optuna needs a value; the constraints already rank the trial below every feasible one,
            # and reports show no accuracy for an untrained trial
            return self._values(0.0, fp)

        def epoch_end(row: dict) -> None:
            if self.pareto:  # Optuna prunes single-objective studies only
                return
            trial.report(row["val_accuracy"], row["epoch"])
            if trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", row["epoch"])
                if fp is not None:
                    self._constrain(trial, fp)
                raise optuna.TrialPruned(f"validation accuracy {100 * row['val_accuracy']:.1f} % at epoch {row['epoch']}")

        result = fit(model, x_fit, y_fit, plan.train, kind=self.data.kind, teacher=self.teacher,
                     validation=(x_val, y_val), epoch_end=epoch_end)
        if self.recipe == "plain":
            q = quantize_with_fallback(model, plan.spec, x_fit, y_fit, x_val, y_val, x_rep, kind=self.data.kind,
                                       qat=plan.qat, seed=self.seed)
            tflite, spec, float_val, method = q.tflite, plan.spec, q.float_val_accuracy, q.method
        else:
            shrunk = self._shrink(trial, plan, model)
            if shrunk is None:  # no pruning step fit: the trained model's own footprint says by how much
                fp = measure(to_int8_tflite(model, plan.spec, x_rep), f"trial {trial.number}")
                self._record(trial, fp, trained=False)
                self._constrain(trial, fp)
                return self._values(0.0, fp)
            tflite, spec, float_val, method = shrunk
        fp = measure(tflite, f"trial {trial.number}")
        if spec != plan.spec:
            trial.set_user_attr("spec", spec.to_json())
            trial.set_user_attr("describe", f"{spec.describe()} (shrunk from {list(plan.spec.widths)})")
        self._record(trial, fp, trained=True)
        self._constrain(trial, fp)
        accuracy, loss = int8_scores(tflite, x_val, y_val)
        trial.set_user_attr("int8_val_accuracy", accuracy)
        trial.set_user_attr("int8_val_loss", loss)
        trial.set_user_attr("float_val_accuracy", float_val)
        trial.set_user_attr("quantization", method)
        trial.set_user_attr("epochs_run", result.epochs_run)
        latency = None
        if self.budget.fits(fp):
            trial.set_user_attr(TFLITE_ATTR, base64.b64encode(tflite).decode("ascii"))
            latency = self.latency(tflite, spec)
            if latency is not None:
                trial.set_user_attr("emulated_instructions", latency)
        return self._values(accuracy, fp, latency)

    def latency(self, tflite: bytes, spec: ModelSpec) -> float | None:
        """Median emulated instructions of TFLITE (a model of SPEC) on the latency board, on validation
        inputs (None without --latency)."""
        if not self.latency_board:
            return None
        from tinyeff.search.latency import emulated_instructions

        return emulated_instructions(tflite, self.latency_board, self.features(spec)[self._val], self.data.y_train[self._val])

    def refit(self, params: dict) -> tuple[bytes, ModelSpec, Footprint]:
        """The plan of a finished trial (its PARAMS) trained again, as the trial was but on the whole
        training split: once the slice has chosen, its samples are better spent on training. Returns
        the int8 model, its spec and its measured footprint."""
        # the slice is trained on now, so what fit and QAT report on it is only a log
        tflite, spec = self._train_plan(params, np.arange(len(self.data.y_train)), self._val)
        return tflite, spec, measure(tflite, "the refit model")

    def fold_accuracy(self, params: dict, held_out: np.ndarray) -> float:
        """Int8 accuracy on the training samples HELD_OUT of the plan of a finished trial (its PARAMS)
        trained on the rest of the training split, as the trial was trained."""
        rest = np.setdiff1d(np.arange(len(self.data.y_train)), held_out)
        tflite, spec = self._train_plan(params, rest, held_out)
        return int8_scores(tflite, self.features(spec)[held_out], self.data.y_train[held_out])[0]

    def _train_plan(self, params: dict, fit_idx: np.ndarray, val_idx: np.ndarray) -> tuple[bytes, ModelSpec]:
        """The int8 model of the plan PARAMS trained on the training samples FIT_IDX (VAL_IDX: what
        training and the PTQ-or-QAT choice watch), and its spec."""
        import optuna

        plan = suggest(optuna.trial.FixedTrial(params), self.data, self.limits, teacher=self.teacher_spec, seed=self.seed,
                       recipe=self.recipe)
        x, y = self.features(plan.spec), self.data.y_train
        seed_everything(self.seed)
        model = build(plan.spec)
        fit(model, x[fit_idx], y[fit_idx], plan.train, kind=self.data.kind, teacher=self.teacher,
            validation=(x[val_idx], y[val_idx]))
        q = quantize_with_fallback(model, plan.spec, x[fit_idx], y[fit_idx], x[val_idx], y[val_idx],
                                   representative_set(x, self.seed), kind=self.data.kind, qat=plan.qat, seed=self.seed)
        return q.tflite, plan.spec

    def _shrink(self, trial, plan, model):
        """The trained MODEL pruned into the budget, fine-tuned distilling from itself (the shrink
        recipes): (tflite, spec, float validation accuracy, quantization), or None when no pruning
        step reaches the budget (the trial is then infeasible)."""
        from tinyeff.compress.shrink import ShrinkConfig, shrink_model
        from tinyeff.train.fit import evaluate

        cfg = ShrinkConfig(step_fraction=0.25, compare_plain=False, qat=plan.qat, test_accuracy=False,
                           finetune=TrainConfig(epochs=shrink_finetune_epochs(plan.train.epochs), patience=8, learning_rate=2e-3, seed=self.seed))
        trial.set_user_attr("start_spec", plan.spec.to_json())
        trial.set_user_attr("start_footprint", trial.user_attrs.get("footprint"))
        try:
            r = shrink_model(self.data, plan.spec, model, self.budget, cfg, split=(self._fit, self._val))
        except TinyeffError as e:
            trial.set_user_attr("shrink", str(e))
            trial.set_user_attr("describe", f"{plan.describe()}, no pruning step reached the budget")
            return None
        x_val = self.features(r.spec)[self._val]
        trial.set_user_attr("shrink_steps", r.chosen.step)
        method = "qat" if r.chosen.method.endswith("+qat") else "ptq"
        return r.tflite, r.spec, evaluate(r.model, x_val, self.data.y_train[self._val]), method

    def _record(self, trial, fp: Footprint, *, trained: bool) -> None:
        trial.set_user_attr("trained", trained)
        trial.set_user_attr("footprint", fp.to_json())

    def _constrain(self, trial, fp: Footprint) -> None:
        """The constraints the samplers rank by; Optuna takes them once per trial, so they are set
        when the trial ends: infeasible, pruned (from the untrained footprint) or trained."""
        for key, value in constraints(self.budget, fp).items():
            trial.set_constraint(key, value)

    @property
    def directions(self) -> list[str]:
        return ["maximize"] + (["minimize"] * (3 if self.latency_board else 2) if self.pareto else [])

    def _values(self, accuracy: float, fp: Footprint, latency: float | None = None):
        """The objective values; a trial that was not benched (over budget) gets latency 0, which the
        constraints outrank as they do its accuracy of 0."""
        if not self.pareto:
            return accuracy
        values = [accuracy, float(fp.flash_bytes), float(fp.ram_bytes)]
        return tuple(values + [latency or 0.0] if self.latency_board else values)
