"""Notebook 02, multimodal part: a spoken digit paired with a handwritten MNIST digit.

`pair_images` gives each recording an MNIST image of the same digit (fixed by a seed);
`train_fusion_models` trains the audio CNN (an `AudioConfig` on a speaker split), an image
CNN and a feature-level fusion net; `fusion_predictions` / `fusion_table` compare image-only,
audio-only, late fusion (product and mean of probabilities) and feature-level fusion, clean
and with one modality corrupted (noisy image, noisy recording).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from coursekit.audio.data import MelConfig, load_waveforms, logmel
from coursekit.audio.lesson import (
    AudioConfig,
    AudioData,
    Batches,
    augmenter,
    make_model,
    prepare,
    run,
)
from coursekit.audio.models import FeatureFusion, ImageCNN, late_fusion
from coursekit.checkpoint import config_name
from coursekit.data import load_dataset, to_uint8_tensors
from coursekit.french import fr_int
from coursekit.metrics import confusion_matrix
from coursekit.settings import get_device, seed_everything
from coursekit.train import History, fit, predict

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def pair_images(digits: np.ndarray, image_labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Return, for each spoken digit, the index of an image of the same digit (N,).

    Images of each digit are drawn without replacement in an order fixed by `seed` (and
    reused cyclically only if there are more recordings than images of that digit).
    """
    rng = np.random.default_rng(seed)
    out = np.empty(len(digits), dtype=np.int64)
    for d in np.unique(digits):
        pool = rng.permutation(np.flatnonzero(image_labels == d))
        if len(pool) == 0:
            raise ValueError(f"no image of digit {d} to pair with")
        where = np.flatnonzero(digits == d)
        out[where] = pool[np.arange(len(where)) % len(pool)]
    return out


def mnist_tensors(train: bool, root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return MNIST (images float32 (N, 1, 28, 28) normalized, labels int64 (N,)) from the
    data root `root` (`coursekit.data.load_dataset`)."""
    images, labels = to_uint8_tensors(load_dataset("MNIST", train=train, root=root))
    return (images.float() / 255 - MNIST_MEAN) / MNIST_STD, labels


@dataclass(frozen=True)
class FusionConfig:
    """The multimodal experiment: an audio recipe on a speaker split, paired MNIST images.

    audio: the AudioConfig of the audio model (its split must be 'speaker'); image_epochs,
    fusion_epochs: trainings of the image CNN and of the feature-fusion net (both on the
    pairs of the audio training rows); modality_dropout: see FeatureFusion; image_noise:
    std of the Gaussian noise added to normalized test images when the image is corrupted;
    audio_snr_db: signal-to-noise ratio of the white noise added to test recordings when
    the sound is corrupted; pair_seed: fixes which image goes with which recording.
    """

    audio: AudioConfig
    image_epochs: int = 6
    fusion_epochs: int = 12
    modality_dropout: float = 0.3
    image_noise: float = 3.0
    audio_snr_db: float = -5.0
    pair_seed: int = 0
    label: str = "fusion"

    def __post_init__(self) -> None:
        if self.audio.split != "speaker" or self.audio.eval != "test":
            raise ValueError("the fusion experiment needs an audio config with "
                             "split='speaker' and eval='test'")

    def name(self, part: str) -> str:
        """Return the run name of one trained part: 'image' or 'fusion'."""
        return config_name(f"{self.label}_{part}", {**self.__dict__, "audio": self.audio.name})


def noisy_recordings(table: pd.DataFrame, mel: MelConfig, snr_db: float, seed: int = 0
                     ) -> torch.Tensor:
    """Return log-mel features (N, n_mels, frames) of the recordings with white noise added
    over their real (non-padded) samples, at a signal-to-noise ratio of `snr_db` dB with
    respect to each recording's own power (-5 dB: the noise is 5 dB louder than the voice)."""
    waves = load_waveforms(table, mel.sample_rate, mel.n_samples, mel.align)
    lengths = np.minimum(
        np.round(table["duration"].to_numpy() * mel.sample_rate).astype(int), mel.n_samples
    )
    return logmel(add_noise(waves, torch.as_tensor(lengths), snr_db, seed), mel)


def add_noise(waves: torch.Tensor, lengths: torch.Tensor, snr_db: float, seed: int = 0
              ) -> torch.Tensor:
    """Return waves (N, L) plus white noise over each one's first lengths[i] samples (the
    padding stays silent), scaled so that signal power / noise power is `snr_db` dB."""
    mask = torch.arange(waves.shape[1])[None, :] < lengths[:, None]
    power = (waves**2 * mask).sum(1) / mask.sum(1)
    generator = torch.Generator().manual_seed(seed)
    scale = (power * 10 ** (-snr_db / 10)).sqrt()[:, None]
    noise = torch.randn(waves.shape, generator=generator) * scale
    return waves + noise * mask


def _fit(model: nn.Module, inputs: list[torch.Tensor], y: torch.Tensor, epochs: int,
         transforms: list[Callable | None], checkpoint: Path | None, retrain: bool,
         seed: int, device: str, lr: float, verbose: bool) -> History:
    """Train `model` on in-memory inputs with Adam (no validation); return its History."""
    seed_everything(seed)
    batches = Batches(inputs, y, 32, shuffle=True, transforms=transforms)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return fit(model, batches, None, epochs=epochs, optimizer=optimizer,
               device=get_device(device), checkpoint=checkpoint, restart=retrain,
               verbose=verbose)


def fusion_data(config: FusionConfig, data: AudioData, data_root: str | Path | None = None
                ) -> dict[str, Any]:
    """Return the paired sets: audio inputs and rows as `prepare`, the paired normalized
    images (x_image_train, x_image_test), and the test images/recordings corrupted.

    data_root: the datasets root MNIST is read from (`coursekit.data.roots.resolve_root`),
    the same one as the recordings'."""
    parts = prepare(config.audio, data)
    images_train, labels_train = mnist_tensors(True, data_root)
    images_test, labels_test = mnist_tensors(False, data_root)
    y = data.y
    pick_train = pair_images(y[parts["train_rows"]].numpy(), labels_train.numpy(),
                             config.pair_seed)
    pick_test = pair_images(y[parts["eval_rows"]].numpy(), labels_test.numpy(),
                            config.pair_seed + 1)
    x_image_test = images_test[pick_test]
    generator = torch.Generator().manual_seed(config.pair_seed)
    noisy_image = x_image_test + config.image_noise * torch.randn(
        x_image_test.shape, generator=generator)
    test_table = data.table.iloc[parts["eval_rows"]]
    noisy_audio = noisy_recordings(test_table, data.mel, config.audio_snr_db, config.pair_seed)
    return {
        **parts, "x_image_train": images_train[pick_train], "x_image_test": x_image_test,
        "x_image_noisy": noisy_image,
        "x_audio_noisy": parts["norm"](noisy_audio, data.lengths[parts["eval_rows"]]),
    }  # fmt: skip


def train_fusion_models(
    config: FusionConfig, data: AudioData, *, checkpoints: dict[str, Path | None],
    retrain: bool = False, data_root: str | Path | None = None, verbose: bool = False,
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Return ({'audio', 'image', 'fusion'} trained models, fusion_data).

    checkpoints: one path (or None) per model, keys 'audio', 'image', 'fusion'; data_root:
    where MNIST is read, as in `fusion_data`. The audio model is `run(config.audio)`; the
    image CNN learns the images paired with the audio training rows; the fusion net learns
    both (audio augmented as the audio recipe says). verbose: a French counter line before
    each of the three trainings, and their progress.
    """
    sets = fusion_data(config, data, data_root)
    say = print if verbose else (lambda *args, **kwargs: None)
    say(f"réseau 1/3 : le son (locuteur {config.audio.test_speaker} exclu)", flush=True)
    audio, _ = run(config.audio, checkpoint=checkpoints["audio"], retrain=retrain, data=data,
                   verbose=verbose)
    a = config.audio
    image = ImageCNN()
    say(f"réseau 2/3 : l'image ({fr_int(len(sets['y_train']))} images MNIST)", flush=True)
    _fit(image, [sets["x_image_train"]], sets["y_train"], config.image_epochs, [None],
         checkpoints["image"], retrain, a.seed, a.device, 1e-3, verbose)
    fusion = FeatureFusion(make_model(a, data.mel), ImageCNN(),
                           modality_dropout=config.modality_dropout)
    say("réseau 3/3 : la fusion des caractéristiques (son + image)", flush=True)
    _fit(fusion, [sets["x_train"], sets["x_image_train"]], sets["y_train"],
         config.fusion_epochs, [augmenter(a, data.mel), None], checkpoints["fusion"],
         retrain, a.seed, a.device, a.lr, verbose)
    return {"audio": audio, "image": image, "fusion": fusion}, sets


CONDITIONS = {"propre": ("x_eval", "x_image_test"),
              "image bruitée": ("x_eval", "x_image_noisy"),
              "son bruité": ("x_audio_noisy", "x_image_test")}


def fusion_predictions(models: dict[str, nn.Module], sets: dict[str, Any]
                       ) -> dict[str, dict[str, torch.Tensor]]:
    """Return {condition: {method: predicted digits (N,)}} for the 5 methods (image seule,
    son seul, fusion tardive produit / moyenne, fusion des caractéristiques)."""
    out = {}
    for condition, (audio_key, image_key) in CONDITIONS.items():
        xa, xi = sets[audio_key], sets[image_key]
        la, li = predict(models["audio"], [xa]), predict(models["image"], [xi])
        out[condition] = {
            "image seule": li.argmax(1),
            "son seul": la.argmax(1),
            "fusion tardive (produit)": late_fusion(la, li, "product").argmax(1),
            "fusion tardive (moyenne)": late_fusion(la, li, "mean").argmax(1),
            "fusion des caractéristiques": predict(models["fusion"], [xa, xi]).argmax(1),
        }
    return out


def fusion_table(predictions: dict[str, dict[str, torch.Tensor]], y: torch.Tensor
                 ) -> pd.DataFrame:
    """Return accuracies: one row per method, one column per condition."""
    return pd.DataFrame({
        condition: {m: float((p == y).float().mean()) for m, p in methods.items()}
        for condition, methods in predictions.items()
    })  # fmt: skip


def fusion_confusions(predictions: dict[str, torch.Tensor], y: torch.Tensor
                      ) -> dict[str, torch.Tensor]:
    """Return {method: confusion matrix (10, 10)} (row = true digit, column = predicted)."""
    return {m: confusion_matrix(p, y, 10) for m, p in predictions.items()}


def errors_fixed(predictions: dict[str, torch.Tensor], y: torch.Tensor, fused: str,
                 single: Sequence[str] = ("image seule", "son seul")) -> dict[str, int]:
    """Return counts: errors of each single model, errors of the fused one, examples both
    single models get wrong, and examples the fused model gets right that one single
    model got wrong."""
    wrong = {m: predictions[m] != y for m in (*single, fused)}
    either = wrong[single[0]] | wrong[single[1]]
    return {
        **{f"erreurs {m}": int(w.sum()) for m, w in wrong.items()},
        "erreurs des deux modèles seuls": int((wrong[single[0]] & wrong[single[1]]).sum()),
        "corrigées par la fusion": int((either & ~wrong[fused]).sum()),
    }
