"""Benchmark: TensorLoader vs the standard torchvision + DataLoader pipeline on FashionMNIST.

Measures, in one run and on the same FashionMNIST-format fixture, images/s of
(a) iterating the data alone and (b) one full LeNet-5 training epoch (batch 64, SGD lr 0.1
momentum 0.9, cross-entropy), plus the share of each epoch spent waiting for data.
The last line is `ratio: N.N` = full-epoch images/s of the fast path / the standard one.

    .venv/bin/python benchmarks/loader.py [--n 20000] [--device cpu] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from coursekit.data.fixtures import write_mnist_fixture
from coursekit.data.tensor_loader import TensorLoader
from coursekit.fashion.models import LeNet5
from coursekit.settings import get_device

MEAN, STD = (0.2860,), (0.3530,)
BATCH_SIZE = 64


@dataclass
class Result:
    name: str
    data_images_per_s: float
    epoch_images_per_s: float
    data_share: float


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="training images (default 20000)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[],
        help="also time the standard pipeline with these DataLoader num_workers (e.g. 2)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def standard_loader(root: Path, workers: int) -> DataLoader:
    """Return the course's usual pipeline: PIL dataset + ToTensor + Normalize + DataLoader."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    dataset = datasets.FashionMNIST(root, train=True, transform=transform)
    return DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=workers)


def fast_loader(root: Path, device: torch.device) -> TensorLoader:
    """Return the TensorLoader over the same files."""
    dataset = datasets.FashionMNIST(root, train=True)
    return TensorLoader.from_dataset(
        dataset, batch_size=BATCH_SIZE, shuffle=True, device=device, mean=MEAN, std=STD
    )


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock times are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_data_only(loader: Iterable, device: torch.device) -> float:
    """Return images/s of one epoch that only fetches batches and moves them to device."""
    count, start = 0, time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        count += len(y)
    sync(device)
    return count / (time.perf_counter() - start)


def time_training_epoch(loader: Iterable, device: torch.device, seed: int) -> tuple[float, float]:
    """Return (images/s, data-time share) of one LeNet-5 SGD epoch over loader."""
    torch.manual_seed(seed)
    model = LeNet5().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    count, data_time = 0, 0.0
    start = fetch_start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        data_time += time.perf_counter() - fetch_start
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        count += len(y)
        fetch_start = time.perf_counter()
    sync(device)
    total = time.perf_counter() - start
    return count / total, data_time / total


def warm_up(loader: Iterable, device: torch.device, batches: int = 20) -> None:
    """Run a few training steps so one-off kernel/allocator setup is not timed."""
    model = LeNet5().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for i, (x, y) in enumerate(loader):
        if i == batches:
            break
        nn.functional.cross_entropy(model(x.to(device)), y.to(device)).backward()
        optimizer.step()
    sync(device)


def measure(name: str, loader: Iterable, device: torch.device, seed: int) -> Result:
    """Return data-only and full-epoch throughput of one pipeline."""
    warm_up(loader, device)
    data_rate = time_data_only(loader, device)
    epoch_rate, share = time_training_epoch(loader, device, seed)
    return Result(name, data_rate, epoch_rate, share)


def print_table(results: list[Result]) -> None:
    """Print one row per pipeline."""
    header = f"{'pipeline':<26}{'data only img/s':>17}{'epoch img/s':>13}{'data share':>12}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<26}{r.data_images_per_s:>17,.0f}{r.epoch_images_per_s:>13,.0f}"
            f"{r.data_share:>12.1%}"
        )


def main() -> None:
    args = parse_args()
    device = get_device(args.device)
    with tempfile.TemporaryDirectory(prefix="coursekit-bench-") as tmp:
        root = Path(tmp)
        write_mnist_fixture(root, name="FashionMNIST", n_train=args.n, n_test=100, seed=args.seed)
        print(
            f"FashionMNIST-format fixture: {args.n} train images 1x28x28 | batch {BATCH_SIZE} | "
            f"device {device} | torch threads {torch.get_num_threads()} (default)"
        )
        print(
            "standard: FashionMNIST + Compose([ToTensor(), Normalize]) + "
            "DataLoader(shuffle=True, num_workers=0: the notebooks' setting, no worker startup)"
        )
        print("fast:     TensorLoader (uint8 tensor on device, batched index + normalize)\n")
        results = [measure("standard (num_workers=0)", standard_loader(root, 0), device, args.seed)]
        for workers in args.workers:
            loader = standard_loader(root, workers)
            results.append(measure(f"standard (num_workers={workers})", loader, device, args.seed))
        fast = measure("fast (TensorLoader)", fast_loader(root, device), device, args.seed)
        results.append(fast)
    print_table(results)
    ratio = fast.epoch_images_per_s / results[0].epoch_images_per_s
    print(f"\nfast path data time: {fast.data_share:.1%} of its epoch (target <= 10%)")
    print("full-epoch speed-up vs standard (num_workers=0), target >= 2.5:")
    print(f"ratio: {ratio:.1f}")


if __name__ == "__main__":
    main()
