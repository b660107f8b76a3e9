"""Other people's models, unseen by the kit: does each one inspect, compile and run bit-exact with TFLM?

For every .tflite under DIR (sorted, recursive; e.g. the files of a tflite-micro checkout) the script
  - reads it as `tinyeff inspect` does: the kit's model reader, the int8/int16 check, and the host
    TFLM arena (TFLM loading it in a child process);
  - compiles it with the compiled runtime (`compile_model`, generic kernels) and builds it for the
    host (`build_for_host`), in a temporary directory removed after the model;
  - runs SAMPLES random inputs (seed SEED, uniform over each input's whole integer type; a float
    input over its QUANTIZE's integer type) through that build and through the host TFLM
    interpreter, and compares every output byte for byte;
and gives the model one verdict: bit-exact, MISMATCH, refused by inspect or by compile (a TinyeffError:
its one sentence), or CRASH (any other exception, or the checking process dying). Each model is
checked in a child process, so that a crash in C code ends that model's check, not the run. Prints a
Markdown row per model and a summary line; exits 1 when any model is a MISMATCH or a CRASH.

    .venv/bin/python benchmarks/foreign_models.py DIR [--limit N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

SAMPLES = 3
SEED = 0
EXACT, MISMATCH, INSPECT, COMPILE, CRASH = "bit-exact", "MISMATCH", "refused by inspect", "refused by compile", "CRASH"


def random_inputs(info, inputs, samples: int, seed: int) -> list[np.ndarray]:
    """SAMPLES inputs per model input (first axis = samples), uniform over its integer type; a float
    input (which only QUANTIZE reads) takes the real values of its QUANTIZE's integer range."""
    rng = np.random.default_rng(seed)
    xs = []
    for index, t in zip(info.inputs, inputs):
        shape = (samples, *t.sample_shape)
        if t.dtype == "float32":
            side = next((info.tensors[o.outputs[0]] for o in info.ops if index in o.inputs and o.op == "QUANTIZE"), None)
            span = np.iinfo(side.dtype.lower() if side is not None else "int8")
            q = rng.integers(span.min, span.max, shape, endpoint=True)
            xs.append(((q - t.zero_point) * t.scale).astype(np.float32))
        else:
            span = np.iinfo(t.dtype)
            xs.append(rng.integers(span.min, span.max, shape, dtype=t.dtype, endpoint=True))
    return xs


def check(model: str, work: str) -> dict:
    """The verdict on MODEL (a path from the current directory), building in WORK."""
    from tinyeff.codegen import build_for_host
    from tinyeff.errors import TinyeffError
    from tinyeff.footprint import host_tflm_arena, load_model_file, require_quantized
    from tinyeff.model_io import io_tensors
    from tinyeff.reference import tflm_run

    stage, n_inputs = INSPECT, None
    try:
        data, info = load_model_file(Path(model))  # as cmd_inspect: read, check it is integer, measure TFLM's arena
        n_inputs = len(info.inputs)
        require_quantized(info)
        host_tflm_arena(data, model)
        stage = COMPILE
        host = build_for_host(data, info, Path(work), Path(model).name, path="generic")
        stage = "run"
        xs = random_inputs(info, io_tensors(info)[0], SAMPLES, SEED)
        want, got = tflm_run(data, xs, model), host.run_all(xs)
        same = len(want) == len(got) and all(np.array_equal(g.reshape(w.shape), w) for g, w in zip(got, want))
        return {"verdict": EXACT if same else MISMATCH, "inputs": n_inputs}
    except TinyeffError as e:
        if stage == "run":  # a model that compiled and loaded should not be refused while running: the kit missed something
            return {"verdict": f"{CRASH}: TinyeffError while running: {e}", "inputs": n_inputs, "detail": traceback.format_exc()}
        return {"verdict": f"{stage}: {e}", "inputs": n_inputs}
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return {"verdict": f"{CRASH}: {type(e).__name__}: {first}", "inputs": n_inputs, "detail": traceback.format_exc()}


def _checker(root: Path) -> ProcessPoolExecutor:
    """One child process that checks models from ROOT, so that a model's path is named as `tinyeff inspect` run there names it."""
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=os.chdir, initargs=(str(root),))


def kind(verdict: str) -> str:
    return next(k for k in (EXACT, MISMATCH, INSPECT, COMPILE, CRASH) if verdict.startswith(k))


def failed(rows: list[dict]) -> bool:
    """Did any model run differently from TFLM, or crash? (What the exit code says.)"""
    return any(kind(r["verdict"]) in (MISMATCH, CRASH) for r in rows)


def summary(rows: list[dict], seconds: float) -> str:
    counts = {k: sum(kind(r["verdict"]) == k for r in rows) for k in (EXACT, MISMATCH, INSPECT, COMPILE, CRASH)}
    by_inputs = sorted({r["inputs"] for r in rows if kind(r["verdict"]) == EXACT})
    of = ", ".join(f"{sum(r['inputs'] == n and kind(r['verdict']) == EXACT for r in rows)} of {n} input{'s' * (n != 1)}"
                   for n in by_inputs)
    models = f"{len(rows)} model{'s' * (len(rows) != 1)}"
    return (f"{models}: {len(rows) - counts[INSPECT]} pass inspect; {counts[EXACT]} {EXACT}" + (f" ({of})" if of else "")
            + f", {counts[MISMATCH]} {MISMATCH}, {counts[COMPILE]} {COMPILE}, {counts[INSPECT]} {INSPECT}, "
            f"{counts[CRASH]} {CRASH}; {seconds:,.0f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path, help="a directory searched recursively for .tflite files")
    p.add_argument("--limit", type=int, help="check only the first N models (in sorted order)")
    p.add_argument("--json", type=Path, help="also write every model's row and the counts as JSON")
    args = p.parse_args(argv)
    root = args.dir.resolve()
    models = sorted(m.relative_to(root).as_posix() for m in root.rglob("*.tflite") if m.is_file())[:args.limit]
    if not models:
        p.error(f"no .tflite files under {args.dir}")
    rows, start, checker = [], time.monotonic(), None
    try:
        for model in models:
            checker = checker or _checker(root)
            t0 = time.monotonic()
            with tempfile.TemporaryDirectory(prefix="tinyeff-foreign-") as work:  # removed even when the child died in it
                try:
                    r = checker.submit(check, model, work).result()
                except BrokenProcessPool:
                    r = {"verdict": f"{CRASH}: the checking process died (a crash or abort in C code)", "inputs": None}
                    checker.shutdown()
                    checker = None
            rows.append({"model": model, "bytes": (root / model).stat().st_size, **r, "seconds": round(time.monotonic() - t0, 2)})
            print(f"{model}: {r['verdict']} ({rows[-1]['seconds']:.1f} s)", file=sys.stderr, flush=True)
    finally:
        if checker is not None:
            checker.shutdown()
    seconds = time.monotonic() - start
    print(f"compiled runtime (host build, generic kernels) vs host TFLM; {SAMPLES} random inputs per model over each "
          f"input's whole integer type (seed {SEED})")
    print("| model | .tflite B | verdict | inputs | s |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        verdict = r["verdict"].replace("|", "\\|").replace("\n", " ")
        print(f"| {r['model']} | {r['bytes']:,} | {verdict} | {r['inputs'] if r['inputs'] is not None else '-'} | {r['seconds']:.1f} |")
    line = summary(rows, seconds)
    print(line)
    if args.json:
        from tinyeff.atomic import replace_file

        replace_file(args.json, json.dumps({"dir": str(args.dir), "samples": SAMPLES, "seed": SEED, "summary": line,
                                            "models": rows}, indent=2) + "\n")
    return int(failed(rows))


if __name__ == "__main__":
    sys.exit(main())
