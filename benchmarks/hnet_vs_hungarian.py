"""Time to assign 1,024 distance matrices on CPU: scipy's Hungarian algorithm vs batched HNet.

For each max_doas, a test split is generated with the notebook 07 recipe (every
(nb_ref, nb_pred) combination, padding, permutation; `--per-group` sets its size). Both are
timed on the same `--n` matrices drawn uniformly at random from it (`lesson.timing_sample`:
every resolution and pair in proportion; the split itself is stored block after block),
in one run, median of `--repeats`:

- scipy: one `scipy.optimize.linear_sum_assignment` per matrix, on its active block (the
  generator's labels), in a Python loop;
- HNet: one forward pass of the whole batch in eval mode, sigmoid and threshold included.
  The weights are untrained (they do not change the amount of computation); the F1 of a
  trained HNet is measured in the notebook, section 7. On CPU, and on the GPU too when
  torch sees one (or `--no-gpu`).

    ./kit python benchmarks/hnet_vs_hungarian.py                 # 2 and 10 DOAs, 1 thread
    ./kit python benchmarks/hnet_vs_hungarian.py --doas 2 4 10 --threads 2

The last lines are `ratio M: R` (scipy time / HNet time; above 1, HNet is faster).
"""

from __future__ import annotations

import argparse

import torch

from coursekit.hungarian.data import balanced_sample_range, generate
from coursekit.hungarian.lesson import hungarian_ms, model_ms, timing_sample
from coursekit.hungarian.models import HNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doas", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--n", type=int, default=1024, help="matrices per timing")
    parser.add_argument("--per-group", type=int, default=500, help="size of the test split")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU timing")
    args = parser.parse_args()
    gpu = torch.cuda.is_available() and not args.no_gpu
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"CPU, torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}")
    ratios = {}
    for m in args.doas:
        split = generate(m, balanced_sample_range(m, args.per_group), seed=0, split="test")
        if len(split) < args.n:
            raise SystemExit(f"{m} DOAs: {len(split)} matrices < --n {args.n}; raise --per-group")
        data = timing_sample(split, args.n)
        scipy_ms = hungarian_ms(data, args.n, args.repeats)
        hnet_ms = model_ms(HNet(m), data, args.n, args.repeats)
        ratios[m] = scipy_ms / hnet_ms
        gpu_ms = model_ms(HNet(m), data, args.n, args.repeats, "cuda") if gpu else None
        gpu_ms = f"  HNet GPU {gpu_ms:8.2f} ms" if gpu else ""
        print(f"{m:3d} DOAs  {args.n} random matrices (of {len(split)} generated)  "
              f"scipy {scipy_ms:8.2f} ms  HNet {hnet_ms:8.2f} ms{gpu_ms}")  # fmt: skip
    for m, ratio in ratios.items():
        print(f"ratio {m}: {ratio:.2f}")


if __name__ == "__main__":
    main()
