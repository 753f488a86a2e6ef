"""Notebook 06's comparisons: bootstrap and fold noise bands, the verdict rule, k-fold."""

import numpy as np
import pytest

from coursekit.balls.compare import fold_band, kfold_splits, paired_verdict


def test_paired_verdict_refuses_missing_scores():
    with pytest.raises(ValueError, match="NaN"):
        paired_verdict([1.0, float("nan")], [0.5, 0.5])


def test_paired_verdict_needs_a_difference_beyond_the_band():
    rng = np.random.default_rng(1)
    reference = rng.uniform(0.5, 1.0, size=300)
    # "0,157 vs 0,157": the same scores up to noise far below the band are not "mieux".
    tie = paired_verdict(reference + rng.normal(0, 1e-3, 300), reference)
    assert tie["verdict"] == "indiscernable" and tie["band"] > abs(tie["delta"])
    better = paired_verdict(reference + 0.05, reference)
    assert better["verdict"] == "mieux" and better["delta"] == pytest.approx(0.05)
    # Errors: lower is better, so a larger error is "moins bien".
    worse = paired_verdict(reference + 0.05, reference, higher_is_better=False)
    assert worse["verdict"] == "moins bien" and worse["n"] == 300
    with pytest.raises(ValueError, match="paired"):
        paired_verdict([1.0, 2.0], [1.0])


def test_fold_band_uses_student_t():
    deltas = [0.1, 0.2, 0.3]
    assert fold_band(deltas) == pytest.approx(4.303 * 0.1 / np.sqrt(3), rel=1e-3)
    assert fold_band([0.1]) == float("inf")


def test_kfold_splits_cover_the_pool_once_each():
    pool = np.arange(100, 130)
    splits = kfold_splits(pool, 3, seed=0)
    vals = np.concatenate([s["val"] for s in splits])
    assert sorted(vals.tolist()) == pool.tolist()
    for s in splits:
        assert not set(s["train"]) & set(s["val"])
        assert len(s["train"]) + len(s["val"]) == len(pool)
    with pytest.raises(ValueError, match="k-fold"):
        kfold_splits(pool, 1)
