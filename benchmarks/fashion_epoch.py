"""Seconds per full FashionMNIST epoch of notebook 05's LeNet-5 (the sheet's recipe).

Trains `coursekit.fashion.lesson.run` on the whole training set (60,000 images, batch 64,
SGD) for `--epochs` epochs and prints each epoch's wall-clock seconds (`fit`'s `seconds`
column, device synchronised), images per second and the validation accuracy. The first
epoch includes CUDA's warm-up; the median of the others is the figure to quote.

    ./kit python benchmarks/fashion_epoch.py --device cuda --epochs 3 --data ~/data
    ./kit python benchmarks/fashion_epoch.py --device cpu --epochs 1

The last line is `seconds per epoch: N.NN` (median after the first epoch when there are
several).
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", default=None, help="data root (default: COURSEKIT_DATA)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.data:
        os.environ["COURSEKIT_DATA"] = os.path.expanduser(args.data)
    if args.threads:
        torch.set_num_threads(args.threads)
    # Imported after COURSEKIT_DATA is set: the loaders read it when called, not imported.
    from coursekit.fashion.lesson import FashionConfig, run
    from coursekit.settings import get_device

    config = FashionConfig(epochs=args.epochs, device=str(get_device(args.device)))
    _, history = run(config, checkpoint=None, eval_train=False, verbose=True)
    seconds = history["seconds"]
    n_train = 60_000 if config.subset is None else config.subset
    for epoch, s in enumerate(seconds, 1):
        print(f"epoch {epoch}: {s:.2f} s, {n_train / s:,.0f} images/s")
    print(f"device: {config.device}, validation accuracy after {len(seconds)} epochs: "
          f"{100 * history['val_acc'][-1]:.2f} %")
    steady = seconds[1:] or seconds
    print(f"seconds per epoch: {statistics.median(steady):.2f}")


if __name__ == "__main__":
    main()
