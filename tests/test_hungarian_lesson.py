"""Notebook 07 lesson: the 3-output loss, training, the public recipe, ablation verdicts."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from coursekit.analysis import verdict
from coursekit.hungarian import lesson as H
from coursekit.hungarian.metrics import AssignmentScores, cell_weights

SMALL = {"per_group": 60, "epochs": 4, "batch_size": 64, "lr": 3e-3, "hidden": 32}


# Tiny batches: one thread is faster, and immune to a machine busy with other work.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def splits(assignment_splits):
    """The conftest's small 2-DOA splits (SMALL["per_group"] matrices per group to train)."""
    return assignment_splits


def all_zero_f1(data):
    scores = AssignmentScores(cell_weights(torch.from_numpy(data.labels)))
    scores.update(torch.full(data.labels.shape, -10.0), torch.from_numpy(data.labels))
    return scores.compute()["f1"]


def test_config_checks_its_fields():
    with pytest.raises(ValueError, match="arch"):
        H.HungarianConfig(arch="mlp")
    with pytest.raises(ValueError, match="not all zero"):
        H.HungarianConfig(weights=(0, 0, 0))
    assert H.HungarianConfig(weights=[1, 0, 1]).weights == (1.0, 0.0, 1.0)  # papermill lists
    assert H.HungarianConfig().name != H.HungarianConfig(seed=1).name
    with pytest.raises(ValueError, match="schedule"):
        H.HungarianConfig(schedule="step")
    with pytest.raises(ValueError, match="keep_best and patience"):
        H.HungarianConfig(keep_best=True, patience=3)
    assert H.HungarianConfig().name != H.HungarianConfig(schedule="cosine").name


def test_loss_is_the_public_sum_of_three_bce_per_sample():
    torch.manual_seed(0)
    logits = torch.randn(8, 3, 3)
    labels = torch.zeros(8, 3, 3)
    labels[:, 0, 1] = labels[:, 2, 0] = 1
    bce = lambda out, target: F.binary_cross_entropy_with_logits(out, target, reduction="sum")  # noqa: E731
    public = (bce(logits.flatten(1), labels.flatten(1)) + bce(logits.amax(2), labels.sum(2))
              + bce(logits.amax(1), labels.sum(1)))  # fmt: skip
    loss = H.AssignmentLoss()
    torch.testing.assert_close(loss(logits, labels), public / 8)
    terms = loss.terms(logits, labels)
    only_cells = H.AssignmentLoss(weights=(1, 0, 0))
    torch.testing.assert_close(only_cells(logits, labels), terms[0])
    focal = H.AssignmentLoss(weights=(0, 0, 1), kind="focal", alpha=0.9, gamma=2)
    expected = sigmoid_focal_loss(logits.amax(1), labels.sum(1), 0.9, 2, reduction="sum") / 8
    torch.testing.assert_close(focal(logits, labels), expected)


def test_balance_weights_are_negatives_over_positives():
    labels = torch.tensor([[[1, 0], [0, 0]], [[1, 0], [0, 1]], [[0, 0], [0, 0]], [[0, 1], [0, 0]]])
    cells, rows, cols = H.balance_weights(labels)
    assert cells.tolist() == [2 / 2, 3 / 1, 4 / 1, 3 / 1]  # the empty cell divides by 1
    assert rows.tolist() == pytest.approx([1 / 3, 3 / 1]) and cols.tolist() == [1.0, 1.0]
    config = H.HungarianConfig(balance=True, loss="focal")
    assert H.make_loss(config, labels).alpha == pytest.approx(1 - 4 / 16)


def test_training_learns_and_beats_predicting_no_association(splits):
    config = H.HungarianConfig(**SMALL, label="learn")
    model, history = H.run(config, checkpoint=None, data=splits, verbose=False)
    frame = history.to_frame()
    assert frame["train_loss"].iloc[-1] < frame["train_loss"].iloc[0]
    assert frame["val_loss"].iloc[-1] < frame["val_loss"].iloc[0]
    baseline = all_zero_f1(splits[1])
    assert frame["val_f1"].iloc[-1] > baseline + 0.05, (frame["val_f1"].tolist(), baseline)
    assert {"val_assignment_acc", "val_recall_1", "val_precision_0"} <= set(frame.columns)


def test_same_seed_same_f1_and_checkpoint_reloads(splits, tmp_path):
    config = H.HungarianConfig(**{**SMALL, "epochs": 2}, label="repro")
    _, first = H.run(config, checkpoint=tmp_path / "a.pt", data=splits, verbose=False)
    _, second = H.run(config, checkpoint=None, data=splits, verbose=False)
    assert first["val_f1"] == second["val_f1"]
    model, again = H.run(config, checkpoint=tmp_path / "a.pt", data=splits, verbose=False)
    assert again["val_f1"] == first["val_f1"]  # finished checkpoint: loaded, not retrained
    weights = cell_weights(torch.from_numpy(splits[0].labels))
    assert H.score(model, splits[1], weights)["f1"] == pytest.approx(first["val_f1"][-1])
    _, other = H.run(H.HungarianConfig(**{**SMALL, "epochs": 2}, seed=1), checkpoint=None,
                     data=splits, verbose=False)  # fmt: skip
    assert other["val_f1"] != first["val_f1"]


def test_keep_best_ends_with_the_best_validation_epoch_even_reloaded(
    splits, tmp_path, monkeypatch
):
    seen = {}

    def scores_falling(val, weights):  # the first epoch scores best on validation
        def hook(model, epoch):
            seen[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
            return {"val_f1": 1.0 / epoch}

        return hook

    monkeypatch.setattr(H, "val_scores", scores_falling)
    config = H.HungarianConfig(**{**SMALL, "epochs": 3}, keep_best=True, schedule="cosine")

    def is_epoch(model, epoch):
        return all(torch.equal(v, seen[epoch][k]) for k, v in model.state_dict().items())

    model, history = H.run(config, checkpoint=tmp_path / "b.pt", data=splits, verbose=False)
    assert is_epoch(model, 1) and not is_epoch(model, 3)
    assert history["lr"][0] == config.lr > history["lr"][1] > history["lr"][2] > 0  # cosine
    reloaded, _ = H.run(config, checkpoint=tmp_path / "b.pt", data=splits, verbose=False)
    assert is_epoch(reloaded, 1)  # a finished checkpoint gives the best epoch back too
    last, _ = H.run(replace(config, keep_best=False), checkpoint=None, data=splits, verbose=False)
    assert is_epoch(last, 3)


def test_dhn_and_ablated_models_train(splits):
    for overrides in ({"arch": "dhn", "hidden": 8, "loss": "focal", "balance": True},
                      {"gru": False, "attention": False, "balance": True}):  # fmt: skip
        config = H.HungarianConfig(**{**SMALL, "epochs": 1, **overrides})
        _, history = H.run(config, checkpoint=None, data=splits, verbose=False)
        assert np.isfinite(history["val_loss"][-1]) and 0 <= history["val_f1"][-1] <= 1


def test_public_recipe_learns_and_resumes(splits, tmp_path):
    config = H.HungarianConfig(per_group=SMALL["per_group"], epochs=3)
    model, frame = H.train_public_recipe(config, checkpoint=tmp_path / "p.pt", data=splits,
                                         verbose=False)  # fmt: skip
    assert list(frame.index) == [1, 2, 3]
    assert frame["train_loss"].iloc[-1] < frame["train_loss"].iloc[0]
    weights = cell_weights(torch.from_numpy(splits[0].labels))
    assert H.score(model, splits[1], weights)["f1"] == pytest.approx(frame["val_f1"].max())
    _, again = H.train_public_recipe(config, checkpoint=tmp_path / "p.pt", data=splits,
                                     verbose=False)  # fmt: skip
    assert again.equals(frame)  # finished checkpoint: loaded, the best epoch's weights too


def test_public_recipe_resumes_as_if_never_stopped(splits, tmp_path):
    config = H.HungarianConfig(per_group=SMALL["per_group"], epochs=3)
    unbroken_model, unbroken = H.train_public_recipe(config, checkpoint=None, data=splits,
                                                     verbose=False)  # fmt: skip
    ckpt = tmp_path / "p.pt"
    H.train_public_recipe(H.HungarianConfig(per_group=SMALL["per_group"], epochs=1),
                          checkpoint=ckpt, data=splits, verbose=False)  # fmt: skip
    model, resumed = H.train_public_recipe(config, checkpoint=ckpt, data=splits, verbose=False)
    assert resumed["val_f1"].tolist() == unbroken["val_f1"].tolist()
    for a, b in zip(model.state_dict().values(), unbroken_model.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)


def test_public_loss_sums_the_three_terms_over_the_batch():
    torch.manual_seed(0)
    logits = torch.randn(8, 3, 3)
    labels = (torch.rand(8, 3, 3) > 0.7).float()
    expected = H.AssignmentLoss()(logits, labels) * len(labels)  # the mean per matrix
    torch.testing.assert_close(H.public_loss(logits, labels), expected)


def test_hungarian_labels_match_and_timings_are_measured(splits):
    test = splits[2]
    labels = H.hungarian_labels(test)
    cost = lambda lab: (test.distances * lab).sum(axis=(1, 2))  # noqa: E731
    np.testing.assert_allclose(cost(labels), cost(test.labels), atol=1e-5)
    assert H.hungarian_ms(test, n=64, repeats=1) > 0
    assert H.model_ms(H.HNet(2), test, n=64, repeats=1) > 0


def test_the_timing_sample_is_spread_over_resolutions_and_pairs():
    from coursekit.hungarian.data import RESOLUTIONS, balanced_sample_range, generate

    data = generate(10, balanced_sample_range(10, 400), seed=0, split="test", exclude=())
    first = H.take(data, np.arange(1024))  # what the timing took before: block-ordered
    sample = H.timing_sample(data, 1024, seed=0)
    assert len(sample) == 1024 and len(set(map(bytes, sample.distances))) == 1024

    def shares(part, key):
        values = getattr(part, key) if key != "pair" else part.nb_ref * 100 + part.nb_pred
        kinds, counts = np.unique(values, return_counts=True)
        return dict(zip(kinds.tolist(), (counts / len(part)).tolist(), strict=True))

    # every resolution in its share of the split (binomial noise of 1,024 draws: < 4 points)
    whole, drawn = shares(data, "resolution"), shares(sample, "resolution")
    assert set(drawn) == set(RESOLUTIONS)
    assert max(abs(drawn[r] - whole[r]) for r in whole) < 0.04
    assert len(shares(first, "resolution")) < len(RESOLUTIONS) / 2  # the first: block-ordered
    # most (nb_ref, nb_pred) pairs met, their mean sizes those of the split
    assert len(shares(sample, "pair")) > 0.9 * len(shares(data, "pair"))
    for key in ("nb_ref", "nb_pred"):
        assert abs(getattr(sample, key).mean() - getattr(data, key).mean()) < 0.5
    again = H.timing_sample(data, 1024, seed=0)
    assert np.array_equal(again.distances, sample.distances)  # same seed, same sample
    small = H.timing_sample(H.take(data, np.arange(100)), 1024)
    assert len(small) == 100  # all of a smaller split


def test_load_data_generates_the_config_splits(tmp_data):
    train, val, test = H.load_data(H.HungarianConfig(max_doas=3, per_group=30, data_seed=2))
    assert train.max_doas == 3 and len(val) == len(test) and len(val) < len(train)
    assert val.meta["seed"] == 2 and not np.array_equal(val.distances, test.distances)


def test_ablation_configs():
    base = H.HungarianConfig(**{**SMALL, "epochs": 1})
    configs = H.ablation_configs(base, ["full", "no_attention"], seeds=[0, 1])
    assert [(c.label, c.seed, c.attention) for c in configs] == [
        ("full", 0, True), ("full", 1, True), ("no_attention", 0, False),
        ("no_attention", 1, False),
    ]  # fmt: skip
    with pytest.raises(KeyError, match="unknown ablation"):
        H.ablation_configs(base, ["no_brain"])


def test_ablation_summary_is_per_variant_over_seeds():
    table = pd.DataFrame({"label": ["full", "full", "focal"], "final_val_f1": [0.5, 0.75, 0.25]})
    summary = H.ablation_summary(table)
    assert list(summary.index) == ["full", "focal"] and list(summary["count"]) == [2, 1]
    assert summary.loc["full", "mean"] == 0.625 and np.isnan(summary.loc["focal", "std"])
    with pytest.raises(ValueError, match="no finished run"):
        H.ablation_summary(table.iloc[:0])


def test_ablation_verdicts_use_the_seed_noise_band():
    nan = float("nan")
    summary = pd.DataFrame({"mean": [0.9, 0.8, 0.89, 0.95], "std": [0.01, 0.02, 0.01, nan]},
                           index=["full", "no_gru", "hidden32", "dhn"])  # fmt: skip
    verdicts = H.ablation_verdicts(summary)
    assert list(verdicts["verdict"]) == ["indiscernable", "moins bien", "indiscernable",
                                         "une seule graine"]  # fmt: skip
    assert verdicts.loc["no_gru", "band"] == pytest.approx(0.04)
    with pytest.raises(KeyError, match="reference"):
        H.ablation_verdicts(summary, reference="base")


def test_ablation_verdicts_go_through_the_one_rule():
    # band = 2 * 0.125 = 0.25 for every variant; binary fractions make the edges exact.
    # Inside the band on both sides of 0, a rule comparing delta with 0 fails.
    means = {"full": 0.5, "up": 0.875, "edge_up": 0.75, "bit_up": 0.5625, "bit_down": 0.4375,
             "edge_down": 0.25, "down": 0.125}  # fmt: skip
    summary = pd.DataFrame({"mean": means, "std": 0.125})
    verdicts = H.ablation_verdicts(summary)
    assert verdicts["band"].tolist() == [0.25] * len(means)
    assert verdicts["verdict"].to_dict() == {
        "full": "indiscernable", "up": "mieux", "edge_up": "indiscernable",
        "bit_up": "indiscernable", "bit_down": "indiscernable", "edge_down": "indiscernable",
        "down": "moins bien",
    }  # fmt: skip
    for row in verdicts.itertuples():
        assert row.verdict == verdict(row.delta, row.band)
    one_seed_reference = summary.assign(std=[np.nan] + [0.125] * (len(means) - 1))
    assert set(H.ablation_verdicts(one_seed_reference)["verdict"]) == {"une seule graine"}


def _profile_configs(values: dict) -> list[H.HungarianConfig]:
    """Return every tracked training of notebook 07 in one profile, built as the notebook does."""
    main = H.HungarianConfig(per_group=values["per_group"], epochs=values["epochs"], label="full")
    remedies = {"bce": {}, "pos_weight": {"balance": True},
                "focal": {"loss": "focal", "balance": True}}  # the notebook's REMEDIES  # fmt: skip
    scaling = [
        replace(main, max_doas=m, per_group=values["scaling_per_group"],
                epochs=values["scaling_epochs"], label=f"scale_{r}", **change)
        for m in values["scaling_doas"] for r, change in remedies.items()
    ]  # fmt: skip
    ablation = H.ablation_configs(
        replace(main, per_group=values["ablation_per_group"], epochs=values["ablation_epochs"]),
        values["ablation_variants"], (0, 1, 2),
    )  # fmt: skip
    return [main, *scaling, *ablation]


def test_the_two_profiles_never_share_a_tracked_run():
    # one MLflow store holds both profiles' runs: a run is found by its config's name
    names = {p: {c.name for c in _profile_configs(v)} for p, v in H.PROFILES.items()}
    assert not names["séance"] & names["complet"]
    assert set(H.PROFILES["séance"]["ablation_variants"]) < set(H.ABLATION)
    assert len(H.PROFILES["complet"]["ablation_variants"]) == 12


@pytest.mark.parametrize("profile", list(H.PROFILES))
def test_a_profile_never_trains_the_same_config_under_two_names(profile):
    # the name's hash covers every field but the label: one hash, one training
    names = {c.name for c in _profile_configs(H.PROFILES[profile])}
    hashes = [name.rsplit("_", 1)[1] for name in names]
    assert len(hashes) == len(set(hashes))


def test_the_dhn_variant_is_xus_weighted_focal_loss_on_the_cells_of_raw_distances():
    config = H.ablation_configs(H.HungarianConfig(**SMALL), ["dhn"], seeds=[0])[0]
    assert config.arch == "dhn" and H.make_model(config).clip_input is None
    labels = torch.zeros(4, 2, 2)
    labels[0, 0, 0] = labels[1, 1, 0] = labels[1, 0, 1] = 1  # 3 ones among 16 cells
    loss = H.make_loss(config, labels)
    logits = torch.randn(4, 2, 2)
    p = torch.sigmoid(logits)
    w1, w0 = 13 / 16, 3 / 16  # Xu: positives weigh the share of zeros, negatives of ones
    xu = -(w1 * (1 - p) ** 2 * labels * p.log() + w0 * p**2 * (1 - labels) * (1 - p).log())
    # one term only (no row or column max), summed over the cells, averaged over the batch
    assert loss(logits, labels).item() == pytest.approx(xu.sum().item() / 4, rel=1e-5)


def test_f1_per_batch_averages_the_batches_and_differs_from_the_pooled_f1(splits):
    train, _, test = splits
    weights = cell_weights(torch.from_numpy(train.labels))
    model = H.make_model(H.HungarianConfig(**SMALL))
    whole = H.f1_per_batch(model, test, weights, batch=len(test))
    assert whole == pytest.approx(H.score(model, test, weights)["f1"])  # one batch: pooled
    logits, labels = H.predict_logits(model, test), torch.from_numpy(test.labels)
    by_hand = []
    for start in range(0, len(test), 100):
        scores = AssignmentScores(weights)
        scores.update(logits[start : start + 100], labels[start : start + 100])
        by_hand.append(scores.compute()["f1"])
    assert H.f1_per_batch(model, test, weights, batch=100) == pytest.approx(np.mean(by_hand))
