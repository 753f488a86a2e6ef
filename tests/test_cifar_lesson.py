"""Notebook 04's CIFAR-10 lesson: config, validation split, schedules, budget, runs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from coursekit.cifar import lesson as cifar
from coursekit.cifar.lesson import CifarConfig
from coursekit.cifar.models import FinalNet, TutorialNet

# Small, fast settings that still learn the fixture's coloured shapes in a few epochs.
QUICK = CifarConfig(
    batch_size=16, lr=0.01, epochs=4, holdout=100, subset=500, normalize="cifar", device="cpu",
    label="quick",
)  # fmt: skip


def lrs_per_epoch(scheduler, optimizer, epochs: int) -> list[float]:
    """Return the first group's LR of each epoch, stepping `scheduler` once per epoch."""
    values = []
    for _ in range(epochs):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def sgd(lr: float = 0.01) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


# --- config -------------------------------------------------------------------------------


def test_default_config_is_the_tutorial():
    config = CifarConfig()
    assert (config.model, config.batch_size, config.optimizer, config.lr, config.momentum) == (
        "tutorial", 4, "sgd", 0.001, 0.9,
    )  # fmt: skip
    assert (config.epochs, config.normalize, config.holdout) == (2, "tutorial", 5000)
    assert isinstance(cifar.make_model(config), TutorialNet)


def test_config_name_changes_with_what_is_learned_only():
    base = CifarConfig()
    assert base.name.startswith("cifar_run_")
    assert base.name == CifarConfig().name
    for change in ({"lr": 0.01}, {"batch_size": 16}, {"hflip": True}, {"holdout": 4000}):
        assert dataclasses.replace(base, **change).name != base.name, change
    assert dataclasses.replace(base, device="cpu").name == base.name
    assert dataclasses.replace(base, label="x").name.startswith("cifar_x_")


def test_config_checks_its_fields():
    assert CifarConfig(channels=[8, 16], widths=[24, 56, 72]).channels == (8, 16)
    with pytest.raises(ValueError, match="eval_batch must divide 10,000"):
        CifarConfig(eval_batch=300)
    with pytest.raises(ValueError, match="schedule must be one of"):
        CifarConfig(schedule="step")
    with pytest.raises(ValueError, match="holdout must be >= 1"):
        CifarConfig(holdout=0)
    with pytest.raises(ValueError, match="over the budget"):
        cifar.make_model(CifarConfig(model="final", widths=(32, 64, 128)))


def test_final_preset_is_the_final_net():
    model = cifar.make_model(cifar.FINAL)
    assert isinstance(model, FinalNet)
    assert cifar.FINAL.tta_flip and cifar.FINAL.time_budget_s == 3600


# --- schedules and budget -----------------------------------------------------------------


def test_plateau_schedule_follows_the_sheets_plan():
    optimizer = sgd(0.01)
    scheduler = cifar.plateau_schedule(optimizer, 8)
    lrs = lrs_per_epoch(scheduler, optimizer, 10)
    expected = [0.01] * 4 + [0.001] * 2 + [0.0001] * 4  # epochs 9-10: past the plan, last rate
    assert lrs == pytest.approx(expected)


@pytest.mark.parametrize(
    ("epochs", "starts"),
    [(8, [1, 5, 7]), (10, [1, 6, 9]), (4, [1, 3, 4]), (3, [1, 2, 3]), (100, [1, 51, 76])],
)
def test_plateau_starts(epochs, starts):
    assert cifar.plateau_starts(epochs) == starts


def test_plateau_lrs_from_config_lr():
    config = CifarConfig(schedule="plateaus", lr=0.01)
    optimizer = cifar.make_optimizer(config, TutorialNet())
    scheduler = cifar.make_scheduler(config, optimizer, 4)
    assert lrs_per_epoch(scheduler, optimizer, 4) == pytest.approx([0.01, 0.01, 0.001, 0.0001])


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_warmup_decay_schedules(schedule):
    config = CifarConfig(schedule=schedule, lr=0.1, warmup=0.2)
    optimizer = cifar.make_optimizer(config, TutorialNet())
    lrs = lrs_per_epoch(cifar.make_scheduler(config, optimizer, 10), optimizer, 12)
    peak = lrs.index(max(lrs))
    assert peak == 2 and max(lrs) <= 0.1
    assert lrs[:3] == sorted(lrs[:3]) and lrs[2:10] == sorted(lrs[2:10], reverse=True)
    assert min(lrs) > 0  # no epoch at a zero rate, first or last
    assert lrs[10] == lrs[11] == lrs[9]  # past the plan the last rate stays


def test_epochs_in_budget():
    assert cifar.epochs_in_budget(10, 100, margin=0) == 10
    assert cifar.epochs_in_budget(10, 100) == 9  # 5% margin
    assert cifar.epochs_in_budget(300, 100) == 1
    with pytest.raises(ValueError):
        cifar.epochs_in_budget(0, 100)


# --- data -----------------------------------------------------------------------------------


def test_holdout_is_stratified_and_deterministic():
    labels = torch.arange(10).repeat_interleave(50)  # class-sorted, like the JPEG copy
    train, val = cifar.holdout_split(labels, 105)
    assert len(val) == 105 and len(train) == 395
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert torch.bincount(labels[val]).tolist() == [11] * 5 + [10] * 5
    assert val[:11].tolist() == list(range(39, 50))  # the last 11 images of class 0
    with pytest.raises(ValueError, match="lower holdout"):
        cifar.holdout_split(labels, 500)


def test_make_loaders_on_the_fixture(smoke):
    data = cifar.load_data()
    assert data.classes[0] == "airplane" and data.images.dtype == torch.uint8
    assert len(data.labels) == 1000 and data.test_images is not None  # the fixture's sizes
    train, val, test = cifar.make_loaders(dataclasses.replace(QUICK, subset=None), data)
    assert (train.num_samples, val.num_samples) == (900, 100)
    assert cifar.make_loaders(QUICK, data)[0].num_samples == 400  # config.subset applies
    x, y = next(iter(train))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (16,)
    assert test is not None and test.batch_size == QUICK.eval_batch
    no_test = dataclasses.replace(data, test_images=None, test_labels=None)
    assert cifar.make_loaders(QUICK, no_test)[2] is None


# --- runs -----------------------------------------------------------------------------------


def test_tiny_run_learns(smoke):
    model, history = cifar.run(QUICK, checkpoint=smoke / "quick.pt", verbose=False)
    assert len(history) == 4 and history.stopped_reason == "max epochs"
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_acc"][-1] > 0.1 + 0.1  # well above chance on the held-out images
    _, val, _ = cifar.make_loaders(QUICK)
    scores = cifar.evaluate_split(model, val)
    assert scores["acc"] == pytest.approx(history["val_acc"][-1])
    assert len(scores["per_class"]) == 10 and scores["confusion"].sum() == 100
    flipped = cifar.evaluate_split(model, val, tta_flip=True)
    assert 0 <= flipped["acc"] <= 1
    again, reloaded = cifar.run(QUICK, checkpoint=smoke / "quick.pt", verbose=False)
    assert reloaded.rows == history.rows  # finished: loaded, not trained again


def test_final_net_trains_on_the_fixture(smoke):
    config = dataclasses.replace(
        cifar.FINAL, subset=200, holdout=50, batch_size=50, epochs=2, time_budget_s=None,
        amp=False, device="cpu",
    )  # fmt: skip
    model, history = cifar.run(config, checkpoint=None, verbose=False)
    assert len(history) == 2
    assert history["lr"][0] < config.lr and history["train_loss"][1] < history["train_loss"][0]
    assert model.whiten.weight.abs().sum() > 0


class CallClock:
    """A fake clock: every reading moves it by `step` seconds (the schedule reads it twice a
    batch), so time follows the number of batches, whatever the machine."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_time_budget_cuts_the_last_epoch_at_the_budget(smoke):
    config = dataclasses.replace(
        QUICK, batch_size=50, epochs=50, time_budget_s=20.0, schedule="onecycle"
    )
    checkpoint = smoke / "budget.pt"
    clock = CallClock(0.5)  # 8 batches an epoch: about 8 s an epoch, 2.4 epochs in 19 s
    _, history = cifar.run(config, checkpoint=checkpoint, verbose=False, clock=clock)
    assert history.stopped_reason == "time budget" and len(history) == 3
    assert history["images"][:2] == [400, 400] and 0 < history["images"][2] < 400
    assert max(history["lr_end"]) > 0.5 * config.lr  # the cycle rose...
    assert history["lr_end"][-1] < 0.1 * config.lr  # ...and ended near 0 at the budget
    again = cifar.run(config, checkpoint=checkpoint, verbose=False, clock=CallClock(0.5))[1]
    assert again.rows == history.rows  # finished: reloaded, not trained again


def test_batch_sizes_compared_at_equal_time_budget(smoke):
    data = cifar.load_data()
    runs = {}
    for batch in (10, 40):
        config = dataclasses.replace(
            QUICK, batch_size=batch, epochs=100, time_budget_s=64.0, label=f"b{batch}"
        )
        # the same cost per batch: bigger batches see more images in the same time
        runs[batch] = cifar.run(config, checkpoint=None, verbose=False, data=data,
                                clock=CallClock(0.5))[1]  # fmt: skip
    seen = {b: sum(h["images"]) for b, h in runs.items()}
    assert all(h.stopped_reason == "time budget" for h in runs.values())
    assert seen[40] == pytest.approx(4 * seen[10], rel=0.1)  # same number of batches
    summary = {b: cifar.budget_summary(h, 400) for b, h in runs.items()}
    for b, row in summary.items():
        assert row["époques"] == pytest.approx(seen[b] / 400)
        assert row["images par seconde"] == pytest.approx(seen[b] / row["secondes"])
        assert row["accuracy de validation"] == runs[b]["val_acc"][-1]
    for h in runs.values():  # each learned within the budget
        assert h["train_loss"][-1] < h["train_loss"][0] and max(h["val_acc"]) > 0.1 + 0.05
    with pytest.raises(ValueError, match="train first"):
        cifar.budget_summary(cifar.History(), 400)


# --- profiles, subsets, one-hour steps --------------------------------------------------------


def test_profiles_give_the_same_parameters_and_the_full_budgets_fit_an_hour():
    quick, full = cifar.PROFILES["séance"], cifar.PROFILES["complet"]
    assert set(quick) == set(full)
    assert full["subset"] is None and full["ablations"] == list(cifar.ABLATIONS)
    assert set(quick["ablations"]) <= set(cifar.ABLATIONS)
    # equal budgets: the one-cycle plan, the final net and the ablation's reference are one run
    budgets = ("plan_budget_minutes", "final_budget_minutes", "ablation_budget_minutes")
    assert len({quick[k] for k in budgets}) == 1
    assert max(full[k] for k in budgets) <= 50  # a one-hour job also starts, loads, reloads


def test_subset_takes_the_first_images_of_each_class():
    labels = torch.arange(10).repeat_interleave(50)  # class-sorted, like the JPEG copy
    images = torch.arange(500, dtype=torch.uint8).view(500, 1, 1, 1).expand(500, 3, 32, 32)
    data = cifar.CifarData(images, labels, images[:100], labels[:100], tuple("abcdefghij"))
    cut = cifar.first_images(data, 105)
    assert torch.bincount(cut.labels).tolist() == [11] * 5 + [10] * 5
    assert cut.images[:11, 0, 0, 0].tolist() == list(range(11))  # class 0's first images
    assert cut.test_labels.tolist() == [0] * 50 + [1] * 50  # 2 classes: all there is, in order
    assert cifar.first_images(data, 20).test_labels.tolist() == [0] * 10 + [1] * 10
    assert cifar.first_images(data, None) is data
    assert torch.equal(cifar.first_images(cut, 105).labels, cut.labels)  # idempotent


def test_steps_parse_and_stop_cleanly(capsys):
    assert cifar.parse_step("tout") == "tout" and cifar.parse_step("2") == 2
    assert cifar.parse_step(5) == 5
    for wrong in (0, "6", "deux"):
        with pytest.raises(ValueError, match="etape"):
            cifar.parse_step(wrong)
    cifar.end_of_step("tout", 1)
    cifar.end_of_step(2, 1)
    with pytest.raises(SystemExit) as stop:
        cifar.end_of_step(1, 1)
    assert stop.value.code == 0  # papermill counts SystemExit(0) as a success
    assert "-p etape 2" in capsys.readouterr().out


def test_step_checkpoints_are_shared_by_the_batch_runs_of_the_steps(smoke, monkeypatch):
    lab = cifar.step_checkpoint("04_cifar10_256k", "x", 2)
    assert lab == cifar.checkpoint_path("04_cifar10_256k", "x")  # Lab: one folder anyway
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(smoke / "runs" / "04_cifar10_256k" / "a-run"))
    shared = cifar.step_checkpoint("04_cifar10_256k", "x", 2)
    assert shared == smoke / "runs" / "04_cifar10_256k" / "etapes-smoke" / "checkpoints" / "x.pt"
    assert shared.parent.is_dir()
    assert cifar.step_checkpoint("04_cifar10_256k", "x", "tout").parent.parent.name == "a-run"


def test_a_step_needs_the_earlier_steps_finished(smoke):
    checkpoint = smoke / "quick.pt"
    with pytest.raises(RuntimeError, match="lancez d'abord l'étape 1"):
        cifar.require_earlier_step(2, 1, checkpoint, QUICK.epochs)
    cifar.require_earlier_step(1, 1, checkpoint, QUICK.epochs)  # its own step trains it
    cifar.require_earlier_step("tout", 1, checkpoint, QUICK.epochs)
    config = dataclasses.replace(QUICK, epochs=1)
    cifar.run(config, checkpoint=checkpoint, verbose=False)
    assert cifar.finished_training(checkpoint, 1) and not cifar.finished_training(checkpoint, 2)
    cifar.require_earlier_step(2, 1, checkpoint, 1)
