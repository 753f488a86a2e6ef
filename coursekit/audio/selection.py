"""Notebook 02's recipe: greedy forward selection of variants, each scored on validation.

`forward_selection` only calls the score function it is given; the notebook passes one that
trains on the validation folds (`coursekit.audio.lesson.speaker_runs` with
eval='validation'), so the test speakers never take part in a choice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


def forward_selection(
    singles: Mapping[str, float], changes: Mapping[str, dict], baseline: float,
    score: Callable[[str, dict], float], min_gain: float = 0.01, last: Sequence[str] = (),
) -> tuple[list[str], dict, float, list[dict[str, Any]]]:
    """Return (chosen keys, their merged changes, their score, steps): greedy forward selection.

    singles: each variant's validation score alone; changes: its AudioConfig fields. Only the
    variants beating `baseline` by min_gain are tried, best first: the recipe starts as the
    best one, and each next one is added if score(label, merged changes) beats the recipe's
    by min_gain. Adding them all at once can be worse than any of them alone (too much
    augmentation for the epochs); this keeps only what helps on top of what is kept. steps:
    one dict per trial (label, score, kept). No variant beats the baseline and no `last`
    key: ([], {}, baseline, []).

    last: keys tried after all the others, in this order, whatever their single scores
    (those that multiply the cost of every later trial: an ensemble, an adaptation).
    """
    ranked = sorted((k for k in singles if singles[k] >= baseline + min_gain and k not in last),
                    key=lambda k: -singles[k])
    chosen, recipe, best = [], {}, baseline
    if ranked:
        chosen, recipe, best = [ranked[0]], dict(changes[ranked[0]]), singles[ranked[0]]
    steps: list[dict[str, Any]] = []
    for key in [*ranked[1:], *(k for k in last if k in singles)]:
        label, trial = "+".join([*chosen, key]), {**recipe, **changes[key]}
        value = score(label, trial)
        kept = value >= best + min_gain
        steps.append({"label": label, "score": value, "kept": kept})
        if kept:
            chosen, recipe, best = [*chosen, key], trial, value
    return chosen, recipe, best, steps
