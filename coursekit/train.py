"""A thin training loop: `fit` trains and validates per epoch, `evaluate` measures a model.

Every notebook trains through `fit`, so the history it returns always has the same
columns: epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds (plus
train_eval_* when asked, and train_penalty when an extra loss term is used).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from coursekit.settings import get_device, progress_mode

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the fraction of rows of `output` (B, C) whose argmax equals `target` (B,)."""
    return (output.argmax(dim=1) == target).float().mean()


DEFAULT_METRICS: dict[str, Metric] = {"acc": accuracy}


@dataclass
class History:
    """Per-epoch records of a run; `rows[i]` is a dict of the values of one epoch."""

    rows: list[dict[str, float]] = field(default_factory=list)
    stopped_reason: str = "not started"

    def __getitem__(self, key: str) -> list[float]:
        """Return the column `key` over the epochs (NaN where an epoch lacks it)."""
        return [row.get(key, math.nan) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def columns(self) -> list[str]:
        """Return the column names, in first-seen order."""
        return list(dict.fromkeys(k for row in self.rows for k in row))

    def to_frame(self):
        """Return the history as a pandas DataFrame indexed by epoch."""
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("epoch")

    def best(self, key: str = "val_loss", mode: str = "min") -> dict[str, float]:
        """Return the row with the smallest (mode='min') or largest value of `key`."""
        rows = [r for r in self.rows if not math.isnan(r.get(key, math.nan))]
        if not rows:
            raise KeyError(f"no epoch recorded {key!r}; columns are {self.columns}")
        pick = min if mode == "min" else max
        return pick(rows, key=lambda r: r[key])

    def plot(self, **kwargs):
        """Return a matplotlib Figure of the loss (and accuracy) curves."""
        from coursekit.plots import plot_history

        return plot_history(self, **kwargs)


class EarlyStopping:
    """Stop when `monitor` has not improved by at least `min_delta` for `patience` epochs.

    An epoch improves when value < best - min_delta (mode 'min'). After `patience`
    epochs in a row without improvement `step` returns True. With restore_best the
    weights of the best epoch are put back in the model when training stops.
    """

    def __init__(
        self,
        patience: int = 5,
        min_delta: float = 0.0,
        monitor: str = "val_loss",
        mode: str = "min",
        restore_best: bool = True,
    ) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if mode not in {"min", "max"}:
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.min_delta = patience, min_delta
        self.monitor, self.mode, self.restore_best = monitor, mode, restore_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = 0
        self.wait = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def improved(self, value: float) -> bool:
        """Return True if `value` beats the best so far by more than min_delta."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: float, epoch: int = 0, model: nn.Module | None = None) -> bool:
        """Record one epoch's value; return True when training should stop."""
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if model is not None and self.restore_best:
                self.best_state = {
                    k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                }
        else:
            self.wait += 1
        return self.wait >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """Return the counters and best weights, for checkpoints."""
        return {k: getattr(self, k) for k in ("best", "best_epoch", "wait", "best_state")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore counters and best weights saved by `state_dict`."""
        for k, v in state.items():
            setattr(self, k, v)


def _batch_to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, list | tuple):
        return type(batch)(_batch_to(b, device) for b in batch)
    return batch


def _num_samples(batch_target: Any) -> int:
    return len(batch_target)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable = F.cross_entropy,
    device: torch.device | str | None = None,
    metrics: Mapping[str, Metric] | None = None,
    amp: bool = False,
) -> dict[str, float]:
    """Return {'loss': mean loss per sample, <metric>: mean per sample} in eval mode.

    The loss is averaged over every sample of `loader`, not over batches, so a
    smaller last batch does not weigh more than the others.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    metrics = DEFAULT_METRICS if metrics is None else metrics
    was_training = model.training
    model.eval()
    totals = {"loss": 0.0, **{name: 0.0 for name in metrics}}
    count = 0
    for x, y in loader:
        x, y = _batch_to(x, device), _batch_to(y, device)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            out = model(x)
            loss = loss_fn(out, y)
        n = _num_samples(y)
        totals["loss"] += loss.item() * n
        for name, fn in metrics.items():
            totals[name] += fn(out, y).item() * n
        count += n
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate() got an empty loader: there is nothing to measure")
    return {k: v / count for k, v in totals.items()}


def _train_epoch(model, loader, optimizer, loss_fn, device, metrics, extra_loss, scaler, amp, bar):
    model.train()
    totals = {"loss": 0.0, "penalty": 0.0, **{name: 0.0 for name in metrics}}
    count = 0
    for x, y in loader:
        x, y = _batch_to(x, device), _batch_to(y, device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=amp):
            out = model(x)
            loss = loss_fn(out, y)
        penalty = extra_loss(model) if extra_loss is not None else None
        total = loss + penalty if penalty is not None else loss
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"training loss became {total.item()} (diverged); lower the learning rate "
                "or check the inputs for NaN."
            )
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
        n = _num_samples(y)
        totals["loss"] += loss.item() * n
        if penalty is not None:
            totals["penalty"] += penalty.item() * n
        with torch.no_grad():
            for name, fn in metrics.items():
                totals[name] += fn(out.float(), y).item() * n
        count += n
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{totals['loss'] / count:.4f}", refresh=False)
    if count == 0:
        raise ValueError("the training loader yielded no batch (empty dataset or drop_last?)")
    result = {k: v / count for k, v in totals.items()}
    if extra_loss is None:
        result.pop("penalty")
    return result


def _progress_bar(total: int | None, desc: str):
    if progress_mode() != "bar":
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def _print_row(row: dict[str, float]) -> None:
    parts = [f"epoch {int(row['epoch']):3d}"]
    for key, value in row.items():
        if key != "epoch" and not math.isnan(value):
            parts.append(f"{key} {value:.4g}")
    print("  ".join(parts), flush=True)


def _step_scheduler(scheduler, row: dict[str, float]) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if math.isnan(row.get("val_loss", math.nan)):
            raise ValueError("ReduceLROnPlateau steps on val_loss: give fit() a val_loader")
        scheduler.step(row["val_loss"])
    else:
        scheduler.step()


def _restore_model(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise RuntimeError(
            f"checkpoint {source} was written for a different model ({exc}). "
            "Delete it or pass another checkpoint path to start afresh."
        ) from exc


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable = F.cross_entropy,
    scheduler: Any = None,
    device: torch.device | str | None = None,
    metrics: Mapping[str, Metric] | None = None,
    early_stopping: EarlyStopping | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    eval_before: bool = False,
    eval_train: bool = False,
    time_budget_s: float | None = None,
    checkpoint: str | Path | None = None,
    amp: bool = False,
    callback: Callable[[dict[str, float]], None] | None = None,
    verbose: bool = True,
) -> History:
    """Train `model` for up to `epochs` epochs and return its History.

    Each epoch trains on `train_loader` (mean loss over all its samples, measured
    while the weights move and dropout is on), then measures `val_loader` in eval
    mode. Options:
      eval_before: add an epoch-0 row measured before any training;
      eval_train: also re-measure the training set in eval mode (train_eval_*);
      extra_loss(model): a term added to the loss, e.g. an L1 penalty (column
        'train_penalty'; train_loss stays the data loss alone);
      scheduler: any torch LR scheduler, stepped once per epoch
        (ReduceLROnPlateau on val_loss);
      early_stopping: an EarlyStopping on a history column;
      time_budget_s: do not start an epoch that would end past this wall-clock budget;
      checkpoint: a file written atomically after every epoch; if it exists the run
        resumes from it (model, optimizer, scheduler, RNG, history);
      amp: float16 autocast with gradient scaling, on CUDA only;
      callback(row): called after each epoch (e.g. to report to an Optuna trial).
    """
    device = torch.device(device) if device is not None else get_device()
    metrics = DEFAULT_METRICS if metrics is None else metrics
    model.to(device)
    amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    history = History()
    start_epoch = 1
    checkpoint = Path(checkpoint) if checkpoint is not None else None

    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        _restore_model(model, state["model"], checkpoint)
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if early_stopping is not None and state.get("early_stopping") is not None:
            early_stopping.load_state_dict(state["early_stopping"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        history = History(list(state["history"]), state["stopped_reason"])
        start_epoch = int(state["epoch"]) + 1
        if state["stopped_reason"] == "early stopping":
            return history
        if verbose and progress_mode() != "off":
            print(f"resumed from {checkpoint} after epoch {state['epoch']}", flush=True)

    def save(epoch: int) -> None:
        if checkpoint is None:
            return
        save_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "early_stopping": early_stopping.state_dict() if early_stopping else None,
                "scaler": scaler.state_dict(),
                "rng": rng_state(),
                "history": history.rows,
                "stopped_reason": history.stopped_reason,
                "epoch": epoch,
            },
            checkpoint,
        )

    def lr() -> float:
        return optimizer.param_groups[0]["lr"]

    def measure(prefix: str, loader: Iterable) -> dict[str, float]:
        values = evaluate(model, loader, loss_fn, device, metrics, amp)
        return {f"{prefix}_{k}": v for k, v in values.items()}

    if eval_before and start_epoch == 1 and not history.rows:
        row: dict[str, float] = {"epoch": 0, **measure("train", train_loader)}
        if val_loader is not None:
            row.update(measure("val", val_loader))
        row.update({"lr": lr(), "seconds": 0.0})
        history.rows.append(row)

    started = time.perf_counter()
    history.stopped_reason = "running"
    n_batches = len(train_loader) if hasattr(train_loader, "__len__") else None
    for epoch in range(start_epoch, epochs + 1):
        elapsed = time.perf_counter() - started
        last = history.rows[-1]["seconds"] if history.rows else 0.0
        if time_budget_s is not None and elapsed + last > time_budget_s:
            history.stopped_reason = "time budget"
            break
        t0 = time.perf_counter()
        row = {"epoch": epoch, "lr": lr()}
        bar = _progress_bar(n_batches, f"epoch {epoch}/{epochs}") if verbose else None
        train_m = _train_epoch(
            model, train_loader, optimizer, loss_fn, device, metrics, extra_loss, scaler, amp, bar
        )
        if bar is not None:
            bar.close()
        row.update({f"train_{k}": v for k, v in train_m.items()})
        if eval_train:
            row.update(measure("train_eval", train_loader))
        if val_loader is not None:
            row.update(measure("val", val_loader))
        row["seconds"] = time.perf_counter() - t0
        history.rows.append(row)
        _step_scheduler(scheduler, row)
        stop = False
        if early_stopping is not None:
            if early_stopping.monitor not in row:
                raise KeyError(
                    f"early stopping monitors {early_stopping.monitor!r}, which this run does "
                    f"not record; recorded columns: {list(row)}"
                )
            stop = early_stopping.step(row[early_stopping.monitor], epoch, model)
        if verbose and progress_mode() != "off":
            _print_row(row)
        if callback is not None:
            callback(row)
        if stop:
            history.stopped_reason = "early stopping"
            if early_stopping.restore_best and early_stopping.best_state is not None:
                model.load_state_dict(early_stopping.best_state)
        if epoch == epochs and not stop:
            history.stopped_reason = "max epochs"
        save(epoch)
        if stop:
            break
    if history.stopped_reason == "running":  # a resumed run that had nothing left to do
        history.stopped_reason = "max epochs"
    return history


def clone_model(model: nn.Module) -> nn.Module:
    """Return a deep copy of `model` (same weights), e.g. to train variants from one start."""
    return copy.deepcopy(model)
