"""Notebook 02's goal measure: one training on named speakers, accuracy on held-out ones;
the probe's --train-speakers / --test-speakers on the audio fixture."""

from __future__ import annotations

import dataclasses
import re
import runpy
import sys
from pathlib import Path

import pytest

from coursekit.audio import lesson, voices
from coursekit.audio.lesson import AudioConfig
from coursekit.checkpoint import load_checkpoint
from coursekit.train import predict

QUICK = AudioConfig(epochs=6, batch_size=16, lr=3e-3, channels=(8, 16), hidden=32,
                    normalize="utterance", device="cpu", label="quick")
PROBE = Path(__file__).parents[1] / "benchmarks" / "audio_speaker_probe.py"


@pytest.fixture(scope="module")
def data(audio_data: lesson.AudioData) -> lesson.AudioData:
    """The conftest's AudioData of the FSDD fixture."""
    return audio_data


def test_heldout_accuracies_train_on_the_named_speakers_only(data, tmp_path, one_thread):
    trained = []

    def checkpoint_for(config):
        trained.append(config)
        return tmp_path / f"{config.name}.pt"

    accuracies = voices.heldout_accuracies(QUICK, data, ["alba", "bruno"], ["chloe", "dmitri"],
                                           checkpoint_for)
    assert list(accuracies.index) == ["chloe", "dmitri"]
    assert len({c.name for c in trained}) == 1  # one training for every held-out speaker
    train_rows, _ = lesson.split_rows(data.table, trained[0])
    assert set(data.table["speaker"].iloc[train_rows]) == {"alba", "bruno"}
    # chance is 0.1: 20 or more right of the 80 held-out files by chance has p < 0.1 %
    assert accuracies.mean() > 0.25
    saved = load_checkpoint(tmp_path / f"{trained[0].name}.pt")["history"]
    assert accuracies.attrs["train_seconds"] == pytest.approx(sum(r["seconds"] for r in saved))
    assert accuracies.attrs["train_seconds"] > 0
    # each speaker's accuracy is the trained network's on that speaker's files alone
    model, _ = lesson.run(trained[0], checkpoint=checkpoint_for(trained[0]), data=data,
                          verbose=False)
    parts = lesson.prepare(dataclasses.replace(trained[0], test_speaker="dmitri"), data)
    logits = predict(model, [parts["x_eval"]])
    assert accuracies["dmitri"] == pytest.approx(lesson.accuracy_of(logits, parts["y_eval"]))


def test_all_other_speakers_train_the_leave_one_out_fold(data):
    names = []

    def checkpoint_for(config):
        names.append(config.name)
        raise RuntimeError("stop before training")

    with pytest.raises(RuntimeError):
        voices.heldout_accuracies(QUICK, data, ["alba", "bruno", "dmitri"], ["chloe"],
                                  checkpoint_for)
    fold = dataclasses.replace(QUICK, split="speaker", test_speaker="chloe")
    assert names == [fold.name]  # the checkpoint of lesson.speaker_runs' fold


def test_heldout_accuracies_refuse_what_is_not_a_voice_never_heard(data):
    never = lambda config: None  # noqa: E731
    for train, test, match in ((["alba"], ["zoe"], "no recordings"),
                               (["alba", "chloe"], ["chloe"], "both trained on and tested"),
                               ([], ["chloe"], "at least one")):
        with pytest.raises(ValueError, match=match):
            voices.heldout_accuracies(QUICK, data, train, test, never)
    with pytest.raises(ValueError, match="adapt=0"):
        voices.heldout_accuracies(dataclasses.replace(QUICK, adapt=0.7), data, ["alba"],
                                  ["chloe"], never)


def test_probe_prints_the_mean_heldout_accuracy_last(fixture_data, tmp_path, monkeypatch,
                                                     capsys, one_thread):
    changes = '{"epochs": 2, "channels": [8, 16], "hidden": 32}'
    monkeypatch.setattr(sys, "argv", [
        str(PROBE), "--root", str(fixture_data), "--changes", changes, "--threads", "1",
        "--train-speakers", "alba,bruno", "--test-speakers", "chloe,dmitri",
        "--out", str(tmp_path / "probe")])  # fmt: skip
    runpy.run_path(str(PROBE), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"accuracy: \d+\.\d\d", lines[-1])
    per_speaker = {line.split(": ")[0]: float(line.split(": ")[1]) for line in lines
                   if line.startswith(("chloe:", "dmitri:"))}
    assert set(per_speaker) == {"chloe", "dmitri"}
    mean = sum(per_speaker.values()) / 2
    assert float(lines[-1].split(": ")[1]) == pytest.approx(mean, abs=0.006)
    assert (tmp_path / "probe" / "results.jsonl").is_file()
