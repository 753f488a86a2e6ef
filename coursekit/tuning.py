"""Optuna as the notebooks use it: shared studies, a pruning callback, a trial budget, tables.

A study lives in a storage: a SQLite file (`*.db`, on a local disk only: its locks are not
safe on NFS), a journal file (any other file name: Optuna's JournalStorage, whose lock
files work on NFS, so OAR jobs on different Grid'5000 nodes can share one study) or a
database URL (`postgresql://...`). Every process that opens the same study draws trials
from it, and `run_trials` stops them all when the study holds its budget of trials.

A worker killed mid-trial (a walltime, a dead kernel) leaves its trial RUNNING forever.
Every file or URL storage therefore keeps a heartbeat per running trial (Optuna's own for
databases, the same mechanism written into the journal for journal files): a trial silent
for GRACE_S seconds is marked failed by the next worker that starts a trial, and queued
again (at most MAX_RETRY times) in place of the lost one, which the budget stops counting.
optuna is imported where it is used.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}
PRUNERS = ("median", "hyperband", "none")
# A diverging trial (fit raises FloatingPointError) is recorded as failed; the search goes on.
CAUGHT = (FloatingPointError,)
HEARTBEAT_S = 30  # seconds between two heartbeats of a running trial
GRACE_S = 120  # a running trial without heartbeat for this long belongs to a dead worker
MAX_RETRY = 2  # a dead worker's trial is queued again at most this many times
_BEAT = "coursekit:heartbeat"  # journal storage: system attribute holding the last heartbeat


class StudyError(ValueError):
    """A study that cannot be opened as asked; the message says what to change."""


def _retry_callback() -> Any:
    """Return Optuna's callback that queues a dead worker's trial again (any Optuna >= 4)."""
    from optuna import storages

    retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None)  # optuna >= 4.9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental/deprecated class: its API is stable
        return (retry or storages.RetryFailedTrialCallback)(max_retry=MAX_RETRY)


def _rdb(url: str, **engine: Any) -> Any:
    """Return an RDBStorage for `url` with heartbeats and retries of dead workers' trials."""
    import inspect

    from optuna.storages import RDBStorage

    params = inspect.signature(RDBStorage).parameters
    callback = (  # renamed in optuna 4.9
        "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params
        else "failed_trial_callback"
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeat_interval is an "experimental" argument
        return RDBStorage(
            url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            **{callback: _retry_callback()}, **engine,
        )  # fmt: skip


def _journal(path: Path) -> Any:
    """Return a JournalStorage on `path` whose running trials keep a heartbeat in the journal."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        """Optuna's heartbeat protocol, with each beat a system attribute of the trial."""

        def __init__(self, backend: Any) -> None:
            super().__init__(backend)
            self.callback = _retry_callback()

        def record_heartbeat(self, trial_id: int) -> None:
            try:
                self.set_trial_system_attr(trial_id, _BEAT, time.time())
            except UpdateFinishedTrialError:  # failed meanwhile by another worker
                pass

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            # Wall-clock times from different nodes: Grid'5000 nodes are NTP-synchronised,
            # far within GRACE_S.
            now, stale = time.time(), []
            running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            for trial in running:
                start = trial.datetime_start.timestamp() if trial.datetime_start else now
                if now - float(trial.system_attrs.get(_BEAT, start)) > GRACE_S:
                    stale.append(trial._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int:
            return HEARTBEAT_S

        def get_heartbeat_stale_trial_callback(self) -> Any:
            return self.callback

        def get_failed_trial_callback(self) -> Any:  # its name before optuna 4.9
            return self.callback

    return HeartbeatJournalStorage(JournalFileBackend(str(path)))


def storage_for(spec: str | Path | Any | None) -> Any:
    """Return the Optuna storage for a file path or URL (None: in memory, this process only).

    File and URL storages keep a heartbeat per running trial (see the module's docstring).
    """
    from optuna.storages import BaseStorage

    if spec is None or isinstance(spec, BaseStorage):
        return spec
    text = str(spec)
    # Workers write to the same SQLite file: wait for its lock instead of failing at once.
    sqlite = {"engine_kwargs": {"connect_args": {"timeout": 60}}}
    if "://" in text:
        return _rdb(text, **(sqlite if text.startswith("sqlite:") else {}))
    path = Path(text).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in SQLITE_SUFFIXES:
        return _rdb(f"sqlite:///{path}", **sqlite)
    return _journal(path)


def _pruner(pruner: Any) -> Any:
    import optuna

    if pruner is None or isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    classes = {
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "none": optuna.pruners.NopPruner,
    }
    if pruner not in classes:
        raise StudyError(f"unknown pruner {pruner!r}; choose one of {', '.join(PRUNERS)}")
    return classes[pruner]()


def open_study(
    name: str,
    storage: str | Path | Any | None = None,
    direction: str = "minimize",
    pruner: str | Any | None = None,
    sampler: Any = None,
) -> Any:
    """Return the study `name` in `storage`, created if new, loaded (and shared) if it exists.

    storage: a `.db` file (SQLite), another file name (journal file, for NFS), a database
    URL, or None (in memory). pruner: 'median', 'hyperband', 'none' or an Optuna pruner.
    sampler: e.g. `optuna.samplers.TPESampler(seed=0)` for a reproducible search.
    """
    import optuna

    study = optuna.create_study(
        study_name=name,
        storage=storage_for(storage),
        direction=direction,
        pruner=_pruner(pruner),
        sampler=sampler,
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise StudyError(
            f"study {name!r} in {storage} was created to {study.direction.name.lower()}; "
            f"pass direction={study.direction.name.lower()!r} or use another study name"
        )
    return study


def pruning_callback(trial: Any, key: str = "val_acc") -> Callable[[dict[str, float]], None]:
    """Return a `fit` callback that reports row[key] each epoch and raises TrialPruned."""
    import optuna

    def report(row: dict[str, float]) -> None:
        trial.report(row[key], step=int(row["epoch"]))
        trial.set_user_attr("epochs_run", int(row["epoch"]))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {int(row['epoch'])}: {key}={row[key]:.4f}")

    return report


def _superseded(trials: list[Any]) -> set[int]:
    """Return the numbers of dead workers' trials that were queued again."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def _counted(trials: list[Any]) -> list[Any]:
    """Return the trials the budget counts: running or finished, except those replaced by a
    retry and those pruned for being over the budget."""
    superseded = _superseded(trials)
    return [
        t for t in trials
        if t.state.name != "WAITING" and t.number not in superseded
        and not t.user_attrs.get("over_budget")
    ]  # fmt: skip


def taken_trials(study: Any) -> int:
    """Return how many trials of the study count against its budget (see `run_trials`)."""
    return len(_counted(study.get_trials(deepcopy=False)))


def _within_budget(
    objective: Callable[[Any], Any], budget: int, ran: list[int] | None = None
) -> Callable[[Any], Any]:
    def guarded(trial: Any) -> Any:
        import optuna

        # Trial numbers come from the shared storage: two workers can both start a trial
        # just as the budget runs out. A trial runs only if fewer than `budget` counted
        # trials came before it (lower numbers: they exist already).
        before = [t for t in _counted(trial.study.get_trials(deepcopy=False))
                  if t.number < trial.number]  # fmt: skip
        if len(before) >= budget:
            trial.set_user_attr("over_budget", True)
            trial.study.stop()
            raise optuna.TrialPruned(f"trial {trial.number} is beyond the budget of {budget}")
        if ran is not None:
            ran.append(trial.number)
        return objective(trial)

    return guarded


def _fail_dead_trials(study: Any) -> None:
    """Mark the trials of dead workers (no heartbeat for GRACE_S) failed, and queue them again."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_trials(study: Any, objective: Callable[[Any], Any], budget: int) -> int:
    """Run trials until the study holds `budget` of them; return how many ran here.

    Trials of every process count (running or finished; queued ones are run first), so
    workers sharing the study never overshoot it and a restarted notebook completes its
    study instead of starting over. A diverging trial (FloatingPointError) is recorded as
    failed and counts; a trial of a dead worker is failed and queued again, and only its
    retry counts.
    """
    _fail_dead_trials(study)
    if taken_trials(study) >= budget:
        return 0
    ran: list[int] = []

    def stop_at_budget(study: Any, trial: Any) -> None:
        if taken_trials(study) >= budget:
            study.stop()

    study.optimize(
        _within_budget(objective, budget, ran), callbacks=[stop_at_budget], catch=CAUGHT
    )
    return len(ran)


def complete_trials(study: Any) -> list[Any]:
    """Return the study's trials that finished with a value."""
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]


def trials_table(study: Any) -> Any:
    """Return a DataFrame of the study's trials: number, state, value, epochs, parameters.

    Sorted by value (best first for a maximized study), unfinished trials last.
    """
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs"))
    keep = ["number", "state", "value"]
    keep += [c for c in ("user_attrs_epochs_run", "user_attrs_n_params") if c in frame]
    keep += [c for c in frame.columns if c.startswith("params_")]
    frame = frame[keep].rename(
        columns=lambda c: c.removeprefix("params_").removeprefix("user_attrs_")
    )
    ascending = study.direction.name == "MINIMIZE"
    return frame.sort_values("value", ascending=ascending, na_position="last").set_index("number")


def param_importances(study: Any) -> dict[str, float]:
    """Return {parameter: importance} (PED-ANOVA, summing to 1), most important first.

    Empty when fewer than 2 trials are complete: there is nothing to compare yet.
    PED-ANOVA needs no scikit-learn, unlike Optuna's default fANOVA evaluator.
    """
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator

    if len(complete_trials(study)) < 2:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        evaluator = PedAnovaImportanceEvaluator()
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
