"""Classification metrics computed on tensors, on the device, without host synchronisation.

A metric maps (output (B, C), target (B,)) to a scalar tensor, the mean over the batch,
so that `coursekit.train.fit` can add it up per sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the fraction of rows of `output` (B, C) whose argmax equals `target` (B,)."""
    return (output.argmax(dim=1) == target).float().mean()


DEFAULT_METRICS: dict[str, Metric] = {"acc": accuracy}


def confusion_matrix(
    predicted: torch.Tensor, target: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Return the (num_classes, num_classes) int64 counts: row = true class, column = predicted."""
    if predicted.shape != target.shape:
        raise ValueError(
            f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} differ"
        )
    index = target.long() * num_classes + predicted.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """Return the recall of each class (C,) from a confusion matrix; NaN for an absent class."""
    totals = confusion.sum(dim=1).double()
    return confusion.diagonal().double() / totals.where(totals > 0, torch.tensor(float("nan")))
