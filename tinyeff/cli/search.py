"""Searching for the best model under a footprint budget."""

from __future__ import annotations

from pathlib import Path

from tinyeff.cli.model import _budget
from tinyeff.cli.output import Progress, pct
from tinyeff.errors import TinyeffError
from tinyeff.search.space import RECIPES, SpaceLimits


def cmd_search(args) -> int:
    from tinyeff.data import load_dataset
    from tinyeff.search.run import SearchSettings, search

    for option, value, least in (("--trials", args.trials, 1), ("--rerank", args.rerank, 0)):
        if value < least:
            raise TinyeffError(f"{option} takes a number of trials of {least} or more, not {value}")
    budget = _budget(args)
    data = load_dataset(args.data, lang=args.lang, seed=args.seed)
    limits = SpaceLimits(max_depth=args.max_depth, max_width=args.max_width, min_epochs=min(args.min_epochs, args.max_epochs),
                         max_epochs=args.max_epochs)
    settings = SearchSettings(
        data=data, data_source={"spec": args.data, "lang": args.lang, "seed": args.seed}, budget=budget,
        out=Path(args.out), trials=args.trials, storage=args.storage, study=args.study, pareto=args.pareto,
        sampler=args.sampler, pruner="none" if args.pareto else args.pruner, limits=limits, seed=args.seed,
        teacher=Path(args.teacher) if args.teacher else None, compare=tuple(Path(c) for c in args.compare), recipe=args.recipe,
        heartbeat_s=args.heartbeat, latency_board=args.latency_board if args.latency else None, refit=not args.no_refit,
        rerank=args.rerank,
    )
    progress = Progress(args.quiet)
    progress(f"searching ({args.recipe}) {data.name} ({data.kind}, {len(data.y_train)} train samples) for the best int8 model under "
             f"{budget.describe()}: {args.trials} trials in study '{args.study}'")
    outcome = search(settings, progress)
    print("\n".join(summary_lines(outcome.summary, outcome.best_model, Path(args.out))))
    return 0


def summary_lines(s: dict, model: Path | None, out: Path) -> list[str]:
    t = s["trial_counts"]
    lines = [f"study '{s['study']}': " + ", ".join(f"{n} {state}" for state, n in sorted(t.items()))
             + f"; this worker ran {s['this_worker']['trials']} in {s['this_worker']['seconds']:.0f} s, "
             f"the study {s['study_wall_seconds']:.0f} s from its first trial to its last"]
    b = s["best"]
    if b is None:
        lines.append("no trained trial fits the budget yet; run more trials or raise the budget")
    else:
        e = b["exported"]
        lines.append(f"best that fits: trial {b['number']} {b['model']} (validation {pct(b['int8_val_accuracy'])})"
                     + (", trained again on the whole training split" if e["refit"] else "")
                     + f": int8 test accuracy {pct(b['int8_test_accuracy'])}, flash {e['flash_bytes']:,} B, RAM {e['ram_bytes']:,} B"
                     + (f", {e['emulated_instructions']:,.0f} emulated instructions on {s['latency_board']}"
                        if e.get("emulated_instructions") else ""))
        lines.append(f"  {model}: ready for 'tinyeff generate {model} --board BOARD'")
        lines += choice_lines(s["choice"])
    for c in s.get("compare", []):
        if c["int8_test_accuracy"] is None:
            lines.append(f"{c['label']} ({c['name']}): no model that fits")
            continue
        lines.append(f"{c['label']} ({c['name']}): int8 test accuracy {pct(c['int8_test_accuracy'])}, "
                     f"flash {c['flash_bytes']:,} B, RAM {c['ram_bytes']:,} B")
    if "linear_baseline" in s:
        lines += baseline_lines(s["linear_baseline"], b)
    lines.append(f"report: {out / 'trials.csv'}, {out / 'search.json'}, {out / 'pareto.png'}")
    return lines


def choice_lines(choice: dict) -> list[str]:
    """How the exported trial was chosen: the candidates' validation and cross-validation scores."""
    if choice["by"] == "validation":
        return []
    return [f"  chosen by {choice['by']} of the training split among the {len(choice['candidates'])} best on validation "
            "(validation -> held-out folds): "
            + ", ".join(f"trial {c['number']} {pct(c['int8_val_accuracy'])} -> {pct(c['cv_accuracy'])}" for c in choice["candidates"])]


def baseline_lines(lb: dict, best: dict | None) -> list[str]:
    """The linear baseline beside the searched model, in test samples right: on a few thousand
    sentences the two often differ by less than the 0.1 % the other lines print."""
    n = lb["test_samples"]

    def right(accuracy: float) -> int:
        return round(accuracy * n)

    lines = [f"linear baseline ({lb['name']}, no budget): test accuracy {100 * lb['test_accuracy']:.2f} % "
             f"({right(lb['test_accuracy']):,} of {n:,})"]
    if best is not None:
        gap = right(best["int8_test_accuracy"]) - right(lb["test_accuracy"])
        verdict = (f"{gap:,} more right than the baseline" if gap > 0 else
                   "as many right as the baseline" if gap == 0 else f"{-gap:,} fewer right than the baseline")
        lines.append(f"  the searched int8 model: {100 * best['int8_test_accuracy']:.2f} % ({right(best['int8_test_accuracy']):,} of {n:,}), "
                     + verdict)
    return lines


def add_parsers(sub) -> None:
    s = sub.add_parser("search", help="search architectures and training settings for the most accurate int8 model under a budget")
    s.add_argument("--data", required=True, help="digits, intents, a .npz, a text,label .csv, or a folder of .wav per class")
    s.add_argument("--out", required=True, help="run directory: the study (SQLite unless --storage), reports, best model")
    s.add_argument("--lang", default="en", help="language of the intents dataset (default en)")
    s.add_argument("--flash-kib", type=float)
    s.add_argument("--ram-kib", type=float)
    s.add_argument("--board", help="a board id: its flash and RAM left for a model (TFLM arena + margin) are the budget")
    s.add_argument("--trials", type=int, default=40, help="finished trials the study should hold (all workers together)")
    s.add_argument("--storage", help="a database URL shared by workers, e.g. postgresql://user:pass@host/db (default: SQLite in --out)")
    s.add_argument("--study", default="tinyeff-search", help="study name in the storage")
    s.add_argument("--pareto", action="store_true",
                   help="optimise accuracy, flash and RAM together (no pruning of trials: Optuna prunes single-objective studies only)")
    s.add_argument("--sampler", choices=("tpe", "nsga2"), default="tpe")
    s.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median", help="stop hopeless trials during training")
    s.add_argument("--max-depth", type=int, default=SpaceLimits.max_depth)
    s.add_argument("--max-width", type=int, default=SpaceLimits.max_width)
    s.add_argument("--min-epochs", type=int, default=SpaceLimits.min_epochs)
    s.add_argument("--max-epochs", type=int, default=SpaceLimits.max_epochs)
    s.add_argument("--latency", action="store_true",
                   help="bench every trial that fits on an emulated board: emulated instructions (an objective with --pareto)")
    s.add_argument("--latency-board", default="qemu-mps2-an386", help="the QEMU board --latency measures on")
    s.add_argument("--no-refit", action="store_true",
                   help="export the best trial's own model instead of its plan trained again on the whole training split")
    s.add_argument("--rerank", type=int, default=5, metavar="N",
                   help="train the plans of the N trials of best validation accuracy that fit again on 3 folds of the "
                        "training split and export the one right on the most held-out samples (default 5; 0 or 1: "
                        "the validation slice alone chooses)")
    s.add_argument("--teacher", help="a run directory trained on the same data to distil from")
    s.add_argument("--compare", action="append", default=[], metavar="RUN",
                   help="a 'tinyeff shrink' run or another search's --out to report and plot beside this one (repeat for more)")
    s.add_argument("--recipe", choices=RECIPES, default="plain",
                   help="plain: search the model that fits; shrink-and-improve: train any size, prune into the budget distilling "
                        "from it; grow-improve-shrink: widen, train with augmentation and mixup, then prune into the budget")
    s.add_argument("--heartbeat", type=int, default=30, help="seconds between a running trial's heartbeats; "
                   "a trial silent for 3 of them is failed and run again")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_search)
