"""Shrink a trained model until it fits a flash/RAM budget: prune, fine-tune, quantize, measure.

Each step removes a share of the channels (``plan``), then fine-tunes the pruned model twice
from the same weights: once distilling from the unpruned model (shrink-and-improve) and once on
the labels alone, so the report can compare the two at exactly the same footprint. The
distilled model carries on to the next step. Every candidate is converted to full int8 and
measured from the artifact (``.tflite`` bytes, host TFLM arena). The search stops one step
after the first candidate that fits, and the chosen model is the fitting candidate with the
best int8 accuracy on the validation slice of the training data (the test set picks nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from tinyeff._native import seed_everything
from tinyeff.compress.prune import Pressure, plan, pruned_copy
from tinyeff.compress.qat import quantize_with_fallback
from tinyeff.compress.quantize import int8_accuracy, int8_scores, representative_set, to_int8_tflite
from tinyeff.data.dataset import Dataset, stratified_split
from tinyeff.errors import TinyeffError
from tinyeff.footprint import Footprint, measure
from tinyeff.models.spec import ModelSpec
from tinyeff.train.fit import TrainConfig, evaluate, fit
from tinyeff.train.run import Run, features_of


@dataclasses.dataclass(frozen=True)
class Budget:
    flash_bytes: int | None
    ram_bytes: int | None

    def __post_init__(self) -> None:
        if self.flash_bytes is None and self.ram_bytes is None:
            raise TinyeffError("no budget given; pass --flash-kib, --ram-kib, both, or --board")
        for what, v in (("flash", self.flash_bytes), ("RAM", self.ram_bytes)):
            if v is not None and v <= 0:
                raise TinyeffError(f"the {what} budget must be positive, got {v} bytes")

    def fits(self, fp: Footprint) -> bool:
        return (self.flash_bytes is None or fp.flash_bytes <= self.flash_bytes) and (
            self.ram_bytes is None or fp.ram_bytes <= self.ram_bytes
        )

    def pressure(self, fp: Footprint) -> Pressure:
        return Pressure(
            flash=fp.flash_bytes / self.flash_bytes - 1 if self.flash_bytes else 0.0,
            ram=fp.ram_bytes / self.ram_bytes - 1 if self.ram_bytes else 0.0,
        )

    def describe(self) -> str:
        parts = []
        if self.flash_bytes is not None:
            parts.append(f"flash <= {self.flash_bytes / 1024:g} KiB")
        if self.ram_bytes is not None:
            parts.append(f"RAM <= {self.ram_bytes / 1024:g} KiB")
        return " and ".join(parts)


@dataclasses.dataclass(frozen=True)
class ShrinkConfig:
    step_fraction: float = 0.15  # largest share of the remaining channels removed in one step
    min_step_fraction: float = 0.04  # steps shrink to this as the model nears the budget
    max_steps: int = 30
    steps_after_fit: int = 1
    compare_plain: bool = True
    qat: str = "auto"  # quantization-aware fine-tuning of the chosen model: auto | always | off
    finetune: TrainConfig = TrainConfig(epochs=40, patience=10, learning_rate=2e-3)
    # Every candidate's test accuracy, for the report (the choice never reads it); a search that
    # shrinks in every trial leaves it out (NaN), as it measures only its one chosen model on the test split
    test_accuracy: bool = True


@dataclasses.dataclass(frozen=True)
class Candidate:
    step: int
    method: str  # "trained" | "distilled" | "plain", with "+qat" after quantization-aware fine-tuning
    widths: tuple[int, ...]
    float_accuracy: float
    int8_accuracy: float
    int8_val_accuracy: float
    int8_val_loss: float
    footprint: Footprint
    fits: bool

    @property
    def name(self) -> str:
        return f"step{self.step:02d}-{self.method}"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "step": self.step,
            "method": self.method,
            "widths": list(self.widths),
            "float_accuracy": self.float_accuracy,
            "int8_accuracy": self.int8_accuracy,
            "int8_val_accuracy": self.int8_val_accuracy,
            "int8_val_loss": self.int8_val_loss,
            "fits": self.fits,
            **self.footprint.to_json(),
        }


@dataclasses.dataclass(frozen=True)
class ShrinkResult:
    candidates: tuple[Candidate, ...]
    chosen: Candidate
    model: object  # the chosen float keras model
    spec: ModelSpec
    tflite: bytes


def _step_fraction(cfg: ShrinkConfig, p: Pressure) -> float:
    """Big steps while far over budget, small ones close to it, so the last step does not overshoot."""
    over = max(p.flash, p.ram)
    if over <= 0:
        return cfg.min_step_fraction
    return float(np.clip(over / 2, cfg.min_step_fraction, cfg.step_fraction))


def shrink(run: Run, budget: Budget, cfg: ShrinkConfig = ShrinkConfig(), progress: Callable[[str], None] = lambda s: None) -> ShrinkResult:
    """Prune RUN's model step by step until it fits BUDGET; see the module docstring."""
    return shrink_model(run.data, run.spec, run.keras_model(), budget, cfg, progress)


def shrink_model(data: Dataset, spec: ModelSpec, teacher, budget: Budget, cfg: ShrinkConfig = ShrinkConfig(),
                 progress: Callable[[str], None] = lambda s: None,
                 split: tuple[np.ndarray, np.ndarray] | None = None) -> ShrinkResult:
    """Prune TEACHER (a float keras model of SPEC trained on DATA) step by step until it fits BUDGET.
    SPLIT: the (fit, validation) indices of the training split to use instead of a stratified 10 %."""
    x_train, x_test = features_of(spec, data.x_train), features_of(spec, data.x_test)
    # One validation slice, never trained on, decides early stopping and the choice: fine-tuning
    # with a fresh split each step would train on the slice that later ranks the candidates.
    fit_part, val = split if split is not None else stratified_split(data.y_train, 0.1, cfg.finetune.seed)
    x_fit, y_fit = x_train[fit_part], data.y_train[fit_part]
    x_val, y_val = x_train[val], data.y_train[val]
    x_rep = representative_set(x_train, cfg.finetune.seed)

    candidates: list[Candidate] = []
    artifacts: dict[str, tuple[object, ModelSpec, bytes]] = {}

    def evaluate_candidate(step: int, method: str, model, mspec: ModelSpec) -> Candidate:
        tfl = to_int8_tflite(model, mspec, x_rep)
        fp = measure(tfl, f"{method} step {step}")
        val_accuracy, val_loss = int8_scores(tfl, x_val, y_val)
        c = Candidate(
            step=step,
            method=method,
            widths=mspec.widths,
            float_accuracy=evaluate(model, x_test, data.y_test) if cfg.test_accuracy else float("nan"),
            int8_accuracy=int8_accuracy(tfl, x_test, data.y_test) if cfg.test_accuracy else float("nan"),
            int8_val_accuracy=val_accuracy,
            int8_val_loss=val_loss,
            footprint=fp,
            fits=budget.fits(fp),
        )
        candidates.append(c)
        artifacts[c.name] = (model, mspec, tfl)
        progress(
            f"{c.name:18s} widths {list(mspec.widths)!s:22s} flash {fp.flash_bytes / 1024:6.2f} KiB  "
            f"RAM {fp.ram_bytes / 1024:5.2f} KiB  int8 {100 * c.int8_accuracy:5.1f} %  {'fits' if c.fits else ''}"
        )
        return c

    current = evaluate_candidate(0, "trained", teacher, spec)
    model, mspec = teacher, spec
    steps_since_fit = 0 if current.fits else None
    step = 0
    while step < cfg.max_steps and (steps_since_fit is None or steps_since_fit < cfg.steps_after_fit):
        keep = plan(model, mspec, spec, _step_fraction(cfg, budget.pressure(current.footprint)), budget.pressure(current.footprint))
        if keep is None:
            break
        step += 1
        tcfg = dataclasses.replace(cfg.finetune, seed=cfg.finetune.seed + step)
        # Building a model draws its dropout layer's seed from the global random state: seeding
        # first makes a rerun repeat the shrink, and gives both fine-tunes of a step the same
        # dropout, so that they differ in distillation only.
        seed_everything(tcfg.seed)
        pruned, pspec = pruned_copy(model, mspec, keep)
        start = pruned.get_weights()
        if cfg.compare_plain:
            seed_everything(tcfg.seed)
            plain, _ = pruned_copy(model, mspec, keep)
            fit(plain, x_fit, y_fit, tcfg, kind=data.kind, validation=(x_val, y_val))
            evaluate_candidate(step, "plain", plain, pspec)
        pruned.set_weights(start)
        fit(pruned, x_fit, y_fit, tcfg, kind=data.kind, teacher=teacher, validation=(x_val, y_val))
        current = evaluate_candidate(step, "distilled", pruned, pspec)
        model, mspec = pruned, pspec
        if current.fits and steps_since_fit is None:
            steps_since_fit = 0
        elif steps_since_fit is not None:
            steps_since_fit += 1

    fitting = [c for c in candidates if c.fits]
    if not fitting:
        smallest = min(candidates, key=lambda c: (c.footprint.flash_bytes, c.footprint.ram_bytes))
        raise TinyeffError(
            f"no candidate fits {budget.describe()}: the smallest reached {smallest.footprint.flash_bytes / 1024:.2f} KiB flash "
            f"and {smallest.footprint.ram_bytes / 1024:.2f} KiB RAM at {100 * smallest.int8_accuracy:.1f} % int8 accuracy; "
            "raise the budget or train a smaller model"
        )
    # A validation slice of a small dataset saturates (many candidates at 99-100 %), so its loss
    # breaks ties: of equally accurate candidates, the one most confident in the right answers.
    chosen = max(fitting, key=lambda c: (c.int8_val_accuracy, -c.int8_val_loss))
    model, mspec, tfl = artifacts[chosen.name]
    # The kit's promise is int8 within a point of float: when post-training quantization breaks it
    # on validation, the chosen model gets quantization-aware fine-tuning (see compress/qat.py).
    q = quantize_with_fallback(model, mspec, x_fit, y_fit, x_val, y_val, x_rep, kind=data.kind, qat=cfg.qat,
                               seed=cfg.finetune.seed, progress=progress)
    if q.method == "qat":
        qat = evaluate_candidate(chosen.step, f"{chosen.method}+qat", q.model, mspec)
        if qat.fits:
            chosen = qat
            model, mspec, tfl = artifacts[qat.name]
    return ShrinkResult(tuple(candidates), chosen, model, mspec, tfl)


def distillation_summary(candidates: tuple[Candidate, ...]) -> dict:
    """Distilled vs plain fine-tuning at the same widths (so the same footprint), per step."""
    by = {(c.step, c.method): c for c in candidates}
    pairs = [(by[(s, "distilled")], by[(s, "plain")]) for s, m in by if m == "distilled" and (s, "plain") in by]
    if not pairs:
        return {"steps": 0}
    diffs = np.array([d.int8_accuracy - p.int8_accuracy for d, p in pairs])
    return {
        "steps": len(pairs),
        "distilled_better": int((diffs > 0).sum()),
        "plain_better": int((diffs < 0).sum()),
        "ties": int((diffs == 0).sum()),
        "mean_gain_points": float(100 * diffs.mean()),
    }
