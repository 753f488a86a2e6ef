"""The package's training loop: `fit` trains and validates per epoch, `evaluate` measures.

Each notebook first writes its own few-line loop, as its sheet asks (notebook 05,
exercise 3); `fit` is that loop plus what variants need: validation, schedulers, early
stopping, an extra loss term, a time budget, metrics of its own and a checkpoint after
every epoch. Its history always has the same columns: epoch, lr, train_loss,
train_<metric>, val_loss, val_<metric>, seconds (plus train_eval_* when asked,
train_penalty with an extra term, and what `epoch_metrics` adds).

No host synchronisation happens inside an epoch: losses and metrics add up on the device
and are read once per epoch (every `BAR_EVERY` batches for a progress bar).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from coursekit.identity import differences, digest, training_identity
from coursekit.metrics import DEFAULT_METRICS, Metric
from coursekit.settings import get_device, progress_mode

BAR_EVERY = 20  # batches between two progress-bar refreshes (each one reads the GPU)
FINAL_REASONS = ("early stopping", "time budget")
# What a student reads about why a training stopped (History.stopped_reason stays English).
REASONS_FR = {
    "early stopping": "arrêt précoce",
    "time budget": "arrêt : budget de temps atteint",
    "max epochs": "toutes les époques faites",
}


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


def history_frame(run: Any, training_only: bool = False):
    """Return an epoch-indexed DataFrame of a History (or of a DataFrame, unchanged).

    training_only: drop the epoch-0 row measured before training (`eval_before`).
    """
    frame = run.to_frame() if hasattr(run, "to_frame") else run
    return frame[frame.index >= 1] if training_only else frame


class EarlyStopping:
    """Stop when `monitor` has not improved by at least `min_delta` for `patience` epochs.

    An epoch improves when value < best - min_delta (mode 'min'). After `patience`
    epochs in a row without improvement `step` returns True. With restore_best the
    weights of the best epoch are put back in the model when training stops.
    Taught in notebook 05, exercise 4, where the rule is first written in a cell.
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


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock reading includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, list | tuple):
        return type(batch)(_to(b, device) for b in batch)
    return batch


class _Totals:
    """Per-sample sums kept on the device; read once with `means()`."""

    def __init__(self, names: Iterable[str], device: torch.device) -> None:
        self.sums = {name: torch.zeros((), device=device) for name in names}
        self.count = 0

    def add(self, n: int, **values: torch.Tensor) -> None:
        for name, value in values.items():
            self.sums[name] += value.detach().float() * n
        self.count += n

    def means(self) -> dict[str, float]:
        stacked = torch.stack(list(self.sums.values())).cpu() / max(self.count, 1)
        return dict(zip(self.sums, stacked.tolist(), strict=True))


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
    totals = _Totals(["loss", *metrics], device)
    for x, y in loader:
        x, y = _to(x, device), _to(y, device)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            out = model(x)
            loss = loss_fn(out, y)
        totals.add(len(y), loss=loss, **{k: fn(out.float(), y) for k, fn in metrics.items()})
    model.train(was_training)
    if totals.count == 0:
        raise ValueError("evaluate() got an empty loader: there is nothing to measure")
    return totals.means()


@torch.no_grad()
def predict(
    model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor], batch_size: int = 256
) -> torch.Tensor:
    """Return the model's outputs on inputs (first axis N), in eval mode, batch by batch, on CPU.

    inputs: one tensor, or several (N, ...) tensors given to the model together as a tuple
    (a multimodal model); a sequence of one tensor is the same as that tensor.
    """
    parts = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(parts[0]), batch_size):
        batch = [t[start : start + batch_size].to(device) for t in parts]
        out.append(model(batch[0] if len(batch) == 1 else tuple(batch)).cpu())
    model.train(was_training)
    return torch.cat(out)


def train_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable = F.cross_entropy,
    *,
    device: torch.device,
    metrics: Mapping[str, Metric] | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    scaler: torch.amp.GradScaler | None = None,
    bar: Any = None,
) -> dict[str, float]:
    """Return the per-sample means of one training epoch: loss, <metric>s (and penalty).

    Measured while the weights move and dropout is on. Raises FloatingPointError if the
    loss became NaN or infinite during the epoch (checked once, at its end).
    """
    metrics = DEFAULT_METRICS if metrics is None else metrics
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    names = ["loss", *metrics] + (["penalty"] if extra_loss is not None else [])
    totals = _Totals(names, device)
    model.train()
    for i, (x, y) in enumerate(loader, start=1):
        x, y = _to(x, device), _to(y, device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
            out = model(x)
            loss = loss_fn(out, y)
        extra = {} if extra_loss is None else {"penalty": extra_loss(model)}
        scaler.scale(loss + extra.get("penalty", 0.0)).backward()
        scaler.step(optimizer)
        scaler.update()
        with torch.no_grad():
            scores = {k: f(out.float(), y) for k, f in metrics.items()}
            totals.add(len(y), loss=loss, **extra, **scores)
        if bar is not None:
            bar.update(1)
            if i % BAR_EVERY == 0:
                bar.set_postfix(loss=f"{totals.sums['loss'].item() / totals.count:.4f}")
    if totals.count == 0:
        raise ValueError("the training loader yielded no batch (empty dataset or drop_last?)")
    means = totals.means()
    if not all(math.isfinite(means[k]) for k in ("loss", "penalty") if k in means):
        raise FloatingPointError(
            f"training loss became {means['loss']} (diverged); lower the learning rate "
            "or check the inputs for NaN."
        )
    return means


def _progress_bar(total: int | None, desc: str):
    if progress_mode() != "bar":
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def _print_row(row: dict[str, float]) -> None:
    parts = [f"epoch {int(row['epoch']):3d}"]
    parts += [f"{k} {v:.4g}" for k, v in row.items() if k != "epoch" and not math.isnan(v)]
    print("  ".join(parts), flush=True)


def _step_scheduler(scheduler: Any, row: dict[str, float], monitor: str = "val_loss") -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if math.isnan(row.get(monitor, math.nan)):
            raise ValueError(
                f"ReduceLROnPlateau steps on {monitor!r}, which this epoch does not record "
                f"(columns: {list(row)}); give fit() a val_loader or the epoch_metrics "
                "that computes it"
            )
        scheduler.step(row[monitor])
    else:
        scheduler.step()


def _hooked(
    hook: Callable[[nn.Module, int], Mapping[str, float]] | None,
    model: nn.Module,
    row: dict[str, float],
) -> dict[str, float]:
    """Return the hook's metrics for the epoch of `row`, refusing to overwrite fit's columns."""
    if hook is None:
        return {}
    values = {k: float(v) for k, v in hook(model, int(row["epoch"])).items()}
    clash = sorted(set(values) & set(row))
    if clash:
        raise ValueError(f"epoch_metrics returned {clash}, which fit() already records")
    return values


@dataclass
class _State:
    """What a checkpoint holds besides the history: every object whose state moves."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    early_stopping: EarlyStopping | None
    scaler: torch.amp.GradScaler

    def save(self, path: Path, history: History, epoch: int, identity: dict) -> None:
        optional = {"scheduler": self.scheduler, "early_stopping": self.early_stopping}
        save_checkpoint(
            {
                "identity": identity,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                **{k: v.state_dict() if v is not None else None for k, v in optional.items()},
                "scaler": self.scaler.state_dict(),
                "rng": rng_state(),
                "history": history.rows,
                "stopped_reason": history.stopped_reason,
                "epoch": epoch,
            },
            path,
        )

    def load(self, path: Path, state: dict[str, Any]) -> tuple[History, int]:
        """Restore every state from `state`, read from `path`; return (history, last epoch)."""
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise RuntimeError(
                f"checkpoint {path} was written for a different model ({exc}). "
                "Delete it or pass another checkpoint path to start afresh."
            ) from exc
        self.optimizer.load_state_dict(state["optimizer"])
        for key in ("scheduler", "early_stopping"):
            if getattr(self, key) is not None and state.get(key) is not None:
                getattr(self, key).load_state_dict(state[key])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        return History(list(state["history"]), state["stopped_reason"]), int(state["epoch"])


def _finished(history: History, last_epoch: int, epochs: int) -> bool:
    return history.stopped_reason in FINAL_REASONS or last_epoch >= epochs


def finished_checkpoint(path: str | Path, epochs: int) -> bool:
    """Return True if `path` holds a finished training of `epochs` epochs (stopped early, by
    its time budget, or all epochs done): what `fit` would reload instead of training."""
    path = Path(path)
    if not path.is_file():
        return False
    saved = load_checkpoint(path)
    history = History(list(saved["history"]), saved["stopped_reason"])
    return _finished(history, int(saved["epoch"]), epochs)


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
    restart: bool = False,
    amp: bool = False,
    epoch_metrics: Callable[[nn.Module, int], Mapping[str, float]] | None = None,
    scheduler_monitor: str = "val_loss",
    callback: Callable[[dict[str, float]], None] | None = None,
    verbose: bool = True,
    stop_when: Callable[[], bool] | None = None,
) -> History:
    """Train `model` for up to `epochs` epochs and return its History.

    Each epoch trains on `train_loader` (see `train_epoch`), then measures `val_loader`
    in eval mode. Options:
      eval_before: add an epoch-0 row measured before any training;
      eval_train: also re-measure the training set in eval mode (train_eval_*);
      extra_loss(model): a term added to the loss, e.g. an L1 penalty (column
        'train_penalty'; train_loss stays the data loss alone);
      scheduler: any torch LR scheduler, stepped once per epoch
        (ReduceLROnPlateau on the column `scheduler_monitor`, val_loss by default);
      early_stopping: an EarlyStopping on a history column;
      time_budget_s: do not start an epoch that would end past this budget of training
        time (the sum of the epochs' seconds, so it holds across resumed runs);
      checkpoint: a file written atomically after every epoch. If it exists and holds the
        same training (`identity.training_identity`: the data the loaders hold, the
        network's structure and the code of any network class written in a notebook), the
        run resumes from it (model, optimizer, scheduler, RNG, history); if that run had
        finished, the model is loaded and nothing is trained. A checkpoint of another
        training is moved aside (`<name>.autre-<id>.pt`), never loaded. restart: ignore it;
      amp: float16 autocast with gradient scaling, on CUDA only;
      epoch_metrics(model, epoch): metrics of its own (e.g. an F1 on the validation set)
        added to each epoch's row before the scheduler, early stopping and the printed
        line see it (also to the epoch-0 row of eval_before); its time counts in `seconds`;
      callback(row): called last with a copy of each epoch's row, to observe it (e.g. to
        report to an Optuna trial); what it changes is not recorded;
      stop_when(): asked before each epoch; True ends training as a spent time budget
        does (e.g. a schedule that measures the budget itself and cuts the last epoch).
    The `seconds` column is wall-clock time with the device synchronised.
    """
    device = get_device(device)
    model.to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
    state = _State(model, optimizer, scheduler, early_stopping, scaler)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    talk = verbose and progress_mode() != "off"
    history, done = History(), 0
    identity = training_identity(model, train_loader, val_loader)
    if checkpoint is not None and checkpoint.exists() and not restart:
        saved = load_checkpoint(checkpoint)
        changed = differences(saved.get("identity"), identity)
        if changed:
            aside = _set_aside(checkpoint, saved.get("identity"))
            if talk:
                print(f"{checkpoint.name} vient d'un autre entraînement ({', '.join(changed)}) : "
                      f"gardé sous {aside.name}, réentraînement", flush=True)
        else:
            history, done = state.load(checkpoint, saved)
            if _finished(history, done, epochs):
                if talk:
                    reason = REASONS_FR.get(history.stopped_reason, history.stopped_reason)
                    print(f"déjà entraîné ({reason}, {done} époques) : rechargé depuis "
                          f"{checkpoint}", flush=True)
                return history
            if talk:
                print(f"reprise à l'époque {done + 1} depuis {checkpoint}", flush=True)

    def measure(prefix: str, loader: Iterable) -> dict[str, float]:
        values = evaluate(model, loader, loss_fn, device, metrics, amp)
        return {f"{prefix}_{k}": v for k, v in values.items()}

    if eval_before and not history.rows:
        row = {"epoch": 0, **measure("train", train_loader)}
        row.update(measure("val", val_loader) if val_loader is not None else {})
        row.update(_hooked(epoch_metrics, model, row))
        history.rows.append({**row, "lr": optimizer.param_groups[0]["lr"], "seconds": 0.0})

    n_batches = len(train_loader) if hasattr(train_loader, "__len__") else None
    for epoch in range(done + 1, epochs + 1):
        over = time_budget_s is not None and _over_budget(history, time_budget_s)
        if over or (stop_when is not None and stop_when()):
            history.stopped_reason = "time budget"
            if checkpoint is not None:  # the file must say why it stopped, not "running"
                state.save(checkpoint, history, epoch - 1, identity)
            break
        synchronize(device)
        t0 = time.perf_counter()
        row: dict[str, float] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        bar = _progress_bar(n_batches, f"epoch {epoch}/{epochs}") if verbose else None
        train_m = train_epoch(
            model, train_loader, optimizer, loss_fn, device=device, metrics=metrics,
            extra_loss=extra_loss, scaler=scaler, bar=bar,
        )
        if bar is not None:
            bar.close()
        row.update({f"train_{k}": v for k, v in train_m.items()})
        row.update(measure("train_eval", train_loader) if eval_train else {})
        row.update(measure("val", val_loader) if val_loader is not None else {})
        row.update(_hooked(epoch_metrics, model, row))
        synchronize(device)
        row["seconds"] = time.perf_counter() - t0
        history.rows.append(row)
        _step_scheduler(scheduler, row, scheduler_monitor)
        stop = early_stopping is not None and _early_stop(early_stopping, row, model)
        if talk:
            _print_row(row)
        if callback is not None:
            callback(dict(row))  # a copy: the history is fit's to write, not the callback's
        history.stopped_reason = (
            "early stopping" if stop else "max epochs" if epoch == epochs else "running"
        )
        if checkpoint is not None:
            state.save(checkpoint, history, epoch, identity)
        if stop:
            break
    return history


def _set_aside(checkpoint: Path, identity: dict | None) -> Path:
    """Move the checkpoint of another training next to it, under a name of its identity, and
    return that path: the new training must not overwrite what the old one learned."""
    tag = digest(identity)[:8]
    aside = checkpoint.with_name(f"{checkpoint.stem}.autre-{tag}{checkpoint.suffix}")
    checkpoint.replace(aside)
    return aside


def _over_budget(history: History, budget_s: float) -> bool:
    """Return True if one more epoch, as long as the last one, would end past the budget."""
    seconds = history["seconds"]
    return sum(seconds) + (seconds[-1] if seconds else 0.0) > budget_s


def _early_stop(stopper: EarlyStopping, row: dict[str, float], model: nn.Module) -> bool:
    """Step `stopper` on the row; on a stop, put the best weights back in the model."""
    if stopper.monitor not in row:
        raise KeyError(
            f"early stopping monitors {stopper.monitor!r}, which this run does not record; "
            f"recorded columns: {list(row)}"
        )
    stop = stopper.step(row[stopper.monitor], int(row["epoch"]), model)
    if stop and stopper.restore_best and stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)
    return stop
