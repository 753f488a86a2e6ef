"""TensorLoader: torchvision-equal values, order from the global RNG, vectorized augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Subset
from torchvision import datasets, transforms

from coursekit.data.fixtures import write_cifar10_fixture, write_mnist_fixture
from coursekit.data.tensor_loader import (
    TensorLoader,
    random_crop,
    random_hflip,
    to_uint8_tensors,
)
from coursekit.data.vision import load_dataset

FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fashion")
    write_mnist_fixture(root, name="FashionMNIST", n_train=300, n_test=50, seed=0)
    return root


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10_fixture(root, n_train=120, n_test=30, seed=0)
    return root


def fashion(root: Path, transform=None) -> datasets.FashionMNIST:
    return datasets.FashionMNIST(root, train=True, transform=transform)


def reference_batches(dataset, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    return list(loader)


def identity_loader(n: int = 203, channels: int = 1, side: int = 6, **kwargs) -> TensorLoader:
    """Loader whose label is each sample's index, so batches can be traced back to images."""
    generator = torch.Generator().manual_seed(1)
    shape = (n, channels, side, side)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    kwargs.setdefault("device", "cpu")
    return TensorLoader(images, torch.arange(n), **kwargs)


def epoch_order(loader: TensorLoader) -> torch.Tensor:
    return torch.cat([y for _, y in loader])


def as_uint8(x: torch.Tensor) -> torch.Tensor:
    """Undo pixels / 255 (loader built without mean/std)."""
    return (x * 255).round().to(torch.uint8)


# --- to_uint8_tensors ------------------------------------------------------------------


def test_to_uint8_tensors_mnist_shapes_and_pixels(fashion_root: Path) -> None:
    dataset = fashion(fashion_root)
    images, labels = to_uint8_tensors(dataset)
    assert images.shape == (300, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (300,) and labels.dtype == torch.int64
    for i in (0, 17, 299):
        pil_image, label = dataset[i]
        assert torch.equal(images[i, 0], torch.from_numpy(np.array(pil_image)))
        assert labels[i].item() == label


def test_to_uint8_tensors_cifar_channel_first(cifar_root: Path) -> None:
    dataset = load_dataset("CIFAR10", root=cifar_root)
    images, labels = to_uint8_tensors(dataset)
    n = len(dataset)
    assert images.shape == (n, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert torch.equal(images[5].permute(1, 2, 0), torch.from_numpy(dataset.data[5]))
    assert labels[5].item() == dataset.targets[5]


def test_to_uint8_tensors_subset_and_nested_subset(fashion_root: Path) -> None:
    dataset = fashion(fashion_root)
    images, labels = to_uint8_tensors(dataset)
    subset = Subset(dataset, [5, 0, 299, 42])
    sub_images, sub_labels = to_uint8_tensors(subset)
    assert torch.equal(sub_images, images[[5, 0, 299, 42]])
    assert torch.equal(sub_labels, labels[[5, 0, 299, 42]])
    nested_images, _ = to_uint8_tensors(Subset(subset, range(1, 3)))
    assert torch.equal(nested_images, images[[0, 299]])


def test_to_uint8_tensors_rejects_unsupported_dataset() -> None:
    dataset = torch.utils.data.TensorDataset(torch.zeros(4, 1, 2, 2), torch.zeros(4))
    with pytest.raises(TypeError, match="TensorDataset.*supported: .*MNIST.*CIFAR10.*Subset"):
        to_uint8_tensors(dataset)


# --- values, shapes, dataset length ----------------------------------------------------


def test_batches_equal_torchvision_pipeline_mnist(fashion_root: Path) -> None:
    normalize = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(FASHION_MEAN, FASHION_STD)]
    )
    expected = reference_batches(fashion(fashion_root, normalize), batch_size=64)
    loader = TensorLoader.from_dataset(
        fashion(fashion_root),
        batch_size=64,
        shuffle=False,
        device="cpu",
        mean=FASHION_MEAN,
        std=FASHION_STD,
    )
    got = list(loader)
    assert len(got) == len(expected) == len(loader) == 5
    for (x, y), (x_ref, y_ref) in zip(got, expected, strict=True):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x, x_ref)
        assert torch.equal(y, y_ref)


def test_batches_equal_torchvision_pipeline_cifar(cifar_root: Path) -> None:
    normalize = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)]
    )
    dataset = load_dataset("CIFAR10", root=cifar_root, transform=normalize)
    expected = reference_batches(dataset, batch_size=50)
    loader = TensorLoader.from_dataset(
        dataset, batch_size=50, shuffle=False, device="cpu", mean=CIFAR_MEAN, std=CIFAR_STD
    )
    for (x, y), (x_ref, y_ref) in zip(loader, expected, strict=True):
        assert x.shape[1:] == (3, 32, 32)
        assert torch.equal(x, x_ref)
        assert torch.equal(y, y_ref)


def test_without_mean_std_is_to_tensor(fashion_root: Path) -> None:
    x, _ = next(iter(TensorLoader.from_dataset(fashion(fashion_root), shuffle=False, device="cpu")))
    x_ref, _ = reference_batches(fashion(fashion_root, transforms.ToTensor()), 64)[0]
    assert torch.equal(x, x_ref)


def test_len_dataset_and_num_samples(fashion_root: Path) -> None:
    dataset = fashion(fashion_root)
    loader = TensorLoader.from_dataset(dataset, batch_size=64, device="cpu")
    assert len(loader.dataset) == loader.num_samples == 300
    assert loader.dataset is dataset
    assert len(identity_loader(n=10, batch_size=4).dataset) == 10


def test_from_subset_matches_pipeline_on_subset(fashion_root: Path) -> None:
    indices = list(range(0, 300, 3))
    normalize = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(FASHION_MEAN, FASHION_STD)]
    )
    expected = reference_batches(Subset(fashion(fashion_root, normalize), indices), 32)
    loader = TensorLoader.from_dataset(
        Subset(fashion(fashion_root), indices),
        batch_size=32,
        shuffle=False,
        device="cpu",
        mean=FASHION_MEAN,
        std=FASHION_STD,
    )
    assert len(loader.dataset) == 100 and len(loader) == 4
    for (x, y), (x_ref, y_ref) in zip(loader, expected, strict=True):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


# --- order ------------------------------------------------------------------------------


def test_every_sample_exactly_once_per_epoch_with_its_own_image() -> None:
    loader = identity_loader(n=203, batch_size=16)
    seen = []
    for x, y in loader:
        assert torch.equal(as_uint8(x), loader.images[y])
        seen.append(y)
    assert torch.equal(torch.cat(seen).sort().values, torch.arange(203))
    assert [len(y) for y in seen] == [16] * 12 + [11]


def test_same_seed_same_order_and_rng_state_restores_it() -> None:
    loader = identity_loader(batch_size=32)
    torch.manual_seed(123)
    first = epoch_order(loader)
    torch.manual_seed(123)
    assert torch.equal(epoch_order(loader), first)
    state = torch.get_rng_state()
    third = epoch_order(loader)
    torch.set_rng_state(state)
    assert torch.equal(epoch_order(loader), third)


def test_permutation_drawn_from_global_rng_at_iter() -> None:
    loader = identity_loader(n=50, batch_size=50)
    torch.manual_seed(7)
    expected = torch.randperm(50)
    torch.manual_seed(7)
    assert torch.equal(epoch_order(loader), expected)


def test_epochs_differ_and_no_shuffle_keeps_order() -> None:
    loader = identity_loader(batch_size=32)
    torch.manual_seed(0)
    assert not torch.equal(epoch_order(loader), epoch_order(loader))
    ordered = identity_loader(batch_size=32, shuffle=False)
    assert torch.equal(epoch_order(ordered), torch.arange(203))


def test_drop_last() -> None:
    loader = identity_loader(n=100, batch_size=32, drop_last=True)
    sizes = [len(y) for _, y in loader]
    assert len(loader) == 3 and sizes == [32, 32, 32]
    assert len(loader.dataset) == 100
    assert len(identity_loader(n=100, batch_size=32)) == 4
    assert len(identity_loader(n=96, batch_size=32, drop_last=True)) == 3


# --- augmentation -------------------------------------------------------------------------


def test_random_hflip_only_mirrors() -> None:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (200, 3, 5, 7), dtype=torch.uint8)
    out = random_hflip(images)
    assert out.shape == images.shape and out.dtype == torch.uint8
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 60 < int(mirrored.sum()) < 140


def test_random_crop_is_a_shift_with_zero_fill() -> None:
    torch.manual_seed(0)
    pad = 2
    images = torch.randint(1, 256, (300, 3, 6, 5), dtype=torch.uint8)
    out = random_crop(images, pad)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = []
    for i in range(len(images)):
        matches = [
            (top, left)
            for top in range(2 * pad + 1)
            for left in range(2 * pad + 1)
            if torch.equal(out[i], padded[i, :, top : top + 6, left : left + 5])
        ]
        assert len(matches) == 1, f"sample {i} is not a padded crop of its image"
        offsets.append(matches[0])
    assert len(set(offsets)) == (2 * pad + 1) ** 2
    assert torch.equal(random_crop(images, 0), images)


def test_loader_augmentation_keeps_shape_and_moves_pixels_only() -> None:
    torch.manual_seed(0)
    pad, side = 3, 8
    loader = identity_loader(
        n=96, channels=3, side=side, batch_size=64, hflip=True, crop_padding=pad
    )
    for x, y in loader:
        assert x.shape == (len(y), 3, side, side) and x.dtype == torch.float32
        for got, original in zip(as_uint8(x), loader.images[y], strict=True):
            # The only allowed outputs: a padded crop of the image or of its mirror.
            candidates = [
                padded[:, top : top + side, left : left + side]
                for padded in F.pad(torch.stack([original, original.flip(-1)]), (pad,) * 4)
                for top in range(2 * pad + 1)
                for left in range(2 * pad + 1)
            ]
            assert any(torch.equal(got, c) for c in candidates)


def test_crop_with_mean_std_equals_torchvision_pad_then_normalize(
    cifar_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torchvision pads the image with black pixels (0), then ToTensor and Normalize turn
    # them into -mean/std; padding after normalization would give 0 instead.
    pad = 4
    dataset = load_dataset("CIFAR10", root=cifar_root)
    torch.manual_seed(0)
    norm = {"mean": CIFAR_MEAN, "std": CIFAR_STD}
    loader = TensorLoader.from_dataset(dataset, batch_size=40, shuffle=False, device="cpu",
                                       crop_padding=pad, **norm)  # fmt: skip
    x, _ = next(iter(loader))
    offset: list[tuple[int, int]] = []
    # torchvision's own RandomCrop, with each offset in turn instead of a random one
    chosen = staticmethod(lambda img, size: (*offset[0], *size))
    monkeypatch.setattr(transforms.RandomCrop, "get_params", chosen)
    reference = transforms.Compose([transforms.RandomCrop(32, padding=pad), transforms.ToTensor(),
                                    transforms.Normalize(CIFAR_MEAN, CIFAR_STD)])  # fmt: skip
    shifted = 0
    for i, got in enumerate(x):
        image = Image.fromarray(dataset.data[i])  # the PIL image torchvision's CIFAR10 gives
        matches = []
        for top in range(2 * pad + 1):
            for left in range(2 * pad + 1):
                offset[:] = [(top, left)]
                if torch.equal(got, reference(image)):
                    matches.append((top, left))
        assert matches, f"sample {i} is no crop of torchvision's padded, normalized image"
        shifted += matches[0] != (pad, pad)
    assert shifted >= 30  # most crops show some of the padding, so its value is checked


# --- errors -----------------------------------------------------------------------------------


LABELS4 = torch.zeros(4, dtype=torch.long)


@pytest.mark.parametrize(
    ("images", "labels", "error", "message"),
    [
        (torch.zeros(4, 1, 2, 2), LABELS4, TypeError, "uint8"),
        (torch.zeros(4, 2, 2, dtype=torch.uint8), LABELS4, ValueError, "unsqueeze"),
        (torch.zeros(3, 1, 2, 2, dtype=torch.uint8), LABELS4, ValueError, "3 images but 4"),
        (torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4), TypeError, "integer"),
        (np.zeros((4, 1, 2, 2), dtype=np.uint8), LABELS4, TypeError, "torch tensors"),
        (torch.zeros(0, 1, 2, 2, dtype=torch.uint8), LABELS4[:0], ValueError, "empty"),
    ],
)
def test_bad_images_or_labels(images, labels, error, message) -> None:
    with pytest.raises(error, match=message):
        TensorLoader(images, labels, device="cpu")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean": (0.5,), "std": (0.5,)}, "mean has 1 values but the images have 3 channel"),
        ({"mean": (0.5,) * 3, "std": (0.5, 0.5)}, "std has 2 values"),
        ({"mean": (0.5,) * 3}, "both mean and std"),
        ({"mean": (0.5,) * 3, "std": (0.5, 0.0, 0.5)}, "std must be > 0"),
        ({"batch_size": 0}, "batch_size"),
        ({"crop_padding": -1}, "crop_padding"),
    ],
)
def test_bad_options(kwargs, message) -> None:
    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match=message):
        TensorLoader(images, LABELS4, device="cpu", **kwargs)
