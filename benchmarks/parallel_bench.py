"""How much faster tinyeff bench runs a test set on N emulated boards at once than on one.

Run: .venv/bin/python benchmarks/parallel_bench.py --run demo-out/small [--board qemu-mps2-an386] [--jobs 1 2] [--repeat 3]
     .venv/bin/python benchmarks/parallel_bench.py --model ../shared/models/kws_ref_model.tflite [--samples 100] ...

RUN is a directory holding model.int8.tflite and its test split (what 'tinyeff shrink' writes,
e.g. the demo's demo-out/small); MODEL is any int8 model, benched on SAMPLES inputs drawn from a
seeded uniform distribution over its input type (no labels: outputs and agreement with host TFLM
only). Where the emulator's UART dominates a sample (a small model: QEMU's UART takes one byte per
round of its event loop) two emulators compete for the host's cores; where the inference does, they
share almost nothing. The model is generated for BOARD and benched with
'tinyeff bench --jobs N' for each N; each bench's samples time (wall_seconds in its JSON: from
the first sample sent to the last answered, the same work for every N) is the median of REPEAT
rounds. Every run's per-sample outputs must equal the one-device run's, or the table is not printed.
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


def random_inputs(model: Path, samples: int, tmp: Path) -> Path:
    """An .npz of SAMPLES inputs per model input, uniform over each input's integer type (seed 0)."""
    import numpy as np

    from tinyeff.footprint.tflite_file import read_model
    from tinyeff.model_io import io_tensors

    rng = np.random.default_rng(0)
    arrays = {}
    for t in io_tensors(read_model(model.read_bytes()))[0]:
        shape = (samples, *t.shape[1:])
        if np.dtype(t.dtype).kind == "f":
            arrays[t.name] = rng.standard_normal(shape).astype(t.dtype)
        else:
            info = np.iinfo(t.dtype)
            arrays[t.name] = rng.integers(info.min, info.max + 1, size=shape, dtype=t.dtype)
    out = tmp / "inputs.npz"
    np.savez(out, **arrays)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a directory with model.int8.tflite and its test split")
    src.add_argument("--model", type=Path, help="an int8 .tflite, benched on seeded random inputs")
    p.add_argument("--samples", type=int, default=100, help="random inputs for --model")
    p.add_argument("--board", default="qemu-mps2-an386")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        model, data = (a.run / "model.int8.tflite", a.run) if a.run else (a.model, random_inputs(a.model, a.samples, Path(tmp)))
        subprocess.run(TINYEFF + ["generate", str(model), "--board", a.board, "--out", str(project)],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(TINYEFF + ["build", str(project), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        # rounds: each round runs every N once, back to back, so that a drift of the machine's speed
        # (seen here: the same one-emulator bench 8.5 s in one minute, 11.6 s in the next) falls on
        # all N alike; a speed-up is the median over rounds of that round's ratio
        walls: dict[int, list[float]] = {jobs: [] for jobs in a.jobs}
        shares, samples, first = {}, 0, None
        for k in range(a.repeat):
            for jobs in a.jobs:
                report = bench(project, data, jobs, Path(tmp) / f"bench-{jobs}-{k}.json")
                outputs = [(r["index"], r["output"]) for r in report["results"]]
                first = first or outputs
                if outputs != first or report["errors"] or report["exact_agreement"] != 1.0:
                    sys.exit(f"--jobs {jobs} gave other outputs than --jobs {a.jobs[0]} (or errors): no table")
                walls[jobs].append(report["wall_seconds"])
                shares[jobs], samples = [d["samples"] for d in report["devices"]], report["samples"]
    what = a.run if a.run else f"seeded random inputs to {a.model.name}"
    print(f"tinyeff bench on {a.board}, {samples} samples of {what}, on {os.cpu_count()} cores "
          f"({a.repeat} rounds, medians; outputs equal in every run)")
    # a lone emulator's two threads hand each byte to each other, and on a busy or virtual machine the
    # wake-ups wait: its time spreads far more than a pair's, so the table shows the spread, and the
    # fastest round of each (the least disturbed) beside the median of the rounds' ratios
    print("| emulators | samples time (median; fastest, slowest) | speed-up (median of rounds; fastest vs fastest) | samples per emulator |")
    print("|---:|---:|---:|---|")
    base = walls[a.jobs[0]]
    for jobs in a.jobs:
        ratio = statistics.median(b / w for b, w in zip(base, walls[jobs]))
        print(f"| {jobs} | {statistics.median(walls[jobs]):.2f} s ({min(walls[jobs]):.2f}, {max(walls[jobs]):.2f}) | "
              f"{ratio:.2f}x; {min(base) / min(walls[jobs]):.2f}x | {', '.join(map(str, shares[jobs]))} |")


if __name__ == "__main__":
    main()
