"""The spectrogram CNN of notebook 02: log-mel image in, digit logits out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
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
