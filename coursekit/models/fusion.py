"""Image + audio digit recognition (notebook 02): an MNIST CNN, late and feature fusion."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.models.audio_cnn import AudioCNN, conv_block

LATE_RULES = ("product", "mean")


class ImageCNN(nn.Module):
    """Small MNIST CNN: (B, 1, 28, 28) -> logits (B, 10); `embed` gives (B, hidden)."""

    def __init__(self, channels: tuple[int, int] = (16, 32), hidden: int = 64,
                 dropout: float = 0.3, n_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(conv_block(1, channels[0]), conv_block(*channels))
        self.hidden = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels[1] * 7 * 7, hidden),
            nn.ReLU(inplace=True), nn.Dropout(dropout),
        )  # fmt: skip
        self.classifier = nn.Linear(hidden, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Return hidden features (B, hidden) of images x (B, 1, 28, 28)."""
        return self.hidden(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, n_classes) of images x (B, 1, 28, 28)."""
        return self.classifier(self.embed(x))


class FeatureFusion(nn.Module):
    """Both encoders, their hidden features concatenated, one linear classifier.

    forward((spectrograms (B, 1, F, T), images (B, 1, 28, 28))) -> logits (B, n_classes).
    modality_dropout: in training, the probability of zeroing one modality's features
    (which one at random, per example), so the classifier learns to decide from either
    alone and does not collapse when one input is corrupted.
    """

    def __init__(self, audio: AudioCNN, image: ImageCNN, n_classes: int = 10,
                 modality_dropout: float = 0.0) -> None:
        super().__init__()
        if not 0 <= modality_dropout < 1:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        self.audio, self.image = audio, image
        self.modality_dropout = modality_dropout
        width = audio.classifier.in_features + image.classifier.in_features
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        spec, image = inputs
        a, i = self.audio.embed(spec), self.image.embed(image)
        if self.training and self.modality_dropout > 0:
            drop = torch.rand(len(a), device=a.device) < self.modality_dropout
            audio_off = torch.rand(len(a), device=a.device) < 0.5
            a = a * ~(drop & audio_off)[:, None]
            i = i * ~(drop & ~audio_off)[:, None]
        return self.classifier(torch.cat([a, i], dim=1))


def late_fusion(logits_a: torch.Tensor, logits_b: torch.Tensor, rule: str = "product"
                ) -> torch.Tensor:
    """Return fused log-probabilities (B, C) of two classifiers' logits (B, C).

    product: p ∝ p_a * p_b (independent experts: a confident model outvotes a hesitant
    one); mean: p = (p_a + p_b) / 2 (softer: one model very sure of a wrong class cannot
    veto the other).
    """
    if rule not in LATE_RULES:
        raise ValueError(f"rule must be one of {LATE_RULES}, got {rule!r}")
    if rule == "product":
        return F.log_softmax(F.log_softmax(logits_a, 1) + F.log_softmax(logits_b, 1), 1)
    return mean_probability(logits_a, logits_b)


def mean_probability(*logits: torch.Tensor) -> torch.Tensor:
    """Return log((p_1 + ... + p_n) / n) (B, C) of n classifiers' logits (B, C), computed in
    log space (no probability underflows to a log of 0)."""
    logs = torch.stack([F.log_softmax(x, 1) for x in logits])
    return torch.logsumexp(logs, 0) - math.log(len(logits))
