"""Figures and importances of an Optuna study, with matplotlib only (no plotly, no sklearn).

Optuna's default importance evaluator (fANOVA) needs scikit-learn; PED-ANOVA, used here,
does not, so the workbook needs no extra dependency for these plots.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.importance import PedAnovaImportanceEvaluator

MAX_LEGEND = 12  # trials beyond which the per-epoch plot drops its legend


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Return the study's trials that finished with a value."""
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]


def param_importances(study: optuna.Study) -> dict[str, float]:
    """Return {parameter: importance} (PED-ANOVA, summing to 1), most important first.

    Empty when fewer than 2 trials are complete: there is nothing to compare yet.
    """
    if len(complete_trials(study)) < 2:
        return {}
    return dict(
        optuna.importance.get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    )


def study_figures(study: optuna.Study) -> dict[str, Any]:
    """Return matplotlib Figures of the study: 'history', 'intermediate', 'importances'.

    history: objective value of each trial and best so far; intermediate: the value each
    trial reported per epoch (pruned trials stop early); importances: PED-ANOVA, only
    when at least 2 trials are complete.
    """
    vis = optuna.visualization.matplotlib
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        per_epoch = vis.plot_intermediate_values(study)
        figures = {
            "history": vis.plot_optimization_history(study).figure,
            "intermediate": per_epoch.figure,
        }
        per_epoch.set_xlabel("epoch")
        per_epoch.set_ylabel("reported value (e.g. val_acc)")
        if len(study.get_trials(deepcopy=False)) > MAX_LEGEND and per_epoch.get_legend():
            per_epoch.get_legend().remove()  # one entry per trial stops being readable
        if len(complete_trials(study)) >= 2:
            axes = vis.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
            figures["importances"] = axes.figure
    for fig in figures.values():
        fig.set_size_inches(7, 4.2)
        fig.tight_layout()
    return figures
