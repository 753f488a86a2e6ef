"""Notebook 05, exercise 8: the Optuna search over `FashionConfig` fields, in two phases.

`objective(trial, base, params)` lets Optuna draw the fields named in `params` (see
SEARCH_SPACE) on top of `base`, trains with `fashion.run` and returns the validation
accuracy, reporting it after each epoch so that a pruner can stop bad trials. A study
prepared with `prepare_study` carries its own search definition, so any worker process
can join it: `coursekit sweep coursekit.fashion.search:study_objective ...`.
Each trial prints its number and parameters, then one line per epoch. Given a checkpoint
folder, a trial that completes keeps its checkpoint (`trial_checkpoint`), so the chosen
model is loaded afterwards instead of being trained a second time; a pruned, failed or
killed trial leaves none (a killed trial is simply run again under a new number).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from coursekit.fashion.lesson import (
    OPTIMIZERS,
    SCHEDULERS,
    WIDTHS,
    FashionConfig,
    evaluate_val,
    make_model,
    run,
)
from coursekit.models import count_parameters
from coursekit.tuning import pruning_callback, run_trials, taken_trials

SEARCH_SPACE: dict[str, Callable[[Any], Any]] = {
    "lr": lambda t: t.suggest_float("lr", 1e-4, 0.3, log=True),
    "optimizer": lambda t: t.suggest_categorical("optimizer", list(OPTIMIZERS)),
    "batch_size": lambda t: t.suggest_categorical("batch_size", [64, 128, 256]),
    "scheduler": lambda t: t.suggest_categorical("scheduler", list(SCHEDULERS)),
    "batchnorm": lambda t: t.suggest_categorical("batchnorm", ["none", "c1", "convs"]),
    "weight_decay": lambda t: t.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
    "l1": lambda t: t.suggest_float("l1", 1e-7, 1e-4, log=True),
    "dropout": lambda t: t.suggest_float("dropout", 0.0, 0.5),
    "conv_dropout": lambda t: t.suggest_float("conv_dropout", 0.0, 0.3),
    "label_smoothing": lambda t: t.suggest_float("label_smoothing", 0.0, 0.15),
    "augment": lambda t: t.suggest_categorical("augment", [False, True]),
    "width": lambda t: t.suggest_categorical("width", list(WIDTHS)),
}
# Phase 1: what decides whether training works at all; phase 2: regularization and capacity.
PHASE1 = ("lr", "optimizer", "batch_size", "scheduler", "batchnorm")
PHASE2 = ("weight_decay", "l1", "dropout", "conv_dropout", "label_smoothing", "augment", "width")


def suggest_config(trial: Any, base: FashionConfig, params: Sequence[str]) -> FashionConfig:
    """Return `base` with the fields named in `params` drawn by the Optuna trial."""
    unknown = [p for p in params if p not in SEARCH_SPACE]
    if unknown:
        raise KeyError(f"no search space for {unknown}; known: {list(SEARCH_SPACE)}")
    return replace(base, **{p: SEARCH_SPACE[p](trial) for p in params})


def objective(
    trial: Any,
    base: FashionConfig,
    params: Sequence[str],
    verbose: bool = True,
    checkpoints: str | Path | None = None,
) -> float:
    """Return the validation accuracy of the model trained with the trial's configuration.

    The trial's config is stored as user attribute 'config' (and its parameter count as
    'n_params'), so the best one can be rebuilt with `config_of(trial)`. checkpoints: a
    folder where the trial writes its checkpoint, kept only if the trial completes (user
    attribute 'checkpoint', see `trial_checkpoint`). verbose: print the drawn parameters
    and one line per epoch.
    """
    config = replace(suggest_config(trial, base, params), label=f"trial{trial.number}")
    trial.set_user_attr("config", asdict(config))
    trial.set_user_attr("n_params", count_parameters(make_model(config)))
    if verbose:
        print(f"essai n°{trial.number} : {trial.params}", flush=True)
    path = Path(checkpoints) / f"{config.name}.pt" if checkpoints is not None else None
    try:
        model, _ = run(config, checkpoint=path, eval_train=False,
                       callback=pruning_callback(trial), verbose=verbose)
    except BaseException:
        # A pruned, diverged or killed trial is never the one to load: drop its checkpoint.
        if path is not None:
            path.unlink(missing_ok=True)
        raise
    if path is not None:
        trial.set_user_attr("checkpoint", str(path))
    return evaluate_val(model, config)["acc"]


def config_of(trial: Any) -> FashionConfig:
    """Return the FashionConfig a trial trained (from its 'config' user attribute)."""
    return FashionConfig(**trial.user_attrs["config"])


def trial_checkpoint(trial: Any) -> Path | None:
    """Return the checkpoint a completed trial kept, or None (none kept, or since deleted)."""
    path = trial.user_attrs.get("checkpoint")
    return Path(path) if path is not None and Path(path).exists() else None


def prepare_study(
    study: Any,
    base: FashionConfig,
    params: Sequence[str],
    checkpoints: str | Path | None = None,
) -> Any:
    """Store `base` and the searched `params` in the study itself and return the study.

    Any worker process that opens the study (e.g. `coursekit sweep
    coursekit.fashion.search:study_objective ...`) then searches the same space.
    A study keeps the definition it was first given: a different one is a ValueError.
    checkpoints: the folder where its trials keep their checkpoints (see `objective`);
    not part of the definition, the last one given is used.
    """
    unknown = [p for p in params if p not in SEARCH_SPACE]
    if unknown:
        raise KeyError(f"no search space for {unknown}; known: {list(SEARCH_SPACE)}")
    wanted = {"base": asdict(base), "params": list(params)}
    stored = {k: study.user_attrs[k] for k in wanted if k in study.user_attrs}
    if stored and _jsonish(stored) != _jsonish(wanted):
        raise ValueError(
            f"study {study.study_name!r} already searches {stored['params']} on top of "
            f"{stored['base']}; use another study name for a different search"
        )
    for key, value in wanted.items():
        study.set_user_attr(key, value)
    if checkpoints is not None:
        study.set_user_attr("checkpoints", str(checkpoints))
    return study


def _jsonish(value: Any) -> Any:
    """Return `value` as it reads back from Optuna's JSON storage (tuples become lists)."""
    return json.loads(json.dumps(value))


def study_objective(trial: Any) -> float:
    """Return the objective of a trial of a study set up by `prepare_study` (for workers)."""
    attrs = trial.study.user_attrs
    if "base" not in attrs:
        raise ValueError(
            f"study {trial.study.study_name!r} has no search definition: "
            "call prepare_study(study, base, params) first (the notebook does)"
        )
    return objective(
        trial, FashionConfig(**attrs["base"]), attrs["params"], checkpoints=attrs.get("checkpoints")
    )


# Starting points from common practice for small CNNs (not from any measurement on this
# data), tried first so that a short search already has a sensible trial: SGD with a cosine
# schedule and BatchNorm after both convolutions (phase 1), then light weight decay, label
# smoothing, flips and crops, and the widest LeNet under the parameter budget (phase 2).
# Each is scored on the holdout like any other trial; the test set plays no part.
RECIPES: dict[tuple[str, ...], dict[str, Any]] = {
    PHASE1: {"lr": 0.05, "optimizer": "sgd", "batch_size": 128, "scheduler": "cosine",
             "batchnorm": "convs"},
    PHASE2: {"weight_decay": 5e-4, "l1": 1e-7, "dropout": 0.1, "conv_dropout": 0.0,
             "label_smoothing": 0.1, "augment": True, "width": "wider"},
}


def tune(
    study: Any,
    n_trials: int,
    objective: Callable[[Any], float] = study_objective,
    recipe: dict[str, Any] | None = None,
) -> int:
    """Run trials until the study holds `n_trials`; return how many ran here.

    recipe: parameters tried first when the study is new (see RECIPES). A restarted
    notebook, or a second worker, completes the same study instead of starting over.
    Before each trial a line says which one of the `n_trials` it is.
    """
    if recipe is not None and not study.get_trials(deepcopy=False):
        study.enqueue_trial(recipe)

    def counted(trial: Any) -> float:
        # The running trial counts in taken_trials: it is the k-th of the study's budget.
        print(f"essai {taken_trials(study)}/{n_trials} de l'étude « {study.study_name} »",
              flush=True)
        return objective(trial)

    return run_trials(study, counted, n_trials)
