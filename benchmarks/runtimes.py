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

  - with --tflm-dir, builds the same model as a TFLM project against that tree (CMSIS-NN when the
    tree carries it) and measures it the same way, side by side.

    .venv/bin/python benchmarks/runtimes.py [--board B ...] [--models-dir D ...] [--model X.tflite ...]
        [--no-own-models] [--optimize speed|size ...] [--tflm-dir TREE]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
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
from tinyeff.harness.sizes import elf_sizes, model_cost
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


def _inputs(info) -> np.ndarray:
    rng = np.random.default_rng(0)
    zp = info.input().zero_points[0]
    return np.clip(np.round(rng.normal(zp, 12, (SAMPLES, *info.input().shape))), -128, 127).astype(np.int8)


def _run(project: Project, board: str, data: bytes, info) -> dict:
    """SAMPLES inputs through PROJECT's firmware in QEMU: bit-exactness, median instructions, RAM."""
    x = _inputs(info)
    want = tflm_outputs(data, x).reshape(SAMPLES, -1)
    with QemuDevice(project.elf, get_board(board)) as device:
        dut = Dut(device)
        dut.wait_ready()
        runs = [dut.run(s.tobytes()) for s in x]
        _, hz, _ = dut.timer()
        memory = dut.memory()
    exact = sum(np.array_equal(r.output, w) for r, w in zip(runs, want))
    return {"ram": memory.arena_bytes + memory.stack_bytes, "instructions": statistics.median(device.ticks_to_latency(r.ticks, hz) for r in runs),
            "exact": f"{exact}/{SAMPLES}"}


def measure(model: Path, board: str, optimize: str, work: Path) -> dict:
    """The compiled runtime for MODEL on BOARD with the kernels OPTIMIZE picks."""
    data, info = load_model_file(model)
    project = Project.load(generate(model, board, "compiled", work / f"fw-{board}-{optimize}-{model.stem}", optimize=optimize))
    plan = project.manifest["memory_plan"]
    cost = model_cost(project)
    return {"model": model.name, "board": board, "runtime": f"compiled, {project.manifest['kernel_path']} kernels",
            "tflite": len(data), "flash": cost.flash_bytes, "tflm_arena": host_tflm_arena(data, model.name).total,
            "arena": f"{plan['arena_bytes']:,} / {plan['floor_bytes']:,}", **_run(project, board, data, info)}


def measure_tflm(model: Path, board: str, tflm_dir: Path, work: Path, built: dict) -> dict:
    """TFLM for MODEL on BOARD, built from TFLM_DIR (with CMSIS-NN when the tree has it). TFLM's
    objects do not depend on the model, so BUILT (board -> a built project) lends them to the next."""
    data, info = load_model_file(model)
    project = Project.load(generate(model, board, "tflm", work / f"tflm-{board}-{model.stem}"))
    if board in built:
        shutil.copytree(built[board] / "build" / "tflm", project.path / "build" / "tflm")
    r = subprocess.run(["make", "-s", "-j2", "-C", str(project.path), f"TFLM_DIR={tflm_dir}"], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"building TFLM for {board} failed:\n{r.stderr[-2000:]}")
    built.setdefault(board, project.path)
    # flash: the firmware minus the compiled runtime's empty-model firmware (protocol, port and C library)
    compiled = Project.load(generate(model, board, "compiled", work / f"empty-{board}-{model.stem}", optimize="size"))
    flash = elf_sizes(project.elf).flash_bytes - model_cost(compiled).empty.flash_bytes
    has_cmsis = any((tflm_dir / "third_party" / "cmsis_nn" / "Source").glob("*"))
    return {"model": model.name, "board": board, "runtime": "TFLM" + (" + CMSIS-NN" if has_cmsis else " (reference kernels)"),
            "tflite": len(data), "flash": flash, "tflm_arena": host_tflm_arena(data, model.name).total, "arena": "",
            **_run(project, board, data, info)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", action="append", default=[], help=f"a QEMU board to run on (default {BOARD}); repeat for several")
    p.add_argument("--models-dir", action="append", default=[], help="a directory whose .tflite models are measured too")
    p.add_argument("--model", action="append", default=[], help="another int8 .tflite to measure")
    p.add_argument("--no-own-models", action="store_true", help="skip training the kit's own models")
    p.add_argument("--optimize", action="append", default=[], choices=("speed", "size"),
                   help="the compiled runtime's kernels to measure (default: both)")
    p.add_argument("--tflm-dir", type=Path, help="a TFLM tree (create_tflm_tree.py, with OPTIMIZED_KERNEL_DIR=cmsis_nn for "
                   "CMSIS-NN): TFLM is built from it and measured side by side")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinyeff-runtimes-") as tmp:
        work = Path(tmp)
        models = sorted(SHARED.glob("*.tflite")) + [Path(m) for m in args.model]
        for d in args.models_dir:
            models += sorted(p for p in Path(d).glob("*.tflite") if p.name not in {m.name for m in models})
        if not args.no_own_models:
            models += own_models(work)
        rows, built = [], {}
        for board in args.board or [BOARD]:
            for m in models:
                new = [measure(m, board, o, work) for o in args.optimize or ["speed", "size"]]
                if args.tflm_dir:
                    new.append(measure_tflm(m, board, args.tflm_dir.resolve(), work, built))
                for r in new:
                    print(r, file=sys.stderr, flush=True)
                rows += new
    print(f"compiled runtime vs TFLM; device figures from QEMU (-icount shift=0: emulated instructions, "
          f"not a board's cycles); {SAMPLES} inputs per model")
    print("| model | board | runtime | .tflite B | flash B | host TFLM arena B | planned arena B / floor B | "
          "RAM B (arena + stack) | RAM / host TFLM arena | emulated instructions / inference | bit-exact in QEMU |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['board']} | {r['runtime']} | {r['tflite']:,} | {r['flash']:,} | {r['tflm_arena']:,} | "
              f"{r['arena']} | {r['ram']:,} | {r['ram'] / r['tflm_arena']:.2f} | {r['instructions']:,.0f} | {r['exact']} |")
    print("flash: compiled = firmware minus the same firmware with an empty model (weights, constants, kernels used, layer "
          "code); TFLM = firmware minus the protocol/port/C-library firmware (TFLM runtime + the .tflite)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
