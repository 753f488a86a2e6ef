"""How ReduceLROnPlateau and early stopping interact, replayed on a given val-loss sequence.

Both count epochs without improvement. `replay_patience` feeds the same losses to the real
`torch.optim.lr_scheduler.ReduceLROnPlateau` and to coursekit's `EarlyStopping`, so a
notebook can show, independently of training noise, whether the reduced learning rate is
ever used before training stops.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from coursekit.train import EarlyStopping


def replay_patience(
    val_losses: Sequence[float],
    stop_patience: int,
    scheduler_patience: int,
    min_delta: float = 0.005,
    lr: float = 0.1,
    factor: float = 0.1,
) -> pd.DataFrame:
    """Return, per epoch, the LR used, the val loss, and both counters until training stops.

    Columns: epoch (1-based), lr (at the start of the epoch), val_loss, stopper_wait,
    scheduler_bad_epochs, stop (True on the last epoch if early stopping fired).
    Both count an improvement the same way (by more than min_delta, absolute).
    """
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=factor, patience=scheduler_patience,
        threshold=min_delta, threshold_mode="abs",
    )
    stopper = EarlyStopping(patience=stop_patience, min_delta=min_delta, restore_best=False)
    rows = []
    for epoch, loss in enumerate(val_losses, start=1):
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "val_loss": float(loss)}
        scheduler.step(loss)
        stop = stopper.step(float(loss), epoch)
        row.update(
            stopper_wait=stopper.wait, scheduler_bad_epochs=scheduler.num_bad_epochs, stop=stop
        )
        rows.append(row)
        if stop:
            break
    return pd.DataFrame(rows).set_index("epoch")


def epochs_at_reduced_lr(replay: pd.DataFrame) -> int:
    """Return how many replayed epochs started with a learning rate below the first one."""
    return int((replay["lr"] < replay["lr"].iloc[0] * (1 - 1e-9)).sum())
