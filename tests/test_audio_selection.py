"""Notebook 02's greedy forward selection of variants."""

from __future__ import annotations

from coursekit.audio.selection import forward_selection


def test_forward_selection_keeps_only_what_helps_on_top():
    singles = {"a": 0.40, "b": 0.35, "c": 0.30, "d": 0.25}  # baseline 0.25: d is not tried
    changes = {"a": {"x": 1}, "b": {"y": 1}, "c": {"z": 1}, "d": {"w": 1}}
    together = {"a+b": 0.45, "a+b+c": 0.455}  # c adds less than min_gain on top of a and b
    calls = []

    def score(label, trial):
        calls.append((label, trial))
        return together[label]

    chosen, recipe, best, steps = forward_selection(singles, changes, 0.25, score)
    assert chosen == ["a", "b"] and recipe == {"x": 1, "y": 1} and best == 0.45
    assert calls == [("a+b", {"x": 1, "y": 1}), ("a+b+c", {"x": 1, "y": 1, "z": 1})]
    assert [s["kept"] for s in steps] == [True, False]
    assert forward_selection({"a": 0.2}, changes, 0.25, score) == ([], {}, 0.25, [])
    # Keys asked for last come after the others, even a better single or one under the
    # baseline, and are kept by the same rule.
    together["a+b+d"] = 0.47
    calls.clear()
    chosen, recipe, best, steps = forward_selection(
        {**singles, "d": 0.9}, changes, 0.25, score, last=["d"])
    assert [c[0] for c in calls] == ["a+b", "a+b+c", "a+b+d"]
    assert chosen == ["a", "b", "d"] and best == 0.47
    chosen, _, best, steps = forward_selection({"a": 0.2, "d": 0.1}, changes, 0.25,
                                               lambda label, trial: 0.3, last=["d"])
    assert chosen == ["d"] and best == 0.3 and steps == [{"label": "d", "score": 0.3, "kept": True}]
