import linecache
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from coursekit.checkpoint import load_checkpoint
from coursekit.data import load_splits
from coursekit.fashion.models import LeNet5
from coursekit.settings import seed_everything
from coursekit.train import EarlyStopping, History, evaluate, fit, predict

LOSS_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")


def blobs(n: int = 256, seed: int = 0) -> TensorDataset:
    """Four gaussian blobs in 2-D, shape (n, 2), labels 0..3."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    centers = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])
    return TensorDataset(centers[y] + torch.randn(n, 2, generator=g), y)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))


def blob_run(epochs: int, checkpoint=None, seed: int = 0, **kwargs) -> tuple[nn.Module, History]:
    seed_everything(seed)
    model = mlp()
    train = DataLoader(blobs(256, 0), batch_size=32, shuffle=True)
    val = DataLoader(blobs(128, 1), batch_size=64)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)
    kwargs = {"scheduler": sched, "verbose": False, **kwargs}
    history = fit(model, train, val, epochs=epochs, optimizer=opt, device="cpu",
                  checkpoint=checkpoint, **kwargs)
    return model, history


def columns(history: History) -> list[list[float]]:
    return [history[c] for c in LOSS_COLUMNS]


def test_fit_learns_fixture_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    monkeypatch.setenv("COURSEKIT_FIXTURES", str(tmp_path / "fixtures"))
    train_set, test_set = load_splits("MNIST", subset=(800, 200))
    seed_everything(0)
    model = LeNet5()
    history = fit(
        model,
        DataLoader(train_set, batch_size=32, shuffle=True),
        DataLoader(test_set, batch_size=100),
        epochs=3,
        optimizer=torch.optim.Adam(model.parameters(), lr=2e-3),
        device="cpu",
        eval_before=True,
        verbose=False,
    )
    assert history["epoch"] == [0, 1, 2, 3]
    assert history["val_loss"][-1] < 0.7 * history["val_loss"][0]
    assert history["train_loss"][-1] < history["train_loss"][1]
    assert history["val_acc"][-1] > 0.5  # chance is 0.1
    assert history.stopped_reason == "max epochs"


def test_same_seed_gives_identical_history():
    _, first = blob_run(3)
    _, second = blob_run(3)
    assert columns(first) == columns(second)
    _, other = blob_run(3, seed=1)
    assert columns(other) != columns(first)


def test_resume_after_interruption_matches_unbroken_run(tmp_path):
    model_a, unbroken = blob_run(5)
    ckpt = tmp_path / "run.pt"
    _, partial = blob_run(2, checkpoint=ckpt)  # "killed" after epoch 2
    assert len(partial) == 2
    # A fresh process would rebuild everything with another RNG state: resume must not care.
    model_b, resumed = blob_run(5, checkpoint=ckpt, seed=123)
    assert columns(resumed) == columns(unbroken)
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert load_checkpoint(ckpt)["epoch"] == 5


def test_checkpoint_of_another_model_is_set_aside_not_loaded(tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "run.pt"
    blob_run(1, checkpoint=ckpt)
    monkeypatch.setenv("COURSEKIT_PROGRESS", "text")
    model = nn.Linear(2, 4)
    history = fit(model, DataLoader(blobs(256, 0), batch_size=32, shuffle=True),
                  DataLoader(blobs(128, 1), batch_size=64), epochs=2,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1), device="cpu",
                  checkpoint=ckpt)
    assert len(history) == 2  # trained from scratch
    assert "architecture du réseau" in capsys.readouterr().out
    kept = list(tmp_path.glob("run.autre-*.pt"))
    assert len(kept) == 1 and load_checkpoint(kept[0])["epoch"] == 1  # the old one, intact
    assert load_checkpoint(ckpt)["epoch"] == 2


def test_a_finished_checkpoint_of_other_data_is_not_loaded(tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "run.pt"
    blob_run(2, checkpoint=ckpt)
    monkeypatch.setenv("COURSEKIT_PROGRESS", "text")
    seed_everything(0)
    model = mlp()
    other = DataLoader(blobs(192, 0), batch_size=32, shuffle=True)  # a smaller subset
    history = fit(model, other, DataLoader(blobs(128, 1), batch_size=64), epochs=2,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.05), device="cpu",
                  checkpoint=ckpt)
    out = capsys.readouterr().out
    assert "réentraînement" in out and "données" in out and "déjà entraîné" not in out
    assert len(history) == 2 and history["seconds"][0] > 0
    assert len(list(tmp_path.glob("run.autre-*.pt"))) == 1


CELL = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 4)

    def forward(self, x):
        return {body}
"""


def cell_net(body: str, n: int) -> nn.Module:
    """Return a Net typed in a notebook cell (module __main__, source in linecache)."""
    source, filename = CELL.format(body=body), f"/tmp/ipykernel_1/{n}.py"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["Net"]()


def test_a_network_rewritten_in_its_cell_is_trained_again(tmp_path, monkeypatch):
    ckpt = tmp_path / "run.pt"
    train = DataLoader(blobs(256, 0), batch_size=32)

    def run(model: nn.Module) -> History:
        return fit(model, train, epochs=1, device="cpu", checkpoint=ckpt, verbose=False,
                   optimizer=torch.optim.SGD(model.parameters(), lr=0.05))

    run(cell_net("self.fc(x)", 1))
    monkeypatch.setattr("coursekit.train.train_epoch", lambda *a, **k: pytest.fail("trained"))
    run(cell_net("self.fc(x)", 2))  # the same cell run again: loaded, not trained
    monkeypatch.undo()
    history = run(cell_net("self.fc(torch.relu(x))", 3))  # same layers, other forward
    assert history["seconds"][0] > 0 and len(list(tmp_path.glob("run.autre-*.pt"))) == 1


def test_early_stopping_follows_the_rule():
    stopper = EarlyStopping(patience=3, min_delta=0.01)
    losses = [1.0, 0.9, 0.895, 0.892, 0.85, 0.845, 0.849, 0.841]
    decisions = [stopper.step(v, epoch=i + 1) for i, v in enumerate(losses)]
    # 0.895, 0.892 do not beat 0.9 by 0.01; 0.85 does; then 0.845, 0.849, 0.841 don't.
    assert decisions == [False, False, False, False, False, False, False, True]
    assert stopper.best == 0.85 and stopper.best_epoch == 5


def test_early_stopping_in_fit_stops_and_restores_best():
    stopper = EarlyStopping(patience=2, min_delta=10.0)  # nothing ever improves by 10
    model, history = blob_run(10, early_stopping=stopper)
    assert history.stopped_reason == "early stopping"
    assert len(history) == 3  # epoch 1 sets the best, epochs 2 and 3 exhaust patience
    restored = evaluate(model, DataLoader(blobs(128, 1), batch_size=64), device="cpu")
    assert math.isclose(restored["loss"], history["val_loss"][0], rel_tol=1e-6)


def test_early_stopping_resumes_with_its_counters_and_best_weights(tmp_path):
    # Nothing ever improves by 10: epoch 1 is the best, patience 3 stops after epoch 4.
    model_a, unbroken = blob_run(10, early_stopping=EarlyStopping(patience=3, min_delta=10.0))
    assert unbroken.stopped_reason == "early stopping" and len(unbroken) == 4
    ckpt = tmp_path / "run.pt"
    blob_run(2, checkpoint=ckpt, early_stopping=EarlyStopping(patience=3, min_delta=10.0))
    # Resumed in a fresh process, with a fresh stopper: its state comes from the checkpoint.
    # A stopper starting over would take epoch 3 for the best and stop after epoch 6.
    stopper = EarlyStopping(patience=3, min_delta=10.0)
    model_b, resumed = blob_run(10, checkpoint=ckpt, seed=123, early_stopping=stopper)
    assert resumed.stopped_reason == "early stopping"
    assert columns(resumed) == columns(unbroken)
    assert (stopper.best_epoch, stopper.wait) == (1, 3)
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # both put epoch 1's weights back


def test_reduce_lr_on_plateau_steps_on_val_loss():
    seed_everything(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)  # too small to improve the loss by 10%
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=0.1)
    history = fit(model, DataLoader(blobs(), batch_size=64), DataLoader(blobs(64, 1)),
                  epochs=4, optimizer=opt, scheduler=sched, device="cpu", verbose=False)
    # lr is read at the start of each epoch; epoch 1 sets the best, each later one reduces it.
    assert history["lr"] == pytest.approx([1e-4, 1e-4, 5e-5, 2.5e-5])


def test_extra_loss_is_recorded_and_trained_against():
    def l1(model):
        return 0.01 * sum(p.abs().sum() for p in model.parameters())

    plain_model, plain = blob_run(3)
    model, penalized = blob_run(3, extra_loss=l1)
    assert "train_penalty" in penalized.columns and "train_penalty" not in plain.columns
    # the penalty pulls the weights towards zero compared with the same run without it
    assert l1(model).item() < l1(plain_model).item()
    assert penalized["train_penalty"][-1] == pytest.approx(l1(model).item(), rel=0.2)


def test_time_budget_stops_before_an_epoch_that_would_overrun():
    _, history = blob_run(50, time_budget_s=1e-9)
    assert history.stopped_reason == "time budget"
    assert len(history) <= 1


def test_stop_when_ends_training_as_a_spent_budget_and_the_checkpoint_says_so(tmp_path):
    asked = []

    def stop_when() -> bool:
        asked.append(len(asked))
        return len(asked) > 3  # asked before epochs 1, 2, 3: True before the 4th

    _, history = blob_run(10, checkpoint=tmp_path / "c.pt", stop_when=stop_when)
    assert len(history) == 3 and history.stopped_reason == "time budget"
    assert load_checkpoint(tmp_path / "c.pt")["stopped_reason"] == "time budget"
    _, again = blob_run(10, checkpoint=tmp_path / "c.pt", stop_when=lambda: False)
    assert again.rows == history.rows  # a finished training: reloaded, not continued
    _, unbounded = blob_run(3, stop_when=None)
    assert len(unbounded) == 3 and unbounded.stopped_reason == "max epochs"


def test_history_frame_and_eval_train():
    _, history = blob_run(2, eval_before=True, eval_train=True)
    df = history.to_frame()
    assert list(df.index) == [0, 1, 2]
    assert {"train_eval_loss", "val_acc", "seconds"} <= set(df.columns)
    assert history.best("val_loss")["val_loss"] == df["val_loss"].min()


def test_diverging_loss_is_a_clear_error():
    seed_everything(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e12)
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(model, DataLoader(blobs(), batch_size=32), epochs=3, optimizer=opt,
            device="cpu", verbose=False)


def bare_loop(epochs: int) -> list[dict[str, float]]:
    """The loop a student writes (notebook 05, exercise 3), with fit's bookkeeping by hand."""
    seed_everything(0)
    model = mlp()
    train = DataLoader(blobs(256, 0), batch_size=32, shuffle=True)
    val = DataLoader(blobs(128, 1), batch_size=64)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"]}
        model.train()
        loss_sum = correct = n = 0
        for x, y in train:
            opt.zero_grad()
            out = model(x)
            loss = nn.functional.cross_entropy(out, y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
        row.update(train_loss=loss_sum / n, train_acc=correct / n)
        model.eval()
        with torch.no_grad():
            outs = [(model(x), y) for x, y in val]
        n = sum(len(y) for _, y in outs)
        losses = [nn.functional.cross_entropy(o, y).item() * len(y) for o, y in outs]
        row["val_loss"] = sum(losses) / n
        row["val_acc"] = sum((o.argmax(1) == y).sum().item() for o, y in outs) / n
        rows.append(row)
        sched.step()
    return rows


def test_fit_history_equals_a_hand_written_loop():
    _, history = blob_run(4)
    expected = bare_loop(4)
    for row, want in zip(history.rows, expected, strict=True):
        assert set(want) <= set(row)
        for key, value in want.items():
            assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-7), (row["epoch"], key)


def test_finished_checkpoint_is_loaded_not_retrained(tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "run.pt"
    model_a, first = blob_run(3, checkpoint=ckpt)
    monkeypatch.setattr("coursekit.train.train_epoch", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setenv("COURSEKIT_PROGRESS", "text")
    seed_everything(0)
    model = mlp()
    history = fit(model, DataLoader(blobs(256, 0), batch_size=32),
                  DataLoader(blobs(128, 1), batch_size=64), epochs=3,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                  scheduler=None, device="cpu", checkpoint=ckpt)
    assert "déjà entraîné" in capsys.readouterr().out
    assert history.rows == first.rows and history.stopped_reason == "max epochs"
    assert all(a.equal(b) for a, b in zip(model.parameters(), model_a.parameters(), strict=True))


def test_restart_ignores_the_checkpoint(tmp_path):
    ckpt = tmp_path / "run.pt"
    blob_run(2, checkpoint=ckpt)
    _, history = blob_run(1, checkpoint=ckpt, restart=True)
    assert len(history) == 1 and load_checkpoint(ckpt)["epoch"] == 1


def test_time_budget_counts_training_time_across_resumes(tmp_path):
    ckpt = tmp_path / "run.pt"
    _, first = blob_run(2, checkpoint=ckpt)
    budget = sum(first["seconds"]) + 0.5 * first["seconds"][-1]  # no room for a 3rd epoch
    _, resumed = blob_run(10, checkpoint=ckpt, time_budget_s=budget)
    assert resumed.stopped_reason == "time budget" and len(resumed) == 2
    # The file says why training stopped: the next call reloads a finished training.
    assert load_checkpoint(ckpt)["stopped_reason"] == "time budget"


class EpochClock:
    """Stands in for `time` in coursekit.train: every epoch lasts exactly `epoch_s` seconds."""

    def __init__(self, epoch_s: float) -> None:
        self.now, self.epoch_s, self.calls = 0.0, epoch_s, 0

    def perf_counter(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:  # fit reads the clock at the start and at the end of an epoch
            self.now += self.epoch_s
        return self.now


@pytest.mark.parametrize("budget", [3.0, 3.5, 3.99])
def test_time_budget_runs_the_epochs_that_fit_and_not_the_next(monkeypatch, budget):
    monkeypatch.setattr("coursekit.train.time", EpochClock(1.0))
    _, history = blob_run(10, time_budget_s=budget)
    # Epochs of 1 s: a 3rd ends at 3 s, within each budget; a 4th would end at 4 s, past it.
    assert history["seconds"] == [1.0, 1.0, 1.0]
    assert history.stopped_reason == "time budget" and sum(history["seconds"]) <= budget


def test_predict_batches_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    x = torch.randn(10, 4)
    out = predict(model, x, batch_size=3)
    assert model.training  # the caller's mode is given back
    model.eval()
    torch.testing.assert_close(out, model(x))
    torch.testing.assert_close(predict(model, [x], batch_size=4), out)


def test_predict_gives_several_inputs_together():
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, xs):
            a, b = xs
            return self.w * (a + b)

    a, b = torch.arange(6.0).view(6, 1), torch.ones(6, 1)
    torch.testing.assert_close(predict(Pair(), [a, b], batch_size=4), a + b)


def scripted(values: dict[int, float], seen: list[int] | None = None):
    """An epoch_metrics hook giving val_f1 = values[epoch], and noting the epochs asked."""

    def hook(model: nn.Module, epoch: int) -> dict[str, float]:
        assert isinstance(model, nn.Module)
        if seen is not None:
            seen.append(epoch)
        return {"val_f1": values[epoch]}

    return hook


def test_epoch_metrics_feed_early_stopping_and_the_printed_line(capsys, monkeypatch):
    monkeypatch.setenv("COURSEKIT_PROGRESS", "text")
    seen: list[int] = []
    f1 = {0: 0.1, 1: 0.5, 2: 0.7, 3: 0.65, 4: 0.69, 5: 0.9}
    stopper = EarlyStopping(patience=2, monitor="val_f1", mode="max")
    _, history = blob_run(5, eval_before=True, early_stopping=stopper,
                          epoch_metrics=scripted(f1, seen), verbose=True)
    # epoch 2 is the best F1; epochs 3 and 4 exhaust the patience before epoch 5's 0.9
    assert history.stopped_reason == "early stopping" and stopper.best_epoch == 2
    assert history["val_f1"] == [0.1, 0.5, 0.7, 0.65, 0.69] and seen == [0, 1, 2, 3, 4]
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch")]
    assert len(lines) == 4 and "val_f1 0.65" in lines[2]


def test_epoch_metrics_reach_a_plateau_scheduler():
    seed_everything(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0)
    f1 = {1: 0.5, 2: 0.4, 3: 0.6, 4: 0.3}
    history = fit(model, DataLoader(blobs(), batch_size=64), epochs=4, optimizer=opt,
                  scheduler=sched, scheduler_monitor="val_f1", epoch_metrics=scripted(f1),
                  device="cpu", verbose=False)  # no val_loader: val_f1 is all it has
    # lr is read at the start of each epoch: epoch 2 did not beat epoch 1, epoch 3 did
    assert history["lr"] == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3])
    with pytest.raises(ValueError, match="'val_f1'"):  # monitored, but nothing computes it
        fit(model, DataLoader(blobs(), batch_size=64), epochs=1, optimizer=opt, scheduler=sched,
            scheduler_monitor="val_f1", device="cpu", verbose=False)


def test_callback_observes_and_epoch_metrics_cannot_overwrite_fit_columns():
    rows: list[dict[str, float]] = []

    def meddle(row: dict[str, float]) -> None:
        rows.append(dict(row))
        row["val_f1"] = -1.0  # ignored: the callback only observes

    _, history = blob_run(2, epoch_metrics=scripted({1: 0.5, 2: 0.6}), callback=meddle)
    assert [r["val_f1"] for r in rows] == [0.5, 0.6] and history["val_f1"] == [0.5, 0.6]
    with pytest.raises(ValueError, match="val_loss"):
        blob_run(1, epoch_metrics=lambda model, epoch: {"val_loss": 0.0})
