"""Tiny synthetic datasets written in the exact on-disk format of the real ones.

Tests and smoke runs (COURSEKIT_SMOKE=1) must work offline, so coursekit writes small
MNIST / FashionMNIST / CIFAR-10 look-alikes that torchvision's own loaders read (the
same files, headers and pickles, only fewer and simpler images). The exercises that own a
dataset write its fixture in their own folder (`coursekit.audio.fixtures`) through
`claim_fixture_root`, which marks the root as synthetic first.
Each image class draws a class-specific shape (a digit, a clothing silhouette, a coloured
figure) with random shifts, stroke thickness, contrast and noise, so a small CNN learns
them in a few epochs while a model still has something to learn.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from coursekit import settings
from coursekit.checkpoint import atomic_write
from coursekit.data.formats import (
    CIFAR_CLASSES,
    CIFAR_FILES,
    CIFAR_FOLDER,
    CIFAR_JPG_FOLDER,
    CIFAR_JPG_SPLITS,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    MARKER,
    MNIST_FILES,
    MNIST_NAMES,
    is_fixture_root,
)

MARKER_TEXT = """\
This folder holds SYNTHETIC fixture datasets written by coursekit (coursekit.data.fixtures).
They use the on-disk format of MNIST, FashionMNIST, CIFAR-10 and the Free Spoken Digit
Dataset so that the real loaders read them, but the images are simple generated shapes and
the recordings synthetic voices, not the real data.
They exist so that tests and smoke runs (COURSEKIT_SMOKE=1) work offline in seconds.
Results obtained on them mean nothing. Delete this folder at any time: coursekit
rewrites it when needed.
"""

# 5x7 bitmaps of the digits 0-9: hand-written so the fixture does not depend on fonts.
DIGITS = (
    (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
)

# 8x8 silhouettes in FashionMNIST's class order (T-shirt/top ... Ankle boot).
CLOTHES = tuple(
    rows.split()
    for rows in (
        "###..### ######## ######## .######. .######. .######. .######. ........",
        ".######. .######. .##..##. .##..##. .##..##. .##..##. .##..##. .##..##.",
        "..#..#.. .######. ######## ######## ##.##.## ##.##.## ##.##.## #.####.#",
        "...##... ..####.. ..####.. ..####.. .######. .######. ######## ########",
        ".##..##. ######## ######## ####.### ####.### ####.### ####.### ####.###",
        "........ ........ ........ #..#..#. #.#.#.## ######## ........ ........",
        ".##..##. ######## ###.#### .###.##. .###.##. .###.##. .######. .######.",
        "........ ........ ........ ....##.. ...##### ######## ######## ........",
        "..####.. .#....#. .#....#. ######## ######## ######## ######## ########",
        "........ ..###... ..###... ..###... ..####.. ..###### ######## ########",
    )
)

# CIFAR classes share colours in pairs, so colour alone does not give the class away.
CIFAR_COLOURS = np.array(
    [[230, 60, 50], [60, 200, 70], [70, 90, 230], [230, 210, 60], [200, 70, 210]],
    dtype=np.float32,
)


def _bitmap(rows: Sequence[str], scale: int) -> np.ndarray:
    """Return the '#' cells of `rows` as a float32 (H*scale, W*scale) mask in [0, 1]."""
    mask = np.array([[c == "#" for c in row] for row in rows], dtype=np.float32)
    return np.kron(mask, np.ones((scale, scale), dtype=np.float32))


def _centered(mask: np.ndarray, side: int) -> np.ndarray:
    """Return `mask` pasted in the middle of a zero (side, side) canvas."""
    canvas = np.zeros((side, side), dtype=np.float32)
    top, left = (side - mask.shape[0]) // 2, (side - mask.shape[1]) // 2
    canvas[top : top + mask.shape[0], left : left + mask.shape[1]] = mask
    return canvas


def _shapes_32() -> np.ndarray:
    """Return 10 geometric masks (10, 32, 32) in [0, 1], one per CIFAR fixture class."""
    yy, xx = np.mgrid[-16:16, -16:16].astype(np.float32) + 0.5
    r = np.hypot(yy, xx)
    box = np.maximum(abs(yy), abs(xx))
    shapes = [
        r < 8,  # disc
        box < 7,  # square
        (r < 9) & (r > 5),  # ring
        (abs(yy) < 3) & (abs(xx) < 11),  # horizontal bar
        (abs(xx) < 3) & (abs(yy) < 11),  # vertical bar
        ((abs(yy) < 2.5) | (abs(xx) < 2.5)) & (box < 10),  # plus
        (abs(abs(yy) - abs(xx)) < 2.5) & (box < 9),  # X
        (yy > -8) & (yy < 7) & (abs(xx) < (yy + 8) * 0.6),  # triangle
        (np.hypot(yy, xx - 6) < 4) | (np.hypot(yy, xx + 6) < 4),  # two dots
        (box < 10) & (box > 6),  # frame
    ]
    return np.stack(shapes).astype(np.float32)


def _templates(kind: str) -> np.ndarray:
    """Return the class templates (10, side, side) float32 in [0, 1] for a fixture kind."""
    if kind == "MNIST":
        return np.stack([_centered(_bitmap(d, 3), 28) for d in DIGITS])
    if kind == "FashionMNIST":
        return np.stack([_centered(_bitmap(c, 3), 28) for c in CLOTHES])
    return _shapes_32()


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Return n labels in 0..9, each class n//10 or n//10 + 1 times, in random order."""
    return rng.permutation(np.arange(n) % 10).astype(np.uint8)


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Return `mask` (H, W) moved by (dy, dx) pixels, zero-filled (np.roll would wrap)."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _jitter(template: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Return `template` shifted by up to max_shift pixels, sometimes thickened."""
    dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
    mask = _shift(template, int(dy), int(dx))
    if rng.random() < 0.5:  # thicker stroke, as handwriting varies
        mask = np.maximum(mask, _shift(mask, *((1, 0) if rng.random() < 0.5 else (0, 1))))
    return mask


def _gray_images(kind: str, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return uint8 images (N, 28, 28): class template, shifted, scaled, noisy."""
    templates = _templates(kind)
    out = np.empty((len(labels), 28, 28), dtype=np.float32)
    for i, label in enumerate(labels):
        out[i] = _jitter(templates[label], rng, max_shift=3) * rng.uniform(180, 255)
    out += rng.normal(0, 15, size=out.shape) + rng.uniform(0, 20, size=(len(labels), 1, 1))
    return np.clip(out, 0, 255).astype(np.uint8)


def _colour_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return uint8 images (N, 3, 32, 32): a coloured class shape on a random background."""
    templates = _templates("CIFAR10")
    n = len(labels)
    background = rng.uniform(0, 160, size=(n, 3, 1, 1)).astype(np.float32)
    out = np.broadcast_to(background, (n, 3, 32, 32)).copy()
    for i, label in enumerate(labels):
        mask = _jitter(templates[label], rng, max_shift=4)
        colour = CIFAR_COLOURS[label % 5] * rng.uniform(0.6, 1.0) + rng.normal(0, 15, size=3)
        out[i] = out[i] * (1 - mask) + colour[:, None, None] * mask
    out += rng.normal(0, 30, size=out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """Return `array` (uint8) as an IDX file: big-endian magic, dims, then raw bytes."""
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_marker(root: Path) -> Path:
    """Write the COURSEKIT_FIXTURE marker that flags `root` as synthetic data; return its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    if not marker.exists():
        atomic_write(marker, lambda out: out.write(MARKER_TEXT.encode()))
    return marker


def write_mnist_fixture(
    root: Path, name: str = "MNIST", n_train: int = 1000, n_test: int = 200, seed: int = 0
) -> Path:
    """Write the 4 raw IDX files under `<root>/<name>/raw/`; return that raw folder.

    Images are uint8 (N, 28, 28), labels uint8 (N,), as torchvision's MNIST reads them.
    """
    if name not in MNIST_NAMES:
        raise ValueError(f"name must be one of {MNIST_NAMES}, got {name!r}")
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    write_marker(root)
    # Distinct streams per dataset and split: MNIST and FashionMNIST must not share noise.
    for split, n in (("train", n_train), ("t10k", n_test)):
        rng = np.random.default_rng([seed, MNIST_NAMES.index(name), split == "train"])
        labels = _balanced_labels(n, rng)
        images = _gray_images(name, labels, rng)
        files = {
            f"{split}-images-idx3-ubyte": _idx_bytes(images, IDX_IMAGES_MAGIC),
            f"{split}-labels-idx1-ubyte": _idx_bytes(labels, IDX_LABELS_MAGIC),
        }
        for filename, payload in files.items():
            atomic_write(raw / filename, lambda out, payload=payload: out.write(payload))
    return raw


class _Py2Pickler(pickle._Pickler):
    """Pickler that stores str and bytes as Python 2 strings, as the CIFAR-10 files do.

    The real batches were pickled by Python 2: loaded with encoding="latin1" (torchvision)
    their keys are str ("data"), with encoding="bytes" (the CIFAR web page) bytes (b"data").
    Python 3 pickles cannot give both, so this writes the Python 2 opcodes.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_string
    dispatch[bytes] = _save_py2_string


def _write_py2_pickle(path: Path, obj: object) -> None:
    """Write `obj` to `path` as a protocol-2 pickle with Python 2 strings."""

    atomic_write(path, lambda out: _Py2Pickler(out, protocol=2).dump(obj))


def _cifar_batch(images: np.ndarray, labels: np.ndarray, batch_label: str, start: int) -> dict:
    """Return one CIFAR-10 batch dict: data uint8 (N, 3072) as R, G, B planes, row-major."""
    return {
        "batch_label": batch_label,
        "labels": [int(y) for y in labels],
        "data": images.reshape(len(images), 3 * 32 * 32),
        "filenames": [
            f"coursekit_fixture_{CIFAR_CLASSES[y]}_{start + i:06d}.png"
            for i, y in enumerate(labels)
        ],
    }


def _cifar_split(n: int, seed: int, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, 3, 32, 32), labels uint8 (N,)) of one CIFAR fixture split."""
    rng = np.random.default_rng([seed, 2, int(train)])
    labels = _balanced_labels(n, rng)
    return _colour_images(labels, rng), labels


def write_cifar10_fixture(
    root: Path, n_train: int = 1000, n_test: int = 200, seed: int = 0
) -> Path:
    """Write `<root>/cifar-10-batches-py/` (5 train batches, test batch, meta); return it.

    Images are uint8 (N, 3, 32, 32) stored as rows of 3072 bytes, as in the real files.
    """
    folder = Path(root) / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    write_marker(root)
    images, labels = _cifar_split(n_train, seed, train=True)
    bounds = np.linspace(0, n_train, 6).astype(int)
    for i in range(5):
        lo, hi = bounds[i], bounds[i + 1]
        batch = _cifar_batch(images[lo:hi], labels[lo:hi], f"training batch {i + 1} of 5", lo)
        _write_py2_pickle(folder / f"data_batch_{i + 1}", batch)
    images, labels = _cifar_split(n_test, seed, train=False)
    test = _cifar_batch(images, labels, "testing batch 1 of 1", 0)
    _write_py2_pickle(folder / "test_batch", test)
    meta = {
        "num_cases_per_batch": int(bounds[1] - bounds[0]),
        "label_names": list(CIFAR_CLASSES),
        "num_vis": 3 * 32 * 32,
    }
    _write_py2_pickle(folder / "batches.meta", meta)
    return folder


def _jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """Return one uint8 (3, 32, 32) image encoded as a JPEG file."""
    buffer = io.BytesIO()
    # 4:4:4 chroma keeps the fixture's coloured shapes close to the python-batch pixels.
    Image.fromarray(image.transpose(1, 2, 0)).save(
        buffer, format="JPEG", quality=quality, subsampling=0
    )
    return buffer.getvalue()


def write_cifar10_jpg_fixture(
    root: Path, n_train: int = 1000, n_test: int = 200, seed: int = 0, quality: int = 95
) -> Path:
    """Write `<root>/cifar10-jpg/{train,test}/<class>/<nnnn>.jpg`; return `<root>/cifar10-jpg`.

    The images are those of `write_cifar10_fixture` with the same seed (uint8 (N, 32, 32, 3)
    once decoded, up to JPEG loss). Within a class, files are numbered 0000, 0001... in the
    order of the python batches, so the loader's order (class, then name) is that order
    sorted stably by label. Each split needs >= 10 images: one per class at least.
    """
    if min(n_train, n_test) < len(CIFAR_CLASSES):
        raise ValueError(
            f"n_train and n_test must be >= {len(CIFAR_CLASSES)} (one image per class), "
            f"got {n_train} and {n_test}"
        )
    folder = Path(root) / CIFAR_JPG_FOLDER
    write_marker(root)
    for split, n in zip(CIFAR_JPG_SPLITS, (n_train, n_test), strict=True):
        images, labels = _cifar_split(n, seed, train=split == "train")
        counts = dict.fromkeys(range(len(CIFAR_CLASSES)), 0)
        for image, label in zip(images, labels, strict=True):
            path = folder / split / CIFAR_CLASSES[label] / f"{counts[label]:04d}.jpg"
            payload = _jpeg_bytes(image, quality)
            atomic_write(path, lambda out, payload=payload: out.write(payload))
            counts[label] += 1
    return folder


def _mnist_complete(root: Path, name: str) -> bool:
    """Return True if all 4 raw IDX files of `name` exist under root."""
    return all((root / name / "raw" / f).is_file() for f in MNIST_FILES)


def _cifar_complete(root: Path) -> bool:
    """Return True if all CIFAR-10 batch and meta files exist under root."""
    return all((root / CIFAR_FOLDER / f).is_file() for f in CIFAR_FILES)


def claim_fixture_root(root: Path | None = None) -> Path:
    """Return the fixture root (default: settings.fixture_root()), marked as synthetic.

    Every writer of generated data in smoke mode goes through it, so that the folder is
    marked before anything lands in it: an unmarked non-empty folder is refused.
    """
    root = Path(root).expanduser() if root is not None else settings.fixture_root()
    if root.exists() and any(root.iterdir()) and not is_fixture_root(root):
        # Writing fake MNIST files next to real ones would mix synthetic and real data.
        raise ValueError(
            f"{root} is not empty and has no {MARKER} marker, so it may hold real data; "
            "coursekit will not write fixtures there. Point COURSEKIT_FIXTURES (or root=) "
            "at an empty or fixture folder."
        )
    write_marker(root)
    return root


def ensure_fixtures(root: Path | None = None) -> Path:
    """Write any missing MNIST, FashionMNIST, CIFAR-10 fixture and the marker; return root."""
    root = claim_fixture_root(root)
    for name in MNIST_NAMES:
        if not _mnist_complete(root, name):
            write_mnist_fixture(root, name=name)
    if not _cifar_complete(root):
        write_cifar10_fixture(root)
    return root
