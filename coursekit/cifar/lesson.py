"""Notebook 04: CIFAR-10, from the PyTorch tutorial net to a final net of <= 256,000 weights.

A `CifarConfig` names everything one training depends on (model and its options, batch
sizes, optimizer, loss, LR schedule, augmentation, epochs or time budget, validation
split); `run(config, checkpoint=...)` trains it through `coursekit.train.fit` and returns
(model, History). `CifarConfig()` is the tutorial exactly; `FINAL` the final network.

Data: every choice is made on a validation split held out from the 50,000 training
images (`holdout`, default 5,000), never on a test set. The held-out images are the last
holdout/10 images of each class in the dataset's order (stratified and deterministic,
whatever the seed, so every variant is compared on the same images; with a class-sorted
copy such as the JPEG one, "the last N images" would be all trucks). The test split is
loaded only if present (the JPEG copy has none) and is for the very last measurement.

Without a time budget, schedules are LR factors per epoch (`fit` steps a scheduler once
per epoch). With one, the rate is set before every batch from the share of the budget
used (`coursekit.cifar.budget`) and the last epoch is cut at the budget, so the schedule
ends when the budget does however slow the epochs are (no probe, no plan of epochs).
`epochs_in_budget` remains for reports such as "epochs in one hour".
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coursekit import settings
from coursekit.checkpoint import checkpoint_path, config_name
from coursekit.cifar.budget import BudgetLoader, TimeSchedule, time_factor
from coursekit.cifar.models import FinalNet, TutorialNet, VariantNet
from coursekit.data import DatasetMissingError, load_dataset, to_uint8_tensors
from coursekit.data.tensor_loader import TensorLoader, normalize_uint8
from coursekit.french import fr_num
from coursekit.metrics import confusion_matrix, per_class_accuracy
from coursekit.settings import get_device, seed_everything
from coursekit.train import (
    EarlyStopping,
    History,
    finished_checkpoint,
    fit,
)

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
NORMALIZATIONS = {"tutorial": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), "cifar": (CIFAR_MEAN, CIFAR_STD)}
MODELS = ("tutorial", "variant", "final")
OPTIMIZERS = ("sgd", "adam", "adamw")
LOSSES = ("ce", "label_smoothing", "multi_margin")
SCHEDULES = ("constant", "plateaus", "onecycle", "cosine")
PLATEAU_FRACTIONS = (0.5, 0.25, 0.25)  # the sheet's plan: 50% / 25% / 25% of the epochs
BUDGET_MARGIN = 0.05  # schedules end 5% before the budget: the last validation fits in it


@dataclass(frozen=True)
class CifarConfig:
    """One training of notebook 04; the defaults are the PyTorch tutorial's.

    model: 'tutorial' (TutorialNet), 'variant' (VariantNet with channels, kernel_size,
      padding, extra_conv, split, hidden, activation, batchnorm, dropout) or 'final' (FinalNet
      with widths, depth);
    batch_size: training batch; eval_batch: validation/test batch, a divisor of 10,000;
    optimizer: 'sgd' (momentum, nesterov), 'adam' or 'adamw'; weight_decay skips biases
      and BatchNorm parameters;
    loss: 'ce', 'label_smoothing' (CE with `label_smoothing`) or 'multi_margin' (hinge);
    schedule: 'constant'; 'plateaus' (lr, lr/10, lr/100 over 50/25/25% of the epochs, or
      of the time budget: the sheet's 0.01/0.001/0.0001 with lr=0.01); 'onecycle' (linear
      warm-up over `warmup` of the epochs or budget to lr, then linear decay to 0);
      'cosine' (same warm-up, then cosine decay);
    hflip, crop_padding: training augmentation (random flip, random crop after padding);
    normalize: 'tutorial' ((x - 0.5) / 0.5) or 'cifar' (CIFAR-10 mean and std);
    epochs: number of epochs, or the cap when time_budget_s is set (the budget decides);
    holdout: validation images held out of the training images (last holdout/10 of each
      class); subset: keep only N training images, the first N/10 of each class;
    amp: float16 autocast on CUDA; channels_last: NHWC memory format (faster convs on
      recent GPUs and on CPU); tta_flip: `evaluate_split` averages the logits of each image
      and its mirror.
    """

    model: str = "tutorial"
    channels: tuple[int, ...] = (6, 16)
    kernel_size: int = 5
    padding: int = 0
    extra_conv: int = 0
    split: tuple[int, ...] = ()
    hidden: tuple[int, ...] = (120, 84)
    activation: str = "relu"
    batchnorm: bool = False
    dropout: float = 0.0
    widths: tuple[int, ...] = (32, 80, 95)
    depth: int = 2
    batch_size: int = 4
    eval_batch: int = 1000
    optimizer: str = "sgd"
    lr: float = 0.001
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    loss: str = "ce"
    label_smoothing: float = 0.1
    schedule: str = "constant"
    warmup: float = 0.2
    hflip: bool = False
    crop_padding: int = 0
    normalize: str = "tutorial"
    epochs: int = 2
    time_budget_s: float | None = None
    holdout: int = 5000
    subset: int | None = None
    amp: bool = False
    channels_last: bool = False
    tta_flip: bool = False
    seed: int = 0
    device: str = "auto"
    label: str = "run"

    def __post_init__(self) -> None:
        for key in ("channels", "split", "hidden", "widths"):  # papermill, JSON give lists
            object.__setattr__(self, key, tuple(getattr(self, key)))
        choices = {
            "model": MODELS, "optimizer": OPTIMIZERS, "loss": LOSSES, "schedule": SCHEDULES,
            "normalize": tuple(NORMALIZATIONS),
        }  # fmt: skip
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if self.eval_batch < 1 or 10_000 % self.eval_batch:
            raise ValueError(f"eval_batch must divide 10,000, got {self.eval_batch}")
        if self.holdout < 1:
            raise ValueError("holdout must be >= 1: choices are made on a validation split")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the epochs in [0, 1), got {self.warmup}")

    @property
    def name(self) -> str:
        """Return a file-safe run name, e.g. 'cifar_final_3f2a9c1b', unique per experiment."""
        return config_name(f"cifar_{self.label}", self)


# The final network: SGD-Nesterov one-cycle with label smoothing (Page's ResNet-9 recipe,
# learning rate scaled to the batch), flip + pad-4 crop, mirrored test-time evaluation.
FINAL = CifarConfig(
    model="final", batch_size=256, lr=0.2, nesterov=True, weight_decay=5e-4,
    loss="label_smoothing", schedule="onecycle", hflip=True, crop_padding=4, normalize="cifar",
    epochs=200, time_budget_s=3600.0, amp=True, channels_last=True, tta_flip=True,
    label="final",
)  # fmt: skip

ABLATIONS = (
    "sans évaluation miroir", "sans lissage des étiquettes", "sans augmentation",
    "trois paliers au lieu du cycle", "sans Nesterov ni weight decay",
)  # fmt: skip

# Notebook 04's two profiles (coursekit.profiles.profile_values). "complet" is the whole
# study for a GPU, split into one-hour jobs by `etape` (see STEPS). "séance" answers every
# question in one lab session on a 2-core CPU (measured in benchmarks/notebook_times/):
# - subset 6,000 (600 per class) and holdout 1,000: epochs 9 times shorter; 1,000
#   validation images still separate gaps of about 3 points from noise;
# - lr 0.01 for the variants (SGD, batch 16) instead of the tutorial's 0.001: two epochs of
#   5,000 images are only 626 steps, after which at 0.001 most variants are still at chance
#   (measured: 10-12 % on the real images) and no comparison says anything; at 0.01 the
#   tutorial net reaches about 30 %;
# - long_epochs 10: enough to watch the running loss flatten on 5,000 images;
# - batch_budget_minutes 0.5: each batch size gets the same half minute (the batch-4 run
#   does about 3 epochs of 5,000 images on one CPU thread);
# - one budget of 2 minutes for the LR plans, the final net, the ablation and the 2x2
#   augmentation study on the final net: with equal budgets the one-cycle plan, the final
#   net, the ablation's reference and "flip + crop" are one training, the ablation's
#   "three plateaus" is the plan's and "without augmentation" the study's;
# - ablations: only those that cost no training beyond the studies above.
# "complet" keeps the study's sizes; its budgets are 50 minutes, not 60, so that each
# step (training + start, data, reloading the earlier steps, and coursekit oar's 5-minute
# margin before the walltime) fits a job of one hour, the sheet's limit.
PROFILES: dict[str, dict[str, Any]] = {
    "séance": {
        "subset": 6000, "holdout": 1000, "lr": 0.01, "long_epochs": 10,
        "batch_budget_minutes": 0.5, "plan_budget_minutes": 2, "final_budget_minutes": 2,
        "ablation_budget_minutes": 2,
        "ablations": [
            "sans évaluation miroir", "sans augmentation", "trois paliers au lieu du cycle",
        ],
    },
    "complet": {
        "subset": None, "holdout": 5000, "lr": 0.001, "long_epochs": 30,
        "batch_budget_minutes": 3, "plan_budget_minutes": 50, "final_budget_minutes": 50,
        "ablation_budget_minutes": 10, "ablations": list(ABLATIONS),
    },
}  # fmt: skip

# The full study as one-hour GPU jobs (parameter `etape`): step k trains its part and
# stops; the earlier steps' trainings are reloaded from their checkpoints (seconds).
STEPS = {
    1: "sections 1 à 5 : tutoriel, variantes, loss jusqu'au plateau, taille de lot",
    2: "section 6 : le plan à trois paliers",
    3: "sections 6 et 7 : le plan one-cycle, qui est l'entraînement du réseau final",
    4: "section 7 : augmentation 2 × 2 et première moitié de l'étude d'ablation",
    5: "sections 7 et 8 : seconde moitié de l'ablation, bilan",
}


def parse_step(etape: int | str) -> int | str:
    """Return 'tout' or the step number (1..len(STEPS)) that `etape` names."""
    if str(etape).strip().lower() == "tout":
        return "tout"
    try:
        step = int(str(etape))
    except ValueError:
        step = 0
    if step not in STEPS:
        raise ValueError(f"etape : 'tout' ou un entier de 1 à {len(STEPS)}, pas {etape!r}")
    return step


def step_checkpoint(notebook: str, name: str, etape: int | str) -> Path:
    """Return the checkpoint file of training `name` when running step `etape`.

    'tout', or any step in JupyterLab: `checkpoint_path` (Lab's folder is shared by every
    run). A step of a batch run: `<runs>/<notebook>/etapes[-smoke]/checkpoints/`, beside
    the run folders, because each `coursekit run` writes its own folder and the steps must
    read each other's checkpoints.
    """
    run = settings.run_dir()
    if etape == "tout" or run is None:
        return checkpoint_path(notebook, name)
    folder = run.parent / ("etapes-smoke" if settings.smoke_mode() else "etapes") / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.pt"


def finished_training(checkpoint: str | Path, epochs: int) -> bool:
    """Return True if `checkpoint` holds a finished training (`train.finished_checkpoint`)."""
    return finished_checkpoint(checkpoint, epochs)


def require_earlier_step(etape: int | str, step: int, checkpoint: Path, epochs: int) -> None:
    """Raise RuntimeError if step `etape` needs the training of an earlier `step` that has
    not finished (its job has not run, or not to the end): steps run in order."""
    if etape == "tout" or step >= etape or finished_training(checkpoint, epochs):
        return
    raise RuntimeError(
        f"étape {etape} : l'entraînement {checkpoint.stem} de l'étape {step} n'est pas "
        f"terminé ({checkpoint}) ; lancez d'abord l'étape {step} jusqu'au bout"
    )


def end_of_step(etape: int | str, step: int) -> None:
    """Stop the notebook cleanly (SystemExit(0), which papermill counts as success) when
    this job runs step `step`; do nothing otherwise."""
    if etape != step:
        return
    following = f"-p etape {step + 1}" if step + 1 in STEPS else "aucune : l'étude est finie"
    print(f"étape {step} terminée ({STEPS[step]}). Étape suivante : {following}.", flush=True)
    raise SystemExit(0)


# --- data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CifarData:
    """CIFAR-10 pixels: train images uint8 (N, 3, 32, 32), labels int64 (N,), test or None."""

    images: torch.Tensor
    labels: torch.Tensor
    test_images: torch.Tensor | None
    test_labels: torch.Tensor | None
    classes: tuple[str, ...]


def load_data(subset: int | None = None, root: str | Path | None = None) -> CifarData:
    """Return the CIFAR-10 pixels under `root` (see `load_dataset`); test None if absent.

    subset: keep the first N training images (and at most N test images). Load once and
    pass the result to `run(..., data=...)` to train several variants without reloading.
    """
    train = load_dataset("CIFAR10", train=True, root=root, download=False)
    images, labels = to_uint8_tensors(train)
    try:
        test = load_dataset("CIFAR10", train=False, root=root, download=False)
    except DatasetMissingError:
        data = CifarData(images, labels, None, None, tuple(train.classes))
    else:
        data = CifarData(images, labels, *to_uint8_tensors(test), tuple(train.classes))
    return first_images(data, subset)


def first_images(data: CifarData, n: int | None) -> CifarData:
    """Return `data` cut to n training images and at most n test images (None: all),
    the first n/C of each of the C classes in dataset order (the first n % C classes one
    more), kept in dataset order.

    Per class, not simply the first n: in a class-sorted copy such as the JPEG one the
    first n images would hold only the first classes.
    """
    if n is None:
        return data
    keep = _first_per_class(data.labels, n)
    test = (None, None)
    if data.test_images is not None:
        kept = _first_per_class(data.test_labels, n)
        test = (data.test_images[kept], data.test_labels[kept])
    return CifarData(data.images[keep], data.labels[keep], *test, data.classes)


def _first_per_class(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Return the sorted indices of the first n/C images of each class (fewer if absent)."""
    classes = torch.unique(labels)
    per_class, extra = divmod(n, len(classes))
    chosen = [
        torch.nonzero(labels == c).flatten()[: per_class + (i < extra)]
        for i, c in enumerate(classes.tolist())
    ]
    return torch.cat(chosen).sort().values


def holdout_split(labels: torch.Tensor, holdout: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (train indices, validation indices): the last holdout/C images of each class.

    The C classes get holdout // C images each (the first holdout % C classes one more),
    taken from the end of each class in dataset order; both index tensors are sorted.
    """
    classes = torch.unique(labels)
    per_class, extra = divmod(holdout, len(classes))
    val = []
    for i, c in enumerate(classes.tolist()):
        members = torch.nonzero(labels == c).flatten()
        k = per_class + (i < extra)
        if k >= len(members):
            raise ValueError(
                f"holdout={holdout} takes {k} images of class {c}, which has only "
                f"{len(members)}; lower holdout (or raise subset)"
            )
        val.append(members[len(members) - k :])
    val_index = torch.cat(val).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_index] = False
    return torch.nonzero(keep).flatten(), val_index


def make_loaders(
    config: CifarConfig, data: CifarData | None = None, device: torch.device | None = None
) -> tuple[TensorLoader, TensorLoader, TensorLoader | None]:
    """Return (train, val, test or None) TensorLoaders: x float32 (B, 3, 32, 32), y (B,).

    Only the training loader shuffles and augments (config.hflip, config.crop_padding), on
    the device. data: pixels from `load_data` (default: loaded now); config.subset applies.
    """
    data = first_images(data if data is not None else load_data(), config.subset)
    device = get_device(device or config.device)
    train_index, val_index = holdout_split(data.labels, config.holdout)
    mean, std = NORMALIZATIONS[config.normalize]
    common = {"device": device, "mean": mean, "std": std}
    evaluation = {"batch_size": config.eval_batch, "shuffle": False, **common}
    train = TensorLoader(
        data.images[train_index], data.labels[train_index], batch_size=config.batch_size,
        shuffle=True, hflip=config.hflip, crop_padding=config.crop_padding, **common,
    )  # fmt: skip
    val = TensorLoader(data.images[val_index], data.labels[val_index], **evaluation)
    test = None
    if data.test_images is not None:
        test = TensorLoader(data.test_images, data.test_labels, **evaluation)
    return train, val, test


# --- model, optimizer, loss ------------------------------------------------------------------


def make_model(config: CifarConfig) -> nn.Module:
    """Return the untrained network of the config (FinalNet raises above MAX_PARAMS)."""
    if config.model == "tutorial":
        model: nn.Module = TutorialNet()
    elif config.model == "variant":
        model = VariantNet(
            channels=config.channels, kernel_size=config.kernel_size, padding=config.padding,
            extra_conv=config.extra_conv, split=config.split, hidden=config.hidden,
            activation=config.activation,
            batchnorm=config.batchnorm, dropout=config.dropout,
        )  # fmt: skip
    else:
        model = FinalNet(widths=config.widths, depth=config.depth)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(config: CifarConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Return the config's optimizer over the trainable parameters, lr = config.lr.

    Weight decay applies to weights only: decaying biases and BatchNorm scales/shifts only
    pulls them towards 0 without regularizing anything.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() > 1], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
        )  # fmt: skip
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(groups, lr=config.lr)


def make_loss(config: CifarConfig) -> nn.Module:
    """Return the training loss of the config (evaluation always reports plain CE too)."""
    if config.loss == "label_smoothing":
        return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if config.loss == "multi_margin":
        return nn.MultiMarginLoss()
    return nn.CrossEntropyLoss()


# --- schedules ------------------------------------------------------------------------------


def plateau_starts(epochs: int, fractions: Sequence[float] = PLATEAU_FRACTIONS) -> list[int]:
    """Return the first epoch (1-based) of each plateau; e.g. 8 epochs -> [1, 5, 7].

    Plateau k ends at round(epochs * (f_1 + ... + f_k)); each one keeps at least one
    epoch when there are enough epochs for all of them.
    """
    if epochs < 1 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"need epochs >= 1 and fractions summing to 1, got {epochs}, {fractions}")
    starts, end = [], 0
    for k, cumulative in enumerate(itertools.accumulate(fractions)):
        left = len(fractions) - k - 1  # plateaus still to place after this one
        starts.append(end + 1)
        end = max(end + 1, math.floor(epochs * cumulative + 0.5))
        end = min(end, max(epochs - left, starts[-1]))
    return starts


def plateau_factor(epochs: int, factors: Sequence[float], fractions: Sequence[float]) -> Callable:
    """Return epoch index (0-based) -> factors[k] of the plateau that epoch lies in."""
    starts = plateau_starts(epochs, fractions)

    def factor(index: int) -> float:
        k = sum(1 for s in starts if s <= index + 1) - 1
        return factors[k]

    return factor


def plateau_schedule(
    optimizer: torch.optim.Optimizer,
    epochs: int,
    lrs: Sequence[float] = (0.01, 0.001, 0.0001),
    fractions: Sequence[float] = PLATEAU_FRACTIONS,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Return a per-epoch LambdaLR giving lrs[k] during plateau k (fractions of the epochs).

    The first parameter group gets exactly `lrs`; other groups keep their ratio to it.
    Beyond `epochs` (a pessimistic plan) the last rate stays.
    """
    if len(lrs) != len(fractions):
        raise ValueError(f"{len(lrs)} learning rates for {len(fractions)} fractions")
    base = optimizer.param_groups[0]["lr"]
    factors = [lr / base for lr in lrs]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, plateau_factor(epochs, factors, fractions))


def warmup_decay_factor(epochs: int, warmup: float, shape: str) -> Callable:
    """Return epoch index (0-based) -> LR factor: linear warm-up, then linear/cosine decay.

    Each epoch uses the curve's value at its middle, so that with the LR held for a whole
    epoch neither the first epoch runs at 0 nor the last one at 0.
    """

    def factor(index: int) -> float:
        t = (min(index, epochs - 1) + 0.5) / epochs  # past the plan: keep the last rate
        if t < warmup:
            return t / warmup
        p = (t - warmup) / (1 - warmup)
        return 1 - p if shape == "onecycle" else 0.5 * (1 + math.cos(math.pi * p))

    return factor


def make_scheduler(config: CifarConfig, optimizer: torch.optim.Optimizer, epochs: int) -> Any:
    """Return the per-epoch scheduler of the config laid over `epochs` epochs, or None."""
    if config.schedule == "constant":
        return None
    if config.schedule == "plateaus":
        return plateau_schedule(optimizer, epochs, [config.lr * f for f in (1, 0.1, 0.01)])
    factor = warmup_decay_factor(epochs, config.warmup, config.schedule)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def time_schedule(
    config: CifarConfig,
    optimizer: torch.optim.Optimizer,
    clock: Callable[[], float] = time.perf_counter,
) -> TimeSchedule:
    """Return the config's schedule driven by the share of its time budget used.

    It ends at (1 - BUDGET_MARGIN) of the budget, leaving the margin to the last epoch's
    validation; plateaus are lr, lr/10, lr/100 over 50/25/25 % of that time.
    """
    if config.time_budget_s is None:
        raise ValueError("time_schedule needs config.time_budget_s (seconds)")
    plateaus = tuple(zip(PLATEAU_FRACTIONS, (1.0, 0.1, 0.01), strict=True))

    def factor(fraction: float) -> float:
        return time_factor(fraction, config.schedule, config.warmup, plateaus)

    budget = config.time_budget_s * (1 - BUDGET_MARGIN)
    return TimeSchedule(optimizer, budget, factor, clock=clock)


def epochs_in_budget(epoch_seconds: float, budget_s: float, margin: float = BUDGET_MARGIN) -> int:
    """Return how many epochs of `epoch_seconds` fit in (1 - margin) * budget_s, at least 1."""
    if epoch_seconds <= 0 or budget_s <= 0:
        raise ValueError(f"epoch_seconds and budget_s must be > 0, got {epoch_seconds}, {budget_s}")
    return max(1, math.floor(budget_s * (1 - margin) / epoch_seconds))


# --- training and evaluation ---------------------------------------------------------------


def _whitening_images(train: TensorLoader, n: int = 5000) -> torch.Tensor:
    """Return the first n training images normalized as the loader does, float (n, 3, 32, 32)."""
    return normalize_uint8(train.images[:n], train.mean, train.std)


def run(
    config: CifarConfig,
    *,
    checkpoint: str | Path | None,
    retrain: bool = False,
    verbose: bool = True,
    data: CifarData | None = None,
    callback: Callable[[dict[str, float]], None] | None = None,
    early_stopping: EarlyStopping | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[nn.Module, History]:
    """Return (trained model, History) of one training; columns as `coursekit.train.fit`.

    The seed is set before the model is built, so variants of one architecture start from
    the same weights. checkpoint: written after every epoch (None: none); an unfinished one
    is resumed, a finished one loaded (retrain: start afresh); with a time budget the plan
    is kept next to it in `<checkpoint>.plan.json`. data: pixels from `load_data` (default:
    loaded now); config.subset applies to it. early_stopping: e.g. on 'train_loss', to
    train "until the running loss stops falling" as the sheet asks.
    """
    device = get_device(config.device)
    seed_everything(config.seed)
    model = make_model(config).to(device)
    train, val, _ = make_loaders(config, data, device)
    if isinstance(model, FinalNet):
        model.init_whitening(_whitening_images(train))
    optimizer = make_optimizer(config, model)
    options: dict[str, Any] = {"scheduler": None, "time_budget_s": None, "stop_when": None}
    loader: Any = train
    if config.time_budget_s is None:
        options["scheduler"] = make_scheduler(config, optimizer, config.epochs)
    else:
        schedule = time_schedule(config, optimizer, clock=clock)
        loader = BudgetLoader(train, schedule)
        options.update(scheduler=schedule, stop_when=schedule.exhausted)
        if verbose:
            print(
                f"budget : {fr_num(config.time_budget_s, 4)} s ; taux d'apprentissage réglé "
                "avant chaque lot selon la part du budget écoulée",
                flush=True,
            )

    def images(_model: nn.Module, _epoch: int) -> dict[str, float]:
        # after the epoch: its images and the rate of its last batch (where the plan got to)
        seen = getattr(loader, "images_seen", train.num_samples)
        return {"images": seen, "lr_end": optimizer.param_groups[0]["lr"]}

    history = fit(
        model, loader, val, epochs=config.epochs, optimizer=optimizer, loss_fn=make_loss(config),
        device=device, checkpoint=checkpoint, restart=retrain, amp=config.amp,
        callback=callback, early_stopping=early_stopping, verbose=verbose, epoch_metrics=images,
        **options,
    )  # fmt: skip
    return model, history


def recipe_sentence(config: CifarConfig) -> str:
    """Return a French sentence of the training recipe of `config`, read from its fields."""
    optimizer = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[config.optimizer]
    if config.optimizer == "sgd" and config.momentum > 0:
        optimizer += f" {'Nesterov' if config.nesterov else 'momentum'} {fr_num(config.momentum)}"
    schedule = {
        "constant": "constant", "plateaus": "trois paliers (taux, taux/10, taux/100)",
        "onecycle": "un cycle (montée puis descente linéaires)",
        "cosine": "montée linéaire puis descente en cosinus",
    }[config.schedule]  # fmt: skip
    loss = {
        "ce": "entropie croisée", "multi_margin": "perte multi-marge",
        "label_smoothing": "entropie croisée avec lissage des étiquettes "
        + fr_num(config.label_smoothing),
    }[config.loss]  # fmt: skip
    augment = [w for w, on in (("retournement", config.hflip), ("recadrage", config.crop_padding))
               if on]  # fmt: skip
    decay = f"weight decay {fr_num(config.weight_decay)}" if config.weight_decay else "sans"
    parts = [
        f"{optimizer}, taux de pointe {fr_num(config.lr)}, plan {schedule}",
        decay if config.weight_decay else "sans weight decay",
        loss, f"lots de {config.batch_size}",
        f"augmentation : {' et '.join(augment)}" if augment else "sans augmentation",
        "évaluation sur l'image et son miroir" if config.tta_flip else "évaluation simple",
    ]  # fmt: skip
    return " ; ".join(parts)


def budget_summary(history: History, train_images: int) -> dict[str, float]:
    """Return what a budgeted run did: seconds, epochs (fractional), seconds per epoch,
    training images per second and the last validation accuracy.

    The epochs count the images seen (column 'images'), so a cut last epoch counts for its
    share; the seconds include the validations, as the budget does.
    """
    seconds = sum(history["seconds"])
    images = sum(history["images"])
    if seconds <= 0 or images <= 0:
        raise ValueError("the history records no training time or images: train first")
    epochs = images / train_images
    return {
        "secondes": seconds, "époques": epochs, "secondes par époque": seconds / epochs,
        "images par seconde": images / seconds, "accuracy de validation": history["val_acc"][-1],
    }  # fmt: skip


@torch.no_grad()
def predict(
    model: nn.Module, loader: TensorLoader, tta_flip: bool = False, amp: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits float32 (N, C), labels (N,)) of the whole loader, in eval mode.

    tta_flip: average the logits of each image and of its left-right mirror.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs, labels = [], []
    for x, y in loader:
        x = x.to(device)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            out = model(x).float()
            if tta_flip:
                out = (out + model(x.flip(-1)).float()) / 2
        outputs.append(out)
        labels.append(y.to(device))
    model.train(was_training)
    return torch.cat(outputs), torch.cat(labels)


def evaluate_split(
    model: nn.Module, loader: TensorLoader, tta_flip: bool = False, amp: bool = False
) -> dict[str, Any]:
    """Return {'loss' (plain CE), 'acc', 'per_class' (C floats), 'confusion' (C, C)} of a split.

    Name the split wherever the numbers are shown: validation (held out of the training
    images) or test.
    """
    logits, labels = predict(model, loader, tta_flip, amp)
    confusion = confusion_matrix(logits.argmax(1), labels, logits.shape[1]).cpu()
    return {
        "loss": F.cross_entropy(logits, labels).item(),
        "acc": (logits.argmax(1) == labels).float().mean().item(),
        "per_class": per_class_accuracy(confusion).tolist(),
        "confusion": confusion,
    }
