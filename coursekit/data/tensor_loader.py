"""Fast path for small image datasets: the whole set as one uint8 tensor on the device.

`torchvision` datasets + `transforms` + `DataLoader` convert every sample through PIL in
Python; for MNIST-sized data that costs more than training LeNet-5 itself. `TensorLoader`
keeps the raw uint8 pixels on the training device and builds each batch with a handful of
tensor ops (index, flip, crop, normalize), so data time becomes a few percent of an epoch.

Shapes: images are uint8 (N, C, H, W); labels int64 (N,); a batch is x float32 (B, C, H, W)
normalized and y int64 (B,).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence, Sized
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Subset, TensorDataset
from torchvision import datasets

from coursekit.data.cifar_jpg import CIFAR10Jpg
from coursekit.settings import get_device

SUPPORTED = (
    "torchvision MNIST-family datasets (MNIST, FashionMNIST, KMNIST, EMNIST, QMNIST), "
    "CIFAR10/CIFAR100, coursekit's CIFAR10Jpg, and torch.utils.data.Subset of those"
)


def to_uint8_tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images uint8 (N, C, H, W), labels int64 (N,)) read from the dataset's arrays.

    The dataset's `transform` is ignored: pixels come raw from `.data`, so pass the
    normalization to `TensorLoader` instead.
    """
    if isinstance(dataset, Subset):
        images, labels = to_uint8_tensors(dataset.dataset)
        index = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
        return images[index], labels[index]
    if isinstance(dataset, datasets.MNIST):
        return _mnist_tensors(dataset)
    if isinstance(dataset, datasets.CIFAR10 | CIFAR10Jpg):  # both keep uint8 (N, H, W, C)
        return _cifar_tensors(dataset)
    raise TypeError(
        f"to_uint8_tensors does not know how to read {type(dataset).__name__!r}; "
        f"supported: {SUPPORTED}. For other data build the uint8 (N, C, H, W) tensor "
        "yourself and call TensorLoader(images, labels)."
    )


def _mnist_tensors(dataset: datasets.MNIST) -> tuple[torch.Tensor, torch.Tensor]:
    """Return MNIST-family `.data` (N, H, W) as (N, 1, H, W) uint8 and targets as int64."""
    images = torch.as_tensor(dataset.data)
    if images.dtype != torch.uint8 or images.dim() != 3:
        raise TypeError(
            f"{type(dataset).__name__}.data should be uint8 (N, H, W), got "
            f"{images.dtype} {tuple(images.shape)}"
        )
    return images.unsqueeze(1).contiguous(), torch.as_tensor(dataset.targets).long()


def _cifar_tensors(dataset: datasets.CIFAR10 | CIFAR10Jpg) -> tuple[torch.Tensor, torch.Tensor]:
    """Return CIFAR `.data` numpy (N, H, W, C) as uint8 (N, C, H, W) and targets as int64."""
    data = np.asarray(dataset.data)
    if data.dtype != np.uint8 or data.ndim != 4:
        raise TypeError(
            f"{type(dataset).__name__}.data should be uint8 (N, H, W, C), got "
            f"{data.dtype} {data.shape}"
        )
    images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    return images, torch.as_tensor(dataset.targets, dtype=torch.long)


def normalize_uint8(
    images: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None
) -> torch.Tensor:
    """Return float32 (B, C, H, W): uint8 pixels / 255, then (x - mean) / std per channel."""
    # Same op order as ToTensor() + Normalize, so results match torchvision bit for bit.
    x = images.to(torch.float32).div_(255)
    if mean is not None and std is not None:
        x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    return x


def random_hflip(images: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Return (B, C, H, W) images with each one mirrored left-right with probability p."""
    flip = torch.rand(images.shape[0], device=images.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Return (B, C, H, W) crops at random offsets of the images zero-padded by `padding`."""
    if padding == 0:
        return images
    b, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (b, 1), device=device)
    left = torch.randint(0, 2 * padding + 1, (b, 1), device=device)
    rows = (top + torch.arange(h, device=device))[:, :, None]  # (B, H, 1)
    cols = (left + torch.arange(w, device=device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=device)[:, None, None]
    # Channels last so one advanced index gathers (B, H, W, C) for every sample at once.
    crops = padded.permute(0, 2, 3, 1)[batch, rows, cols]
    return crops.permute(0, 3, 1, 2).contiguous()


class TensorLoader:
    """Iterable of (x float32 (B, C, H, W) normalized, y int64 (B,)) batches from uint8 tensors.

    The images stay uint8 on `device`; each batch is indexed, augmented (optional random
    horizontal flip, random crop after zero padding) and normalized there in one go.
    With `shuffle`, each epoch's order is a permutation drawn from the global torch RNG on
    CPU when iteration starts, so `torch.manual_seed` or restoring
    `torch.get_rng_state()` reproduces it. Augmentation draws from the default generator of
    `device` (the global CPU one on CPU).

    `len(loader)` is the number of batches; `len(loader.dataset)` and `loader.num_samples`
    the number of samples, as a DataLoader-based training loop expects.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int = 64,
        shuffle: bool = True,
        drop_last: bool = False,
        device: str | torch.device | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        hflip: bool = False,
        crop_padding: int = 0,
    ) -> None:
        _check_images_labels(images, labels)
        _check_options(batch_size, crop_padding)
        channels = images.shape[1]
        self.device = get_device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.long)
        self.mean, self.std = _check_mean_std(mean, std, channels, self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.hflip = hflip
        self.crop_padding = crop_padding
        self.dataset: Sized = TensorDataset(self.images, self.labels)

    @classmethod
    def from_dataset(cls, dataset: Any, **kwargs: Any) -> TensorLoader:
        """Return a TensorLoader over a torchvision dataset (see `to_uint8_tensors`)."""
        loader = cls(*to_uint8_tensors(dataset), **kwargs)
        # Keep the source so `loader.dataset.classes` etc. still work in notebooks.
        loader.dataset = dataset
        return loader

    @property
    def num_samples(self) -> int:
        """Return the number of samples N."""
        return self.images.shape[0]

    def __len__(self) -> int:
        """Return the number of batches per epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Return an iterator over one epoch; the shuffle permutation is drawn right here."""
        order = torch.randperm(self.num_samples).to(self.device) if self.shuffle else None
        return self._batches(order)

    def _batches(self, order: torch.Tensor | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) batches in `order` (None: dataset order)."""
        stop = len(self) * self.batch_size if self.drop_last else self.num_samples
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, stop)
            if order is None:
                images, labels = self.images[start:end], self.labels[start:end]
            else:
                index = order[start:end]
                images, labels = self.images[index], self.labels[index]
            yield self.transform(images), labels

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """Return float32 (B, C, H, W): the uint8 batch augmented (if enabled) and normalized."""
        if self.hflip:
            images = random_hflip(images)
        if self.crop_padding:
            images = random_crop(images, self.crop_padding)
        return normalize_uint8(images, self.mean, self.std)

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return (
            f"TensorLoader(N={n}, image=({c}, {h}, {w}), batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, device={self.device}, "
            f"hflip={self.hflip}, crop_padding={self.crop_padding})"
        )


def _check_images_labels(images: Any, labels: Any) -> None:
    """Raise TypeError/ValueError unless images are uint8 (N, C, H, W) and labels match."""
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError(
            "images and labels must be torch tensors, got "
            f"{type(images).__name__} and {type(labels).__name__}"
        )
    if images.dtype != torch.uint8:
        raise TypeError(
            f"images must be uint8 pixels 0-255, got {images.dtype}; normalization happens "
            "in the loader (mean/std), so pass the raw uint8 data"
        )
    if images.dim() != 4:
        hint = " (add the channel axis: images.unsqueeze(1))" if images.dim() == 3 else ""
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}{hint}")
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(
            f"labels must be a 1-D integer tensor (N,), got {labels.dtype} {tuple(labels.shape)}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    if images.shape[0] == 0:
        raise ValueError("images is empty (N = 0)")


def _check_options(batch_size: int, crop_padding: int) -> None:
    """Raise ValueError for a non-positive batch size or a negative crop padding."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
        raise ValueError(f"crop_padding must be an int >= 0, got {crop_padding!r}")


def _check_mean_std(
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    channels: int,
    device: torch.device,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Return mean and std as float32 (C,) tensors on device, or (None, None) for no scaling."""
    if mean is None and std is None:
        return None, None
    if mean is None or std is None:
        raise ValueError("give both mean and std, or neither (then x = pixels / 255)")
    mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
    for name, value in (("mean", mean_t), ("std", std_t)):
        if value.numel() != channels:
            raise ValueError(
                f"{name} has {value.numel()} values but the images have {channels} channel(s)"
            )
    if not bool((std_t > 0).all()):
        raise ValueError(f"std must be > 0 per channel, got {std_t.tolist()}")
    return mean_t.to(device), std_t.to(device)
