"""Learning-rate schedules driven by the fraction of a time budget used, not by epochs.

A schedule laid over the epochs a probe predicts breaks when epochs run slower than the
probe: the budget stops training before the rate has annealed. Here the rate is set
before every batch from f = elapsed / budget (f in [0, 1]), and the epoch in progress
stops as soon as f reaches 1, so the schedule reaches its end when the budget does,
whatever the speed of each epoch.

- `TimeSchedule`: f -> LR factor (one-cycle, cosine, plateaus or constant), the elapsed
  time of a clock (injectable, for tests), and the scheduler interface `fit` expects
  (`step`, `state_dict`, `load_state_dict`: a resumed run keeps its elapsed time);
- `BudgetLoader`: wraps a training loader, sets the rate before each batch and ends the
  epoch at the budget; `fit(..., stop_when=schedule.exhausted)` then ends the training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

SHAPES = ("constant", "plateaus", "onecycle", "cosine")


def time_factor(
    fraction: float,
    shape: str,
    warmup: float = 0.2,
    plateaus: Sequence[tuple[float, float]] = ((0.5, 1.0), (0.25, 0.1), (0.25, 0.01)),
) -> float:
    """Return the LR factor (peak 1) at `fraction` of the budget for schedule `shape`.

    onecycle: linear warm-up over `warmup`, then linear decay to 0 at fraction 1; cosine:
    the same warm-up, then cosine decay to 0; plateaus: (share of the budget, factor) in
    order, the sheet's 50/25/25 % at 1, 1/10, 1/100 by default; constant: 1.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    f = min(max(fraction, 0.0), 1.0)
    if shape == "constant":
        return 1.0
    if shape == "plateaus":
        end = 0.0
        for share, factor in plateaus:
            end += share
            if f < end:
                return factor
        return plateaus[-1][1]
    if f < warmup:
        return f / warmup
    p = (f - warmup) / (1 - warmup)
    return 1 - p if shape == "onecycle" else 0.5 * (1 + math.cos(math.pi * p))


class TimeSchedule:
    """Set each parameter group's LR to its initial LR x factor(elapsed / budget_s).

    clock: seconds, monotonic (default time.perf_counter); the time counted starts at the
    first `update` and includes everything in between (validation, checkpoints), so the
    training ends at the budget in wall-clock time.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        budget_s: float,
        factor: Callable[[float], float],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if budget_s <= 0:
            raise ValueError(f"budget_s must be > 0 seconds, got {budget_s}")
        self.optimizer, self.budget_s, self.factor, self.clock = optimizer, budget_s, factor, clock
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.spent = 0.0  # seconds counted before the current stretch (a resumed run)
        self._start: float | None = None
        self._set(factor(0.0))  # so the first epoch records the rate it starts at

    def _set(self, factor: float) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def elapsed(self) -> float:
        """Return the seconds of budget used so far."""
        running = 0.0 if self._start is None else self.clock() - self._start
        return self.spent + running

    def fraction(self) -> float:
        """Return the share of the budget used, in [0, 1]."""
        return min(self.elapsed() / self.budget_s, 1.0)

    def exhausted(self) -> bool:
        """Return True once the budget is used up."""
        return self.elapsed() >= self.budget_s

    def update(self) -> float:
        """Set every group's LR for the time now (starting the clock); return the factor."""
        if self._start is None:
            self._start = self.clock()
        factor = self.factor(self.fraction())
        self._set(factor)
        return factor

    def step(self) -> None:
        """Do nothing: `fit` steps schedulers per epoch, this one moves before every batch."""

    def state_dict(self) -> dict[str, Any]:
        """Return the seconds used and the base LRs, for checkpoints."""
        return {"spent": self.elapsed(), "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the seconds used (the clock restarts at the next batch) and the base LRs."""
        self.spent, self.base_lrs = float(state["spent"]), list(state["base_lrs"])
        self._start = None


class BudgetLoader:
    """Iterate `loader`, setting the LR before each batch; stop once the budget is used.

    Everything else (len, images, labels, device, num_samples...) is the wrapped loader's,
    so checkpoint identities stay those of the loader. `images_seen` counts the images
    of the batches given out in the last epoch (a cut epoch gives fewer).
    """

    def __init__(self, loader: Any, schedule: TimeSchedule) -> None:
        self.loader, self.schedule = loader, schedule
        self.images_seen = 0

    def __iter__(self) -> Iterator[Any]:
        self.images_seen = 0
        for batch in self.loader:
            self.schedule.update()
            if self.schedule.exhausted() and self.images_seen:  # an epoch has >= 1 batch
                return
            self.images_seen += len(batch[-1])
            yield batch

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not yet set (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)
