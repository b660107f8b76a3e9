"""The survey's three practitioner recipes under one budget, on one plot: plain search,
shrink-and-improve and grow-improve-shrink, beside the default pipeline.

Run: .venv/bin/python benchmarks/search_recipes.py --data digits --flash-kib 12 --ram-kib 6 --trials 30 --out DIR

Runs, as a user would: `tinyeff train` + `tinyeff shrink` (the default pipeline), then one
`tinyeff search --recipe R` per recipe with the same budget, trial count and seed; the last one is
given the others with --compare, so its pareto.png holds every recipe's trained trials and the
shrink candidates. Each search is resumable (run the script again with the same --out to go on).
Prints one Markdown row per recipe; every figure is read from the runs' own reports (measured int8
artifacts, test split of the model each exported).
"""

from __future__ import annotations

import json
from pathlib import Path

from search_budget import default_pipeline, parse_args, tinyeff

RECIPES = ("plain", "shrink-and-improve", "grow-improve-shrink")


def main() -> None:
    a = parse_args("30")
    data = ["--data", a.data, "--lang", a.lang]
    budget = ["--flash-kib", a.flash_kib, "--ram-kib", a.ram_kib]
    small = default_pipeline(a.out, a.data, data, budget)
    done: list[Path] = []
    for recipe in RECIPES:
        out = a.out / recipe
        last = recipe == RECIPES[-1]
        compare = [str(small)] + ([str(d) for d in done] if last else [])
        tinyeff("search", *data, *budget, "--trials", a.trials, "--recipe", recipe, "--out", str(out), "--quiet",
                *[arg for c in compare for arg in ("--compare", c)])
        done.append(out)

    print("| recipe | trials (trained / pruned / over budget) | wall time | int8 test accuracy | flash / RAM |")
    print("|---|---|---:|---:|---:|")
    default = json.loads((done[0] / "search.json").read_text())["compare"][0]
    print(f"| default pipeline (`train` + `shrink`) | - | - | {100 * default['int8_test_accuracy']:.1f} % | "
          f"{default['flash_bytes']:,} / {default['ram_bytes']:,} B |")
    for recipe, out in zip(RECIPES, done):
        s = json.loads((out / "search.json").read_text())
        c, b = s["trial_counts"], s["best"]
        print(f"| {recipe} | {c.get('complete', 0)} / {c.get('pruned', 0)} / {c.get('infeasible', 0)} | "
              f"{s['study_wall_seconds']:,.0f} s | "
              + (f"{100 * b['int8_test_accuracy']:.1f} % | {b['exported']['flash_bytes']:,} / {b['exported']['ram_bytes']:,} B |"
                 if b else "no trained trial fits | - |"))
    print(f"plot: {done[-1] / 'pareto.png'}")


if __name__ == "__main__":
    main()
