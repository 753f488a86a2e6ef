"""Notebook 02 on real recordings: random split against leave-one-speaker-out, per recipe.

    .venv/bin/python benchmarks/audio_speaker_probe.py --root DIR/recordings \\
        --label cmvn --changes '{"normalize": "utterance"}' --parts val
    # parts: random (the course's 80/20 split, test accuracy), val (each fold's validation
    # speaker: what settings are chosen on), test (each fold's held-out speaker)

Every training is `coursekit.lessons.audio.run` with the notebook's defaults (`AudioConfig`)
plus the JSON `--changes`; checkpoints go to `--out` (a finished one is reloaded, so a second
call with more parts only trains what is missing) and one JSON line per call is appended to
`--out/results.jsonl`. `--root` is read only; the log-mel cache goes to `--out/cache`.

Measured 2026-12-02 on the 1,500-file FSDD sample (george, jackson, lucas), 2 CPU cores
shared with other jobs (so 100-370 s per 3-fold validation pass, 100-170 s per random-split
run, ~4-12 min per 3-fold test pass), 12 epochs, notebook defaults otherwise. The log-mel
features of the 1,500 files: 1.5 s computed in batches and cached, 0.02 s read back
(`benchmarks/audio_features.py --root`). Validation folds train on ONE speaker (the other
two are the test and the validation speaker), test folds on two.

| recipe | random split | validation mean | test (george, jackson, lucas) mean |
| --- | --- | --- | --- |
| base (global mean/std) | 96.3 % | 25.1 % | 20.6, 62.8, 41.4: 41.6 % |
| normalize='utterance' (CMVN) | | 38.3 % | 49.6, 69.6, 34.2: 51.1 % (*) |
| lifter=13 (MFCC smoothing) | | 35.7 % | |
| freq_warp=0.12 (VTLP) | | 34.3 % | |
| time_stretch=0.15 | 98.0 % | 40.2 % | 20.0, 58.4, 45.2: 41.2 % |
| freq_mask=6, time_mask=12 (SpecAugment) | | 35.1 % | |
| time_shift=15 | | 35.8 % | |
| head='time_avg' | | 35.5 % | |
| all seven at once | | 24.4 % | |
| time_stretch + CMVN | | 40.5 % (not kept: < +1 point) | |
| time_stretch + time_shift | | 31.0 % (not kept) | |

So the notebook's rule (candidates: every variant, +1 point on validation; greedy forward
selection from the best) chose time_stretch=0.15 after two of its six addition trials
(the four others - MFCC, time_avg, SpecAugment, VTLP on top of time_stretch - were not run
for lack of time), and that recipe does not beat the base on the held-out speakers (41.2 %
vs 41.6 %): the issue's goal (mean >= 75 % on this sample) is NOT reached. One-speaker
validation is a weak guide here: (*) CMVN's test was measured afterwards as a diagnostic
only (it chose nothing) and does better than what validation picked. Next to try: more
epochs for the augmented recipes, and a validation that trains on more voices (6 speakers).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from coursekit.lessons import audio as lesson
from coursekit.lessons.audio import AudioConfig

PARTS = {"val": "validation", "test": "test"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the recordings (read only)")
    parser.add_argument("--label", default="probe")
    parser.add_argument("--changes", default="{}", help="AudioConfig fields, as JSON")
    parser.add_argument("--parts", nargs="+", default=["random", "val", "test"],
                        choices=["random", *PARTS])
    parser.add_argument("--out", type=Path, default=Path("runs/audio_speaker_probe"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    data = lesson.load_audio(args.root, cache_dir=args.out / "cache")
    print(f"{len(data.table)} files, features {tuple(data.x.shape)} in "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    changes = json.loads(args.changes)
    config = replace(AudioConfig(label=args.label, device="cpu"), **changes)
    checkpoint = lambda c: args.out / f"{c.name}.pt"  # noqa: E731
    result = {"label": args.label, "changes": changes, "n_files": len(data.table)}
    if "random" in args.parts:
        start = time.perf_counter()
        _, history = lesson.run(config, checkpoint=checkpoint(config), data=data, verbose=False)
        result["random"] = history["val_acc"][-1]
        print(f"random split: {result['random']:.3f} ({time.perf_counter() - start:.0f} s)",
              flush=True)
    for part in [p for p in PARTS if p in args.parts]:
        start = time.perf_counter()
        table, _ = lesson.speaker_runs(replace(config, eval=PARTS[part]), data, checkpoint)
        result[part] = table["eval_acc"].round(4).to_dict()
        result[f"{part}_mean"] = float(table["eval_acc"].mean())
        print(f"{part}: {result[part]} mean {result[f'{part}_mean']:.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "results.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
