"""Notebook 06: ball detection (colours, then colours + boxes) and ball-position forecasting.

`DetectorConfig` / `ForecastConfig` name everything one training depends on;
`run_detector` / `run_forecaster` train one through `coursekit.train.fit` (checkpoint after
every epoch, a finished one is loaded) and return (model, History). `detector_scores` and
`forecast_scores` give the interpretable numbers of a split; the baselines and the
autoregressive rollout are here too. Every setting is compared on the validation split
(verdicts and noise bands: `coursekit.balls.compare`; flips: `coursekit.balls.augment`);
the test split is read once, at the end of the notebook.

Targets are normalized boxes (pixels / BOX_SCALE); the losses are the report's: BCE on
the 9 colour logits (x bce_scale when boxes are learned too) + MSE on the boxes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coursekit.balls.augment import FlippedBatches
from coursekit.balls.data import (
    FRICTIONS,
    MASSES,
    N_BALLS,
    N_COLORS,
    RESTITUTIONS,
    SIZE,
    SUBSTEPS,
    BallImages,
    BallSequences,
    advance,
    present_boxes,
    substep_keep,
    tensor_batches,
)
from coursekit.balls.metrics import (
    COCO_THRESHOLDS,
    colour_set_accuracy,
    mean_average_precision,
    mean_iou,
    paired_iou,
)
from coursekit.balls.models import (
    HEATMAP_LAYERS,
    LAYOUTS,
    BallDetector,
    Detections,
    Forecaster,
    box_scale,
    decode,
    predicted_colors,
)
from coursekit.checkpoint import config_name
from coursekit.settings import get_device, seed_everything
from coursekit.train import History, fit, predict

EVAL_BATCH = 512
FORECAST_LOSSES = ("mse", "l1", "distance")
DETECTOR_SCHEDULES = ("constant", "onecycle")

# Notebook 06's run profiles (`coursekit.profiles.profile_values`): "complet" is the full
# study (today's defaults, for a GPU); "séance" answers every question of the sheet in one
# lab session on a 2-core CPU, where a heatmap detector trains at about 6 ms per image and
# epoch (one thread) and a forecaster epoch on 3,200 sequences takes about a second.
PROFILES = {
    "séance": {
        # 2,400 training images: the detectors see varied scenes; generating, writing and
        # reading them back takes about a minute.
        "n_images": 3000,
        # 3,200 training sequences: writing them takes half a minute, an epoch a second.
        "n_sequences": 4000,
        "colors_epochs": 2,  # the colour set is already above 90 % on validation after two
        # The two layouts of task 1b, the costliest trainings on a CPU: after 3 epochs the
        # colour set was still right on under a third of the images, so six.
        "detector_epochs": 6,
        "compare_heads": False,  # the three heads compared: a complement, not on the sheet
        "forecast_epochs": 15,  # the forecasters' loss flattens within about ten epochs
        "symmetry_epochs": 40,  # new data every epoch: it needs more, here its trend only
        "n_trials": 6,  # a search still runs (TPE starts random), short of converging
        "trial_epochs": 4,  # enough to separate a diverging trial from a learning one
        "n_rollout": 1000,  # the error by horizon averages over 3,000 balls
        "cv_folds": 3,  # the fewest folds that give a spread (2 degrees of freedom)
    },
    "complet": {
        "n_images": 20000,
        "n_sequences": 20000,
        "colors_epochs": 5,
        "detector_epochs": 20,
        "compare_heads": True,
        "forecast_epochs": 40,
        "symmetry_epochs": 200,
        "n_trials": 16,
        "trial_epochs": 10,
        "n_rollout": 2000,
        "cv_folds": 5,
    },
}

# --- detection -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectorConfig:
    """One detector training: layout 'colors' (task 1a), 'nine' or 'three' (task 1b).

    schedule: 'constant' learning rate lr, or 'onecycle' (torch's OneCycleLR stepped once
    per epoch, peak lr: the same peak, only the shape differs). augment: each epoch, every
    training image flipped left-right and top-bottom at random, its boxes with it
    (`coursekit.balls.augment`).
    """

    layout: str = "nine"
    layers: tuple = HEATMAP_LAYERS
    dropout: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 32
    epochs: int = 10
    bce_scale: float = 0.1
    schedule: str = "constant"
    augment: bool = False
    seed: int = 0
    device: str = "auto"
    label: str = "detector"

    def __post_init__(self) -> None:
        if self.schedule not in DETECTOR_SCHEDULES:
            raise ValueError(f"DetectorConfig.schedule={self.schedule!r}; use one of "
                             f"{DETECTOR_SCHEDULES}")  # fmt: skip

    @property
    def name(self) -> str:
        """Return the checkpoint name, unique to what is learned."""
        return config_name(f"balls_{self.layout}", self)


def image_tensors(data: BallImages, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images uint8 (n, 3, 100, 100), presence float32 (n, 9)) of the indexed images."""
    images = torch.from_numpy(data.images[index]).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(data.presence[index])


def detector_targets(data: BallImages, index: np.ndarray, layout: str) -> torch.Tensor:
    """Return float32 (n, 9 + 4K): presence, then K normalized boxes of the layout."""
    presence = torch.from_numpy(data.presence[index])
    if layout == "colors":
        return presence
    boxes = data.boxes[index]
    if layout == "three":
        boxes = present_boxes(boxes, data.presence[index])
    normalized = torch.from_numpy(np.ascontiguousarray(boxes)) / box_scale()
    return torch.cat([presence, normalized.flatten(1)], dim=1)


def detection_loss(layout: str, bce_scale: float = 0.1) -> Callable:
    """Return loss(output, target): BCE on colours, or bce_scale * BCE + MSE on the boxes."""

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(output[:, :N_COLORS], target[:, :N_COLORS])
        if layout == "colors":
            return bce
        return bce_scale * bce + F.mse_loss(output[:, N_COLORS:], target[:, N_COLORS:])

    return loss


def set_accuracy_metric(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the exact colour-set accuracy of a batch (a `fit` metric)."""
    return colour_set_accuracy(output[:, :N_COLORS], target[:, :N_COLORS])


def run_detector(
    config: DetectorConfig,
    data: BallImages,
    splits: dict[str, np.ndarray],
    *,
    checkpoint: str | Path | None,
    retrain: bool = False,
    verbose: bool = True,
    model: nn.Module | None = None,
) -> tuple[nn.Module, History]:
    """Return (trained detector, History) of one config on splits 'train' and 'val'.

    model: a network to train instead of `BallDetector(config.layers, ...)` (the notebook's
    hand-written one); the seed is set before either is built.
    """
    seed_everything(config.seed)
    device = get_device(config.device)
    if model is None:
        model = BallDetector(config.layers, config.layout, config.dropout)
    loaders = {
        split: tensor_batches(
            image_tensors(data, splits[split])[0],
            detector_targets(data, splits[split], config.layout),
            batch_size=config.batch_size if split == "train" else EVAL_BATCH,
            shuffle=split == "train",
        )
        for split in ("train", "val")
    }  # fmt: skip
    if config.augment:
        train = splits["train"]
        boxes = detector_targets(data, train, config.layout)[:, N_COLORS:].view(len(train), -1, 4)
        loaders["train"] = FlippedBatches(
            image_tensors(data, train)[0], torch.from_numpy(data.presence[train]),
            boxes * box_scale(), config.batch_size, config.seed,
        )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # One step per epoch (fit steps it so, and checkpoints it); +1 so that the last epoch
    # does not run at the final ~0 rate.
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr,
                                                     total_steps=config.epochs + 1)
                 if config.schedule == "onecycle" else None)  # fmt: skip
    history = fit(
        model, loaders["train"], loaders["val"], epochs=config.epochs, optimizer=optimizer,
        loss_fn=detection_loss(config.layout, config.bce_scale), device=device,
        metrics={"set_acc": set_accuracy_metric}, scheduler=scheduler, checkpoint=checkpoint,
        restart=retrain, verbose=verbose,
    )  # fmt: skip
    return model, history


def detector_scores(
    model: nn.Module, data: BallImages, index: np.ndarray, layout: str
) -> dict[str, Any]:
    """Return the split's numbers: set_acc (colours of probability > 0.5 exactly the true
    set), set_acc_top3 (the 3 most probable colours are the set: the prior "3 balls"),
    colour_acc, and for boxes mean_iou, map50, map50_95, per_image_iou (n,) (the mean IoU of
    each image's balls); plus 'probs' (n, 9) and 'boxes' (n, 9, 4) in pixels for the figures.

    Boxes are scored as predicted (`Detections`), each with its colour's probability as the
    detection's confidence.
    """
    images, presence = image_tensors(data, index)
    output = predict(Detections(model), images, EVAL_BATCH)
    scores = {
        "set_acc": colour_set_accuracy(output[:, :N_COLORS], presence).item(),
        "set_acc_top3": top3_set_accuracy(output[:, :N_COLORS], presence),
        "colour_acc": ((output[:, :N_COLORS] > 0) == (presence > 0.5)).float().mean().item(),
    }
    if layout == "colors":
        return {**scores, "probs": output.sigmoid()}
    probs, boxes = decode(output, layout)
    true = torch.from_numpy(data.boxes[index])
    per_ball = torch.where(presence > 0.5, paired_iou(boxes, true), torch.zeros(()))
    return {
        **scores,
        "per_image_iou": (per_ball.sum(1) / (presence > 0.5).sum(1)).numpy(),
        "mean_iou": mean_iou(boxes, true, presence),
        "map50": mean_average_precision(probs, boxes, presence, true),
        "map50_95": mean_average_precision(probs, boxes, presence, true, COCO_THRESHOLDS),
        "probs": probs,
        "boxes": boxes,
    }


def top3_set_accuracy(probs: torch.Tensor, presence: torch.Tensor) -> float:
    """Return the fraction of images whose 3 most probable colours are exactly the true set.

    probs: probabilities or logits (B, 9) (the order is the same).
    """
    truth = presence.topk(3, dim=1).indices.sort(dim=1).values
    return (predicted_colors(probs) == truth).all(dim=1).float().mean().item()


# --- forecasting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastConfig:
    """One forecaster training: MLP widths, activation, dropout, residual, inputs, loss,
    optimizer.

    loss "mse": the report's, on normalized boxes; "l1": mean absolute error in pixels;
    "distance": the metric itself, the distance between centres in pixels (+ the absolute
    error on the box sizes, which the distance ignores). The rare collisions weigh in the
    square error as much as all the free flights: trained on it, the network gives up
    precision on the common case to hedge on the rare one; the other two weigh each case by
    its error, as the metric does.
    augment: each epoch, every training sequence under a random symmetry of the square and
    order of its balls (`symmetric`): the physics has those symmetries, the network learns
    them instead of memorizing where the walls were hit. schedule: 'constant' learning rate,
    or 'cosine' decay to 0 over the epochs. colours: False hides the colour vector from the
    network (does colour tell anything of the motion, a mass?).
    """

    hidden: tuple[int, ...] = (512, 256, 128, 128)
    activation: str = "tanh"
    dropout: float = 0.0
    residual: str = "none"
    inputs: str = "boxes"
    loss: str = "mse"
    augment: bool = False
    schedule: str = "constant"
    colours: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 30
    seed: int = 0
    device: str = "auto"
    label: str = "forecaster"

    def __post_init__(self) -> None:
        for field, allowed in (("loss", FORECAST_LOSSES), ("schedule", ("constant", "cosine"))):
            if getattr(self, field) not in allowed:
                raise ValueError(f"ForecastConfig.{field}={getattr(self, field)!r}; use one "
                                 f"of {allowed}")

    @property
    def name(self) -> str:
        """Return the checkpoint name, unique to what is learned."""
        return config_name("balls_forecast", self)


def sequence_boxes(data: BallSequences, index: np.ndarray) -> np.ndarray:
    """Return float32 (n, T, 3, 4): the boxes in pixels of the 3 balls, colour order."""
    return present_boxes(data.boxes[index], data.presence[index]).astype(np.float32)


def forecast_inputs(context: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
    """Return x (n, T * 12 + 9): context boxes (n, T, 3, 4) in pixels, normalized, + presence."""
    return torch.cat([(context / box_scale()).flatten(1), presence], dim=1)


def forecast_tensors(
    data: BallSequences, index: np.ndarray, context: int = 19
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x (n, 19 * 12 + 9), y (n, 3, 4) normalized boxes of the next step)."""
    boxes = torch.from_numpy(sequence_boxes(data, index))
    presence = torch.from_numpy(data.presence[index])
    return forecast_inputs(boxes[:, :context], presence), boxes[:, context] / box_scale()


def last_position(context: torch.Tensor) -> torch.Tensor:
    """Return the baseline 'last position': the boxes (n, 3, 4) of the last step of context."""
    return context[:, -1]


def constant_velocity(context: torch.Tensor) -> torch.Tensor:
    """Return the baseline 'constant velocity': last + (last - previous), (n, 3, 4)."""
    return 2 * context[:, -1] - context[:, -2]


def centre_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Return the distance in pixels (...) between the centres of boxes pred and true (..., 4)."""
    centre = lambda b: (b[..., :2] + b[..., 2:]) / 2  # noqa: E731
    return (centre(pred) - centre(true)).norm(dim=-1)


def simulator_forecast(
    context: torch.Tensor, physics: dict[str, np.ndarray], unknown: Sequence[str] = ()
) -> torch.Tensor:
    """Return (n, 3, 4) pixels: the simulator's next boxes after context (n, >= 2, 3, 4).

    The simulator gets what the boxes show (centres, radii, the last move) and the hidden
    parameters of `physics` ((n, 3) each, colour order), except those named in `unknown`
    (mass, friction, restitution): every combination of their values over the 3 balls
    (COPHY's priors) is simulated and the per-coordinate median of the outcomes returned,
    the best guess of a forecaster that knows the physics but not those parameters.
    A measure of what is predictable at all, not a forecaster: it reads the generator's
    hidden parameters.
    """
    priors = {"mass": MASSES, "friction": FRICTIONS, "restitution": RESTITUTIONS}
    if not set(unknown) <= set(priors):
        raise ValueError(f"unknown must name some of {sorted(priors)}, got {list(unknown)}")
    boxes = context[:, -2:].double().numpy()
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2  # (n, 2, 3, 2)
    radius = (boxes[:, -1, :, 2] - boxes[:, -1, :, 0]) / 2
    known = {name: physics[name].astype(np.float64) for name in priors if name not in unknown}
    per_ball = list(itertools.product(*(priors[name] for name in unknown)))
    outcomes = []
    for combo in itertools.product(per_ball, repeat=N_BALLS):  # one value tuple per ball
        guess = dict(known)
        for k, name in enumerate(unknown):
            guess[name] = np.broadcast_to([ball[k] for ball in combo], radius.shape).copy()
        keep = substep_keep(guess["friction"])
        # The last move covered keep + keep^2 + ... + keep^SUBSTEPS substeps of the speed
        # at its start; the speed now is that speed times keep^SUBSTEPS.
        gone = sum(keep**i for i in range(1, SUBSTEPS + 1))
        vel = (centres[:, 1] - centres[:, 0]) * (SUBSTEPS * keep**SUBSTEPS / gone)[..., None]
        outcomes.append(advance(centres[:, 1].copy(), vel, radius, guess))
    centre = torch.from_numpy(np.median(np.stack(outcomes), axis=0)).float()
    half = torch.from_numpy(radius).float()[..., None]
    return torch.cat([centre - half, centre + half], dim=-1)


def model_predictor(model: nn.Module, presence: torch.Tensor) -> Callable:
    """Return context (n, 19, 3, 4) pixels -> next boxes (n, 3, 4) pixels with the model."""

    def next_boxes(context: torch.Tensor) -> torch.Tensor:
        out = predict(model, forecast_inputs(context, presence), EVAL_BATCH)
        return out.view(-1, 3, 4) * box_scale()

    return next_boxes


def rollout(
    predictor: Callable[[torch.Tensor], torch.Tensor], boxes: torch.Tensor, context: int,
    horizon: int,
) -> torch.Tensor:
    """Return (n, horizon, 3, 4): each step predicted from the `context` steps before it,
    the earlier predictions included (autoregressive). boxes: (n, >= context, 3, 4) pixels."""
    window = boxes[:, :context].clone()
    steps = []
    for _ in range(horizon):
        nxt = predictor(window)
        steps.append(nxt)
        window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
    return torch.stack(steps, dim=1)


def forecast_scores(
    predictors: dict[str, Callable], boxes: torch.Tensor, context: int, horizon: int
) -> dict[str, dict[str, Any]]:
    """Return {method: {'step_error' (mean px at the first predicted step), 'ade', 'fde',
    'by_horizon' (horizon,) mean px per step ahead, 'per_sequence' (n,) mean px of each
    sequence's balls at the first step, 'cophy_mse'}} of rollouts from `context` steps.

    ade: mean centre error over the horizon and the balls; fde: at the last step;
    cophy_mse: COPHY's metric, the squared error of the centre coordinates (pixels^2)
    averaged over coordinates, steps and objects.
    """
    true = boxes[:, context : context + horizon]
    scores = {}
    for name, predictor in predictors.items():
        error = centre_error(rollout(predictor, boxes, context, horizon), true)  # (n, H, 3)
        by_horizon = error.mean(dim=(0, 2))
        scores[name] = {
            "step_error": by_horizon[0].item(),
            "ade": error.mean().item(),
            "fde": by_horizon[-1].item(),
            "by_horizon": by_horizon.numpy(),
            "per_sequence": error[:, 0].mean(1).numpy(),
            "cophy_mse": (error**2).mean().item() / 2,  # |d|^2 / 2: the mean over x and y
        }
    return scores


def make_forecaster(config: ForecastConfig, context: int = 19) -> Forecaster:
    """Return the Forecaster of a config."""
    return Forecaster(config.hidden, config.activation, config.dropout, config.residual, context,
                      config.inputs, config.colours)


def symmetric(boxes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return boxes (n, T, 3, 4) pixels with each sequence flipped left-right, top-bottom and
    across the diagonal at random (the 8 symmetries of the square) and its balls reordered."""
    n = len(boxes)
    flip = torch.rand(n, 3, generator=generator) < 0.5  # left-right, top-bottom, diagonal
    x1, y1, x2, y2 = boxes.unbind(-1)
    lr, tb, diag = (flip[:, k, None, None] for k in range(3))
    x1, x2 = torch.where(lr, SIZE - x2, x1), torch.where(lr, SIZE - x1, x2)
    y1, y2 = torch.where(tb, SIZE - y2, y1), torch.where(tb, SIZE - y1, y2)
    x1, y1, x2, y2 = (torch.where(diag, y1, x1), torch.where(diag, x1, y1),
                      torch.where(diag, y2, x2), torch.where(diag, x2, y2))  # fmt: skip
    order = torch.rand(n, N_BALLS, generator=generator).argsort(dim=1)
    out = torch.stack([x1, y1, x2, y2], dim=-1)
    return out.gather(2, order[:, None, :, None].expand_as(out))


class SymmetricBatches:
    """Training batches (x, y) of `forecast_tensors`' layout whose sequences (n, 20, 3, 4)
    pixels go through `symmetric` anew each epoch; order and symmetries drawn from a
    generator seeded once."""

    def __init__(self, boxes: torch.Tensor, presence: torch.Tensor, batch_size: int,
                 seed: int = 0) -> None:  # fmt: skip
        self.boxes, self.presence, self.batch_size = boxes, presence, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.boxes) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        boxes = symmetric(self.boxes, self.generator)
        context = boxes.shape[1] - 1
        x = forecast_inputs(boxes[:, :context], self.presence)
        y = boxes[:, context] / box_scale()
        order = torch.randperm(len(boxes), generator=self.generator)
        for start in range(0, len(boxes), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield x[idx], y[idx]


def forecast_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Return loss(output, target) on normalized boxes (B, 3, 4): "mse"; "l1" in pixels;
    "distance": the centre distance in pixels (the metric) + the absolute size error."""
    if name == "mse":
        return F.mse_loss
    if name not in FORECAST_LOSSES:
        raise ValueError(f"unknown forecast loss {name!r}; use one of {FORECAST_LOSSES}")

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output, target = output * box_scale(output), target * box_scale(output)
        if name == "l1":
            return F.l1_loss(output, target)
        size = lambda b: b[..., 2:] - b[..., :2]  # noqa: E731
        return centre_error(output, target).mean() + F.l1_loss(size(output), size(target))

    return loss


def run_forecaster(
    config: ForecastConfig,
    data: BallSequences,
    splits: dict[str, np.ndarray],
    *,
    checkpoint: str | Path | None,
    retrain: bool = False,
    verbose: bool = True,
    model: nn.Module | None = None,
    callback: Callable[[dict[str, float]], None] | None = None,
) -> tuple[nn.Module, History]:
    """Return (trained forecaster, History): config.loss on the boxes, train and val splits.

    model: a network to train instead of `make_forecaster(config)` (the seed is set first).
    """
    seed_everything(config.seed)
    model = make_forecaster(config) if model is None else model
    train = splits["train"]
    if config.augment:  # sequences of 19 + 1 steps, transformed anew each epoch
        train_batches = SymmetricBatches(
            torch.from_numpy(sequence_boxes(data, train)[:, :20]),
            torch.from_numpy(data.presence[train]), config.batch_size, config.seed)
    else:
        train_batches = tensor_batches(*forecast_tensors(data, train),
                                       batch_size=config.batch_size, shuffle=True)
    val_batches = tensor_batches(*forecast_tensors(data, splits["val"]), batch_size=EVAL_BATCH,
                                 shuffle=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
                 if config.schedule == "cosine" else None)
    history = fit(
        model, train_batches, val_batches, epochs=config.epochs, optimizer=optimizer,
        loss_fn=forecast_loss(config.loss), device=get_device(config.device), metrics={},
        scheduler=scheduler, checkpoint=checkpoint, restart=retrain, verbose=verbose,
        callback=callback,
    )  # fmt: skip
    return model, history


def suggest_forecast(trial: Any, base: ForecastConfig, epochs: int) -> ForecastConfig:
    """Return the config an Optuna trial proposes: lr, weight decay, batch, dropout, widths."""
    from dataclasses import replace

    width = trial.suggest_categorical("width", [64, 128, 256, 512])
    depth = trial.suggest_int("depth", 1, 4)
    return replace(
        base,
        lr=trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-7, 1e-3, log=True),
        batch_size=trial.suggest_categorical("batch_size", [32, 64, 128]),
        dropout=trial.suggest_float("dropout", 0.0, 0.5),
        hidden=(width,) * depth,
        epochs=epochs,
        label=f"essai {trial.number}",
    )


def layout_size(layout: str) -> int:
    """Return how many boxes a layout predicts (0 for colours only)."""
    return LAYOUTS[layout]


# --- figures -------------------------------------------------------------------------------


def show_boxes(
    ax: Any, image: np.ndarray, true: np.ndarray, presence: np.ndarray,
    pred: np.ndarray | None = None, title: str = "", pred_probs: np.ndarray | None = None,
) -> None:  # fmt: skip
    """Draw image (100, 100, 3) with its true boxes (9, 4) solid, predicted ones dashed.

    presence (9,) selects the true boxes; predicted boxes are drawn where not NaN and, when
    pred_probs (9,) is given, only for the colours predicted present (probability > 0.5):
    layout "nine" outputs a box for every colour.
    """
    if pred is not None and pred_probs is not None:
        pred = np.where((pred_probs > 0.5)[:, None], pred, np.nan)
    from matplotlib.patches import Rectangle

    from coursekit.balls.data import RGB

    ax.imshow(image)
    for c in range(N_COLORS):
        colour = RGB[c] / 255
        for boxes, style, show in ((true, "-", presence[c] > 0.5), (pred, "--", pred is not None)):
            if show and not np.isnan(boxes[c]).any():
                x1, y1, x2, y2 = boxes[c]
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour,
                                       ls=style, lw=1.2))  # fmt: skip
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def plot_trajectories(ax: Any, boxes: np.ndarray, colors: np.ndarray, title: str = "") -> None:
    """Draw the centre paths of one sequence: boxes (T, 3, 4) pixels, colours (3,) indices."""
    from coursekit.balls.data import RGB, SIZE

    centres = (boxes[..., :2] + boxes[..., 2:]) / 2
    for k in range(centres.shape[1]):
        ax.plot(centres[:, k, 0], centres[:, k, 1], "-o", ms=2, color=RGB[colors[k]] / 255)
        ax.plot(*centres[-1, k], "s", ms=6, mfc="none", color=RGB[colors[k]] / 255)
    ax.set_xlim(0, SIZE)
    ax.set_ylim(SIZE, 0)  # image convention: y goes down
    ax.set_aspect("equal")
    ax.set_facecolor((0.1, 0.1, 0.11))
    ax.set_title(title, fontsize=9)


def plot_forecast(ax: Any, boxes: np.ndarray, predicted: np.ndarray, colors: np.ndarray,
                  title: str = "") -> None:  # fmt: skip
    """Draw one sequence's true boxes (T, 3, 4) pixels and the predicted last H (H, 3, 4):
    true centres solid, predicted dashed, true and predicted boxes of the last step drawn."""
    from matplotlib.patches import Rectangle

    from coursekit.balls.data import RGB

    plot_trajectories(ax, boxes, colors, title=title)
    start = len(boxes) - len(predicted)
    centres = (predicted[..., :2] + predicted[..., 2:]) / 2
    for k in range(predicted.shape[1]):
        colour = RGB[colors[k]] / 255
        before = (boxes[start - 1, k, :2] + boxes[start - 1, k, 2:]) / 2
        path = np.vstack([before, centres[:, k]])
        ax.plot(path[:, 0], path[:, 1], "--", lw=1.2, color="white")
        ax.plot(path[:, 0], path[:, 1], "--", lw=0.8, color=colour)
        for box, style in ((boxes[-1, k], "-"), (predicted[-1, k], "--")):
            x1, y1, x2, y2 = box
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, ls=style,
                                   lw=1.0))  # fmt: skip
