"""Notebook 07: HungarianNet (Adavanne et al. 2021) and a Deep Hungarian Net (Xu et al. 2020).

Both map a batch of distance matrices x (B, M, M) (rows: references, columns: predictions)
to association logits (B, M, M); sigmoid(logit) > 0.5 predicts a one.

HNet: a GRU reads the M rows as a sequence (each row's M distances are its features), a
single-head self-attention mixes the rows (Q, K, V are bias-free 1x1 convolutions,
softmax(Q^T K)), tanh, then a Linear(hidden, M) gives one logit per cell. The public recipe
trains three outputs taken from these logits (`three_outputs`): the flattened matrix, its
row-wise max and its column-wise max. Switches for the ablation study: `gru=False` replaces
the GRU by a row-wise Linear(M, hidden) + tanh, `attention=False` drops the attention,
`hidden` and `gru_layers` change its size. About 100K parameters for M = 2 (hidden 128).

clip_input (both networks; the public HNet has none): read min(distance, clip_input).
Distances between unit vectors are at most 2, padding reaches ~350: on the raw scale the
padded values dominate the first layer's pre-activations. Clipping at 3 keeps every real
distance and maps padding to about one value; it also hides the order of distances above
3, which only matters when the predictions fed to HNet are not unit vectors.

DeepHungarianNet: a 2-layer bidirectional GRU reads the M*M cells row after row (one scalar
per step), a second one reads its features column after column, and a per-cell MLP
(2*hidden -> 256 -> 64 -> 1 by default; Xu et al.: hidden 256, i.e. 512-256-64-1) gives
the logit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class AttentionLayer(nn.Module):
    """Single-head self-attention over the sequence axis; (B, C_in, L) -> (B, C_out, L)."""

    def __init__(self, in_channels: int, out_channels: int, key_channels: int) -> None:
        super().__init__()
        self.conv_q = nn.Conv1d(in_channels, key_channels, kernel_size=1, bias=False)
        self.conv_k = nn.Conv1d(in_channels, key_channels, kernel_size=1, bias=False)
        self.conv_v = nn.Conv1d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.conv_q(x), self.conv_k(x), self.conv_v(x)  # (B, C, L)
        weights = q.transpose(1, 2).matmul(k).softmax(dim=2)  # (B, L, L), rows sum to 1
        return weights.matmul(v.transpose(1, 2)).transpose(1, 2)  # (B, C_out, L)


class HNet(nn.Module):
    """HungarianNet: distances (B, M, M) -> association logits (B, M, M)."""

    def __init__(
        self,
        max_doas: int,
        hidden: int = 128,
        gru: bool = True,
        attention: bool = True,
        gru_layers: int = 1,
        clip_input: float | None = None,
    ) -> None:
        super().__init__()
        if max_doas < 1 or hidden < 1 or gru_layers < 1:
            raise ValueError(
                f"max_doas, hidden and gru_layers must be >= 1, got {max_doas}, {hidden}, "
                f"{gru_layers}"
            )
        self.max_doas, self.clip_input = max_doas, clip_input
        self.gru = nn.GRU(max_doas, hidden, gru_layers, batch_first=True) if gru else None
        self.rows = None if gru else nn.Linear(max_doas, hidden)
        self.attn = AttentionLayer(hidden, hidden, hidden) if attention else None
        self.fc = nn.Linear(hidden, max_doas)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1:] != (self.max_doas, self.max_doas):
            raise ValueError(
                f"HNet({self.max_doas}) expects (B, {self.max_doas}, {self.max_doas}) distance "
                f"matrices, got {tuple(x.shape)}"
            )
        x = x if self.clip_input is None else x.clamp(max=self.clip_input)
        if self.gru is not None:
            h, _ = self.gru(x)  # (B, M, hidden)
        else:
            h = torch.tanh(self.rows(x))
        if self.attn is not None:
            h = self.attn(h.transpose(1, 2)).transpose(1, 2)
        return self.fc(torch.tanh(h))  # (B, M, M)


def three_outputs(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the public recipe's outputs of logits (B, M, M): flattened (B, M*M), row-wise
    max (B, M) (target: row sums of the label) and column-wise max (B, M) (column sums)."""
    return logits.flatten(1), logits.amax(dim=2), logits.amax(dim=1)


class DeepHungarianNet(nn.Module):
    """DHN-style network (Xu et al. 2020): distances (B, M, M) -> association logits (B, M, M)."""

    def __init__(
        self,
        max_doas: int,
        hidden: int = 256,
        layers: int = 2,
        fc: Sequence[int] = (256, 64),
        clip_input: float | None = None,
    ) -> None:
        super().__init__()
        if max_doas < 1 or hidden < 1 or layers < 1:
            raise ValueError("max_doas, hidden and layers must be >= 1")
        self.max_doas, self.clip_input = max_doas, clip_input
        gru = {"num_layers": layers, "batch_first": True, "bidirectional": True}
        self.row_gru = nn.GRU(1, hidden, **gru)
        self.col_gru = nn.GRU(2 * hidden, hidden, **gru)
        sizes = [2 * hidden, *fc]
        mlp: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            mlp += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.mlp = nn.Sequential(*mlp, nn.Linear(sizes[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, m, n = x.shape
        x = x if self.clip_input is None else x.clamp(max=self.clip_input)
        h, _ = self.row_gru(x.reshape(b, m * n, 1))  # cells read row after row
        h = h.reshape(b, m, n, -1).transpose(1, 2).reshape(b, n * m, -1)  # column after column
        h, _ = self.col_gru(h)
        h = h.reshape(b, n, m, -1).transpose(1, 2)  # back to (B, M, N, 2 * hidden)
        return self.mlp(h).squeeze(-1)
