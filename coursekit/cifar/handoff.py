"""Notebook 04 -> notebook 03: the hand-off file of the final CIFAR-10 network.

Once its final network is trained, notebook 04 calls `write_handoff`, which writes
`final_net.json` at `settings.artifact_path("04_cifar10_256k", "handoff", "final_net.json")`:
`<run folder>/handoff/` in a batch run, `<runs>/lab/04_cifar10_256k/handoff/` in JupyterLab
(`smoke` instead of `lab` in smoke mode). It says all notebook 03 needs, so that nothing is
guessed from notebook 04's defaults:

- checkpoint: the trained weights, as a path relative to the hand-off file (the checkpoint
  sits in the sibling `checkpoints/` folder), so a runs folder moved or copied elsewhere
  still resolves;
- model: FinalNet's constructor arguments (widths, depth, num_classes, head_scale);
- mean, std, classes: how images are normalized and what each output unit means;
- holdout, subset: the validation split, whose images the network never trained on;
- val_acc, n_params, smoke; config: the whole CifarConfig, for the record.

`read_handoff` returns it as a `Handoff`, whose `load_model` rebuilds the trained net.
Notebook 03 finds the file with `coursekit.cam.backbones.find_cifar10_handoff`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from coursekit import settings
from coursekit.checkpoint import load_checkpoint, write_json
from coursekit.cifar.lesson import NORMALIZATIONS, CifarConfig
from coursekit.cifar.models import FinalNet
from coursekit.data.formats import CIFAR_CLASSES
from coursekit.models.measure import count_parameters

NOTEBOOK = "04_cifar10_256k"
KIND = "handoff"  # the artifact kind: the folder beside `checkpoints/`
FILE = "final_net.json"
FORMAT = 1  # bumped when a field changes meaning, so an old file is refused, not misread


class HandoffError(ValueError):
    """A hand-off file exists but cannot be used."""


@dataclass(frozen=True)
class Handoff:
    """Notebook 04's final network as handed on: where it is and how to rebuild it.

    path: the hand-off file; checkpoint: the weights (absolute); model: FinalNet's
    constructor arguments; mean, std: per-channel normalization of [0, 1] pixels;
    classes: output unit -> class name; holdout, subset: notebook 04's validation split
    (`lesson.holdout_split` of the first `subset` images); val_acc: validation accuracy;
    n_params: trainable parameters; smoke: trained on the synthetic smoke fixture;
    config: notebook 04's CifarConfig as a dict.
    """

    path: Path
    checkpoint: Path
    model: dict[str, Any]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    holdout: int
    subset: int | None
    val_acc: float
    n_params: int
    smoke: bool
    config: dict[str, Any]

    def build_model(self) -> FinalNet:
        """Return the untrained FinalNet with the handed-on architecture."""
        return FinalNet(**self.model, max_params=None)  # a trained net is read as it was

    def load_model(self) -> FinalNet:
        """Return the trained FinalNet, weights read from the checkpoint, in eval mode."""
        if not self.checkpoint.is_file():
            raise FileNotFoundError(
                f"the hand-off {self.path} names the checkpoint {self.checkpoint}, which does "
                "not exist: rerun notebook 04 (its final training writes both), or pass "
                "another hand-off file"
            )
        model = self.build_model()
        model.load_state_dict(load_checkpoint(self.checkpoint)["model"])
        return model.eval()


def handoff_path() -> Path:
    """Return where notebook 04 writes its hand-off in the current mode (batch run, Lab or
    smoke): `settings.artifact_path("04_cifar10_256k", "handoff", "final_net.json")`."""
    return settings.artifact_path(NOTEBOOK, KIND, FILE)


def model_arguments(model: FinalNet) -> dict[str, Any]:
    """Return the FinalNet constructor arguments that rebuild `model`'s architecture."""
    if not isinstance(model, FinalNet):
        raise HandoffError(
            f"the hand-off carries notebook 04's FinalNet, got {type(model).__name__}"
        )
    convs = [block.conv1.out_channels for block in model.blocks]
    return {
        "widths": convs, "depth": 3 if model.blocks[0].conv3 is not None else 2,
        "num_classes": model.head.out_features, "head_scale": model.head_scale,
    }  # fmt: skip


def _relative(target: Path, start: Path) -> str:
    """Return `target` relative to folder `start`, or absolute if no relative path exists."""
    try:
        return os.path.relpath(target.resolve(), start.resolve())
    except ValueError:  # Windows: another drive
        return str(target.resolve())


def write_handoff(
    config: CifarConfig,
    model: nn.Module,
    val_acc: float,
    checkpoint: str | Path,
    classes: tuple[str, ...] | list[str] = CIFAR_CLASSES,
    path: str | Path | None = None,
) -> Path:
    """Write the hand-off of notebook 04's trained final network and return its path.

    config: the CifarConfig it was trained with (normalization, validation split);
    model: the trained FinalNet; val_acc: its validation accuracy; checkpoint: the file its
    weights are in; path: default `handoff_path()`.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint}: hand on a trained network")
    path = Path(path) if path is not None else handoff_path()
    mean, std = NORMALIZATIONS[config.normalize]
    data = {
        "format": FORMAT, "notebook": NOTEBOOK, "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "checkpoint": _relative(checkpoint, path.parent), "model": model_arguments(model),
        "mean": list(mean), "std": list(std), "classes": list(classes),
        "holdout": config.holdout, "subset": config.subset, "val_acc": float(val_acc),
        "n_params": count_parameters(model), "smoke": settings.smoke_mode(),
        "config": asdict(config),
    }  # fmt: skip
    return write_json(data, path)


def read_handoff(path: str | Path) -> Handoff:
    """Return the Handoff stored in `path`; HandoffError if it is not a usable hand-off."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        version = data.get("format")
    except (ValueError, AttributeError) as exc:
        raise HandoffError(f"{path} is not a JSON object ({exc}); rerun notebook 04") from exc
    if version != FORMAT:
        raise HandoffError(
            f"{path} is a hand-off of format {version!r}, this coursekit reads format "
            f"{FORMAT}: rerun notebook 04 with this coursekit to write it again"
        )
    try:
        return _handoff(path, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise HandoffError(f"{path} lacks or garbles {exc}; rerun notebook 04") from exc


def _handoff(path: Path, data: dict[str, Any]) -> Handoff:
    """Return the Handoff of the JSON `data` read from `path`."""
    checkpoint = Path(data["checkpoint"])
    if not checkpoint.is_absolute():  # relative to the hand-off: the runs folder may move
        checkpoint = (path.parent / checkpoint).resolve()
    return Handoff(
        path=path, checkpoint=checkpoint, model=dict(data["model"]), mean=tuple(data["mean"]),
        std=tuple(data["std"]), classes=tuple(data["classes"]), holdout=int(data["holdout"]),
        subset=_optional_int(data["subset"]), val_acc=float(data["val_acc"]),
        n_params=int(data["n_params"]), smoke=bool(data["smoke"]), config=dict(data["config"]),
    )  # fmt: skip


def _optional_int(value: Any) -> int | None:
    """Return `value` as an int, None staying None."""
    return None if value is None else int(value)
