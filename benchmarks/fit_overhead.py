"""What `coursekit.train.fit` costs over a bare hand-written loop, measured in one run.

Same model, data, seed and number of epochs for both; each is timed `--repeats` times,
alternating, with the device synchronised, and the medians are compared. The bare loop does
the same measurements as fit (training loss and accuracy summed on the device, one
validation pass), without fit's bookkeeping (history rows, scheduler hook, checks).

    ./kit python benchmarks/fit_overhead.py                  # LeNet-5, 28x28, CPU
    ./kit python benchmarks/fit_overhead.py --device cuda --model cifar

The last line is `ratio: N.NN` (fit time / bare time); the target is at most 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.data.tensor_loader import TensorLoader
from coursekit.fashion.models import LeNet5
from coursekit.settings import get_device, seed_everything
from coursekit.train import fit, synchronize


def small_cifar_net() -> nn.Module:
    """Return a small CIFAR-10 CNN (3x32x32 -> 10 logits), about 0.1M parameters."""

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(block(3, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(128, 10))  # fmt: skip


def make_data(kind: str, n: int, device: torch.device) -> tuple[TensorLoader, TensorLoader]:
    """Return (train, val) loaders over random uint8 images: (n, 1, 28, 28) or (n, 3, 32, 32)."""
    g = torch.Generator().manual_seed(0)
    shape = (1, 28, 28) if kind == "lenet" else (3, 32, 32)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    common = {"device": device, "mean": (0.5,) * shape[0], "std": (0.25,) * shape[0]}
    cut = n * 5 // 6
    train = TensorLoader(images[:cut], labels[:cut], batch_size=128, shuffle=True, **common)
    val = TensorLoader(images[cut:], labels[cut:], batch_size=1000, shuffle=False, **common)
    return train, val


def bare(model: nn.Module, train, val, opt, epochs: int, device: torch.device) -> None:
    """The loop a careful student writes: same work as fit, no bookkeeping."""
    for _ in range(epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(y)
            correct += (out.argmax(1) == y).sum()
        model.eval()
        with torch.no_grad():
            val_sum = sum(F.cross_entropy(model(x), y) * len(y) for x, y in val)
        (loss_sum + correct + val_sum).item()  # read once per epoch, as fit does


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=("lenet", "cifar"), default="lenet")
    parser.add_argument("--samples", type=int, default=12_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = get_device(args.device)
    train, val = make_data(args.model, args.samples, device)

    def setup():
        seed_everything(0)
        model = (LeNet5() if args.model == "lenet" else small_cifar_net()).to(device)
        return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run_fit():
        model, opt = setup()
        fit(model, train, val, epochs=args.epochs, optimizer=opt, device=device, verbose=False)

    def run_bare():
        model, opt = setup()
        bare(model, train, val, opt, args.epochs, device)

    run_bare(), run_fit()  # warm-up: allocator, kernels, caches
    times = {"fit": [], "bare": []}
    for _ in range(args.repeats):
        times["bare"].append(timed(run_bare, device))
        times["fit"].append(timed(run_fit, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    images = args.epochs * (train.num_samples + val.num_samples)
    print(f"device: {device} ({torch.get_num_threads()} threads), model: {args.model}, "
          f"{train.num_samples} train + {val.num_samples} val images, {args.epochs} epochs, "
          f"{args.repeats} repeats")
    for name in ("bare", "fit"):
        spread = f"{min(times[name]):.3f}-{max(times[name]):.3f}"
        print(f"{name:>4}: median {med[name]:.3f} s (range {spread}), "
              f"{images / med[name]:,.0f} images/s")
    print(f"ratio: {med['fit'] / med['bare']:.2f}")


if __name__ == "__main__":
    main()
