"""Notebook 01: the pytorch/examples MNIST recipe, with train/test swap and dropout switches.

Recipe of pytorch/examples `mnist/main.py`: MnistNet, Adadelta(lr=1.0),
StepLR(step_size=1, gamma=0.7) stepped once per epoch, batch 64 for training and 1000
for testing, pixels normalized with MNIST's mean 0.1307 and std 0.3081, NLL loss on the
network's log-probabilities, 14 epochs, seed 1. One difference: the example only
shuffles the training set on CUDA (its `shuffle=True` sits in the CUDA-only kwargs);
here it is always shuffled, so CPU and GPU runs follow the same recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from coursekit.checkpoint import config_name
from coursekit.data import first_n, load_splits
from coursekit.data.tensor_loader import TensorLoader
from coursekit.mnist.models import MnistNet
from coursekit.settings import get_device, seed_everything
from coursekit.train import History, fit

MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)

# The notebook's run profiles (see coursekit.profiles): None in a notebook parameter takes
# the profile's value. "complet" is the sheet's study exactly: 14 epochs on the whole sets.
# "séance" must run all four trainings within a lab session on a 2-core CPU, where this net
# trains at 100-200 images/s and evaluates at about 600/s: the whole sets would take hours.
PROFILES = {
    "séance": {
        # 5 epochs: StepLR multiplies the rate by 0.7 per epoch, so epochs 1-5 already hold
        # 83% of the weight movement 14 epochs allow (sum of 0.7^k); the later ones add little,
        # and 5 points still draw a curve where a lasting rise (2 epochs) can show.
        "epochs": 5,
        # 2,400 training images and, at MNIST's 6:1 ratio, 400 test images: the swap still
        # learns on the small set. Measured on real MNIST images (the test split cut in
        # two, 3,000 / 500): after 5 epochs, test loss 0.09 (97.6%) in the original order
        # and 0.37-0.40 (about 89%) swapped, so the swap shows. With these values "Run All"
        # took 13 min on the 2-core CPU shared with other jobs (load 7-11; see
        # benchmarks/notebook_times/01_mnist_loss_curves.json), within a lab session.
        "subset": 2400,
    },
    "complet": {"epochs": 14, "subset": None},  # today's defaults: the sheet's whole study
}


@dataclass(frozen=True)
class MnistLossConfig:
    """One training of notebook 01.

    swap: learn on the 10k test set and evaluate on the 60k training set.
    dropout: keep MnistNet's two dropout layers (False replaces them by identities).
    subset: N keeps the first N images of MNIST's training split and the same share of its
      test split (N x 10,000 / 60,000), so the two keep their 6:1 ratio and the swap still
      learns on the small one; (n_train, n_test) gives both sizes (after the swap) as is.
    device: 'auto' (cuda > mps > cpu, or env COURSEKIT_DEVICE), 'cpu', 'cuda', ...
    """

    swap: bool = False
    dropout: bool = True
    epochs: int = 14
    subset: int | tuple[int, int] | None = None
    batch_size: int = 64
    test_batch: int = 1000
    lr: float = 1.0
    gamma: float = 0.7
    seed: int = 1
    device: str = "auto"

    @property
    def name(self) -> str:
        """Return a file-safe run name, e.g. 'mnist_swap_nodropout_3f2a9c1b'."""
        split = "swap" if self.swap else "orig"
        drop = "dropout" if self.dropout else "nodropout"
        return config_name(f"mnist_{split}_{drop}", self)


def make_loaders(
    config: MnistLossConfig, device: torch.device | None = None
) -> tuple[TensorLoader, TensorLoader]:
    """Return (train loader, test loader) of MNIST as the config asks (swap, subset).

    Batches are x float32 (B, 1, 28, 28) normalized, y int64 (B,); the training loader
    is shuffled every epoch, the test loader is not.
    """
    train_set, test_set = load_data(config)
    return loaders_for(config, train_set, test_set, device)


def subset_sizes(subset: int, n_train: int, n_test: int) -> tuple[int, int]:
    """Return (train, test) sizes keeping the splits' ratio: the first `subset` training
    images and round(subset x n_test / n_train) test images (at least 1, at most all)."""
    if subset < 1:
        raise ValueError(f"subset must be a positive number of images, got {subset}")
    kept = min(subset, n_train)
    return kept, max(1, min(n_test, round(kept * n_test / n_train)))


def load_data(config: MnistLossConfig) -> tuple[Any, Any]:
    """Return (learning set, evaluation set) of MNIST as the config asks (subset, then swap)."""
    if not isinstance(config.subset, int) or isinstance(config.subset, bool):
        return load_splits("MNIST", subset=config.subset, swap=config.swap)
    train, test = load_splits("MNIST")
    n_train, n_test = subset_sizes(config.subset, len(train), len(test))
    train, test = first_n(train, n_train), first_n(test, n_test)
    return (test, train) if config.swap else (train, test)


def loaders_for(
    config: MnistLossConfig, train_set: Any, test_set: Any, device: torch.device | None = None
) -> tuple[TensorLoader, TensorLoader]:
    """Return (train loader, test loader) over two MNIST-format datasets with the recipe's
    batch sizes and normalization; see `make_loaders` for the batch shapes."""
    device = get_device(device or config.device)
    common = {"device": device, "mean": MNIST_MEAN, "std": MNIST_STD}
    train = TensorLoader.from_dataset(
        train_set, batch_size=config.batch_size, shuffle=True, **common
    )
    test = TensorLoader.from_dataset(
        test_set, batch_size=config.test_batch, shuffle=False, **common
    )
    return train, test


def split_sizes(config: MnistLossConfig) -> tuple[int, int]:
    """Return (number of training samples, number of test samples) the config trains on."""
    train_set, test_set = load_data(config)
    return len(train_set), len(test_set)


def run(
    config: MnistLossConfig,
    *,
    checkpoint: str | Path | None,
    retrain: bool = False,
    verbose: bool = True,
) -> tuple[MnistNet, History]:
    """Return (trained model, History) of one run on MNIST as the config asks.

    The history has train_loss, train_eval_loss, val_loss (the test split), their
    accuracies, lr and seconds per epoch. checkpoint: written after every epoch (None:
    none); an unfinished one is resumed, a finished one loaded instead of training
    again (retrain: train from scratch anyway).
    """
    train, test = make_loaders(config)
    return train_model(config, train, test, checkpoint=checkpoint, retrain=retrain,
                       verbose=verbose)


def train_model(
    config: MnistLossConfig,
    train_loader: Any,
    test_loader: Any,
    *,
    checkpoint: str | Path | None,
    retrain: bool = False,
    verbose: bool = True,
) -> tuple[MnistNet, History]:
    """Return (model, History) after the recipe's training on the given loaders.

    Loaders yield x (B, 1, 28, 28) normalized and y (B,); see `run` for the rest.
    """
    device = get_device(config.device)
    seed_everything(config.seed)  # the same seed gives the same initial weights and order
    model = MnistNet(dropout=config.dropout)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=config.gamma)
    history = fit(
        model,
        train_loader,
        test_loader,
        epochs=config.epochs,
        optimizer=optimizer,
        loss_fn=F.nll_loss,  # MnistNet returns log-probabilities
        scheduler=scheduler,
        device=device,
        eval_train=True,
        checkpoint=checkpoint,
        restart=retrain,
        verbose=verbose,
    )
    return model, history
