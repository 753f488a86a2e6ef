"""Notebook 02's multimodal part: image pairing, noisy recordings, the fusion experiment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit.analysis import accuracy_band
from coursekit.audio import fusion, lesson
from coursekit.audio.fusion import FusionConfig
from coursekit.audio.lesson import AudioConfig
from coursekit.french import fr_int, fr_pct

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


def test_fusion_experiment_on_fixtures(data, fixture_data: Path, one_thread, capsys):
    audio = dataclasses.replace(QUICK, split="speaker", test_speaker="alba", epochs=4)
    config = FusionConfig(audio=audio, image_epochs=3, image_batch_size=32, fusion_epochs=4)
    checkpoints = {"audio": None, "image": None, "fusion": None}
    models, sets = fusion.train_fusion_models(config, data, checkpoints=checkpoints,
                                              data_root=fixture_data, verbose=True)
    out = capsys.readouterr().out
    assert all(f"réseau {k}/3 : " in out for k in (1, 2, 3))  # a counter before each training
    assert len(sets["x_image_train"]) == 120 and len(sets["x_image_test"]) == 40
    # The image CNN learns the whole MNIST training set, of which the pairs are a part.
    mnist_x, mnist_y = fusion.mnist_tensors(True, fixture_data)
    assert torch.equal(sets["mnist_train"], mnist_x) and len(mnist_y) > 120
    assert f"les {fr_int(len(mnist_y))} images d'apprentissage de MNIST" in out
    # The feature fusion rests on the very networks the late fusions use, left unchanged.
    fused_net = models["fusion"]
    for mine, theirs in ((fused_net.audio, models["audio"]), (fused_net.image, models["image"])):
        for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values(),
                                strict=True):
            assert torch.equal(a, b), name
    assert not fused_net.train().audio.training and not fused_net.image.training
    assert fused_net.classifier.training
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
    verdicts = fusion.fusion_verdicts(predictions, sets["y_eval"], n_resamples=200)
    assert len(verdicts) == 3 * 3  # three fusions in each of the three conditions
    assert config.name("image") != config.name("fusion")


def test_fusion_config_shares_one_audio_network_and_one_image_training():
    audio = dataclasses.replace(QUICK, split="speaker", test_speaker="alba")
    config = FusionConfig(audio=audio)
    # The image CNN does not depend on the speaker, the recipe or the fusion settings...
    other = FusionConfig(audio=dataclasses.replace(audio, test_speaker="bob", trim_db=30),
                         fusion_epochs=3, image_noise=1.0)
    assert config.name("image") == other.name("image")
    assert config.name("fusion") != other.name("fusion")
    # ...but on its own training.
    assert config.name("image") != FusionConfig(audio=audio, image_epochs=3).name("image")
    with pytest.raises(ValueError, match="split='speaker'"):
        FusionConfig(audio=QUICK)
    with pytest.raises(ValueError, match="ensemble=1"):
        FusionConfig(audio=dataclasses.replace(audio, ensemble=3))
    with pytest.raises(ValueError, match="'image' or 'fusion'"):
        config.name("audio")


def _with_errors(y: torch.Tensor, rate: float, seed: int) -> torch.Tensor:
    """Return y with a fraction `rate` of its entries (chosen by `seed`) made wrong."""
    wrong = torch.rand(len(y), generator=torch.Generator().manual_seed(seed)) < rate
    return torch.where(wrong, (y + 1) % 10, y)


def test_accuracy_intervals_have_the_binomial_width():
    y = torch.arange(400) % 10
    predicted = _with_errors(y, 0.2, seed=1)
    table = fusion.accuracy_intervals({"propre": {"son seul": predicted}}, y)
    row = table.loc[("propre", "son seul")]
    acc = float((predicted == y).float().mean())
    assert row["accuracy"] == pytest.approx(acc)
    assert row["low"] < acc < row["high"]
    # 95 %: about 1.96 binomial standard errors on each side.
    assert (row["high"] - row["low"]) / 2 == pytest.approx(1.96 * np.sqrt(acc * (1 - acc) / 400),
                                                         rel=0.2)
    text = fusion.interval_table(table)
    assert text.loc["son seul", "propre"].startswith(f"{100 * acc:.1f}".replace(".", ","))
    with pytest.raises(ValueError, match="one prediction per test pair"):
        fusion.accuracy_intervals({"propre": {"son seul": predicted[:10]}}, y)


def test_fusion_verdicts_judge_the_gain_with_its_paired_interval():
    y = torch.arange(500) % 10
    image, sound = _with_errors(y, 0.15, seed=1), _with_errors(y, 0.3, seed=2)
    better = image.clone()
    fixed = torch.nonzero(image != y).flatten()[:10]
    better[fixed] = y[fixed]  # 10 of the image's errors fixed (2 points), nothing broken
    predictions = {"propre": {
        "image seule": image, "son seul": sound,
        "fusion tardive (produit)": better,
        "fusion tardive (moyenne)": image.clone(),  # the image model's answers exactly
        "fusion des caractéristiques": _with_errors(y, 0.3, seed=3),
    }}  # fmt: skip
    table = fusion.fusion_verdicts(predictions, y, n_resamples=1000)
    rows = {method: table.loc[("propre", method)] for method in predictions["propre"]
            if method not in fusion.SINGLE}
    assert all(r["best_single"] == "image seule" for r in rows.values())
    gain = rows["fusion tardive (produit)"]
    acc_image, acc_better = (float((p == y).float().mean()) for p in (image, better))
    assert gain["delta"] == pytest.approx(acc_better - acc_image)
    assert gain["low"] <= gain["delta"] <= gain["high"]
    assert gain["verdict"] == "mieux"
    # Paired: the interval of a gain made on a few pairs is far narrower than the band of
    # two independent accuracies, which would call this gain noise.
    assert gain["band"] < accuracy_band(acc_better, acc_image, len(y)) / 2
    assert gain["delta"] < accuracy_band(acc_better, acc_image, len(y))
    same = rows["fusion tardive (moyenne)"]
    assert same["delta"] == 0 and same["verdict"] == "indiscernable"
    worse = rows["fusion des caractéristiques"]
    assert worse["verdict"] == "moins bien" and worse["high"] < 0
    # The better single model is picked again in each resample: when the two are close, the
    # interval of a fusion equal to one of them reaches below 0.
    close = {"propre": {"image seule": image, "son seul": _with_errors(y, 0.155, seed=4),
                        "fusion tardive (produit)": image.clone()}}
    tie = fusion.fusion_verdicts(close, y, n_resamples=1000).iloc[0]
    assert tie["low"] < 0 and tie["verdict"] == "indiscernable"


@pytest.mark.parametrize(("verdict", "words"), [
    ("mieux", "dépasse la meilleure"),
    ("moins bien", "fait moins bien que la meilleure"),
    ("indiscernable", "ne se distingue pas (écart dans la marge de bruit) de la meilleure"),
])  # fmt: skip
def test_fusion_verdict_sentence_says_the_computed_verdict(verdict, words):
    row = {"accuracy": 0.981, "best_single": "image seule", "single_accuracy": 0.97,
           "delta": -0.0125 if verdict == "moins bien" else 0.011, "low": -0.004,
           "high": 0.026, "band": 0.015, "verdict": verdict}
    text = fusion.fusion_verdict_sentence("son bruité", "fusion tardive (moyenne)", row, 500)
    assert text.startswith(f"son bruité : « fusion tardive (moyenne) » ({fr_pct(0.981, 1)}) ")
    assert f" {words} modalité seule, « image seule » ({fr_pct(0.97, 1)})" in text
    sign = "-1,2" if verdict == "moins bien" else "+1,1"
    assert f"écart {sign} point(s), marge de bruit ± 1,5" in text
    assert "[-0,4 ; +2,6]" in text and "500 paires de test" in text
