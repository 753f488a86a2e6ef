"""Notebook 07: a trained HNet exported to TorchScript, to run without coursekit's code.

`torch.jit.trace` records the forward pass on an example batch; the saved file loads with
`torch.jit.load` alone (no `coursekit` import, no Python class), e.g. in a C++ program or
inside a sound-source localizer's training. `check_export` says whether the exported
model gives the same logits as the original on other matrices (another batch size too).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from coursekit.checkpoint import atomic_write


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Return `path`, where the traced TorchScript of `model` (eval mode, CPU) is written."""
    model = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        # the input-shape check in forward() is a Python branch: traced once, as intended
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example.cpu())
    path = Path(path)
    atomic_write(path, lambda f: torch.jit.save(traced, f))
    return path


def check_export(model: nn.Module, path: str | Path, inputs: torch.Tensor) -> float:
    """Return the largest absolute difference between the logits of `model` and of the
    TorchScript file at `path` on `inputs` (CPU, eval mode)."""
    loaded = torch.jit.load(str(path), map_location="cpu").eval()
    reference = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        return float((loaded(inputs.cpu()) - reference(inputs.cpu())).abs().max())
