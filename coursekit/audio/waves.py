"""Waveform perturbations of notebook 02: the recordings played faster or slower, higher, or
in noise.

Speed perturbation (Ko et al., 2015) resamples the waveform: a factor 1.1 makes the word
10 % shorter and moves every frequency, pitch and formants alike, 10 % up, as a shorter
vocal tract and a higher voice would. A pitch shift moves the harmonics only (a phase
vocoder, then a resampling), the formants stay. Noise adds white noise at a signal-to-noise
ratio measured on the recording's own power (its samples only: the padding stays silent),
so every voice, loud or soft, is masked alike down to that level; notebook 02's fusion also
tests its networks on such noisy recordings. All act on the sound before the STFT,
where the spectrogram transforms of `coursekit.audio.transforms` (time stretch, VTLP)
interpolate the log-mel image instead. Each perturbation is computed once for every
recording (`perturbed_logmel`); training draws one of them per recording and batch
(`coursekit.audio.transforms.pick_copy`).
"""

from __future__ import annotations

import os

import pandas as pd
import torch
import torchaudio

from coursekit.audio.data import MelConfig, fit_length, logmel_features, sample_lengths


def add_noise(waves: torch.Tensor, lengths: torch.Tensor, snr_db: float, seed: int = 0
              ) -> torch.Tensor:
    """Return waves (N, L) plus white noise over each one's first lengths[i] samples (the
    padding stays silent), scaled so that signal power / noise power is `snr_db` dB."""
    mask = torch.arange(waves.shape[1])[None, :] < lengths[:, None]
    power = (waves**2 * mask).sum(1) / mask.sum(1)
    generator = torch.Generator().manual_seed(seed)
    scale = (power * 10 ** (-snr_db / 10)).sqrt()[:, None]
    noise = torch.randn(waves.shape, generator=generator) * scale
    return waves + noise * mask


def perturb(waves: torch.Tensor, lengths: torch.Tensor, sample_rate: int, speed: float = 1.0,
            semitones: float = 0.0, snr_db: float | None = None, seed: int = 0
            ) -> torch.Tensor:
    """Return waves (N, S) whose first lengths[i] samples hold the recording, played `speed`
    times faster, shifted by `semitones`, then with white noise snr_db under their power
    (None: none; `add_noise`, drawn from `seed`), (N, S) (cut or padded with silence at the
    end back to S samples)."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0 (1 = unchanged), got {speed}")
    n_samples = waves.shape[-1]
    if speed != 1.0:
        waves, lengths = torchaudio.transforms.Speed(sample_rate, speed)(waves, lengths)
    if semitones != 0.0:
        waves = torchaudio.functional.pitch_shift(waves, sample_rate, semitones)
    waves = fit_length(waves, n_samples, "start")
    if snr_db is None:
        return waves
    return add_noise(waves, lengths.clamp(max=n_samples), snr_db, seed)


def perturbed_logmel(table: pd.DataFrame, mel: MelConfig, speed: float = 1.0,
                     semitones: float = 0.0, snr_db: float | None = None, seed: int = 0,
                     cache_dir: str | os.PathLike | None = None, use_cache: bool = True
                     ) -> torch.Tensor:
    """Return the log-mels float32 (N, n_mels, frames) of the recordings of `table`
    perturbed by `perturb` (a recording of d seconds then lasts d / speed), cached as
    `logmel_features` caches the plain ones (a pitch shift of 2,000 recordings takes a
    minute or more: a second run reads it back)."""
    lengths = sample_lengths(table, mel)

    def change(waves: torch.Tensor) -> torch.Tensor:
        return perturb(waves, lengths, mel.sample_rate, speed, semitones, snr_db, seed)

    variant = f"speed={speed!r}|semitones={semitones!r}|snr_db={snr_db!r}|seed={seed!r}"
    return logmel_features(table, mel, cache_dir=cache_dir, use_cache=use_cache,
                           perturb=change, variant=variant)
