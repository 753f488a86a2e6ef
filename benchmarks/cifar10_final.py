"""Train notebook 04's tutorial net or final net on CIFAR-10 within a time budget.

Accuracy is measured on the validation split held out of the training images
(`--holdout`, the last holdout/10 images of each class); a test accuracy is printed,
labelled, only if the data root has a test split.

    .venv/bin/python benchmarks/cifar10_final.py --model final --budget-minutes 10 --device cpu
    .venv/bin/python benchmarks/cifar10_final.py --model tutorial --epochs 2 --data ~/data
    .venv/bin/python benchmarks/cifar10_final.py --model final --budget-minutes 60 --device cuda

--model tutorial is the sheet's start (batch 4, SGD lr 0.001, momentum 0.9); --model final
is `coursekit.cifar.lesson.FINAL`. With a budget the rate follows the share of the budget
used (`coursekit.cifar.budget`): the one-cycle ends when the budget does, the last epoch cut.
The last line is `accuracy: NN.NN`, the validation accuracy in % (with the config's
test-time flip for the final net).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch

from coursekit.cifar import lesson as cifar
from coursekit.models import count_parameters
from coursekit.settings import get_device


def make_config(args: argparse.Namespace) -> cifar.CifarConfig:
    """Return the config of --model with the command line's budget, epochs and split."""
    base = cifar.FINAL if args.model == "final" else cifar.CifarConfig(label="tutorial")
    budget = args.budget_minutes * 60 if args.budget_minutes else None
    # The tutorial's 2 epochs become "as many as fit"; the final preset keeps its cap.
    epochs = args.epochs or (10_000 if budget and args.model == "tutorial" else base.epochs)
    device = get_device(args.device)
    return dataclasses.replace(
        base,
        epochs=epochs,
        time_budget_s=budget,
        holdout=args.holdout,
        device=str(device),
        amp=base.amp and device.type == "cuda",
    )


def report(name: str, scores: dict) -> None:
    """Print the accuracy, loss and per-class accuracies of one split."""
    per_class = " ".join(f"{a * 100:.0f}" for a in scores["per_class"])
    print(
        f"{name}: accuracy {scores['acc'] * 100:.2f}%  loss {scores['loss']:.4f}  "
        f"per class (%) {per_class}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tutorial", "final"), default="final")
    parser.add_argument("--epochs", type=int, default=None, help="cap (default: config's)")
    parser.add_argument("--budget-minutes", type=float, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", default=None, help="data root (default: COURSEKIT_DATA)")
    parser.add_argument("--holdout", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:  # 1 on a shared machine: busy cores make 2 OpenMP threads wait
        torch.set_num_threads(args.threads)
    os.environ.setdefault("COURSEKIT_PROGRESS", "text")  # one line per epoch, no bars
    config = make_config(args)
    t0 = time.perf_counter()
    data = cifar.load_data(root=args.data)
    print(
        f"data: {len(data.labels):,} training images ({config.holdout:,} held out for "
        f"validation), test split {'present' if data.test_images is not None else 'absent'}; "
        f"loaded in {time.perf_counter() - t0:.1f} s"
    )
    print(f"config: {config}")
    model = cifar.make_model(config)
    trainable, total = count_parameters(model), count_parameters(model, trainable_only=False)
    print(
        f"model: {config.model}, {trainable:,} trainable + {total - trainable:,} frozen = "
        f"{total:,} parameters; device {config.device} ({torch.get_num_threads()} CPU threads)"
    )
    t0 = time.perf_counter()
    model, history = cifar.run(config, checkpoint=None, data=data)
    wall = time.perf_counter() - t0
    train_s = sum(history["seconds"])
    images = sum(history["images"])
    print(
        f"stopped: {history.stopped_reason} after {len(history)} epochs "
        f"({images / (len(data.labels) - config.holdout):.2f} epochs of images); training "
        f"{train_s:.0f} s, wall {wall:.0f} s (set-up included), "
        f"{images / train_s:,.0f} training images/s (epoch time incl. validation); "
        f"rate at the end {history['lr_end'][-1]:.4g} (peak {config.lr:g})"
    )
    _, val, test = cifar.make_loaders(config, data)
    scores = cifar.evaluate_split(model, val, config.tta_flip, config.amp)
    flip = " (test-time flip)" if config.tta_flip else ""
    report(f"validation{flip}", scores)
    if test is not None:
        report(f"TEST{flip}", cifar.evaluate_split(model, test, config.tta_flip, config.amp))
    print(f"accuracy: {scores['acc'] * 100:.2f}")


if __name__ == "__main__":
    main()
