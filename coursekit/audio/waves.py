"""Waveform perturbations of notebook 02: the recordings played faster or slower, or higher.

Speed perturbation (Ko et al., 2015) resamples the waveform: a factor 1.1 makes the word
10 % shorter and moves every frequency, pitch and formants alike, 10 % up, as a shorter
vocal tract and a higher voice would. A pitch shift moves the harmonics only (a phase
vocoder, then a resampling), the formants stay. Both act on the sound before the STFT,
where the spectrogram transforms of `coursekit.audio.transforms` (time stretch, VTLP)
interpolate the log-mel image instead. Each perturbation is computed once for every
recording (`perturbed_logmel`); training draws one of them per recording and batch
(`coursekit.audio.transforms.pick_copy`).
"""

from __future__ import annotations

import pandas as pd
import torch
import torchaudio

from coursekit.audio.data import MelConfig, fit_length, load_waveforms, logmel


def perturb(waves: torch.Tensor, sample_rate: int, speed: float = 1.0,
            semitones: float = 0.0) -> torch.Tensor:
    """Return waves (N, S) played `speed` times faster, then shifted by `semitones`, (N, S)
    (cut or padded with silence at the end back to S samples)."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0 (1 = unchanged), got {speed}")
    n_samples = waves.shape[-1]
    if speed != 1.0:
        waves, _ = torchaudio.transforms.Speed(sample_rate, speed)(waves)
    if semitones != 0.0:
        waves = torchaudio.functional.pitch_shift(waves, sample_rate, semitones)
    return fit_length(waves, n_samples, "start")


def perturbed_logmel(table: pd.DataFrame, mel: MelConfig, speed: float = 1.0,
                     semitones: float = 0.0) -> torch.Tensor:
    """Return the log-mels float32 (N, n_mels, frames) of the recordings of `table`
    perturbed by `perturb` (a recording of d seconds then lasts d / speed)."""
    waves = load_waveforms(table, mel.sample_rate, mel.n_samples, mel.align)
    return logmel(perturb(waves, mel.sample_rate, speed, semitones), mel)
