"""Optuna studies shared by several worker processes or OAR jobs through their storage.

A storage is a SQLite file (`*.db`, fine on a local disk), a journal file (any other
file name: Optuna's JournalStorage, whose lock files work on NFS, so OAR jobs on
different Grid'5000 nodes can share one study) or a database URL
(`postgresql://...`, when many workers outgrow a file). Every worker that opens the
same study in the same storage draws trials from it; `--trials` is the study's total.
"""

from __future__ import annotations

import importlib
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import MaxTrialsCallback
from optuna.trial import Trial

SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}
PRUNERS: dict[str, Callable[[], BasePruner]] = {
    "median": MedianPruner,
    "hyperband": HyperbandPruner,
    "none": NopPruner,
}
# A diverging trial (fit raises FloatingPointError) is recorded as failed; the sweep goes on.
CAUGHT = (FloatingPointError,)


class SweepError(ValueError):
    """A sweep that cannot start or whose workers failed; the message says why."""


def _sqlite(url: str) -> RDBStorage:
    # Workers write to the same file: wait for its lock instead of failing at once.
    return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def storage_for(spec: str | Path | BaseStorage | None) -> str | BaseStorage | None:
    """Return the Optuna storage for a file path or URL (None: in memory, this process only)."""
    if spec is None or isinstance(spec, BaseStorage):
        return spec
    text = str(spec)
    if "://" in text:
        return _sqlite(text) if text.startswith("sqlite:") else text
    path = Path(text).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in SQLITE_SUFFIXES:
        return _sqlite(f"sqlite:///{path}")
    return JournalStorage(JournalFileBackend(str(path)))


def _pruner(pruner: str | BasePruner | None) -> BasePruner | None:
    if pruner is None or isinstance(pruner, BasePruner):
        return pruner
    if pruner not in PRUNERS:
        raise SweepError(f"unknown pruner {pruner!r}; choose one of {', '.join(PRUNERS)}")
    return PRUNERS[pruner]()


def open_study(
    name: str,
    storage: str | Path | BaseStorage | None = None,
    direction: str = "minimize",
    pruner: str | BasePruner | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Return the study `name` in `storage`, created if new, loaded (and shared) if it exists.

    storage: a `.db` file (SQLite), another file name (journal file, for NFS), a database
    URL, or None (in memory). pruner: 'median', 'hyperband', 'none' or an Optuna pruner.
    """
    study = optuna.create_study(
        study_name=name,
        storage=storage_for(storage),
        direction=direction,
        pruner=_pruner(pruner),
        sampler=sampler,
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise SweepError(
            f"study {name!r} in {storage} was created to {study.direction.name.lower()}; "
            f"pass --direction {study.direction.name.lower()} or use another study name"
        )
    return study


def load_objective(ref: str) -> Callable[[Trial], Any]:
    """Return the function named by `MODULE:FUNCTION` (e.g. coursekit.sweep:demo_objective)."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise SweepError(
            f"objective {ref!r} is not MODULE:FUNCTION (e.g. coursekit.sweep:demo_objective)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SweepError(f"cannot import {module_name!r} for objective {ref!r}: {exc}") from exc
    objective = getattr(module, attr, None)
    if not callable(objective):
        raise SweepError(f"module {module_name!r} has no function {attr!r}")
    return objective


def demo_objective(trial: Trial) -> float:
    """Return (x - 2)^2 for a suggested x: a quick objective to try the sweep machinery."""
    x = trial.suggest_float("x", -10.0, 10.0)
    return (x - 2.0) ** 2


def _within_budget(objective: Callable[[Trial], Any], trials: int) -> Callable[[Trial], Any]:
    def guarded(trial: Trial) -> Any:
        # Trial numbers come from the shared storage: two workers can both start a trial
        # just as the budget runs out, and only the numbers below the budget may run.
        if trial.number >= trials:
            trial.set_user_attr("over_budget", True)
            trial.study.stop()
            raise optuna.TrialPruned(f"trial {trial.number} is beyond the budget of {trials}")
        return objective(trial)

    return guarded


def run_worker(
    objective: str,
    study: str,
    storage: str | Path | None,
    trials: int,
    direction: str = "minimize",
    pruner: str | None = "median",
) -> None:
    """Run trials of the shared study until it holds `trials` trials (this worker's part)."""
    shared = open_study(study, storage, direction, pruner)
    if len(shared.get_trials(deepcopy=False)) >= trials:
        return
    # states=None: trials started by the other workers count too, so none overshoots.
    shared.optimize(
        _within_budget(load_objective(objective), trials),
        callbacks=[MaxTrialsCallback(trials, states=None)],
        catch=CAUGHT,
    )


def sweep(
    objective: str,
    *,
    study: str,
    storage: str | Path | None,
    trials: int,
    workers: int = 1,
    direction: str = "minimize",
    pruner: str | None = "median",
) -> optuna.Study:
    """Run `workers` local processes on the shared study until it has `trials` trials; return it."""
    if trials < 1 or workers < 1:
        raise SweepError(f"--trials and --workers must be at least 1 (got {trials} and {workers})")
    if storage is None and workers > 1:
        raise SweepError("workers can only share a study through a storage: pass --storage")
    load_objective(objective)  # fail here, not in every worker
    open_study(study, storage, direction, pruner)  # created once, before the workers race
    args = (objective, study, storage, trials, direction, pruner)
    if workers == 1:
        run_worker(*args)
    else:
        _run_processes(args, workers)
    return open_study(study, storage, direction, pruner)


def _run_processes(args: tuple, workers: int) -> None:
    # spawn, not fork: a forked child would share torch's threads and the storage's handles.
    context = multiprocessing.get_context("spawn")
    procs = [
        context.Process(target=run_worker, args=args, name=f"sweep-worker-{i}")
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    failed = [f"{p.name} (exit {p.exitcode})" for p in procs if p.exitcode != 0]
    if failed:
        raise SweepError(f"worker(s) failed: {', '.join(failed)}; their tracebacks are above")
