"""Notebook 02 on real recordings: random split against leave-one-speaker-out, per recipe.

    .venv/bin/python benchmarks/audio_speaker_probe.py --root DIR/recordings \\
        --label cmvn --changes '{"normalize": "utterance"}' --parts val
    # parts: random (the course's 80/20 split, test accuracy), val (each fold's validation
    # speaker: what settings are chosen on), test (each fold's held-out speaker)

Every training is `coursekit.audio.lesson.run` with the notebook's defaults (`AudioConfig`)
plus the JSON `--changes`; checkpoints go to `--out` (a finished one is reloaded, so a second
call with more parts only trains what is missing) and one JSON line per call is appended to
`--out/results.jsonl`. `--root` is read only; the log-mel cache goes to `--out/cache`.

Measured 2026-12-02 on the 1,500-file FSDD sample (george, jackson, lucas), 2 CPU cores
shared with another job, 1 thread, 12 epochs, notebook defaults otherwise; ~25 s per
training. The log-mel features of the 1,500 files: 0.9 s computed in batches and cached,
0.1 s read back (`benchmarks/audio_features.py --root`). Validation folds train on ONE
speaker (the other two are the test and the validation speaker), test folds on two. The
notebook itself (`coursekit run notebooks/02_audiomnist_melspectrogram.ipynb -p data_root
DIR/recordings`, ablation on) printed this table (validation chooses, test is only shown):

| variant | validation mean | test mean (min-max) |
| --- | --- | --- |
| base (global mean/std) | 26.0 % | 41.7 % (20.0-59.4) |
| normalize='utterance' (CMVN) | 36.3 % | 50.8 % |
| trim_db=30 (silence cut) | 31.8 % | 43.2 % |
| fill_time (duration normalization) | 36.7 % | 51.7 % |
| word only: trim + CMVN + fill_time | 56.8 % | 67.5 % (63.0-73.4) |
| lifter=13 (MFCC smoothing) | 34.2 % | 42.1 % |
| freq_warp=0.12 (VTLP) | 32.5 % | 35.1 % |
| time_stretch=0.15 | 38.1 % | 45.7 % |
| freq_mask=6, time_mask=12 (SpecAugment) | 33.7 % | 41.2 % |
| time_shift=15 | 33.3 % | 45.7 % |
| head='time_avg' | 31.7 % | 43.7 % |

Greedy forward selection from "word only" (+1 point on validation to keep an addition):
+ time_stretch 58.7 % (kept), + fill / + CMVN 58.7 % (already in), + MFCC 55.5 %,
+ SpecAugment 53.1 %, + time_shift 60.2 % (kept), + VTLP 61.6 % (kept), + trim 61.6 %,
+ time_avg 48.2 %. The recipe (word only + time_stretch 0.15 + time_shift 15 + VTLP 0.12)
on the held-out speakers: 74.6, 71.8, 68.2: mean 71.5 % (base 41.7 %); random split 97.0 %
(base 96.0 %): the leakage gap falls from 54.3 to 25.5 points. With this script afterwards,
on top of the recipe: 24 epochs instead of 12, validation 60.7 -> 62.9 % (kept by the rule),
test 76.6, 71.0, 63.4: mean 70.3 %, random split 97.3 %: no gain on the held-out speakers;
cosine schedule on top, validation 63.5 % (+0.6, not kept). On top of the 12-epoch recipe
(validation 60.7 % here): weight_decay 1e-3 61.2 %, dropout 0.5 60.9 %, channels (32, 64,
128) 60.0 %: none kept.

Later the same day (1 thread, validation means unless said). Seeds: the recipe trained with
seeds 0-4 gives 60.7, 67.0, 62.4, 59.3, 62.8 % (range 7.7 points): one training's 2-3
points are noise, so what follows compares ensembles of 3 networks (`ensemble=3`, their
probabilities averaged; notebook variant "ens"), which also gain: recipe 66.9 % with 3
networks, 67.4 % with 5 (+0.5: 3 kept), base 36.6 % with 3. Tried on top of the recipe
with 3 networks (66.9 %): band limits `min_hz` 100 + `max_hz` 3400 69.0 % (kept: the
notebook variant "band"), `min_hz` 100 alone 67.7 %, `max_hz` 3400 alone 66.7 %, 300-3400 Hz
67.4 %, band + a 4th conv block 65.8 %, deltas 64.1 %, VTLP 0.2 instead of 0.12 64.9 %,
per-speaker CMVN (statistics pooled over each speaker's recordings instead of each
recording) 63.5 %. On one network: test-time averaging over frequency warps 0.92/1/1.08
(0.88/1/1.12) 60.8 (60.5) % vs 60.7 %. The ones not kept were removed from the package.
Unsupervised adaptation (`adapt`, notebook variant "adapt"; the evaluation recordings
the recipe's ensemble gives a probability >= the threshold are pseudo-labelled and learnt
too; no evaluation label is read), measured first with one student network on top of the
band recipe's ensemble (69.0 %): threshold 0.5 72.1 %, 0.7 76.0 %, 0.9 70.7 % (0.7 kept).

The notebook's run afterwards (`coursekit run ... -p data_root DIR/recordings`, both new
variants in its ablation; the greedy selection added band 64.1 % and then, tried last, the
ensemble 68.7 % and the adaptation 73.2 % on validation) printed, on the held-out speakers:
recipe without adaptation (a speaker never heard) 74.6, 74.2, 70.0: mean 72.9 %; with
adaptation (the speaker's recordings heard, not their labels) 76.6, 73.2, 77.0: mean 75.6 %;
random split 98.3 % (base 41.7 % and 96.0 %). A run before, without the band variant, had
chosen the ensemble alone on top of the recipe: 77.8, 71.2, 70.4: mean 73.1 %. The issue's
goal (mean >= 75 % on this sample) is reached only with the adaptation.

Afterwards (2026-12-02, fourth session; validation means, ensembles of 3 networks, on top of
the band recipe without adaptation: 69.0 %), none kept: `lifter` 20 / 13 / 8: 68.8 / 66.6 /
62.9 %; SpecAugment (freq_mask 4, time_mask 8) 65.4 %; `trim_db` 20 / 40 instead of 30:
67.8 / 63.8 %. Tried with code written for the trial and removed since: label smoothing 0.1
69.7 % (+0.7); mixup alpha 0.2 / 0.5 68.2 / 65.1 %; a log-mel floor at the recording's
maximum - 40 / - 50 dB 68.8 / 68.3 % (lucas's median frame sits 44 dB under his loudest,
the others' 36 dB); heads pooling frequency (max) 57.0 %, or time down to 4 / 8 cells
63.4 / 65.5 %; training on a random one of several silence cuts (trim 20/40 or 20/25/35
beside 30, eval at 30) 68.3 / 66.7 %. The validation errors are whole digits read as
another one (jackson's "four" as "two" 35 times in 50; george's and lucas's "two" as
"six"/"seven"), and they change with the silence cut: averaging the probabilities of
networks trained with different cuts (30, 20, 40 dB, one network each, seeds 0, 1, 2) gave
70.1 % against 69.0 % for three at 30 dB (nine networks, three per cut: 72.1 %). Measured
by combining the probe's checkpoints in a scratch script, not built: each member would need
its own input.

Silence before the word differs by speaker (0.03 s on average for george and jackson,
0.14 s for lucas): the base network, which reads absolute time positions, learns it as a
trait of the voice; cutting it, with the level and duration normalized on the word alone,
is what gains most.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from coursekit.audio import lesson
from coursekit.audio.lesson import AudioConfig

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
