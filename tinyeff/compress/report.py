"""The Pareto report of a shrink: every candidate as CSV and JSON, and a PNG of the frontier."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tinyeff.compress.shrink import Budget, Candidate, distillation_summary

COLUMNS = (
    "name", "step", "method", "widths", "flash_bytes", "ram_bytes", "arena_head_bytes", "arena_tail_bytes",
    "macs", "float_accuracy", "int8_accuracy", "int8_val_accuracy", "int8_val_loss", "fits", "pareto", "chosen",
)


def pareto_front(cands: tuple[Candidate, ...]) -> set[str]:
    """Names of candidates that no other candidate beats on int8 accuracy, flash and RAM at once."""
    front = set()
    for c in cands:
        a, f, r = c.int8_accuracy, c.footprint.flash_bytes, c.footprint.ram_bytes
        dominated = any(
            o.int8_accuracy >= a and o.footprint.flash_bytes <= f and o.footprint.ram_bytes <= r
            and (o.int8_accuracy > a or o.footprint.flash_bytes < f or o.footprint.ram_bytes < r)
            for o in cands
        )
        if not dominated:
            front.add(c.name)
    return front


def write_report(out: Path, cands: tuple[Candidate, ...], chosen: Candidate, budget: Budget) -> dict:
    """Write candidates.csv, candidates.json and pareto.png into OUT; return the summary."""
    front = pareto_front(cands)
    rows = []
    for c in cands:
        j = c.to_json()
        j.update(pareto=c.name in front, chosen=c.name == chosen.name)
        rows.append(j)
    with open(out / "candidates.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (" ".join(map(str, r[k])) if k == "widths" else r[k]) for k in COLUMNS})
    summary = {
        "budget": {"flash_bytes": budget.flash_bytes, "ram_bytes": budget.ram_bytes},
        "chosen": chosen.name,
        "distillation_vs_plain": distillation_summary(cands),
        "candidates": rows,
    }
    (out / "candidates.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(out / "pareto.png", cands, front, chosen, budget)
    return summary


def plot(path: Path, cands: tuple[Candidate, ...], front: set[str], chosen: Candidate, budget: Budget) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    styles = {"trained": ("s", "tab:gray"), "distilled": ("o", "tab:blue"), "plain": ("^", "tab:orange")}
    for ax, key, limit, label in (
        (axes[0], "flash_bytes", budget.flash_bytes, "flash (.tflite) KiB"),
        (axes[1], "ram_bytes", budget.ram_bytes, "RAM (host TFLM arena) KiB"),
    ):
        for method, (marker, color) in styles.items():
            pts = [c for c in cands if c.method == method]
            if pts:
                ax.scatter([getattr(c.footprint, key) / 1024 for c in pts], [100 * c.int8_accuracy for c in pts],
                           marker=marker, color=color, label=method, alpha=0.8)
        fr = sorted((c for c in cands if c.name in front), key=lambda c: getattr(c.footprint, key))
        ax.step([getattr(c.footprint, key) / 1024 for c in fr], [100 * c.int8_accuracy for c in fr],
                where="post", color="black", lw=1, label="Pareto frontier")
        ax.scatter([getattr(chosen.footprint, key) / 1024], [100 * chosen.int8_accuracy], marker="*", s=260,
                   color="tab:red", zorder=5, label="chosen")
        if limit:
            ax.axvline(limit / 1024, color="tab:red", ls="--", lw=1, label="budget")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("int8 test accuracy %")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle("tinyeff shrink: candidates, quality against footprint (all measured)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
