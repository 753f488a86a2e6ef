"""Datasets for the notebooks: real torchvision loaders, offline fixtures, clear errors."""

from coursekit.data.cifar_jpg import CIFAR10Jpg
from coursekit.data.errors import ChecksumError, DatasetFormatError, DatasetMissingError
from coursekit.data.fixtures import (
    ensure_fixtures,
    write_cifar10_fixture,
    write_cifar10_jpg_fixture,
    write_mnist_fixture,
)
from coursekit.data.formats import is_fixture_root
from coursekit.data.roots import resolve_root
from coursekit.data.tensor_loader import TensorLoader, to_uint8_tensors
from coursekit.data.vision import (
    DATASETS,
    class_examples,
    class_names,
    dataset_status,
    first_n,
    how_to_get,
    load_dataset,
    load_splits,
    targets,
)

__all__ = [
    "DATASETS",
    "CIFAR10Jpg",
    "ChecksumError",
    "DatasetFormatError",
    "DatasetMissingError",
    "TensorLoader",
    "class_examples",
    "class_names",
    "dataset_status",
    "ensure_fixtures",
    "first_n",
    "how_to_get",
    "is_fixture_root",
    "load_dataset",
    "load_splits",
    "resolve_root",
    "targets",
    "to_uint8_tensors",
    "write_cifar10_fixture",
    "write_cifar10_jpg_fixture",
    "write_mnist_fixture",
]
