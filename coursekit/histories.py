"""Numbers read off training histories: a comparison table of runs and the LR changes of one.

Notebooks print their conclusions from these numbers, so what a comment says about a run
(which variant generalizes best, when the learning rate dropped) is computed, not typed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd


def _frame(history: Any) -> pd.DataFrame:
    """Return the epochs >= 1 of a History or an epoch-indexed DataFrame."""
    frame = history.to_frame() if hasattr(history, "to_frame") else history
    return frame[frame.index >= 1]


def run_summary(history: Any) -> dict[str, Any]:
    """Return the headline numbers of one run.

    Keys: epochs (run), stopped (why), best_epoch (lowest val_loss), best_val_loss,
    final_val_loss, best_val_acc, final_val_acc, final_train_acc, acc_gap (final train
    accuracy - final val accuracy, measured while training for the first, so with dropout
    active), seconds (total).
    """
    df = _frame(history)
    if df.empty:
        raise ValueError("the history has no training epoch")
    last = df.iloc[-1]
    return {
        "epochs": int(df.index[-1]),
        "stopped": getattr(history, "stopped_reason", ""),
        "best_epoch": int(df["val_loss"].idxmin()),
        "best_val_loss": float(df["val_loss"].min()),
        "final_val_loss": float(last["val_loss"]),
        "best_val_acc": float(df["val_acc"].max()),
        "final_val_acc": float(last["val_acc"]),
        "final_train_acc": float(last["train_acc"]),
        "acc_gap": float(last["train_acc"] - last["val_acc"]),
        "seconds": float(df["seconds"].sum()) if "seconds" in df else math.nan,
    }


def compare_runs(runs: Mapping[str, Any], reference: str | None = None) -> pd.DataFrame:
    """Return one row of `run_summary` per run (label -> History), indexed by label.

    reference: label of the run the others are compared with; adds the column
    d_final_val_acc (final val accuracy minus the reference's).
    """
    table = pd.DataFrame({label: run_summary(h) for label, h in runs.items()}).T
    numeric = [c for c in table.columns if c != "stopped"]
    table[numeric] = table[numeric].apply(pd.to_numeric)
    table[["epochs", "best_epoch"]] = table[["epochs", "best_epoch"]].astype(int)
    if reference is not None:
        if reference not in table.index:
            raise KeyError(f"reference {reference!r} is not one of the runs {list(table.index)}")
        table["d_final_val_acc"] = table["final_val_acc"] - table.loc[reference, "final_val_acc"]
    table.index.name = "run"
    return table


def lr_changes(history: Any) -> list[tuple[int, float, float]]:
    """Return [(epoch, old lr, new lr)] for each epoch that started with a different LR.

    `lr` is recorded at the start of each epoch, so a scheduler step after epoch e shows
    as a change at epoch e + 1.
    """
    df = _frame(history)
    lrs = list(df["lr"])
    epochs = [int(e) for e in df.index]
    return [
        (epochs[i], lrs[i - 1], lrs[i])
        for i in range(1, len(lrs))
        if not math.isclose(lrs[i], lrs[i - 1], rel_tol=1e-9)
    ]


def reduced_lr_report(history: Any) -> dict[str, Any]:
    """Return how a run used its reduced learning rates.

    Keys: initial_lr, final_lr, n_changes, first_change_epoch (None if none),
    epochs_at_reduced_lr (epochs that started below the initial LR), epochs,
    best_epoch (lowest val_loss), best_after_reduction (that best epoch ran at a
    reduced LR).
    """
    df = _frame(history)
    changes = lr_changes(history)
    initial = float(df["lr"].iloc[0])
    reduced = df["lr"] < initial * (1 - 1e-9)
    best_epoch = int(df["val_loss"].idxmin())
    return {
        "initial_lr": initial,
        "final_lr": float(df["lr"].iloc[-1]),
        "n_changes": len(changes),
        "first_change_epoch": changes[0][0] if changes else None,
        "epochs_at_reduced_lr": int(reduced.sum()),
        "epochs": int(df.index[-1]),
        "best_epoch": best_epoch,
        "best_after_reduction": bool(reduced.loc[best_epoch]),
    }


def collapsed(history: Any, num_classes: int = 10, tol: float = 0.05) -> bool:
    """Return True if the run ended predicting no better than chance.

    That is: its last training loss is within `tol` (relative) of ln(num_classes), the
    cross-entropy of a uniform guess, and its last val accuracy is at most 1.5 / num_classes
    (what happens when a too large step kills every ReLU).
    """
    last = _frame(history).iloc[-1]
    uniform = math.log(num_classes)
    return bool(last["train_loss"] >= (1 - tol) * uniform and last["val_acc"] <= 1.5 / num_classes)
