"""Kernel mutation testing: how many hand-planted bugs in the generic C kernels the op grid catches.

For the C kernels, the op grid (tests/test_compiled_runtime.py: every op case built for the host
and compared byte for byte with the host TFLM interpreter) plays the role of mutation testing.
This script shows it: each mutation below replaces one snippet of one file in firmware/kernels/
with a realistic bug, the grid runs until its first failure, and the bug counts as caught when a
test fails (or crashes, or hangs past the timeout) and as MISSED when every test passes.

Every snippet must occur exactly once in its file; the script checks that for the whole list
before it runs anything and stops with exit code 2 when one is missing or ambiguous, so the list
stays true as the kernels change.

The mutations are planted in a copy of the clone, build/kernel-mutation/work (the files
'git ls-files' lists, working-tree contents, only changed ones recopied), never in the clone
itself. pytest runs from inside the copy with the copy first on PYTHONPATH, so the copy's tinyeff
package, and through it the copy's firmware/, are the ones used (checked before the first run):
the venv's editable install points at the clone, but its finder comes after the path entries.
Before the mutations, the unmutated copy must pass the same tests (else exit code 1: a result
would mean nothing).

    .venv/bin/python scripts/kernel_mutation.py [--only NAME ...] [--timeout SECONDS] [--skip-baseline]

Prints a markdown table (mutation | file | planted bug | caught by) and "N of M kernel mutations
caught by the op grid"; progress goes to stderr. A caught mutation costs seconds to a minute, a
missed one a whole grid run (a few minutes; with test_int16.py for int16 kernels, more): run it
under nice on a shared machine. Exit code 0 whatever the score.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "kernel-mutation" / "work"
BASETEMP = ROOT / "build" / "kernel-mutation" / "pytest-tmp"  # apart from other pytest sessions' /tmp dirs
FIXTURE_CACHE = ROOT / "build" / "mutation" / "fixture-cache"  # shared with scripts/mutation.py (tests/conftest.py)
KERNELS = Path("firmware") / "kernels"

GRID_FILE, INT16_FILE = "tests/test_compiled_runtime.py", "tests/test_int16.py"
# -k applies to every file named on the command line: it keeps the int8 grid's two bit-exactness
# tests, and "test_int16" matches the module name of test_int16.py, keeping all of that file
GRID_K, INT16_K = "every_op_case or new_ops", "test_int16"


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # under firmware/kernels/
    original: str  # must occur exactly once in the file
    replacement: str
    bug: str  # the planted bug, in one line

    def pytest_args(self) -> list[str]:
        """Test files and -k for this mutation: the int8 grid, plus test_int16.py for the files the
        int16 kernels use (first for te_int16.c, which only they reach, so a catch comes early)."""
        if self.file == "te_int16.c":
            return [INT16_FILE, GRID_FILE, "-k", f"{GRID_K} or {INT16_K}"]
        if self.file == "te_fixedpoint.h":
            return [GRID_FILE, INT16_FILE, "-k", f"{GRID_K} or {INT16_K}"]
        return [GRID_FILE, "-k", GRID_K]


M = Mutation
MUTATIONS: tuple[Mutation, ...] = (
    # the shared fixed-point header: every requantizing kernel goes through it
    M("high_mul_no_nudge", "te_fixedpoint.h",
      "return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);",
      "return (int32_t)(((int64_t)a * (int64_t)b) >> 31);",
      "saturating rounding doubling high multiply loses its nudge (truncates; softmax, logistic, tanh)"),
    M("requant_no_nudge", "te_fixedpoint.h",
      "(int64_t)m + ((int64_t)1 << 30)) >> 31);",
      "(int64_t)m) >> 31);",
      "requantization's high multiply truncates instead of rounding"),
    M("round_shift_ties_up", "te_fixedpoint.h",
      "const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);",
      "const int32_t threshold = mask >> 1;",
      "rounding divide by 2^e rounds negative ties up (toward +inf), not away from zero"),
    # CONV_2D
    M("conv_pad_zero_point_sign", "te_conv_generic.c",
      "zero_point = -p->in_offset;",
      "zero_point = p->in_offset;",
      "padded taps read minus the input zero point (sign slip on in_offset)"),
    M("conv_pad_left_off_by_one", "te_conv_generic.c",
      "ix0 = ox * p->stride_w - p->pad_left;",
      "ix0 = ox * p->stride_w - p->pad_left - 1;",
      "left padding off by one: every window starts one column too far left"),
    M("conv_dilation_swapped", "te_conv_generic.c",
      "const int32_t ix = ix0 + fx * p->dil_w;",
      "const int32_t ix = ix0 + fx * p->dil_h;",
      "columns step by the vertical dilation (dil_h for dil_w)"),
    M("conv_relu_floor_dropped", "te_conv_generic.c",
      "p->out_offset, p->act_min, p->act_max);",
      "p->out_offset, -128, p->act_max);",
      "fused activation's lower clamp ignored (act_min taken as -128)"),
    # DEPTHWISE_CONV_2D
    M("dw_depth_multiplier_index", "te_depthwise_generic.c",
      "const int32_t oc = ic * p->depth_mult + m;",
      "const int32_t oc = m * p->in_c + ic;",
      "output channel of (input channel, multiplier) indexed multiplier-major"),
    M("dw_stride_swapped", "te_depthwise_generic.c",
      "const int32_t ix0 = ox * p->stride_w - p->pad_left;",
      "const int32_t ix0 = ox * p->stride_h - p->pad_left;",
      "columns advance by the vertical stride (stride_h for stride_w)"),
    M("dw_bias_skipped", "te_depthwise_generic.c",
      "int32_t acc = p->bias[oc];",
      "int32_t acc = 0;",
      "accumulator starts at 0: bias (and the input offset folded into it) skipped"),
    # FULLY_CONNECTED
    M("fc_filter_offset_dropped", "te_fully_connected_generic.c",
      "acc += ((int32_t)w[d] + p->filter_offset) * x[d];",
      "acc += (int32_t)w[d] * x[d];",
      "weights' zero point (filter_offset) ignored"),
    # AVERAGE_POOL_2D, MAX_POOL_2D, MEAN
    M("avgpool_divisor_plus_one", "te_pool.c",
      "int32_t acc = max ? -128 : 0, count = 0;",
      "int32_t acc = max ? -128 : 0, count = 1;",
      "average divides by the window's element count plus one"),
    M("avgpool_negative_rounding", "te_pool.c",
      ": (acc - count / 2) / count;",
      ": (acc + count / 2) / count;",
      "negative window sums rounded with the positive sums' formula"),
    M("mean_input_zero_point_dropped", "te_mean.c",
      "te_requant(sum - p->in_zp * n, p->mult, p->shift)",
      "te_requant(sum, p->mult, p->shift)",
      "MEAN sums codes without taking the input zero point off"),
    # elementwise
    M("add_output_zero_point_dropped", "te_elementwise.c",
      "te_clamp8(te_requant(sum, p->out_mult, p->out_shift) + p->out_offset,",
      "te_clamp8(te_requant(sum, p->out_mult, p->out_shift),",
      "ADD forgets the output zero point"),
    M("quantize_ties_toward_zero", "te_elementwise.c",
      "if (frac >= 0.5f) return t + 1;",
      "if (frac > 0.5f) return t + 1;",
      "float QUANTIZE rounds positive halves toward zero, not away"),
    M("relu6_ceiling_dropped", "te_activation.c",
      "out[i] = te_clamp8(in[i], p->lo, p->hi);",
      "out[i] = te_clamp8(in[i], p->lo, 127);",
      "RELU6 clamps only below (upper bound taken as 127)"),
    M("hard_swish_nudge_sign", "te_activation.c",
      "(ab >= 0 ? (1 << 14) : 1 - (1 << 14))",
      "(1 << 14)",
      "HARD_SWISH's int16 high multiply nudges negative products up too"),
    M("softmax_row_max_from_zero", "te_softmax.c",
      "int32_t max_in_row = -128;",
      "int32_t max_in_row = 0;",
      "SOFTMAX's row maximum starts at 0, wrong for rows of negative codes"),
    M("tconv_input_offset_dropped", "te_transpose_conv.c",
      "acc += ((int32_t)x[ic] + p->in_offset) * w[ic];",
      "acc += (int32_t)x[ic] * w[ic];",
      "TRANSPOSE_CONV multiplies raw codes, without the input offset"),
    M("pad_fills_zero", "te_layout.c",
      "memset(out, p->pad_value, (size_t)total);",
      "memset(out, 0, (size_t)total);",
      "PAD fills with code 0 instead of the zero point"),
    # int16 activations (16x8)
    M("int16_output_no_rounding", "te_int16.c",
      "v = (int32_t)((acc * mult + ((int64_t)1 << (shift - 1))) >> shift);",
      "v = (int32_t)((acc * mult) >> shift);",
      "64-bit requantization of 16x8 conv/dense truncates instead of rounding"),
    M("int16_maxpool_int8_floor", "te_int16.c",
      "int32_t acc = max ? INT16_MIN : 0, count = 0;",
      "int32_t acc = max ? -128 : 0, count = 0;",
      "int16 max pool starts its maximum at int8's -128 (copied from the int8 kernel)"),
)


@dataclasses.dataclass(frozen=True)
class Outcome:
    caught: bool
    by: str  # first failing test's node id (or what stopped the run); "" when missed
    seconds: float


def snippet_problems(mutations: tuple[Mutation, ...]) -> list[str]:
    """Each mutation whose snippet is not exactly once in the clone's file, in one sentence."""
    problems = []
    for m in mutations:
        path = ROOT / KERNELS / m.file
        n = path.read_text().count(m.original) if path.is_file() else -1
        if n != 1:
            where = "the file is missing" if n < 0 else f"the snippet occurs {n} times"
            problems.append(f"{m.name}: {where} in {KERNELS / m.file}: {m.original!r}")
        elif m.replacement == m.original:
            problems.append(f"{m.name}: the replacement equals the original")
    return problems


def sync_copy() -> None:
    """Make WORK hold the clone's tracked files as they are in its working tree; unchanged files
    (same size and modification time, which copy2 carries over) are left alone."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for rel in filter(None, listed.split("\0")):
        src, dst = ROOT / rel, WORK / rel
        if not src.is_file():  # deleted in the working tree
            continue
        s = src.stat()
        if dst.is_file() and (dst.stat().st_size, dst.stat().st_mtime_ns) == (s.st_size, s.st_mtime_ns):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def pytest_env() -> dict[str, str]:
    # the copy first on the path: the venv's editable finder for the clone's tinyeff comes after it
    env = dict(os.environ, TINYEFF_TEST_CACHE=str(FIXTURE_CACHE))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(WORK), os.environ.get("PYTHONPATH", "")) if p)
    return env


def check_copy_is_imported() -> None:
    """The tests must build the copy's firmware: ask the interpreter pytest runs on, from where it runs."""
    code = "from tinyeff.resources import resource_dir; print(resource_dir('firmware'))"
    r = subprocess.run([sys.executable, "-c", code], cwd=WORK, env=pytest_env(), capture_output=True, text=True)
    used = Path(r.stdout.strip()).resolve() if r.returncode == 0 else None
    if used != (WORK / "firmware").resolve():
        sys.exit(f"the tests would not use the copy's firmware at {WORK / 'firmware'} but {used}:\n{r.stderr}")


FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", re.M)


def run_tests(args: list[str], timeout: float) -> Outcome:
    """pytest on ARGS from inside the copy, stopping at the first failure."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", "-x", f"--basetemp={BASETEMP}", *args]
    start = time.monotonic()
    try:
        r = subprocess.run(cmd, cwd=WORK, env=pytest_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(True, f"timed out after {timeout:.0f} s", time.monotonic() - start)
    seconds = time.monotonic() - start
    if r.returncode == 0:
        return Outcome(False, "", seconds)
    if r.returncode < 0:  # a kernel crashed the interpreter (it runs in-process through ctypes)
        return Outcome(True, f"crash (signal {-r.returncode})", seconds)
    failed = FAILED_LINE.search(r.stdout)
    if r.returncode != 1 or failed is None:  # 2-5: interrupted, internal or usage error, nothing collected
        raise RuntimeError(f"pytest exited with {r.returncode} without a failing test:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    # a mutant that breaks the -Werror host build is caught by the compiler, not by comparing outputs
    note = " (C build failed)" if "host build failed" in r.stdout else ""
    return Outcome(True, f"`{failed.group(1)}`{note}", seconds)


def run_mutation(m: Mutation, timeout: float) -> Outcome:
    target = WORK / KERNELS / m.file  # the copy's file; the clone's is only ever read
    text = target.read_text()
    assert text.count(m.original) == 1, f"{target} differs from the clone's file"
    try:
        target.write_text(text.replace(m.original, m.replacement))
        return run_tests(m.pytest_args(), timeout)
    finally:
        # the copy's own text, so that the copy stays the tree the baseline passed even if the
        # clone changes meanwhile (the next sync recopies the file: its modification time moved)
        target.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=[m.name for m in MUTATIONS], help="run these mutations only")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run (default 1800)")
    parser.add_argument("--skip-baseline", action="store_true", help="do not first check that the unmutated copy passes")
    args = parser.parse_args()

    problems = snippet_problems(MUTATIONS)  # the whole list, whatever --only picks: it must stay true
    if problems:
        print("kernel mutation snippets out of date:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]

    start = time.monotonic()
    sync_copy()
    check_copy_is_imported()
    if not args.skip_baseline:
        # the union of the selections, unmutated: a failure here would make every mutation look caught
        needs_int16 = any(INT16_FILE in m.pytest_args() for m in chosen)
        baseline = [GRID_FILE, INT16_FILE, "-k", f"{GRID_K} or {INT16_K}"] if needs_int16 else [GRID_FILE, "-k", GRID_K]
        print(f"baseline: {' '.join(baseline)} ...", file=sys.stderr, flush=True)
        b = run_tests(baseline, args.timeout)
        if b.caught:
            print(f"the unmutated copy fails: {b.by}; no mutation result would mean anything", file=sys.stderr)
            return 1
        print(f"baseline passes ({b.seconds:.0f} s)", file=sys.stderr, flush=True)

    rows, caught = [], 0
    for i, m in enumerate(chosen, 1):
        print(f"[{i}/{len(chosen)}] {m.name} ...", end=" ", file=sys.stderr, flush=True)
        o = run_mutation(m, args.timeout)
        caught += o.caught
        print(f"{'caught' if o.caught else 'MISSED'} ({o.seconds:.0f} s)", file=sys.stderr, flush=True)
        rows.append(f"| {m.name} | {m.file} | {m.bug} | {o.by if o.caught else 'MISSED'} |")

    print("| mutation | file | planted bug | caught by (first failing test) |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n{caught} of {len(chosen)} kernel mutations caught by the op grid")
    print(f"(total run time {time.monotonic() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
