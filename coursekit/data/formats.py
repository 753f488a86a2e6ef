"""File formats of the real datasets: names, folders, headers and class orders.

Shared by the real loaders (`vision`) and the fixture writers (`fixtures`), so that the
loaders never depend on the code that writes synthetic data.
"""

from __future__ import annotations

import os
from pathlib import Path

MARKER = "COURSEKIT_FIXTURE"
MNIST_NAMES = ("MNIST", "FashionMNIST")
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
CIFAR_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


def is_fixture_root(root: str | os.PathLike | None) -> bool:
    """Return True if `root` holds coursekit's fixture marker (synthetic data)."""
    return root is not None and (Path(root).expanduser() / MARKER).is_file()
