"""Benchmark: notebook 06's forecasters on the full generated set, against the baselines
and against the simulator (what the physics lets one predict).

    .venv/bin/python benchmarks/balls_forecast.py [--sequences 20000] [--epochs 40]
        [--symmetry-epochs 200] [--all-unknown]

Trains, on the notebook's 80/10/10 split (seed 0), the forecaster variants of section 5
one by one; prints the mean centre error at step 20 in pixels on validation (where the
notebook chooses) and on test, with the last-position and constant-velocity baselines and
the simulator run one step from the last boxes: with every hidden parameter, without masses
and restitutions (median over COPHY's values), and with --all-unknown without any (27^3
combinations: minutes). Measurements: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from coursekit.balls import data as balls
from coursekit.balls import lesson as lb


def errors(pred: torch.Tensor, true: torch.Tensor) -> str:
    """Return 'mean / median' centre error in pixels, formatted."""
    e = lb.centre_error(pred, true)
    return f"{e.mean():.4f} / {e.median():.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--symmetry-epochs", type=int, default=200)
    parser.add_argument("--all-unknown", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = balls.generate_sequences(args.sequences, seed=0)
    split = balls.split_indices(len(data), (0.8, 0.1, 0.1), seed=0)
    parts = {}
    for name in ("val", "test"):
        boxes = torch.from_numpy(lb.sequence_boxes(data, split[name]))
        parts[name] = (boxes[:, :19], boxes[:, 19], torch.from_numpy(data.presence[split[name]]),
                       {k: v[split[name]] for k, v in data.physics.items()})
    print("mean / median centre error at step 20, pixels")
    for name, (context, truth, _, physics) in parts.items():
        print(f"[{name}] last position {errors(lb.last_position(context), truth)}; "
              f"constant velocity {errors(lb.constant_velocity(context), truth)}")
        unknowns = [(), ("mass", "restitution"), ("friction",)]
        if args.all_unknown:
            unknowns.append(("mass", "friction", "restitution"))
        for unknown in unknowns:
            t0 = time.perf_counter()
            pred = lb.simulator_forecast(context, physics, unknown)
            print(f"[{name}] simulator, unknown {list(unknown) or 'none'}: {errors(pred, truth)} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    base = lb.ForecastConfig(epochs=args.epochs, device="cpu")
    velocity = {"residual": "velocity"}
    variants = {
        "report MLP (MSE)": {},
        "residual (MSE)": velocity,
        "residual, distance": {**velocity, "loss": "distance"},
        "residual, distance, moves": {**velocity, "loss": "distance", "inputs": "moves"},
        "residual, distance, contacts": {**velocity, "loss": "distance", "inputs": "contacts"},
        "residual, distance, contacts, symmetries": {
            **velocity, "loss": "distance", "inputs": "contacts", "augment": True,
            "schedule": "cosine", "epochs": args.symmetry_epochs,
        },
    }
    for label, changes in variants.items():
        config = lb.ForecastConfig(**{**base.__dict__, **changes})
        t0 = time.perf_counter()
        model, _ = lb.run_forecaster(config, data, split, checkpoint=None, verbose=False)
        seconds = time.perf_counter() - t0
        scores = [f"[{name}] {errors(lb.model_predictor(model, presence)(context), truth)}"
                  for name, (context, truth, presence, _) in parts.items()]
        print(f"{label}: {'; '.join(scores)} ({config.epochs} epochs, {seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
