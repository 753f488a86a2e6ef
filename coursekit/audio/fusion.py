"""Notebook 02, multimodal part: a spoken digit paired with a handwritten MNIST digit.

`pair_images` gives each recording an MNIST image of the same digit (fixed by a seed);
`train_fusion_models` trains the audio CNN (an `AudioConfig` on a speaker split, one
network), the image CNN on the whole MNIST training set, and a feature-level fusion that
reuses both trained networks, frozen, and learns only the classifier on their joined
features: every fusion rests on the same two networks, so they differ only by how they
combine them. `fusion_predictions` / `fusion_table` compare image-only, audio-only, late
fusion (product and mean of probabilities) and feature-level fusion, clean and with one
modality corrupted (noisy image, noisy recording); `accuracy_intervals` and
`fusion_verdicts` put a paired bootstrap interval (over the test pairs) on each accuracy
and on each fusion's gain over the better single modality, judged by the workbook's rule
`coursekit.analysis.verdict`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from coursekit.analysis import verdict
from coursekit.audio.lesson import (
    AudioConfig,
    AudioData,
    Batches,
    augmenter,
    perturbed_inputs,
    prepare,
    run,
)
from coursekit.audio.models import FeatureFusion, ImageCNN, late_fusion
from coursekit.audio.waves import perturbed_logmel
from coursekit.checkpoint import config_name
from coursekit.data import load_dataset, to_uint8_tensors
from coursekit.french import fr_fixed, fr_int, fr_pct
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

    audio: the AudioConfig of the audio network (split 'speaker', eval 'test', one network:
    ensemble=1, so late and feature fusion share it); image_epochs, image_batch_size,
    image_lr: the image CNN's training on the whole MNIST training set (Adam);
    fusion_epochs: the training of the feature fusion's classifier on the pairs of the
    audio training rows (the two networks frozen); modality_dropout: see FeatureFusion;
    image_noise: std of the Gaussian noise added to normalized test images when the image
    is corrupted; audio_snr_db: signal-to-noise ratio of the white noise added to test
    recordings when the sound is corrupted; pair_seed: fixes which image goes with which
    recording.
    """

    audio: AudioConfig
    image_epochs: int = 2
    image_batch_size: int = 128
    image_lr: float = 1e-3
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
        if self.audio.ensemble != 1:
            raise ValueError(
                f"the fusion experiment needs one audio network (ensemble=1, got "
                f"{self.audio.ensemble}): late and feature fusion must use the same network, "
                "and an ensemble has no single feature vector to fuse; pass "
                "replace(audio, ensemble=1)"
            )
        if min(self.image_epochs, self.image_batch_size, self.fusion_epochs) < 1:
            raise ValueError("image_epochs, image_batch_size and fusion_epochs must be >= 1")

    def name(self, part: str) -> str:
        """Return the run name of one trained part: 'image' or 'fusion'."""
        if part == "image":
            # The image CNN depends on nothing audio: one training serves every speaker,
            # recipe and fusion setting (a lab session trains it once).
            image = {k: getattr(self, k) for k in ("image_epochs", "image_batch_size",
                                                    "image_lr")}
            return config_name(f"{self.label}_image_mnist", {**image, "seed": self.audio.seed})
        if part != "fusion":
            raise ValueError(f"part must be 'image' or 'fusion', got {part!r}")
        return config_name(f"{self.label}_{part}", {**self.__dict__, "audio": self.audio.name})


class FrozenFusion(FeatureFusion):
    """FeatureFusion over copies of two trained networks, frozen: only the classifier learns.

    The encoders stay in eval mode even while the fusion trains (no dropout, batch-norm
    statistics fixed), so their features are exactly those the late fusions use.
    """

    def __init__(self, audio: nn.Module, image: ImageCNN, modality_dropout: float = 0.0
                 ) -> None:
        # Copies: loading a fusion checkpoint must never overwrite the single models.
        super().__init__(copy.deepcopy(audio), copy.deepcopy(image),
                         modality_dropout=modality_dropout)
        for parameter in [*self.audio.parameters(), *self.image.parameters()]:
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenFusion:
        """Return self, the classifier in `mode`, the frozen encoders always in eval mode."""
        super().train(mode)
        self.audio.eval()
        self.image.eval()
        return self


def _fit(model: nn.Module, inputs: list[torch.Tensor], y: torch.Tensor, epochs: int,
         transforms: list[Callable | None], checkpoint: Path | None, retrain: bool,
         seed: int, device: str, lr: float, verbose: bool, batch_size: int = 32) -> History:
    """Train `model`'s trainable parameters on in-memory inputs with Adam (no validation);
    return its History."""
    seed_everything(seed)
    batches = Batches(inputs, y, batch_size, shuffle=True, transforms=transforms)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    return fit(model, batches, None, epochs=epochs, optimizer=optimizer,
               device=get_device(device), checkpoint=checkpoint, restart=retrain,
               verbose=verbose)


def fusion_data(config: FusionConfig, data: AudioData, data_root: str | Path | None = None
                ) -> dict[str, Any]:
    """Return the paired sets: audio inputs and rows as `prepare`, the whole normalized
    MNIST training set (mnist_train, mnist_labels: what the image CNN learns), the images
    paired with the audio rows (x_image_train drawn from it, x_image_test from MNIST's
    test set), and the test images/recordings corrupted.

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
    noisy_audio = perturbed_logmel(test_table, data.mel, snr_db=config.audio_snr_db,
                                   seed=config.pair_seed)
    return {
        **parts, "mnist_train": images_train, "mnist_labels": labels_train,
        "x_image_train": images_train[pick_train], "x_image_test": x_image_test,
        "x_image_noisy": noisy_image,
        "x_audio_noisy": parts["norm"](noisy_audio, data.lengths[parts["eval_rows"]]),
    }  # fmt: skip


def train_fusion_models(
    config: FusionConfig, data: AudioData, *, checkpoints: dict[str, Path | None],
    retrain: bool = False, data_root: str | Path | None = None, verbose: bool = False,
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Return ({'audio', 'image', 'fusion'} trained models, fusion_data).

    checkpoints: one path (or None) per model, keys 'audio', 'image', 'fusion'; data_root:
    where MNIST is read, as in `fusion_data`. The audio network is `run(config.audio)`;
    the image CNN learns the whole MNIST training set (the training pairs' images are
    drawn from it); the feature fusion is a `FrozenFusion` of these two trained networks
    whose classifier learns the training pairs (audio augmented as the recipe says).
    verbose: a French counter line before each of the three trainings, and their progress.
    """
    sets = fusion_data(config, data, data_root)
    say = print if verbose else (lambda *args, **kwargs: None)
    say(f"réseau 1/3 : le son (locuteur {config.audio.test_speaker} exclu)", flush=True)
    audio, _ = run(config.audio, checkpoint=checkpoints["audio"], retrain=retrain, data=data,
                   verbose=verbose)
    a = config.audio
    image = ImageCNN()
    say(f"réseau 2/3 : l'image (les {fr_int(len(sets['mnist_labels']))} images "
        "d'apprentissage de MNIST)", flush=True)
    _fit(image, [sets["mnist_train"]], sets["mnist_labels"], config.image_epochs, [None],
         checkpoints["image"], retrain, a.seed, a.device, config.image_lr, verbose,
         batch_size=config.image_batch_size)
    fusion = FrozenFusion(audio, image, modality_dropout=config.modality_dropout)
    say("réseau 3/3 : la fusion des caractéristiques (le classifieur commun, sur les deux "
        "réseaux ci-dessus, figés)", flush=True)
    versions = perturbed_inputs(a, data, sets)  # the recipe's waveform versions, if any
    _fit(fusion, [sets["x_train"] if versions is None else versions, sets["x_image_train"]],
         sets["y_train"], config.fusion_epochs, [augmenter(a, data.mel), None],
         checkpoints["fusion"], retrain, a.seed, a.device, a.lr, verbose)
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


SINGLE = ("image seule", "son seul")


def _bootstrap(statistic: Callable[..., np.ndarray], samples: Sequence[np.ndarray],
               level: float, n_resamples: int, seed: int) -> tuple[float, float]:
    """Return the percentile bootstrap interval (low, high) of a statistic of paired samples."""
    result = stats.bootstrap(
        tuple(samples), statistic, paired=True, vectorized=True, method="percentile",
        confidence_level=level, n_resamples=n_resamples, rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _correct(predicted: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Return 1.0 where a prediction is right, else 0.0, as a float numpy array (N,)."""
    if predicted.shape != y.shape:
        raise ValueError(f"predictions of shape {tuple(predicted.shape)} vs labels "
                         f"{tuple(y.shape)}: one prediction per test pair is needed")
    return (predicted == y).double().numpy()


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Return the mean of x along `axis` (the accuracy of 0/1 correctness)."""
    return x.mean(axis=axis)


def accuracy_intervals(predictions: Mapping[str, Mapping[str, torch.Tensor]], y: torch.Tensor,
                       level: float = 0.95, n_resamples: int = 2000, seed: int = 0
                       ) -> pd.DataFrame:
    """Return one row per (condition, method): accuracy, low, high (its percentile bootstrap
    interval at `level`, test pairs drawn with replacement)."""
    rows = {}
    for condition, methods in predictions.items():
        for method, predicted in methods.items():
            correct = _correct(predicted, y)
            low, high = _bootstrap(_mean, [correct], level, n_resamples, seed)
            rows[(condition, method)] = {"accuracy": correct.mean(), "low": low, "high": high}
    frame = pd.DataFrame(rows).T
    frame.index.names = ["condition", "method"]
    return frame


def _gain_over_best(fused: np.ndarray, first: np.ndarray, second: np.ndarray,
                    axis: int = -1) -> np.ndarray:
    """Return accuracy(fused) - max(accuracy(first), accuracy(second)) along `axis`."""
    return fused.mean(axis=axis) - np.maximum(first.mean(axis=axis), second.mean(axis=axis))


def fusion_verdicts(predictions: Mapping[str, Mapping[str, torch.Tensor]], y: torch.Tensor,
                    single: Sequence[str] = SINGLE, level: float = 0.95,
                    n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Return one row per (condition, fusion method): each fusion against the better of the
    two single models on the same test pairs.

    Columns: accuracy, best_single (the single model with the higher accuracy),
    single_accuracy, delta (accuracy - single_accuracy), low, high (the paired percentile
    bootstrap interval of accuracy(fusion) - max(accuracy(single models)), the max taken
    again in each resample, so picking the better single model is part of the noise),
    band (half the width of that interval) and verdict (`coursekit.analysis.verdict(delta,
    band)`: 'mieux', 'moins bien' or 'indiscernable').
    """
    rows = {}
    for condition, methods in predictions.items():
        first, second = (_correct(methods[m], y) for m in single)
        best = single[0] if first.mean() >= second.mean() else single[1]
        for method, predicted in methods.items():
            if method in single:
                continue
            fused = _correct(predicted, y)
            low, high = _bootstrap(_gain_over_best, [fused, first, second], level,
                                   n_resamples, seed)
            delta = float(_gain_over_best(fused, first, second))
            band = (high - low) / 2
            rows[(condition, method)] = {
                "accuracy": fused.mean(), "best_single": best,
                "single_accuracy": max(first.mean(), second.mean()), "delta": delta,
                "low": low, "high": high, "band": band, "verdict": verdict(delta, band),
            }  # fmt: skip
    frame = pd.DataFrame(rows).T
    frame.index.names = ["condition", "method"]
    numeric = [c for c in frame.columns if c not in ("best_single", "verdict")]
    frame[numeric] = frame[numeric].astype(float)
    return frame


FUSION_WORDS = {
    "mieux": "dépasse",
    "moins bien": "fait moins bien que",
    "indiscernable": "ne se distingue pas (écart dans la marge de bruit) de",
}


def fusion_verdict_sentence(condition: str, method: str, row: Mapping[str, Any], n: int
                            ) -> str:
    """Return a French sentence: the computed verdict of one row of `fusion_verdicts`
    (condition, fusion method), with its accuracy, the gain and its noise band, on n pairs."""
    return (
        f"{condition} : « {method} » ({fr_pct(row['accuracy'], 1)}) "
        f"{FUSION_WORDS[row['verdict']]} la meilleure modalité seule, « {row['best_single']} » "
        f"({fr_pct(row['single_accuracy'], 1)}) : écart "
        f"{fr_fixed(100 * row['delta'], 1, signed=True)} point(s), marge de bruit ± "
        f"{fr_fixed(100 * row['band'], 1)} (intervalle à 95\u00a0% de l'écart "
        f"[{fr_fixed(100 * row['low'], 1, signed=True)} ; "
        f"{fr_fixed(100 * row['high'], 1, signed=True)}], bootstrap apparié sur les "
        f"{fr_int(n)} paires de test)."
    )


def interval_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """Return the accuracies of `accuracy_intervals` as French text 'acc % [low ; high]',
    one row per method, one column per condition."""
    text = intervals.apply(
        lambda r: f"{fr_pct(r['accuracy'], 1)} [{fr_fixed(100 * r['low'], 1)} ; "
                  f"{fr_fixed(100 * r['high'], 1)}]", axis=1)
    table = text.unstack("condition")
    conditions = list(dict.fromkeys(intervals.index.get_level_values("condition")))
    methods = list(dict.fromkeys(intervals.index.get_level_values("method")))
    return table.loc[methods, conditions].rename_axis(index="méthode", columns="condition")
