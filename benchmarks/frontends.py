"""What a front end costs on the device, per board: emulated instructions, code and RAM, next to the model.

For each run given (a projection model's run, whose front end is the text projection; a .wav run
trained with --audio-frontend fixed, whose front end is the integer MFCC / log-mel, or micro, TFLM's
micro frontend) and each QEMU
board, the script generates the compiled-runtime firmware with the run's front end (--frontend RUN),
builds it, benches SAMPLES raw test samples from the run in QEMU (-icount shift=0: instructions, not
a board's time) and prints per board:
  - the front end's and the model's emulated instructions per inference (medians over the samples),
    and whether every output was bit-exact with host TFLM on the host's own front end;
  - the front end's code (the .text of its object file in the build) and RAM (its buffer and scratch,
    from the project's manifest).

Without runs, it makes them here (about a minute): a projection model on the English intents, and two
keyword spotters on keywords spoken by espeak-ng (synthetic), one on each audio front end.

    .venv/bin/python benchmarks/frontends.py [--run RUN ...] [--board B ...] [--samples N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from tinyeff.boards import get_board
from tinyeff.cli import main as tinyeff
from tinyeff.harness.bench import Project, bench_inputs, bench_raw, run_bench
from tinyeff.harness.device import QemuDevice
from tinyeff.harness.dut import Dut

BOARDS = ("qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505", "qemu-mps3-an547")
SAMPLES = 8


def own_runs(work: Path) -> list[Path]:
    text, data = work / "intents", work / "kws-data"
    assert tinyeff(["train", "projection", "--data", "intents", "--out", str(text), "--quiet"]) == 0
    assert tinyeff(["data", "tts", "--keywords", "yes,no,up,down", "--clips", "24", "--out", str(data), "--quiet"]) == 0
    runs = [text]
    for arithmetic in ("fixed", "micro"):
        runs.append(work / f"kws-{arithmetic}")
        assert tinyeff(["train", "dscnn", "--data", str(data), "--audio-frontend", arithmetic, "--width", "16", "--depth", "2",
                        "--out", str(runs[-1]), "--quiet"]) == 0
    return runs


def text_bytes_of(obj: Path) -> int:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.startswith(".text"))


def measure(run: Path, board_id: str, work: Path, samples: int) -> dict:
    out = work / f"{run.name}-{board_id}"
    assert tinyeff(["generate", str(run / "model.int8.tflite"), "--board", board_id, "--frontend", str(run),
                    "--out", str(out), "--force"]) == 0
    assert tinyeff(["build", str(out), "--quiet"]) == 0
    project = Project.load(out)
    x, y = bench_inputs(str(run), project.model, limit=samples)
    raw = bench_raw(str(run), project, limit=samples)
    with QemuDevice(project.elf, get_board(board_id)) as device:
        dut = Dut(device)
        dut.wait_ready()
        r = run_bench(project, [dut], x, y, raw=raw)
    fe = project.manifest["frontend"]
    kind = fe["type"] if fe["type"] == "text" else f"audio, {fe['arithmetic']}"
    source = {"text": "te_projection.o", "audio, fixed": "te_audio.o", "audio, micro": "te_micro.o"}[kind]
    return {"run": run.name, "front end": kind, "board": board_id, "core": get_board(board_id).core,
            "front end instructions": statistics.median(s.frontend_latency for s in r.results),
            "model instructions": r.latency_median, "bit-exact": r.exact_agreement == 1.0,
            "front end code bytes": text_bytes_of(out / "build" / "src" / "tinyeff" / "frontend" / source),
            "front end RAM bytes": fe["ram_bytes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", type=Path, help="a run directory (default: make two here)")
    ap.add_argument("--board", action="append", help=f"QEMU boards (default: {', '.join(BOARDS)})")
    ap.add_argument("--samples", type=int, default=SAMPLES)
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = args.run or own_runs(work)
        rows = [measure(run, b, work, args.samples) for run in runs for b in args.board or BOARDS]
    print("| front end | board (core) | front end: emulated instructions | model: emulated instructions | "
          "front end code | front end RAM | bit-exact |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['front end']} ({r['run']}) | {r['board']} ({r['core']}) | {r['front end instructions']:,.0f} | "
              f"{r['model instructions']:,.0f} | {r['front end code bytes']:,} B | {r['front end RAM bytes']:,} B | "
              f"{'yes' if r['bit-exact'] else 'NO'} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
