"""Figures of training runs, saved under `figures/<notebook>/` for students' reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from coursekit.settings import figures_dir


def _frame(run: Any):
    """Return a DataFrame indexed by epoch from a History or a DataFrame."""
    return run.to_frame() if hasattr(run, "to_frame") else run


def plot_history(
    history: Any,
    keys: Sequence[str] | None = None,
    title: str | None = None,
    axes: Sequence[Any] | None = None,
):
    """Return a Figure with one axis for losses and, if recorded, one for accuracies.

    keys: the columns to draw; by default every *_loss column on the first axis and
    every *_acc column on the second.
    """
    df = _frame(history)
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
            ax.plot(df.index, df[key], marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
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
):
    """Return a Figure overlaying column `key` of several runs (label -> History)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    fig = ax.figure
    for label, run in runs.items():
        df = _frame(run)
        if key not in df.columns:
            raise KeyError(f"run {label!r} has no column {key!r}; it has {list(df.columns)}")
        ax.plot(df.index, df[key], marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(key)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or key)
    fig.tight_layout()
    return fig


def save_figure(fig: Any, notebook: str, name: str, dpi: int = 120) -> Path:
    """Save `fig` as `figures/<notebook>/<name>.png` and return the path."""
    path = figures_dir(notebook) / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
