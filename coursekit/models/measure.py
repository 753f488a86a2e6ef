"""Measuring a network: parameter counts and statistics, activations caught with hooks.

Used wherever a notebook looks inside a model (notebook 05: the weights under L1, the
features around BatchNorm; notebook 04: parameter budgets). The layer-by-layer table and
operation counts of notebook 04 are in `coursekit.models.layers`.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

STAT_COLUMNS = ("min", "max", "mean", "std")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Return the number of (trainable) scalar parameters of `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def tensor_stats(values: torch.Tensor, near_zero: float | None = None) -> dict[str, float]:
    """Return {'min', 'max', 'mean', 'std'} of all the values of a tensor (any shape).

    near_zero: also return 'near_zero', the fraction of values with |v| < near_zero.
    """
    flat = values.detach().float().flatten()
    stats = {
        "min": flat.min().item(),
        "max": flat.max().item(),
        "mean": flat.mean().item(),
        "std": flat.std().item() if flat.numel() > 1 else 0.0,
    }
    if near_zero is not None:
        stats["near_zero"] = (flat.abs() < near_zero).float().mean().item()
    return stats


def parameter_stats(
    model: nn.Module, by_layer: bool = False, near_zero: float = 1e-3
) -> pd.DataFrame:
    """Return min/max/mean/std (and share of |p| < near_zero) of the trainable parameters.

    One row 'all' over every parameter concatenated (the sheet's statistics), or with
    by_layer one row per parameter tensor (e.g. 'c1.weight') followed by 'all'.
    Columns: count, min, max, mean, std, near_zero.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameter")
    rows: dict[str, dict[str, float]] = {}
    if by_layer:
        for name, p in named:
            rows[name] = {"count": p.numel(), **tensor_stats(p, near_zero)}
    everything = torch.cat([p.detach().flatten() for _, p in named])
    rows["all"] = {"count": everything.numel(), **tensor_stats(everything, near_zero)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame["count"] = frame["count"].astype(int)
    return frame


def capture_io(
    model: nn.Module, module: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (input, output) of `module` during model(x), caught with a forward hook.

    Runs without gradients and leaves the model's train/eval mode as it is, so a
    BatchNorm layer in train mode normalizes with the batch's own statistics and in eval
    mode with its running estimates.
    """
    seen: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen["input"], seen["output"] = inputs[0].detach(), output.detach()

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    if not seen:
        raise ValueError(f"{type(module).__name__} was not called by the model's forward")
    return seen["input"], seen["output"]


def feature_stats(
    model: nn.Module, module: nn.Module, x: torch.Tensor
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the statistics of the features entering and leaving `module` during model(x).

    First frame: rows 'before' and 'after', columns min/max/mean/std over all values.
    Second frame: one row per channel (features of shape (B, C, H, W) or (B, C)) with
    columns mean_before, std_before, mean_after, std_after, computed over batch and
    space, which is what BatchNorm normalizes.
    """
    before, after = capture_io(model, module, x)
    overall = pd.DataFrame(
        {"before": tensor_stats(before), "after": tensor_stats(after)}
    ).T[list(STAT_COLUMNS)]
    dims = [0, *range(2, before.dim())]
    per_channel = pd.DataFrame(
        {
            "mean_before": before.mean(dims).cpu().numpy(),
            "std_before": before.std(dims).cpu().numpy(),
            "mean_after": after.mean(dims).cpu().numpy(),
            "std_after": after.std(dims).cpu().numpy(),
        }
    )
    per_channel.index.name = "channel"
    return overall, per_channel


# --- Layer table and operation counts (notebook 04) -------------------------------------------
