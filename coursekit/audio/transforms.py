"""Spectrogram transforms of notebook 02: per-recording normalization, cepstral smoothing,
duration normalization, deltas, vocal tract length normalization, and the training
augmentations (time shift, speaking-rate stretch, vocal tract length perturbation).

Every function takes log-mel spectrograms as tensors, (N, F, T) or batches (B, C, F, T),
and returns a tensor of the same layout; the random ones draw from the generator given
(None: torch's global one).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

# --- per-recording transforms (every set) ------------------------------------------------


def frame_mask(lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Return a bool mask (N, 1, n_frames): True on each recording's first `lengths` frames."""
    return (torch.arange(n_frames)[None, :] < lengths[:, None])[:, None, :]


def voiced_bounds(
    x: torch.Tensor, lengths: torch.Tensor, below_db: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (first, last) int64 (N,): each recording's first and last non-silent frame.

    x: log-mel (N, F, T) in dB; a frame is silent when its loudest band is more than
    `below_db` under the recording's loudest frame; frames past `lengths` are ignored.
    first * hop_length / sample_rate is the silence before the word, in seconds.
    """
    t = x.shape[2]
    mask = frame_mask(lengths, t)[:, 0]  # (N, T)
    loudness = x.amax(dim=1).masked_fill(~mask, float("-inf"))  # (N, T)
    voiced = loudness >= loudness.amax(dim=1, keepdim=True) - below_db
    frames = torch.arange(t)
    first = torch.where(voiced, frames, t).amin(dim=1)
    last = torch.where(voiced, frames, -1).amax(dim=1)
    return first, last


def trim_silence(
    x: torch.Tensor, lengths: torch.Tensor, below_db: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x (N, F, T) with each recording's leading and trailing silence cut, the word
    moved to frame 0 and the rest filled with the recording's minimum, new lengths (N,)).

    A frame is silent when its loudest band is more than `below_db` under the recording's
    loudest frame (`voiced_bounds`). Why: speakers may leave different pauses before the word
    (notebook 02 prints them, measured by `voiced_bounds`), which a network reading absolute
    time positions would learn as a speaker trait.
    """
    t = x.shape[2]
    frames = torch.arange(t)
    first, last = voiced_bounds(x, lengths, below_db)
    new_lengths = last - first + 1
    source = (frames[None, :] + first[:, None]).clamp(max=t - 1)  # (N, T) frame read
    moved = x.gather(2, source[:, None, :].expand_as(x))
    floor = x.amin(dim=(1, 2), keepdim=True)
    return torch.where(frame_mask(new_lengths, t), moved, floor), new_lengths


def utterance_normalize(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Return x (N, F, T) with each recording's mean over its real frames removed per mel
    band and divided by its std over them; the padded frames get the recording's minimum.

    Statistics over the real frames only: a short word padded with silence would otherwise
    keep part of its microphone's coloration (the padding weighs in every band's mean).
    """
    mask = frame_mask(lengths, x.shape[2])
    count = mask.sum(dim=2, keepdim=True).clamp_min(1)
    x = x - (x * mask).sum(dim=2, keepdim=True) / count
    std = ((x * mask) ** 2).sum(dim=(1, 2), keepdim=True) / (count * x.shape[1])
    x = x / std.sqrt().clamp_min(1e-5)
    floor = x.masked_fill(~mask, float("inf")).amin(dim=(1, 2), keepdim=True)
    return torch.where(mask, x, floor)


def cepstral_smoothing(x: torch.Tensor, keep: int) -> torch.Tensor:
    """Return log-mel spectrograms x (N, F, T) rebuilt from their first `keep` cepstral
    coefficients (orthonormal DCT along F): the spectral envelope without its fine detail."""
    n_mels = x.shape[1]
    if not 0 < keep <= n_mels:
        raise ValueError(f"keep must be in 1..{n_mels}, got {keep}")
    dct = torchaudio.functional.create_dct(keep, n_mels, norm="ortho")  # (F, keep)
    return torch.einsum("fk,gk,ngt->nft", dct, dct, x)


def fill_time(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Return x (N, F, T) with each item's first `lengths` frames resampled (linearly) over
    all T frames: the word fills the clip whatever its duration."""
    n, _, t = x.shape
    theta = torch.zeros(n, 2, 3)
    scale = (lengths.clamp(2, t).float() - 1) / (t - 1)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1] = scale, scale - 1, 1.0
    grid = F.affine_grid(theta, [n, 1, *x.shape[1:]], align_corners=True)
    return F.grid_sample(x[:, None], grid, align_corners=True)[:, 0]


def with_deltas(x: torch.Tensor) -> torch.Tensor:
    """Return (N, 2, F, T): x (N, F, T) and its time derivative (centred difference)."""
    padded = F.pad(x, (1, 1), mode="replicate")
    return torch.stack([x, (padded[..., 2:] - padded[..., :-2]) / 2], dim=1)


# --- augmentation (training batches only) ------------------------------------------------


def pick_copy(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return one of the K versions of each item of x (B, K, C, F, T), drawn uniformly,
    as (B, C, F, T): a recording heard at one of its perturbations (`coursekit.audio.waves`)."""
    choice = torch.randint(x.shape[1], (x.shape[0],), generator=generator)
    return x[torch.arange(x.shape[0]), choice]


def time_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
               ) -> torch.Tensor:
    """Return x (B, C, F, T) with each item shifted in time by an integer in
    [-max_shift, max_shift]; the frames uncovered take the item's minimum (silence)."""
    b, _, _, t = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (b,), generator=generator)
    source = torch.arange(t)[None, :] - shifts[:, None]  # (B, T) frame read for each frame
    valid = (source >= 0) & (source < t)
    index = source.clamp(0, t - 1)[:, None, None, :].expand_as(x)
    floor = x.amin(dim=(1, 2, 3), keepdim=True)
    return torch.where(valid[:, None, None, :], x.gather(3, index), floor)


def time_stretch(x: torch.Tensor, max_stretch: float, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Return x (B, C, F, T) with each item's time axis stretched by a random factor
    r in [1 - max_stretch, 1 + max_stretch] from its first frame (r > 1: slower speech);
    frames past the end repeat the last one (the padding silence)."""
    b, _, f, t = x.shape
    rate = 1 + (torch.rand(b, generator=generator) * 2 - 1) * max_stretch
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1 / rate  # read position = (output position + 1) / r - 1
    theta[:, 0, 2] = 1 / rate - 1
    theta[:, 1, 1] = 1.0
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def freq_warp(
    x: torch.Tensor, max_warp: float, centres: np.ndarray,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return x (B, C, F, T) with each item's frequency axis scaled by a random factor
    a in [1 - max_warp, 1 + max_warp]: band j takes the (interpolated) value found at
    frequency centres[j] / a, so a > 1 moves formants up (a shorter vocal tract)."""
    alpha = 1 + (torch.rand(x.shape[0], generator=generator) * 2 - 1) * max_warp
    return warp_frequencies(x, alpha, centres)


def warp_frequencies(x: torch.Tensor, alpha: torch.Tensor, centres: np.ndarray) -> torch.Tensor:
    """Return x (B, C, F, T) with item i's frequency axis scaled by alpha[i] (B,): band j
    takes the value found at frequency centres[j] / alpha[i], linearly interpolated between
    band centres (the edge bands repeat past the ends)."""
    f = x.shape[2]
    centres_t = torch.as_tensor(centres, dtype=torch.float32)
    wanted = centres_t[None, :] / alpha[:, None].float()  # (B, F) Hz to read for each band
    # Fractional band position of those frequencies (linear between band centres).
    pos = torch.from_numpy(np.interp(wanted.numpy(), centres, np.arange(f))).float()
    low = pos.floor().long().clamp(0, f - 1)
    high = (low + 1).clamp(max=f - 1)
    frac = (pos - low)[:, None, :, None]
    gather = lambda i: x.gather(2, i[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3]))  # noqa: E731
    return gather(low) * (1 - frac) + gather(high) * frac


# --- vocal tract length normalization (every set) ----------------------------------------


def mean_spectra(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Return each recording's long-term spectrum (N, F): its log-mel x (N, F, T) averaged
    over its real frames, minus its mean over the bands (the level does not count)."""
    mask = frame_mask(lengths, x.shape[2])
    spectra = (x * mask).sum(dim=2) / mask.sum(dim=2).clamp_min(1)
    return spectra - spectra.mean(dim=1, keepdim=True)


def vtln_factors(
    spectra: torch.Tensor, reference: torch.Tensor, centres: np.ndarray, max_warp: float,
    steps: int = 21,
) -> torch.Tensor:
    """Return the warp factor (N,) in [1 - max_warp, 1 + max_warp] (`steps` values) that brings
    each long-term spectrum (N, F) closest to `reference` (F,) (mean squared difference).

    Vocal tract length normalization per recording: a shorter vocal tract puts every
    formant higher; the factor found undoes it (`warp_frequencies`), from the recording
    alone, so it applies to a voice never heard as to a training one.
    """
    if not 0 < max_warp < 0.5:
        raise ValueError(f"max_warp must be in (0, 0.5), got {max_warp}")
    grid = torch.linspace(1 - max_warp, 1 + max_warp, steps)
    n = len(spectra)
    errors = torch.stack([
        ((warp_frequencies(spectra[:, None, :, None], torch.full((n,), float(a)), centres)
          [:, 0, :, 0] - reference) ** 2).mean(dim=1)
        for a in grid
    ], dim=1)  # fmt: skip
    return grid[errors.argmin(dim=1)]
