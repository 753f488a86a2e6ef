"""Spoken digits: the Free Spoken Digit Dataset and AudioMNIST read from their WAV files.

Two layouts, told apart by their folders (`find_recordings`):
- FSDD (the course's "AudioMNIST.zip"): `recordings/{digit}_{speaker}_{index}.wav`, mono
  PCM16 at 8 kHz, speakers named (george, jackson...);
- AudioMNIST (Becker et al.): `data/{NN}/{digit}_{NN}_{rep}.wav` at 48 kHz, speakers 01-60.

`audio_table` lists the files as a pandas table (path, digit, speaker, index, sample rate,
duration), read from the names and the WAV headers only. `load_waveforms` reads them with
soundfile (a truncated or damaged file is a `DatasetFormatError` naming it), resamples with
torchaudio to one rate and pads or trims to one length. `logmel_features` computes the
log-mel spectrograms of a whole table once, in batches, and caches them atomically among
the notebook's artifacts (`settings.artifact_path`), never beside the recordings: that
folder may be read-only or shared. `coursekit.audio.download` fetches the FSDD release
archive.

Where the data comes from: an explicit `root` (a data root, a dataset folder or the
recordings folder itself), else in smoke mode the coursekit fixtures, else
`settings.data_root()`; missing data is a `DatasetMissingError` that says how to get it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
import torchaudio

from coursekit import settings
from coursekit.audio.fixtures import ensure_fsdd_fixture
from coursekit.audio.formats import (
    AUDIO_NAME_PATTERN,
    AUDIOMNIST_DATA,
    AUDIOMNIST_FOLDER,
    FSDD_FOLDER,
    FSDD_RECORDINGS,
    FSDD_URL,
    NOTEBOOK,
)
from coursekit.checkpoint import atomic_write
from coursekit.data.errors import DatasetFormatError, DatasetMissingError
from coursekit.data.formats import is_fixture_root
from coursekit.data.roots import resolve_root

NAME = re.compile(AUDIO_NAME_PATTERN)
SPEAKER_FOLDER = re.compile(r"^\d\d$")
CACHE_VERSION = 1
TABLE_COLUMNS = (
    "path", "file", "digit", "speaker", "index", "layout", "sample_rate", "frames", "duration",
)  # fmt: skip


# --- where the files are -----------------------------------------------------------------


def parse_name(name: str) -> tuple[int, str, int]:
    """Return (digit, speaker, index) of a file named '{digit}_{speaker}_{index}.wav'."""
    match = NAME.match(name)
    if match is None:
        raise DatasetFormatError(
            f"{name!r} is not named '{{digit}}_{{speaker}}_{{index}}.wav' (e.g. '7_jackson_32.wav'"
            " in FSDD, '7_01_32.wav' in AudioMNIST); rename or remove it."
        )
    return int(match["digit"]), match["speaker"], int(match["index"])


def _has_wavs(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix == ".wav" for p in folder.iterdir())


def _is_audiomnist(folder: Path) -> bool:
    """Return True if `folder` holds speaker folders NN/ with WAV files (AudioMNIST's data/)."""
    if not folder.is_dir():
        return False
    speakers = [p for p in folder.iterdir() if p.is_dir() and SPEAKER_FOLDER.match(p.name)]
    return any(_has_wavs(p) for p in speakers)


def _candidates(path: Path) -> Iterator[Path]:
    """Yield the folders where recordings may be, from the most specific to the least."""
    yield path
    yield path / FSDD_RECORDINGS
    yield path / AUDIOMNIST_DATA
    yield path / FSDD_FOLDER / FSDD_RECORDINGS
    yield path / AUDIOMNIST_FOLDER / AUDIOMNIST_DATA


def find_recordings(root: str | os.PathLike | None = None) -> tuple[str, Path]:
    """Return (layout, folder): 'fsdd' and the folder of the WAVs, or 'audiomnist' and the
    folder of the NN/ speaker folders, found at or under `root` (see the module doc)."""
    base = resolve_root(root, fixtures=ensure_fsdd_fixture)
    for folder in _candidates(base):
        if _is_audiomnist(folder):
            return "audiomnist", folder
        if _has_wavs(folder):
            return "fsdd", folder
    raise DatasetMissingError(missing_message(base))


def missing_message(base: Path) -> str:
    """Return where spoken-digit recordings were looked for, and how to get them."""
    if is_fixture_root(base):
        return (
            f"no audio fixture under {base}; rewrite the fixtures with\n"
            "  python -c \"from coursekit.audio.fixtures import ensure_fsdd_fixture; "
            f'ensure_fsdd_fixture({str(base)!r})"'
        )
    return "\n".join([
        f"No spoken-digit recordings found at or under {base}: looked for WAV files in",
        *(f"  {p}/" for p in _candidates(base)),
        "To get them, either:",
        "  - download the Free Spoken Digit Dataset (the course's AudioMNIST, 3,000 files):",
        "      python -c \"from coursekit.audio.download import download_fsdd; "
        "download_fsdd()\"",
        f"    (fetches {FSDD_URL}, checks its SHA-256 and",
        f"    extracts the WAVs into {settings.data_root() / FSDD_FOLDER / FSDD_RECORDINGS}/);",
        "  - or unzip the course's AudioMNIST.zip and pass root=<folder holding recordings/>;",
        "  - or clone https://github.com/soerenab/AudioMNIST and pass root=<its folder>",
        "    (the data/NN/ layout is recognised);",
        "  - or set COURSEKIT_DATA to a folder holding fsdd/recordings/ or AudioMNIST/data/;",
        "  - or run on coursekit's small synthetic fixtures instead: COURSEKIT_SMOKE=1.",
    ])  # fmt: skip


def _wav_files(layout: str, folder: Path) -> list[Path]:
    """Return the WAV files of a layout's folder, sorted by name."""
    if layout == "fsdd":
        return sorted(p for p in folder.iterdir() if p.suffix == ".wav")
    files = []
    for speaker in sorted(p for p in folder.iterdir() if SPEAKER_FOLDER.match(p.name)):
        files += sorted(p for p in speaker.iterdir() if p.suffix == ".wav")
    return files


def _row(path: Path, layout: str) -> dict:
    """Return the table row of one WAV: names from the file name, sizes from its header."""
    digit, speaker, index = parse_name(path.name)
    if layout == "audiomnist" and speaker != path.parent.name:
        raise DatasetFormatError(
            f"{path}: speaker {speaker!r} in the name but folder {path.parent.name!r}; "
            "AudioMNIST keeps speaker NN's files in data/NN/."
        )
    info = _info(path)
    return {
        "path": str(path), "file": path.name, "digit": digit, "speaker": speaker,
        "index": index, "layout": layout, "sample_rate": info.samplerate,
        "frames": info.frames, "duration": info.frames / info.samplerate,
    }  # fmt: skip


def _info(path: Path) -> sf._SoundFileInfo:
    """Return soundfile's header info of `path`, or a DatasetFormatError naming the file."""
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _unreadable(path, err) from err


def audio_table(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Return one row per recording, sorted by speaker, digit, index: path, file, digit (int),
    speaker (str), index (int), layout, sample_rate, frames, duration (s).

    Only file names and WAV headers are read. `table.attrs` holds 'layout' and 'folder'.
    """
    layout, folder = find_recordings(root)
    files = _wav_files(layout, folder)
    if not files:
        raise DatasetMissingError(f"{folder} holds no WAV file.\n{missing_message(folder)}")
    table = pd.DataFrame([_row(p, layout) for p in files], columns=list(TABLE_COLUMNS))
    table = table.sort_values(["speaker", "digit", "index"], ignore_index=True)
    table.attrs.update(layout=layout, folder=str(folder))
    return table


# --- reading -----------------------------------------------------------------------------


def _unreadable(path: Path, err: Exception) -> DatasetFormatError:
    return DatasetFormatError(
        f"{path} cannot be read as a WAV file ({err}). It is damaged or not audio: delete it "
        "and copy or download the original again."
    )


def check_wav_header(path: str | os.PathLike) -> None:
    """Raise DatasetFormatError unless `path` is a RIFF/WAVE file whose data chunk is complete.

    libsndfile reads a truncated file without complaint (it returns the frames that are
    there), so the data chunk's declared size is compared with the bytes really present.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise DatasetFormatError(f"{path} is not a WAV file (no RIFF/WAVE header).")
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk, length = struct.unpack("<4sI", f.read(8))
            if chunk == b"data":
                if offset + 8 + length > size:
                    raise DatasetFormatError(
                        f"{path} is truncated: its header announces {length} bytes of audio, "
                        f"the file holds {size - offset - 8}. Copy or download it again."
                    )
                return
            offset += 8 + length + (length & 1)  # chunks are padded to an even size
    raise DatasetFormatError(f"{path} has no audio data chunk (truncated or damaged).")


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Return (samples float32 (frames,) in [-1, 1], sample rate) of a WAV file; channels
    are averaged. A truncated, damaged or empty file raises DatasetFormatError naming it."""
    path = Path(path)
    check_wav_header(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _unreadable(path, err) from err
    if data.shape[0] == 0:
        raise DatasetFormatError(f"{path} holds no audio frame; copy or download it again.")
    return data.mean(axis=1), int(rate)


def fit_length(wave: torch.Tensor, n: int, align: str = "start") -> torch.Tensor:
    """Return `wave` (..., L) padded with zeros or trimmed to (..., n).

    align='start' keeps the beginning (pads or cuts at the end); 'center' pads or cuts
    equally on both sides.
    """
    if align not in ("start", "center"):
        raise ValueError(f"align must be 'start' or 'center', got {align!r}")
    extra = n - wave.shape[-1]
    if extra >= 0:
        left = extra // 2 if align == "center" else 0
        return torch.nn.functional.pad(wave, (left, extra - left))
    left = -extra // 2 if align == "center" else 0
    return wave[..., left : left + n]


class _Resamplers(dict):
    """torchaudio Resample transforms by source rate: each kernel is built once."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target

    def __call__(self, wave: torch.Tensor, rate: int) -> torch.Tensor:
        if rate == self.target:
            return wave
        if rate not in self:
            self[rate] = torchaudio.transforms.Resample(rate, self.target)
        return self[rate](wave)


def load_waveforms(
    table: pd.DataFrame | Sequence[str | os.PathLike],
    sample_rate: int = 8000,
    n_samples: int | None = 8000,
    align: str = "start",
) -> torch.Tensor:
    """Return float32 (N, n_samples): each file read, resampled to `sample_rate` with
    torchaudio and padded/trimmed (`fit_length`). n_samples=None: no padding, one file only
    (returns (1, L))."""
    paths = list(table["path"]) if isinstance(table, pd.DataFrame) else list(table)
    if n_samples is None and len(paths) != 1:
        raise ValueError("n_samples=None (keep each file's length) needs exactly one file")
    resample = _Resamplers(sample_rate)
    waves = []
    for path in paths:
        samples, rate = read_wav(path)
        wave = resample(torch.from_numpy(samples), rate)
        waves.append(wave if n_samples is None else fit_length(wave, n_samples, align))
    return torch.stack(waves)


# --- log-mel features --------------------------------------------------------------------


@dataclass(frozen=True)
class MelConfig:
    """How recordings become log-mel spectrograms (N, n_mels, frames).

    sample_rate: common rate after resampling (FSDD's 8 kHz: frequencies up to 4 kHz);
    duration: seconds kept per file (padded with silence or trimmed, see `fit_length`);
    n_fft, win_length, hop_length: the STFT (samples); n_mels, f_min, f_max: the mel bank
    (f_max None = sample_rate / 2); top_db: each spectrogram is floored at its maximum
    minus top_db (so silence and padding read the same whatever the batch).
    """

    sample_rate: int = 8000
    duration: float = 1.0
    align: str = "start"
    n_fft: int = 256
    win_length: int | None = None
    hop_length: int = 64
    n_mels: int = 40
    f_min: float = 0.0
    f_max: float | None = None
    top_db: float = 80.0

    def __post_init__(self) -> None:
        if self.n_fft < 2 or self.hop_length < 1 or self.n_mels < 1 or self.duration <= 0:
            raise ValueError("n_fft >= 2, hop_length >= 1, n_mels >= 1 and duration > 0 needed")
        if (self.f_max or self.sample_rate / 2) > self.sample_rate / 2:
            raise ValueError(
                f"f_max={self.f_max} is above the Nyquist frequency {self.sample_rate / 2}"
            )

    @property
    def n_samples(self) -> int:
        """Return the number of samples per file after padding/trimming."""
        return round(self.duration * self.sample_rate)

    @property
    def n_frames(self) -> int:
        """Return the number of spectrogram frames per file (centred STFT)."""
        return self.n_samples // self.hop_length + 1

    def transform(self) -> torchaudio.transforms.MelSpectrogram:
        """Return torchaudio's MelSpectrogram (power) for this config."""
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=self.n_fft, win_length=self.win_length,
            hop_length=self.hop_length, f_min=self.f_min, f_max=self.f_max,
            n_mels=self.n_mels, power=2.0,
        )  # fmt: skip


def sample_lengths(table: pd.DataFrame, mel: MelConfig) -> torch.Tensor:
    """Return how many of the n_samples samples of each recording of `table` hold audio
    (its duration, cut at the kept length), int64 (N,)."""
    samples = np.minimum(np.round(table["duration"].to_numpy() * mel.sample_rate), mel.n_samples)
    return torch.from_numpy(samples.astype(np.int64))


def power_to_db(power: torch.Tensor, top_db: float | None = 80.0) -> torch.Tensor:
    """Return 10 log10(power) (..., F, T), floored per spectrogram at its max - top_db.

    torchaudio's AmplitudeToDB takes its maximum over the whole batch of a 3-D input,
    which would make a file's features depend on the files batched with it.
    """
    db = 10 * torch.log10(power.clamp_min(1e-10))
    if top_db is None:
        return db
    return torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - top_db)


def logmel(waves: torch.Tensor, config: MelConfig, batch_size: int = 256) -> torch.Tensor:
    """Return log-mel spectrograms float32 (N, n_mels, frames) in dB of waves (N, samples)."""
    mel = config.transform()
    out = [
        power_to_db(mel(waves[i : i + batch_size]), config.top_db)
        for i in range(0, len(waves), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, config.n_mels, config.n_frames)


def _fingerprint(table: pd.DataFrame, config: MelConfig, variant: str = "") -> str:
    """Return a hash of the config, the variant (if any) and every file's name, size and
    mtime."""
    # Not the folder: a copy of the same files (same names, sizes and mtimes) holds the same
    # audio, so it may share the entry.
    digest = hashlib.sha1(repr(sorted(asdict(config).items())).encode())
    digest.update(str(CACHE_VERSION).encode())
    if variant:  # only then: the plain features keep the fingerprint they always had
        digest.update(variant.encode())
    for path in table["path"]:
        stat = os.stat(path)
        digest.update(f"{Path(path).name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """Return the default folder of the log-mel cache: notebook 02's 'cache' artifacts."""
    # Not beside the recordings, which may be read-only or shared by several users.
    return settings.artifact_path(NOTEBOOK, "cache")


def logmel_features(
    table: pd.DataFrame,
    config: MelConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
    use_cache: bool = True,
    perturb: Callable[[torch.Tensor], torch.Tensor] | None = None,
    variant: str = "",
) -> torch.Tensor:
    """Return the log-mel spectrograms float32 (N, n_mels, frames) of every row of `table`.

    Computed once in batches, then cached in `<cache_dir>/logmel-<fingerprint>.pt`
    (default: `default_cache_dir()`), written atomically and stored as float16 (the values
    returned, computed or read back, are those float16 ones). The
    fingerprint covers the config and every file's name, size and mtime, so a changed file
    or setting computes afresh. use_cache=False neither reads nor writes the cache.
    perturb: applied to the waveforms (N, samples) before the STFT (`coursekit.audio.waves`),
    named by `variant` in the fingerprint.
    """
    config = config or MelConfig()
    if perturb is not None and not variant:
        raise ValueError("a perturbed set of features needs a variant naming the perturbation")
    path = None
    if use_cache and len(table):
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = folder / f"logmel-{_fingerprint(table, config, variant)}.pt"
        cached = _read_cache(path, list(table["file"]))
        if cached is not None:
            return cached
    waves = load_waveforms(table, config.sample_rate, config.n_samples, config.align)
    features = logmel(waves if perturb is None else perturb(waves), config, batch_size)
    # The numbers the cache keeps, cached or not: a first run and a rerun then train on the
    # same inputs, so a finished checkpoint (its identity covers them) is reloaded.
    features = features.half().float()
    if path is not None:
        payload = {"version": CACHE_VERSION, "files": list(table["file"]),
                   "config": asdict(config), "features": features.half()}
        atomic_write(path, lambda f: torch.save(payload, f))
    return features


def _read_cache(path: Path, files: list[str]) -> torch.Tensor | None:
    """Return the cached features at `path` as float32, or None if missing or unusable."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError):  # only a cache
        return None
    if payload.get("version") != CACHE_VERSION or payload.get("files") != files:
        return None
    return payload["features"].float()


def mel_frequencies(config: MelConfig) -> np.ndarray:
    """Return the centre frequency (Hz) of each of the config's n_mels filters (HTK mel)."""
    f_max = config.f_max or config.sample_rate / 2
    low, high = hz_to_mel(config.f_min), hz_to_mel(f_max)
    return mel_to_hz(np.linspace(low, high, config.n_mels + 2)[1:-1])


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Return the HTK mel value 2595 log10(1 + f / 700) of frequencies f (Hz)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=float) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Return the frequencies (Hz) of mel values m (inverse of `hz_to_mel`)."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=float) / 2595.0) - 1.0)


# --- splits ------------------------------------------------------------------------------


def random_split(
    table: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return (train rows, test rows) as sorted row positions: a random split of the files,
    ignoring speakers (the course's split)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(table))
    n_test = round(test_fraction * len(table))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def speaker_split(
    table: pd.DataFrame, test_speakers: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Return (train rows, test rows): the files of `test_speakers` against all the others."""
    test_speakers = [str(s) for s in test_speakers]
    unknown = set(test_speakers) - set(table["speaker"])
    if unknown:
        raise ValueError(f"unknown speaker(s) {sorted(unknown)}; the table has "
                         f"{sorted(table['speaker'].unique())}")
    is_test = table["speaker"].isin(test_speakers).to_numpy()
    if is_test.all():
        raise ValueError("every speaker is in the test set: nothing is left to train on")
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def leave_one_speaker_out(table: pd.DataFrame) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield (test speaker, train rows, test rows) for each speaker of the table, sorted."""
    for speaker in sorted(table["speaker"].unique()):
        yield (speaker, *speaker_split(table, [speaker]))


def shared_speakers(table: pd.DataFrame, rows_a: np.ndarray, rows_b: np.ndarray) -> list[str]:
    """Return the sorted speakers that have files in both row sets."""
    a = set(table["speaker"].iloc[rows_a])
    return sorted(a & set(table["speaker"].iloc[rows_b]))
