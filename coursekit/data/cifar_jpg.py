"""CIFAR-10 stored as one JPEG per image: `<root>/cifar10-jpg/{train,test}/<class>/<n>.jpg`.

A common copy of CIFAR-10 (e.g. the "CIFAR-10-images" archives) holds 32x32 RGB JPEG files
in one folder per class, named with torchvision's class names (airplane ... truck).
`CIFAR10Jpg` reads such a split and behaves like `torchvision.datasets.CIFAR10`: `.data` is
uint8 (N, 32, 32, 3), `.targets` list[int], `.classes` in torchvision's order, and items
are (transform(PIL image), int).

Order: by class index (torchvision's class order), then by file name in string order
(the usual zero-padded names `0000.jpg`, `0001.jpg`... thus sort numerically).

Decoding 50,000 JPEGs takes seconds, so the decoded pixels are cached once in
`<root>/cifar10-jpg/.cache/<split>-<fingerprint>.npz` (written atomically). The fingerprint
hashes every image's class, name, size and mtime: the cache is reused while the files are
unchanged and rebuilt (the stale one removed) as soon as a file is added, removed or
rewritten.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import VisionDataset
from torchvision.io import ImageReadMode, decode_jpeg

from coursekit.checkpoint import atomic_write
from coursekit.data.errors import DatasetFormatError, DatasetMissingError
from coursekit.data.formats import (
    CIFAR_CLASSES,
    CIFAR_JPG_FOLDER,
    CIFAR_JPG_SPLITS,
    CIFAR_JPG_SUFFIXES,
)

CACHE_FOLDER = ".cache"
CACHE_VERSION = 1  # bump when the cache content changes, so old caches are not reused
DECODE_CHUNK = 4096  # files decoded per batch call: bounds the memory of the raw bytes
IMAGE_SHAPE = (32, 32, 3)


class ImageFile(NamedTuple):
    """One image of a split: its label, path, and the stat fields the fingerprint uses."""

    label: int
    name: str
    path: str  # str, not Path: building 50,000 Path objects costs a second
    size: int
    mtime_ns: int


def split_folder(root: str | os.PathLike, train: bool) -> Path:
    """Return `<root>/cifar10-jpg/train` or `<root>/cifar10-jpg/test`."""
    return Path(root).expanduser() / CIFAR_JPG_FOLDER / CIFAR_JPG_SPLITS[0 if train else 1]


def _is_hidden(name: str) -> bool:
    """Return True for names the scan skips: dot files (.DS_Store, our own .cache)."""
    return name.startswith(".")


def _class_index(entry: os.DirEntry, folder: Path) -> int:
    """Return the CIFAR class index of the class folder `entry`; clear error otherwise."""
    if not entry.is_dir():
        raise DatasetFormatError(
            f"CIFAR10: {entry.path} is a file, but {folder}/ must hold only class folders "
            f"(<class>/<n>.jpg, classes {', '.join(CIFAR_CLASSES)}). Move or delete it."
        )
    if entry.name not in CIFAR_CLASSES:
        raise DatasetFormatError(
            f"CIFAR10: {entry.path} is not a CIFAR-10 class folder; the class folders must "
            f"be named {', '.join(CIFAR_CLASSES)} (torchvision's class names). Rename or "
            "remove it."
        )
    return CIFAR_CLASSES.index(entry.name)


def _class_images(folder: Path, label: int) -> list[ImageFile]:
    """Return the JPEG files of one class folder, sorted by file name."""
    images = []
    for entry in os.scandir(folder):
        if _is_hidden(entry.name):
            continue
        if not entry.is_file() or not entry.name.lower().endswith(CIFAR_JPG_SUFFIXES):
            raise DatasetFormatError(
                f"CIFAR10: {entry.path} is not a .jpg file; {folder}/ must hold only the "
                "JPEG images of that class. Move or delete it."
            )
        stat = entry.stat()
        images.append(ImageFile(label, entry.name, entry.path, stat.st_size, stat.st_mtime_ns))
    return sorted(images, key=lambda image: image.name)


def scan_split(folder: Path) -> list[ImageFile]:
    """Return the split's images sorted by class index, then file name; checks the layout."""
    if not folder.is_dir():
        raise DatasetMissingError(f"CIFAR10: no folder {folder}/ (expected <class>/<n>.jpg).")
    classes = {}
    for entry in os.scandir(folder):
        if not _is_hidden(entry.name):
            classes[_class_index(entry, folder)] = Path(entry.path)
    images = [image for label in sorted(classes) for image in _class_images(classes[label], label)]
    if not images:
        raise DatasetMissingError(
            f"CIFAR10: {folder}/ holds no JPEG images; expected {folder}/<class>/<n>.jpg with "
            f"class folders {', '.join(CIFAR_CLASSES)}. Copy the images there, or remove the "
            "empty folder."
        )
    present = {image.label for image in images}
    missing = [name for i, name in enumerate(CIFAR_CLASSES) if i not in present]
    if missing:  # a 10-output model trained on 9 classes would fail silently
        raise DatasetFormatError(
            f"CIFAR10: {folder}/ has no images of class(es) {', '.join(missing)}; the copy "
            "is incomplete. Copy the whole split again."
        )
    return images


def fingerprint(images: Sequence[ImageFile]) -> str:
    """Return a 16-hex-digit hash of the images' class, name, size and mtime."""
    digest = hashlib.sha1(f"coursekit-cifar10-jpg-v{CACHE_VERSION}\n".encode())
    for image in images:
        line = f"{image.label}/{image.name}\t{image.size}\t{image.mtime_ns}\n"
        digest.update(line.encode())
    return digest.hexdigest()[:16]


def _read(path: str | Path) -> torch.Tensor:
    """Return the bytes of `path` as a uint8 (L,) tensor; clear error for an empty file."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise DatasetFormatError(f"CIFAR10: {path} is empty (0 bytes). Copy it again or delete it.")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _decode_one(path: str | Path, data: torch.Tensor) -> torch.Tensor:
    """Return one image decoded as uint8 (C, H, W); clear error naming `path` if it fails."""
    try:
        return decode_jpeg(data, mode=ImageReadMode.UNCHANGED)
    except (RuntimeError, ValueError) as err:
        raise DatasetFormatError(
            f"CIFAR10: {path} cannot be decoded as a JPEG image ({err}). Replace it with the "
            "original file or delete it."
        ) from err


def _check_image(path: str | Path, image: torch.Tensor) -> None:
    """Raise DatasetFormatError unless `image` (C, H, W) is 32x32 RGB."""
    channels, height, width = image.shape
    if (height, width, channels) != IMAGE_SHAPE:
        kind = {1: "grayscale", 3: "RGB", 4: "CMYK"}.get(channels, f"{channels} channels")
        raise DatasetFormatError(
            f"CIFAR10: {path} is a {width}x{height} {kind} image; CIFAR-10 images are 32x32 "
            "RGB. Replace it with the original image or delete it."
        )


def decode_jpegs(paths: Sequence[str | Path]) -> np.ndarray:
    """Return the JPEG files at `paths` decoded as uint8 (N, 32, 32, 3); each must be 32x32 RGB.

    torchvision's batched `decode_jpeg` (libjpeg-turbo) decodes CIFAR-sized JPEGs about 5x
    faster than PIL on CPU, with identical pixels.
    """
    out = np.empty((len(paths), *IMAGE_SHAPE), dtype=np.uint8)
    for start in range(0, len(paths), DECODE_CHUNK):
        chunk = paths[start : start + DECODE_CHUNK]
        raw = [_read(path) for path in chunk]
        try:
            images = decode_jpeg(raw, mode=ImageReadMode.UNCHANGED)
        except (RuntimeError, ValueError):  # one bad file fails the batch: find which
            images = [_decode_one(path, data) for path, data in zip(chunk, raw, strict=True)]
        for path, image in zip(chunk, images, strict=True):
            _check_image(path, image)
        out[start : start + len(chunk)] = torch.stack(images).permute(0, 2, 3, 1).numpy()
    return out


def _read_cache(path: Path, labels: np.ndarray) -> np.ndarray | None:
    """Return the cached uint8 (N, 32, 32, 3) pixels at `path`, or None if unusable."""
    try:
        with np.load(path, allow_pickle=False) as cache:
            data, targets = cache["data"], cache["targets"]
    except (OSError, ValueError, KeyError):  # missing or damaged: it is only a cache
        return None
    if data.dtype != np.uint8 or data.shape != (len(labels), *IMAGE_SHAPE):
        return None
    return data if np.array_equal(targets, labels) else None


def _write_cache(path: Path, data: np.ndarray, labels: np.ndarray) -> None:
    """Write the pixels and labels to `path` atomically, then remove the split's stale caches."""
    try:
        atomic_write(path, lambda out: np.savez(out, data=data, targets=labels))
    except OSError as err:  # read-only data folder: still usable, only slower next time
        warnings.warn(
            f"CIFAR10: could not write the decoded-image cache {path} ({err}); the JPEG "
            "files will be decoded again next time. Pass cache_dir= a writable folder.",
            stacklevel=3,
        )
        return
    split = path.name.split("-")[0]
    for stale in path.parent.glob(f"{split}-*.npz"):
        if stale != path:
            stale.unlink(missing_ok=True)


def load_split(folder: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, 32, 32, 3), labels int64 (N,)) of one split, via the cache."""
    images = scan_split(folder)
    labels = np.array([image.label for image in images], dtype=np.int64)
    cache = cache_dir / f"{folder.name}-{fingerprint(images)}.npz"
    data = _read_cache(cache, labels)
    if data is None:
        data = decode_jpegs([image.path for image in images])
        _write_cache(cache, data, labels)
    return data, labels


class CIFAR10Jpg(VisionDataset):
    """CIFAR-10 split read from `<root>/cifar10-jpg/<split>/<class>/<n>.jpg`.

    Same interface as `torchvision.datasets.CIFAR10`: `.data` uint8 (N, 32, 32, 3),
    `.targets` list[int], `.classes`, `.class_to_idx`, `.train`; an item is
    (transform(PIL RGB image 32x32), target_transform(int)). Images are ordered by class
    index, then file name. `cache_dir` (default `<root>/cifar10-jpg/.cache`) holds the
    decoded pixels.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        root = Path(root).expanduser()
        super().__init__(str(root), transform=transform, target_transform=target_transform)
        self.train = train
        self.classes = list(CIFAR_CLASSES)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.folder = split_folder(root, train)
        default_cache = root / CIFAR_JPG_FOLDER / CACHE_FOLDER
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache
        self.data, labels = load_split(self.folder, self.cache_dir)
        self.targets: list[int] = labels.tolist()

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        """Return (transform(PIL image), target_transform(label)) of image `index`."""
        image, target = Image.fromarray(self.data[index]), self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __len__(self) -> int:
        """Return the number of images N."""
        return len(self.data)

    def extra_repr(self) -> str:
        """Return the split and folder, shown in repr()."""
        return f"Split: {'Train' if self.train else 'Test'}\nFolder: {self.folder}"
