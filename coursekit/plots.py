"""Every figure helper of the notebooks, and `save_figure` (`figures/<notebook>/`, for reports).

Loss and accuracy curves, several runs overlaid, learning-rate steps, Optuna studies.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter, ScalarFormatter

from coursekit.analysis import lr_changes
from coursekit.french import fr_num, fr_pct
from coursekit.settings import figures_dir
from coursekit.train import history_frame

MAX_LEGEND = 12  # trials beyond which the per-epoch plot of a study drops its legend
# French names of history columns for axes and legends; a notebook passes its own words
# (e.g. {"val_loss": "loss de test"} where the validation set is MNIST's test split).
LABELS = {
    "train_loss": "loss d'entraînement (pendant l'époque)",
    "train_eval_loss": "loss d'entraînement (re-mesurée en évaluation)",
    "val_loss": "loss de validation",
    "train_acc": "accuracy d'entraînement (pendant l'époque)",
    "train_eval_acc": "accuracy d'entraînement (re-mesurée en évaluation)",
    "val_acc": "accuracy de validation",
    "train_penalty": "pénalité",
    "lr": "taux d'apprentissage",
}


def _label(key: str, labels: Mapping[str, str] | None) -> str:
    return {**LABELS, **(labels or {})}.get(key, key)


class _CommaFormatter(ScalarFormatter):
    """Matplotlib's tick labels (enough decimals to tell ticks apart), with a decimal comma."""

    def __init__(self) -> None:
        super().__init__(useOffset=False)
        self.set_scientific(False)

    def __call__(self, x: float, pos: int | None = None) -> str:
        return super().__call__(x, pos).replace(".", ",").replace("\N{MINUS SIGN}", "-")


def _french_axes(ax: Any, logy: bool = False) -> None:
    """Integer epochs, decimal commas, and a log axis that stays readable on narrow ranges.

    Call it after plotting, so that the data limits are known.
    """
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
    ax.set_xlabel("époque")
    if not logy:
        ax.yaxis.set_major_formatter(_CommaFormatter())
        return
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    if high / low < 10:
        # Less than a decade: powers of ten would leave at most one labelled tick.
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.yaxis.set_major_formatter(_CommaFormatter())
    else:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fr_num(v, 3)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot_history(
    history: Any,
    keys: Sequence[str] | None = None,
    title: str | None = None,
    axes: Sequence[Any] | None = None,
    labels: Mapping[str, str] | None = None,
):
    """Return a Figure with one axis for losses and, if recorded, one for accuracies.

    keys: the columns to draw; by default every *_loss column on the first axis and
    every *_acc column on the second. labels: French names replacing `LABELS`' ones.
    """
    df = history_frame(history)
    if keys is None:
        keys = [c for c in df.columns if c.endswith(("_loss", "_acc"))]
    groups = [[k for k in keys if "loss" in k], [k for k in keys if "loss" not in k]]
    groups = [g for g in groups if g]
    if axes is None:
        fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.8), squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    for ax, group in zip(axes, groups, strict=False):
        for key in group:
            ax.plot(df.index, df[key], marker="o", markersize=3, label=_label(key, labels))
        _french_axes(ax)
        ax.set_ylabel("loss" if "loss" in group[0] else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_runs(
    runs: Mapping[str, Any],
    key: str = "val_loss",
    title: str | None = None,
    ax: Any = None,
    logy: bool = False,
    labels: Mapping[str, str] | None = None,
):
    """Return a Figure overlaying column `key` of several runs (label -> History)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    fig = ax.figure
    for label, run in runs.items():
        df = history_frame(run)
        if key not in df.columns:
            raise KeyError(f"run {label!r} has no column {key!r}; it has {list(df.columns)}")
        ax.plot(df.index, df[key], marker="o", markersize=3, label=label)
    _french_axes(ax, logy)
    ax.set_ylabel(_label(key, labels) + (" (échelle log)" if logy else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or _label(key, labels))
    fig.tight_layout()
    return fig


def french_ticks(fig: Any) -> Any:
    """Return `fig` with a decimal comma on every linear axis of every Axes (colorbars too).

    Only axes still using matplotlib's default `ScalarFormatter` change: categorical axes
    (names), log axes and axes given their own formatter (`percent_axis`) keep theirs.
    `save_figure` calls it, so every saved figure of every notebook is in French.
    """
    for ax in fig.get_axes():
        for axis in (ax.xaxis, ax.yaxis):
            if type(axis.get_major_formatter()) is ScalarFormatter:
                axis.set_major_formatter(_CommaFormatter())
    return fig


def percent_axis(axis: Any, decimals: int = 0) -> Any:
    """Return `axis` (e.g. ax.yaxis) labelling fractions as French percentages ('50 %')."""
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: fr_pct(v, decimals)))
    return axis


def save_figure(fig: Any, notebook: str, name: str, dpi: int = 120) -> Path:
    """Save `fig` as `figures/<notebook>/<name>.png`, its ticks in French (`french_ticks`),
    and return the path."""
    french_ticks(fig)
    path = figures_dir(notebook) / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def plot_lr_steps(
    history: Any,
    keys: Sequence[str] = ("train_loss", "val_loss"),
    title: str | None = None,
    ax: Any = None,
    labels: Mapping[str, str] | None = None,
):
    """Return a Figure: the `keys` curves, the LR (log scale, right axis) and its steps.

    Each LR change is a dashed vertical line at the first epoch run with the new
    rate, labelled with that rate; a final early stop is marked too. The legend sits
    below the axes, where it hides no curve.
    """
    frame = history_frame(history, training_only=True)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
    fig = ax.figure
    for key in keys:
        ax.plot(frame.index, frame[key], marker="o", markersize=3, label=_label(key, labels))
    _french_axes(ax)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    right = ax.twinx()
    lr_label = _label("lr", labels)
    right.step(frame.index, frame["lr"], where="mid", color="gray", alpha=0.6, label=lr_label)
    right.set_yscale("log")
    right.set_ylabel(lr_label)
    top = ax.get_ylim()[1]
    for epoch, _old, new in lr_changes(frame):
        ax.axvline(epoch - 0.5, color="tab:red", linestyle="--", alpha=0.7)
        ax.annotate(
            f"lr = {fr_num(new, 2)}", (epoch - 0.5, top), rotation=90, va="top", ha="right",
            fontsize=8, color="tab:red",
        )
    if getattr(history, "stopped_reason", "") == "early stopping":
        ax.axvline(frame.index[-1], color="black", linestyle=":", label="early stopping")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center", fontsize=8,
              bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    ax.set_title(title or "loss et paliers du taux d'apprentissage")
    fig.tight_layout()
    return fig


def study_figures(study: Any) -> dict[str, Any]:
    """Return matplotlib Figures of the study: 'history', 'intermediate', 'importances'.

    history: objective value of each trial and best so far; intermediate: the value each
    trial reported per epoch (pruned trials stop early); importances: PED-ANOVA, only
    when at least 2 trials are complete.
    """
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator

    from coursekit.tuning import complete_trials

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
