"""How long `ensure_fixtures` takes to write every fixture dataset, against raw disk writes.

Smoke mode and the test session write the fixtures once (MNIST, FashionMNIST, CIFAR-10, the
spoken digits) before anything runs, so this cost is paid by every CI run. Measured in one run:

- cold: `ensure_fixtures` into an empty folder (median of `--repeats`);
- warm: the same call once everything exists (it must only check, not rewrite);
- baseline: writing the same number of bytes of random uint8 arrays to the same kind of
  folder with numpy, the floor for generating and storing that much data.

    ./kit bench fixtures [--repeats 5]

The last line is `ratio: N.N` (cold / baseline). Targets on a quiet 2-core machine: cold
at most 2 s (what tests/test_data_fixtures.py asserted until it moved here: a timed
assertion fails under load) and warm under 0.05 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from coursekit.data.fixtures import ensure_fixtures


def folder_bytes(root: Path) -> list[int]:
    """Return the sizes of the files under `root`."""
    return [p.stat().st_size for p in root.rglob("*") if p.is_file()]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def raw_write(root: Path, sizes: list[int]) -> None:
    """Write one file of random bytes per size in `sizes` (the baseline)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i, size in enumerate(sizes):
        rng.integers(0, 256, size, dtype=np.uint8).tofile(root / f"{i}.bin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ensure_fixtures(base / "warm-up")
        sizes = folder_bytes(base / "warm-up")
        cold, warm, baseline = [], [], []
        for i in range(args.repeats):
            root = base / f"fixtures-{i}"
            cold.append(timed(lambda root=root: ensure_fixtures(root)))
            warm.append(timed(lambda root=root: ensure_fixtures(root)))
            baseline.append(timed(lambda i=i: raw_write(base / f"raw-{i}", sizes)))
    med = {name: statistics.median(v) for name, v in
           (("cold", cold), ("warm", warm), ("baseline", baseline))}  # fmt: skip
    total = sum(sizes)
    print(f"{len(sizes)} files, {total / 1e6:.1f} MB, {args.repeats} repeats")
    for name, values in (("cold", cold), ("warm", warm), ("baseline", baseline)):
        print(f"{name:>8}: median {med[name]:.3f} s (range {min(values):.3f}-{max(values):.3f})")
    print(f"ratio: {med['cold'] / med['baseline']:.1f}")


if __name__ == "__main__":
    main()
