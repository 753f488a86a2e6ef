"""Optuna as the notebooks use it: shared studies, a pruning callback, a trial budget, tables.

A study lives in a storage: a SQLite file (`*.db`, fine on a local disk), a journal file
(any other file name: Optuna's JournalStorage, whose lock files work on NFS, so OAR jobs on
different Grid'5000 nodes can share one study) or a database URL (`postgresql://...`).
Every process that opens the same study draws trials from it, and `run_trials` stops them
all when the study holds its budget of trials. optuna is imported where it is used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}
PRUNERS = ("median", "hyperband", "none")
# A diverging trial (fit raises FloatingPointError) is recorded as failed; the search goes on.
CAUGHT = (FloatingPointError,)


class StudyError(ValueError):
    """A study that cannot be opened as asked; the message says what to change."""


def storage_for(spec: str | Path | Any | None) -> Any:
    """Return the Optuna storage for a file path or URL (None: in memory, this process only)."""
    from optuna.storages import BaseStorage, JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if spec is None or isinstance(spec, BaseStorage):
        return spec
    text = str(spec)
    # Workers write to the same SQLite file: wait for its lock instead of failing at once.
    sqlite = {"engine_kwargs": {"connect_args": {"timeout": 60}}}
    if "://" in text:
        return RDBStorage(text, **sqlite) if text.startswith("sqlite:") else text
    path = Path(text).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in SQLITE_SUFFIXES:
        return RDBStorage(f"sqlite:///{path}", **sqlite)
    return JournalStorage(JournalFileBackend(str(path)))


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


def _within_budget(
    objective: Callable[[Any], Any], budget: int, ran: list[int] | None = None
) -> Callable[[Any], Any]:
    def guarded(trial: Any) -> Any:
        import optuna

        # Trial numbers come from the shared storage: two workers can both start a trial
        # just as the budget runs out, and only the numbers below the budget may run.
        if trial.number >= budget:
            trial.set_user_attr("over_budget", True)
            trial.study.stop()
            raise optuna.TrialPruned(f"trial {trial.number} is beyond the budget of {budget}")
        if ran is not None:
            ran.append(trial.number)
        return objective(trial)

    return guarded


def taken_trials(study: Any) -> int:
    """Return how many trials of the study are taken: running or finished (not queued)."""
    return sum(t.state.name != "WAITING" for t in study.get_trials(deepcopy=False))


def run_trials(study: Any, objective: Callable[[Any], Any], budget: int) -> int:
    """Run trials until the study holds `budget` of them; return how many ran here.

    Trials of every process count (running or finished; queued ones are run first), so
    workers sharing the study never overshoot it and a restarted notebook completes its
    study instead of starting over. A diverging trial (FloatingPointError) is recorded as
    failed and the search goes on.
    """
    import optuna
    from optuna.study import MaxTrialsCallback

    if taken_trials(study) >= budget:
        return 0
    taken = tuple(s for s in optuna.trial.TrialState if s.name != "WAITING")
    ran: list[int] = []
    study.optimize(
        _within_budget(objective, budget, ran),
        callbacks=[MaxTrialsCallback(budget, states=taken)],
        catch=CAUGHT,
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
