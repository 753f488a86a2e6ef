"""Figures of notebook 02: waveform and log-mel spectrogram with a frequency axis in Hz on a
mel scale, linear against mel spectrograms, STFT settings side by side, confusion matrices,
the recordings' durations and the leakage bars."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torchaudio

from coursekit.audio.data import MelConfig, hz_to_mel, mel_frequencies, mel_to_hz, power_to_db
from coursekit.french import fr_pct
from coursekit.plots import percent_axis

HZ_TICKS = (0, 250, 500, 1000, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000)


def mel_band_edges(mel: MelConfig) -> np.ndarray:
    """Return n_mels + 1 frequencies (Hz) bounding the mel bands, for pcolormesh: halfway
    (on the mel scale) between neighbouring filter centres, f_min and f_max at the ends."""
    f_max = mel.f_max or mel.sample_rate / 2
    centres = hz_to_mel(mel_frequencies(mel))
    middle = (centres[1:] + centres[:-1]) / 2
    return mel_to_hz(np.concatenate([[hz_to_mel(mel.f_min)], middle, [hz_to_mel(f_max)]]))


def _mel_axis(ax: Any, f_max: float) -> None:
    """Put `ax`'s y axis on the mel scale, ticks labelled in Hz up to f_max."""
    ax.set_yscale("function", functions=(hz_to_mel, mel_to_hz))
    ax.set_yticks([f for f in HZ_TICKS if f <= f_max])
    ax.set_ylim(0, f_max)
    ax.set_ylabel("fréquence (Hz, échelle mel)")


def plot_wave_and_mel(wave: torch.Tensor, features: torch.Tensor, mel: MelConfig,
                      title: str = "") -> Any:
    """Return a Figure: the waveform (L,) over time, then its log-mel spectrogram
    (n_mels, frames) in dB with the frequency axis in Hz on a mel scale."""
    sr = mel.sample_rate
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 5.8))
    top.plot(np.arange(len(wave)) / sr, wave.numpy(), linewidth=0.6)
    top.set_xlabel("temps (s)")
    top.set_ylabel("amplitude")
    top.set_xlim(0, len(wave) / sr)
    times = (np.arange(features.shape[1] + 1) - 0.5) * mel.hop_length / sr
    image = bottom.pcolormesh(times.clip(0), mel_band_edges(mel), features.numpy(),
                              shading="flat", cmap="magma")
    _mel_axis(bottom, mel.f_max or sr / 2)
    bottom.set_xlabel("temps (s)")
    fig.colorbar(image, ax=bottom, label="puissance (dB)")
    top.set_title(title)
    fig.tight_layout()
    return fig


def plot_linear_vs_mel(wave: torch.Tensor, mel: MelConfig, title: str = "") -> Any:
    """Return a Figure of one recording: the STFT power spectrogram on a linear frequency
    axis, the mel filter bank, and the log-mel spectrogram on a mel axis (both in Hz)."""
    sr, f_max = mel.sample_rate, mel.f_max or mel.sample_rate / 2
    stft = torchaudio.transforms.Spectrogram(n_fft=mel.n_fft, hop_length=mel.hop_length,
                                             win_length=mel.win_length)(wave)
    linear = power_to_db(stft, mel.top_db)
    features = power_to_db(mel.transform()(wave), mel.top_db)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), gridspec_kw={"width_ratios": [3, 2, 3]})
    times = (np.arange(linear.shape[1] + 1) - 0.5) * mel.hop_length / sr
    bins = (np.arange(linear.shape[0] + 1) - 0.5) * sr / mel.n_fft
    axes[0].pcolormesh(times.clip(0), bins.clip(0, sr / 2), linear.numpy(), cmap="magma")
    axes[0].set_ylabel("fréquence (Hz, échelle linéaire)")
    axes[0].set_title(f"spectrogramme ({linear.shape[0]} fréquences)")
    bank = torchaudio.functional.melscale_fbanks(mel.n_fft // 2 + 1, mel.f_min, f_max,
                                                 mel.n_mels, sr)
    axes[1].plot(np.arange(bank.shape[0]) * sr / mel.n_fft, bank.numpy(), linewidth=0.8)
    axes[1].set_xlabel("fréquence (Hz)")
    axes[1].set_ylabel("poids du filtre")
    axes[1].set_title(f"{mel.n_mels} filtres triangulaires mel")
    axes[2].pcolormesh(times.clip(0), mel_band_edges(mel), features.numpy(), cmap="magma")
    _mel_axis(axes[2], f_max)
    axes[2].set_title(f"spectrogramme mel ({mel.n_mels} bandes)")
    for ax in (axes[0], axes[2]):
        ax.set_xlabel("temps (s)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusions(confusions: dict[str, torch.Tensor], title: str = "") -> Any:
    """Return a Figure with one confusion matrix (10, 10) per entry, counts written in."""
    fig, axes = plt.subplots(1, len(confusions), figsize=(3.4 * len(confusions), 3.6),
                             squeeze=False)
    for ax, (name, matrix) in zip(axes[0], confusions.items(), strict=True):
        ax.imshow(matrix.numpy(), cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix.numpy()):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=6,
                        color="white" if count > matrix.max().item() / 2 else "black")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("chiffre prédit")
        ax.set_ylabel("vrai chiffre")
        ax.set_title(name, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def empty_mel_bands(mel: MelConfig) -> int:
    """Return how many mel filters get no STFT bin at all (too many bands for n_fft)."""
    with warnings.catch_warnings():  # torchaudio warns about exactly what is counted here
        warnings.simplefilter("ignore", UserWarning)
        bank = torchaudio.functional.melscale_fbanks(
            mel.n_fft // 2 + 1, mel.f_min, mel.f_max or mel.sample_rate / 2, mel.n_mels,
            mel.sample_rate,
        )  # fmt: skip
    return int((bank.sum(0) == 0).sum())


def plot_mel_settings(wave: torch.Tensor, mels: Sequence[MelConfig], title: str = "") -> Any:
    """Return a Figure with the log-mel spectrogram of one waveform (L,) for each config:
    side by side, to compare time and frequency resolutions."""
    fig, axes = plt.subplots(1, len(mels), figsize=(4.2 * len(mels), 3.6), squeeze=False)
    for ax, mel in zip(axes[0], mels, strict=True):
        with warnings.catch_warnings():  # empty filters are reported in the title instead
            warnings.simplefilter("ignore", UserWarning)
            features = power_to_db(mel.transform()(wave), mel.top_db)
        times = (np.arange(features.shape[1] + 1) - 0.5) * mel.hop_length / mel.sample_rate
        ax.pcolormesh(times.clip(0), mel_band_edges(mel), features.numpy(), cmap="magma")
        _mel_axis(ax, mel.f_max or mel.sample_rate / 2)
        ax.set_xlabel("temps (s)")
        empty = empty_mel_bands(mel)
        ax.set_title(f"n_fft={mel.n_fft}, hop={mel.hop_length}, n_mels={mel.n_mels}"
                     + (f"\n{empty} bande(s) vide(s)" if empty else ""), fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_durations(table: pd.DataFrame, kept: float, bins: int = 30) -> Any:
    """Return a Figure: one histogram of durations per speaker, all on the same bins (so
    their bars compare), and a dashed line at the `kept` seconds each file is cut to."""
    edges = np.histogram_bin_edges(table["duration"], bins=bins)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for speaker, durations in table.groupby("speaker")["duration"]:
        ax.hist(durations, bins=edges, alpha=0.5, label=speaker)
    ax.axvline(kept, color="black", linestyle="--", label="longueur gardée")
    ax.set_xlabel("durée (s)")
    ax.set_ylabel("nombre de fichiers")
    ax.set_title("Durée des enregistrements par locuteur")
    ax.legend(fontsize=8)
    return fig


def plot_leakage(accuracies: pd.Series, random_acc: float) -> Any:
    """Return a Figure: the test accuracy of each held-out speaker (bars, indexed by
    speaker), the random split's and chance as lines, in %, the legend below the axes."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(accuracies.index, accuracies, color="tab:orange",
           label="test sur un locuteur absent de l'apprentissage")
    ax.axhline(random_acc, color="tab:blue", linestyle="--",
               label="séparation aléatoire (locuteurs partagés)")
    ax.axhline(0.1, color="gray", linestyle=":", label=f"hasard ({fr_pct(0.1, 0)})")
    ax.set_ylim(0, 1)
    percent_axis(ax.yaxis)
    ax.set_ylabel("accuracy de test")
    ax.set_title("Même réseau, deux façons de séparer les données")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2,
              frameon=False)
    fig.tight_layout()
    return fig
