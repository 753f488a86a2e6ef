"""Loss curves annotated with the learning-rate steps of a scheduler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt

from coursekit.histories import lr_changes


def plot_lr_steps(
    history: Any,
    keys: Sequence[str] = ("train_loss", "val_loss"),
    title: str | None = None,
    ax: Any = None,
):
    """Return a Figure: the `keys` curves, the LR (log scale, right axis) and its steps.

    Each LR change is a dashed vertical line at the first epoch run with the new
    rate, labelled with that rate; a final early stop is marked too.
    """
    frame = history.to_frame() if hasattr(history, "to_frame") else history
    frame = frame[frame.index >= 1]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
    fig = ax.figure
    for key in keys:
        ax.plot(frame.index, frame[key], marker="o", markersize=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.step(frame.index, frame["lr"], where="mid", color="gray", alpha=0.6, label="lr")
    right.set_yscale("log")
    right.set_ylabel("learning rate")
    top = ax.get_ylim()[1]
    for epoch, _old, new in lr_changes(frame):
        ax.axvline(epoch - 0.5, color="tab:red", linestyle="--", alpha=0.7)
        ax.annotate(
            f"lr={new:.2g}", (epoch - 0.5, top), rotation=90, va="top", ha="right",
            fontsize=8, color="tab:red",
        )
    if getattr(history, "stopped_reason", "") == "early stopping":
        ax.axvline(frame.index[-1], color="black", linestyle=":", label="early stop")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    ax.set_title(title or "loss and learning-rate steps")
    fig.tight_layout()
    return fig
