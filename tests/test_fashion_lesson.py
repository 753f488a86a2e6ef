import math
from dataclasses import replace

import optuna
import pytest
import torch
from torch import nn

from coursekit.analysis import reduced_lr_epochs
from coursekit.fashion import lesson as fl
from coursekit.fashion import search as ft
from coursekit.fashion.lesson import FashionConfig
from coursekit.models import count_parameters
from coursekit.tuning import trials_table

TINY = FashionConfig(epochs=2, subset=(300, 100), batch_size=32, device="cpu", label="tiny")


@pytest.fixture(autouse=True)
def tiny_threads(smoke):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: thread synchronisation costs more than it saves
    yield
    torch.set_num_threads(threads)


def test_a_tiny_baseline_run_on_the_fixture_learns():
    config = replace(TINY, epochs=3, subset=(600, 200), lr=0.05)
    model, history = fl.run(config, checkpoint=None)
    assert history["epoch"] == [1, 2, 3] and history.stopped_reason == "max epochs"
    assert history["lr"] == [0.05] * 3
    assert history["val_acc"][-1] > 0.5  # chance is 0.1
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert fl.evaluate_val(model, config)["acc"] == pytest.approx(history["val_acc"][-1])


def test_variants_start_from_the_same_weights():
    torch.manual_seed(0)
    a = fl.make_model(TINY)
    torch.manual_seed(0)
    b = fl.make_model(replace(TINY, dropout=0.5, batchnorm="c1"))
    assert torch.equal(a.c1.weight, b.c1.weight) and torch.equal(a.f5.weight, b.f5.weight)


def test_early_stopping_config_wires_through():
    config = replace(TINY, epochs=6, early_stopping=2, min_delta=10.0)  # nothing improves by 10
    _, history = fl.run(config, checkpoint=None)
    assert history.stopped_reason == "early stopping"
    assert len(history) == 3  # epoch 1 sets the best, epochs 2 and 3 use up the patience


def test_reduce_lr_on_plateau_config_wires_through():
    config = replace(TINY, epochs=3, scheduler="plateau", plateau_patience=0, min_delta=10.0)
    _, history = fl.run(config, checkpoint=None)
    # epoch 1 sets the best; each later epoch without improvement divides the LR by 10
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.01])


def test_l1_dropout_augment_smoothing_and_adamw_reach_the_training(monkeypatch):
    config = replace(TINY, epochs=1, l1=1e-4, dropout=0.3, augment=True, optimizer="adamw",
                     lr=1e-3, weight_decay=0.01, label_smoothing=0.1, width="wide",
                     batchnorm="convs")  # fmt: skip
    seen = {}
    real_fit = fl.fit

    def spy(model, train, val, **kwargs):
        seen.update(train=train, val=val, **kwargs)
        return real_fit(model, train, val, **kwargs)

    monkeypatch.setattr(fl, "fit", spy)
    model, history = fl.run(config, checkpoint=None)
    optimizer = seen["optimizer"]
    assert type(optimizer) is torch.optim.AdamW
    assert (optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (1e-3, 0.01)
    assert seen["loss_fn"].label_smoothing == 0.1
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2
    assert (seen["train"].hflip, seen["train"].crop_padding) == (True, 2)
    assert (seen["val"].hflip, seen["val"].crop_padding) == (False, 0)  # validation untouched
    l1 = 1e-4 * sum(p.abs().sum() for p in model.parameters())
    assert seen["extra_loss"](model).item() == pytest.approx(l1.item(), rel=1e-5)
    assert history["train_penalty"][0] > 0
    assert count_parameters(model) == 62_526


def _once_per_epoch(scheduler, epochs: int) -> list[float]:
    """Return the learning rate at the start of each epoch, the scheduler stepped per epoch."""
    optimizer = scheduler.optimizer
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_schedulers_step_once_per_epoch_in_a_training():
    lr, epochs = 0.05, 4
    for name in ("cosine", "onecycle"):
        _, history = fl.run(replace(TINY, epochs=epochs, scheduler=name, lr=lr),
                            checkpoint=None, eval_train=False)  # fmt: skip
        if name == "cosine":  # closed form of cosine annealing over the whole training
            expected = [lr * (1 + math.cos(math.pi * t / epochs)) / 2 for t in range(epochs)]
        else:  # one cycle of epochs + 1 steps peaking at lr, one step per epoch
            optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
            cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs + 1)
            expected = _once_per_epoch(cycle, epochs)
        assert history["lr"] == pytest.approx(expected), name
        assert len(set(history["lr"])) == epochs  # a new rate at every epoch


def test_config_checks_names_and_holdout_split():
    with pytest.raises(ValueError, match="scheduler"):
        FashionConfig(scheduler="step")
    assert FashionConfig(subset=[10, 5]).subset == (10, 5)
    assert TINY.name == replace(TINY, device="cuda", label="tiny").name
    assert TINY.name != replace(TINY, l1=1e-3).name
    train, val, test = fl.load_data(subset=(300, 100), holdout=100)
    assert (len(train), len(val), len(test)) == (200, 100, 100)
    assert set(train.indices).isdisjoint(val.indices)
    with pytest.raises(ValueError, match="holdout"):
        fl.load_data(subset=(300, 100), holdout=300)


def test_optuna_objective_runs_two_trials_into_a_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    base = replace(TINY, holdout=100, label="phase1")
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    ft.prepare_study(study, base, ["lr", "batchnorm"])
    assert ft.tune(study, 2, recipe={"lr": 0.05, "batchnorm": "convs"}) == 2
    again = optuna.load_study(study_name="s", storage=storage)  # as a restarted process sees it
    trials = again.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[0].params == {"lr": 0.05, "batchnorm": "convs"}
    assert all(0.0 <= t.value <= 1.0 for t in trials)
    best = ft.config_of(again.best_trial)
    assert best.holdout == 100 and best.subset == (300, 100) and best.lr == again.best_params["lr"]
    assert ft.tune(again, 2) == 0  # the study already has its 2 trials
    table = trials_table(again)
    assert list(table.index)[0] == again.best_trial.number and {"lr", "batchnorm"} <= set(table)
    with pytest.raises(ValueError, match="already searches"):
        ft.prepare_study(again, base, ["lr"])


def test_a_bad_trial_is_pruned_by_the_median_pruner(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    ft.prepare_study(study, replace(TINY, batchnorm="c1"), ["lr"])
    study.enqueue_trial({"lr": 0.05})
    study.enqueue_trial({"lr": 1e-4})  # learns almost nothing: below the median from epoch 1
    ft.tune(study, 2)
    good, bad = study.get_trials()
    assert good.state.name == "COMPLETE" and len(good.intermediate_values) == 2
    assert bad.state.name == "PRUNED"
    assert list(bad.intermediate_values) == [1]
    assert bad.intermediate_values[1] < good.intermediate_values[1]


def test_only_a_completed_trial_keeps_its_checkpoint_and_it_is_loaded_not_retrained(
    tmp_path, capsys
):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    ft.prepare_study(study, replace(TINY, batchnorm="c1"), ["lr"], checkpoints=tmp_path / "ck")
    study.enqueue_trial({"lr": 0.05})
    study.enqueue_trial({"lr": 1e-4})  # pruned after its first epoch
    ft.tune(study, 2)
    out = capsys.readouterr().out
    assert "essai 1/2" in out and "essai 2/2" in out and "essai n°1 : {'lr': 0.0001}" in out
    good, bad = study.get_trials()
    assert bad.state.name == "PRUNED" and ft.trial_checkpoint(bad) is None
    assert list((tmp_path / "ck").iterdir()) == [ft.trial_checkpoint(good)]
    saved = ft.trial_checkpoint(good).stat().st_mtime_ns
    model, history = fl.run(ft.config_of(good), checkpoint=ft.trial_checkpoint(good))
    assert ft.trial_checkpoint(good).stat().st_mtime_ns == saved  # loaded, not trained again
    assert len(history) == 2 and fl.evaluate_val(model, ft.config_of(good))["acc"] == good.value


def test_the_full_profile_is_the_full_study_and_the_quick_one_the_sheets_subset():
    full, quick = fl.PROFILES["complet"], fl.PROFILES["séance"]
    assert full == {"epochs": 100, "subset": None, "threads": None, "trial_epochs": 30,
                    "n_trials_phase1": 24, "n_trials_phase2": 24}
    assert set(quick) == set(full) and quick["subset"] == (5000, 2000)
    assert all(quick[k] < full[k] for k in ("epochs", "trial_epochs", "n_trials_phase1"))


def test_study_objective_needs_a_prepared_study():
    study = optuna.create_study(direction="maximize")
    study.optimize(ft.study_objective, n_trials=1, catch=(ValueError,))
    assert study.trials[0].state.name == "FAIL"
    assert math.isnan(study.trials[0].value or math.nan)


@pytest.mark.parametrize("width", list(fl.WIDTHS))
def test_every_width_fits_the_parameter_budget(width):
    for batchnorm in ("none", "c1", "convs"):
        model = fl.make_model(replace(TINY, width=width, batchnorm=batchnorm))
        assert count_parameters(model) <= fl.MAX_PARAMS


# Improves for 3 epochs, then a plateau that never improves by min_delta again.
PLATEAU = [1.0, 0.8, 0.7] + [0.699] * 20


def test_scheduler_patience_below_stop_patience_minus_one_gives_epochs_at_lower_lr():
    replay = fl.replay_patience(PLATEAU, stop_patience=5, scheduler_patience=2, lr=0.1, factor=0.1)
    # best at epoch 3; epochs 4-6 are bad, the 3rd (> patience 2) reduces the LR after epoch 6
    assert list(replay["lr"].loc[[6, 7]]) == [0.1, 0.1 * 0.1]
    assert replay["stop"].iloc[-1] and replay.index[-1] == 3 + 5
    assert len(reduced_lr_epochs(replay)) == 2  # epochs 7 and 8


def test_equal_patiences_stop_before_the_lr_is_ever_reduced():
    for scheduler_patience in (4, 5, 6):
        replay = fl.replay_patience(PLATEAU, stop_patience=5, scheduler_patience=scheduler_patience)
        assert replay.index[-1] == 8
        assert len(reduced_lr_epochs(replay)) == 0


def test_counters_follow_the_same_improvement_rule():
    replay = fl.replay_patience([1.0, 0.998, 0.99, 0.97], stop_patience=9, scheduler_patience=9,
                             min_delta=0.005)
    # 0.998 and 0.99 do not beat 1.0 by 0.005 (0.99 does: 1.0 - 0.005 = 0.995 > 0.99)
    assert list(replay["stopper_wait"]) == [0, 1, 0, 0]
    assert list(replay["scheduler_bad_epochs"]) == [0, 1, 0, 0]


def test_l1_term_ignores_frozen_parameters():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -0.5]]))
    model.bias.requires_grad_(False)
    assert fl.l1_penalty(model, 1.0).item() == pytest.approx(7.0)


def test_l1_term_is_coef_times_sum_of_absolute_values():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -0.5]]))
        model.bias.copy_(torch.tensor([-1.0, 0.25]))
    total = 1 + 2 + 0.5 + 0 + 3 + 0.5 + 1 + 0.25
    assert fl.l1_penalty(model, 0.001).item() == pytest.approx(0.001 * total)
    assert fl.l1_penalty(model, 0.001, weights_only=True).item() == pytest.approx(0.001 * 7)
    assert fl.l1_loss_term(0.01)(model).item() == pytest.approx(0.01 * total)


def test_l1_term_on_lenet_and_its_gradient_is_coef_times_sign():
    torch.manual_seed(0)
    model = fl.LeNet5()
    expected = 0.001 * sum(p.abs().sum().item() for p in model.parameters())
    penalty = fl.l1_penalty(model, 0.001)
    assert penalty.item() == pytest.approx(expected, rel=1e-5)
    penalty.backward()
    w = model.c1.weight
    assert torch.allclose(w.grad, 0.001 * torch.sign(w.detach()))
