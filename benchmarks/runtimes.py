"""Compiled runtime against TFLM, per model and board: flash, RAM and emulated instructions, side by side.

For each int8 model (../shared/models/*.tflite, every .tflite in each --models-dir, the kit's own
models trained here on digits and intents, and any --model given) and each QEMU board (--board,
default qemu-mps2-an386) the script
  - measures TFLM's side on the host: the .tflite size and the host TFLM arena;
  - generates the compiled-runtime firmware for the board (its core picks the kernel path:
    dsp on Cortex-M4/M7/M33, mve on Cortex-M55), builds it, and measures its flash as the
    firmware minus the same firmware with an empty model (sizes from the ELF);
  - prints the plan's arena next to the model's RAM floor (tinyeff.codegen.plan.floor_bytes);
  - runs it in QEMU (-icount shift=0): SAMPLES random inputs, each output compared byte for
    byte with host TFLM, the emulated instructions per inference (SysTick), and the RAM the
    model takes on the device (its arena + the painted stack high-water mark).

    .venv/bin/python benchmarks/runtimes.py [--board B ...] [--models-dir D ...] [--model X.tflite ...] [--no-own-models]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinyeff.boards import get_board
from tinyeff.cli import main as tinyeff
from tinyeff.footprint import host_tflm_arena, load_model_file
from tinyeff.generate import generate
from tinyeff.harness.bench import Project
from tinyeff.harness.device import QemuDevice
from tinyeff.harness.dut import Dut
from tinyeff.harness.sizes import model_cost
from tinyeff.reference import tflm_outputs

BOARD = "qemu-mps2-an386"
SAMPLES = 20
SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"


def own_models(work: Path) -> list[Path]:
    """The kit's own models, trained here with default settings (about a minute)."""
    out = []
    for kind, data in (("dscnn", "digits"), ("projection", "intents")):
        run = work / f"{kind}-{data}"
        assert tinyeff(["train", kind, "--data", data, "--out", str(run), "--quiet"]) == 0
        named = work / f"tinyeff_{kind}_{data}.tflite"
        named.write_bytes((run / "model.int8.tflite").read_bytes())
        out.append(named)
    return out


def measure(model: Path, board: str, work: Path) -> dict:
    data, info = load_model_file(model)
    project = Project.load(generate(model, board, "compiled", work / f"fw-{board}-{model.stem}"))
    plan = project.manifest["memory_plan"]
    cost = model_cost(project)
    rng = np.random.default_rng(0)
    zp = info.input().zero_points[0]
    x = np.clip(np.round(rng.normal(zp, 12, (SAMPLES, *info.input().shape))), -128, 127).astype(np.int8)
    want = tflm_outputs(data, x).reshape(SAMPLES, -1)
    with QemuDevice(project.elf, get_board(board)) as device:
        dut = Dut(device)
        dut.wait_ready()
        runs = [dut.run(s.tobytes()) for s in x]
        _, hz, _ = dut.timer()
        arena, stack = dut.memory()
    exact = sum(np.array_equal(r.output, w) for r, w in zip(runs, want))
    return {
        "model": model.name,
        "board": board,
        "path": project.manifest["kernel_path"],
        "arena": plan["arena_bytes"],
        "floor": plan["floor_bytes"],
        "tflite": len(data),
        "compiled_flash": cost.flash_bytes,
        "tflm_arena": host_tflm_arena(data, model.name).total,
        "compiled_ram": arena + stack,
        "instructions": statistics.median(device.ticks_to_latency(r.ticks, hz) for r in runs),
        "exact": f"{exact}/{SAMPLES}",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", action="append", default=[], help=f"a QEMU board to run on (default {BOARD}); repeat for several")
    p.add_argument("--models-dir", action="append", default=[], help="a directory whose .tflite models are measured too")
    p.add_argument("--model", action="append", default=[], help="another int8 .tflite to measure")
    p.add_argument("--no-own-models", action="store_true", help="skip training the kit's own models")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinyeff-runtimes-") as tmp:
        work = Path(tmp)
        models = sorted(SHARED.glob("*.tflite")) + [Path(m) for m in args.model]
        for d in args.models_dir:
            models += sorted(p for p in Path(d).glob("*.tflite") if p.name not in {m.name for m in models})
        if not args.no_own_models:
            models += own_models(work)
        rows = [measure(m, b, work) for b in args.board or [BOARD] for m in models]
    print(f"compiled runtime vs TFLM; device figures from QEMU (-icount shift=0: emulated instructions, "
          f"not a board's cycles); {SAMPLES} inputs per model")
    print("| model | board (kernel path) | .tflite B | compiled flash B | host TFLM arena B | arena B / floor B | "
          "compiled RAM B (arena + stack) | RAM ratio | emulated instructions / inference | bit-exact in QEMU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['board']} ({r['path']}) | {r['tflite']:,} | {r['compiled_flash']:,} | {r['tflm_arena']:,} | "
              f"{r['arena']:,} / {r['floor']:,} | {r['compiled_ram']:,} | {r['compiled_ram'] / r['tflm_arena']:.2f} | "
              f"{r['instructions']:,.0f} | {r['exact']} |")
    print("compiled flash = firmware minus the same firmware with an empty model (weights, constants, kernels used, layer code)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
