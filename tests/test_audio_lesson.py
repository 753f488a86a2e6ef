"""Notebook 02's lesson: config, splits with validation, normalization, augmentation,
training on the audio fixture, leave-one-speaker-out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch

from coursekit.analysis import accuracy_band
from coursekit.audio import lesson
from coursekit.audio import transforms as tf
from coursekit.audio.data import MelConfig, shared_speakers
from coursekit.audio.fixtures import AUDIO_SPEAKERS
from coursekit.audio.lesson import AudioConfig
from coursekit.audio.models import SpeakerAdversarial
from coursekit.checkpoint import config_name, load_checkpoint, save_checkpoint
from coursekit.train import History, predict

SPEAKERS = sorted(AUDIO_SPEAKERS)
QUICK = AudioConfig(epochs=6, batch_size=16, lr=3e-3, channels=(8, 16), hidden=32,
                    normalize="utterance", device="cpu", label="quick")


@pytest.fixture(scope="module")
def data(audio_data: lesson.AudioData) -> lesson.AudioData:
    """The conftest's AudioData of the FSDD fixture."""
    return audio_data


def test_config_checks_its_fields():
    assert AudioConfig(channels=[8, 16]).channels == (8, 16)
    for bad, match in (({"split": "kfold"}, "split"), ({"normalize": "none"}, "normalize"),
                       ({"head": "max"}, "head"), ({"split": "speaker"}, "test_speaker"),
                       ({"freq_warp": 0.6}, "freq_warp"), ({"epochs": 0}, "epochs"),
                       ({"time_stretch": 0.5}, "time_stretch"), ({"lifter": -1}, "lifter"),
                       ({"min_hz": 500, "max_hz": 400}, "max_hz"),
                       ({"schedule": "step"}, "schedule"), ({"vtln": 0.5}, "vtln"),
                       ({"speeds": [1.0]}, "speeds"), ({"speeds": [3]}, "speeds"),
                       ({"pitches": [0]}, "pitches"), ({"pitches": [13]}, "pitches"),
                       ({"noises": [80]}, "noises"), ({"adversary": -1}, "adversary"),
                       ({"train_speakers": ["alba"]}, "train_speakers"),
                       ({"split": "speaker", "test_speaker": "alba",
                         "train_speakers": ["alba", "bruno"]}, "train_speakers")):
        with pytest.raises(ValueError, match=match):
            AudioConfig(**bad)


def test_config_name_changes_with_what_is_learned_only():
    base = AudioConfig()
    assert base.name.startswith("audio_") and base.name == AudioConfig().name
    # The label names a training for people, not its checkpoint: two labels, one training.
    assert dataclasses.replace(base, label="final").name == base.name
    for change in ({"normalize": "utterance"}, {"test_speaker": "x", "split": "speaker"},
                   {"freq_mask": 4}, {"eval": "validation"}):
        assert dataclasses.replace(base, **change).name != base.name, change
    assert dataclasses.replace(base, device="cpu").name == base.name
    assert dataclasses.replace(base, ensemble=3).name != base.name
    assert dataclasses.replace(base, adapt=0.7).name != base.name
    assert dataclasses.replace(base, vtln=0.1).name != base.name
    assert dataclasses.replace(base, speeds=(0.9, 1.1)).name != base.name
    assert dataclasses.replace(base, pitches=[2]).name != base.name
    assert dataclasses.replace(base, noises=[10]).name != base.name
    assert dataclasses.replace(base, adversary=0.3).name != base.name
    assert AudioConfig(speeds=[0.9]).speeds == (0.9,)  # papermill gives lists
    fold = dataclasses.replace(base, split="speaker", test_speaker="x")
    assert dataclasses.replace(fold, train_speakers=("y",)).name != fold.name
    # A training's name is the one it had before the fields of NEW_FIELDS existed.
    before = {k: v for k, v in dataclasses.asdict(base).items()
              if k not in ("ensemble", "adapt", "train_speakers", "vtln", "speeds", "pitches",
                                   "noises", "adversary")}
    assert base.name == config_name("audio", before)


def test_band_slice_keeps_the_bands_inside_the_limits():
    mel = MelConfig(n_mels=40)
    assert lesson.band_slice(AudioConfig(), mel) == slice(0, 40)
    bands = lesson.band_slice(AudioConfig(min_hz=100, max_hz=3400), mel)
    centres = lesson.mel_frequencies(mel)
    assert centres[bands].min() >= 100 and centres[bands].max() <= 3400
    assert centres[bands.start - 1] < 100 and centres[bands.stop] > 3400
    with pytest.raises(ValueError, match="mel bands"):
        lesson.band_slice(AudioConfig(min_hz=1000, max_hz=1100), mel)


def test_validation_speaker_is_a_training_speaker():
    assert lesson.validation_speaker(SPEAKERS, "alba") == "bruno"
    assert lesson.validation_speaker(SPEAKERS, "dmitri") == "alba"  # cyclic
    with pytest.raises(ValueError, match=">= 3 speakers"):
        lesson.validation_speaker(["a", "b"], "a")


def test_split_rows(data):
    table = data.table
    config = AudioConfig(split="speaker", test_speaker="chloe")
    train, test = lesson.split_rows(table, config)
    assert set(table["speaker"].iloc[test]) == {"chloe"}
    assert shared_speakers(table, train, test) == []
    fit_rows, val_rows = lesson.split_rows(table, dataclasses.replace(config, eval="validation"))
    assert set(table["speaker"].iloc[val_rows]) == {"dmitri"}
    assert set(table["speaker"].iloc[fit_rows]) == {"alba", "bruno"}  # the test voice is out
    named = dataclasses.replace(config, train_speakers=["bruno", "alba"])
    train, test = lesson.split_rows(table, named)
    assert set(table["speaker"].iloc[train]) == {"alba", "bruno"}
    assert set(table["speaker"].iloc[test]) == {"chloe"}
    fit_rows, val_rows = lesson.split_rows(table, dataclasses.replace(named, eval="validation"))
    # validation: the training speaker after the test one among the named ones (cyclic)
    assert set(table["speaker"].iloc[val_rows]) == {"alba"}
    assert set(table["speaker"].iloc[fit_rows]) == {"bruno"}
    with pytest.raises(ValueError, match="no recordings"):
        lesson.split_rows(table, dataclasses.replace(config, train_speakers=["zoe"]))
    train, test = lesson.split_rows(table, AudioConfig())
    fit_rows, val_rows = lesson.split_rows(table, AudioConfig(eval="validation"))
    assert set(fit_rows) | set(val_rows) == set(train) and not set(val_rows) & set(test)


def test_frame_lengths_count_the_real_frames(data):
    lengths = data.lengths
    assert lengths.shape == (len(data.table),) and lengths.dtype == torch.int64
    expected = (data.table["duration"] * 8000).round().clip(upper=8000) // 64 + 1
    assert lengths.tolist() == expected.astype(int).tolist()
    # Past its real frames (and the half window that still overlaps them), a spectrogram
    # holds the padding: its floor value only.
    i = int(lengths.argmin())
    half_window = data.mel.n_fft // 2 // data.mel.hop_length
    assert (data.x[i, :, lengths[i] + half_window :] == data.x[i].min()).all()
    assert (data.x[i, :, : lengths[i]] > data.x[i].min()).any(dim=0).all()
    with pytest.raises(ValueError, match="align='start'"):
        lesson.frame_lengths(data.table, MelConfig(align="center"))


def test_global_normalization_uses_training_statistics(data):
    x, lengths = data.x[:20], data.lengths[:20]
    norm = lesson.normalizer(AudioConfig(normalize="global"), x)
    glob = norm(x, lengths)
    assert abs(glob.mean()) < 1e-4 and abs(glob.std() - 1) < 1e-4
    assert abs(norm(data.x[20:40], data.lengths[20:40]).mean()) > 1e-3


def test_utterance_normalization_ignores_the_padding():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 12)
    lengths = torch.tensor([4, 12, 7])
    channel = torch.linspace(-20, 20, 5)[None, :, None]  # a microphone's coloration, in dB
    out = tf.utterance_normalize(x + channel, lengths)
    mask = tf.frame_mask(lengths, 12)
    assert mask.shape == (3, 1, 12) and mask.sum().item() == 23
    for i, n in enumerate(lengths.tolist()):
        real = out[i, :, :n]
        assert real.mean(dim=1).abs().max() < 1e-5  # mean 0 per band over the real frames
        assert abs(real.pow(2).mean().sqrt().item() - 1) < 1e-4
        assert (out[i, :, n:] == real.min()).all()  # padding: the recording's minimum
    assert torch.allclose(out, tf.utterance_normalize(x, lengths), atol=1e-5)
    norm = lesson.normalizer(AudioConfig(normalize="utterance"), x)
    assert torch.equal(norm(x, lengths), tf.utterance_normalize(x, lengths))


def test_augmenter(data):
    assert lesson.augmenter(QUICK, data.mel) is None
    config = dataclasses.replace(QUICK, time_shift=5, freq_warp=0.1, freq_mask=4, time_mask=8,
                                 time_stretch=0.1)
    augment = lesson.augmenter(config, data.mel)
    x = torch.randn(6, 1, 40, 126)
    torch.manual_seed(3)
    out = augment(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert (out == 0).any()  # SpecAugment's masks
    # Every draw comes from torch's global generator (the one checkpoints save).
    torch.manual_seed(3)
    assert torch.equal(augment(x), out)


def test_batches():
    x, z, y = torch.arange(10.0)[:, None], torch.arange(10.0), torch.arange(10)
    batches = lesson.Batches([x], y, 4, shuffle=True)
    assert len(batches) == 3
    torch.manual_seed(1)
    seen = torch.cat([b for _, b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    torch.manual_seed(1)  # the order comes from torch's global generator
    assert torch.cat([b for _, b in batches]).tolist() == seen.tolist()
    pairs = list(lesson.Batches([x, z], y, 4, transforms=[None, lambda t: -t]))
    (xa, za), yb = pairs[0]
    assert torch.equal(xa[:, 0], yb.float()) and torch.equal(za, -yb.float())
    with pytest.raises(ValueError, match="lengths"):
        lesson.Batches([x[:5]], y, 4)


def test_run_learns_the_fixture_and_reloads_its_checkpoint(data, tmp_path: Path, one_thread):
    checkpoint = tmp_path / "quick.pt"
    model, history = lesson.run(QUICK, checkpoint=checkpoint, data=data, verbose=False)
    assert history["train_loss"][-1] < 0.7 * history["train_loss"][0]
    # chance is 0.1: 9 or more of the 32 test files right by chance has probability < 0.5 %
    assert history["val_acc"][-1] > 0.25
    again, reloaded = lesson.run(QUICK, checkpoint=checkpoint, data=data, verbose=False)
    assert reloaded.rows == history.rows
    parts = lesson.prepare(QUICK, data)
    logits = predict(again, [parts["x_eval"]])
    assert lesson.accuracy_of(logits, parts["y_eval"]) == pytest.approx(history["val_acc"][-1])


def test_ensemble_reuses_the_single_network_and_averages_probabilities(data, tmp_path: Path,
                                                                       one_thread):
    config = dataclasses.replace(QUICK, epochs=3, label="ens")
    single, single_history = lesson.run(config, checkpoint=tmp_path / f"{config.name}.pt",
                                        data=data, verbose=False)
    trio = dataclasses.replace(config, ensemble=3, label="trio")  # another label, same network 0
    assert trio.name != config.name
    model, history = lesson.run(trio, checkpoint=tmp_path / f"{trio.name}.pt", data=data,
                                verbose=False)
    members = [dataclasses.replace(config, seed=k).name for k in range(3)]
    assert sorted(p.stem for p in tmp_path.glob("*.pt")) == sorted(members)  # no extra file
    assert torch.equal(model.nets[0].classifier.weight, single.classifier.weight)  # reused
    assert not torch.equal(model.nets[1].classifier.weight, single.classifier.weight)
    parts = lesson.prepare(config, data)
    probs = torch.stack([predict(net, [parts["x_eval"]]).softmax(1) for net in model.nets])
    logits = predict(model, [parts["x_eval"]])
    assert torch.allclose(logits.exp(), probs.mean(0), atol=1e-6)
    assert len(history) == 1 and history.stopped_reason == "ensemble of 3"
    assert history["val_acc"][-1] == pytest.approx(lesson.accuracy_of(logits, parts["y_eval"]))
    assert history["val_acc"][-1] > 0.2  # chance is 0.1
    with pytest.raises(ValueError, match="ensemble"):
        AudioConfig(ensemble=0)


def test_adaptation_learns_the_teachers_confident_labels_without_reading_eval_labels(
        data, tmp_path: Path, one_thread):
    config = dataclasses.replace(QUICK, split="speaker", test_speaker=SPEAKERS[0], label="ad")
    adapted = dataclasses.replace(config, adapt=0.5)
    x, digits = lesson.pseudo_labels(adapted, data, checkpoint=None, retrain=False,
                                     verbose=False)
    parts = lesson.prepare(config, data)
    teacher, _ = lesson.run(config, checkpoint=None, data=data, verbose=False)
    probs = predict(teacher, [parts["x_eval"]]).softmax(1)
    keep = probs.max(1).values >= 0.5
    assert 0 < len(digits) == int(keep.sum()) < len(parts["y_eval"])
    assert torch.equal(digits, probs.argmax(1)[keep]) and torch.equal(x, parts["x_eval"][keep])
    assert (digits == parts["y_eval"][keep]).float().mean() > 0.3  # chance is 0.1
    # The evaluation rows' labels changed: the same pseudo-labels.
    shuffled = data.table.copy()
    rows = parts["eval_rows"]
    shuffled.loc[shuffled.index[rows], "digit"] = (shuffled["digit"].to_numpy()[rows] + 1) % 10
    relabelled = lesson.AudioData(shuffled, data.x, data.mel)
    _, again = lesson.pseudo_labels(adapted, relabelled, checkpoint=None, retrain=False,
                                    verbose=False)
    assert torch.equal(again, digits)
    # Through run: the teacher's checkpoint is the plain config's, then the student trains.
    lesson.run(config, checkpoint=tmp_path / f"{config.name}.pt", data=data, verbose=False)
    trained = (tmp_path / f"{config.name}.pt").stat().st_mtime_ns
    # Under another label the teacher is still the plain config's network: reloaded.
    adapted = dataclasses.replace(adapted, label="adapt")
    model, history = lesson.run(adapted, checkpoint=tmp_path / f"{adapted.name}.pt", data=data,
                                verbose=False)
    assert sorted(p.stem for p in tmp_path.glob("*.pt")) == sorted([config.name, adapted.name])
    assert (tmp_path / f"{config.name}.pt").stat().st_mtime_ns == trained
    assert history["val_acc"][-1] > 0.3
    with pytest.raises(ValueError, match="adapt"):
        AudioConfig(adapt=1.0)


def test_vtln_warps_training_and_evaluation_recordings_alike(data):
    config = dataclasses.replace(QUICK, split="speaker", test_speaker="chloe", trim_db=30)
    plain, warped = (lesson.prepare(dataclasses.replace(config, vtln=v), data)
                     for v in (0.0, 0.15))
    for key in ("x_train", "x_eval"):
        assert warped[key].shape == plain[key].shape
        # the fixture's voices differ by formant scale: some recordings get a factor != 1
        assert not torch.allclose(warped[key], plain[key])
    again = warped["norm"](data.x[warped["eval_rows"]], data.lengths[warped["eval_rows"]])
    assert torch.equal(again, warped["x_eval"])  # a recording's factor depends on it alone


def test_waveform_perturbations_train_on_every_version(data, one_thread):
    config = dataclasses.replace(QUICK, split="speaker", test_speaker="chloe", trim_db=30,
                                 fill_time=True, speeds=(0.9, 1.1), pitches=(2,), noises=(10,))
    parts = lesson.prepare(config, data)
    versions = lesson.perturbed_inputs(config, data, parts)
    assert versions.shape == (len(parts["y_train"]), 5, *parts["x_train"].shape[1:])
    assert torch.equal(versions[:, 0], parts["x_train"])  # the original comes first
    for k in (1, 2, 3, 4):
        assert not torch.allclose(versions[:, k], versions[:, 0], atol=0.1)
    assert lesson.perturbed_inputs(QUICK, data, lesson.prepare(QUICK, data)) is None
    torch.manual_seed(0)
    batch = lesson.augmenter(config, data.mel)(versions[:8])
    assert batch.shape == (8, *parts["x_train"].shape[1:])
    _, history = lesson.run(config, checkpoint=None, data=data, verbose=False)
    assert history["train_loss"][-1] < 0.7 * history["train_loss"][0]
    # chance is 0.1; the held-out voice has 40 files: 12 or more right by chance: p < 1 %
    assert history["val_acc"][-1] > 0.3
    # with adaptation, a pseudo-labelled recording is heard as it is, in every version
    pseudo = (parts["x_eval"][:8], parts["y_eval"][:8])
    _, adapted = lesson.run(dataclasses.replace(config, epochs=1), checkpoint=None, data=data,
                            verbose=False, extra=pseudo)
    assert adapted.rows[-1]["train_loss"] < history["train_loss"][0] + 1  # it trained, finite


def test_speaker_adversarial_training_learns_the_digits(data, one_thread):
    config = dataclasses.replace(QUICK, split="speaker", test_speaker="chloe", adversary=0.3)
    model, history = lesson.run(config, checkpoint=None, data=data, verbose=False)
    assert isinstance(model, SpeakerAdversarial)
    assert history["train_loss"][-1] < 0.7 * history["train_loss"][0]
    assert history["val_acc"][-1] > 0.3  # 12 of 40 or more by chance: p < 1 %
    # the speaker classifier's loss on the 3 training voices, logged each epoch
    assert all(0 < p < 5 for p in history["train_penalty"])
    # with adaptation, the pseudo-labelled voice is one more speaker to hide
    parts = lesson.prepare(config, data)
    pseudo = (parts["x_eval"][:8], parts["y_eval"][:8])
    adapted, _ = lesson.run(dataclasses.replace(config, epochs=1), checkpoint=None, data=data,
                            verbose=False, extra=pseudo)
    assert adapted.speaker[-1].out_features == 4


def test_band_limits_lifter_and_cosine_schedule_in_a_run(data, one_thread):
    config = dataclasses.replace(QUICK, epochs=3, min_hz=100, max_hz=3400, lifter=12,
                                 schedule="cosine", freq_warp=0.1, fill_time=True, deltas=True)
    model, history = lesson.run(config, checkpoint=None, data=data, verbose=False)
    bands = lesson.band_slice(config, data.mel)
    parts = lesson.prepare(config, data)
    assert parts["x_train"].shape[1:] == (2, bands.stop - bands.start, data.mel.n_frames)
    assert bands.stop - bands.start < data.mel.n_mels
    assert history["lr"] == pytest.approx([3e-3, 2.25e-3, 0.75e-3])  # cosine over 3 epochs
    assert predict(model, [parts["x_eval"]]).shape == (len(parts["y_eval"]), 10)


def test_speaker_runs_hold_out_each_speaker(data, tmp_path: Path, one_thread):
    config = dataclasses.replace(QUICK, epochs=2, label="loso")
    names = []

    def checkpoint_for(fold):
        names.append(fold.name)
        return tmp_path / f"{fold.name}.pt"

    table, histories = lesson.speaker_runs(config, data, checkpoint_for)
    assert list(table.index) == SPEAKERS and len(set(names)) == 4
    assert table["eval_acc"].tolist() == [h["val_acc"][-1] for h in histories.values()]
    assert (table["n_eval"] == 40).all() and (table["n_train"] == 120).all()
    assert table["eval_acc"].between(0, 1).all()
    assert table["train_eval_acc"].tolist() == [h["train_eval_acc"][-1]
                                                for h in histories.values()]
    assert all((tmp_path / f"{n}.pt").is_file() for n in names)


def test_speaker_runs_say_which_fold_runs(data, tmp_path: Path, one_thread, capsys):
    config = dataclasses.replace(QUICK, epochs=1, label="loso")
    checkpoint_for = lambda fold: tmp_path / f"{fold.name}.pt"  # noqa: E731
    lesson.speaker_runs(config, data, checkpoint_for)
    assert "pli" not in capsys.readouterr().out  # silent unless asked
    lesson.speaker_runs(dataclasses.replace(config, eval="validation"), data, checkpoint_for,
                        verbose=True)
    out = capsys.readouterr().out
    assert f"pli 1/4 : locuteur {SPEAKERS[0]} exclu (validation sur {SPEAKERS[1]})" in out
    assert f"pli 4/4 : locuteur {SPEAKERS[3]} exclu (validation sur {SPEAKERS[0]})" in out


def test_profiles_keep_the_full_study_and_shrink_the_session():
    assert lesson.PROFILES["complet"] == {"epochs": AudioConfig().epochs, "complement": True,
                                          "recipe": lesson.RECIPE}
    quick = lesson.PROFILES["séance"]
    assert quick["epochs"] < AudioConfig().epochs and not quick["complement"]
    # the session's recipe is the chosen one, with one network instead of an ensemble
    assert quick["recipe"] == {**lesson.RECIPE, "ensemble": 1}
    assert lesson.RECIPE["ensemble"] == 3
    AudioConfig(**quick["recipe"])  # valid fields


def test_training_accuracy_is_re_measured_in_eval_mode_without_augmentation(data, one_thread):
    config = dataclasses.replace(QUICK, epochs=3, dropout=0.5, time_shift=10, freq_warp=0.1,
                                 label="eval")
    model, history = lesson.run(config, checkpoint=None, data=data, verbose=False)
    # During the epoch, dropout and augmentation are on: another number.
    assert all(a != b for a, b in zip(history["train_eval_acc"], history["train_acc"],
                                      strict=True))
    parts = lesson.prepare(config, data)
    logits = predict(model, [parts["x_train"]])  # eval mode, the plain training inputs
    assert history["train_eval_acc"][-1] == pytest.approx(
        lesson.accuracy_of(logits, parts["y_train"]), abs=1e-6)
    loss = torch.nn.functional.cross_entropy(logits, parts["y_train"]).item()
    assert history["train_eval_loss"][-1] == pytest.approx(loss, rel=1e-5)


def test_a_checkpoint_without_eval_mode_training_accuracy_is_trained_again(data, tmp_path,
                                                                          one_thread):
    config = dataclasses.replace(QUICK, epochs=1, label="old")
    checkpoint = tmp_path / "old.pt"
    lesson.run(config, checkpoint=checkpoint, data=data, verbose=False)
    assert not lesson.lacks_train_eval(checkpoint) and not lesson.lacks_train_eval(None)
    state = load_checkpoint(checkpoint)  # as written before train_eval_* existed
    state["history"] = [{k: v for k, v in row.items() if not k.startswith("train_eval")}
                        for row in state["history"]]
    save_checkpoint(state, checkpoint)
    assert lesson.lacks_train_eval(checkpoint)
    _, history = lesson.run(config, checkpoint=checkpoint, data=data, verbose=False)
    assert "train_eval_acc" in history.columns and not lesson.lacks_train_eval(checkpoint)


def test_resumed_training_equals_an_unbroken_one_with_augmentation(data, tmp_path, one_thread):
    config = dataclasses.replace(QUICK, epochs=4, time_shift=8, freq_warp=0.1, time_stretch=0.1,
                                 freq_mask=4, label="resume")
    unbroken_model, unbroken = lesson.run(config, checkpoint=None, data=data, verbose=False)
    checkpoint = tmp_path / "resume.pt"
    # "Killed" after epoch 2, then continued in a fresh call under another global seed.
    lesson.run(dataclasses.replace(config, epochs=2), checkpoint=checkpoint, data=data,
               verbose=False)
    torch.manual_seed(12345)
    model, resumed = lesson.run(config, checkpoint=checkpoint, data=data, verbose=False)

    def without_time(history):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history.rows]

    assert len(resumed) == 4 and without_time(resumed) == without_time(unbroken)
    for key, value in unbroken_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_gap_verdict_uses_every_fold_and_the_eval_mode_training_accuracy():
    random = History([{"epoch": 1, "train_acc": 0.5, "train_eval_acc": 1.0, "val_acc": 0.98}])
    folds = pd.DataFrame({"n_eval": [500, 500, 500], "eval_acc": [0.6, 0.9, 0.9],
                          "train_eval_acc": [1.0, 1.0, 1.0], "train_acc": [0.5, 0.5, 0.5]},
                         index=["a", "b", "c"])
    gaps = lesson.gap_verdict(random, 400, folds)
    assert gaps["random"] == pytest.approx(0.02)
    assert gaps["folds"].tolist() == pytest.approx([0.4, 0.1, 0.1])
    assert gaps["delta"] == pytest.approx(0.2 - 0.02)  # the mean fold, not the worst one
    band = accuracy_band(0.8, 0.98, 400)  # the smaller file count: 400 random-split files
    assert gaps["band"] == pytest.approx(band) and gaps["verdict"] == "mieux"
    close = folds.assign(eval_acc=[0.97, 0.97, 0.97])
    assert lesson.gap_verdict(random, 400, close)["verdict"] == "indiscernable"


def test_smoke_warned_says_the_data_are_synthetic(monkeypatch):
    monkeypatch.delenv("COURSEKIT_SMOKE", raising=False)
    assert lesson.smoke_warned("Verdict : x.") == "Verdict : x."
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    warned = lesson.smoke_warned("Verdict : x.")
    assert warned.startswith("Verdict : x. ") and "données synthétiques" in warned


def test_batches_fingerprint_their_content_so_checkpoints_follow_the_data():
    from coursekit.identity import data_identity

    x, y = torch.randn(20, 1, 8, 8), torch.arange(20) % 2
    same = data_identity(lesson.Batches([x.clone()], y.clone(), 4))
    assert data_identity(lesson.Batches([x], y, 4)) == same
    assert data_identity(lesson.Batches([x + 1], y, 4)) != same  # other recordings
    assert data_identity(lesson.Batches([x], 1 - y, 4)) != same  # other labels
    assert data_identity(lesson.Batches([x[:10]], y[:10], 4)) != same  # another split
    assert data_identity(lesson.Batches([x], y, 4, shuffle=True)) != same
