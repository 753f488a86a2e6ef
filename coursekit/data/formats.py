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
# what the notebooks print and draw (their prose is French); the code keeps torchvision's names
CIFAR_CLASSES_FR = dict(zip(CIFAR_CLASSES, (
    "avion", "automobile", "oiseau", "chat", "cerf", "chien", "grenouille", "cheval", "bateau",
    "camion",
), strict=True))  # fmt: skip
CIFAR_JPG_FOLDER = "cifar10-jpg"  # one JPEG per image: cifar10-jpg/<split>/<class>/<n>.jpg
CIFAR_JPG_SPLITS = ("train", "test")
CIFAR_JPG_SUFFIXES = (".jpg", ".jpeg")
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


def is_fixture_root(root: str | os.PathLike | None) -> bool:
    """Return True if `root` holds coursekit's fixture marker (synthetic data)."""
    return root is not None and (Path(root).expanduser() / MARKER).is_file()


# md5 of the original *uncompressed* IDX files. The .gz md5 in torchvision's `resources`
# only matches the original archives; a recompressed copy (Debian's dataset-fashion-mnist
# recompresses them) holds the same IDX bytes, so coursekit also accepts a .gz whose content
# has these md5. FashionMNIST: computed from Debian's /usr/share/datasets/fashion-mnist/*.gz
# (package dataset-fashion-mnist 0.0~git20200523.55506a9-1) after gunzip, and identical to
# the `raw_data` md5 published in several public FashionMNIST loaders. MNIST: t10k computed
# from the original LeCun .gz files (md5 9fb629c4..., ec29112d... as in torchvision); train
# taken from public MNIST fetch scripts that list the same t10k values.
IDX_MD5 = {
    "MNIST": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
DEBIAN_FASHION_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FASHION_FOLDER = "/usr/share/datasets/fashion-mnist"
