import math

import numpy as np
import pandas as pd
import pytest

from coursekit.analysis import (
    accuracy_band,
    bootstrap_band,
    collapsed,
    compare_runs,
    compare_to_reference,
    comparison_sentence,
    curve_shape,
    first_collapsed_epoch,
    lr_changes,
    overfitting_report,
    overfitting_table,
    reduced_lr_report,
    run_summary,
    stability_report,
    summary_sentence,
    train_measurement_sentence,
    verdict,
    verdict_sentence,
)
from coursekit.train import History


def history(test, train=None, eval_train=None) -> History:
    """A History with val_loss = test and a train loss falling by default."""
    train = train if train is not None else [1.0 / (e + 1) for e in range(len(test))]
    rows = []
    for i, (v, t) in enumerate(zip(test, train, strict=True)):
        row = {"epoch": i + 1, "train_loss": t, "val_loss": v}
        if eval_train is not None:
            row["train_eval_loss"] = eval_train[i]
        rows.append(row)
    return History(rows)


U_SHAPE = [0.50, 0.30, 0.20, 0.15, 0.18, 0.22, 0.27, 0.33]


def test_clear_overfitting_is_found_at_the_right_epoch():
    report = overfitting_report(history(U_SHAPE))
    assert report["overfits"] is True
    assert report["best_epoch"] == 4
    assert report["min_test_loss"] == pytest.approx(0.15)
    assert report["rise"] == pytest.approx(0.18)
    assert report["rise_rel"] == pytest.approx(1.2)
    assert report["epochs_after_min"] == 4
    assert report["epochs_above_tol"] == 4
    assert report["final_gap"] == pytest.approx(0.33 - 1 / 8)


def test_monotone_decreasing_does_not_overfit():
    report = overfitting_report(history([0.5, 0.3, 0.2, 0.15, 0.12, 0.1]))
    assert report["overfits"] is False
    assert report["best_epoch"] == 6
    assert report["rise"] == 0 and report["epochs_after_min"] == 0
    assert "dernière époque" in verdict_sentence("run", report)


def test_rule_boundary_on_tolerance_and_duration():
    base = [0.5, 0.3, 0.2]
    # Exactly at the tolerance is not above it.
    at_tol = overfitting_report(history(base + [0.21, 0.21]), rel_tol=0.05)
    assert at_tol["epochs_above_tol"] == 0 and not at_tol["overfits"]
    # Just above the tolerance for 2 epochs: overfits; for 1 epoch only: does not.
    two = overfitting_report(history(base + [0.2101, 0.2101]), rel_tol=0.05)
    assert two["epochs_above_tol"] == 2 and two["overfits"]
    one = overfitting_report(history(base + [0.2, 0.2101]), rel_tol=0.05)
    assert one["epochs_above_tol"] == 1 and not one["overfits"]
    assert "trop peu" in verdict_sentence("run", one)
    # The duration threshold is a parameter.
    assert overfitting_report(history(base + [0.2, 0.2101]), min_rise_epochs=1)["overfits"]


def test_a_dip_back_under_the_tolerance_resets_the_count():
    report = overfitting_report(history([0.5, 0.2, 0.3, 0.3, 0.205, 0.3]))
    assert report["epochs_above_tol"] == 1
    assert not report["overfits"]


def test_rise_while_train_loss_also_rises_is_not_overfitting():
    train = [1.0, 0.5, 0.3, 0.4, 0.6, 0.8]
    report = overfitting_report(history([0.5, 0.3, 0.2, 0.3, 0.4, 0.5], train=train))
    assert report["epochs_above_tol"] == 3
    assert report["train_still_falling"] is False and report["overfits"] is False
    assert "instabilité" in verdict_sentence("run", report)


def test_train_key_defaults_to_eval_mode_loss_when_recorded():
    h = history(U_SHAPE, eval_train=[0.01] * len(U_SHAPE))
    assert overfitting_report(h)["train_key"] == "train_eval_loss"
    assert overfitting_report(h)["final_train_loss"] == 0.01
    assert overfitting_report(h, train_key="train_loss")["final_train_loss"] == pytest.approx(1 / 8)


def test_epoch_zero_row_is_ignored_and_dataframes_are_accepted():
    h = history(U_SHAPE)
    h.rows.insert(0, {"epoch": 0, "train_loss": 2.3, "val_loss": 0.01})
    assert overfitting_report(h)["best_epoch"] == 4
    assert overfitting_report(h.to_frame())["best_epoch"] == 4


def test_bad_inputs_are_reported():
    with pytest.raises(KeyError, match="val_acc"):
        overfitting_report(history(U_SHAPE), test_key="val_acc")
    with pytest.raises(ValueError, match="NaN"):
        overfitting_report(history([0.5, math.nan]))
    with pytest.raises(ValueError, match="rel_tol"):
        overfitting_report(history(U_SHAPE), rel_tol=-0.1)


def test_sentences_state_the_computed_numbers():
    reports = {
        "a": overfitting_report(history(U_SHAPE)),
        "b": overfitting_report(history([0.5, 0.3, 0.1])),
    }
    text = verdict_sentence("a", reports["a"])
    assert text.startswith("« a » : surapprentissage")
    assert "époque 4" in text and "+120,0\u00a0%" in text
    words = verdict_sentence("a", reports["a"], train="entraînement", test="validation")
    assert "loss de validation (0,15)" in words and "loss d'entraînement continue" in words
    summary = comparison_sentence(reports)
    assert "Plus faible loss de test : « b »" in summary
    assert "surapprentissage selon la règle : « a »" in summary
    gap_a, gap_b = reports["a"]["final_gap"], reports["b"]["final_gap"]
    first, second = ("b", "a") if gap_b < gap_a else ("a", "b")
    assert summary.index(f"« {first} » (") < summary.index(f"« {second} » (")


def test_table_has_one_row_per_run():
    table = overfitting_table({"a": history(U_SHAPE), "b": history([0.5, 0.3, 0.1])})
    assert isinstance(table, pd.DataFrame)
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "overfits"] and not table.loc["b", "overfits"]


def test_train_measurement_sentence_counts_epochs():
    h = history([0.3, 0.2, 0.1], train=[0.4, 0.2, 0.1], eval_train=[0.2, 0.1, 0.2])
    assert "dans 2 époque(s) sur 3" in train_measurement_sentence(h)


def test_summary_sentence_gives_final_numbers():
    h = history([0.3, 0.2], train=[0.4, 0.25], eval_train=[0.3, 0.1])
    for row, acc in zip(h.rows, (0.9, 0.9912), strict=True):
        row["val_acc"] = acc
    text = summary_sentence("a", h)
    assert "après 2 époque(s)" in text
    assert "loss d'apprentissage 0,25" in text and "0,1 (re-mesurée" in text
    assert "loss de test 0,2" in text and "accuracy de test 99,12\u00a0%" in text
    assert "précision" not in text  # one word for accuracy in the workbook


def lr_history(val_loss, lr=None, train_acc=0.9, stopped="max epochs"):
    lr = lr or [0.1] * len(val_loss)
    rows = [
        {"epoch": i + 1, "lr": lr[i], "train_loss": v, "train_acc": train_acc,
         "val_loss": v, "val_acc": 1 - v, "seconds": 1.0}
        for i, v in enumerate(val_loss)
    ]
    return History([{"epoch": 0, "val_loss": 9.0, "val_acc": 0.0}] + rows, stopped)


def test_run_summary_ignores_the_epoch_0_row():
    s = run_summary(lr_history([0.5, 0.3, 0.4]))
    assert s["epochs"] == 3 and s["best_epoch"] == 2 and s["best_val_loss"] == 0.3
    assert s["final_val_acc"] == pytest.approx(0.6) and s["best_val_acc"] == pytest.approx(0.7)
    assert s["acc_gap"] == pytest.approx(0.9 - 0.6) and s["seconds"] == 3.0


def test_compare_runs_against_a_reference():
    runs = {"base": lr_history([0.5, 0.4]), "l2": lr_history([0.5, 0.3, 0.2])}
    table = compare_runs(runs, "base")
    assert list(table.index) == ["base", "l2"]
    assert table.loc["l2", "d_final_val_acc"] == pytest.approx(0.2)
    assert table["epochs"].tolist() == [2, 3]
    with pytest.raises(KeyError, match="reference"):
        compare_runs({"a": lr_history([0.5])}, "b")


def test_lr_changes_and_reduced_lr_report():
    h = lr_history([0.5, 0.4, 0.41, 0.3, 0.35], lr=[0.1, 0.1, 0.1, 0.01, 0.001])
    assert lr_changes(h) == [(4, 0.1, 0.01), (5, 0.01, 0.001)]
    report = reduced_lr_report(h)
    assert report["n_changes"] == 2 and report["first_change_epoch"] == 4
    assert report["epochs_at_reduced_lr"] == 2
    assert report["best_epoch"] == 4 and report["best_after_reduction"]
    assert lr_changes(lr_history([0.5, 0.4])) == []


def test_collapsed_detects_a_run_stuck_at_chance():
    dead = History([{"epoch": e, "train_loss": 2.303, "val_acc": 0.1} for e in (1, 2)])
    alive = History([{"epoch": 1, "train_loss": 0.5, "val_acc": 0.85}])
    slow_start = History([{"epoch": 1, "train_loss": 2.25, "val_acc": 0.35}])
    assert collapsed(dead) and not collapsed(alive) and not collapsed(slow_start)


def test_three_way_verdict_with_a_noise_band():
    # a tie is never "worse": the smoke run that printed "moins bien" on +0.00 %
    assert compare_to_reference(0.18, 0.18, n=100)["verdict"] == "indiscernable"
    # 1 point on 100 images is noise (band about 10 points), on 100,000 images it is not
    assert compare_to_reference(0.81, 0.80, n=100)["verdict"] == "indiscernable"
    assert compare_to_reference(0.81, 0.80, n=100_000)["verdict"] == "mieux"
    assert compare_to_reference(0.79, 0.80, n=100_000)["verdict"] == "moins bien"
    band = accuracy_band(0.9, 0.9, n=10_000)
    assert band == pytest.approx(1.96 * (2 * 0.09 / 10_000) ** 0.5)
    result = compare_to_reference(0.9 + band * 1.01, 0.9, n=10_000)
    assert result["verdict"] == "mieux" and result["delta"] > result["band"]
    with pytest.raises(ValueError, match="positive"):
        accuracy_band(0.5, 0.5, n=0)


# (delta, band, verdict): both sides of the band, inside it on both sides of 0, and its edges.
# Binary fractions, so that delta == band is exact. A rule saying "moins bien" for any
# delta < 0 (or "mieux" for any delta > 0) fails on the rows inside the band.
RULE_CASES = [
    (0.375, 0.25, "mieux"),
    (0.25, 0.25, "indiscernable"),
    (0.0625, 0.25, "indiscernable"),
    (0.0, 0.25, "indiscernable"),
    (-0.0625, 0.25, "indiscernable"),
    (-0.25, 0.25, "indiscernable"),
    (-0.375, 0.25, "moins bien"),
    (0.0625, 0.0, "mieux"),
    (-0.0625, 0.0, "moins bien"),
    (0.0, 0.0, "indiscernable"),
]


@pytest.mark.parametrize(("delta", "band", "expected"), RULE_CASES)
def test_verdict_rule_on_both_sides_of_the_band_and_at_its_edges(delta, band, expected):
    assert verdict(delta, band) == expected


@pytest.mark.parametrize("band", [-0.1, math.nan])
def test_verdict_refuses_a_negative_or_unknown_band(band):
    with pytest.raises(ValueError, match="band"):
        verdict(0.0, band)


@pytest.mark.parametrize(("delta", "band", "expected"), RULE_CASES)
def test_compare_to_reference_goes_through_the_rule(monkeypatch, delta, band, expected):
    monkeypatch.setattr("coursekit.analysis.accuracy_band", lambda *args, **kwargs: band)
    result = compare_to_reference(0.5 + delta, 0.5, n=1000)
    assert result == {"delta": delta, "band": band, "verdict": expected}


def test_compare_to_reference_just_inside_and_outside_the_sampling_band():
    # around 0.5 the band hardly depends on acc (p (1 - p) is flat there), so the band of
    # (0.5, 0.5) stands for that of each pair to well within 1 %
    band = accuracy_band(0.5, 0.5, n=10_000)
    for factor, expected in ((1.01, "mieux"), (0.99, "indiscernable"),
                             (-0.99, "indiscernable"), (-1.01, "moins bien")):  # fmt: skip
        result = compare_to_reference(0.5 + factor * band, 0.5, n=10_000)
        assert result["verdict"] == expected == verdict(result["delta"], result["band"]), factor


def test_train_accuracy_in_eval_mode_is_preferred_for_the_gap():
    rows = [{"epoch": 1, "train_loss": 0.5, "train_acc": 0.70, "train_eval_acc": 0.95,
             "val_loss": 0.4, "val_acc": 0.90, "lr": 0.1}]
    summary = run_summary(History(rows))
    assert summary["final_train_acc"] == 0.95 and summary["acc_gap"] == pytest.approx(0.05)
    assert summary["train_acc_measured"] == "eval"
    del rows[0]["train_eval_acc"]
    assert run_summary(History(rows))["train_acc_measured"] == "during epoch"


def test_first_collapsed_epoch_and_stability():
    rows = [{"epoch": e, "train_loss": loss, "val_acc": acc, "val_loss": loss}
            for e, loss, acc in ((1, 1.0, 0.6), (2, 2.3, 0.1), (3, 2.303, 0.1))]
    h = History(rows)
    assert first_collapsed_epoch(h) == 2
    report = stability_report(h, n_val=1000)
    assert report["collapsed"] and report["unstable"] and report["loss_rises"] == 2
    steady = History([{"epoch": e, "train_loss": 1 / e, "val_acc": 0.5 + e / 100, "val_loss": 1 / e}
                      for e in range(1, 6)])
    assert first_collapsed_epoch(steady) is None and not stability_report(steady, 1000)["unstable"]


def test_curve_shape():
    shape = curve_shape([1.0, 0.4, 0.3, 0.25], [1, 2, 3, 4])
    assert shape["half_fall_epoch"] == 2 and shape["min_epoch"] == 4
    assert shape["last_step_rel"] == pytest.approx(-1 / 6)
    assert curve_shape([0.5, 0.6], [1, 2])["half_fall_epoch"] is None


def test_bootstrap_band_is_about_two_standard_errors():
    values = np.random.default_rng(0).normal(0.0, 1.0, size=400)
    se = values.std() / np.sqrt(len(values))
    assert bootstrap_band(values) == pytest.approx(1.96 * se, rel=0.1)
    assert bootstrap_band([1.0]) == float("inf")
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_band([1.0, float("nan")])
    assert bootstrap_band([1.0, float("nan"), 3.0], drop_nan=True) == bootstrap_band([1.0, 3.0])
