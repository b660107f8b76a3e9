"""Where a search lives and how workers share it: an Optuna study in SQLite or PostgreSQL.

By default the study is ``study.db`` (SQLite) in the run directory, so a search stopped by
Ctrl-C or a crash goes on where it stopped when the same command runs again. With
``--storage postgresql://...`` any number of workers on any number of machines run the same
command against one study (Optuna's RDB storage does the locking). Each running trial beats a
heartbeat: a worker that dies mid-trial leaves its trial RUNNING with a stale heartbeat, the
next worker to start a trial marks it failed and queues the same parameters again
(RetryFailedTrialCallback); a trial stopped by Ctrl-C is failed at once, marked interrupted,
and queued again when a worker starts.

``--trials N`` is the study's total, not one worker's share: every worker runs trials until the
study holds N trained ones (to the end, or pruned during training), waiting at the end for trials
other workers still run, so the last worker standing also finishes what a dead one left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tinyeff.errors import TinyeffError

STUDY_FILE = "study.db"
MAX_RETRY = 2  # a trial whose worker died is run again at most this often
INFEASIBLE_PER_TRIAL = 10
MAX_FAILURES_IN_A_ROW = 3  # a worker whose trials all fail stops instead of spinning
SCHEMA_RACE_RETRIES = 5  # tries to open a database whose schema another worker is creating
TAG_WAIT_S = 10.0  # how long a study without tinyeff's tag may be another worker's, still being created


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """What a study was made for; a worker joining it must agree, or it would mix two searches."""

    data: str
    budget: dict
    pareto: bool
    recipe: str
    latency_board: str
    space: dict

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def storage_url(storage: str | None, out: Path) -> str:
    return storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"


def redacted(url: str) -> str:
    """URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def open_storage(url: str, heartbeat_s: int):
    """Optuna's RDB storage at URL with heartbeats; one sentence when the database cannot be reached."""
    import optuna
    import sqlalchemy.exc

    engine_kwargs = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else None

    def connect():
        with _quiet_experimental():
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            )

    try:
        # Two workers started at once on a new database both create its tables and stamp its schema
        # version: the second one's stamp breaks a unique constraint (or meets a locked SQLite file)
        # while the first one's schema is already whole. Connecting again then finds it made.
        for attempt in range(SCHEMA_RACE_RETRIES):
            try:
                return connect()
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as e:
                if attempt == SCHEMA_RACE_RETRIES - 1 or not _schema_race(e):
                    raise
                time.sleep(0.5 * (attempt + 1))
    except ImportError as e:  # Optuna re-raises the driver's ImportError as its own
        missing = getattr(e.__cause__, "name", None) or "of its database driver"
        raise TinyeffError(f"the study URL '{redacted(url)}' needs the Python module {missing}; "
                           "for PostgreSQL install it with pip install 'tinyeff[postgres]'") from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise TinyeffError(f"cannot open the search study at '{redacted(url)}' ({reason}); "
                           "check the URL and that the database server runs and lets this user in") from None


def _schema_race(error) -> bool:
    """ERROR is what a worker gets when another one creates the same database's schema at that moment."""
    import sqlalchemy.exc

    if isinstance(error, sqlalchemy.exc.IntegrityError):
        return True
    text = str(getattr(error, "orig", None) or error).lower()
    return "locked" in text or "already exists" in text


@contextlib.contextmanager
def _quiet_experimental():
    """Heartbeats and grouped TPE are 'experimental' in Optuna (since 2.8 and 2.9); say it once, here."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def open_study(storage, name: str, config: StudyConfig, directions: list[str], *, seed: int, sampler: str, pruner: str,
               max_epochs: int, worker_salt: int = 0):
    """Create the study NAME in STORAGE, or join it when it exists and was made for the same search."""
    import optuna

    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if name in existing:
        study_id = storage.get_study_id_from_name(name)
        made_for = storage.get_study_user_attrs(study_id).get("tinyeff")
        # A worker that creates the study tags it right after (Optuna cannot do both at once): a
        # worker started beside it may find it untagged for a moment
        deadline = time.monotonic() + TAG_WAIT_S
        while made_for is None and time.monotonic() < deadline:
            time.sleep(0.2)
            made_for = storage.get_study_user_attrs(study_id).get("tinyeff")
        if made_for != config.to_json():
            raise TinyeffError(f"study '{name}' was made for another search ({_differs(made_for, config.to_json())}); "
                               "give another --study or --out, or the same settings")
    # A resumed study must not draw its start-up trials again: the seed moves with the trials already
    # there. Workers that share a study, started at the same moment, must not draw the same ones
    # either: WORKER_SALT (0 for the one worker of a SQLite study, which stays reproducible) tells them apart.
    n_before = len(storage.get_all_trials(storage.get_study_id_from_name(name))) if name in existing else 0
    with _quiet_experimental():
        study = optuna.create_study(
            storage=storage, study_name=name, directions=directions, load_if_exists=True,
            sampler=_sampler(sampler, (seed * 1_000_003 + n_before + worker_salt) % 2**32), pruner=_pruner(pruner, max_epochs),
        )
    if name not in existing:
        study.set_user_attr("tinyeff", config.to_json())
    return study


def _differs(old: dict | None, new: dict) -> str:
    if not old:
        return "not by tinyeff"
    keys = [k for k in new if old.get(k) != new[k]]
    return ", ".join(f"{k} {old.get(k)} there, {new[k]} here" for k in keys)


def _sampler(kind: str, seed: int):
    """A sampler that ranks infeasible trials (constraints > 0) below every feasible one."""
    import optuna

    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    # multivariate + group: the widths of deeper layers exist only in deeper trials
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8)


def _pruner(kind: str, max_epochs: int):
    import optuna

    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=5, max_resource=max_epochs)
    if kind == "median":
        # Trials run cosine schedules of different lengths, so early epochs compare poorly: no verdict
        # before a third of the longest schedule, nor before 8 trials have finished
        return optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=max(10, max_epochs // 3))
    return optuna.pruners.NopPruner()


def requeue_interrupted(study) -> list[int]:
    """Queue again the parameters of trials stopped by Ctrl-C that no later trial took up."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    taken = {t.user_attrs.get("retry_of") for t in trials}
    again = []
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and t.number not in taken:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
            again.append(t.number)
    return again


@dataclasses.dataclass(frozen=True)
class Counts:
    finished: int  # trained to the end or pruned during training
    infeasible: int  # measured over budget before training (seconds each, so not counted in --trials)
    running: int
    failed: int


def counts(study) -> Counts:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    untrained = sum(t.state == TrialState.COMPLETE and not t.user_attrs.get("trained") for t in done)
    states = [t.state for t in trials]
    return Counts(finished=len(done) - untrained, infeasible=untrained, running=states.count(TrialState.RUNNING),
                  failed=states.count(TrialState.FAIL))


def run_worker(study, objective: Callable, total: int, *, heartbeat_s: int,
               after_trial: Callable[[object], None] = lambda t: None) -> int:
    """Run trials of STUDY until it holds TOTAL finished ones; return how many this worker ran.

    Trials found over budget before training do not count, but more than INFEASIBLE_PER_TRIAL
    times TOTAL of them end the search: the sampler is then not finding the feasible part."""
    import optuna

    def interruptible(trial):
        try:
            return objective(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except TinyeffError as e:  # the trial fails, the search goes on (Optuna logs no reason in the study)
            trial.set_user_attr("error", str(e))
            raise

    ran, failures = 0, []

    def ended(s, t) -> None:
        failures[:] = failures + [t] if t.state == optuna.trial.TrialState.FAIL else []
        after_trial(t)

    while True:
        with _quiet_experimental():
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial goes back in the queue
        c = counts(study)
        if c.finished >= total or c.infeasible >= INFEASIBLE_PER_TRIAL * total:
            return ran
        if c.finished + c.running >= total:  # the rest is running elsewhere: wait for it to end or go stale
            time.sleep(heartbeat_s)
            continue
        study.optimize(interruptible, n_trials=1, catch=(TinyeffError,), callbacks=[ended])
        ran += 1
        if len(failures) >= MAX_FAILURES_IN_A_ROW:
            reason = failures[-1].user_attrs.get("error", "an error outside tinyeff")
            raise TinyeffError(f"{len(failures)} trials in a row failed, the last with: {reason}")
