"""A search end to end: check the budget can be met, run this worker's trials, report the study."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from tinyeff.compress.shrink import Budget
from tinyeff.data.dataset import Dataset
from tinyeff.errors import TinyeffError
from tinyeff.search.space import SPACE_VERSION, SpaceLimits

MODEL_FILE = "model.int8.tflite"


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    data: Dataset
    data_source: dict  # how to load DATA again ({"spec", "lang", "seed"}), part of what the study is for
    budget: Budget
    out: Path
    trials: int
    storage: str | None = None  # None: SQLite in OUT
    study: str = "tinyeff-search"
    pareto: bool = False
    sampler: str = "tpe"
    pruner: str = "median"
    limits: SpaceLimits = SpaceLimits()
    seed: int = 0
    teacher: Path | None = None
    compare: tuple[Path, ...] = ()  # shrink runs and other searches to plot and report beside this one
    recipe: str = "plain"
    heartbeat_s: int = 30
    latency_board: str | None = None  # measure emulated instructions of every trial that fits, on this QEMU board
    refit: bool = True  # export the best plain trial trained again on the whole training split
    rerank: int = 5  # plain: the trials of best validation that fit, cross-validated to choose the one exported (< 2: none)


@dataclasses.dataclass(frozen=True)
class SearchOutcome:
    summary: dict
    best_model: Path | None


def smallest_footprint(data: Dataset, limits: SpaceLimits, seed: int):
    """The measured footprint of the smallest model the space holds (untrained, as a trial's first check)."""
    from tinyeff.compress.quantize import representative_set, to_int8_tflite
    from tinyeff.footprint import measure
    from tinyeff.search.objective import untrained_probe
    from tinyeff.search.space import smallest
    from tinyeff.train.run import features_of

    spec = smallest(data, limits)
    x_rep = representative_set(features_of(spec, data.x_train), seed)
    return measure(to_int8_tflite(untrained_probe(spec, seed), spec, x_rep), "the smallest model of the search space")


def search(s: SearchSettings, progress: Callable[[str], None] = lambda line: None) -> SearchOutcome:
    import optuna

    from tinyeff.search import results
    from tinyeff.search.objective import WORKER, Objective
    from tinyeff.search.study import StudyConfig, counts, open_storage, open_study, requeue_interrupted, run_worker, storage_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if s.latency_board:
        from tinyeff.search.latency import require_emulated

        require_emulated(s.latency_board)
    compare = [compare_run(p) for p in s.compare]  # refused before hours of search, not after
    small = smallest_footprint(s.data, s.limits, s.seed)
    if not s.budget.fits(small):
        raise TinyeffError(
            f"no model of the search space fits {s.budget.describe()}: the smallest reaches "
            f"{small.flash_bytes / 1024:.2f} KiB flash and {small.ram_bytes / 1024:.2f} KiB RAM; raise the budget")
    teacher = teacher_spec = None
    if s.teacher is not None:
        from tinyeff.train import Run

        trun = Run.load(s.teacher)
        if trun.spec.n_classes != s.data.n_classes or (s.data.kind != "text" and trun.spec.input_shape != tuple(s.data.input_shape)):
            raise TinyeffError(f"teacher '{s.teacher}' has another input or class count than this data; train it on the same data")
        teacher, teacher_spec = trun.keras_model(), trun.spec

    if s.storage is None:  # the SQLite file lives in OUT; with a server, a bad URL leaves no directory behind
        s.out.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage_url(s.storage, s.out), s.heartbeat_s)
    s.out.mkdir(parents=True, exist_ok=True)
    config = StudyConfig(data=json.dumps(s.data_source, sort_keys=True),
                         budget={"flash_bytes": s.budget.flash_bytes, "ram_bytes": s.budget.ram_bytes},
                         pareto=s.pareto, recipe=s.recipe, latency_board=s.latency_board or "",
                         space=dataclasses.asdict(s.limits) | {"teacher": str(s.teacher or ""), "version": SPACE_VERSION})
    objective = Objective(s.data, s.budget, s.limits, pareto=s.pareto, seed=s.seed, teacher=teacher,
                          teacher_spec=teacher_spec, latency_board=s.latency_board, recipe=s.recipe)
    study = open_study(storage, s.study, config, objective.directions, seed=s.seed, sampler=s.sampler, pruner=s.pruner,
                       max_epochs=s.limits.max_epochs, worker_salt=0 if s.storage is None else zlib.crc32(WORKER.encode()))
    again = requeue_interrupted(study)
    if again:
        progress(f"trials {', '.join(map(str, again))} were interrupted; their parameters run again first")
    anchor = enqueue_anchor(study, s, objective)
    if anchor:
        progress(f"queued first: the plan nearest the linear baseline that fits, {anchor}")

    def after_trial(t) -> None:
        rows = results.rows(study)
        best = results.best_feasible(rows)
        row = next(r for r in rows if r.number == t.number)
        c = counts(study)
        progress(f"[{c.finished}/{s.trials}] trial {t.number} {_outcome(row)}"
                 + (f" | best that fits: trial {best.number}, {100 * best.int8_val_accuracy:.1f} % "
                    f"({best.flash_bytes / 1024:.1f} KiB flash, {best.ram_bytes / 1024:.1f} KiB RAM)" if best else ""))

    t0 = time.monotonic()
    ran = run_worker(study, objective, s.trials, heartbeat_s=s.heartbeat_s, after_trial=after_trial)
    worker_s = time.monotonic() - t0
    return report(study, s, objective, ran, worker_s, compare, progress)


ANCHOR_ATTR = "anchor"


def enqueue_anchor(study, s: SearchSettings, objective) -> str | None:
    """Queue the widest plan of space.baseline_like_plans that fits the budget (measured untrained, as
    a trial is first measured), unless the study holds one already or is done; what it is, or None.
    A plain search without a teacher only: a teacher fixes the projection, a shrink recipe starts wide."""
    import optuna

    from tinyeff.compress.quantize import representative_set, to_int8_tflite
    from tinyeff.footprint import measure
    from tinyeff.search.objective import untrained_probe
    from tinyeff.search.space import baseline_like_plans, suggest
    from tinyeff.search.study import counts

    if s.recipe != "plain" or s.teacher is not None or counts(study).finished >= s.trials:
        return None
    if any(t.user_attrs.get(ANCHOR_ATTR) for t in study.get_trials(deepcopy=False)):
        return None
    for params in baseline_like_plans(s.data, s.limits):
        plan = suggest(optuna.trial.FixedTrial(params), s.data, s.limits, teacher=None, seed=s.seed)
        x_rep = representative_set(objective.features(plan.spec), s.seed)
        try:
            fp = measure(to_int8_tflite(untrained_probe(plan.spec, s.seed), plan.spec, x_rep), "the anchor plan")
        except TinyeffError:  # an untrained model TFLM refuses (see Objective): the next, narrower one
            continue
        if s.budget.fits(fp):
            # skip_if_exists: a second worker starting at the same moment finds it queued
            study.enqueue_trial(params, user_attrs={ANCHOR_ATTR: True}, skip_if_exists=True)
            return plan.describe()
    return None


def _outcome(r) -> str:
    if r.state == "pruned":
        return f"{r.model}: pruned at epoch {r.pruned_at_epoch}"
    if r.state == "fail":
        return f"{r.model}: failed"
    size = f"{r.flash_bytes / 1024:.1f} KiB flash, {r.ram_bytes / 1024:.1f} KiB RAM" if r.flash_bytes else ""
    if not r.trained:  # measured before training (plain), or no pruning step reached the budget (shrink recipes)
        return f"{r.model}: {size}, over budget"
    latency = f", {r.emulated_instructions:,.0f} emulated instructions" if r.emulated_instructions else ""
    return f"{r.model}: {size}, int8 val {100 * r.int8_val_accuracy:.1f} %{latency}{'' if r.feasible else ', over budget'}"


def report(study, s: SearchSettings, objective, ran: int, worker_s: float, compare: list[dict],
           progress: Callable[[str], None]) -> SearchOutcome:
    """Export the best model that fits (of a plain search: among the RERANK best on validation, the one
    cross-validation ranks first, refit on the whole training split when it still fits), measure it
    (only it) on the test split, write the reports."""
    from tinyeff.compress.quantize import int8_accuracy
    from tinyeff.footprint import read_model
    from tinyeff.models.spec import ModelSpec
    from tinyeff.search import results
    from tinyeff.search.objective import tflite_of
    from tinyeff.train.run import features_of

    rows = results.rows(study)
    best = results.best_feasible(rows)
    choice = {"by": "validation"}
    candidates = results.ranked_feasible(rows)[:s.rerank] if s.recipe == "plain" else []
    if len(candidates) > 1:
        from tinyeff.search import crossval

        chosen, scores = crossval.choose(study, candidates, objective, seed=s.seed, progress=progress)
        rows = results.rows(study)  # with the fold scores
        best = next(r for r in rows if r.number == chosen.number)
        choice = {"by": f"{crossval.FOLDS}-fold cross-validation", "folds": crossval.FOLDS,
                  "candidates": [{"number": c.number, "int8_val_accuracy": c.int8_val_accuracy, "cv_accuracy": f.accuracy,
                                  "cv_right": f.right, "cv_samples": f.samples} for c, f in zip(candidates, scores)]}
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    by_state: dict[str, int] = {}
    for r in rows:
        key = "infeasible" if r.state == "complete" and not r.trained else r.state
        by_state[key] = by_state.get(key, 0) + 1
    summary = {
        "study": s.study,
        "recipe": s.recipe,
        "storage": "sqlite" if s.storage is None else s.storage.split(":", 1)[0],
        "data": s.data_source,
        "budget": {"flash_bytes": s.budget.flash_bytes, "ram_bytes": s.budget.ram_bytes},
        "objectives": ["int8_val_accuracy"] + (["flash_bytes", "ram_bytes"] + (["emulated_instructions"] if s.latency_board else [])
                                               if s.pareto else []),
        "latency_board": s.latency_board,
        "trial_counts": by_state,
        "this_worker": {"trials": ran, "seconds": worker_s, "pid": os.getpid()},
        "study_wall_seconds": (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0,
        "best": None,
        "choice": choice,
    }
    model_path = None
    if best is not None:
        trial = study.trials[best.number]
        tfl, spec = tflite_of(trial), ModelSpec.from_json(trial.user_attrs["spec"])
        exported = {"refit": False, "flash_bytes": best.flash_bytes, "ram_bytes": best.ram_bytes,
                    "emulated_instructions": best.emulated_instructions}
        if s.refit and s.recipe == "plain":
            progress(f"training trial {best.number}'s plan again on the whole training split")
            refit, refit_spec, fp = objective.refit(trial.params)
            if s.budget.fits(fp):
                tfl, spec = refit, refit_spec
                exported = {"refit": True, "flash_bytes": fp.flash_bytes, "ram_bytes": fp.ram_bytes,
                            "emulated_instructions": objective.latency(tfl, spec)}
            else:
                exported["refit_over_budget"] = fp.to_json()
        read_model(tfl, MODEL_FILE)  # the stored bytes are a model before they are a file
        model_path = s.out / MODEL_FILE
        tmp = s.out / f".{MODEL_FILE}.tmp"
        tmp.write_bytes(tfl)
        tmp.replace(model_path)
        summary["best"] = dict(dataclasses.asdict(best), spec=spec.to_json(), exported=exported,
                               int8_test_accuracy=int8_accuracy(tfl, features_of(spec, s.data.x_test), s.data.y_test))
    if s.data.kind == "text":
        from tinyeff.search.baseline import linear_text_baseline

        summary["linear_baseline"] = linear_text_baseline(s.data, s.seed).to_json()
    summary["compare"] = [{k: v for k, v in c.items() if k != "points"} for c in compare]
    results.write_report(s.out, rows, best, s.budget, summary, compare)
    return SearchOutcome(summary, model_path)


def compare_run(path: Path) -> dict:
    """What to set beside the search from PATH: a `tinyeff shrink` run (the default pipeline: its
    candidates) or another search's run directory (its trained trials), with the test accuracy of
    the model each chose."""
    shrink_report, search_report = path / "candidates.json", path / "search.json"
    if shrink_report.is_file() and (path / "metrics.json").is_file():
        m = json.loads((path / "metrics.json").read_text())
        points = [{"flash_bytes": c["flash_bytes"], "ram_bytes": c["ram_bytes"], "int8_val_accuracy": c["int8_val_accuracy"]}
                  for c in json.loads(shrink_report.read_text())["candidates"]]
        return {"name": path.name, "kind": "shrink", "label": "tinyeff train + shrink, on its own validation slice", "int8_test_accuracy": m["int8_accuracy"],
                "flash_bytes": m["footprint"]["flash_bytes"], "ram_bytes": m["footprint"]["ram_bytes"], "points": points}
    if search_report.is_file():
        doc = json.loads(search_report.read_text())
        best = doc.get("best") or {}
        points = [{k: t[k] for k in ("flash_bytes", "ram_bytes", "int8_val_accuracy")}
                  for t in doc["trials"] if t["state"] == "complete" and t["trained"]]
        return {"name": path.name, "kind": "search", "label": f"search, {doc.get('recipe', 'plain')}",
                "int8_test_accuracy": best.get("int8_test_accuracy"), "flash_bytes": best.get("flash_bytes"),
                "ram_bytes": best.get("ram_bytes"), "points": points}
    raise TinyeffError(f"'{path}' is neither a shrink run (candidates.json) nor a search (search.json); "
                       "give the directory 'tinyeff shrink' or 'tinyeff search' wrote")
