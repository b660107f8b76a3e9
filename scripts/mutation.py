"""Mutation testing: how many small bugs planted in the modules that matter most the test suite catches.

For each module below, mutmut (PyPI) plants one change at a time (an operator, a constant, a
comparison, a removed call...) and runs the tests that reach the changed function; a mutant is
killed when one of them fails. A survivor is either a gap in the tests or a change that cannot
alter behaviour (an equivalent mutant): those are listed in tests/mutation_equivalent.toml with the
line the mutant writes and the reason, and left out of the score.

A whole pass takes hours on 2 cores, more than one sitting, so verdicts are kept in
tests/mutation_record.json (committed) and each run goes on from it: a killed mutant stays killed
while its function's source is unchanged (mutmut hashes each function; an edit to it drops the
function's verdicts, as its mutants are renumbered), and every survivor and not-yet-run mutant is
run again, against the tests as they are now. --minutes bounds a run; the verdicts reached are kept.

Each module runs in its own copy of the clone under build/mutation/<module>, with the shared
[tool.mutmut] settings of pyproject.toml and its own test selection. The session models the tests
train are made once and cached (TINYEFF_TEST_CACHE).

    .venv/bin/python scripts/mutation.py [--module codegen/quant.py ...] [--jobs N] [--minutes M]
    .venv/bin/python scripts/mutation.py --report-only           # the scores, from the record
    .venv/bin/python scripts/mutation.py --show NAME             # the line a mutant changes

Prints one row per module: mutants, killed (tests failed or hung), survived, equivalent, not yet
run with the current code, score = killed / (mutants - equivalent).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import datetime
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutation"
EQUIVALENT = ROOT / "tests" / "mutation_equivalent.toml"
RECORD = ROOT / "tests" / "mutation_record.json"
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
    "codegen/lower.py": ["tests/test_lower_refusals.py", "tests/test_model_checks.py", "tests/test_compiled_runtime.py", "tests/test_int16.py",
                         "tests/test_multi_io.py", "tests/test_lstm.py::test_state_lives_outside_the_arena_from_its_reset_value"],
    # the real firmware as a host process first (milliseconds per exchange), QEMU after
    "harness/dut.py": ["tests/test_harness_link.py", "tests/test_dut_host.py", "tests/test_bench_qemu.py::test_hardfault_is_reported_with_its_pc"],
    "harness/bench.py": ["tests/test_bench_inputs.py", "tests/test_bench_raw.py", "tests/test_dut_host.py", "tests/test_harness_link.py", "tests/test_multi_io.py::test_npz_inputs_are_checked_by_name",
                         "tests/test_bench_qemu.py"],
    "compress/prune.py": ["tests/test_models_and_pruning.py"],
}

# mutmut's exit codes, as its stats module reads them
_KILLED = {1, 3, 24, -24, 152, 255, 36, -11, -9, -8}  # a test failed, or the mutant hung or crashed the tests (-8: a SIGFPE in the host build)
_SURVIVED = {0, 33}  # the tests passed, or none reached the mutant


@dataclasses.dataclass(frozen=True)
class ModuleMutants:
    """The mutants mutmut makes of one module as the work tree holds it."""

    module: str
    names: list[str]
    function_hashes: dict[str, str]  # function (as mutmut names it) -> hash of its source
    mutated_code: str  # the module with every mutant and a trampoline per function, as mutmut writes it

    @staticmethod
    def function_of(name: str) -> str:
        return name.partition("__mutmut_")[0].rpartition(".")[2]

    def is_current(self, name: str, hashes: dict[str, str]) -> bool:
        """Whether a verdict on NAME recorded with function HASHES is about this code."""
        function = self.function_of(name)
        return name in self.names and hashes.get(function) == self.function_hashes.get(function)

    @functools.cached_property
    def _parsed(self):
        import libcst
        return libcst.parse_module(self.mutated_code)

    def diff(self, name: str) -> str:
        """The mutant against the original function, as a unified diff."""
        import libcst
        from mutmut.mutation.diff_apply import read_mutant_function, read_original_function
        before, after = (libcst.Module([f]).code.strip().splitlines()
                         for f in (read_original_function(self._parsed, name), read_mutant_function(self._parsed, name)))
        path = f"tinyeff/{self.module}"
        return "\n".join(difflib.unified_diff(before, after, fromfile=path, tofile=path, lineterm=""))

    def written_lines(self, name: str) -> list[str]:
        """The lines the mutant puts in place of the original's, stripped."""
        return [line[1:].strip() for line in self.diff(name).splitlines()
                if line.startswith("+") and not line.startswith("+++")]


@functools.cache
def current_mutants(module: str) -> ModuleMutants:
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name
    path = Path("tinyeff") / module
    with contextlib.chdir(ROOT):  # mutmut reads its settings from the working directory's pyproject.toml
        mutated = mutate_file_contents(str(path), path.read_text())
    names = [get_mutant_name(path, name) for name in mutated.mutant_names]
    return ModuleMutants(module, names, dict(mutated.hash_by_function_name), mutated.code)


@dataclasses.dataclass(frozen=True)
class Equivalent:
    name: str
    change: str  # the line the mutant writes, stripped: it pins the entry to that mutant through renumbering
    why: str


def equivalent_mutants() -> dict[str, Equivalent]:
    if not EQUIVALENT.exists():
        return {}
    return {name: Equivalent(name, entry["change"], entry["why"])
            for name, entry in tomllib.loads(EQUIVALENT.read_text()).items()}


def stale_equivalents(module: str, equivalent: dict[str, Equivalent]) -> list[str]:
    """The module's listed equivalents that no longer name the mutant their entry describes."""
    now = current_mutants(module)
    prefix = "tinyeff." + module.removesuffix(".py").replace("/", ".") + "."
    return [name for name, entry in equivalent.items() if name.startswith(prefix)
            and (name not in now.names or entry.change not in now.written_lines(name))]


def load_record() -> dict[str, dict]:
    return json.loads(RECORD.read_text()) if RECORD.exists() else {}


def _save_record(module: str, entry: dict) -> None:
    record = load_record()  # read again: another module's run may have written since
    record[module] = entry
    RECORD.write_text(json.dumps(dict(sorted(record.items())), indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def _meta_path(dest: Path, module: str) -> Path:
    return dest / "mutants" / "tinyeff" / f"{module}.meta"


def _seed_meta(dest: Path, module: str) -> int:
    """Start DEST's mutmut state from the record's killed verdicts on unchanged functions; returns their count."""
    entry = load_record().get(module, {"function_hashes": {}, "exit_codes": {}})
    now = current_mutants(module)
    killed = {name: code for name, code in entry["exit_codes"].items()
              if code in _KILLED and now.is_current(name, entry["function_hashes"])}
    meta = _meta_path(dest, module)
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": killed, "hash_by_function_name": entry["function_hashes"],
                                "type_check_error_by_key": {}, "durations_by_key": {}, "estimated_durations_by_key": {}}))
    return len(killed)


def _record_run(dest: Path, module: str) -> None:
    """Keep the verdicts DEST's mutmut reached (with the seeded ones it kept) as the module's record."""
    meta = json.loads(_meta_path(dest, module).read_text())
    _save_record(module, {
        "updated": datetime.date.today().isoformat(),
        "function_hashes": meta["hash_by_function_name"],
        "exit_codes": {name: code for name, code in meta["exit_code_by_key"].items() if code is not None},
    })


def _write_config(dest: Path, module: str) -> None:
    """pyproject.toml's shared [tool.mutmut] settings plus this module's file and test selection."""
    tests = [t for t in MODULES[module] if (ROOT / t.split("::")[0]).exists()]
    text = (ROOT / "pyproject.toml").read_text()
    header = "[tool.mutmut]\n"
    assert header in text, "pyproject.toml has no [tool.mutmut] table"
    own = f'only_mutate = ["tinyeff/{module}"]\npytest_add_cli_args_test_selection = {json.dumps(tests)}\n'
    (dest / "pyproject.toml").write_text(text.replace(header, header + own, 1))


def _copy_clone(dest: Path) -> None:
    """The tracked files of the clone (as they are in the work tree) into DEST."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src, dst = ROOT / name, dest / name
        if not src.is_file():
            continue
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime and dst.stat().st_size == src.stat().st_size:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


class _Stopped(Exception):
    """SIGTERM reached this script: stop mutmut as Ctrl-C would and keep what it reached."""


def _stop(signum, frame):
    raise _Stopped


def run_module(module: str, jobs: int, deadline: float) -> None:
    """Run MODULE's mutants that have no current killed verdict, until done or DEADLINE (time.monotonic)."""
    dest = WORK / module.replace("/", "_").removesuffix(".py")
    _copy_clone(dest)
    shutil.rmtree(dest / "mutants", ignore_errors=True)  # mutmut's own cache keeps survivors as they were
    _write_config(dest, module)
    kept = _seed_meta(dest, module)
    # TFLM runs in the test's own process: mutmut learns which test reaches which function there only
    env = dict(os.environ, TINYEFF_TEST_CACHE=str(WORK / "fixture-cache"), TINYEFF_CONTAINED="inline",
               TINYEFF_MUTATION_STATS=str(dest / "mutants" / "mutmut-stats.json"))  # per-test hang bounds (tests/conftest.py)
    print(f"mutating tinyeff/{module}: {len(current_mutants(module).names)} mutants, {kept} killed before and unchanged "
          f"(tests: {', '.join(MODULES[module])})", flush=True)
    # a nohup'ed shell hands children SIGINT ignored; mutmut stops cleanly on Ctrl-C only
    child = subprocess.Popen([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)],
                             cwd=dest, env=env, stdout=subprocess.DEVNULL,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stopped = False
    try:
        child.wait(timeout=None if deadline == float("inf") else max(deadline - time.monotonic(), 0))
    except (subprocess.TimeoutExpired, _Stopped):
        stopped = True
        child.send_signal(signal.SIGINT)
        child.wait()
    finally:
        if _meta_path(dest, module).exists():
            _record_run(dest, module)
    if child.returncode and not stopped:
        raise SystemExit(f"mutmut ended with {child.returncode} on tinyeff/{module}; see its state in {dest}")
    if stopped:
        raise _Stopped


@dataclasses.dataclass(frozen=True)
class ModuleScore:
    module: str
    mutants: int
    killed: int
    survived: list[str]
    equivalent: int
    not_run: int  # no verdict on the code as it is now
    updated: str
    stale_equivalents: list[str]  # listed as equivalent, but no longer the change their entry names

    @property
    def score(self) -> float:
        counted = self.mutants - self.equivalent
        return self.killed / counted if counted else 1.0


def score_module(module: str, record: dict[str, dict], equivalent: dict[str, Equivalent]) -> ModuleScore:
    now = current_mutants(module)
    entry = record.get(module, {"function_hashes": {}, "exit_codes": {}, "updated": "never"})
    stale = stale_equivalents(module, equivalent)
    eq = {name for name in now.names if name in equivalent and name not in stale}
    codes = {name: entry["exit_codes"].get(name) for name in now.names
             if name not in eq and now.is_current(name, entry["function_hashes"])}
    killed = sum(1 for c in codes.values() if c in _KILLED)
    survived = sorted(name for name, c in codes.items() if c in _SURVIVED)
    not_run = len(now.names) - len(eq) - killed - len(survived)
    return ModuleScore(module, len(now.names), killed, survived, len(eq), not_run, entry["updated"], stale)


def report(modules: list[str]) -> int:
    record, equivalent = load_record(), equivalent_mutants()
    scores = [score_module(m, record, equivalent) for m in modules]
    print("| module | mutants | killed | survived | equivalent | not run | score | run |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for s in scores:
        print(f"| `tinyeff/{s.module}` | {s.mutants} | {s.killed} | {len(s.survived)} | {s.equivalent} | {s.not_run} "
              f"| {s.score * 100:.1f} % | {s.updated} |")
    for s in scores:
        if s.survived:
            print(f"\nsurvivors in tinyeff/{s.module} (scripts/mutation.py --show NAME):")
            print("\n".join(f"  {name}" for name in s.survived))
    stale = [name for s in scores for name in s.stale_equivalents]
    if stale:
        print(f"\nlisted as equivalent but no longer the change their entry names (edit {EQUIVALENT.name}):")
        print("\n".join(f"  {name}" for name in stale))
    below = [s.module for s in scores if s.score < GOAL]
    if below:
        print(f"\nbelow {GOAL:.0%}: {', '.join(below)}")
    return 1 if below or stale else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--module", action="append", choices=sorted(MODULES), help="mutate only this module (repeat for several)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    p.add_argument("--minutes", type=float, default=None, help="stop after this long, keeping the verdicts reached")
    p.add_argument("--report-only", action="store_true", help="print the scores the record holds, running nothing")
    p.add_argument("--show", metavar="NAME", help="print the change mutant NAME makes, and stop")
    args = p.parse_args(argv)
    if args.show:
        module = next((m for m in MODULES if args.show.startswith("tinyeff." + m.removesuffix(".py").replace("/", ".") + ".")), None)
        if module is None or args.show not in current_mutants(module).names:
            raise SystemExit(f"{args.show} is not a mutant of the modules mutated now; --report-only lists the survivors")
        print(current_mutants(module).diff(args.show))
        return 0
    modules = args.module or list(MODULES)
    if not args.report_only:
        signal.signal(signal.SIGTERM, _stop)
        deadline = time.monotonic() + (args.minutes * 60 if args.minutes is not None else float("inf"))
        try:
            for module in modules:
                run_module(module, args.jobs, deadline)
        except _Stopped:
            print("stopped; the verdicts reached are in the record", flush=True)
    return report(modules)


if __name__ == "__main__":
    sys.exit(main())
