"""HungarianNet data: the public recipe's counts, scipy's labels, padding, shapes, file format."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from coursekit.data.errors import DatasetFormatError, DatasetMissingError
from coursekit.hungarian import data as A


@pytest.fixture(scope="module")
def small3() -> A.AssignmentData:
    return A.generate(3, A.balanced_sample_range(3, 30), seed=1)


def test_balanced_sample_range_is_the_public_one_for_two_doas():
    assert A.balanced_sample_range(2) == (3000, 5000, 15000)
    plan = A.planned_counts(2, (3000, 5000, 15000))
    assert plan.samples.sum() == 405_000
    assert A.planned_counts(2, (3000, 5000, 15000), scale=0.1).samples.sum() == 40_500
    assert list(A.pairs_per_group(10)) == [21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1]


def test_labels_are_scipys_optimal_assignment_of_the_active_block(small3):
    d = small3
    same = 0
    for i in range(len(d)):
        rows, cols = np.flatnonzero(d.ref_mask[i]), np.flatnonzero(d.pred_mask[i])
        expected = np.zeros((3, 3), np.uint8)
        if len(rows) and len(cols):
            r, c = linear_sum_assignment(d.distances[i][np.ix_(rows, cols)])
            expected[rows[r], cols[c]] = 1
        # ones only inside the active block, and the optimal total distance
        assert not (d.labels[i] & ~(d.ref_mask[i][:, None] & d.pred_mask[i][None, :])).any()
        cost = (d.distances[i] * d.labels[i]).sum()
        assert cost == pytest.approx((d.distances[i] * expected).sum(), abs=1e-5)
        same += np.array_equal(d.labels[i], expected)
    # the same matrix, not only the same cost, except for the rare ties of coarse grids
    # (the generator labels the block before permuting it, scipy then sees another order)
    assert same >= 0.99 * len(d)
    assert (d.labels.sum(axis=(1, 2)) == np.minimum(d.nb_ref, d.nb_pred)).all()


def test_assignment_labels_is_scipy_on_the_leading_block():
    rng = np.random.default_rng(0)
    distances = rng.random((50, 4, 4)).astype(np.float32)
    labels = A.assignment_labels(distances, 3, 2)
    for block, label in zip(distances, labels, strict=True):
        r, c = linear_sum_assignment(block[:3, :2])
        expected = np.zeros((4, 4), np.uint8)
        expected[r, c] = 1
        np.testing.assert_array_equal(label, expected)
    assert not A.assignment_labels(distances, 0, 4).any()


def test_active_distances_are_chords_and_masks_count_the_doas(small3):
    d = small3
    assert (d.ref_mask.sum(1) == d.nb_ref).all() and (d.pred_mask.sum(1) == d.nb_pred).all()
    active = d.ref_mask[:, :, None] & d.pred_mask[:, None, :]
    assert d.distances[active].max() <= 2 + 1e-6  # unit vectors: chord at most 2
    # only rows or only columns are permuted: one of the two masks is still a prefix
    prefix = lambda mask, n: (mask == (np.arange(3) < n[:, None])).all(1)  # noqa: E731
    assert (prefix(d.ref_mask, d.nb_ref) | prefix(d.pred_mask, d.nb_pred)).all()
    assert not prefix(d.ref_mask, d.nb_ref).all() and not prefix(d.pred_mask, d.nb_pred).all()


def test_padding_is_constant_ten_or_random_outside_the_unit_range():
    rng = np.random.default_rng(0)
    ref, pred = A._padding(rng, 2000, 4)
    constant_ref = (ref == A.PAD_VALUE).all(axis=(1, 2))
    constant_pred = (pred == A.PAD_VALUE).all(axis=(1, 2))
    np.testing.assert_array_equal(constant_ref, constant_pred)  # one coin per sample
    assert 0.45 < constant_ref.mean() < 0.55
    random_values = ref[~constant_ref]
    assert (np.abs(random_values) > 1).all() and (np.abs(random_values) <= A.PAD_RANGE).all()
    assert len(np.unique(random_values)) > 0.9 * random_values.size  # really random


def test_constant_padding_puts_padded_pairs_at_distance_zero(small3):
    d = small3
    padded = ~d.ref_mask[:, :, None] & ~d.pred_mask[:, None, :]
    zero = padded & (d.distances == 0)
    # about half of the samples pad with the constant 10: their padded pairs are at 0
    share = zero.any(axis=(1, 2)).sum() / padded.any(axis=(1, 2)).sum()
    assert 0.35 < share < 0.65


@pytest.mark.parametrize("max_doas", [1, 2, 5, 10])
def test_shapes_and_one_to_one_labels_for_several_max_doas(max_doas):
    d = A.generate(max_doas, A.balanced_sample_range(max_doas, 12), seed=0, split="val")
    n = len(d)
    assert d.distances.shape == d.labels.shape == (n, max_doas, max_doas)
    assert d.distances.dtype == np.float32 and d.labels.dtype == np.uint8
    assert d.labels.sum(1).max() <= 1 and d.labels.sum(2).max() <= 1
    x, y = d.tensors()
    assert x.shape == y.shape == (n, max_doas, max_doas) and y.dtype == torch.float32
    assert d.max_doas == max_doas and d.meta["split"] == "val"


def test_ten_doas_skip_the_pairs_the_30_degree_grid_cannot_hold():
    d = A.generate(10, A.balanced_sample_range(10, 30), seed=0, resolutions=(20, 30))
    at30 = d.resolution == 30
    assert np.maximum(d.nb_ref, d.nb_pred)[at30].max() == 7  # 7 elevations from -90 to 90
    assert np.maximum(d.nb_ref, d.nb_pred)[~at30].max() == 10
    assert {tuple(s[:3]) for s in d.meta["skipped"]} >= {(30, 8, 0), (30, 10, 10)}


def test_same_seed_same_data_other_split_other_data():
    a = A.generate(2, (3, 5, 15), seed=4)
    b = A.generate(2, (3, 5, 15), seed=4)
    c = A.generate(2, (30, 50, 150), seed=4, split="val")
    np.testing.assert_array_equal(a.distances, b.distances)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert len(c) + c.meta["dropped"] == len(a)  # val is 10% of the counts, before dropping
    assert not np.array_equal(a.distances, c.distances)


def test_generated_splits_share_no_matrix_though_raw_draws_do():
    sample_range = A.balanced_sample_range(2, 300)
    train, val, test = (A.generate(2, sample_range, seed=2, split=s) for s in A.SPLITS)
    keys = {name: {m.tobytes() for m in d.distances} for name, d in
            (("train", train), ("val", val), ("test", test))}  # fmt: skip
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]
    assert A.overlap_share(train, val) == 0 and A.overlap_share([train, val], test) == 0
    assert val.meta["disjoint_from"] == ["train"] and test.meta["disjoint_from"] == ["train", "val"]
    # the raw draw (the public recipe) does overlap: all-zero matrices, coarse grids
    raw = A.generate(2, sample_range, seed=2, split="test", exclude=())
    share = A.overlap_share([train, val], raw)
    assert 0.02 < share < 0.5 and raw.meta["dropped"] == 0
    # dropping is the only change: test is the raw draw minus the seen matrices, in order
    keep = [m.tobytes() not in keys["train"] | keys["val"] for m in raw.distances]
    np.testing.assert_array_equal(test.distances, raw.distances[keep])
    np.testing.assert_array_equal(test.labels, raw.labels[keep])
    assert test.meta["dropped"] == len(raw) - len(test) == round(share * len(raw))
    assert sum(block[-1] for block in test.meta["dropped_blocks"]) == test.meta["dropped"]
    assert A.overlap_share(raw, raw) == 1.0


def test_ensure_dataset_regenerates_a_split_written_before_disjoint_splits(tmp_data):
    sample_range = (30, 50, 150)
    train = A.ensure_dataset(2, "train", sample_range, seed=5)
    raw = A.generate(2, sample_range, seed=5, split="test", exclude=())
    del raw.meta["disjoint_from"]  # as an old file's meta
    A.save(raw, A.dataset_path(2, "test", sample_range, 5))
    test = A.ensure_dataset(2, "test", sample_range, seed=5)
    assert A.overlap_share(train, raw) > 0 and A.overlap_share(train, test) == 0
    assert A.load(A.dataset_path(2, "test", sample_range, 5)).meta["disjoint_from"]


def test_planned_balance_matches_the_generated_labels():
    sample_range = A.balanced_sample_range(4, 20)
    data = A.generate(4, sample_range, seed=0)
    planned, measured = A.planned_balance(4, sample_range), A.class_balance(data)
    for key in ("samples", "ones", "zeros"):
        assert planned[key] == measured[key]
    table = A.combination_table(data)
    assert table["samples"].sum() == len(data) and table.loc[(4, 4), "ones_fraction"] == 0.25
    assert A.class_balance(A.generate(2, (30, 50, 150)))["ones_fraction"] == 0.25


def test_ten_doas_labels_are_mostly_zeros():
    balance = A.planned_balance(10)
    assert balance["samples"] == 1_381_623  # 1,485,000 planned, minus the skipped pairs
    assert 0.04 < balance["ones_fraction"] < 0.06


def test_save_then_load_gives_the_same_arrays(tmp_path, small3):
    path = A.save(small3, tmp_path / "d.npz")
    back = A.load(path)
    for key in A.ARRAYS:
        np.testing.assert_array_equal(getattr(back, key), getattr(small3, key))
    assert back.meta["sample_range"] == small3.meta["sample_range"]


def test_missing_or_damaged_files_give_clear_errors(tmp_path, small3):
    with pytest.raises(DatasetMissingError, match="ensure_dataset"):
        A.load(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetFormatError, match="not a readable"):
        A.load(tmp_path / "bad.npz")
    arrays = {k: getattr(small3, k) for k in A.ARRAYS}
    arrays["labels"] = arrays["labels"].astype(np.float64)
    np.savez(tmp_path / "dtype.npz", **arrays, meta=np.array('{"format_version": 1, '
                                                            '"max_doas": 3, "sample_range": []}'))
    with pytest.raises(DatasetFormatError, match="'labels' is float64"):
        A.load(tmp_path / "dtype.npz")


def test_ensure_dataset_writes_once_then_reads(tmp_data):
    first = A.ensure_dataset(2, "test", (30, 50, 150), seed=3)
    path = A.dataset_path(2, "test", (30, 50, 150), 3)
    assert path.exists() and path.is_relative_to(tmp_data / "data")
    mtime = path.stat().st_mtime_ns
    second = A.ensure_dataset(2, "test", (30, 50, 150), seed=3)
    assert path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(first.labels, second.labels)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_doas"):
        A.balanced_sample_range(0)
    with pytest.raises(ValueError, match="max_doas \\+ 1 = 3"):
        A.planned_counts(2, (1, 2))
    with pytest.raises(ValueError, match="split"):
        A.generate(2, split="dev")


def test_matrix_loader_covers_every_sample_once(small3):
    loader = A.MatrixLoader(small3, batch_size=64, shuffle=True)
    assert len(loader) == -(-len(small3) // 64)
    seen = torch.cat([x for x, _ in loader])
    assert seen.shape == (len(small3), 3, 3)
    key = lambda t: sorted(map(tuple, t.flatten(1).tolist()))  # noqa: E731
    assert key(seen) == key(torch.from_numpy(small3.distances))
    assert len(A.MatrixLoader(small3, batch_size=64, drop_last=True)) == len(small3) // 64


def test_smoke_data_goes_to_a_marked_fixture_root(tmp_data, monkeypatch):
    # Generated first in a fresh clone, it must mark the folder, or the image fixtures that
    # come next would refuse an unmarked, non-empty folder.
    from coursekit.data.fixtures import ensure_fixtures, is_fixture_root

    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    A.ensure_dataset(2, "train", [2, 2, 2], seed=0)
    assert is_fixture_root(tmp_data / "fixtures")
    assert ensure_fixtures() == tmp_data / "fixtures"


def test_smoke_data_refuses_an_unmarked_folder(tmp_data, monkeypatch):
    (tmp_data / "fixtures").mkdir()
    (tmp_data / "fixtures" / "real.bin").write_bytes(b"\0")
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    with pytest.raises(ValueError, match="COURSEKIT_FIXTURE marker"):
        A.dataset_dir()
