"""Notebook 02's goal measure: accuracy on voices never heard, one held-out speaker at a time.

`heldout_accuracies` trains once (`coursekit.audio.lesson.run`, an ensemble included) on
the named training speakers' recordings and measures it on every recording of each held-out
speaker, without adaptation: the strict number (a voice never heard, its labels or its
recordings). `leave_one_out` does it for each speaker of the data in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from coursekit.audio import lesson
from coursekit.audio.lesson import AudioConfig, AudioData, Batches
from coursekit.checkpoint import load_checkpoint
from coursekit.train import evaluate


def heldout_accuracies(
    config: AudioConfig, data: AudioData, train_speakers: Sequence[str],
    test_speakers: Sequence[str], checkpoint_for: Callable[[AudioConfig], Path | None],
    verbose: bool = False,
) -> pd.Series:
    """Return the accuracy (fraction) of one training on `train_speakers` on each of
    `test_speakers`' recordings, a Series indexed by test speaker.

    The training is `lesson.run(config, split='speaker', test_speaker=test_speakers[0],
    train_speakers=...)`, checkpointed at checkpoint_for(that config); when the training
    speakers are all the others, train_speakers stays empty so that the training is the
    leave-one-speaker-out fold of `lesson.speaker_runs` (one checkpoint for both).
    attrs['train_seconds']: the training's time (`train_seconds`), reloaded or not.
    """
    train, test = [str(s) for s in train_speakers], [str(s) for s in test_speakers]
    known = set(data.speakers)
    unknown = sorted((set(train) | set(test)) - known)
    if unknown:
        raise ValueError(f"speakers {unknown} have no recordings in this data; its speakers "
                         f"are {sorted(known)} (check --root and the spelling)")
    if not train or not test:
        raise ValueError(f"need at least one training and one test speaker, got train={train},"
                         f" test={test}")
    if set(train) & set(test):
        raise ValueError(f"speakers {sorted(set(train) & set(test))} are both trained on and "
                         "tested: a held-out voice must be absent from training")
    if config.adapt > 0:
        raise ValueError("the held-out measure is strict (a voice never heard): set adapt=0; "
                         "the adaptation hears the test recordings")
    others = sorted(known - {test[0]})
    trained = replace(config, split="speaker", test_speaker=test[0], eval="test",
                      train_speakers=() if sorted(train) == others else tuple(train))
    model, _ = lesson.run(trained, checkpoint=checkpoint_for(trained), data=data,
                          verbose=verbose)
    accuracies = {}
    for speaker in test:
        parts = lesson.prepare(replace(trained, test_speaker=speaker), data)
        batches = Batches([parts["x_eval"]], parts["y_eval"], 256)
        accuracies[speaker] = evaluate(model, batches)["acc"]
    series = pd.Series(accuracies, name="accuracy").rename_axis("speaker")
    series.attrs["train_seconds"] = train_seconds(trained, checkpoint_for(trained))
    return series


def train_seconds(config: AudioConfig, checkpoint: str | Path | None) -> float:
    """Return the seconds the training of `config` took (every ensemble member's epochs,
    read from their checkpoints, so a reloaded training counts what it once cost; NaN
    without a checkpoint)."""
    if checkpoint is None:
        return float("nan")
    members = [replace(config, ensemble=1, seed=config.seed + k) for k in range(config.ensemble)]
    total = 0.0
    for member in members:
        path = lesson.sibling(checkpoint, member) if config.ensemble > 1 else Path(checkpoint)
        if path is None or not path.is_file():
            return float("nan")
        total += sum(row.get("seconds", 0.0) for row in load_checkpoint(path)["history"])
    return total


def leave_one_out(
    config: AudioConfig, data: AudioData,
    checkpoint_for: Callable[[AudioConfig], Path | None], verbose: bool = False,
) -> pd.Series:
    """Return the strict accuracy (fraction) on each speaker of `data` when all the others
    train (`heldout_accuracies` per fold), a Series indexed by speaker; attrs['train_seconds']:
    the folds' total training time."""
    speakers = data.speakers
    folds = [heldout_accuracies(config, data, [s for s in speakers if s != held], [held],
                                checkpoint_for, verbose=verbose) for held in speakers]
    series = pd.concat(folds).rename("accuracy")
    series.attrs["train_seconds"] = float(sum(f.attrs["train_seconds"] for f in folds))
    return series
