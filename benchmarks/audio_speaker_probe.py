"""Notebook 02 on real recordings: random split against leave-one-speaker-out, per recipe.

    .venv/bin/python benchmarks/audio_speaker_probe.py --root DIR \\
        --label cmvn --changes '{"normalize": "utterance"}' --parts val
    # --root: the data root, or the recordings folder itself
    # parts: random (the course's 80/20 split, test accuracy), val (each fold's validation
    # speaker: what settings are chosen on), test (each fold's held-out speaker: shown only)

    .venv/bin/python benchmarks/audio_speaker_probe.py --root DIR --recipe \\
        --train-speakers george,jackson,lucas,nicolas --test-speakers theo,yweweler
    # one training on the first speakers' recordings, the accuracy on each of the second
    # (strict: no adaptation); the last line is `accuracy: NN.NN`, their mean in %

--recipe starts from the notebook's recipe (`lesson.RECIPE` without its adaptation)
instead of the base network; `--changes` applies on top of either.

Every training is `coursekit.audio.lesson.run` with the notebook's defaults (`AudioConfig`)
plus the JSON `--changes`; checkpoints go to `--out` (a finished one is reloaded, so a second
call with more parts only trains what is missing) and one JSON line per call is appended to
`--out/results.jsonl`. `--root` is read only; the log-mel cache goes to `--out/cache`.
What it measured, dated: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from coursekit.audio import lesson, voices
from coursekit.audio.lesson import AudioConfig

PARTS = {"val": "validation", "test": "test"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True,
                        help="the data root or the recordings folder (read only)")
    parser.add_argument("--label", default="probe")
    parser.add_argument("--changes", default="{}", help="AudioConfig fields, as JSON")
    parser.add_argument("--recipe", action="store_true",
                        help="start from lesson.RECIPE without adaptation (strict)")
    parser.add_argument("--train-speakers", type=speaker_list, default=None,
                        help="comma-separated speakers to train on (default with "
                             "--test-speakers: every other speaker of --root)")
    parser.add_argument("--test-speakers", type=speaker_list, default=None,
                        help="comma-separated held-out speakers; prints their mean accuracy "
                             "last, as 'accuracy: NN.NN'")
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
    changes = {**(strict_recipe() if args.recipe else {}), **json.loads(args.changes)}
    config = replace(AudioConfig(label=args.label, device="cpu"), **changes)
    checkpoint = lambda c: args.out / f"{c.name}.pt"  # noqa: E731
    if args.train_speakers is not None and args.test_speakers is None:
        parser.error("--train-speakers needs --test-speakers (the voices to measure)")
    if args.test_speakers is not None:
        heldout(args, config, changes, data, checkpoint)
        return
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


def speaker_list(text: str) -> list[str]:
    """Return the speakers of a comma-separated list ('george,jackson')."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"no speaker in {text!r}: give names like a,b")
    return names


def strict_recipe() -> dict:
    """Return the notebook's recipe (`lesson.RECIPE`) without its unsupervised adaptation."""
    return {**lesson.RECIPE, "adapt": 0.0}


def heldout(args: argparse.Namespace, config: AudioConfig, changes: dict,
            data: lesson.AudioData, checkpoint) -> None:
    """Train on --train-speakers, print each --test-speakers accuracy, then their mean."""
    test = args.test_speakers
    train = args.train_speakers or [s for s in data.speakers if s not in test]
    start = time.perf_counter()
    accuracies = voices.heldout_accuracies(config, data, train, test, checkpoint)
    seconds = time.perf_counter() - start
    for speaker, accuracy in accuracies.items():
        print(f"{speaker}: {100 * accuracy:.2f}", flush=True)
    print(f"trained on {','.join(sorted(train))}: {accuracies.attrs['train_seconds']:.0f} s of "
          f"training (ensemble of {config.ensemble}, {config.epochs} epochs), this call "
          f"{seconds:.0f} s, {torch.get_num_threads()} thread(s)")
    result = {"label": args.label, "changes": changes, "n_files": len(data.table),
              "train_speakers": sorted(train), "heldout": accuracies.round(4).to_dict(),
              "heldout_mean": float(accuracies.mean()), "seconds": round(seconds, 1),
              "train_seconds": round(accuracies.attrs["train_seconds"], 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "results.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    print(f"accuracy: {100 * accuracies.mean():.2f}")


if __name__ == "__main__":
    main()
