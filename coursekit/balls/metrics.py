"""Box metrics for notebook 06: paired IoU, exact colour-set accuracy, mean IoU, AP and mAP.

Boxes are [x1, y1, x2, y2] in pixels. A detector here gives at most one box per colour per
image, so matching detections to ground truth needs no assignment: the box of colour c in
image i can only match the true ball of colour c in image i. A NaN box means "no detection".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

COCO_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return the IoU (...) of each box of a (..., 4) with the box at the same place in b.

    torchvision.ops.box_iou is pairwise (N x M); this is its diagonal, without the matrix.
    Inverted boxes (x2 < x1) count as empty; a NaN box gives IoU 0.
    """
    low = torch.maximum(a[..., :2], b[..., :2])
    high = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (high - low).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    iou = inter / (area_a + area_b - inter).clamp(min=1e-9)
    return torch.nan_to_num(iou, nan=0.0)


def colour_set_accuracy(
    logits: torch.Tensor, presence: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """Return the fraction of images (B, 9) whose colours above threshold are the true set."""
    predicted = logits.sigmoid() > threshold
    return (predicted == (presence > 0.5)).all(dim=1).float().mean()


def mean_iou(pred_boxes: torch.Tensor, true_boxes: torch.Tensor, presence: torch.Tensor) -> float:
    """Return the mean IoU over the true balls: pred (N, 9, 4) vs true (N, 9, 4), presence (N, 9).

    A ball whose colour got no predicted box (NaN) counts with IoU 0.
    """
    present = presence > 0.5
    return paired_iou(pred_boxes[present], true_boxes[present]).mean().item()


def average_precision(scores: np.ndarray, correct: np.ndarray, n_true: int) -> float:
    """Return the area under the precision-recall curve of ranked detections.

    scores (D,): confidence of each detection; correct (D,): True for a true positive;
    n_true: number of true objects. Precision is made non-increasing in recall first
    (all-point interpolation, as Pascal VOC since 2010 and COCO). NaN when n_true is 0.
    """
    if n_true == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(correct, dtype=bool)[order]
    tp, fp = np.cumsum(hits), np.cumsum(~hits)
    recall = np.concatenate([[0.0], tp / n_true])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1)])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * precision[1:]))


def mean_average_precision(
    scores: torch.Tensor,
    pred_boxes: torch.Tensor,
    presence: torch.Tensor,
    true_boxes: torch.Tensor,
    thresholds: Sequence[float] = (0.5,),
) -> float:
    """Return the mAP: AP per colour averaged over colours with a true ball, then thresholds.

    scores (N, 9) colour probabilities; pred_boxes (N, 9, 4), NaN where no detection;
    presence (N, 9); true_boxes (N, 9, 4). A detection is correct when its colour is
    present and its IoU with that ball is at least the threshold. thresholds=COCO_THRESHOLDS
    gives COCO's mAP@[.5:.95].
    """
    iou = paired_iou(pred_boxes, true_boxes).cpu().numpy()
    present = (presence > 0.5).cpu().numpy()
    detected = ~torch.isnan(pred_boxes).any(-1).cpu().numpy()
    scores_np = scores.detach().cpu().numpy()
    per_threshold = []
    for t in thresholds:
        aps = [
            average_precision(
                scores_np[detected[:, c], c], (present & (iou >= t))[detected[:, c], c],
                int(present[:, c].sum()),
            )
            for c in range(scores_np.shape[1])
        ]  # fmt: skip
        per_threshold.append(np.nanmean(aps))
    return float(np.mean(per_threshold))
