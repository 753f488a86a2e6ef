"""Notebook 06: noise bands for its comparisons, folds for its cross-validation.

Every comparison goes through the workbook's one rule, `coursekit.analysis.verdict(delta,
band)`. The band is measured: `coursekit.analysis.bootstrap_band` resamples the validation
items (images, sequences) a paired difference is averaged over, so it is the noise of
evaluating on that many items; `fold_band` uses the spread of one difference over
cross-validation folds (each fold trains anew), so it also holds the noise of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from coursekit.analysis import bootstrap_band, verdict


def paired_verdict(score: Sequence[float], reference: Sequence[float],
                   higher_is_better: bool = True, **band_kw: Any) -> dict[str, Any]:  # fmt: skip
    """Return {'delta', 'band', 'verdict', 'n'}: score against reference, item by item.

    score, reference: one value per item (the same items, same order). delta: the mean of
    the paired differences, signed so that positive is better; band: `bootstrap_band` of
    those differences; verdict: `coursekit.analysis.verdict(delta, band)`.
    """
    a, b = np.asarray(score, dtype=float), np.asarray(reference, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores need two 1-D arrays of one length, got {a.shape} and "
                         f"{b.shape}")  # fmt: skip
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("scores hold NaN: score every item (a missing detection scores 0)")
    d = a - b if higher_is_better else b - a
    band = bootstrap_band(d, **band_kw)
    delta = float(d.mean())
    return {"delta": delta, "band": band, "verdict": verdict(delta, band), "n": len(d)}


def fold_band(deltas: Sequence[float], confidence: float = 0.95) -> float:
    """Return the half-width of the confidence interval of the mean of per-fold deltas
    (Student's t, k - 1 degrees of freedom; infinite with fewer than 2 folds)."""
    d = np.asarray(deltas, dtype=float)
    if len(d) < 2:
        return float("inf")
    return float(stats.t.ppf((1 + confidence) / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))


def kfold_splits(pool: np.ndarray, k: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Return k splits {'train', 'val'} of the indices `pool`: shuffled once by seed, each
    fold is the validation of one split and the rest its training set."""
    if not 2 <= k <= len(pool):
        raise ValueError(f"k-fold needs 2 <= k <= {len(pool)} (the pool's size), got k={k}")
    folds = np.array_split(np.random.default_rng(seed).permutation(pool), k)
    return [{"train": np.sort(np.concatenate(folds[:i] + folds[i + 1 :])),
             "val": np.sort(folds[i])} for i in range(k)]  # fmt: skip
