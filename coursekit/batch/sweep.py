"""`coursekit sweep`: Optuna studies shared by several worker processes or OAR jobs.

The study and its storage are opened by `coursekit.tuning.open_study`, the notebooks' own
way: a SQLite file, a journal file on NFS or a database URL. Every worker that opens the
same study draws trials from it; `--trials` is the study's total.
"""

from __future__ import annotations

import importlib
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coursekit.batch.errors import SweepError
from coursekit.tuning import open_study, run_trials


def load_objective(ref: str) -> Callable[[Any], Any]:
    """Return the function named by `MODULE:FUNCTION`, e.g. coursekit.batch.sweep:demo_objective."""
    module_name, sep, attr = ref.partition(":")
    example = "coursekit.batch.sweep:demo_objective"
    if not sep or not module_name or not attr:
        raise SweepError(f"objective {ref!r} is not MODULE:FUNCTION (e.g. {example})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SweepError(f"cannot import {module_name!r} for objective {ref!r}: {exc}") from exc
    objective = getattr(module, attr, None)
    if not callable(objective):
        raise SweepError(f"module {module_name!r} has no function {attr!r}")
    return objective


def demo_objective(trial: Any) -> float:
    """Return (x - 2)^2 for a suggested x: a quick objective to try the sweep machinery."""
    x = trial.suggest_float("x", -10.0, 10.0)
    return (x - 2.0) ** 2


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
    run_trials(shared, load_objective(objective), trials)


def sweep(
    objective: str,
    *,
    study: str,
    storage: str | Path | None,
    trials: int,
    workers: int = 1,
    direction: str = "minimize",
    pruner: str | None = "median",
) -> Any:
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
