"""Backbones of notebook 03 (CAM sensitivity): torchvision ImageNet classifiers or the
notebook-04 CIFAR-10 network, each with the layers a CAM method hooks.

Pretrained ImageNet weights come from torchvision: `torch.hub` keeps them in its cache
(`<torch hub dir>/checkpoints/<file>.pth`) and downloads them there when online. Offline
and not cached, `load_backbone` raises `WeightsMissingError` naming the file, the folder to
copy it into and the offline alternative, `backbone="cifar10"`: the final network of
notebook 04 reloaded from its checkpoint. `pretrained=False` gives random weights (smoke
mode), and the backbone's `caption` says so on every figure.
"""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from coursekit.checkpoint import checkpoint_path, load_checkpoint
from coursekit.data.formats import CIFAR_CLASSES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NOTEBOOK04 = "04_cifar10_256k"
NOTEBOOK04_BUDGET_S = 3600.0  # notebook 04's default final_budget_minutes = 60
NOTEBOOK04_HOLDOUT = 5000  # notebook 04's default holdout
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
NOTEBOOK04_COMMAND = (
    "run notebook 04 with its default parameters in JupyterLab, or "
    "`papermill notebooks/04_cifar10_256k.ipynb /tmp/04.ipynb` (both write the checkpoint "
    "there); after a batch run (`./kit coursekit oar notebooks/04_cifar10_256k.ipynb ...`) "
    "pass cifar10_checkpoint=<its run folder>/checkpoints/<name>.pt instead"
)


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


def notebook04_final_config(device: str | torch.device = "auto", amp: bool | None = None):
    """Return the CifarConfig of notebook 04's final network with its default parameters.

    amp: None means what notebook 04 does on `device` (float16 autocast on CUDA only).
    """
    from coursekit.cifar import lesson as lc
    from coursekit.settings import get_device

    if amp is None:
        amp = lc.FINAL.amp and get_device(device).type == "cuda"
    return replace(
        lc.FINAL, time_budget_s=NOTEBOOK04_BUDGET_S, holdout=NOTEBOOK04_HOLDOUT, subset=None,
        seed=0, device="auto", amp=amp,
    )  # fmt: skip


def default_cifar10_checkpoint(device: str | torch.device = "auto") -> Path:
    """Return the checkpoint notebook 04 writes with its default parameters.

    Its name hashes the config, amp included (on only on CUDA): the one made on this kind
    of device is preferred; a GPU-trained one is used on a CPU (and the reverse) if it is
    the only one there.
    """
    own = notebook04_final_config(device)
    paths = [checkpoint_path(NOTEBOOK04, own.name)]
    other = replace(own, amp=not own.amp)
    paths.append(checkpoint_path(NOTEBOOK04, other.name))
    return next((p for p in paths if p.exists()), paths[0])


def load_cifar10(
    checkpoint: str | Path | None = None,
    config=None,
    pretrained: bool = True,
    device: str | torch.device = "cpu",
) -> Backbone:
    """Return notebook 04's final CIFAR-10 network (FinalNet) as a Backbone.

    checkpoint: the file notebook 04 wrote (default: `default_cifar10_checkpoint`); config:
    the CifarConfig it was trained with (default: notebook 04's final one), which decides
    the architecture; pretrained=False: random weights, no checkpoint read (smoke mode).
    """
    from coursekit.cifar import lesson as lc

    config = config or notebook04_final_config(device)
    model = lc.make_model(config).to(memory_format=torch.contiguous_format)
    caption = f"réseau CIFAR-10 du notebook 04, {RANDOM_NOTE}"
    if pretrained:
        path = Path(checkpoint) if checkpoint is not None else default_cifar10_checkpoint(device)
        if not path.exists():
            raise FileNotFoundError(
                f"no trained CIFAR-10 network at {path}. To make it, {NOTEBOOK04_COMMAND}."
            )
        model.load_state_dict(load_checkpoint(path)["model"])
        caption = f"réseau CIFAR-10 du notebook 04 ({path.name})"
    return Backbone(
        name="cifar10", model=model.to(device).eval(), input_size=32, mean=lc.CIFAR_MEAN,
        std=lc.CIFAR_STD, classes=CIFAR_CLASSES, target_layer="blocks.2", fc_layer="head",
        random_weights=not pretrained, caption=caption,
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
    cifar10_checkpoint: str | Path | None = None,
    target_layer: str | None = None,
    device: str | torch.device = "cpu",
) -> Backbone:
    """Return the Backbone `name` (one of BACKBONES), its weights loaded unless pretrained=False.

    input_size: side of the images for ImageNet backbones (CIFAR-10 is always 32);
    target_layer: the feature map to hook instead of the backbone's last one.
    """
    if name == "cifar10":
        backbone = load_cifar10(cifar10_checkpoint, pretrained=pretrained, device=device)
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
