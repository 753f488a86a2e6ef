import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from coursekit.plots import (  # noqa: E402
    french_ticks,
    percent_axis,
    plot_history,
    plot_lr_steps,
    plot_runs,
    save_figure,
    study_figures,
)
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
    assert [line.get_label() for line in loss_ax.lines] == [
        "loss d'entraînement (pendant l'époque)", "loss de validation",
    ]
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3, 4]
    assert [line.get_label() for line in acc_ax.lines] == ["accuracy de validation"]
    assert loss_ax.get_xlabel() == "époque"
    renamed = plot_history(history(1.0), labels={"val_loss": "loss de test"})
    assert renamed.axes[0].lines[1].get_label() == "loss de test"


def test_narrow_log_axis_has_several_labelled_ticks_with_decimal_commas():
    fig = plot_runs({"a": history(0.05)}, key="val_loss", logy=True)  # 0.11 to 0.15
    ax = fig.axes[0]
    fig.canvas.draw()
    low, high = ax.get_ylim()
    labels = [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high]
    assert len([t for t in labels if t]) >= 2 and all("." not in t for t in labels)


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


def lr_history(val_loss, lr, stopped="max epochs"):
    rows = [
        {"epoch": i + 1, "lr": lr[i], "train_loss": v, "val_loss": v, "val_acc": 1 - v}
        for i, v in enumerate(val_loss)
    ]
    return History(rows, stopped)


def test_plot_lr_steps_draws_one_line_per_change(tmp_path):
    h = lr_history([0.5, 0.4, 0.41, 0.3], lr=[0.1, 0.1, 0.01, 0.01], stopped="early stopping")
    fig = plot_lr_steps(h)
    ax = fig.axes[0]
    vertical = [ln for ln in ax.get_lines() if len(set(ln.get_xdata())) == 1]
    assert len(vertical) == 2  # one LR step and the early stop
    assert any("lr = 0,01" in t.get_text() for t in ax.texts)
    legend = ax.get_legend()
    assert legend.get_bbox_to_anchor().y1 < ax.get_window_extent().y0 + 1  # below the axes
    fig.savefig(tmp_path / "lr.png")
    assert isinstance(h.to_frame(), pd.DataFrame)


def test_study_figures_without_plotly(tmp_path, toy_study):
    study = toy_study(20)
    figures = study_figures(study)
    assert set(figures) == {"history", "intermediate", "importances"}
    assert figures["intermediate"].axes[0].get_legend() is None  # 20 trials: no legend
    for name, fig in figures.items():
        fig.savefig(tmp_path / f"{name}.png")
    assert "importances" not in study_figures(toy_study(1))


def test_saved_figures_have_decimal_commas_on_every_linear_axis(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setenv("COURSEKIT_FIGURES", str(tmp_path))
    fig, (ax, bars, pct) = plt.subplots(1, 3)
    image = ax.imshow([[0.0, 0.25], [0.5, 0.75]], extent=(0, 0.5, 0, 1.5))
    fig.colorbar(image)
    bars.bar(["alba", "bruno"], [0.5, 0.75])  # names stay names
    pct.plot([0, 1], [0.2, 0.9])
    percent_axis(pct.yaxis)
    save_figure(fig, "99_test", "commas")
    fig.canvas.draw()
    for axes in fig.axes:  # the colorbar's axis too
        for axis in (axes.xaxis, axes.yaxis):
            assert not any("." in t.get_text() for t in axis.get_ticklabels())
    for axis in (ax.xaxis, ax.yaxis, fig.axes[-1].yaxis):  # the image and its colorbar
        assert any("," in t.get_text() for t in axis.get_ticklabels())
    assert [t.get_text() for t in bars.get_xticklabels()] == ["alba", "bruno"]
    assert all(t.get_text().endswith("\N{NO-BREAK SPACE}%") for t in pct.get_yticklabels())
    assert french_ticks(fig) is fig
    plt.close(fig)
