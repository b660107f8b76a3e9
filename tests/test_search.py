"""tinyeff search: trials under a budget, the best model that fits, resumed studies, shared studies
on a real PostgreSQL server, and the one-sentence errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyeff.cli import main
from postgres_server import postgres_server

# A small corner of the space (one block, 4 or 8 channels, 10 epochs): seconds per trial
FAST = ["--max-depth", "1", "--max-width", "8", "--min-epochs", "10", "--max-epochs", "10"]
BUDGET = ["--flash-kib", "12", "--ram-kib", "6"]
STUDY = "tinyeff-search"


def _search_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tinyeff.cli", "search", "--data", "digits", "--out", str(out), *BUDGET, *FAST, *extra]


def _study(url: str):
    import optuna

    return optuna.load_study(study_name=STUDY, storage=url)


def _sqlite(out: Path) -> str:
    return f"sqlite:///{(out / 'study.db').resolve()}"


def _wait_for(predicate, what: str, timeout: float = 240.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the worker ended (exit {proc.returncode}) before {what}: {proc.stderr.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _running_trial(url: str, worker_pid: int | None = None, before_epoch: int | None = None):
    """A trial that is RUNNING and training (it has reported an epoch, before BEFORE_EPOCH if given;
    started by WORKER_PID): the moment to interrupt or kill its worker, with the rest of its epochs
    still to run."""
    from optuna.trial import TrialState

    try:
        trials = _study(url).get_trials(deepcopy=False)
    except Exception:  # the study is not created yet
        return None
    for t in trials:
        if t.state == TrialState.RUNNING and "worker" in t.user_attrs and t.intermediate_values:
            if before_epoch is not None and max(t.intermediate_values) >= before_epoch:
                continue
            if worker_pid is None or t.user_attrs["worker"].endswith(f":{worker_pid}"):
                return t
    return None


def _counted(t) -> bool:
    """A trial --trials counts: trained to the end, or pruned during training (not one over budget)."""
    from optuna.trial import TrialState

    return t.state == TrialState.PRUNED or (t.state == TrialState.COMPLETE and t.user_attrs.get("trained"))


def _finished(url: str) -> list:
    return [t for t in _study(url).get_trials() if _counted(t)]


def _dashboard_trials(url: str) -> list[dict]:
    """The trials of the kit's study as optuna-dashboard shows them: the command the README gives
    (`optuna-dashboard URL`), started on a free local port and asked over HTTP, as a browser would."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    proc = subprocess.Popen([str(dashboard), url, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def studies():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    return json.loads(r.read())["study_summaries"]
            except OSError:
                return None

        listed = _wait_for(studies, "optuna-dashboard listing the study", timeout=60, proc=proc)
        assert [s["study_name"] for s in listed] == [STUDY]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{listed[0]['study_id']}", timeout=30) as r:
            return json.loads(r.read())["trials"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_search_exports_the_best_model_that_fits_and_reports_every_trial(tmp_path, capsys):
    from tinyeff.compress.quantize import int8_accuracy
    from tinyeff.data import load_dataset
    from tinyeff.footprint import measure
    from tinyeff.models.spec import ModelSpec
    from tinyeff.train.run import features_of

    out = tmp_path / "search"
    assert main(["search", "--data", "digits", "--out", str(out), *BUDGET, *FAST, "--trials", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "search.json").read_text())
    best = summary["best"]
    model = (out / "model.int8.tflite").read_bytes()
    fp = measure(model)
    assert fp.flash_bytes <= 12 * 1024 and fp.ram_bytes <= 6 * 1024
    # the best trial's plan trained again on the whole training split is what was exported
    assert best["exported"]["refit"] and (fp.flash_bytes, fp.ram_bytes) == (best["exported"]["flash_bytes"], best["exported"]["ram_bytes"])
    # the test split is measured for the exported model (and only for it): the figure is the file's
    data = load_dataset("digits")
    spec = ModelSpec.from_json(best["spec"])
    assert best["int8_test_accuracy"] == int8_accuracy(model, features_of(spec, data.x_test), data.y_test)
    assert f"int8 test accuracy {100 * best['int8_test_accuracy']:.1f} %" in printed
    # the candidates are the trained trials that fit, best on validation first (the default --rerank 5
    # takes all three); the one exported is the candidate right on the most samples of the 3 held-out folds
    study = _study(_sqlite(out))
    trained = [t for t in study.trials if t.user_attrs.get("trained") and t.state.name == "COMPLETE"
               and max(t.constraints.values()) <= 0]
    assert len(_finished(_sqlite(out))) == 3
    choice = summary["choice"]
    candidates = choice["candidates"]
    assert choice["by"] == "3-fold cross-validation" and len(candidates) == len(trained) >= 2
    assert sorted(c["number"] for c in candidates) == sorted(t.number for t in trained)
    assert [c["int8_val_accuracy"] for c in candidates] == sorted((c["int8_val_accuracy"] for c in candidates), reverse=True)
    most = max(c["cv_right"] for c in candidates)
    assert best["number"] == next(c["number"] for c in candidates if c["cv_right"] == most)
    assert all(c["cv_samples"] == len(data.y_train) for c in candidates)
    assert "chosen by 3-fold cross-validation of the training split among the" in printed
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["number"]) for r in rows] == [t.number for t in study.trials]
    assert sum(r["best"] == "True" for r in rows) == 1
    assert {int(r["number"]): float(r["cv_accuracy"]) for r in rows if r["cv_accuracy"]} == {
        c["number"]: c["cv_accuracy"] for c in candidates}
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # "optuna-dashboard opens either storage": every trial, with its state
    shown = _dashboard_trials(_sqlite(out))
    assert [(t["number"], t["state"]) for t in shown] == [(t.number, t.state.name.capitalize()) for t in study.trials]


def test_cross_validation_folds_hold_whole_groups_of_every_class_and_cover_the_split_once():
    import numpy as np

    from tinyeff.search.crossval import folds

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 600)
    groups = y * 100 + rng.integers(0, 7, 600)  # 7 templates per class, numbered apart per class
    parts = folds(y, groups, 3, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(600))  # disjoint and complete
    for f, held in enumerate(parts):
        rest = np.concatenate([p for i, p in enumerate(parts) if i != f])
        assert not set(groups[held]) & set(groups[rest])  # a template is on one side only
        assert set(y[held]) == set(range(4))  # every class has >= 3 templates, so every fold holds each class
    assert [len(np.unique(groups[p])) for p in parts] == [12, 8, 8]  # 7 templates per class dealt 3, 2, 2
    # without groups: every sample its own group, each class dealt evenly over the folds
    plain = folds(y, None, 3, seed=0)
    for c in range(4):
        sizes = [int((y[p] == c).sum()) for p in plain]
        assert max(sizes) - min(sizes) <= 1
    assert [p.tolist() for p in folds(y, groups, 3, seed=0)] == [p.tolist() for p in parts]  # seeded
    assert [p.tolist() for p in folds(y, groups, 3, seed=1)] != [p.tolist() for p in parts]


def test_a_plan_over_budget_is_recorded_infeasible_without_training(tmp_path):
    """The widest plan of the space measured over a small budget: the trial completes as infeasible
    (its measured footprint as constraints), untrained, and the sampler sees it."""
    import optuna

    from tinyeff.compress.shrink import Budget
    from tinyeff.data import load_dataset
    from tinyeff.search.objective import Objective
    from tinyeff.search.space import SpaceLimits

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"depth": 2, "width0": 64, "width1": 64, "width2": 64, "downsample": 0, "kernel": 5,
                         "dropout": 0.1, "epochs": 20, "learning_rate": 1e-3, "augment": False, "mixup": 0.0, "qat": "off"})
    budget = Budget(8 * 1024, 4 * 1024)
    study.optimize(Objective(load_dataset("digits"), budget, SpaceLimits()), n_trials=1)
    t = study.trials[0]
    assert t.state.name == "COMPLETE" and t.user_attrs["trained"] is False
    fp = t.user_attrs["footprint"]
    assert fp["flash_bytes"] > budget.flash_bytes and fp["ram_bytes"] > budget.ram_bytes
    assert t.constraints == {"flash_over_bytes": fp["flash_bytes"] - budget.flash_bytes,
                             "ram_over_bytes": fp["ram_bytes"] - budget.ram_bytes}
    assert "int8_tflite_b64" not in t.user_attrs and "int8_val_accuracy" not in t.user_attrs


@pytest.mark.parametrize("option, value", [("--trials", "0"), ("--rerank", "-1")])
def test_a_count_of_trials_below_its_least_is_one_sentence_and_writes_nothing(option, value, tmp_path, capsys):
    out = tmp_path / "search"
    assert main(["search", "--data", "digits", "--out", str(out), *BUDGET, option, value]) == 2
    least = 1 if option == "--trials" else 0
    assert f"tinyeff: error: {option} takes a number of trials of {least} or more, not {value}" in capsys.readouterr().err
    assert not out.exists()


def test_an_impossible_budget_names_the_smallest_footprint_and_writes_nothing(tmp_path, capsys):
    from tinyeff.data import load_dataset
    from tinyeff.search.run import smallest_footprint
    from tinyeff.search.space import SpaceLimits

    out = tmp_path / "search"
    assert main(["search", "--data", "digits", "--out", str(out), "--flash-kib", "1", "--ram-kib", "1", "--trials", "2"]) == 2
    err = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("tinyeff: error:"))
    small = smallest_footprint(load_dataset("digits"), SpaceLimits(), 0)
    assert err == (f"tinyeff: error: no model of the search space fits flash <= 1 KiB and RAM <= 1 KiB: the smallest reaches "
                   f"{small.flash_bytes / 1024:.2f} KiB flash and {small.ram_bytes / 1024:.2f} KiB RAM; raise the budget")
    assert not out.exists()


def test_an_unreachable_database_is_one_sentence_without_the_password(tmp_path, capsys):
    with socketless_port() as port:
        url = f"postgresql://someone:s3cret@127.0.0.1:{port}/studies"
        out = tmp_path / "search"
        assert main(["search", "--data", "digits", "--out", str(out), *BUDGET, "--storage", url, "--trials", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"tinyeff: error: cannot open the search study at 'postgresql://someone:***@127.0.0.1:{port}/studies' (")
    assert err.endswith("check the URL and that the database server runs and lets this user in")
    assert "s3cret" not in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


class socketless_port:
    """A localhost port nothing listens on (bound, never listening, for the test's duration)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


def _open_storage_at_a_signal(url, start, replies):
    from tinyeff.search.study import open_storage

    start.wait()
    try:
        open_storage(url, heartbeat_s=10)
        replies.put("opened")
    except Exception as e:  # the reply is the test's evidence, whatever it is
        replies.put(f"{type(e).__name__}: {e}")


def test_workers_started_at_once_on_a_new_database_all_open_it(tmp_path):
    """Four workers released together on a study database nobody made yet: each one creates the schema
    it does not find; the losers of that race connect again and find it whole, none ends in an error.
    (Before that retry, 6 rounds of 10 failed on this machine.)"""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as separate `tinyeff search` workers are
    for round_ in range(3):
        start, replies = spawn.Barrier(4), spawn.Queue()
        url = _sqlite(tmp_path / f"round{round_}")
        (tmp_path / f"round{round_}").mkdir()
        workers = [spawn.Process(target=_open_storage_at_a_signal, args=(url, start, replies)) for _ in range(4)]
        for w in workers:
            w.start()
        got = [replies.get(timeout=120) for _ in workers]
        for w in workers:
            w.join(timeout=30)
        assert got == ["opened"] * 4, got


@pytest.mark.slow
def test_a_study_made_for_another_budget_is_refused(tmp_path, capsys):
    out = tmp_path / "search"
    assert main(["search", "--data", "digits", "--out", str(out), *BUDGET, *FAST, "--trials", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", "--data", "digits", "--out", str(out), "--flash-kib", "10", "--ram-kib", "6", *FAST,
                 "--trials", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "study 'tinyeff-search' was made for another search (budget" in err and "give another --study or --out" in err
    assert len(_finished(_sqlite(out))) == 1  # and left as it was


@pytest.mark.slow
def test_an_interrupted_search_resumes_where_it_stopped(tmp_path):
    """Ctrl-C in the middle of a trial: the command ends (130), the trial is failed and marked, the
    finished trials stay; the same command again runs the interrupted parameters first and stops
    at the total asked for."""
    from optuna.trial import TrialState

    out, url = tmp_path / "search", _sqlite(tmp_path / "search")
    cmd = _search_cmd(out, "--trials", "3") + ["--min-epochs", "30", "--max-epochs", "30"]  # the later flags win
    # SIGINT back to its default in the child: a test run started in the background (`cmd &` in a script)
    # ignores SIGINT, the child inherits that, and Python then installs no KeyboardInterrupt for it
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # the trigger is a state of the study, not a timer: one trial trained, the next one in the first
        # half of its 30 epochs (a trial seen near its end could finish before the signal lands, and the
        # signal then ends the search between trials or in its final choice, with no trial interrupted)
        _wait_for(lambda: (out / "study.db").exists() and _running_trial(url, before_epoch=15)
                  and len(_finished(url)) >= 1,
                  "a trained trial and a running one", proc=first)
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, err
    before = {t.number: (t.state, t.values, t.params) for t in _study(url).trials}
    interrupted = [t for t in _study(url).trials if t.state == TrialState.FAIL]
    assert len(interrupted) == 1 and interrupted[0].user_attrs["interrupted"] is True

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"trials {interrupted[0].number} were interrupted; their parameters run again first" in again.stderr
    trials = _study(url).trials
    for number, (state, values, params) in before.items():  # nothing finished before was lost or redone
        assert (trials[number].state, trials[number].values, trials[number].params) == (state, values, params)
    retried = [t for t in trials if t.user_attrs.get("retry_of") == interrupted[0].number]
    # every parameter the interrupted trial had drawn runs again; a trial interrupted before it drew all
    # of them (the one it was training ended just before the signal came, the next one was starting)
    # draws the rest anew
    assert len(retried) == 1 and retried[0].state != TrialState.FAIL
    assert interrupted[0].params and interrupted[0].params.items() <= retried[0].params.items()
    assert len(_finished(url)) == 3


@pytest.mark.slow
def test_two_workers_share_a_study_on_postgresql_and_survive_one_killed(tmp_path):
    """Two `tinyeff search` workers on one real PostgreSQL server: the one killed (SIGKILL) in the
    middle of a trial leaves that trial RUNNING; its heartbeat goes stale, the other worker fails it,
    runs its parameters again and finishes the study: the trial counts add up, nothing lost or run twice."""
    from optuna.trial import TrialState

    with postgres_server() as url:
        cmd = lambda name: _search_cmd(tmp_path / name, "--storage", url, "--trials", "5", "--heartbeat", "1")  # noqa: E731
        a = subprocess.Popen(cmd("a"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        b = subprocess.Popen(cmd("b"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            killed = _wait_for(lambda: _running_trial(url, a.pid), "worker a running a trial", proc=a)
            a.send_signal(signal.SIGKILL)
            a.wait(timeout=30)
            b_out, b_err = b.communicate(timeout=900)
        finally:
            a.kill()
            b.kill()
        assert b.returncode == 0, b_err
        trials = _study(url).trials
        assert trials[killed.number].state == TrialState.FAIL
        retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
        assert len(retry) == 1 and retry[0].params == killed.params and retry[0].state != TrialState.FAIL
        assert retry[0].user_attrs["worker"].endswith(f":{b.pid}")
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert sum(map(_counted, finished)) == 5
        # every finished trial was run by one of the two workers, b's own count is what b reported
        workers = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in finished}
        assert workers <= {str(a.pid), str(b.pid)}
        by_b = [t for t in trials if t.user_attrs.get("worker", "").endswith(f":{b.pid}") and t.state != TrialState.RUNNING]
        summary = json.loads((tmp_path / "b" / "search.json").read_text())
        assert summary["this_worker"]["trials"] == len(by_b)
        # nothing run twice: apart from the retried trial, no two trials share parameters
        params = [json.dumps(t.params, sort_keys=True) for t in trials if t.number != killed.number]
        assert len(params) == len(set(params))
        assert summary["storage"] == "postgresql"
        assert os.path.exists(tmp_path / "b" / "model.int8.tflite")
        assert [t["number"] for t in _dashboard_trials(url)] == [t.number for t in trials]


@pytest.mark.slow
def test_latency_is_a_fourth_objective_measured_on_the_emulated_board(tmp_path, capsys):
    """--pareto --latency: each trial that fits is generated, built and benched in QEMU; the median
    emulated instructions is the study's fourth objective and the figure the summary prints, and
    -icount makes a second measurement of the same model give the same count (to one timer tick)."""
    import optuna

    from tinyeff.boards import get_board
    from tinyeff.data import load_dataset
    from tinyeff.search.latency import emulated_instructions
    from tinyeff.search.objective import search_validation, tflite_of

    out = tmp_path / "search"
    assert main(["search", "--data", "digits", "--out", str(out), *BUDGET, *FAST, "--trials", "2", "--pareto",
                 "--latency", "--quiet"]) == 0
    printed = capsys.readouterr().out
    study = _study(_sqlite(out))
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE] + [optuna.study.StudyDirection.MINIMIZE] * 3
    fitting = [t for t in study.trials if tflite_of(t)]
    assert fitting
    for t in fitting:
        fp = t.user_attrs["footprint"]
        assert t.values == [t.user_attrs["int8_val_accuracy"], fp["flash_bytes"], fp["ram_bytes"], t.user_attrs["emulated_instructions"]]
    best = json.loads((out / "search.json").read_text())["best"]
    exported = best["exported"]
    assert exported["refit"] and f"{exported['emulated_instructions']:,.0f} emulated instructions on qemu-mps2-an386" in printed
    data = load_dataset("digits")
    _, val = search_validation(data, 0)
    trial = study.trials[best["number"]]
    again = emulated_instructions(tflite_of(trial), "qemu-mps2-an386", data.x_train[val], data.y_train[val])
    tick = 1e9 / get_board("qemu-mps2-an386").clock_hz  # the same instructions, counted one SysTick tick apart at most
    assert abs(again - best["emulated_instructions"]) <= tick


def test_latency_on_a_real_board_is_refused_before_any_trial(tmp_path, capsys):
    out = tmp_path / "search"
    assert main(["search", "--data", "digits", "--out", str(out), *BUDGET, "--trials", "2", "--latency",
                 "--latency-board", "nucleo-l4r5zi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("tinyeff: error: --latency measures on an emulated board and nucleo-l4r5zi is a real one; "
                   "give --latency-board qemu-mps2-an386 (or another qemu board)")
    assert not out.exists()


@pytest.mark.slow
def test_shrink_and_improve_prunes_each_trained_model_into_the_budget_and_compares_with_a_plain_search(tmp_path, capsys):
    """The shrink recipe trains a model of any size and prunes it into the budget (distilling from it):
    the exported model fits though the trained one did not; a plain search given with --compare is
    reported and plotted beside it."""
    from tinyeff.footprint import measure
    from tinyeff.search.objective import tflite_of

    budget = ["--flash-kib", "3.2", "--ram-kib", "6"]
    wide = ["--max-depth", "1", "--max-width", "16", "--min-epochs", "10", "--max-epochs", "10"]
    plain, shrunk = tmp_path / "plain", tmp_path / "shrunk"
    assert main(["search", "--data", "digits", "--out", str(plain), *BUDGET, *FAST, "--trials", "1", "--quiet"]) == 0
    assert main(["search", "--data", "digits", "--out", str(shrunk), *budget, *wide, "--trials", "1", "--quiet",
                 "--recipe", "shrink-and-improve", "--compare", str(plain)]) == 0
    printed = capsys.readouterr().out
    study = _study(_sqlite(shrunk))
    done = [t for t in study.trials if tflite_of(t)]
    assert done, [t.user_attrs for t in study.trials]
    for t in done:
        assert t.user_attrs["start_spec"]["widths"] != t.user_attrs["spec"]["widths"]  # pruned
        assert measure(tflite_of(t)).flash_bytes <= 3.2 * 1024 < t.user_attrs["start_footprint"]["flash_bytes"]
    summary = json.loads((shrunk / "search.json").read_text())
    assert summary["recipe"] == "shrink-and-improve"
    plain_best = json.loads((plain / "search.json").read_text())["best"]
    assert summary["compare"] == [{"name": "plain", "kind": "search", "label": "search, plain",
                                   "int8_test_accuracy": plain_best["int8_test_accuracy"],
                                   "flash_bytes": plain_best["flash_bytes"], "ram_bytes": plain_best["ram_bytes"]}]
    assert f"search, plain (plain): int8 test accuracy {100 * plain_best['int8_test_accuracy']:.1f} %" in printed


@pytest.mark.slow
def test_grow_improve_shrink_widens_every_layer_trains_with_augmentation_and_prunes_into_the_budget(tmp_path):
    """grow-improve-shrink: each sampled width is multiplied by the trial's grow factor, the grown model
    is trained with augmentation and mixup (never drawn off), then pruned into the budget: the exported
    model fits though the grown one did not."""
    from tinyeff.footprint import measure
    from tinyeff.search.objective import tflite_of

    out = tmp_path / "grown"
    budget = ["--flash-kib", "3.2", "--ram-kib", "6"]
    wide = ["--max-depth", "1", "--max-width", "16", "--min-epochs", "10", "--max-epochs", "10"]
    assert main(["search", "--data", "digits", "--out", str(out), *budget, *wide, "--trials", "1", "--quiet",
                 "--recipe", "grow-improve-shrink"]) == 0
    study = _study(_sqlite(out))
    done = [t for t in study.trials if tflite_of(t)]
    assert done, [t.user_attrs for t in study.trials]
    for t in study.trials:
        p = t.params
        assert 1.5 <= p["grow"] <= 3.0 and p["mixup"] in (0.2, 0.4) and "augment" not in p
        sampled = [p[f"width{i}"] for i in range(p["depth"] + 1)]
        grown = [max(1, round(w * p["grow"])) for w in sampled]
        assert t.user_attrs["start_spec"]["widths"] == grown, (sampled, p["grow"])
    for t in done:
        assert t.user_attrs["spec"]["widths"] != t.user_attrs["start_spec"]["widths"]  # pruned
        assert measure(tflite_of(t)).flash_bytes <= 3.2 * 1024 < t.user_attrs["start_footprint"]["flash_bytes"]
    summary = json.loads((out / "search.json").read_text())
    assert summary["recipe"] == "grow-improve-shrink"
    assert measure((out / "model.int8.tflite").read_bytes()).flash_bytes <= 3.2 * 1024


def test_compare_refuses_a_directory_that_is_no_run_before_searching(tmp_path, capsys):
    out = tmp_path / "search"
    assert main(["search", "--data", "digits", "--out", str(out), *BUDGET, "--compare", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"tinyeff: error: '{tmp_path}' is neither a shrink run (candidates.json) nor a search (search.json); "
                   "give the directory 'tinyeff shrink' or 'tinyeff search' wrote")
    assert not out.exists()


def test_the_linear_text_baseline_learns_word_classes_and_not_shuffled_labels():
    """The baseline the search's text summary sets beside the searched model: classes that words
    decide are learned to 100 % on unseen sentences; labels shuffled against the words give chance."""
    import numpy as np

    from tinyeff.data.dataset import Dataset
    from tinyeff.search.baseline import linear_text_baseline

    rng = np.random.default_rng(0)
    verbs, things = ["turn on", "switch off", "open"], ["the lamp", "the door", "the heater", "my fan", "the tv"]
    fillers = ["please", "now", "quickly", "", "for me"]

    def sentences(n):
        y = rng.integers(0, 3, n)
        x = np.array([f"{rng.choice(fillers)} {verbs[c]} {rng.choice(things)} {rng.choice(fillers)}".strip() for c in y])
        return x, y.astype(np.int32)

    (xt, yt), (xs, ys) = sentences(300), sentences(200)
    labels = ("on", "off", "open")
    learned = linear_text_baseline(Dataset("t", "text", xt, yt, xs, ys, labels))
    assert learned.test_accuracy == 1.0 and learned.parameters > 0
    shuffled = linear_text_baseline(Dataset("t", "text", xt, rng.permutation(yt), xs, ys, labels))
    assert shuffled.test_accuracy < 0.5


def _commands_csv(path: Path, n: int = 240) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    verbs, things = ["turn on", "switch off", "open"], ["the lamp", "the door", "the heater", "my fan", "the tv"]
    rows = [f"{rng.choice(['please', 'now', ''])} {verbs[c]} {rng.choice(things)},{c}".strip() for c in rng.integers(0, 3, n)]
    path.write_text("text,label\n" + "\n".join(r.lstrip() for r in rows) + "\n")
    return path


@pytest.mark.slow
def test_a_text_search_sets_the_linear_baseline_beside_its_model_in_test_samples_right(tmp_path, capsys):
    """A search on a user's text CSV: the summary gives the baseline trained on the same split and the
    searched int8 model side by side, counted in test sentences right, with the difference named."""
    data = _commands_csv(tmp_path / "commands.csv")
    out = tmp_path / "search"
    assert main(["search", "--data", str(data), "--out", str(out), "--flash-kib", "16", "--ram-kib", "8", *FAST,
                 "--trials", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "search.json").read_text())
    lb, best = summary["linear_baseline"], summary["best"]
    n = lb["test_samples"]
    assert n == 60
    base_right, model_right = round(lb["test_accuracy"] * n), round(best["int8_test_accuracy"] * n)
    assert f"test accuracy {100 * lb['test_accuracy']:.2f} % ({base_right} of {n})" in printed
    gap = model_right - base_right
    verdict = (f"{gap} more right than the baseline" if gap > 0 else "as many right as the baseline" if gap == 0
               else f"{-gap} fewer right than the baseline")
    assert f"the searched int8 model: {100 * best['int8_test_accuracy']:.2f} % ({model_right} of {n}), {verdict}" in printed
    # the first trial was the plan nearest the baseline (2-4-grams and word pairs summed, kernel 1, tokens averaged),
    # the widest of the corner searched, since it fits; it is queued once, not again on resuming
    study = _study(_sqlite(out))
    first = study.trials[0]
    assert first.user_attrs["anchor"] and sum(bool(t.user_attrs.get("anchor")) for t in study.trials) == 1
    assert (first.params["ngram"], first.params["min_ngram"], first.params["word_pairs"], first.params["kernel"],
            first.params["pool"]) == (4, 2, True, 1, "avg")
    assert first.params["width0"] == 8 and max(first.constraints.values()) <= 0
    assert main(["search", "--data", str(data), "--out", str(out), "--flash-kib", "16", "--ram-kib", "8", *FAST,
                 "--trials", "2", "--quiet", "--rerank", "0"]) == 0
    assert sum(bool(t.user_attrs.get("anchor")) for t in _study(_sqlite(out)).trials) == 1


@pytest.mark.parametrize("kind", ["dscnn", "projection"])
def test_the_untrained_probe_takes_the_flash_and_ram_its_trained_model_takes(kind, tmp_path):
    """A plan is judged against the budget untrained; only exact bytes keep a plan at the edge of the
    budget from fitting untrained and ending over it once trained (a zero classifier bias is left out
    of the converted model: 584 B on a 16 KiB projection model)."""
    import dataclasses

    from tinyeff.compress.quantize import representative_set, to_int8_tflite
    from tinyeff.data import load_dataset
    from tinyeff.footprint import measure
    from tinyeff.models.build import build, dscnn_spec, projection_spec
    from tinyeff.models.projection_features import ProjectionConfig
    from tinyeff.search.objective import untrained_probe
    from tinyeff.train.fit import TrainConfig, fit
    from tinyeff.train.run import features_of

    if kind == "dscnn":
        data = load_dataset("digits")
        spec = dscnn_spec(data.input_shape, data.n_classes, width=16, depth=2)
    else:
        data = load_dataset(str(_commands_csv(tmp_path / "commands.csv")))
        spec = projection_spec(data.n_classes, width=16, cfg=ProjectionConfig(64, 12, 4, 2), pool="avg")
    x = features_of(spec, data.x_train)
    x_rep = representative_set(x, 0)
    probe = measure(to_int8_tflite(untrained_probe(spec, 0), spec, x_rep))
    model = build(spec)
    fit(model, x, data.y_train, dataclasses.replace(TrainConfig(seed=0), epochs=2), kind=data.kind)
    trained = measure(to_int8_tflite(model, spec, x_rep))
    assert (probe.flash_bytes, probe.ram_bytes) == (trained.flash_bytes, trained.ram_bytes)


def test_a_plan_with_a_dead_layer_untrained_is_still_measured_before_training():
    """A 4-channel layer after two stride-2 layers outputs only zeros untrained on the digits
    calibration set. With zero biases after it, the classifier's output was constant zero, the
    converter gave it a scale of ~1e-8 and TFLM aborted on the softmax, so the plan could not be
    measured before training; the probe's random biases keep every later output non-constant, and
    the plan is measured untrained like any other."""
    import optuna

    from tinyeff.compress.shrink import Budget
    from tinyeff.data import load_dataset
    from tinyeff.search.objective import Objective
    from tinyeff.search.space import SpaceLimits

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"depth": 2, "width0": 60, "width1": 64, "width2": 4, "downsample": 2, "kernel": 3, "dropout": 0.0,
                         "epochs": 20, "learning_rate": 1e-3, "augment": False, "mixup": 0.4, "qat": "off"})
    study.optimize(Objective(load_dataset("digits"), Budget(12 * 1024, 6 * 1024), SpaceLimits()), n_trials=1)
    t = study.trials[0]
    assert "probe" not in t.user_attrs, t.user_attrs["probe"]
    fp = t.user_attrs["footprint"]
    # (its 60- and 64-channel layers exceed 12 KiB: recorded over budget in a second, not trained)
    assert fp["flash_bytes"] > 12 * 1024 and t.state.name == "COMPLETE" and t.user_attrs["trained"] is False
    assert t.constraints == {"flash_over_bytes": fp["flash_bytes"] - 12 * 1024, "ram_over_bytes": fp["ram_bytes"] - 6 * 1024}


@pytest.mark.parametrize("max_epochs", [30, 60])
def test_the_median_pruner_stops_a_trial_below_the_median_only_after_its_warm_up_and_eight_trials(max_epochs):
    """The rule the README states: a trial below the median of earlier trials at the same epoch is
    stopped, but not before 8 trials have finished nor before a third of the longest schedule (at
    least 10 epochs: cosine schedules of different lengths compare poorly early); `--pruner none`
    never stops one; `hyperband` is Optuna's Hyperband from 5 epochs to the longest schedule."""
    import optuna

    from tinyeff.search.study import _pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warm_up = max(10, max_epochs // 3)

    def first_pruned_epoch(kind: str, finished: int, value: float) -> int | None:
        study = optuna.create_study(direction="maximize", pruner=_pruner(kind, max_epochs))
        for _ in range(finished):
            t = study.ask()
            for epoch in range(1, max_epochs + 1):
                t.report(0.9, epoch)
            study.tell(t, 0.9)
        t = study.ask()
        for epoch in range(1, max_epochs + 1):
            t.report(value, epoch)
            if t.should_prune():
                return epoch
        return None

    assert first_pruned_epoch("median", 8, 0.5) == warm_up  # (Optuna judges from the step equal to its warm-up)
    assert first_pruned_epoch("median", 7, 0.5) is None  # fewer than 8 finished trials: no verdict
    assert first_pruned_epoch("median", 8, 0.95) is None  # above the median: runs to the end
    assert first_pruned_epoch("none", 8, 0.0) is None
    hyperband = _pruner("hyperband", max_epochs)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert (hyperband._min_resource, hyperband._max_resource) == (5, max_epochs)


def test_a_search_trial_is_scored_on_its_last_epoch_and_runs_every_epoch():
    """Trials are ranked on the last epoch's weights, not the best epoch's (a maximum over epochs of
    a small slice is biased upwards): a trial's plan trains without early stopping, and the model
    fit leaves is the one of its last epoch."""
    import dataclasses

    import optuna

    from tinyeff.data import load_dataset
    from tinyeff.models import build
    from tinyeff.search.space import SpaceLimits, suggest
    from tinyeff.train.fit import evaluate, fit
    from tinyeff._native import seed_everything

    data = load_dataset("digits")
    params = {"depth": 1, "width0": 4, "width1": 4, "downsample": 2, "kernel": 3, "dropout": 0.0, "epochs": 20,
              "learning_rate": 1e-2, "augment": False, "mixup": 0.0, "qat": "off"}
    plan = suggest(optuna.trial.FixedTrial(params), data, SpaceLimits(), teacher=None, seed=0)
    assert plan.train.restore_best is False
    # A slice labelled one class off: the better the model learns, the worse it scores there, so its
    # best epoch comes early and a run with early stopping (patience 1) would stop and restore it
    cfg = dataclasses.replace(plan.train, epochs=8, patience=1)
    x_val, y_val = data.x_train[-300:], (data.y_train[-300:] + 1) % data.n_classes
    seed_everything(0)  # the initial weights, whatever ran before in this process
    model = build(plan.spec)
    result = fit(model, data.x_train[:-300], data.y_train[:-300], cfg, kind=data.kind, validation=(x_val, y_val))
    scores = [row["val_accuracy"] for row in result.history]
    assert result.epochs_run == 8 and len(scores) == 8
    assert evaluate(model, x_val, y_val) == pytest.approx(scores[-1])
    assert max(scores) > scores[-1], "the run never fell back, so the test shows nothing"
