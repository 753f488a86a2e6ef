"""MNIST, FashionMNIST and CIFAR-10 through torchvision, with clear errors and offline paths.

`load_dataset` returns torchvision datasets (subclasses that only change how files are
found and checked), so `.data`, `.targets`, `.classes` and transforms behave as usual:
MNIST-family items are (tensor (1, 28, 28), int), CIFAR-10 items (tensor (3, 32, 32), int)
with the default `ToTensor()` transform. CIFAR-10 is read from torchvision's python batches
(`cifar-10-batches-py/`, md5-checked) if present, else from the one-JPEG-per-image copy
(`cifar10-jpg/<split>/<class>/<n>.jpg`, see `coursekit.data.cifar_jpg`), which has the same
interface.

Where the data comes from (`resolve_root`): an explicit `root`, else in smoke mode
(COURSEKIT_SMOKE=1) coursekit's synthetic fixtures, else `settings.data_root()`. Missing
data is one `DatasetMissingError` saying where the files were expected and how to get
them; coursekit never swaps in fixtures behind the user's back.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset
from torchvision import datasets, transforms

from coursekit import settings
from coursekit.checkpoint import atomic_write
from coursekit.data import roots
from coursekit.data.cifar_jpg import CIFAR10Jpg, split_folder
from coursekit.data.errors import ChecksumError, DatasetFormatError, DatasetMissingError
from coursekit.data.fixtures import ensure_fixtures
from coursekit.data.formats import (
    CIFAR_CLASSES,
    CIFAR_FILES,
    CIFAR_FOLDER,
    CIFAR_JPG_FOLDER,
    DEBIAN_FASHION_FOLDER,
    DEBIAN_FASHION_PACKAGE,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    IDX_MD5,
    is_fixture_root,
)

DATASETS = ("MNIST", "FashionMNIST", "CIFAR10")
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"


# --- file checks ------------------------------------------------------------------------


def md5sum(path: Path) -> str:
    """Return the hex md5 of the file at `path`."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_md5(path: Path, expected: str, dataset: str) -> None:
    """Raise ChecksumError unless `path` has md5 `expected`."""
    actual = md5sum(path)
    if actual != expected:
        raise ChecksumError(
            f"{dataset}: {path} has md5 {actual}, expected {expected} (torchvision's checksum "
            "of the original file). The file is corrupted, truncated or not the original "
            f"{dataset} file. Delete it, then copy the original again or download it with "
            f"load_dataset({dataset!r}, download=True)."
        )


def _check_idx(path: Path, magic: int, dataset: str) -> None:
    """Raise DatasetFormatError unless `path` is a complete uint8 IDX file with `magic`."""
    ndim = magic & 0xFF
    kind = "image" if ndim == 3 else "label"
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
    problem = None
    if len(header) < 4 + 4 * ndim:
        problem = f"it is only {size} bytes long, shorter than an IDX header"
    elif header[:2] == b"\x1f\x8b":
        problem = "it is gzip-compressed (a .gz file renamed?)"
    elif (found := struct.unpack(">I", header[:4])[0]) != magic:
        problem = f"its magic number is {found}, expected {magic}"
    else:
        dims = struct.unpack(f">{ndim}I", header[4:])
        expected = 4 + 4 * ndim + int(np.prod(dims))
        if size != expected:
            problem = f"its header announces {dims} values ({expected} bytes), file has {size}"
    if problem:
        raise DatasetFormatError(
            f"{dataset}: {path} is not a valid IDX {kind} file: {problem}. Delete it and copy "
            f"the original {path.name}.gz into {path.parent}/ (coursekit checks and unpacks it), "
            f"or download again with load_dataset({dataset!r}, download=True)."
        )


def _gunzip(source: Path, out: IO[bytes]) -> str:
    """Write the uncompressed content of gzip file `source` to `out`; return its md5."""
    digest = hashlib.md5()
    with gzip.open(source, "rb") as src:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _gz_checksum_message(
    source: Path, gz_md5s: tuple[str, str], content: str, idx_md5: str, dataset: str
) -> str:
    """Return the ChecksumError text for a .gz that is neither the original nor its content."""
    actual, expected = gz_md5s
    return (
        f"{dataset}: {source} has md5 {actual}, expected {expected} (torchvision's checksum "
        f"of the original file), and its uncompressed content {content}, expected md5 "
        f"{idx_md5} (the original {source.stem}; a recompressed copy such as Debian's is "
        f"accepted on that). The file is corrupted, truncated or not the original {dataset} "
        "file. Delete it, then copy the original again or download it with "
        f"load_dataset({dataset!r}, download=True)."
    )


def _unpack_gz(raw: Path, filename: str, gz_md5: str, idx_md5: str, dataset: str) -> None:
    """Unpack raw/<filename>.gz into raw/<filename> if the .gz or its content is the original.

    A recompressed copy (Debian's dataset-fashion-mnist) fails torchvision's md5 of the .gz,
    so its uncompressed content is checked against the md5 of the original IDX file instead.
    """
    source = raw / f"{filename}.gz"
    actual = md5sum(source)

    def unpack(out: IO[bytes]) -> None:  # atomic: a refused or interrupted unpack leaves nothing
        try:
            content_md5 = _gunzip(source, out)
        except (OSError, EOFError) as err:  # not gzip, truncated
            problem = f"cannot be read ({type(err).__name__}: {err})"
        else:
            if actual == gz_md5 or content_md5 == idx_md5:
                return
            problem = f"has md5 {content_md5}"
        message = _gz_checksum_message(source, (actual, gz_md5), problem, idx_md5, dataset)
        raise ChecksumError(message)

    try:
        atomic_write(raw / filename, unpack)
    except PermissionError as err:
        raise PermissionError(
            f"{dataset}: cannot write the unpacked {filename} into {raw}/ ({err}); coursekit "
            "unpacks each .gz once next to it. Copy or link the .gz files into a writable "
            f"folder instead, e.g. {settings.data_root() / dataset / 'raw'}/."
        ) from err


def _mnist_split_files(train: bool) -> tuple[str, str]:
    """Return the (images, labels) raw IDX file names of one MNIST-family split."""
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


# --- dataset classes ----------------------------------------------------------------------


class _MnistFamily:
    """Mixin for torchvision's MNIST classes: per-split files, offline .gz, clear errors."""

    folder: str
    resources: list[tuple[str, str]]
    idx_md5: dict[str, str]  # md5 of the original uncompressed IDX files
    root: Any
    train: bool

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        raw = Path(root).expanduser() / self.folder / "raw"
        md5s = dict(self.resources)
        for filename in _mnist_split_files(train):
            if not (raw / filename).is_file() and (raw / f"{filename}.gz").is_file():
                gz_md5 = md5s[f"{filename}.gz"]
                _unpack_gz(raw, filename, gz_md5, self.idx_md5[filename], self.folder)
        super().__init__(
            root,
            train=train,
            transform=transform,
            target_transform=target_transform,
            download=download,
        )

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, self.folder, "raw")

    @property
    def processed_folder(self) -> str:
        return os.path.join(self.root, self.folder, "processed")

    def _check_exists(self) -> bool:
        # torchvision wants all 4 files; a folder with only the test set is enough for test.
        return all(os.path.isfile(os.path.join(self.raw_folder, f)) for f in self._split_files())

    def _split_files(self) -> tuple[str, str]:
        return _mnist_split_files(self.train)

    def _load_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = (Path(self.raw_folder) / f for f in self._split_files())
        _check_idx(images, IDX_IMAGES_MAGIC, self.folder)
        _check_idx(labels, IDX_LABELS_MAGIC, self.folder)
        data, targets = super()._load_data()
        if len(data) != len(targets):
            raise DatasetFormatError(
                f"{self.folder}: {images} holds {len(data)} images but {labels} holds "
                f"{len(targets)} labels; the two files come from different sets. "
                "Copy both original files again."
            )
        return data, targets


class MNIST(_MnistFamily, datasets.MNIST):
    """torchvision MNIST that loads one split's files and unpacks checked .gz offline."""

    folder = "MNIST"
    idx_md5 = IDX_MD5["MNIST"]


class FashionMNIST(_MnistFamily, datasets.FashionMNIST):
    """torchvision FashionMNIST that loads one split's files and unpacks checked .gz offline."""

    folder = "FashionMNIST"
    idx_md5 = IDX_MD5["FashionMNIST"]


MNIST_CLASSES: dict[str, type[datasets.MNIST]] = {"MNIST": MNIST, "FashionMNIST": FashionMNIST}


class CIFAR10(datasets.CIFAR10):
    """torchvision CIFAR10 whose md5 failures raise ChecksumError naming the file."""

    def _check_integrity(self) -> bool:
        for filename, md5 in self.train_list + self.test_list:
            path = Path(self.root) / self.base_folder / filename
            if not path.is_file():
                return False
            _verify_md5(path, md5, "CIFAR10")
        return True

    def _load_meta(self) -> None:
        path = Path(self.root) / self.base_folder / self.meta["filename"]
        if path.is_file():
            _verify_md5(path, self.meta["md5"], "CIFAR10")
        super()._load_meta()


class FixtureCIFAR10(datasets.CIFAR10):
    """torchvision CIFAR10 for coursekit fixture roots: files must exist, md5 is not checked.

    Fixture batches cannot match the md5 of the real ones; use only on a marked fixture root.
    """

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder
        return all((folder / f).is_file() for f, _ in self.train_list + self.test_list)

    def _load_meta(self) -> None:
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


# --- where the files are ---------------------------------------------------------------


def _canonical(name: str) -> str:
    """Return the DATASETS spelling of `name` ('fashion-mnist' -> 'FashionMNIST')."""
    key = name.replace("-", "").replace("_", "").lower()
    for known in DATASETS:
        if known.lower() == key:
            return known
    raise ValueError(f"unknown dataset {name!r}; coursekit loads {', '.join(DATASETS)}")


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """Return the data root of the image datasets (`data.roots.resolve_root`, with the MNIST,
    FashionMNIST and CIFAR-10 fixtures written in smoke mode)."""
    return roots.resolve_root(root, fixtures=ensure_fixtures)


def _cifar_batches_complete(root: Path) -> bool:
    """Return True if every CIFAR-10 python batch and the meta file are under `root`."""
    return all((root / CIFAR_FOLDER / f).is_file() for f in CIFAR_FILES)


def cifar_layout(root: Path, train: bool) -> str | None:
    """Return the CIFAR-10 layout holding one split under `root`: CIFAR_FOLDER (python
    batches, preferred), CIFAR_JPG_FOLDER (one JPEG per image) or None."""
    if _cifar_batches_complete(root):
        return CIFAR_FOLDER
    if split_folder(root, train).is_dir():
        return CIFAR_JPG_FOLDER
    return None


def _dataset_dir(name: str, root: Path) -> Path:
    """Return the folder where torchvision keeps `name`'s files under `root`."""
    return root / CIFAR_FOLDER if name == "CIFAR10" else root / name / "raw"


def _layouts(name: str, root: Path) -> list[str]:
    """Return the layouts holding a split of `name` under `root`, e.g. ['cifar10-jpg']."""
    if name != "CIFAR10":
        present = any(not _missing_files(name, root, train) for train in (True, False))
        return ["idx"] if present else []
    layouts = []
    if _cifar_batches_complete(root):
        layouts.append(CIFAR_FOLDER)
    if any(split_folder(root, train).is_dir() for train in (True, False)):
        layouts.append(CIFAR_JPG_FOLDER)
    return layouts


def _missing_files(name: str, root: Path, train: bool) -> list[str]:
    """Return the files `name` (one split) still lacks; a MNIST .gz counts as present.

    CIFAR-10 lacks nothing if either layout holds the split; else the missing python batches
    (torchvision checks every batch whatever the split) and the JPEG split folder.
    """
    folder = _dataset_dir(name, root)
    if name == "CIFAR10":
        if cifar_layout(root, train):
            return []
        missing = [f for f in CIFAR_FILES if not (folder / f).is_file()]
        return [*missing, f"{split_folder(root, train).relative_to(root)}/"]
    return [
        f
        for f in _mnist_split_files(train)
        if not (folder / f).is_file() and not (folder / f"{f}.gz").is_file()
    ]


def _source(name: str) -> str:
    """Return where torchvision downloads `name` from."""
    if name == "CIFAR10":
        return datasets.CIFAR10.url
    return MNIST_CLASSES[name].mirrors[0]


def _copy_hint(name: str, root: Path) -> list[str]:
    """Return the lines saying which original files to copy where."""
    if name == "CIFAR10":
        return [
            f"  - or extract the original {CIFAR_ARCHIVE} into {root}/ (it creates",
            f"    {CIFAR_FOLDER}/), or put the archive itself in {root}/ and load with",
            "    download=True (torchvision checks its md5 and extracts it offline);",
            "  - or put the one-JPEG-per-image copy of CIFAR-10 (32x32 RGB .jpg files) as",
            f"    {root / CIFAR_JPG_FOLDER}/train/<class>/<n>.jpg and .../test/<class>/<n>.jpg,",
            f"    class folders {', '.join(CIFAR_CLASSES)}",
            f"    (decoded once, then cached in {CIFAR_JPG_FOLDER}/.cache/);",
        ]
    folder = _dataset_dir(name, root)
    originals = ", ".join(f for f, _ in MNIST_CLASSES[name].resources)
    lines = [
        f"  - or copy the original files ({originals})",
        f"    into {folder}/ (coursekit checks their md5 and unpacks them);",
    ]
    if name == "FashionMNIST":
        lines += [
            f"  - or, on Debian/Ubuntu, install the package {DEBIAN_FASHION_PACKAGE}",
            f"    (sudo apt-get install {DEBIAN_FASHION_PACKAGE}) and copy or link its files:",
            f"      mkdir -p {folder} && ln -s {DEBIAN_FASHION_FOLDER}/*.gz {folder}/",
            "    (Debian recompressed them; coursekit accepts them by the md5 of their content);",
        ]
    return lines


def how_to_get(name: str, root: str | os.PathLike | None = None) -> str:
    """Return instructions (several lines) to put dataset `name` under `root`."""
    name = _canonical(name)
    root = resolve_root(root)
    folder = _dataset_dir(name, root)
    if is_fixture_root(root):
        return (
            f"{root} is a coursekit fixture folder (synthetic data); rewrite it with\n"
            f'  python -c "import coursekit.data as d; d.ensure_fixtures({str(root)!r})"'
        )
    root_arg = "" if root == settings.data_root() else f", root={str(root)!r}"
    command = f"import coursekit.data as d; d.load_dataset({name!r}{root_arg}, download=True)"
    return "\n".join(
        [
            "To get it, either:",
            "  - on a machine with internet access run (torchvision downloads it from",
            f"    {_source(name)} and checks its md5):",
            f'      python -c "{command}"',
            f"    and, if you ran it on another machine, copy the {name} files from there",
            f"    to {folder}/;",
            *_copy_hint(name, root),
            "  - or set COURSEKIT_DATA to the folder that already holds them;",
            "  - or run on coursekit's small synthetic fixtures instead: COURSEKIT_SMOKE=1.",
        ]
    )


def _not_found(name: str, root: Path, train: bool) -> str:
    """Return the first line of the missing-data message: which files are missing where."""
    split = "train" if train else "test"
    missing = _missing_files(name, root, train)
    if name != "CIFAR10":
        folder = _dataset_dir(name, root)
        return f"{name} ({split} split) not found: {', '.join(missing)} missing in {folder}/."
    batches = ", ".join(f for f in missing if f in CIFAR_FILES)
    return (
        f"CIFAR10 ({split} split) not found in {root}/: neither the python batches "
        f"{CIFAR_FOLDER}/ (missing: {batches}) nor the JPEG folder "
        f"{split_folder(root, train).relative_to(root)}/ is there."
    )


def _missing_message(name: str, root: Path, train: bool, reason: str | None = None) -> str:
    """Return the DatasetMissingError text for one split of `name` under `root`."""
    lines = [_not_found(name, root, train)]
    if reason:
        lines.append(f"Download failed ({reason}).")
    lines.append(how_to_get(name, root))
    return "\n".join(lines)


def _class_for(name: str, root: Path) -> type[Dataset]:
    """Return the dataset class to read `name` from `root` (no md5 skip outside fixtures)."""
    if name == "CIFAR10":
        return FixtureCIFAR10 if is_fixture_root(root) else CIFAR10
    return MNIST_CLASSES[name]


def _open(name: str, root: Path, train: bool, transform: Callable) -> Dataset:
    """Return the dataset of one split whose files are all under `root` (no download)."""
    if name == "CIFAR10" and cifar_layout(root, train) == CIFAR_JPG_FOLDER:
        return CIFAR10Jpg(root, train=train, transform=transform)
    return _class_for(name, root)(root, train=train, transform=transform, download=False)


# --- loading -----------------------------------------------------------------------------


def load_dataset(
    name: str,
    train: bool = True,
    root: str | os.PathLike | None = None,
    transform: Callable | None = None,
    download: bool = True,
) -> Dataset:
    """Return the torchvision dataset `name` (train or test split); items (tensor, int).

    MNIST-family images are (1, 28, 28), CIFAR-10 (3, 32, 32), floats in [0, 1] with
    the default transform `ToTensor()`. CIFAR-10 comes from `cifar-10-batches-py/` if
    complete, else from `cifar10-jpg/<split>/` (a `CIFAR10Jpg`, same interface). Missing
    files are downloaded if `download` (not on a fixture root); if that fails, or
    download=False, raises DatasetMissingError.
    """
    name = _canonical(name)
    root = resolve_root(root)
    transform = transform if transform is not None else transforms.ToTensor()
    if not _missing_files(name, root, train):
        return _open(name, root, train, transform)
    if not download or is_fixture_root(root):
        raise DatasetMissingError(_missing_message(name, root, train))
    try:
        return _class_for(name, root)(root, train=train, transform=transform, download=True)
    except (OSError, RuntimeError) as err:  # no network, HTTP error, bad archive
        raise DatasetMissingError(_missing_message(name, root, train, reason=str(err))) from err


def first_n(dataset: Dataset, n: int) -> Subset:
    """Return a Subset with the first min(n, len(dataset)) items of `dataset`."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return Subset(dataset, range(min(n, len(dataset))))


def _subset_sizes(subset: int | tuple[int, int] | None) -> tuple[int | None, int | None]:
    """Return (n_train, n_test) from load_splits' `subset` argument."""
    if subset is None:
        return None, None
    if isinstance(subset, int):
        return subset, subset
    if isinstance(subset, tuple) and len(subset) == 2:
        return subset
    raise TypeError(f"subset must be None, an int or (n_train, n_test), got {subset!r}")


def load_splits(
    name: str,
    root: str | os.PathLike | None = None,
    transform: Callable | None = None,
    test_transform: Callable | None = None,
    subset: int | tuple[int, int] | None = None,
    swap: bool = False,
    download: bool = True,
) -> tuple[Dataset, Dataset]:
    """Return (learning set, evaluation set): (train, test), or (test, train) if `swap`.

    `transform` goes to the learning set, `test_transform` (default: `transform`) to the
    evaluation set. `subset` keeps the first N items of each (int) or (n_train, n_test),
    counted after the swap.
    """
    root = resolve_root(root)
    n_first, n_second = _subset_sizes(subset)
    if test_transform is None:
        test_transform = transform
    first = load_dataset(name, train=not swap, root=root, transform=transform, download=download)
    second = load_dataset(name, train=swap, root=root, transform=test_transform, download=download)
    if n_first is not None:
        first = first_n(first, n_first)
    if n_second is not None:
        second = first_n(second, n_second)
    return first, second


# --- inspecting datasets ---------------------------------------------------------------


def _unwrap(dataset: Dataset) -> tuple[Dataset, torch.Tensor | None]:
    """Return (base dataset, int64 indices into it or None) through nested Subsets."""
    indices = None
    while isinstance(dataset, Subset):
        own = torch.from_numpy(np.asarray(dataset.indices, dtype=np.int64))
        indices = own if indices is None else own[indices]
        dataset = dataset.dataset
    return dataset, indices


def targets(dataset: Dataset) -> torch.Tensor:
    """Return the labels of `dataset` as int64 (N,), read from `.targets` (no iteration)."""
    base, indices = _unwrap(dataset)
    if isinstance(base, TensorDataset):
        labels = base.tensors[-1]
    elif hasattr(base, "targets"):
        labels = base.targets
    else:
        raise TypeError(
            f"{type(base).__name__} has no .targets; targets() reads torchvision datasets, "
            "TensorDataset (last tensor) and Subsets of those."
        )
    labels = torch.as_tensor(labels, dtype=torch.int64)
    return labels if indices is None else labels[indices]


def class_names(dataset: Dataset) -> list[str]:
    """Return the class names of `dataset` (through Subsets), index = label."""
    base, _ = _unwrap(dataset)
    if not hasattr(base, "classes"):
        raise TypeError(f"{type(base).__name__} has no .classes attribute")
    return list(base.classes)


def class_examples(dataset: Dataset, per_class: int = 1) -> dict[int, list[int]]:
    """Return {label: first `per_class` indices of that label in `dataset`}, labels sorted."""
    labels = targets(dataset)
    return {
        int(c): torch.nonzero(labels == c).flatten()[:per_class].tolist()
        for c in torch.unique(labels)
    }


def _status_row(name: str, root: Path, fixture: bool) -> dict[str, Any]:
    """Return dataset_status's dict for one dataset under `root`."""
    splits = {s: not _missing_files(name, root, s == "train") for s in ("train", "test")}
    status = "missing" if not all(splits.values()) else "fixture" if fixture else "present"
    hint = "" if status == "present" else how_to_get(name, root)
    if status == "fixture":
        hint = (
            "synthetic fixture data written by coursekit (smoke mode); for real results "
            f"unset COURSEKIT_SMOKE and put the data under {settings.data_root()}"
        )
    layouts = _layouts(name, root)
    path = root / CIFAR_JPG_FOLDER if layouts == [CIFAR_JPG_FOLDER] else _dataset_dir(name, root)
    return {
        "dataset": name,
        "status": status,
        "layout": ", ".join(layouts),
        "path": str(path),
        "how_to_get": hint,
        "splits": splits,
    }


def dataset_status(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Return one dict per dataset: dataset, status (present/missing/fixture), layout, path,
    how_to_get, splits.

    Looks at files only: downloads nothing, checks no md5, decodes no image. 'splits' tells
    which of train/test are there (a folder with only the test set is 'missing' but loads
    test). 'layout' names the on-disk layout(s) found: 'idx' for the MNIST family,
    'cifar-10-batches-py' and/or 'cifar10-jpg' for CIFAR-10 ('' when none); 'path' is
    the folder of that layout (the JPEG one when it is the only one).
    """
    root = resolve_root(root)
    fixture = is_fixture_root(root)
    return [_status_row(name, root, fixture) for name in DATASETS]
