"""The network of the PyTorch MNIST example (the course's "mnist.zip")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MnistNet(nn.Module):
    """pytorch/examples MNIST CNN; returns log-probabilities of shape (B, 10).

    Conv(1,32,3) ReLU Conv(32,64,3) ReLU MaxPool(2) Dropout(0.25) Linear(9216,128) ReLU
    Dropout(0.5) Linear(128,10) log_softmax: 1,199,882 parameters. With dropout=False
    both dropout layers are replaced by identities, so train and eval modes agree.
    """

    def __init__(self, dropout: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25) if dropout else nn.Identity()
        self.dropout2 = nn.Dropout(0.5) if dropout else nn.Identity()
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return log-probabilities (B, 10) for images of shape (B, 1, 28, 28)."""
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)
