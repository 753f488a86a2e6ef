"""The Free Spoken Digit Dataset look-alike of notebook 02: PCM16 WAVs of synthetic voices.

Written in FSDD's layout (`<root>/fsdd/recordings/{digit}_{speaker}_{index}.wav`, 8 kHz mono)
so that `coursekit.audio.data` reads them as it reads the real recordings.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from coursekit.audio.formats import FSDD_FOLDER, FSDD_RECORDINGS
from coursekit.checkpoint import atomic_dir
from coursekit.data.fixtures import claim_fixture_root, write_marker

# --- spoken digits (FSDD layout) ---------------------------------------------------------

# Each digit is a short sequence of segments: ("v", share of the word, (F1, F2) at start,
# (F1, F2) at end) for a voiced part whose formants glide, ("n", share, centre Hz, width Hz)
# for a noise part (fricative or burst), ("s", share) for a closure. Loosely modelled on the
# English words, so the classes differ by formant tracks, noise bursts and their order.
DIGIT_SOUNDS: tuple[tuple[tuple, ...], ...] = (
    (("n", 0.25, 3300, 900), ("v", 0.75, (450, 1900), (500, 1000))),  # zero
    (("v", 0.7, (300, 800), (650, 1200)), ("v", 0.3, (250, 1500), (250, 1500))),  # one
    (("n", 0.12, 3000, 1400), ("v", 0.88, (320, 1100), (300, 900))),  # two
    (("n", 0.2, 2600, 2000), ("v", 0.8, (400, 1500), (300, 2300))),  # three
    (("n", 0.22, 2200, 2400), ("v", 0.78, (550, 850), (500, 1100))),  # four
    (("n", 0.18, 2200, 2400), ("v", 0.7, (750, 1200), (400, 2100)), ("n", 0.12, 1500, 800)),
    (("n", 0.3, 3500, 700), ("v", 0.3, (400, 1900), (400, 1900)), ("s", 0.1),
     ("n", 0.3, 3500, 700)),  # six
    (("n", 0.25, 3500, 700), ("v", 0.4, (550, 1800), (550, 1700)),
     ("v", 0.35, (300, 1500), (280, 1400))),  # seven
    (("v", 0.75, (550, 1900), (350, 2300)), ("s", 0.1), ("n", 0.15, 3000, 1400)),  # eight
    (("v", 0.25, (260, 1400), (260, 1400)), ("v", 0.5, (750, 1200), (400, 2100)),
     ("v", 0.25, (260, 1400), (260, 1400))),  # nine
)  # fmt: skip
# Fixture speakers: pitch (Hz), formant scale (vocal tract length), speaking rate, tilt.
AUDIO_SPEAKERS = {
    "alba": (205.0, 1.12, 1.10, 0.8),
    "bruno": (110.0, 0.92, 0.95, 1.2),
    "chloe": (235.0, 1.18, 0.90, 0.7),
    "dmitri": (125.0, 0.96, 1.05, 1.0),
}
AUDIO_FIXTURE_RATE = 8000
AUDIO_FIXTURE_INDICES = 4
_FORMANT_GAINS = np.array([1.0, 0.5, 0.25])
_FORMANT_WIDTHS = np.array([90.0, 120.0, 170.0])
_FRAME, _HOP = 256, 64  # STFT used to shape the voice source (32 ms, 8 ms at 8 kHz)


def _voiced(n: int, f0: np.ndarray, formants: np.ndarray, tilt: float, sr: int) -> np.ndarray:
    """Return n samples of voice: a sawtooth at pitch f0 (n,) whose short-time spectrum is
    shaped by three formant peaks at `formants` (n, 3) Hz and a spectral tilt.

    Hann frames at 75 % overlap: the squared windows add up to 1.5 everywhere, so the
    overlap-add of the filtered frames divided by 1.5 rebuilds the signal.
    """
    source = np.pad(np.mod(np.cumsum(f0) / sr, 1.0) - 0.5, _FRAME)
    starts = np.arange(0, len(source) - _FRAME + 1, _HOP)
    window = np.hanning(_FRAME + 1)[:-1]  # periodic Hann
    frames = np.fft.rfft(source[starts[:, None] + np.arange(_FRAME)] * window)  # (T, bins)
    freqs = np.fft.rfftfreq(_FRAME, 1 / sr)
    at = np.clip(starts + _FRAME // 2 - _FRAME, 0, n - 1)  # frame centre, unpadded
    dist = (freqs[None, :, None] - formants[at][:, None, :]) / _FORMANT_WIDTHS  # (T, bins, 3)
    envelope = (_FORMANT_GAINS / (1 + dist**2)).sum(-1) / (1 + freqs / 500) ** tilt
    shaped = np.fft.irfft(frames * envelope, _FRAME) * window
    out = np.zeros(len(starts) * _HOP + _FRAME)
    step = _FRAME // _HOP
    for j in range(step):  # frames j, j + step, ... do not overlap: add them as one block
        block = shaped[j::step].reshape(-1)
        out[j * _HOP : j * _HOP + len(block)] += block
    return out[_FRAME : _FRAME + n] / 1.5


def _noise(n: int, centre: float, width: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Return n samples of white noise band-passed around `centre` (Gaussian band of `width`)."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1 / sr)
    return np.fft.irfft(spectrum * np.exp(-0.5 * ((f - centre) / (width / 2)) ** 2), n)


def _ramp(x: np.ndarray, sr: int, ms: float = 8.0) -> np.ndarray:
    """Return x with raised-cosine fades in and out, so that segments join without clicks."""
    m = min(int(sr * ms / 1000), len(x) // 2)
    if m > 0:
        fade = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, m))
        x[:m] *= fade
        x[-m:] *= fade[::-1]
    return x


def synth_digit(
    digit: int, speaker: tuple[float, float, float, float], rng: np.random.Generator,
    sr: int = AUDIO_FIXTURE_RATE,
) -> np.ndarray:
    """Return one synthetic utterance of `digit` as float32 (n,) in [-1, 1] at `sr` Hz.

    speaker: (pitch Hz, formant scale, speaking rate, spectral tilt); each utterance also
    varies its length, pitch contour, formants, loudness and leading silence.
    """
    f0_base, scale, rate, tilt = speaker
    length = rng.uniform(0.33, 0.5) / rate
    f0_base *= rng.uniform(0.92, 1.08)
    scale *= rng.uniform(0.96, 1.04)
    parts = [np.zeros(int(sr * rng.uniform(0.0, 0.05)))]
    for seg in DIGIT_SOUNDS[digit]:
        n = max(int(sr * length * seg[1] * rng.uniform(0.85, 1.15)), 16)
        if seg[0] == "v":
            glide = np.linspace(0, 1, n)[:, None]
            f12 = (np.array(seg[2]) * (1 - glide) + np.array(seg[3]) * glide) * scale
            formants = np.hstack([f12, np.full((n, 1), 2600.0 * scale)])
            f0 = f0_base * np.linspace(1.05, 0.9, n)  # falling intonation
            part = _voiced(n, f0, formants, tilt, sr)
        elif seg[0] == "n":
            part = 0.4 * _noise(n, seg[2] * scale, seg[3], sr, rng) / 0.05
        else:
            part = np.zeros(n)
        parts.append(_ramp(part / (np.abs(part).max() + 1e-9) * rng.uniform(0.6, 1.0), sr))
    wave = np.concatenate(parts)
    wave = wave / np.abs(wave).max() * rng.uniform(0.3, 0.8)
    wave += rng.normal(0, 0.003, size=wave.shape)  # room noise
    return np.clip(wave, -1, 1).astype(np.float32)


def audio_fixture_names(indices: int = AUDIO_FIXTURE_INDICES) -> list[str]:
    """Return the file names the audio fixture writes, '{digit}_{speaker}_{index}.wav'."""
    return [
        f"{d}_{s}_{i}.wav" for s in AUDIO_SPEAKERS for d in range(10) for i in range(indices)
    ]


def write_fsdd_fixture(
    root: Path, indices: int = AUDIO_FIXTURE_INDICES, seed: int = 0
) -> Path:
    """Write `<root>/fsdd/recordings/{digit}_{speaker}_{index}.wav`; return that folder.

    Mono PCM16 WAVs at 8 kHz like FSDD: 4 speakers (AUDIO_SPEAKERS) x 10 digits x `indices`
    utterances, synthesized by `synth_digit` (per-digit formant tracks and noise bursts,
    per-speaker pitch, vocal-tract scale, rate and tilt). The files are written into a
    temporary folder renamed into place at the end: one rename instead of one fsync per file,
    and a crash never leaves a half-written recordings folder.
    """
    import soundfile as sf  # here: the image fixtures do not need libsndfile

    folder = Path(root) / FSDD_FOLDER / FSDD_RECORDINGS
    folder.parent.mkdir(parents=True, exist_ok=True)
    write_marker(root)
    with atomic_dir(folder) as tmp:
        for s_i, (name, voice) in enumerate(AUDIO_SPEAKERS.items()):
            for digit in range(10):
                for index in range(indices):
                    rng = np.random.default_rng([seed, 3, s_i, digit, index])
                    wave = synth_digit(digit, voice, rng)
                    # Through memory: libsndfile fsyncs every file it closes, 200 times too slow.
                    buffer = io.BytesIO()
                    sf.write(buffer, wave, AUDIO_FIXTURE_RATE, subtype="PCM_16", format="WAV")
                    (tmp / f"{digit}_{name}_{index}.wav").write_bytes(buffer.getvalue())
    return folder


def fsdd_complete(root: Path) -> bool:
    """Return True if every audio fixture WAV exists under root."""
    folder = root / FSDD_FOLDER / FSDD_RECORDINGS
    return all((folder / name).is_file() for name in audio_fixture_names())


def ensure_fsdd_fixture(root: Path | None = None) -> Path:
    """Return the fixture root (default: settings.fixture_root()) with its FSDD fixture complete."""
    root = claim_fixture_root(root)
    if not fsdd_complete(root):
        write_fsdd_fixture(root)
    return root
