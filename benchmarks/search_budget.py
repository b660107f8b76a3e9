"""The search against the default pipeline and, for text, the linear baseline, under one budget:
the rows of the README's search table.

Run: .venv/bin/python benchmarks/search_budget.py --data digits --flash-kib 12 --ram-kib 6 --trials 100 --out DIR
     .venv/bin/python benchmarks/search_budget.py --data intents --lang de --flash-kib 16 --ram-kib 8 --trials 60 --out DIR

Runs, as a user would: `tinyeff train` + `tinyeff shrink` (the default pipeline; a DS-CNN for image
and audio data, a projection model for text), then `tinyeff search` with `--compare` on the shrink
run (resumable: run it again with the same --out to go on). Prints one Markdown row; every figure is
read from the runs' own reports (measured int8 artifacts, test split).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pipeline import model_kind

TINYEFF = [sys.executable, "-m", "tinyeff.cli"]


def tinyeff(*args: str) -> None:
    subprocess.run([*TINYEFF, *args], check=True)


def default_pipeline(out: Path, name: str, data: list[str], budget: list[str]) -> Path:
    """`tinyeff train` + `tinyeff shrink` into OUT (once: kept when it is there); the shrink run."""
    run, small = out / "default-run", out / "default-small"
    if not (small / "metrics.json").is_file():
        tinyeff("train", model_kind(name), *data, "--out", str(run), "--force", "--quiet")
        tinyeff("shrink", str(run), *budget, "--out", str(small), "--force", "--quiet")
    return small


def parse_args(trials: str) -> argparse.Namespace:
    """The options both search benchmarks take: data, budget, trials (default TRIALS), output directory."""
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--lang", default="en")
    p.add_argument("--flash-kib", required=True)
    p.add_argument("--ram-kib", required=True)
    p.add_argument("--trials", default=trials)
    p.add_argument("--out", required=True, type=Path)
    return p.parse_args()


def main() -> None:
    a = parse_args("60")
    data = ["--data", a.data, "--lang", a.lang]
    budget = ["--flash-kib", a.flash_kib, "--ram-kib", a.ram_kib]
    small, found = default_pipeline(a.out, a.data, data, budget), a.out / "search"
    tinyeff("search", *data, *budget, "--trials", a.trials, "--out", str(found), "--compare", str(small), "--quiet")

    s = json.loads((found / "search.json").read_text())
    c, b = s["trial_counts"], s["best"]
    default = s["compare"][0]
    baseline = s.get("linear_baseline")
    print("| data, budget | trials (trained / pruned / over budget) | wall time | int8 test accuracy | flash / RAM "
          "| default pipeline | linear baseline |")
    print("|---|---|---:|---:|---:|---:|---:|")
    lang = f" `{a.lang}`" if a.data == "intents" else ""
    print(f"| {a.data}{lang}, {a.flash_kib} / {a.ram_kib} KiB | {c.get('complete', 0)} / {c.get('pruned', 0)} / "
          f"{c.get('infeasible', 0)} | {s['study_wall_seconds']:,.0f} s | "
          + (f"{100 * b['int8_test_accuracy']:.1f} % | {b['exported']['flash_bytes']:,} / {b['exported']['ram_bytes']:,} B"
             if b else "no trained trial fits | -")
          + f" | {100 * default['int8_test_accuracy']:.1f} %, {default['flash_bytes']:,} / {default['ram_bytes']:,} B | "
          + (f"{100 * baseline['test_accuracy']:.1f} % |" if baseline else "- |"))


if __name__ == "__main__":
    main()
