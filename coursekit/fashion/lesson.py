"""Notebook 05: LeNet-5 on FashionMNIST, one `run(config)` per variant.

A `FashionConfig` names everything a training depends on (data split, model switches,
optimizer, scheduler, regularization, early stopping); `run(config, checkpoint=...)`
trains it and returns (model, History). The notebook first writes the training loop,
the stopping rule and the L1 term in its own cells (exercises 3-5); this module is what
then serves the variants. The Optuna search over these fields is in `fashion_search`.

Data: by default the sheet's split, i.e. FashionMNIST's training set against its test
set used as validation. With `holdout=n` the last n training images become the validation
set and the test set stays untouched, which is what tuning needs (exercise 8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from coursekit.checkpoint import config_name
from coursekit.data import load_splits
from coursekit.data.tensor_loader import TensorLoader
from coursekit.fashion.models import LeNet5
from coursekit.models import count_parameters
from coursekit.settings import get_device, seed_everything
from coursekit.train import EarlyStopping, History, evaluate, fit

FASHION_MEAN = (0.2860,)
FASHION_STD = (0.3530,)
MAX_PARAMS = 65_000  # "LeNet-5-sized": the budget every tuned variant must fit in
WIDTHS: dict[str, dict[str, tuple[int, int]]] = {
    "lenet5": {"channels": (6, 16), "hidden": (120, 84)},
    # More filters, fewer dense units (62,526 and 62,426 parameters with BatchNorm on both
    # convolutions): filters are what image tasks need, and they cost few weights.
    "wide": {"channels": (16, 32), "hidden": (84, 64)},
    "wider": {"channels": (24, 48), "hidden": (40, 40)},
}
OPTIMIZERS = ("sgd", "adamw")

# The notebook's run profiles (`coursekit.profiles.profile_values`). "complet" is the whole
# study as the sheet asks (100 epochs on all the data, two Optuna phases of 24 trials of 30
# epochs): several hundred full-data epochs, made for a GPU. "séance" answers every
# question within a lab session on a 2-core CPU ("Run All" measured in
# benchmarks/notebook_times/05_fashionmnist_regularization.json).
PROFILES: dict[str, dict[str, Any]] = {
    "séance": {
        # The number of SGD steps is what a lab session can afford (about 1,200 per training
        # for the ten trainings of exercises 3-7). Spent as 15 passes over 5,000 images
        # rather than 7 over the sheet's 10,000, they show more overfitting (train/validation
        # gap) for the regularizations to act on. Early stopping needs more: measured on
        # 5,000 images, the baseline's validation loss is lowest at epoch 17, so patience 5
        # stops at 22; 25 epochs would nearly double the session's time on a loaded CPU,
        # and the notebook says when early stopping had nothing to stop.
        "epochs": 15,
        # The sheet's tip when training is too long (exercise 3), with half its training
        # images (see above); its 2,000 validation images keep the noise margin at ~2 %.
        "subset": (5000, 2000),
        # One thread: LeNet-5's batches of 64 are too small to gain from more, and on a
        # shared CPU two threads wait for each other (measured on 2 loaded cores, 10,000
        # images: 2.2 s an epoch with one thread, 28 to 41 s with two).
        "threads": 1,
        # Exercise 8: two phases of 5 trials of 5 epochs keep the method (a recipe, then
        # TPE, pruning from the 4th epoch) at a fraction of the time of exercises 3-7.
        "trial_epochs": 5,
        "n_trials_phase1": 5,
        "n_trials_phase2": 5,
    },
    "complet": {
        "epochs": 100,
        "subset": None,  # all the data
        "threads": None,  # torch's default
        "trial_epochs": 30,
        "n_trials_phase1": 24,
        "n_trials_phase2": 24,
    },
}
SCHEDULERS = ("none", "plateau", "cosine", "onecycle")


@dataclass(frozen=True)
class FashionConfig:
    """One training of notebook 05 (defaults: the sheet's baseline, SGD lr 0.1 momentum 0.9).

    subset: keep the first N images of each split, or (n_train, n_test), as the sheet's tip;
    holdout: if > 0, validate on the last `holdout` training images instead of the test set;
    batchnorm: 'none', 'c1' (between the two convolutions) or 'convs' (after both);
    width: 'lenet5' (6/16 filters, 120/84 units), 'wide' (16/32, 84/64) or 'wider' (24/48,
      40/40), all under MAX_PARAMS;
    dropout: rate between F3 and F4, and between C1 and C2 unless conv_dropout is set;
    weight_decay: the optimizer's L2 term; l1: coefficient of sum|w| added to the loss;
    scheduler: 'none', 'plateau' (ReduceLROnPlateau on val_loss, same min_delta as early
      stopping), 'cosine' or 'onecycle' (both stepped once per epoch over `epochs`);
    early_stopping: patience in epochs (0 = off), improvements smaller than min_delta
      do not count, the best weights are restored;
    augment: random horizontal flip + random crop after 2-pixel padding (training only).
    """

    epochs: int = 100
    subset: int | tuple[int, int] | None = None
    holdout: int = 0
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    l1: float = 0.0
    dropout: float = 0.0
    conv_dropout: float | None = None
    batchnorm: str = "none"
    width: str = "lenet5"
    scheduler: str = "none"
    plateau_patience: int = 2
    plateau_factor: float = 0.1
    early_stopping: int = 0
    min_delta: float = 0.005
    label_smoothing: float = 0.0
    augment: bool = False
    seed: int = 0
    device: str = "auto"
    label: str = "run"

    def __post_init__(self) -> None:
        if isinstance(self.subset, list):  # papermill and JSON give lists, not tuples
            object.__setattr__(self, "subset", tuple(self.subset))
        checks = {
            "optimizer": (self.optimizer, OPTIMIZERS),
            "scheduler": (self.scheduler, SCHEDULERS),
            "width": (self.width, tuple(WIDTHS)),
        }
        for field_name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{field_name} must be one of {allowed}, got {value!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")

    @property
    def name(self) -> str:
        """Return a file-safe run name, e.g. 'fashion_l2_3f2a9c1b', unique per experiment."""
        return config_name(f"fashion_{self.label}", self)


def load_data(
    subset: int | tuple[int, int] | None = None, holdout: int = 0
) -> tuple[Dataset, Dataset, Dataset]:
    """Return (train, validation, test) FashionMNIST datasets (uint8 28x28 images, int labels).

    Without holdout the validation set is the test set, as in the sheet; with holdout=n
    it is the last n images of the (subset of the) training set, which training then
    never sees.
    """
    train, test = load_splits("FashionMNIST", subset=subset)
    if holdout <= 0:
        return train, test, test
    if holdout >= len(train):
        raise ValueError(f"holdout={holdout} leaves no training image out of {len(train)}")
    cut = len(train) - holdout
    return Subset(train, range(cut)), Subset(train, range(cut, len(train))), test


def make_loaders(
    config: FashionConfig, device: torch.device | None = None, eval_batch: int = 1000
) -> tuple[TensorLoader, TensorLoader, TensorLoader]:
    """Return (train, val, test) TensorLoaders: x float32 (B, 1, 28, 28) normalized, y (B,).

    Only the training loader shuffles and (with config.augment) flips and crops.
    """
    device = get_device(device or config.device)
    train, val, test = load_data(config.subset, config.holdout)
    norm = {"device": device, "mean": FASHION_MEAN, "std": FASHION_STD}
    aug = {"hflip": True, "crop_padding": 2} if config.augment else {}
    return (
        TensorLoader.from_dataset(train, batch_size=config.batch_size, shuffle=True, **norm, **aug),
        TensorLoader.from_dataset(val, batch_size=eval_batch, shuffle=False, **norm),
        TensorLoader.from_dataset(test, batch_size=eval_batch, shuffle=False, **norm),
    )


def make_model(config: FashionConfig) -> LeNet5:
    """Return the LeNet5 the config describes; ValueError if it exceeds MAX_PARAMS."""
    model = LeNet5(
        dropout=config.dropout,
        conv_dropout=config.conv_dropout,
        batchnorm=config.batchnorm,
        **WIDTHS[config.width],
    )
    n = count_parameters(model)
    if n > MAX_PARAMS:
        raise ValueError(f"{config.width} LeNet has {n:,} parameters, over {MAX_PARAMS:,}")
    return model


def make_optimizer(config: FashionConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Return SGD (with config.momentum) or AdamW, with config.lr and config.weight_decay."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(config: FashionConfig, optimizer: torch.optim.Optimizer) -> Any:
    """Return the LR scheduler of the config (stepped once per epoch by fit), or None."""
    if config.scheduler == "plateau":
        # Same improvement rule as early stopping, so their patiences count the same epochs.
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.plateau_factor,
            patience=config.plateau_patience, threshold=config.min_delta, threshold_mode="abs",
        )
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.scheduler == "onecycle":
        # One step per epoch; +1 so that the last epoch does not run at the final ~0 rate.
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=config.epochs + 1
        )
    return None


def make_stopper(config: FashionConfig) -> EarlyStopping | None:
    """Return the EarlyStopping on val_loss the config asks for, or None."""
    if config.early_stopping <= 0:
        return None
    return EarlyStopping(patience=config.early_stopping, min_delta=config.min_delta)


def l1_penalty(model: nn.Module, coef: float, weights_only: bool = False) -> torch.Tensor:
    """Return the scalar tensor coef * sum(|p|) over the model's trainable parameters.

    weights_only: skip biases and normalization parameters (tensors with one dimension),
    which L1 is usually not meant to push to zero.
    """
    params = [
        p for p in model.parameters() if p.requires_grad and not (weights_only and p.dim() < 2)
    ]
    if not params:
        raise ValueError("the model has no trainable parameter to penalize")
    return coef * sum(p.abs().sum() for p in params)


def l1_loss_term(coef: float, weights_only: bool = False) -> Callable[[nn.Module], torch.Tensor]:
    """Return model -> l1_penalty(model, coef), the form fit(extra_loss=...) expects."""

    def term(model: nn.Module) -> torch.Tensor:
        return l1_penalty(model, coef, weights_only)

    return term


def run(
    config: FashionConfig,
    *,
    checkpoint: str | Path | None,
    retrain: bool = False,
    eval_train: bool = True,
    callback: Callable[[dict[str, float]], None] | None = None,
    verbose: bool = True,
) -> tuple[LeNet5, History]:
    """Return (trained model, History) of one training; columns as `coursekit.train.fit`.

    The seed is set before the model is built, so variants of the same architecture
    start from identical weights. checkpoint: written after every epoch (None: none);
    an unfinished one is resumed, a finished one loaded instead of training again
    (retrain: train from scratch anyway). eval_train: also re-measure the training set in
    eval mode after each epoch (train_eval_*), so that the train/validation gap of a
    dropout model compares like with like.
    """
    device = get_device(config.device)
    seed_everything(config.seed)
    model = make_model(config)
    train, val, _ = make_loaders(config, device)
    optimizer = make_optimizer(config, model)
    history = fit(
        model,
        train,
        val,
        epochs=config.epochs,
        optimizer=optimizer,
        loss_fn=nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        scheduler=make_scheduler(config, optimizer),
        early_stopping=make_stopper(config),
        extra_loss=l1_loss_term(config.l1) if config.l1 > 0 else None,
        device=device,
        checkpoint=checkpoint,
        restart=retrain,
        eval_train=eval_train,
        callback=callback,
        verbose=verbose,
    )
    return model, history


def evaluate_test(model: nn.Module, config: FashionConfig) -> dict[str, float]:
    """Return {'loss', 'acc'} of `model` on the test split of the config's data (plain CE)."""
    _, _, test = make_loaders(config, next(model.parameters()).device)
    return evaluate(model, test)


def evaluate_val(model: nn.Module, config: FashionConfig) -> dict[str, float]:
    """Return {'loss', 'acc'} of `model` on the config's validation split (plain CE)."""
    _, val, _ = make_loaders(config, next(model.parameters()).device)
    return evaluate(model, val)


def replay_patience(
    val_losses: Sequence[float],
    stop_patience: int,
    scheduler_patience: int,
    min_delta: float = 0.005,
    lr: float = 0.1,
    factor: float = 0.1,
) -> pd.DataFrame:
    """Return, per epoch, the LR used, the val loss, and both counters until training stops.

    Columns: epoch (1-based), lr (at the start of the epoch), val_loss, stopper_wait,
    scheduler_bad_epochs, stop (True on the last epoch if early stopping fired).
    Both count an improvement the same way (by more than min_delta, absolute). The real
    ReduceLROnPlateau and coursekit's EarlyStopping get the same losses, so the notebook
    shows, independently of training noise, whether the reduced rate is ever used before
    training stops (see `coursekit.analysis.reduced_lr_epochs`).
    """
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=factor, patience=scheduler_patience,
        threshold=min_delta, threshold_mode="abs",
    )
    stopper = EarlyStopping(patience=stop_patience, min_delta=min_delta, restore_best=False)
    rows = []
    for epoch, loss in enumerate(val_losses, start=1):
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "val_loss": float(loss)}
        scheduler.step(loss)
        stop = stopper.step(float(loss), epoch)
        row.update(
            stopper_wait=stopper.wait, scheduler_bad_epochs=scheduler.num_bad_epochs, stop=stop
        )
        rows.append(row)
        if stop:
            break
    return pd.DataFrame(rows).set_index("epoch")


def batchnorm_affine_gap(channels: pd.DataFrame, tol: float = 0.1) -> dict[str, float | bool]:
    """Return how far BatchNorm's eval-mode output is from its learned (beta, |gamma|).

    channels: `coursekit.models.measure.feature_stats`'s per-channel frame of a BatchNorm
    layer in eval mode, plus columns 'gamma' and 'beta'. When the running statistics
    describe the data, each channel leaves with mean beta and std |gamma|. Keys: gap_mean,
    gap_std (mean absolute gaps over the channels), tol, matches (both gaps below tol).
    """
    gap_mean = float((channels["mean_after"] - channels["beta"]).abs().mean())
    gap_std = float((channels["std_after"] - channels["gamma"].abs()).abs().mean())
    return {"gap_mean": gap_mean, "gap_std": gap_std, "tol": tol,
            "matches": max(gap_mean, gap_std) < tol}
