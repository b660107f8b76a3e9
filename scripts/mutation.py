"""Mutation testing: how many small bugs planted in the modules that matter most the test suite catches.

For each module below, mutmut (PyPI) plants one change at a time (an operator, a constant, a
comparison, a removed call...) and runs the tests that reach the changed function; a mutant is
killed when one of them fails. A survivor is either a gap in the tests or a change that cannot
alter behaviour (an equivalent mutant): those are listed with the reason in
tests/mutation_equivalent.toml and left out of the score.

Each module runs in its own copy of the clone under build/mutation/<module> with its own test
selection (mutmut reads one selection per pyproject.toml). Every run starts from no mutmut state:
mutmut keeps a mutant's old verdict while its function is unchanged, even when the tests changed.
The session models the tests train are made once and cached (TINYEFF_TEST_CACHE).

    .venv/bin/python scripts/mutation.py [--module footprint/arena.py ...] [--jobs N] [--report-only]
    .venv/bin/python scripts/mutation.py --module codegen/quant.py --survivors   # again, after new tests

Prints one row per module: mutants, killed (tests failed or hung), survived, equivalent, score.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutation"
EQUIVALENT = ROOT / "tests" / "mutation_equivalent.toml"
GOAL = 0.85

# module (under tinyeff/) -> the test files whose tests can reach it (mutmut then runs, per mutant,
# only the tests it saw calling the mutated function, fastest first, stopping at the first failure)
MODULES: dict[str, list[str]] = {
    # (the atheris run is left out: 90 s per survivor, and its subprocess would carry the mutant too)
    "footprint/tflite_file.py": ["tests/test_footprint.py", "tests/test_model_checks.py", "tests/test_cli_errors.py",
                                 "tests/test_reader_fuzz.py::test_inspect_refuses_or_reports_every_mutant",
                                 "tests/test_reader_fuzz.py::test_offsets_that_alias_are_refused_before_they_are_unpacked"],
    "footprint/arena.py": ["tests/test_footprint.py", "tests/test_tflm_arena.py", "tests/test_model_checks.py"],
    "codegen/quant.py": ["tests/test_quant_properties.py", "tests/test_model_checks.py", "tests/test_compiled_runtime.py"],
    "codegen/plan.py": ["tests/test_plan_properties.py", "tests/test_compiled_runtime.py"],
    "codegen/lower.py": ["tests/test_compiled_runtime.py", "tests/test_int16.py", "tests/test_multi_io.py"],
    # the real firmware as a host process first (milliseconds per exchange), QEMU after
    "harness/dut.py": ["tests/test_harness_link.py", "tests/test_dut_host.py"],
    "harness/bench.py": ["tests/test_dut_host.py", "tests/test_harness_link.py", "tests/test_bench_qemu.py"],
    "compress/prune.py": ["tests/test_models_and_pruning.py"],
}

# mutmut's exit codes, as its stats module reads them
_KILLED = {1, 3, 24, -24, 152, 255, 36, -11, -9}  # a test failed, or the mutant hung or crashed the tests
_SURVIVED = {0}


@dataclasses.dataclass(frozen=True)
class ModuleScore:
    module: str
    mutants: int
    killed: int
    survived: list[str]
    equivalent: int
    unchecked_names: list[str]  # no test reached the mutant, or it was not run yet

    @property
    def unchecked(self) -> int:
        return len(self.unchecked_names)

    @property
    def score(self) -> float:
        counted = self.mutants - self.equivalent
        return self.killed / counted if counted else 1.0


def equivalent_mutants() -> dict[str, str]:
    """mutant name -> why it cannot change behaviour."""
    if not EQUIVALENT.exists():
        return {}
    return {name: entry["why"] for name, entry in tomllib.loads(EQUIVALENT.read_text()).items()}


def _copy_clone(dest: Path) -> None:
    """The tracked files of the clone (as they are in the work tree) into DEST, leaving mutmut's own state alone."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src, dst = ROOT / name, dest / name
        if not src.is_file():
            continue
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime and dst.stat().st_size == src.stat().st_size:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def _write_config(dest: Path, module: str) -> None:
    tests = [t for t in MODULES[module] if (ROOT / t.split("::")[0]).exists()]
    config = "\n".join([
        "",
        "[tool.mutmut]",
        'source_paths = ["tinyeff"]',
        f'only_mutate = ["tinyeff/{module}"]',
        'also_copy = ["firmware", "templates", "boards", "benchmarks", "scripts"]',
        # one order, stop at the first failure: a mutant is killed by the first test that notices it
        # --timeout (pytest-timeout): a wall-clock bound per test. mutmut bounds a mutant by CPU time
        # only, and a mutant that makes the harness wait (a longer reply timeout, a retry loop that
        # sleeps) uses almost none: without it such a mutant ran for hours
        'pytest_add_cli_args = ["-p", "no:randomly", "-q", "-x", "-p", "no:cacheprovider", "--timeout", "180"]',
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        # TensorFlow and TFLM hold threads and locks that a plain fork inherits mid-state
        'process_isolation = "forkserver"',
        # a mutant's tests may rebuild C or start QEMU: time for that before calling it a hang
        "timeout_constant = 30.0",
        "",
    ])
    pyproject = dest / "pyproject.toml"
    pyproject.write_text((ROOT / "pyproject.toml").read_text() + config)


def run_module(module: str, jobs: int, names: list[str] | None = None) -> None:
    """Mutate MODULE from scratch, or run only the mutants NAMES again (the module's last run kept)."""
    dest = WORK / module.replace("/", "_").removesuffix(".py")
    _copy_clone(dest)
    if names is None:
        shutil.rmtree(dest / "mutants", ignore_errors=True)
    _write_config(dest, module)
    # TFLM runs in the test's own process: mutmut learns which test reaches which function there only
    env = dict(os.environ, TINYEFF_TEST_CACHE=str(WORK / "fixture-cache"), TINYEFF_CONTAINED="inline")
    print(f"mutating tinyeff/{module} (tests: {', '.join(MODULES[module])})", flush=True)
    subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *(names or [])],
                   cwd=dest, env=env, check=True, stdout=subprocess.DEVNULL)


def score_module(module: str, equivalent: dict[str, str]) -> ModuleScore | None:
    meta = WORK / module.replace("/", "_").removesuffix(".py") / "mutants" / "tinyeff" / f"{module}.meta"
    if not meta.exists():
        return None
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    killed = sum(1 for name, c in codes.items() if c in _KILLED and name not in equivalent)
    survived = sorted(name for name, c in codes.items() if c in _SURVIVED and name not in equivalent)
    eq = sum(1 for name in codes if name in equivalent)
    unchecked = sorted(name for name, c in codes.items()
                       if name not in equivalent and c not in _KILLED and c not in _SURVIVED)
    return ModuleScore(module, len(codes), killed, survived, eq, unchecked)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--module", action="append", choices=sorted(MODULES), help="mutate only this module (repeat for several)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    p.add_argument("--report-only", action="store_true", help="print the scores of the last run without running mutmut")
    p.add_argument("--survivors", action="store_true",
                   help="run only the last run's survivors and unchecked mutants again (after tests were added), "
                        "keeping the other verdicts")
    args = p.parse_args(argv)
    modules = args.module or list(MODULES)
    equivalent = equivalent_mutants()
    if not args.report_only:
        for module in modules:
            names = None
            if args.survivors:
                last = score_module(module, equivalent)
                if last is None:
                    raise SystemExit(f"tinyeff/{module} has no run to go on from; run it without --survivors first")
                names = last.survived + last.unchecked_names
                if not names:
                    continue
            run_module(module, args.jobs, names)
    print("| module | mutants | killed | survived | equivalent | not reached | score |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    below = []
    for module in modules:
        s = score_module(module, equivalent)
        if s is None:
            print(f"| tinyeff/{module} | not run |  |  |  |  |  |")
            below.append(module)
            continue
        print(f"| tinyeff/{module} | {s.mutants} | {s.killed} | {len(s.survived)} | {s.equivalent} | {s.unchecked} | {s.score:.1%} |")
        if s.score < GOAL:
            below.append(module)
    for module in modules:
        s = score_module(module, equivalent)
        if s and s.survived:
            print(f"\nsurvivors in tinyeff/{module} (mutmut show NAME in {WORK / module.replace('/', '_').removesuffix('.py')}):")
            for name in s.survived:
                print(f"  {name}")
    if below:
        print(f"\nbelow {GOAL:.0%}: {', '.join(below)}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
