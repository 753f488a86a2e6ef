"""How long each notebook's "Run All" takes, per profile, on the data at hand.

Executes each notebook headless with papermill, parameter `profil` set, in a fresh runs
folder (no finished checkpoint to reload: the time of a first run), with the datasets of
`--data`, and records the wall time, machine and data in
`benchmarks/notebook_times/<notebook>.json`, which the notebooks print at their top
(`coursekit.profiles.durations_sentence`).

    ./kit python benchmarks/notebook_times.py --data DIR --describe "FashionMNIST réel" \\
        --notebooks 05_fashionmnist_regularization --profiles séance --output /tmp/executed
    ./kit python benchmarks/notebook_times.py --data DIR --describe "..." --threads 2

The last line is `slowest: NAME PROFILE N.N min`. A notebook that fails is reported with
its error and not recorded. `--no-record` prints without writing the record; `--output DIR`
keeps the executed notebooks (to read the numbers they printed); `--runs DIR` shares one runs
folder between notebooks (notebook 03 with `backbone="cifar10"` reads notebook 04's hand-off).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

import papermill
import torch

from coursekit.checkpoint import write_json
from coursekit.profiles import PROFILES, recorded_times, times_file

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def machine() -> str:
    """Return a short French description of this machine: GPU name or CPU cores."""
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name()}"
    return f"CPU {os.cpu_count()} cœurs ({platform.machine()}), sans GPU"


def time_notebook(
    name: str, profile: str, data: str, threads: int | None, output: Path | None = None,
    runs: Path | None = None,
) -> float:
    """Return the wall-clock seconds of one headless run of notebook `name` in `profile`;
    the executed notebook is kept as `<output>/<name>-<profile>.ipynb` when output is given;
    runs: the runs folder to use instead of a fresh one (to share notebook 04's hand-off)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"COURSEKIT_RUNS": str(runs) if runs else f"{tmp}/runs",
               "COURSEKIT_FIGURES": f"{tmp}/figures", "COURSEKIT_DATA": data,
               "COURSEKIT_PROGRESS": "text", "MPLBACKEND": "Agg",
               "PAPERMILL_EXECUTION": "1"}  # no live widget: nbclient can block on one
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # the kernel papermill starts inherits this environment
        try:
            start = time.perf_counter()
            papermill.execute_notebook(
                NOTEBOOKS / f"{name}.ipynb",
                str(output / f"{name}-{profile}.ipynb") if output else f"{tmp}/{name}.ipynb",
                parameters={"profil": profile}, cwd=str(NOTEBOOKS), progress_bar=False,
            )
            return time.perf_counter() - start
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder holding the datasets")
    parser.add_argument("--describe", required=True, help="what data it is, in French")
    parser.add_argument("--notebooks", nargs="*", default=None, help="names (default: 01-07)")
    parser.add_argument("--profiles", nargs="*", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--threads", type=int, default=None, help="OMP threads of the kernel")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="keep executed notebooks here")
    parser.add_argument(
        "--runs", type=Path, default=None,
        help="runs folder shared by the notebooks (default: a fresh one per notebook)",
    )
    args = parser.parse_args()
    names = args.notebooks or sorted(p.stem for p in NOTEBOOKS.glob("0[1-7]_*.ipynb"))
    slowest = ("", "", 0.0)
    for name in names:
        for profile in args.profiles:
            try:
                seconds = time_notebook(
                    name, profile, args.data, args.threads, args.output, args.runs
                )
            except papermill.PapermillExecutionError as exc:
                print(f"{name} [{profile}]: FAILED ({exc.ename}: {exc.evalue})", flush=True)
                continue
            print(f"{name} [{profile}]: {seconds / 60:.1f} min", flush=True)
            records = recorded_times(name)
            records[profile] = {
                "seconds": round(seconds, 1), "machine": machine(), "data": args.describe,
                "date": dt.date.today().isoformat(),
            }
            if seconds > slowest[2]:
                slowest = (name, profile, seconds)
            if not args.no_record:
                write_json(records, times_file(name))  # at once: a long sweep keeps its results
    print(f"slowest: {slowest[0]} {slowest[1]} {slowest[2] / 60:.1f} min")


if __name__ == "__main__":
    main()
