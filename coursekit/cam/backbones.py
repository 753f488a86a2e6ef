"""Backbones of notebook 03 (CAM sensitivity): torchvision ImageNet classifiers or the
notebook-04 CIFAR-10 network, each with the layers a CAM method hooks.

Pretrained ImageNet weights come from torchvision: `torch.hub` keeps them in its cache
(`<torch hub dir>/checkpoints/<file>.pth`) and downloads them there when online. Offline
and not cached, `load_backbone` raises `WeightsMissingError` naming the file, the folder to
copy it into and the offline alternative, `backbone="cifar10"`: the final network of
notebook 04, rebuilt from the hand-off file notebook 04 writes after its final training
(`coursekit.cifar.handoff`). `find_cifar10_handoff` looks for that file: the path given,
then notebook 04's JupyterLab folder of the current mode, then its newest finished batch
run. `pretrained=False` gives random weights (smoke mode), and the backbone's `caption`
says so on every figure.
"""

from __future__ import annotations

import json
import urllib.error
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from coursekit import settings
from coursekit.cifar.handoff import FILE, KIND, Handoff, read_handoff
from coursekit.cifar.lesson import CIFAR_MEAN, CIFAR_STD
from coursekit.cifar.models import FinalNet
from coursekit.data.formats import CIFAR_CLASSES
from coursekit.french import fr_pct

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NOTEBOOK04 = "04_cifar10_256k"
# name -> (target layer: last convolutional feature map, fc layer right after global
# pooling, or None when the classifier has hidden layers and plain CAM does not apply)
TORCHVISION_LAYERS: dict[str, tuple[str, str | None]] = {
    "resnet18": ("layer4", "fc"),
    "resnet50": ("layer4", "fc"),
    "mobilenet_v3_large": ("features", None),
    "efficientnet_b0": ("features", "classifier.1"),
}
BACKBONES = (*TORCHVISION_LAYERS, "cifar10")
RANDOM_NOTE = "POIDS ALÉATOIRES (non entraînés) : cartes sans signification"
SMOKE_NOTE = "entraîné en mode smoke sur des images synthétiques : cartes sans signification"


class WeightsMissingError(FileNotFoundError):
    """Pretrained weights are neither in torch's cache nor downloadable."""


@dataclass(frozen=True)
class Backbone:
    """A classifier ready for CAM extraction, in eval mode.

    input_size: side of the square images it is fed (pixels); mean, std: per-channel
    normalization of [0, 1] pixels; classes: class names, index = output unit;
    target_layer: name of the hooked feature map; fc_layer: the linear layer after global
    pooling (None: plain CAM does not apply); random_weights: True in smoke mode;
    caption: what every figure says about the network.
    """

    name: str
    model: nn.Module
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    target_layer: str
    fc_layer: str | None
    random_weights: bool
    caption: str
    handoff: Handoff | None = None  # notebook 04's hand-off, for the CIFAR-10 network

    @property
    def device(self) -> torch.device:
        """Return the device holding the model's parameters."""
        return next(self.model.parameters()).device

    def class_index(self, target: int | str) -> int:
        """Return the output index of `target`, a class index or a (case-insensitive) name."""
        if isinstance(target, int) and not isinstance(target, bool):
            if not 0 <= target < len(self.classes):
                raise ValueError(f"class index {target} out of range 0..{len(self.classes) - 1}")
            return target
        names = [c.lower() for c in self.classes]
        if str(target).lower() in names:
            return names.index(str(target).lower())
        close = [c for c in self.classes if str(target).lower() in c.lower()][:8]
        hint = f"; names containing it: {close}" if close else ""
        raise ValueError(f"{self.name} has no class named {target!r}{hint}")


def torchvision_weights(name: str):
    """Return the default torchvision weights enum of backbone `name` (no download)."""
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT


def weights_file(name: str) -> Path:
    """Return where torch's cache keeps the pretrained weights of `name` (may not exist)."""
    url = torchvision_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _download_state_dict(weights) -> dict[str, torch.Tensor]:
    """Return the state dict of `weights`, downloading it into torch's cache if needed."""
    return weights.get_state_dict(progress=False, check_hash=True)


def pretrained_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Return the ImageNet state dict of `name` from torch's cache, downloading it if online.

    Raises WeightsMissingError when the file is not cached and cannot be downloaded.
    """
    weights, path = torchvision_weights(name), weights_file(name)
    try:
        return _download_state_dict(weights)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        raise WeightsMissingError(
            f"pretrained weights of {name} unavailable: {path.name} is not in {path.parent} "
            f"and cannot be downloaded from {weights.url} ({type(exc).__name__}: {exc}). "
            f"Download that file on a machine with internet and copy it into {path.parent}, "
            "or use backbone='cifar10' (the CIFAR-10 network of notebook 04, loaded from its "
            "checkpoint), which needs no download."
        ) from exc


class HandoffMissingError(FileNotFoundError):
    """No hand-off of notebook 04's final network where notebook 03 looks for one."""


def lab_handoff() -> Path:
    """Return where notebook 04 run in JupyterLab keeps its hand-off, in the current mode.

    `settings.lab_path`, not `artifact_path`: in a batch run of notebook 03, artifact_path
    would name 03's own run folder, not the place notebook 04 wrote to in JupyterLab.
    """
    return settings.lab_path(NOTEBOOK04, KIND, FILE)


def batch_handoffs() -> list[Path]:
    """Return the hand-offs of notebook 04's finished batch runs of this mode, the last
    finished first.

    A run counts when its status.json says done and its smoke flag is the current mode's
    (a smoke network is never taken for a trained one, nor the reverse). status.json is
    read directly: notebook code never imports coursekit.batch.
    """
    found = []
    for status_file in (settings.runs_dir() / NOTEBOOK04).glob("*/status.json"):
        try:
            status = json.loads(status_file.read_text())
        except (OSError, ValueError):
            continue
        handoff = status_file.parent / KIND / FILE
        done = isinstance(status, dict) and status.get("state") == "done"
        if done and bool(status.get("smoke")) == settings.smoke_mode() and handoff.is_file():
            found.append((status.get("updated", ""), status_file.parent.name, handoff))
    return [handoff for *_, handoff in sorted(found, reverse=True)]


def find_cifar10_handoff(path: str | Path | None = None) -> Path:
    """Return the hand-off file of notebook 04's final network that notebook 03 uses.

    In order: `path` (a hand-off file, or a run folder holding handoff/final_net.json);
    notebook 04's JupyterLab hand-off of the current mode (`lab_handoff`); the newest
    finished batch run of notebook 04 of this mode (`batch_handoffs`). Raises
    HandoffMissingError naming what was looked for and how to make it.
    """
    if path is not None:
        given = Path(path).expanduser()
        for candidate in (given, given / KIND / FILE, given / FILE):
            if candidate.is_file():
                return candidate
        raise HandoffMissingError(
            f"cifar10_handoff={str(path)!r}: no hand-off file there (nor {KIND}/{FILE} in it)"
            f"; give the {FILE} that notebook 04 writes after its final training"
        )
    lab = lab_handoff()
    if lab.is_file():
        return lab
    runs = batch_handoffs()
    if runs:
        return runs[0]
    raise HandoffMissingError(_missing_message(lab))


def _missing_message(lab: Path) -> str:
    """Return the error for a hand-off found nowhere: what was looked for, how to get it."""
    smoke = settings.smoke_mode()
    mode = "smoke (COURSEKIT_SMOKE=1)" if smoke else "real (not smoke)"
    flag = " --smoke" if smoke else ""
    return (
        f"no trained CIFAR-10 network of notebook 04 to load. Looked for its hand-off file "
        f"{lab} (notebook 04 run in JupyterLab) and for finished {mode} batch runs "
        f"{settings.runs_dir() / NOTEBOOK04}/*/{KIND}/{FILE} (status.json: done). "
        f"To make one, run notebook 04 in the same mode: in JupyterLab, or "
        f"`coursekit run{flag} notebooks/04_cifar10_256k.ipynb` (on Grid'5000: `coursekit oar "
        f"...`); its final training writes the hand-off. Or pass cifar10_handoff=<a "
        f"{FILE}, or a run folder of notebook 04>."
    )


def load_cifar10(
    handoff: str | Path | None = None, pretrained: bool = True, device: str | torch.device = "cpu"
) -> Backbone:
    """Return notebook 04's final CIFAR-10 network (FinalNet) as a Backbone.

    handoff: notebook 04's hand-off file (default: `find_cifar10_handoff`), which gives the
    architecture, the checkpoint and the normalization; pretrained=False: FinalNet's
    default architecture with random weights, nothing read.
    """
    common = {"name": "cifar10", "input_size": 32, "target_layer": "blocks.2", "fc_layer": "head"}
    if not pretrained:
        torch.manual_seed(0)  # the same random network on every run
        model = FinalNet().to(memory_format=torch.contiguous_format)
        return Backbone(
            model=model.to(device).eval(), mean=CIFAR_MEAN, std=CIFAR_STD, classes=CIFAR_CLASSES,
            random_weights=True, caption=f"réseau CIFAR-10 du notebook 04, {RANDOM_NOTE}",
            **common,
        )  # fmt: skip
    hand = read_handoff(find_cifar10_handoff(handoff))
    model = hand.load_model().to(memory_format=torch.contiguous_format)
    caption = (
        f"réseau CIFAR-10 du notebook 04 ({hand.checkpoint.name}, validation "
        f"{fr_pct(hand.val_acc, 1)})" + (f", {SMOKE_NOTE}" if hand.smoke else "")
    )
    return Backbone(
        model=model.to(device).eval(), mean=hand.mean, std=hand.std, classes=hand.classes,
        random_weights=False, caption=caption, handoff=hand, **common,
    )  # fmt: skip


def load_torchvision(
    name: str, pretrained: bool = True, input_size: int = 224, device: str | torch.device = "cpu"
) -> Backbone:
    """Return torchvision classifier `name` with ImageNet weights (or random ones) as a Backbone."""
    from torchvision.models import get_model

    if name not in TORCHVISION_LAYERS:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
    weights = torchvision_weights(name)
    torch.manual_seed(0)  # without pretrained weights: the same random network on every run
    model = get_model(name, weights=None)
    if pretrained:
        model.load_state_dict(pretrained_state_dict(name))
        caption = f"{name}, poids ImageNet de torchvision"
    else:
        caption = f"{name}, {RANDOM_NOTE}"
    target, fc = TORCHVISION_LAYERS[name]
    return Backbone(
        name=name, model=model.to(device).eval(), input_size=input_size, mean=IMAGENET_MEAN,
        std=IMAGENET_STD, classes=tuple(weights.meta["categories"]), target_layer=target,
        fc_layer=fc, random_weights=not pretrained, caption=caption,
    )  # fmt: skip


def load_backbone(
    name: str,
    *,
    pretrained: bool = True,
    input_size: int = 224,
    cifar10_handoff: str | Path | None = None,
    target_layer: str | None = None,
    device: str | torch.device = "cpu",
) -> Backbone:
    """Return the Backbone `name` (one of BACKBONES), its weights loaded unless pretrained=False.

    input_size: side of the images for ImageNet backbones (CIFAR-10 is always 32);
    cifar10_handoff: notebook 04's hand-off file (see `find_cifar10_handoff`);
    target_layer: the feature map to hook instead of the backbone's last one.
    """
    if name == "cifar10":
        backbone = load_cifar10(cifar10_handoff, pretrained=pretrained, device=device)
    elif name in TORCHVISION_LAYERS:
        backbone = load_torchvision(name, pretrained, input_size, device)
    else:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
    if target_layer is not None:
        if target_layer not in dict(backbone.model.named_modules()):
            raise ValueError(f"{name} has no layer {target_layer!r}; see model.named_modules()")
        # Plain CAM reads the fc weights, which only fit the map just before global pooling.
        fc = backbone.fc_layer if target_layer == backbone.target_layer else None
        backbone = replace(backbone, target_layer=target_layer, fc_layer=fc)
    return backbone
