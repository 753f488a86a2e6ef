"""Real torchvision loaders on fixture files: roots, splits, errors, checksums, offline .gz."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torch.utils.data import Subset, TensorDataset
from torchvision import datasets, transforms

from coursekit.data import (
    ChecksumError,
    DatasetFormatError,
    DatasetMissingError,
    class_examples,
    class_names,
    dataset_status,
    first_n,
    load_dataset,
    load_splits,
    resolve_root,
    targets,
    vision,
)
from coursekit.data.fixtures import ensure_fixtures, write_mnist_fixture
from coursekit.data.formats import IDX_MD5, MARKER
from coursekit.data.vision import md5sum

REAL_MNIST_MD5 = dict(datasets.MNIST.resources)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every torchvision download fail as it does offline."""

    def offline(*args, **kwargs):
        raise URLError("no network in tests")

    monkeypatch.setattr(datasets.mnist, "download_and_extract_archive", offline)
    monkeypatch.setattr(datasets.cifar, "download_and_extract_archive", offline)


def copy_mnist(source: Path, target: Path, files: list[str], compress: bool = False) -> Path:
    """Copy raw MNIST fixture files into target/MNIST/raw (optionally gzipped); return it."""
    raw = target / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in files:
        data = (source / "MNIST" / "raw" / name).read_bytes()
        if compress:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (raw / name).write_bytes(data)
    return raw


MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
TEST_FILES = MNIST_FILES[2:]


# --- fixtures through the real loaders ---------------------------------------------------


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_load_mnist_family_fixture(fixture_data: Path, name: str) -> None:
    train = load_dataset(name, train=True, root=fixture_data)
    test = load_dataset(name, train=False, root=fixture_data)
    assert isinstance(train, getattr(datasets, name))  # still a torchvision dataset
    assert (len(train), len(test)) == (1000, 200)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and isinstance(label, int)
    assert targets(train).bincount().tolist() == [100] * 10
    assert class_names(train) == list(getattr(datasets, name).classes)


def test_load_cifar10_fixture(fixture_data: Path) -> None:
    train = load_dataset("CIFAR10", root=fixture_data)
    test = load_dataset("cifar-10", train=False, root=fixture_data)
    assert (len(train), len(test)) == (1000, 200)
    image, label = test[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert targets(train).bincount().tolist() == [100] * 10
    assert class_names(test)[:3] == ["airplane", "automobile", "bird"]


def test_unknown_dataset_name_lists_the_known_ones(fixture_data: Path) -> None:
    with pytest.raises(ValueError, match="MNIST, FashionMNIST, CIFAR10"):
        load_dataset("ImageNet", root=fixture_data)


# --- roots and smoke mode ----------------------------------------------------------------


def test_resolve_root(tmp_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_root(tmp_data / "x") == tmp_data / "x"
    assert resolve_root() == tmp_data / "data"
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    assert resolve_root() == tmp_data / "fixtures"
    assert (tmp_data / "fixtures" / MARKER).is_file()
    assert resolve_root(tmp_data / "x") == tmp_data / "x"  # explicit root wins


def test_smoke_mode_loads_fixtures(tmp_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    dataset = load_dataset("FashionMNIST", train=False)
    assert len(dataset) == 200
    assert Path(dataset.raw_folder) == tmp_data / "fixtures" / "FashionMNIST" / "raw"


def test_missing_data_is_one_clear_error(tmp_data: Path) -> None:
    ensure_fixtures()  # fixtures exist, yet must not be used outside smoke mode
    with pytest.raises(DatasetMissingError) as info:
        load_dataset("MNIST", download=False)
    message = str(info.value)
    assert str(tmp_data / "data" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message
    assert "COURSEKIT_SMOKE=1" in message
    assert "download=True" in message
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", ["MNIST", "CIFAR10"])
def test_failed_download_is_a_missing_error(tmp_data: Path, name: str) -> None:
    with pytest.raises(DatasetMissingError, match="Download failed") as info:
        load_dataset(name, download=True)
    assert "COURSEKIT_SMOKE=1" in str(info.value)
    assert "no network in tests" in str(info.value)  # the reason, from torchvision


@pytest.mark.usefixtures("no_network")
def test_fixture_root_with_missing_files_is_not_downloaded(tmp_path: Path) -> None:
    write_mnist_fixture(tmp_path, n_train=10, n_test=10)
    with pytest.raises(DatasetMissingError, match="ensure_fixtures") as info:
        load_dataset("FashionMNIST", root=tmp_path, download=True)
    assert "Download failed" not in str(info.value)


# --- splits and subsets ------------------------------------------------------------------


def test_load_splits_and_swap(fixture_data: Path) -> None:
    train, test = load_splits("MNIST", root=fixture_data)
    assert (len(train), len(test)) == (1000, 200)
    learn, evaluate = load_splits("MNIST", root=fixture_data, swap=True)
    assert (len(learn), len(evaluate)) == (200, 1000)
    assert torch.equal(targets(learn), targets(test))
    assert not learn.train and evaluate.train


def test_load_splits_subset_after_swap(fixture_data: Path) -> None:
    train, test = load_splits("MNIST", root=fixture_data, subset=50)
    assert (len(train), len(test)) == (50, 50)
    learn, evaluate = load_splits("MNIST", root=fixture_data, subset=(30, 400), swap=True)
    assert (len(learn), len(evaluate)) == (30, 400)
    assert isinstance(learn, Subset) and not learn.dataset.train
    full_test = load_dataset("MNIST", train=False, root=fixture_data)
    assert torch.equal(targets(learn), targets(full_test)[:30])
    with pytest.raises(TypeError, match="n_train, n_test"):
        load_splits("MNIST", root=fixture_data, subset=(1, 2, 3))


def test_load_splits_transforms(fixture_data: Path) -> None:
    train_tf, test_tf = transforms.ToTensor(), transforms.PILToTensor()
    train, test = load_splits("MNIST", root=fixture_data, transform=train_tf)
    assert train.transform is train_tf and test.transform is train_tf
    learn, evaluate = load_splits(
        "MNIST", root=fixture_data, transform=train_tf, test_transform=test_tf, swap=True
    )
    assert learn.transform is train_tf and not learn.train
    assert evaluate[0][0].dtype == torch.uint8


def test_first_n_targets_class_examples_through_subsets(fixture_data: Path) -> None:
    dataset = load_dataset("CIFAR10", train=False, root=fixture_data)
    labels = torch.as_tensor(dataset.targets)
    assert len(first_n(dataset, 10)) == 10 and len(first_n(dataset, 10**6)) == 200
    nested = Subset(Subset(dataset, list(range(50, 150))), [5, 0, 7])
    assert targets(nested).tolist() == labels[[55, 50, 57]].tolist()
    assert targets(nested).dtype == torch.int64
    assert class_names(nested) == class_names(dataset)
    examples = class_examples(dataset, per_class=2)
    assert sorted(examples) == list(range(10))
    for label, indices in examples.items():
        assert indices == torch.nonzero(labels == label).flatten()[:2].tolist()
    tensors = TensorDataset(torch.zeros(4, 1), torch.tensor([3, 1, 3, 0]))
    assert class_examples(tensors) == {0: [3], 1: [1], 3: [0]}


# --- checksums, .gz, split-only folders, bad files ---------------------------------------


def test_corrupted_cifar_batch_in_real_root_is_a_checksum_error(
    fixture_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_root = tmp_path / "real"  # no marker: torchvision's md5 checks apply
    shutil.copytree(fixture_data / "cifar-10-batches-py", real_root / "cifar-10-batches-py")
    folder = real_root / "cifar-10-batches-py"
    # Pretend the fixture batches are the originals, so only the corruption fails.
    for attr in ("train_list", "test_list"):
        fixed = [[f, md5sum(folder / f)] for f, _ in getattr(datasets.CIFAR10, attr)]
        monkeypatch.setattr(vision.CIFAR10, attr, fixed)
    meta = dict(datasets.CIFAR10.meta, md5=md5sum(folder / "batches.meta"))
    monkeypatch.setattr(vision.CIFAR10, "meta", meta)
    assert len(load_dataset("CIFAR10", root=real_root, download=False)) == 1000
    expected = md5sum(folder / "data_batch_3")
    with open(folder / "data_batch_3", "r+b") as f:
        f.seek(500)
        f.write(b"\x00corrupted\x00")
    with pytest.raises(ChecksumError) as info:
        load_dataset("CIFAR10", train=False, root=real_root, download=False)
    message = str(info.value)
    assert "data_batch_3" in message and expected in message
    assert md5sum(folder / "data_batch_3") in message


def test_fixture_cifar_in_real_root_fails_real_md5(fixture_data: Path, tmp_path: Path) -> None:
    shutil.copytree(fixture_data / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    with pytest.raises(ChecksumError, match="data_batch_1"):
        load_dataset("CIFAR10", root=tmp_path, download=False)


def test_gz_with_wrong_md5_is_refused(fixture_data: Path, tmp_path: Path) -> None:
    raw = copy_mnist(fixture_data, tmp_path, TEST_FILES, compress=True)
    with pytest.raises(ChecksumError) as info:
        load_dataset("MNIST", train=False, root=tmp_path, download=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert REAL_MNIST_MD5["t10k-images-idx3-ubyte.gz"] in message
    assert md5sum(raw / "t10k-images-idx3-ubyte.gz") in message
    assert not (raw / "t10k-images-idx3-ubyte").exists()  # nothing unpacked


def test_gz_with_right_md5_is_unpacked_offline(
    fixture_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = copy_mnist(fixture_data, tmp_path, MNIST_FILES, compress=True)
    resources = [(f"{name}.gz", md5sum(raw / f"{name}.gz")) for name in MNIST_FILES]
    monkeypatch.setattr(vision.MNIST, "resources", resources)
    train, test = load_splits("MNIST", root=tmp_path, download=False)
    assert (len(train), len(test)) == (1000, 200)
    assert (raw / "train-images-idx3-ubyte").read_bytes() == (
        fixture_data / "MNIST" / "raw" / "train-images-idx3-ubyte"
    ).read_bytes()
    reference = datasets.MNIST(fixture_data, train=False)
    assert torch.equal(test.data, reference.data)
    assert torch.equal(test.targets, reference.targets)


def gzip_split(source: Path, raw: Path, level: int, alter: bool = False) -> dict[str, str]:
    """Gzip the FashionMNIST fixture test files into raw/ at `level` (first image byte
    changed if `alter`); return {idx name: md5 of the original uncompressed content}."""
    raw.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for name in TEST_FILES:
        data = (source / "FashionMNIST" / "raw" / name).read_bytes()
        md5s[name] = hashlib.md5(data).hexdigest()
        if alter and "images" in name:
            data = data[:16] + bytes([data[16] ^ 0xFF]) + data[17:]
        (raw / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=level, mtime=0))
    return md5s


@pytest.fixture
def debian_like(fixture_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pretend the level-9 gzip of the fixture is the original FashionMNIST test set (.gz and
    IDX md5); return an empty raw folder to put copies in."""
    originals = tmp_path / "originals"
    idx_md5 = gzip_split(fixture_data, originals, level=9)
    resources = [(f"{n}.gz", md5sum(originals / f"{n}.gz")) for n in TEST_FILES]
    monkeypatch.setattr(vision.FashionMNIST, "resources", resources)
    monkeypatch.setattr(vision.FashionMNIST, "idx_md5", idx_md5)
    return tmp_path / "root" / "FashionMNIST" / "raw"


def test_recompressed_gz_is_accepted_by_its_content(fixture_data: Path, debian_like: Path) -> None:
    gzip_split(fixture_data, debian_like, level=1)  # same IDX bytes, other .gz bytes
    original_gz = dict(vision.FashionMNIST.resources)["t10k-images-idx3-ubyte.gz"]
    assert md5sum(debian_like / "t10k-images-idx3-ubyte.gz") != original_gz
    test = load_dataset("FashionMNIST", train=False, root=debian_like.parents[1], download=False)
    reference = datasets.FashionMNIST(fixture_data, train=False)
    assert torch.equal(test.data, reference.data) and torch.equal(test.targets, reference.targets)


def test_gz_with_altered_content_is_refused(fixture_data: Path, debian_like: Path) -> None:
    gzip_split(fixture_data, debian_like, level=1, alter=True)
    with pytest.raises(ChecksumError) as info:
        load_dataset("FashionMNIST", train=False, root=debian_like.parents[1], download=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert vision.FashionMNIST.idx_md5["t10k-images-idx3-ubyte"] in message
    assert "uncompressed content has md5" in message
    assert not (debian_like / "t10k-images-idx3-ubyte").exists()  # nothing unpacked


def test_gz_that_is_not_gzip_is_refused(fixture_data: Path, debian_like: Path) -> None:
    gzip_split(fixture_data, debian_like, level=1)
    (debian_like / "t10k-labels-idx1-ubyte.gz").write_bytes(b"plain bytes, not gzip")
    with pytest.raises(ChecksumError, match="cannot be read .*BadGzipFile"):
        load_dataset("FashionMNIST", train=False, root=debian_like.parents[1], download=False)
    assert not (debian_like / "t10k-labels-idx1-ubyte").exists()


def test_original_idx_md5_constants() -> None:
    for name in ("MNIST", "FashionMNIST"):
        assert set(IDX_MD5[name]) == set(MNIST_FILES)
        assert all(len(v) == 32 and int(v, 16) >= 0 for v in IDX_MD5[name].values())
    assert vision.MNIST.idx_md5 is IDX_MD5["MNIST"]
    assert vision.FashionMNIST.idx_md5 is IDX_MD5["FashionMNIST"]


def test_fashion_missing_message_names_the_debian_package(tmp_data: Path) -> None:
    with pytest.raises(DatasetMissingError) as info:
        load_dataset("FashionMNIST", download=False)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "/usr/share/datasets/fashion-mnist/*.gz" in message
    assert str(tmp_data / "data" / "FashionMNIST" / "raw") in message


def test_folder_with_only_the_test_set_loads_the_test_split(
    fixture_data: Path, tmp_data: Path
) -> None:
    copy_mnist(fixture_data, tmp_data / "data", TEST_FILES)
    assert len(load_dataset("MNIST", train=False, download=False)) == 200
    with pytest.raises(DatasetMissingError, match="train-images-idx3-ubyte"):
        load_dataset("MNIST", train=True, download=False)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda b: b[:-100], "file has"),  # truncated
        (lambda b: b"\x00\x00\x08\x01" + b[4:], "magic number is 2049"),  # labels header
        (lambda b: gzip.compress(b), "gzip"),  # compressed but not renamed .gz
        (lambda b: b[:10], "shorter than an IDX header"),
    ],
)
def test_bad_idx_file_is_a_clear_error(
    fixture_data: Path, tmp_path: Path, damage, expected: str
) -> None:
    raw = copy_mnist(fixture_data, tmp_path, TEST_FILES)
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(damage(images.read_bytes()))
    with pytest.raises(DatasetFormatError, match=expected) as info:
        load_dataset("MNIST", train=False, root=tmp_path, download=False)
    assert str(images) in str(info.value) and "t10k-images-idx3-ubyte.gz" in str(info.value)


def test_images_and_labels_of_different_lengths(fixture_data: Path, tmp_path: Path) -> None:
    raw = copy_mnist(fixture_data, tmp_path, TEST_FILES)
    short = tmp_path / "short"
    write_mnist_fixture(short, n_train=10, n_test=10)
    shutil.copy(short / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", raw)
    with pytest.raises(DatasetFormatError, match="200 images but .* 10 labels"):
        load_dataset("MNIST", train=False, root=tmp_path, download=False)


# --- dataset_status ----------------------------------------------------------------------


@pytest.mark.usefixtures("no_network")
def test_dataset_status_missing(tmp_data: Path) -> None:
    rows = dataset_status()
    assert [r["dataset"] for r in rows] == ["MNIST", "FashionMNIST", "CIFAR10"]
    assert {r["status"] for r in rows} == {"missing"}
    assert rows[0]["path"] == str(tmp_data / "data" / "MNIST" / "raw")
    assert all("COURSEKIT_SMOKE=1" in r["how_to_get"] for r in rows)
    assert not (tmp_data / "data").exists()  # nothing written, nothing downloaded


def test_dataset_status_fixture_and_present(
    fixture_data: Path, tmp_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert {r["status"] for r in dataset_status(fixture_data)} == {"fixture"}
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    assert {r["status"] for r in dataset_status()} == {"fixture"}
    monkeypatch.delenv("COURSEKIT_SMOKE")
    copy_mnist(fixture_data, tmp_data / "data", MNIST_FILES)
    by_name = {r["dataset"]: r for r in dataset_status()}
    assert by_name["MNIST"]["status"] == "present" and by_name["MNIST"]["how_to_get"] == ""
    assert by_name["CIFAR10"]["status"] == "missing"


def test_dataset_status_reports_a_test_only_folder(fixture_data: Path, tmp_data: Path) -> None:
    copy_mnist(fixture_data, tmp_data / "data", TEST_FILES, compress=True)
    mnist = dataset_status()[0]
    assert mnist["status"] == "missing"
    assert mnist["splits"] == {"train": False, "test": True}
