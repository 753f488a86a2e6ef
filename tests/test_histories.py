import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from coursekit.histories import (  # noqa: E402
    collapsed,
    compare_runs,
    lr_changes,
    reduced_lr_report,
    run_summary,
)
from coursekit.lr_plots import plot_lr_steps  # noqa: E402
from coursekit.train import History  # noqa: E402


def history(val_loss, lr=None, train_acc=0.9, stopped="max epochs"):
    lr = lr or [0.1] * len(val_loss)
    rows = [
        {"epoch": i + 1, "lr": lr[i], "train_loss": v, "train_acc": train_acc,
         "val_loss": v, "val_acc": 1 - v, "seconds": 1.0}
        for i, v in enumerate(val_loss)
    ]
    return History([{"epoch": 0, "val_loss": 9.0, "val_acc": 0.0}] + rows, stopped)


def test_run_summary_ignores_the_epoch_0_row():
    s = run_summary(history([0.5, 0.3, 0.4]))
    assert s["epochs"] == 3 and s["best_epoch"] == 2 and s["best_val_loss"] == 0.3
    assert s["final_val_acc"] == pytest.approx(0.6) and s["best_val_acc"] == pytest.approx(0.7)
    assert s["acc_gap"] == pytest.approx(0.9 - 0.6) and s["seconds"] == 3.0


def test_compare_runs_against_a_reference():
    table = compare_runs({"base": history([0.5, 0.4]), "l2": history([0.5, 0.3, 0.2])}, "base")
    assert list(table.index) == ["base", "l2"]
    assert table.loc["l2", "d_final_val_acc"] == pytest.approx(0.2)
    assert table["epochs"].tolist() == [2, 3]
    with pytest.raises(KeyError, match="reference"):
        compare_runs({"a": history([0.5])}, "b")


def test_lr_changes_and_reduced_lr_report():
    h = history([0.5, 0.4, 0.41, 0.3, 0.35], lr=[0.1, 0.1, 0.1, 0.01, 0.001])
    assert lr_changes(h) == [(4, 0.1, 0.01), (5, 0.01, 0.001)]
    report = reduced_lr_report(h)
    assert report["n_changes"] == 2 and report["first_change_epoch"] == 4
    assert report["epochs_at_reduced_lr"] == 2
    assert report["best_epoch"] == 4 and report["best_after_reduction"]
    assert lr_changes(history([0.5, 0.4])) == []


def test_plot_lr_steps_draws_one_line_per_change(tmp_path):
    h = history([0.5, 0.4, 0.41, 0.3], lr=[0.1, 0.1, 0.01, 0.01], stopped="early stopping")
    fig = plot_lr_steps(h)
    ax = fig.axes[0]
    vertical = [ln for ln in ax.get_lines() if len(set(ln.get_xdata())) == 1]
    assert len(vertical) == 2  # one LR step and the early stop
    assert any("lr=0.01" in t.get_text() for t in ax.texts)
    fig.savefig(tmp_path / "lr.png")
    assert isinstance(h.to_frame(), pd.DataFrame)


def test_collapsed_detects_a_run_stuck_at_chance():
    dead = History([{"epoch": e, "train_loss": 2.303, "val_acc": 0.1} for e in (1, 2)])
    alive = History([{"epoch": 1, "train_loss": 0.5, "val_acc": 0.85}])
    slow_start = History([{"epoch": 1, "train_loss": 2.25, "val_acc": 0.35}])
    assert collapsed(dead) and not collapsed(alive) and not collapsed(slow_start)
