"""Notebook 02's greedy forward selection of variants, kept only above the noise band."""

from __future__ import annotations

import pytest

from coursekit.audio.selection import forward_selection, noise_band


def test_forward_selection_keeps_only_what_helps_on_top():
    singles = {"a": 0.40, "b": 0.35, "c": 0.30, "d": 0.25}  # baseline 0.25: d is not tried
    changes = {"a": {"x": 1}, "b": {"y": 1}, "c": {"z": 1}, "d": {"w": 1}}
    together = {"a+b": 0.45, "a+b+c": 0.455}  # c adds less than the band on top of a and b
    calls = []

    def score(label, trial):
        calls.append((label, trial))
        return together[label]

    chosen, recipe, best, steps = forward_selection(singles, changes, 0.25, score, 0.01)
    assert chosen == ["a", "b"] and recipe == {"x": 1, "y": 1} and best == 0.45
    assert calls == [("a+b", {"x": 1, "y": 1}), ("a+b+c", {"x": 1, "y": 1, "z": 1})]
    assert [s["kept"] for s in steps] == [True, False]
    assert [s["verdict"] for s in steps] == ["mieux", "indiscernable"]
    assert steps[1]["gain"] == pytest.approx(0.005)
    assert forward_selection({"a": 0.2}, changes, 0.25, score, 0.01) == ([], {}, 0.25, [])
    # Keys asked for last come after the others, even a better single or one under the
    # baseline, and are kept by the same rule.
    together["a+b+d"] = 0.47
    calls.clear()
    chosen, recipe, best, steps = forward_selection(
        {**singles, "d": 0.9}, changes, 0.25, score, 0.01, last=["d"])
    assert [c[0] for c in calls] == ["a+b", "a+b+c", "a+b+d"]
    assert chosen == ["a", "b", "d"] and best == 0.47
    chosen, _, best, steps = forward_selection({"a": 0.2, "d": 0.1}, changes, 0.25,
                                               lambda label, trial: 0.3, 0.01, last=["d"])
    assert chosen == ["d"] and best == 0.3
    assert steps == [{"label": "d", "score": 0.3, "gain": pytest.approx(0.05),
                      "verdict": "mieux", "kept": True}]


def test_forward_selection_keeps_a_change_only_above_the_band():
    # Seeds of one recipe spanning 7.7 points: gains of 2-5 points are noise, not choices.
    singles = {"a": 0.37, "b": 0.38, "c": 0.40, "e": 0.31}  # +9, +10, +12, +3 over 0.28
    changes = {"a": {"x": 1}, "b": {"y": 1}, "c": {"z": 1}, "e": {"v": 1}}
    together = {"c+b": 0.43, "c+b+a": 0.45, "c+b+a+e": 0.46, "c+a": 0.50}
    calls = []

    def score(label, trial):
        calls.append(label)
        return together[label]

    band = noise_band([0.607, 0.670, 0.624, 0.593, 0.628])
    assert band == pytest.approx(0.077)
    # Above the band: c starts the recipe; on top of it b (+3) is 'indiscernable' and
    # dropped, a (+10) is 'mieux' and kept; e (+3 over the baseline) is no candidate.
    chosen, recipe, best, steps = forward_selection(singles, changes, 0.28, score, band)
    assert chosen == ["c", "a"] and recipe == {"z": 1, "x": 1} and best == 0.50
    assert calls == ["c+b", "c+a"]
    assert [(s["label"], s["verdict"], s["kept"]) for s in steps] == [
        ("c+b", "indiscernable", False), ("c+a", "mieux", True)]
    # The same scores under a 1-point band keep every small gain, e included.
    calls.clear()
    chosen, _, best, _ = forward_selection(singles, changes, 0.28, score, 0.01)
    assert chosen == ["c", "b", "a", "e"] and best == 0.46
    # A band wider than every gain chooses nothing; the band's edge is noise too.
    assert forward_selection(singles, changes, 0.28, score, 0.13) == ([], {}, 0.28, [])
    assert forward_selection({"c": 0.5}, changes, 0.25, score, 0.25) == ([], {}, 0.25, [])
    # A last key that does worse than the recipe by more than the band: 'moins bien'.
    chosen, _, best, steps = forward_selection(
        {"c": 0.40, "d": 0.1}, {**changes, "d": {"w": 1}}, 0.28,
        lambda label, trial: 0.20, band, last=["d"])
    assert chosen == ["c"] and best == 0.40
    assert [(s["verdict"], s["kept"]) for s in steps] == [("moins bien", False)]


def test_noise_band_is_the_spread_of_repeated_runs():
    assert noise_band([0.5, 0.5]) == 0.0
    assert noise_band([0.62, 0.55, 0.60]) == pytest.approx(0.07)
    with pytest.raises(ValueError):
        noise_band([0.6])
