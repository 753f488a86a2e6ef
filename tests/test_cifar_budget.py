"""Schedules driven by the share of a time budget used (notebook 04, issue 25 item 3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from coursekit.cifar.budget import BudgetLoader, TimeSchedule, time_factor
from coursekit.train import fit


@pytest.mark.parametrize("shape", ["onecycle", "cosine"])
def test_time_factor_warms_up_then_anneals_to_zero_at_the_budget(shape):
    values = [time_factor(f / 100, shape, warmup=0.2) for f in range(101)]
    assert values[20] == pytest.approx(1.0) and values[0] == 0.0
    assert values[:21] == sorted(values[:21]) and values[20:] == sorted(values[20:], reverse=True)
    assert values[100] == pytest.approx(0.0, abs=1e-12)
    assert time_factor(1.5, shape) == values[100]  # past the budget: the last rate


def test_time_factor_plateaus_are_the_sheets_shares_of_the_time():
    assert [time_factor(f, "plateaus") for f in (0.0, 0.49, 0.5, 0.74, 0.75, 0.99, 1.0)] == (
        pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01, 0.01])
    )
    with pytest.raises(ValueError, match="shape must be one of"):
        time_factor(0.5, "step")


class SlowingLoader:
    """Batches of a tiny problem; each batch moves a fake clock, slower every epoch."""

    def __init__(self, clock: list[float], batches: int = 20, base_cost: float = 0.25) -> None:
        torch.manual_seed(0)
        self.x = torch.randn(batches * 8, 4)
        self.y = (self.x[:, 0] > 0).long()
        self.clock, self.batches, self.base_cost, self.epoch = clock, batches, base_cost, 0

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        self.epoch += 1
        for i in range(self.batches):
            self.clock[0] += self.base_cost * self.epoch  # epoch k costs k times the first
            yield self.x[i * 8 : (i + 1) * 8], self.y[i * 8 : (i + 1) * 8]


def test_a_time_driven_schedule_reaches_its_final_rate_at_the_budget_with_slow_epochs():
    now = [0.0]
    loader = SlowingLoader(now)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    schedule = TimeSchedule(optimizer, 60.0, lambda f: time_factor(f, "onecycle"), lambda: now[0])
    assert optimizer.param_groups[0]["lr"] == 0.0  # set at once: the cycle starts at 0
    used = []

    def loss_fn(out, y):  # called once per batch, after the schedule set the rate
        used.append(optimizer.param_groups[0]["lr"])
        return F.cross_entropy(out, y)

    history = fit(
        model, BudgetLoader(loader, schedule), epochs=100, optimizer=optimizer, loss_fn=loss_fn,
        scheduler=schedule, stop_when=schedule.exhausted, verbose=False,
    )  # fmt: skip
    # the first epoch took 5 s: an epoch plan from it would have laid the cycle over 11
    # epochs; with epochs 1, 2, 3... times slower only 5 (the last one cut) fit in 60 s
    assert history.stopped_reason == "time budget" and len(history) == 5
    assert now[0] == pytest.approx(60.0, abs=1.25)  # ended at the budget, not an epoch early
    assert max(used) == pytest.approx(0.5, rel=0.05)  # the peak was reached...
    assert used[-1] <= 0.05 * 0.5  # ...and the rate annealed to (nearly) its end
    assert used.index(max(used)) < len(used) // 2
    assert history["train_loss"][-1] < history["train_loss"][0]  # it learned


def test_the_schedule_keeps_its_elapsed_time_across_a_resume():
    now = [10.0]
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = TimeSchedule(optimizer, 100.0, lambda f: 1 - f, lambda: now[0])
    schedule.update()
    now[0] += 40
    state = schedule.state_dict()
    assert state["spent"] == pytest.approx(40)
    resumed = TimeSchedule(optimizer, 100.0, lambda f: 1 - f, lambda: now[0])
    now[0] += 1000  # the time between the runs does not count
    resumed.load_state_dict(state)
    assert resumed.update() == pytest.approx(0.6)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="budget_s must be > 0"):
        TimeSchedule(optimizer, 0.0, lambda f: 1.0)


def test_budget_loader_gives_the_wrapped_loaders_attributes_and_at_least_one_batch():
    now = [0.0]
    inner = SlowingLoader(now, batches=4, base_cost=100.0)
    inner.num_samples = 32
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = TimeSchedule(optimizer, 50.0, lambda f: 1.0, lambda: now[0])
    loader = BudgetLoader(inner, schedule)
    assert len(loader) == 4 and loader.num_samples == 32
    assert len(list(loader)) == 1 and loader.images_seen == 8  # one batch, then the budget
    assert schedule.exhausted()
