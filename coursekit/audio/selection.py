"""Notebook 02's recipe: greedy forward selection of variants, each scored on validation.

`forward_selection` only calls the score function it is given; the notebook passes one that
trains on the validation folds (`coursekit.audio.lesson.speaker_runs` with
eval='validation'), so the test speakers never take part in a choice. A change is kept only
when it beats the noise band measured on the same scores (`noise_band`), by the workbook's
one rule `coursekit.analysis.verdict`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from coursekit.analysis import verdict


def noise_band(scores: Sequence[float]) -> float:
    """Return the noise band (half-width, same unit as scores) measured from repeated runs.

    scores: one recipe's score trained several times, changing only what should not matter
    (the seed): their range max - min is a difference that noise alone produced, so a
    change must beat it to count (`coursekit.analysis.verdict`).
    """
    if len(scores) < 2:
        raise ValueError(f"a noise band needs at least 2 runs, got {len(scores)}")
    return float(max(scores) - min(scores))


def forward_selection(
    singles: Mapping[str, float], changes: Mapping[str, dict], baseline: float,
    score: Callable[[str, dict], float], band: float, last: Sequence[str] = (),
) -> tuple[list[str], dict, float, list[dict[str, Any]]]:
    """Return (chosen keys, their merged changes, their score, steps): greedy forward selection.

    singles: each variant's validation score alone; changes: its AudioConfig fields; band:
    the noise band of a score difference (`noise_band`). A change counts only when
    `verdict(gain, band)` says 'mieux' (gain > band): only the variants whose gain over
    `baseline` is 'mieux' are tried, best first; the recipe starts as the best one, and each
    next one is added if its gain over the recipe's score is 'mieux'. Adding them all at once
    can be worse than any of them alone (too much augmentation for the epochs); this keeps
    only what helps on top of what is kept. steps: one dict per trial (label, score, gain,
    verdict, kept). No variant beats the baseline and no `last` key: ([], {}, baseline, []).

    last: keys tried after all the others, in this order, whatever their single scores
    (those that multiply the cost of every later trial: an ensemble, an adaptation).
    """
    ranked = sorted((k for k in singles
                     if k not in last and verdict(singles[k] - baseline, band) == "mieux"),
                    key=lambda k: -singles[k])
    chosen, recipe, best = [], {}, baseline
    if ranked:
        chosen, recipe, best = [ranked[0]], dict(changes[ranked[0]]), singles[ranked[0]]
    steps: list[dict[str, Any]] = []
    for key in [*ranked[1:], *(k for k in last if k in singles)]:
        label, trial = "+".join([*chosen, key]), {**recipe, **changes[key]}
        value = score(label, trial)
        said = verdict(value - best, band)
        steps.append({"label": label, "score": value, "gain": value - best, "verdict": said,
                      "kept": said == "mieux"})
        if said == "mieux":
            chosen, recipe, best = [*chosen, key], trial, value
    return chosen, recipe, best, steps
