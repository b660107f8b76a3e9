"""How much faster tinyeff bench runs a test set on N emulated boards at once than on one.

Run: .venv/bin/python benchmarks/parallel_bench.py --run demo-out/small [--board qemu-mps2-an386] [--jobs 1 2] [--repeat 3]

RUN is a directory holding model.int8.tflite and its test split (what 'tinyeff shrink' writes,
e.g. the demo's demo-out/small). Its model is generated for BOARD and benched with
'tinyeff bench --jobs N' for each N; each bench's samples time (wall_seconds in its JSON: from
the first sample sent to the last answered, the same work for every N) is the median of REPEAT
runs. Every run's per-sample outputs must equal the one-device run's, or the table is not printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TINYEFF = [sys.executable, "-m", "tinyeff.cli"]


def bench(project: Path, data: Path, jobs: int, out: Path) -> dict:
    subprocess.run(TINYEFF + ["bench", str(project), "--data", str(data), "--jobs", str(jobs), "--json", str(out), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, type=Path, help="a directory with model.int8.tflite and its test split")
    p.add_argument("--board", default="qemu-mps2-an386")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        subprocess.run(TINYEFF + ["generate", str(a.run / "model.int8.tflite"), "--board", a.board, "--out", str(project)],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(TINYEFF + ["build", str(project), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        rows, first = [], None
        for jobs in a.jobs:
            walls = []
            for k in range(a.repeat):
                report = bench(project, a.run, jobs, Path(tmp) / f"bench-{jobs}-{k}.json")
                outputs = [(r["index"], r["output"]) for r in report["results"]]
                first = first or outputs
                if outputs != first or report["errors"] or report["exact_agreement"] != 1.0:
                    sys.exit(f"--jobs {jobs} gave other outputs than --jobs {a.jobs[0]} (or errors): no table")
                walls.append(report["wall_seconds"])
            rows.append((jobs, report["samples"], statistics.median(walls), [d["samples"] for d in report["devices"]]))
    base = rows[0][2]
    print(f"tinyeff bench on {a.board}, {rows[0][1]} samples of {a.run}, on {os.cpu_count()} cores "
          f"(median of {a.repeat}; outputs equal in every run)")
    print("| emulators | samples time | speed-up | samples per emulator |")
    print("|---:|---:|---:|---|")
    for jobs, _, wall, shares in rows:
        print(f"| {jobs} | {wall:.2f} s | {base / wall:.2f}x | {', '.join(map(str, shares))} |")


if __name__ == "__main__":
    main()
