"""Log-mel features of a whole spoken-digit set: per file vs in batches vs the cache.

    .venv/bin/python benchmarks/audio_features.py             # 1,520 synthetic FSDD files
    .venv/bin/python benchmarks/audio_features.py --root DIR  # real recordings, read only
    # DIR: the data root or the recordings folder; the cache goes to a temporary folder

Times, in one run and on the same files: the metadata table (headers only), reading +
resampling + padding every file, the mel spectrogram computed file by file (what a
`Dataset.__getitem__` doing the transform would cost per epoch) against the batched
`coursekit.audio.data.logmel`, then `logmel_features` the first time (compute + atomic cache
write) and the second time (cache read). Ratios are against the per-file baseline.
Measurements: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from coursekit.audio.data import (
    MelConfig,
    audio_table,
    load_waveforms,
    logmel,
    logmel_features,
    power_to_db,
)
from coursekit.audio.fixtures import write_fsdd_fixture


def timed(label: str, fn, rows: list) -> object:
    """Run fn(), print and record its wall time; return its result."""
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    rows.append((label, seconds))
    print(f"{label:42s} {seconds:8.3f} s", flush=True)
    return result


def per_file(waves: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Return the log-mels computed one file at a time (N, n_mels, frames)."""
    mel = config.transform()
    return torch.stack([power_to_db(mel(w), config.top_db) for w in waves])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="data root or recordings folder (default: a synthetic fixture)")
    parser.add_argument("--indices", type=int, default=38, help="fixture files per digit/speaker")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or write_fsdd_fixture(Path(tmp) / "fx", indices=args.indices)
        config, rows = MelConfig(), []
        table = timed("table (names + WAV headers)", lambda: audio_table(root), rows)
        print(f"{len(table)} files, {table['duration'].sum():.0f} s of audio, "
              f"torch threads {torch.get_num_threads()}")
        waves = timed("read + resample + pad", lambda: load_waveforms(table), rows)
        slow = timed("log-mel, one file at a time", lambda: per_file(waves, config), rows)
        fast = timed("log-mel, batches of 256", lambda: logmel(waves, config), rows)
        assert torch.allclose(slow, fast, atol=1e-3), "batched and per-file features differ"
        cache = Path(tmp) / "cache"
        timed("logmel_features, first call (+ cache)", lambda: logmel_features(
            table, config, cache_dir=cache), rows)
        timed("logmel_features, cached", lambda: logmel_features(
            table, config, cache_dir=cache), rows)
        base = dict(rows)["log-mel, one file at a time"]
        print(f"\nbatched mel: {base / dict(rows)['log-mel, batches of 256']:.1f}x faster than per "
              f"file; cached features: {base / rows[-1][1]:.1f}x faster than computing them "
              f"per file (reading the WAVs excluded)")


if __name__ == "__main__":
    main()
