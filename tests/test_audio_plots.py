"""Figures of notebook 02: mel axis in Hz, band edges, empty bands, confusion matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit.audio import lesson, plots
from coursekit.audio.data import MelConfig, load_waveforms, mel_frequencies


@pytest.fixture(scope="module")
def data(fixture_data: Path, tmp_path_factory: pytest.TempPathFactory) -> lesson.AudioData:
    """Return the audio fixture's AudioData (features cached in a temporary folder)."""
    return lesson.load_audio(fixture_data, cache_dir=tmp_path_factory.mktemp("audio_cache"))


def test_mel_band_edges_bracket_the_filter_centres():
    mel = MelConfig(n_mels=20)
    edges, centres = plots.mel_band_edges(mel), mel_frequencies(mel)
    assert len(edges) == 21 and edges[0] == 0 and edges[-1] == pytest.approx(4000)
    assert np.all(edges[:-1] < centres) and np.all(centres < edges[1:])


def test_empty_mel_bands_flags_too_many_bands():
    assert plots.empty_mel_bands(MelConfig()) == 0
    assert plots.empty_mel_bands(MelConfig(n_fft=128, n_mels=128)) > 0


def test_figures_have_a_mel_axis_in_hz(data):
    import matplotlib.pyplot as plt

    wave = load_waveforms(data.table.iloc[[3]])[0]
    fig = plots.plot_wave_and_mel(wave, data.x[3], data.mel, "3")
    mel_ax = fig.axes[1]
    assert mel_ax.get_yscale() == "function" and mel_ax.get_ylim() == (0, 4000)
    assert "Hz" in mel_ax.get_ylabel() and 1000 in mel_ax.get_yticks()
    fig = plots.plot_linear_vs_mel(wave, data.mel)
    assert fig.axes[0].get_yscale() == "linear" and fig.axes[2].get_yscale() == "function"
    assert len(fig.axes[1].lines) == data.mel.n_mels  # one triangle per filter
    mels = [MelConfig(n_fft=128, n_mels=80), MelConfig()]
    fig = plots.plot_mel_settings(wave, mels)
    assert "vide" in fig.axes[0].get_title() and "vide" not in fig.axes[1].get_title()
    fig = plots.plot_confusions({"a": torch.eye(10, dtype=torch.long), "b": torch.ones(10, 10,
                                  dtype=torch.long)})
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "chiffre prédit"
    plt.close("all")


def test_durations_share_one_set_of_bins(data):
    import matplotlib.pyplot as plt

    fig = plots.plot_durations(data.table, kept=0.5)
    ax = fig.axes[0]
    speakers = sorted(data.table["speaker"].unique())
    assert len(ax.containers) == len(speakers)
    lefts = [[bar.get_x() for bar in bars] for bars in ax.containers]
    assert all(np.allclose(x, lefts[0]) for x in lefts)  # the same bins for every speaker
    counts = [sum(bar.get_height() for bar in bars) for bars in ax.containers]
    assert counts == data.table.groupby("speaker").size().loc[speakers].tolist()
    plt.close(fig)


def test_leakage_legend_leaves_the_bars_visible_and_accuracies_are_in_percent():
    import matplotlib.pyplot as plt
    import pandas as pd

    accuracies = pd.Series([0.95, 0.2, 0.9, 0.6], index=["alba", "bruno", "chloe", "dmitri"])
    fig = plots.plot_leakage(accuracies, 0.97)
    ax = fig.axes[0]
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    axes_box = ax.get_window_extent()
    assert legend.y1 <= axes_box.y0 + 1  # below the axes: it hides no bar
    assert [b.get_height() for b in ax.containers[0]] == accuracies.tolist()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert "100\N{NO-BREAK SPACE}%" in labels and all(t.endswith("%") for t in labels)
    plt.close(fig)
