"""Fixture datasets: real on-disk formats, read by torchvision itself, learnable, fast."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets

from coursekit.data import fixtures
from coursekit.data.fixtures import (
    ensure_fixtures,
    is_fixture_root,
    write_cifar10_fixture,
    write_cifar10_jpg_fixture,
    write_mnist_fixture,
)
from coursekit.fashion.models import LeNet5


def test_mnist_fixture_writes_big_endian_idx_files(tmp_path: Path) -> None:
    raw = write_mnist_fixture(tmp_path, n_train=30, n_test=20)
    assert raw == tmp_path / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(fixtures.MNIST_FILES)
    header = (raw / "train-images-idx3-ubyte").read_bytes()[:16]
    assert struct.unpack(">IIII", header) == (2051, 30, 28, 28)
    header = (raw / "t10k-labels-idx1-ubyte").read_bytes()[:8]
    assert struct.unpack(">II", header) == (2049, 20)
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 16 + 30 * 28 * 28
    assert is_fixture_root(tmp_path)


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_plain_torchvision_reads_mnist_fixtures(tmp_path: Path, name: str) -> None:
    write_mnist_fixture(tmp_path, name=name, n_train=100, n_test=50)
    cls = getattr(datasets, name)
    train, test = cls(tmp_path, train=True), cls(tmp_path, train=False)
    assert train.data.shape == (100, 28, 28) and train.data.dtype == torch.uint8
    assert test.data.shape == (50, 28, 28)
    assert train.targets.bincount().tolist() == [10] * 10
    assert test.targets.bincount().tolist() == [5] * 10


def test_cifar_fixture_pickles_match_the_real_format(tmp_path: Path) -> None:
    folder = write_cifar10_fixture(tmp_path, n_train=50, n_test=20)
    assert sorted(p.name for p in folder.iterdir()) == sorted(fixtures.CIFAR_FILES)
    # Read as the CIFAR web page does (bytes keys) ...
    with open(folder / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert set(batch) == {b"data", b"labels", b"batch_label", b"filenames"}
    assert batch[b"data"].shape == (10, 3072) and batch[b"data"].dtype == np.uint8
    assert batch[b"batch_label"] == b"training batch 1 of 5"
    assert all(isinstance(y, int) for y in batch[b"labels"])
    # ... and as torchvision does (latin1: str keys).
    with open(folder / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    assert meta["label_names"][:2] == ["airplane", "automobile"]


def test_cifar_fixture_is_channel_first_rows(tmp_path: Path) -> None:
    """Row i holds image i as R, G, B planes of 32x32: the layout torchvision reshapes."""
    write_cifar10_fixture(tmp_path, n_train=50, n_test=20)

    class NoMd5(datasets.CIFAR10):
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            self.classes = list(fixtures.CIFAR_CLASSES)

    data = NoMd5(tmp_path).data
    assert data.shape == (50, 32, 32, 3) and data.dtype == np.uint8
    with open(tmp_path / fixtures.CIFAR_FOLDER / "data_batch_1", "rb") as f:
        rows = pickle.load(f, encoding="latin1")["data"]
    assert np.array_equal(rows[0].reshape(3, 32, 32).transpose(1, 2, 0), data[0])


def test_cifar_jpg_fixture_layout(tmp_path: Path) -> None:
    folder = write_cifar10_jpg_fixture(tmp_path, n_train=20, n_test=10, seed=0)
    assert folder == tmp_path / "cifar10-jpg" and is_fixture_root(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["test", "train"]
    for split, per_class in (("train", 2), ("test", 1)):
        classes = sorted(p.name for p in (folder / split).iterdir())
        assert classes == sorted(fixtures.CIFAR_CLASSES)
        names = sorted(p.name for p in (folder / split / "cat").iterdir())
        assert names == [f"{i:04d}.jpg" for i in range(per_class)]
    with Image.open(folder / "train" / "truck" / "0001.jpg") as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (32, 32))


def test_cifar_jpg_fixture_needs_one_image_per_class(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=">= 10"):
        write_cifar10_jpg_fixture(tmp_path, n_train=100, n_test=9)


def test_fixtures_are_deterministic_per_seed(tmp_path: Path) -> None:
    a = write_mnist_fixture(tmp_path / "a", n_train=20, n_test=10, seed=0)
    b = write_mnist_fixture(tmp_path / "b", n_train=20, n_test=10, seed=0)
    c = write_mnist_fixture(tmp_path / "c", n_train=20, n_test=10, seed=1)
    name = "train-images-idx3-ubyte"
    assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / name).read_bytes() != (c / name).read_bytes()


def test_images_vary_within_a_class(fixture_data: Path) -> None:
    train = datasets.MNIST(fixture_data, train=True)
    zeros = train.data[train.targets == 0].float()
    assert zeros.std(dim=0).mean() > 10  # shifts and noise, not one repeated image
    means = torch.stack([train.data[train.targets == c].float().mean(0) for c in range(10)])
    assert torch.cdist(means.flatten(1), means.flatten(1)).fill_diagonal_(1e9).min() > 100


def test_ensure_fixtures_is_idempotent_and_marked(tmp_path: Path) -> None:
    # Its speed is measured by benchmarks/fixtures.py: a timed assertion fails under load.
    root = tmp_path / "fx"
    assert ensure_fixtures(root) == root
    assert is_fixture_root(root)
    assert "synthetic" in (root / fixtures.MARKER).read_text().lower()
    images = root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    before = images.stat().st_mtime_ns
    ensure_fixtures(root)
    assert images.stat().st_mtime_ns == before
    images.unlink()
    ensure_fixtures(root)  # a missing file is written again
    assert images.is_file()


def test_ensure_fixtures_defaults_to_settings_root(tmp_data: Path) -> None:
    assert ensure_fixtures() == tmp_data / "fixtures"
    assert is_fixture_root(tmp_data / "fixtures")


def test_ensure_fixtures_refuses_a_folder_that_may_hold_real_data(tmp_path: Path) -> None:
    (tmp_path / "MNIST").mkdir()
    with pytest.raises(ValueError, match="COURSEKIT_FIXTURE"):
        ensure_fixtures(tmp_path)
    assert not is_fixture_root(tmp_path)


def test_write_mnist_fixture_rejects_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FashionMNIST"):
        write_mnist_fixture(tmp_path, name="KMNIST")


@pytest.mark.usefixtures("one_thread")
def test_lenet_learns_the_mnist_fixture(fixture_data: Path) -> None:
    train = datasets.MNIST(fixture_data, train=True)
    test = datasets.MNIST(fixture_data, train=False)
    x_train, y_train = train.data[:, None].float() / 255, train.targets
    x_test, y_test = test.data[:, None].float() / 255, test.targets
    torch.manual_seed(0)
    model = LeNet5()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(2):
        for batch in torch.randperm(len(x_train)).split(32):
            loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy > 0.5  # chance is 0.1; 0.86-0.93 over seeds 0-3
