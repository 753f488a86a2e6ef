"""Waveform perturbations of notebook 02: the recordings played faster or slower, higher, or
in noise.

Speed perturbation (Ko et al., 2015) resamples the waveform: a factor 1.1 makes the word
10 % shorter and moves every frequency, pitch and formants alike, 10 % up, as a shorter
vocal tract and a higher voice would. A pitch shift moves the harmonics only (a phase
vocoder, then a resampling), the formants stay. Noise adds white noise at a signal-to-noise
ratio measured on the recording's own power, so every voice, loud or soft, is masked alike
down to that level. All act on the sound before the STFT,
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

NOISE_SEED = 0  # one fixed noise per recording: a version is computed once, like the others


def perturb(waves: torch.Tensor, sample_rate: int, speed: float = 1.0,
            semitones: float = 0.0, snr_db: float | None = None) -> torch.Tensor:
    """Return waves (N, S) played `speed` times faster, shifted by `semitones`, then with
    white noise snr_db under each recording's power (None: none), (N, S) (cut or padded
    with silence at the end back to S samples)."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0 (1 = unchanged), got {speed}")
    n_samples = waves.shape[-1]
    if speed != 1.0:
        waves, _ = torchaudio.transforms.Speed(sample_rate, speed)(waves)
    if semitones != 0.0:
        waves = torchaudio.functional.pitch_shift(waves, sample_rate, semitones)
    waves = fit_length(waves, n_samples, "start")
    if snr_db is None:
        return waves
    generator = torch.Generator().manual_seed(NOISE_SEED)
    noise = torch.randn(waves.shape, generator=generator)
    # the power of the recording up to its last sample, not of the padding's silence after
    lengths = n_samples - (waves.flip(-1) != 0).int().argmax(-1)
    snr = torch.full(lengths.shape, float(snr_db))
    return torchaudio.functional.add_noise(waves, noise, snr, lengths)


def perturbed_logmel(table: pd.DataFrame, mel: MelConfig, speed: float = 1.0,
                     semitones: float = 0.0, snr_db: float | None = None) -> torch.Tensor:
    """Return the log-mels float32 (N, n_mels, frames) of the recordings of `table`
    perturbed by `perturb` (a recording of d seconds then lasts d / speed)."""
    waves = load_waveforms(table, mel.sample_rate, mel.n_samples, mel.align)
    return logmel(perturb(waves, mel.sample_rate, speed, semitones, snr_db), mel)
