"""Scores of predicted 0/1 assignment matrices (notebook 07, HungarianNet).

- weighted F1, as the public HungarianNet recipe computes it (sklearn's
  `f1_score(average='weighted', zero_division=1, sample_weight=w)` on every cell, where a
  cell's weight w is the share of training labels with a one in that cell): the F1 of each
  class (0 and 1) weighted by its weighted support. Here the counts add up over a whole split
  (the public script averages per-batch scores, whose value depends on the batching);
- per-class precision and recall (unweighted counts);
- cell accuracy, and the accuracy of the full assignment (every cell of a matrix right).

Shapes: predictions and targets (N, M, M), 0/1 or bool; weights (M, M).
"""

from __future__ import annotations

import math

import torch

CLASSES = (0, 1)


def cell_weights(labels: torch.Tensor) -> torch.Tensor:
    """Return float64 (M, M): the share of the (N, M, M) labels with a one in each cell."""
    labels = torch.as_tensor(labels)
    if labels.dim() != 3:
        raise ValueError(f"labels must be (N, M, M), got shape {tuple(labels.shape)}")
    return labels.double().mean(dim=0)


def weighted_confusion(
    predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Return float64 (2, 2) summed cell weights: row = true class, column = predicted class.

    weights (M, M) apply to every matrix; None counts every cell once.
    """
    predicted, target = torch.as_tensor(predicted), torch.as_tensor(target)
    if predicted.shape != target.shape or predicted.dim() < 2:
        raise ValueError(
            f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} must be the "
            "same (N, M, M) shape"
        )
    w = torch.ones(target.shape[-2:], dtype=torch.float64) if weights is None else weights
    w = torch.as_tensor(w, dtype=torch.float64).to(target.device).expand(target.shape)
    t, p = target.bool(), predicted.bool()
    cells = [[w[~t & ~p].sum(), w[~t & p].sum()], [w[t & ~p].sum(), w[t & p].sum()]]
    return torch.stack([torch.stack(row) for row in cells]).cpu()


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 1.0  # zero_division=1, as the public recipe


def class_scores(confusion: torch.Tensor) -> dict[str, float]:
    """Return precision_c, recall_c, f1_c, support_c for c in (0, 1), and the weighted f1.

    confusion: (2, 2), row = true class, column = predicted class (weighted or counts).
    A class with nothing to score gets 1 (zero_division=1); weighted f1 is NaN when both
    supports are zero.
    """
    c = confusion.double()
    scores: dict[str, float] = {}
    for k in CLASSES:
        tp, fp, fn = c[k, k].item(), c[1 - k, k].item(), c[k, 1 - k].item()
        scores[f"precision_{k}"] = _ratio(tp, tp + fp)
        scores[f"recall_{k}"] = _ratio(tp, tp + fn)
        scores[f"f1_{k}"] = _ratio(2 * tp, 2 * tp + fp + fn)
        scores[f"support_{k}"] = tp + fn
    total = scores["support_0"] + scores["support_1"]
    weighted = sum(scores[f"f1_{k}"] * scores[f"support_{k}"] for k in CLASSES)
    scores["f1"] = weighted / total if total > 0 else math.nan
    return scores


def weighted_f1(
    predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> float:
    """Return the support-weighted F1 of the two classes over all cells (see module doc)."""
    return class_scores(weighted_confusion(predicted, target, weights))["f1"]


def assignment_accuracy(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Return the share of (N, M, M) matrices whose every cell is right."""
    right = (torch.as_tensor(predicted).bool() == torch.as_tensor(target).bool()).flatten(1)
    return right.all(dim=1).double().mean().item()


class AssignmentScores:
    """Adds up, batch after batch, what `compute` needs; predicted = sigmoid(logit) > threshold.

    compute() keys: f1 (weighted by `weights`, the public metric), f1_unweighted, cell_acc,
    assignment_acc, precision_c / recall_c / f1_c / support_c for c in (0, 1) (unweighted
    counts), matrices.
    """

    def __init__(self, weights: torch.Tensor | None = None, threshold: float = 0.5) -> None:
        self.weights, self.threshold = weights, threshold
        self.weighted = torch.zeros(2, 2, dtype=torch.float64)
        self.counts = torch.zeros(2, 2, dtype=torch.float64)
        self.exact = 0
        self.matrices = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: logits and 0/1 target, both (B, M, M)."""
        predicted = torch.sigmoid(logits.detach().float()) > self.threshold
        self.weighted += weighted_confusion(predicted, target, self.weights)
        self.counts += weighted_confusion(predicted, target)
        right = (predicted == target.bool()).flatten(1).all(dim=1)
        self.exact += int(right.sum())
        self.matrices += len(target)

    def compute(self) -> dict[str, float]:
        """Return the scores of everything added so far."""
        if self.matrices == 0:
            raise ValueError("no batch was added: there is nothing to score")
        scores = class_scores(self.counts)
        scores["f1_unweighted"] = scores.pop("f1")
        scores["f1"] = class_scores(self.weighted)["f1"]
        scores["cell_acc"] = (self.counts.trace() / self.counts.sum()).item()
        scores["assignment_acc"] = self.exact / self.matrices
        scores["matrices"] = self.matrices
        return scores
