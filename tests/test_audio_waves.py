"""Waveform perturbations of notebook 02: speed perturbation and pitch shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coursekit.audio import waves
from coursekit.audio.data import load_waveforms, logmel

RATE = 8000
WORD = torch.tensor([RATE // 2])  # the samples of tone()'s word: 0.5 s


def tone(hz: float, seconds: float = 0.5, total: int = RATE) -> torch.Tensor:
    """A sine of `seconds` then silence, (1, total) samples."""
    t = torch.arange(int(seconds * RATE)) / RATE
    return torch.nn.functional.pad(torch.sin(2 * np.pi * hz * t), (0, total - len(t)))[None]


def peak_hz(wave: torch.Tensor) -> float:
    """The frequency of the strongest bin of the spectrum of wave (1, S)."""
    spectrum = torch.fft.rfft(wave[0]).abs()
    return float(spectrum.argmax()) * RATE / wave.shape[-1]


def sounding(wave: torch.Tensor) -> int:
    """How many samples of wave (1, S) are not silence."""
    return int((wave[0].abs() > 1e-3).nonzero().max()) + 1


def test_speed_moves_every_frequency_and_shortens_the_word():
    x = tone(500)
    faster = waves.perturb(x, WORD, RATE, speed=1.25)
    assert faster.shape == x.shape
    assert peak_hz(faster) == pytest.approx(625, abs=5)
    assert sounding(faster) == pytest.approx(sounding(x) / 1.25, abs=20)
    slower = waves.perturb(x, WORD, RATE, speed=0.8)
    assert peak_hz(slower) == pytest.approx(400, abs=5) and slower.shape == x.shape


def test_pitch_shift_keeps_the_duration():
    x = tone(500)
    higher = waves.perturb(x, WORD, RATE, semitones=12)  # an octave
    assert peak_hz(higher) == pytest.approx(1000, abs=10)
    # not halved as a speed of 2 would; the phase vocoder smears the end over its window
    assert sounding(higher) == pytest.approx(sounding(x), abs=512)
    assert torch.equal(waves.perturb(x, WORD, RATE), x)
    with pytest.raises(ValueError, match="speed"):
        waves.perturb(x, WORD, RATE, speed=0)


def test_noise_covers_the_word_as_perturbed_and_not_the_padding():
    x = tone(500)
    noise = waves.perturb(x, WORD, RATE, speed=1.25, snr_db=10) - waves.perturb(x, WORD, RATE,
                                                                                speed=1.25)
    assert (noise[0, :3200] != 0).all() and (noise[0, 3200:] == 0).all()  # 4000 / 1.25


def test_perturbed_logmel_of_the_fixture(audio_data, tmp_path):
    mel = audio_data.mel
    table = audio_data.table.iloc[:8]
    plain = waves.perturbed_logmel(table, mel, use_cache=False)
    assert torch.allclose(plain, audio_data.x[:8], atol=0.05)  # the cache keeps float16
    faster = waves.perturbed_logmel(table, mel, speed=1.2, cache_dir=tmp_path)
    # computed once, then read back; each perturbation has its own file
    assert len(list(tmp_path.glob("logmel-*.pt"))) == 1
    assert torch.equal(waves.perturbed_logmel(table, mel, speed=1.2, cache_dir=tmp_path), faster)
    waves.perturbed_logmel(table, mel, speed=0.9, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("logmel-*.pt"))) == 2
    assert faster.shape == plain.shape == (8, mel.n_mels, mel.n_frames)

    def voiced(x: torch.Tensor) -> torch.Tensor:  # frames within 30 dB of the loudest
        loudness = x.amax(dim=1)
        return (loudness > loudness.amax(dim=1, keepdim=True) - 30).sum(dim=1).float()

    ratio = voiced(faster) / voiced(plain)
    assert ratio.mean() == pytest.approx(1 / 1.2, abs=0.05)  # every word 20 % faster


def test_noisy_recordings_have_the_asked_snr(audio_data):
    table, mel = audio_data.table.iloc[:8], audio_data.mel
    clips = load_waveforms(table, mel.sample_rate, mel.n_samples, mel.align)
    lengths = torch.as_tensor(
        np.minimum(np.round(table["duration"].to_numpy() * mel.sample_rate), mel.n_samples)
    ).long()
    assert (lengths < mel.n_samples).any()  # some recordings are padded
    for snr_db in (-5.0, 20.0):
        noise = waves.add_noise(clips, lengths, snr_db) - clips
        for wave, extra, n in zip(clips, noise, lengths.tolist(), strict=True):
            measured = 10 * np.log10(wave[:n].pow(2).mean() / extra[:n].pow(2).mean())
            assert measured == pytest.approx(snr_db, abs=0.3)
            assert (extra[n:] == 0).all()  # the padding stays silent
    # The features the notebook uses are those of exactly these noisy waves.
    noisy = waves.perturbed_logmel(table, mel, snr_db=-5.0, use_cache=False)
    assert torch.equal(noisy, logmel(waves.add_noise(clips, lengths, -5.0), mel).half().float())
    clean = logmel(clips, mel)
    mild = waves.perturbed_logmel(table, mel, snr_db=20, use_cache=False)
    assert (mild - clean).abs().mean() < (noisy - clean).abs().mean()
