import matplotlib

matplotlib.use("Agg")

from coursekit.plots import plot_history, plot_runs, save_figure  # noqa: E402
from coursekit.train import History  # noqa: E402


def history(scale: float) -> History:
    rows = [
        {"epoch": e, "train_loss": scale / e, "val_loss": scale / e + 0.1,
         "val_acc": 1 - 1 / (e + 1)}
        for e in range(1, 5)
    ]
    return History(rows, "max epochs")


def test_plot_history_draws_losses_and_accuracy():
    fig = plot_history(history(1.0))
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train_loss", "val_loss"]
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3, 4]
    assert [line.get_label() for line in acc_ax.lines] == ["val_acc"]


def test_plot_runs_overlays_and_saves(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_FIGURES", str(tmp_path))
    fig = plot_runs({"a": history(1.0), "b": history(2.0)}, key="val_loss")
    assert [line.get_label() for line in fig.axes[0].lines] == ["a", "b"]
    path = save_figure(fig, "99_test", "overlay")
    assert path == tmp_path / "99_test" / "overlay.png"
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_epoch_axis_has_integer_ticks():
    short = History(history(1.0).rows[:2])
    for fig in (plot_history(short), plot_runs({"a": short})):
        ticks = fig.axes[0].get_xticks()
        assert all(float(t).is_integer() for t in ticks)
