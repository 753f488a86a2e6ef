"""Benchmark: how fast coursekit generates notebook 06's balls (sequences/s, images/s).

Times, after one warm-up call, the vectorized simulation of 20-step sequences, the rendering
of 100x100 images, and writing them in the course's on-disk format (JPEG + .npy files).

    .venv/bin/python benchmarks/balls_generator.py [--sequences 20000] [--images 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from coursekit.balls import data as balls


def timed(fn, *args) -> tuple[float, object]:
    """Return (seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=20000)
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    balls.generate_sequences(100, seed=1)  # warm-up
    s_seq, seqs = timed(balls.generate_sequences, args.sequences, 0)
    s_img, imgs = timed(balls.generate_images, args.images, 0)
    with tempfile.TemporaryDirectory() as tmp:
        s_wseq, _ = timed(balls.write_sequences, seqs, f"{tmp}/seq")
        s_wimg, _ = timed(balls.write_images, imgs, f"{tmp}/img")
    n_seq, n_img = args.sequences, args.images
    print(f"simulate: {n_seq / s_seq:,.0f} sequences/s ({n_seq} in {s_seq:.2f} s)")
    print(f"render:   {n_img / s_img:,.0f} images/s ({n_img} in {s_img:.2f} s)")
    print(f"write:    {n_seq / s_wseq:,.0f} sequences/s, {n_img / s_wimg:,.0f} images/s")


if __name__ == "__main__":
    main()
