"""Notebook 02's multimodal part: image pairing, noisy recordings, the fusion experiment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit.audio import fusion, lesson
from coursekit.audio.data import load_waveforms, logmel
from coursekit.audio.fusion import FusionConfig
from coursekit.audio.lesson import AudioConfig

QUICK = AudioConfig(epochs=6, batch_size=16, lr=3e-3, channels=(8, 16), hidden=32,
                    normalize="utterance", device="cpu", label="quick")


@pytest.fixture(scope="module")
def data(audio_data: lesson.AudioData) -> lesson.AudioData:
    """The conftest's AudioData of the FSDD fixture."""
    return audio_data


def test_pair_images_matches_digits_reproducibly():
    image_labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    digits = np.array([0, 0, 2, 1, 0, 0, 0])
    pick = fusion.pair_images(digits, image_labels, seed=3)
    assert np.array_equal(image_labels[pick], digits)
    assert len(set(pick[digits == 0])) == 4  # four images of 0: none reused among 5 zeros...
    assert np.array_equal(pick, fusion.pair_images(digits, image_labels, seed=3))
    assert not np.array_equal(pick, fusion.pair_images(digits, image_labels, seed=4))
    with pytest.raises(ValueError, match="digit 3"):
        fusion.pair_images(np.array([3]), image_labels)


def test_noisy_recordings_have_the_asked_snr(data):
    table, mel = data.table.iloc[:8], data.mel
    waves = load_waveforms(table, mel.sample_rate, mel.n_samples, mel.align)
    lengths = torch.as_tensor(
        np.minimum(np.round(table["duration"].to_numpy() * mel.sample_rate), mel.n_samples)
    ).long()
    assert (lengths < mel.n_samples).any()  # some recordings are padded
    for snr_db in (-5.0, 20.0):
        noise = fusion.add_noise(waves, lengths, snr_db) - waves
        for wave, extra, n in zip(waves, noise, lengths.tolist(), strict=True):
            measured = 10 * np.log10(wave[:n].pow(2).mean() / extra[:n].pow(2).mean())
            assert measured == pytest.approx(snr_db, abs=0.3)
            assert (extra[n:] == 0).all()  # the padding stays silent
    # The features the notebook uses are those of exactly these noisy waves.
    noisy = fusion.noisy_recordings(table, mel, snr_db=-5.0)
    assert torch.equal(noisy, logmel(fusion.add_noise(waves, lengths, -5.0), mel))
    clean = logmel(waves, mel)
    mild = fusion.noisy_recordings(table, mel, snr_db=20)
    assert (mild - clean).abs().mean() < (noisy - clean).abs().mean()


def test_fusion_experiment_on_fixtures(data, fixture_data: Path, one_thread, capsys):
    audio = dataclasses.replace(QUICK, split="speaker", test_speaker="alba", epochs=4)
    config = FusionConfig(audio=audio, image_epochs=3, fusion_epochs=4)
    checkpoints = {"audio": None, "image": None, "fusion": None}
    models, sets = fusion.train_fusion_models(config, data, checkpoints=checkpoints,
                                              data_root=fixture_data, verbose=True)
    out = capsys.readouterr().out
    assert all(f"réseau {k}/3 : " in out for k in (1, 2, 3))  # a counter before each training
    assert len(sets["x_image_train"]) == 120 and len(sets["x_image_test"]) == 40
    predictions = fusion.fusion_predictions(models, sets)
    table = fusion.fusion_table(predictions, sets["y_eval"])
    assert list(table.columns) == ["propre", "image bruitée", "son bruité"]
    assert table.shape == (5, 3) and ((table >= 0) & (table <= 1)).all().all()
    assert table.loc["image seule", "propre"] > 0.3  # chance is 0.1
    assert table.loc["fusion des caractéristiques", "propre"] > 0.3  # the fusion net learned
    # Corrupting the image leaves the audio-only model untouched, and vice versa.
    assert table.loc["son seul", "image bruitée"] == table.loc["son seul", "propre"]
    assert table.loc["image seule", "son bruité"] == table.loc["image seule", "propre"]
    fused = "fusion des caractéristiques"
    counts = fusion.errors_fixed(predictions["propre"], sets["y_eval"], fused)
    assert counts["erreurs des deux modèles seuls"] <= min(counts["erreurs image seule"],
                                                           counts["erreurs son seul"])
    confusions = fusion.fusion_confusions(predictions["propre"], sets["y_eval"])
    assert all(c.sum() == 40 for c in confusions.values())
    assert config.name("image") != config.name("fusion")
    with pytest.raises(ValueError, match="split='speaker'"):
        FusionConfig(audio=QUICK)
