"""LeNet-5 for 1x28x28 inputs, with the regularization switches of notebook 05."""

from __future__ import annotations

import torch
from torch import nn

BATCHNORM_CHOICES = ("none", "c1", "convs")


def _batchnorm_mode(batchnorm: bool | str) -> str:
    """Return 'none', 'c1' or 'convs' from a bool (True = 'c1', the sheet's place) or a name."""
    if isinstance(batchnorm, bool):
        return "c1" if batchnorm else "none"
    if batchnorm not in BATCHNORM_CHOICES:
        raise ValueError(
            f"batchnorm must be a bool or one of {BATCHNORM_CHOICES}, got {batchnorm!r}"
        )
    return batchnorm


class LeNet5(nn.Module):
    """LeNet-5: C1 6@5x5, pool, C2 16@5x5, pool, F3 120, F4 84, F5 10, ReLU; returns logits.

    With a 28x28 input and no padding the flattened feature map is 16x4x4, which gives
    44,426 trainable parameters (the classic 61,706 needs 32x32 inputs: 16x5x5).

    dropout: probability applied between C1 and C2 and between F3 and F4 (0 = off);
    conv_dropout: a different probability between C1 and C2 (None = `dropout`);
    batchnorm: False/'none'; True/'c1' puts BatchNorm2d after C1, i.e. between the two
      convolutions as the sheet asks; 'convs' also normalizes C2's output;
    channels, hidden: widths of (C1, C2) and (F3, F4), for LeNet-sized variants;
    padding: zero padding of C1 (2 gives 28x28 inputs the 32x32 geometry of the original).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 28,
        dropout: float = 0.0,
        batchnorm: bool | str = False,
        conv_dropout: float | None = None,
        channels: tuple[int, int] = (6, 16),
        hidden: tuple[int, int] = (120, 84),
        padding: int = 0,
    ) -> None:
        super().__init__()
        mode = _batchnorm_mode(batchnorm)
        side = ((input_size + 2 * padding - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for two 5x5 convs + pools")
        c1, c2 = channels
        conv_p = dropout if conv_dropout is None else conv_dropout
        self.c1 = nn.Conv2d(in_channels, c1, kernel_size=5, padding=padding)
        self.bn1 = nn.BatchNorm2d(c1) if mode != "none" else nn.Identity()
        self.c2 = nn.Conv2d(c1, c2, kernel_size=5)
        self.bn2 = nn.BatchNorm2d(c2) if mode == "convs" else nn.Identity()
        self.f3 = nn.Linear(c2 * side * side, hidden[0])
        self.f4 = nn.Linear(hidden[0], hidden[1])
        self.f5 = nn.Linear(hidden[1], num_classes)
        self.pool = nn.MaxPool2d(2)
        # Plain Dropout on the feature maps as well: the sheet asks for the same layer twice.
        self.drop_conv = nn.Dropout(conv_p) if conv_p > 0 else nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.flat_features = c2 * side * side

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the flattened C2 feature map (B, C2*side*side) of images (B, C, H, W)."""
        x = self.pool(torch.relu(self.bn1(self.c1(x))))
        x = self.drop_conv(x)
        x = self.pool(torch.relu(self.bn2(self.c2(x))))
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape (B, num_classes) for images of shape (B, C, H, W)."""
        x = torch.relu(self.f3(self.features(x)))
        x = self.drop(x)
        x = torch.relu(self.f4(x))
        return self.f5(x)
