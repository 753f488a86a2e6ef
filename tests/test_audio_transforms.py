"""Spectrogram transforms of notebook 02: cepstral smoothing, duration normalization, deltas,
time shift, speaking-rate stretch, frequency warping."""

from __future__ import annotations

import pytest
import torch

from coursekit.audio import transforms as tf
from coursekit.audio.data import MelConfig, mel_frequencies


def test_cepstral_smoothing_keeps_the_envelope_only():
    torch.manual_seed(0)
    x = torch.randn(2, 40, 7)
    assert torch.allclose(tf.cepstral_smoothing(x, 40), x, atol=1e-4)
    smooth = tf.cepstral_smoothing(x, 5)
    assert smooth.shape == x.shape
    assert smooth.diff(dim=1).abs().mean() < 0.5 * x.diff(dim=1).abs().mean()
    assert torch.allclose(tf.cepstral_smoothing(smooth, 5), smooth, atol=1e-4)  # a projection
    with pytest.raises(ValueError, match="keep"):
        tf.cepstral_smoothing(x, 41)


def test_fill_time_stretches_each_word_over_the_clip():
    x = torch.arange(10.0).repeat(2, 3, 1)  # (2, 3, 10): frames 0..9
    out = tf.fill_time(x, torch.tensor([5, 10]))
    assert torch.allclose(out[1], x[1], atol=1e-5)  # already filling the clip
    assert torch.allclose(out[0, 0], torch.linspace(0, 4, 10), atol=1e-5)  # frames 0..4 spread


def test_with_deltas_adds_the_time_derivative():
    x = torch.tensor([[[0.0, 1.0, 4.0, 9.0]]])  # (1, 1, 4)
    out = tf.with_deltas(x)
    assert out.shape == (1, 2, 1, 4)
    assert torch.equal(out[0, 0], x[0]) and out[0, 1, 0].tolist() == [0.5, 2.0, 4.0, 2.5]


def test_time_shift_moves_frames_and_fills_with_silence():
    x = torch.arange(1.0, 11.0).repeat(8, 1, 3, 1)  # (8, 1, 3, 10), each row 1..10
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(tf.time_shift(x, 0, generator), x)
    shifted = tf.time_shift(x, 3, generator)
    assert shifted.shape == x.shape
    row = list(range(1, 11))
    expected = {s: ([1] * s + row[: 10 - s]) if s >= 0 else (row[-s:] + [1] * -s)
                for s in range(-3, 4)}  # fill value: the item's minimum (1)
    found = set()
    for item in shifted[:, 0]:
        assert (item == item[0]).all()  # every band moves together
        matches = [s for s, e in expected.items() if item[0].tolist() == e]
        assert len(matches) >= 1
        found.add(matches[0])
    assert len(found) > 1  # items get different shifts


def test_time_stretch_changes_the_speaking_rate():
    x = torch.arange(10.0).repeat(4, 1, 2, 1)  # (4, 1, 2, 10)
    generator = torch.Generator().manual_seed(0)
    assert torch.allclose(tf.time_stretch(x, 0.0, generator), x, atol=1e-5)
    out = tf.time_stretch(x, 0.3, generator)
    assert out.shape == x.shape and torch.allclose(out[..., 0], x[..., 0])  # same start
    steps = out[:, 0, 0, 1] - out[:, 0, 0, 0]  # 1/r frames of speech per output frame
    assert (steps != 1).all() and ((steps > 1 / 1.31) & (steps < 1 / 0.69)).all()
    assert (out <= 9 + 1e-5).all()  # beyond the end: the last frame repeated


def test_freq_warp_is_identity_at_factor_one_and_moves_peaks():
    mel = MelConfig(n_mels=40)
    centres = mel_frequencies(mel)
    generator = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 1, 40, 5)
    x[:, :, 20] = 1.0
    assert torch.allclose(tf.freq_warp(x, 0.0, centres, generator), x)
    warped = tf.freq_warp(x, 0.3, centres, generator)
    peaks = warped[:, 0, :, 0].argmax(1)
    assert warped.shape == x.shape and (peaks != 20).any()


def test_trim_silence_moves_the_word_to_frame_zero():
    x = torch.full((2, 3, 12), -80.0)
    x[0, :, 4:7] = 0.0  # a word on frames 4..6, silence around it
    x[0, 1, 8] = -50.0  # a quiet click: 50 dB under the word, cut at 30 dB
    x[1, :, 0:10] = -10.0  # a recording that is all word (10 real frames)
    x[1, :, 10:] = 5.0  # padding louder than the word: not read, it is not real audio
    out, lengths = tf.trim_silence(x, torch.tensor([12, 10]), below_db=30)
    assert lengths.tolist() == [3, 10]
    assert torch.equal(out[0, :, :3], torch.zeros(3, 3))
    assert (out[0, :, 3:] == -80.0).all()  # the rest is the recording's minimum
    assert torch.equal(out[1, :, :10], x[1, :, :10])
    kept, _ = tf.trim_silence(x, torch.tensor([12, 10]), below_db=40)
    assert torch.equal(kept, out)  # -50 is 50 dB under: still cut at 40 dB
    _, longer = tf.trim_silence(x, torch.tensor([12, 10]), below_db=60)
    assert longer.tolist() == [5, 10]  # at 60 dB the click counts as sound


def test_voiced_bounds_finds_the_word_inside_the_real_frames():
    x = torch.full((2, 3, 12), -80.0)
    x[0, :, 4:7] = 0.0  # a word on frames 4..6: 4 silent frames before it
    x[0, 1, 8] = -50.0  # a quiet click: 50 dB under the word
    x[1, :, 2:5] = -10.0  # a word on frames 2..4
    x[1, :, 8:] = 5.0  # padding louder than the word, past the 8 real frames: not read
    first, last = tf.voiced_bounds(x, torch.tensor([12, 8]), below_db=30)
    assert first.tolist() == [4, 2] and last.tolist() == [6, 4]
    first, last = tf.voiced_bounds(x, torch.tensor([12, 8]), below_db=60)
    assert first.tolist() == [4, 2] and last.tolist() == [8, 4]  # the click counts at 60 dB


def test_warp_frequencies_follows_each_items_factor():
    centres = mel_frequencies(MelConfig(n_mels=40))
    x = torch.zeros(3, 1, 40, 2)
    x[:, :, 20] = 1.0
    warped = tf.warp_frequencies(x, torch.tensor([1.0, 1.2, 0.8]), centres)
    assert torch.allclose(warped[0], x[0])
    peaks = warped[:, 0, :, 0].argmax(1).tolist()
    assert peaks[1] > 20 > peaks[2]  # a factor above 1 moves the formant up, below 1 down
    assert abs(centres[peaks[1]] - 1.2 * centres[20]) < abs(centres[peaks[1]] - centres[20])


def test_vtln_factors_undo_a_known_warp():
    centres = mel_frequencies(MelConfig(n_mels=40))
    bands = torch.arange(40.0)
    # a long-term spectrum with two formant-like peaks, level removed as mean_spectra does
    reference = torch.exp(-((bands - 12) / 2.5) ** 2) + torch.exp(-((bands - 24) / 3) ** 2)
    reference = reference - reference.mean()
    true = torch.tensor([0.9, 1.0, 1.1])
    spectra = tf.warp_frequencies(reference.expand(3, 1, 40)[..., None], true, centres)[:, 0, :, 0]
    found = tf.vtln_factors(spectra, reference, centres, max_warp=0.2, steps=41)
    assert torch.allclose(found * true, torch.ones(3), atol=0.03)  # found ≈ 1 / true
    with pytest.raises(ValueError, match="max_warp"):
        tf.vtln_factors(spectra, reference, centres, max_warp=0.0)


def test_mean_spectra_ignore_padding_and_level():
    x = torch.zeros(2, 4, 6)
    x[:, 1, :3] = 3.0
    x[:, :, 3:] = 50.0  # padding past the 3 real frames: not read
    x[1] += 10.0  # louder everywhere: the same spectrum
    spectra = tf.mean_spectra(x, torch.tensor([3, 3]))
    assert torch.allclose(spectra[0], torch.tensor([-0.75, 2.25, -0.75, -0.75]))
    assert torch.allclose(spectra[1, :], torch.tensor([-0.75, 2.25, -0.75, -0.75]))


def test_pick_copy_reads_each_item_at_one_of_its_versions():
    x = torch.arange(3.0)[None, :, None, None, None].repeat(64, 1, 1, 2, 5)  # version k = k
    x = x + 10 * torch.arange(64.0)[:, None, None, None, None]  # item b adds 10 b
    torch.manual_seed(0)
    out = tf.pick_copy(x)
    assert out.shape == (64, 1, 2, 5)
    version = out[:, 0, 0, 0] - 10 * torch.arange(64.0)
    assert set(version.tolist()) == {0.0, 1.0, 2.0}  # each version drawn, each item its own
    assert torch.equal(out, out[:, :, :1, :1].expand_as(out))  # one version per whole item
