"""What a search leaves a user: every trial as CSV and JSON, the Pareto front as a PNG, the best
model that fits as an int8 .tflite, and that one model's test-split accuracy."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from tinyeff.compress.shrink import Budget

COLUMNS = ("number", "state", "feasible", "trained", "pareto", "best", "model", "flash_bytes", "ram_bytes", "macs",
           "emulated_instructions",
           "int8_val_accuracy", "int8_val_loss", "cv_accuracy", "float_val_accuracy", "quantization", "epochs_run", "pruned_at_epoch",
           "retry_of", "worker", "params")


COMPARE_STYLES = (("^", "tab:orange"), ("s", "tab:green"), ("D", "tab:purple"), ("v", "tab:brown"), ("P", "tab:pink"))


@dataclasses.dataclass(frozen=True)
class TrialRow:
    """One trial as the study recorded it; accuracy only for trials that were trained to the end."""

    number: int
    state: str  # complete | pruned | fail | running | waiting
    feasible: bool | None  # None before the footprint was measured
    trained: bool
    model: str
    flash_bytes: int | None
    ram_bytes: int | None
    macs: int | None
    emulated_instructions: float | None  # median on the emulated board, with --latency
    int8_val_accuracy: float | None
    int8_val_loss: float | None
    cv_accuracy: float | None  # int8 accuracy over k folds of the training split (candidates for the choice only)
    float_val_accuracy: float | None
    quantization: str | None
    epochs_run: int | None
    pruned_at_epoch: int | None
    retry_of: int | None
    worker: str  # host:pid of the worker that ran it
    params: dict

    @property
    def complete(self) -> bool:
        return self.state == "complete" and self.trained


def rows(study) -> list[TrialRow]:
    from tinyeff.search.crossval import stored

    cv = stored(study)
    out = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        fp = a.get("footprint") or {}
        c = list(t.constraints.values())
        out.append(TrialRow(
            number=t.number, state=t.state.name.lower(), feasible=max(c) <= 0 if c else None,
            trained=bool(a.get("trained")), model=a.get("describe", ""), flash_bytes=fp.get("flash_bytes"),
            ram_bytes=fp.get("ram_bytes"), macs=fp.get("macs"), emulated_instructions=a.get("emulated_instructions"),
            int8_val_accuracy=a.get("int8_val_accuracy"),
            int8_val_loss=a.get("int8_val_loss"), cv_accuracy=cv[t.number].accuracy if t.number in cv else None,
            float_val_accuracy=a.get("float_val_accuracy"),
            quantization=a.get("quantization"), epochs_run=a.get("epochs_run"), pruned_at_epoch=a.get("pruned_at_epoch"),
            retry_of=a.get("retry_of", t.system_attrs.get("failed_trial")), worker=a.get("worker", ""), params=dict(t.params),
        ))
    return out


def pareto_front(trials: list[TrialRow]) -> set[int]:
    """Trained trials that no other trained trial beats on int8 validation accuracy, flash and RAM
    (and emulated instructions, when every one was benched) at once."""
    done = [t for t in trials if t.complete]
    timed = all(t.emulated_instructions is not None for t in done)

    def scores(t: TrialRow) -> tuple:  # larger is better in every place
        return (t.int8_val_accuracy, -t.flash_bytes, -t.ram_bytes) + ((-t.emulated_instructions,) if timed else ())

    def beats(o: TrialRow, t: TrialRow) -> bool:
        so, st = scores(o), scores(t)
        return all(a >= b for a, b in zip(so, st)) and so != st

    return {t.number for t in done if not any(beats(o, t) for o in done)}


def ranked_feasible(trials: list[TrialRow]) -> list[TrialRow]:
    """The trained trials that fit, most accurate on validation first; a small validation slice
    saturates, so its loss breaks ties, then the smaller footprint."""
    fitting = [t for t in trials if t.complete and t.feasible]
    return sorted(fitting, key=lambda t: (-t.int8_val_accuracy, t.int8_val_loss, t.flash_bytes, t.ram_bytes))


def best_feasible(trials: list[TrialRow]) -> TrialRow | None:
    """The first of ranked_feasible, None when no trained trial fits."""
    ranked = ranked_feasible(trials)
    return ranked[0] if ranked else None


def write_report(out: Path, trials: list[TrialRow], best: TrialRow | None, budget: Budget, summary: dict,
                 compare: list[dict] = ()) -> None:
    """trials.csv, search.json and pareto.png in OUT."""
    front = pareto_front(trials)
    with open(out / "trials.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for t in trials:
            row = dataclasses.asdict(t)
            row.update(pareto=t.number in front, best=best is not None and t.number == best.number,
                       params=json.dumps(t.params, sort_keys=True))
            w.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
    doc = dict(summary, pareto_front=sorted(front), trials=[dict(dataclasses.asdict(t), pareto=t.number in front) for t in trials])
    (out / "search.json").write_text(json.dumps(doc, indent=2) + "\n")
    plot(out / "pareto.png", trials, front, best, budget, compare)


def plot(path: Path, trials: list[TrialRow], front: set[int], best: TrialRow | None, budget: Budget,
         compare: list[dict]) -> None:
    """Accuracy against flash and against RAM: every trained trial, the front, the budget, and the
    models of the compared runs (shrink candidates, other searches' trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [t for t in trials if t.complete]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, limit, label in ((axes[0], "flash_bytes", budget.flash_bytes, "flash (.tflite) KiB"),
                                  (axes[1], "ram_bytes", budget.ram_bytes, "RAM (host TFLM arena) KiB")):
        for feasible, color, name in ((True, "tab:blue", "this search, fits"), (False, "tab:gray", "this search, over budget")):
            pts = [t for t in done if t.feasible is feasible]
            if pts:
                ax.scatter([getattr(t, key) / 1024 for t in pts], [100 * t.int8_val_accuracy for t in pts],
                           color=color, alpha=0.7, label=name)
        fr = sorted((t for t in done if t.number in front), key=lambda t: getattr(t, key))
        ax.step([getattr(t, key) / 1024 for t in fr], [100 * t.int8_val_accuracy for t in fr], where="post",
                color="black", lw=1, label="search Pareto front")
        for c, (marker, color) in zip(compare, COMPARE_STYLES):
            pts = c["points"]
            ax.scatter([p[key] / 1024 for p in pts], [100 * p["int8_val_accuracy"] for p in pts], marker=marker,
                       color=color, alpha=0.7, label=f"{c['label']} ({c['name']})")
        if best is not None:
            ax.scatter([getattr(best, key) / 1024], [100 * best.int8_val_accuracy], marker="*", s=260,
                       color="tab:red", zorder=5, label="best that fits")
        if limit:
            ax.axvline(limit / 1024, color="tab:red", ls="--", lw=1, label="budget")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("int8 validation accuracy %")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle("tinyeff search: trials, quality against footprint (all measured)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
