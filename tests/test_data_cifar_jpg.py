"""CIFAR-10 as one JPEG per image: the real loader on the JPEG fixture, cache, errors, status."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Subset
from torchvision import datasets

from coursekit.data import (
    CIFAR10Jpg,
    DatasetFormatError,
    DatasetMissingError,
    TensorLoader,
    cifar_jpg,
    class_names,
    dataset_status,
    load_dataset,
    targets,
    to_uint8_tensors,
)
from coursekit.data.fixtures import write_cifar10_fixture, write_cifar10_jpg_fixture
from coursekit.data.formats import MARKER

N_TRAIN, N_TEST = 100, 30
TORCHVISION_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


@pytest.fixture(scope="module")
def jpg_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a root holding only the CIFAR-10 JPEG fixture (read-only for the tests)."""
    root = tmp_path_factory.mktemp("cifar_jpg")
    write_cifar10_jpg_fixture(root, n_train=N_TRAIN, n_test=N_TEST, seed=0)
    return root


@pytest.fixture
def real_root(jpg_fixture: Path, tmp_path: Path) -> Path:
    """Return a writable copy of the JPEG fixture without the fixture marker (a 'real' root)."""
    root = tmp_path / "real"
    shutil.copytree(jpg_fixture, root, ignore=shutil.ignore_patterns(MARKER, ".cache"))
    return root


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls to cifar_jpg.decode_jpegs; return the list of decoded batch sizes."""
    calls: list[int] = []
    real = cifar_jpg.decode_jpegs

    def counting(paths):
        calls.append(len(paths))
        return real(paths)

    monkeypatch.setattr(cifar_jpg, "decode_jpegs", counting)
    return calls


def jpeg_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def train_folder(root: Path) -> Path:
    return root / "cifar10-jpg" / "train"


# --- the real loader reads the fixture ---------------------------------------------------


def test_load_dataset_reads_the_jpg_layout(jpg_fixture: Path) -> None:
    train = load_dataset("CIFAR10", root=jpg_fixture, download=False)
    test = load_dataset("CIFAR10", train=False, root=jpg_fixture, download=False)
    assert isinstance(train, CIFAR10Jpg) and train.train and not test.train
    assert (len(train), len(test)) == (N_TRAIN, N_TEST)
    assert train.data.shape == (N_TRAIN, 32, 32, 3) and train.data.dtype == np.uint8
    assert isinstance(train.targets, list) and all(isinstance(y, int) for y in train.targets)
    assert train.targets == sorted(train.targets)  # class index, then file name
    assert targets(train).bincount().tolist() == [N_TRAIN // 10] * 10
    assert class_names(test) == TORCHVISION_CLASSES
    assert train.class_to_idx["truck"] == 9
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and label == 0


def test_items_behave_like_torchvision(jpg_fixture: Path) -> None:
    dataset = CIFAR10Jpg(jpg_fixture, train=False, target_transform=lambda y: y + 100)
    image, label = dataset[7]
    assert isinstance(image, Image.Image) and image.size == (32, 32) and image.mode == "RGB"
    assert np.array_equal(np.asarray(image), dataset.data[7])
    assert label == dataset.targets[7] + 100
    assert "Split: Test" in repr(dataset)


def test_pixels_are_those_of_the_python_batch_fixture(jpg_fixture: Path, tmp_path: Path) -> None:
    write_cifar10_fixture(tmp_path, n_train=N_TRAIN, n_test=N_TEST, seed=0)
    batches = load_dataset("CIFAR10", root=tmp_path, download=False)
    jpg = load_dataset("CIFAR10", root=jpg_fixture, download=False)
    order = np.argsort(np.asarray(batches.targets), kind="stable")
    assert jpg.targets == [batches.targets[i] for i in order]
    error = np.abs(jpg.data.astype(int) - batches.data[order].astype(int))
    assert error.mean() < 6  # JPEG quality 95: small losses only


def test_python_batches_are_preferred(jpg_fixture: Path, tmp_path: Path) -> None:
    shutil.copytree(jpg_fixture / "cifar10-jpg", tmp_path / "cifar10-jpg")
    write_cifar10_fixture(tmp_path, n_train=50, n_test=20)
    dataset = load_dataset("CIFAR10", root=tmp_path, download=False)
    assert isinstance(dataset, datasets.CIFAR10) and len(dataset) == 50


def test_data_root_from_env(jpg_fixture: Path, tmp_data: Path) -> None:
    shutil.copytree(jpg_fixture, tmp_data / "data")
    assert len(load_dataset("CIFAR10", train=False, download=False)) == N_TEST


def test_tensor_loader_reads_data_without_items(
    jpg_fixture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = CIFAR10Jpg(jpg_fixture)

    def no_items(self, index):
        raise AssertionError("to_uint8_tensors must read .data, not iterate")

    monkeypatch.setattr(CIFAR10Jpg, "__getitem__", no_items)
    images, labels = to_uint8_tensors(Subset(dataset, [3, 1, 50]))
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images[2], torch.from_numpy(dataset.data[50]).permute(2, 0, 1))
    assert labels.tolist() == [dataset.targets[i] for i in (3, 1, 50)]
    loader = TensorLoader.from_dataset(dataset, batch_size=32, shuffle=False, device="cpu")
    x, y = next(iter(loader))
    assert x.shape == (32, 3, 32, 32) and y.tolist() == dataset.targets[:32]
    assert loader.dataset is dataset


# --- decode cache ------------------------------------------------------------------------


def test_cache_is_written_then_reused(real_root: Path, decode_calls: list[int]) -> None:
    first = CIFAR10Jpg(real_root)
    caches = list((real_root / "cifar10-jpg" / ".cache").glob("train-*.npz"))
    assert decode_calls == [N_TRAIN] and len(caches) == 1
    second = CIFAR10Jpg(real_root)
    assert decode_calls == [N_TRAIN]  # not decoded again
    assert np.array_equal(first.data, second.data) and first.targets == second.targets


def test_cache_is_rebuilt_when_a_file_is_added(real_root: Path, decode_calls: list[int]) -> None:
    first = CIFAR10Jpg(real_root)
    cat = train_folder(real_root) / "cat"
    shutil.copy(cat / "0000.jpg", cat / "9999.jpg")
    second = CIFAR10Jpg(real_root)
    assert decode_calls == [N_TRAIN, N_TRAIN + 1] and len(second) == N_TRAIN + 1
    index = second.targets.index(3) + N_TRAIN // 10  # last cat
    assert np.array_equal(second.data[index], first.data[first.targets.index(3)])
    caches = list((real_root / "cifar10-jpg" / ".cache").glob("train-*.npz"))
    assert len(caches) == 1  # the stale cache is removed


def test_cache_is_rebuilt_when_a_file_changes(real_root: Path, decode_calls: list[int]) -> None:
    CIFAR10Jpg(real_root)
    image = train_folder(real_root) / "dog" / "0002.jpg"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    CIFAR10Jpg(real_root)
    assert decode_calls == [N_TRAIN, N_TRAIN]


def test_damaged_cache_is_rebuilt(real_root: Path, decode_calls: list[int]) -> None:
    first = CIFAR10Jpg(real_root)
    (cache,) = (real_root / "cifar10-jpg" / ".cache").glob("train-*.npz")
    cache.write_bytes(b"not a cache")
    second = CIFAR10Jpg(real_root)
    assert len(decode_calls) == 2 and np.array_equal(first.data, second.data)


def test_unwritable_cache_warns_and_still_loads(
    real_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cifar_jpg, "atomic_write", read_only)
    with pytest.warns(UserWarning, match="cache_dir="):
        dataset = CIFAR10Jpg(real_root, train=False)
    assert len(dataset) == N_TEST


def test_cache_dir_argument(real_root: Path, tmp_path: Path) -> None:
    CIFAR10Jpg(real_root, train=False, cache_dir=tmp_path / "elsewhere")
    assert len(list((tmp_path / "elsewhere").glob("test-*.npz"))) == 1
    assert not (real_root / "cifar10-jpg" / ".cache").exists()


# --- bad layouts and files ---------------------------------------------------------------


def test_unknown_class_folder(real_root: Path) -> None:
    (train_folder(real_root) / "car").mkdir()
    with pytest.raises(DatasetFormatError, match="not a CIFAR-10 class folder") as info:
        load_dataset("CIFAR10", root=real_root, download=False)
    assert str(train_folder(real_root) / "car") in str(info.value)
    assert "automobile" in str(info.value)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (jpeg_bytes(np.zeros((16, 16, 3), np.uint8)), "16x16 RGB image"),
        (jpeg_bytes(np.zeros((32, 32), np.uint8), mode="L"), "32x32 grayscale image"),
        (b"this is not a JPEG file", "cannot be decoded as a JPEG"),
        (b"", "is empty"),
    ],
)
def test_bad_image_names_the_file(real_root: Path, payload: bytes, expected: str) -> None:
    bad = train_folder(real_root) / "frog" / "0005.jpg"
    bad.write_bytes(payload)
    with pytest.raises(DatasetFormatError, match=expected) as info:
        CIFAR10Jpg(real_root)
    assert str(bad) in str(info.value)


def test_stray_files_are_errors(real_root: Path) -> None:
    (train_folder(real_root) / "notes.txt").write_text("x")
    with pytest.raises(DatasetFormatError, match="only class folders"):
        CIFAR10Jpg(real_root)
    (train_folder(real_root) / "notes.txt").unlink()
    (train_folder(real_root) / "bird" / "0001.png").write_bytes(b"x")
    with pytest.raises(DatasetFormatError, match="0001.png is not a .jpg file"):
        CIFAR10Jpg(real_root)


def test_hidden_files_are_ignored(real_root: Path) -> None:
    (train_folder(real_root) / ".DS_Store").write_bytes(b"x")
    (train_folder(real_root) / "ship" / ".DS_Store").write_bytes(b"x")
    assert len(CIFAR10Jpg(real_root)) == N_TRAIN


def test_empty_split_and_missing_class(real_root: Path) -> None:
    shutil.rmtree(train_folder(real_root) / "horse")
    with pytest.raises(DatasetFormatError, match="no images of class.*horse"):
        CIFAR10Jpg(real_root)
    test = real_root / "cifar10-jpg" / "test"
    shutil.rmtree(test)
    test.mkdir()
    with pytest.raises(DatasetMissingError, match="holds no JPEG images"):
        load_dataset("CIFAR10", train=False, root=real_root, download=False)


def test_missing_test_split_fails_only_for_test(real_root: Path) -> None:
    shutil.rmtree(real_root / "cifar10-jpg" / "test")
    assert len(load_dataset("CIFAR10", root=real_root, download=False)) == N_TRAIN
    with pytest.raises(DatasetMissingError) as info:
        load_dataset("CIFAR10", train=False, root=real_root, download=False)
    message = str(info.value)
    assert "CIFAR10 (test split) not found" in message
    assert "cifar10-jpg/test/" in message and "cifar-10-batches-py/" in message
    assert "test_batch" in message and "COURSEKIT_SMOKE=1" in message


def test_failed_download_with_train_only(real_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise URLError("no network in tests")

    monkeypatch.setattr(datasets.cifar, "download_and_extract_archive", offline)
    shutil.rmtree(real_root / "cifar10-jpg" / "test")
    with pytest.raises(DatasetMissingError, match="Download failed"):
        load_dataset("CIFAR10", train=False, root=real_root, download=True)


def test_missing_message_names_both_layouts(tmp_data: Path) -> None:
    with pytest.raises(DatasetMissingError) as info:
        load_dataset("CIFAR10", download=False)
    message = str(info.value)
    assert str(tmp_data / "data" / "cifar10-jpg") + "/train/<class>/<n>.jpg" in message
    assert "cifar-10-python.tar.gz" in message and ", ".join(TORCHVISION_CLASSES) in message


# --- dataset_status ----------------------------------------------------------------------


def test_dataset_status_reports_the_jpg_layout(jpg_fixture: Path, real_root: Path) -> None:
    cifar = dataset_status(jpg_fixture)[2]
    assert cifar["dataset"] == "CIFAR10" and cifar["status"] == "fixture"
    assert cifar["layout"] == "cifar10-jpg"
    assert cifar["path"] == str(jpg_fixture / "cifar10-jpg")
    cifar = dataset_status(real_root)[2]
    assert cifar["status"] == "present" and cifar["how_to_get"] == ""
    shutil.rmtree(real_root / "cifar10-jpg" / "test")
    cifar = dataset_status(real_root)[2]
    assert cifar["status"] == "missing" and cifar["splits"] == {"train": True, "test": False}
    assert "cifar10-jpg" in cifar["how_to_get"]
    assert dataset_status(real_root)[0]["layout"] == ""  # no MNIST here


def test_dataset_status_reports_both_layouts(jpg_fixture: Path, tmp_path: Path) -> None:
    shutil.copytree(jpg_fixture / "cifar10-jpg", tmp_path / "cifar10-jpg")
    write_cifar10_fixture(tmp_path, n_train=20, n_test=10)
    cifar = dataset_status(tmp_path)[2]
    assert cifar["layout"] == "cifar-10-batches-py, cifar10-jpg"
    assert cifar["path"] == str(tmp_path / "cifar-10-batches-py")
