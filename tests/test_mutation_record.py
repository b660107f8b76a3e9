"""scripts/mutation.py's bookkeeping: the README's mutation scores come from tests/mutation_record.json,
kept across runs, and tests/mutation_equivalent.toml leaves mutants out of them. Both must stay about
the code as it is: a verdict or an equivalence on a function that changed since is not counted."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("mutation", ROOT / "scripts" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_every_listed_equivalent_is_still_the_change_its_entry_names(mutation):
    listed = mutation.equivalent_mutants()
    modules = {m for m in mutation.MODULES for name in listed
               if name.startswith("tinyeff." + m.removesuffix(".py").replace("/", ".") + ".")}
    assert len(modules) >= 4, "the equivalents' names no longer start with a mutated module's"
    stale = [name for m in sorted(modules) for name in mutation.stale_equivalents(m, listed)]
    assert not stale, f"edit tests/mutation_equivalent.toml (scripts/mutation.py --show NAME): {stale}"


def test_a_listed_equivalent_that_names_another_change_is_stale(mutation):
    name = "tinyeff.compress.prune.x_saliency__mutmut_13"
    right = mutation.equivalent_mutants()[name]
    wrong = mutation.Equivalent(name, "l1 = np.abs(kernel).reshape(-1, kernel.shape[-1]).mean(axis=1)", right.why)
    assert mutation.stale_equivalents("compress/prune.py", {name: right}) == []
    assert mutation.stale_equivalents("compress/prune.py", {name: wrong}) == [name]
    gone = mutation.Equivalent("tinyeff.compress.prune.x_saliency__mutmut_999", right.change, right.why)
    assert mutation.stale_equivalents("compress/prune.py", {gone.name: gone}) == [gone.name]


def test_verdicts_count_only_while_their_function_is_unchanged(mutation):
    now = mutation.current_mutants("compress/prune.py")
    plan = [n for n in now.names if now.function_of(n) == "x_plan"]
    saliency = [n for n in now.names if now.function_of(n) == "x_saliency"]
    assert plan and saliency
    hashes = dict(now.function_hashes, x_saliency="a hash of saliency's source before an edit")
    record = {"compress/prune.py": {
        "updated": "2026-12-03", "function_hashes": hashes,
        # one plan mutant survived, one hung (killed), the rest failed a test; saliency's verdicts are stale
        "exit_codes": {**{n: 1 for n in plan}, plan[0]: 0, plan[1]: 36, **{n: 1 for n in saliency}}}}
    equivalent = {plan[2]: mutation.Equivalent(plan[2], now.written_lines(plan[2])[0], "listed")}
    s = mutation.score_module("compress/prune.py", record, equivalent)
    assert (s.mutants, s.equivalent, s.survived) == (len(now.names), 1, [plan[0]])
    assert s.killed == len(plan) - 2
    assert s.not_run == len(now.names) - len(plan)  # saliency's and every other function's
    assert s.score == pytest.approx((len(plan) - 2) / (len(now.names) - 1))


def test_a_run_starts_from_the_killed_verdicts_on_unchanged_functions(mutation, tmp_path, monkeypatch):
    now = mutation.current_mutants("compress/prune.py")
    plan = [n for n in now.names if now.function_of(n) == "x_plan"]
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"compress/prune.py": {
        "updated": "2026-12-03", "function_hashes": dict(now.function_hashes, x_saliency="older"),
        "exit_codes": {plan[0]: 1, plan[1]: 0, plan[2]: 33, **{n: 1 for n in now.names
                                                               if now.function_of(n) == "x_saliency"}}}}))
    monkeypatch.setattr(mutation, "RECORD", record)
    assert mutation._seed_meta(tmp_path, "compress/prune.py") == 1
    meta = json.loads((tmp_path / "mutants" / "tinyeff" / "compress" / "prune.py.meta").read_text())
    # survivors and "no test reached it" run again, against the tests as they are now
    assert meta["exit_code_by_key"] == {plan[0]: 1}
    meta["exit_code_by_key"].update({plan[1]: 1, plan[3]: 0, plan[4]: None})
    (tmp_path / "mutants" / "tinyeff" / "compress" / "prune.py.meta").write_text(json.dumps(meta))
    mutation._record_run(tmp_path, "compress/prune.py")
    kept = json.loads(record.read_text())["compress/prune.py"]
    assert kept["exit_codes"] == {plan[0]: 1, plan[1]: 1, plan[3]: 0}
    assert kept["function_hashes"]["x_saliency"] == "older"


def test_the_record_names_only_mutated_modules_and_mutmut_exit_codes(mutation):
    record = mutation.load_record()
    assert set(record) <= set(mutation.MODULES)
    for module, entry in record.items():
        assert set(entry) == {"updated", "function_hashes", "exit_codes"}, module
        assert all(name.startswith("tinyeff.") and "__mutmut_" in name for name in entry["exit_codes"]), module
        assert set(entry["exit_codes"].values()) <= mutation._KILLED | mutation._SURVIVED | {34, 35, 37}, module
