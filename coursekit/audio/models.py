"""Networks of notebook 02: the spectrogram CNN (log-mel image in, digit logits out), the
MNIST image CNN and the image + audio fusions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("flatten", "time_avg", "time_max")


def conv_block(c_in: int, c_out: int, batchnorm: bool = True) -> nn.Sequential:
    """Return Conv2d 3x3 (same size) -> [BatchNorm] -> ReLU -> MaxPool 2x2: halves F and T."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


class AudioCNN(nn.Module):
    """Conv blocks over a log-mel spectrogram, then a small classifier.

    Input (B, in_channels, n_mels, n_frames) (1: the log-mel; 2: with its time derivative);
    output logits (B, n_classes). Each of the
    len(channels) blocks is `conv_block` (frequency and time halved). head='flatten' keeps
    every (channel, frequency, time) cell, so a word's position in the clip matters;
    'time_avg' averages over time first (kept: channel x frequency), so the classifier
    sees what was said, not when; 'time_max' keeps each feature's strongest response over
    time instead (padding silence, weaker, does not dilute it). `embed` returns the hidden
    features (B, hidden), the input of the last linear layer (used by feature-level fusion).
    """

    def __init__(
        self,
        n_mels: int = 40,
        n_frames: int = 126,
        n_classes: int = 10,
        channels: Sequence[int] = (16, 32, 64),
        hidden: int = 64,
        dropout: float = 0.3,
        batchnorm: bool = True,
        head: str = "flatten",
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if not 1 <= len(channels) <= 5:
            raise ValueError(f"1 to 5 conv blocks, got channels={tuple(channels)}")
        f, t = n_mels, n_frames
        for _ in channels:
            f, t = f // 2, t // 2
        if f < 1 or t < 1:
            raise ValueError(
                f"{len(channels)} blocks halve ({n_mels}, {n_frames}) down to nothing; "
                "use fewer blocks or more mel bands/frames"
            )
        widths = (in_channels, *channels)
        self.features = nn.Sequential(
            *(conv_block(a, b, batchnorm) for a, b in zip(widths, widths[1:], strict=False))
        )
        self.head = head
        n_in = channels[-1] * f * (t if head == "flatten" else 1)
        self.hidden = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(n_in, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )  # fmt: skip
        self.classifier = nn.Linear(hidden, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Return hidden features (B, hidden) of spectrograms x (B, 1, n_mels, n_frames)."""
        x = self.features(x)
        if self.head == "time_avg":
            x = x.mean(dim=3, keepdim=True)
        elif self.head == "time_max":
            x = x.amax(dim=3, keepdim=True)
        return self.hidden(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, n_classes) of spectrograms x (B, 1, n_mels, n_frames)."""
        return self.classifier(self.embed(x))

class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by -weight (Ganin & Lempitsky, 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


class SpeakerAdversarial(nn.Module):
    """An AudioCNN whose hidden features learn to hide which training speaker speaks
    (speaker-invariant training, Meng et al., 2018).

    forward(x (B, C, F, T)) -> digit logits (B, n_classes), as the AudioCNN alone.
    forward((x, speakers int64 (B,))) also sets `penalty`: the cross-entropy of a speaker
    classifier on the hidden features seen through a gradient reversal of `weight`, to add
    to the loss (`fit`'s extra_loss): the classifier learns to tell the voices apart, the
    features learn to make it fail.
    """

    def __init__(self, net: AudioCNN, n_speakers: int, weight: float) -> None:
        super().__init__()
        if n_speakers < 2 or weight <= 0:
            raise ValueError(f"need >= 2 training speakers and weight > 0, got {n_speakers} "
                             f"and {weight}")
        self.net, self.weight = net, weight
        width = net.classifier.in_features
        self.speaker = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True),
                                     nn.Linear(width, n_speakers))
        self.penalty = torch.zeros(())

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Return the AudioCNN's hidden features (B, hidden)."""
        return self.net.embed(x)

    def forward(self, inputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, speakers = inputs if isinstance(inputs, (tuple, list)) else (inputs, None)
        hidden = self.net.embed(x)
        if speakers is not None:
            reversed_ = GradientReversal.apply(hidden, self.weight)
            self.penalty = F.cross_entropy(self.speaker(reversed_), speakers)
        return self.net.classifier(hidden)


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
