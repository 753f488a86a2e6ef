"""Notebook 02: which parts of a word the network reads when it mistakes a new voice's digit.

    .venv/bin/python benchmarks/audio_error_cam.py --root DIR --test-speaker george \\
        --out runs/audio_speaker_probe
    # trains (or reloads, same checkpoints as audio_speaker_probe.py) the recipe's network of
    # the validation fold whose test speaker is --test-speaker, and looks at the errors on
    # that fold's validation speaker (the test speaker is never read)

Grad-CAM (torchcam) on the last conv block, for the predicted digit, of every validation
recording. The input is the word alone stretched over the clip (`fill_time`), so time reads
as a fraction of the word. Prints the validation accuracy, the most frequent confusions and,
for each, where the maps of the errors put their weight (time, frequency) against the same
speaker's correct readings of the predicted digit; saves `cam_<validation speaker>.png` under
--out: the mean input and mean map of the top confusion's errors, of the validation
speaker's correct readings of the predicted digit, and of the training voices' true digit.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchcam.methods  # noqa: E402

from coursekit.audio import lesson  # noqa: E402
from coursekit.audio.data import mel_frequencies  # noqa: E402
from coursekit.audio.lesson import AudioConfig  # noqa: E402
from coursekit.train import predict  # noqa: E402

DIGITS_FR = ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf")


def grad_cams(model: torch.nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Return the Grad-CAM (N, F', T') in [0, 1] of each input x (N, C, F, T) for its
    predicted class, at `layer`."""
    extractor = torchcam.methods.GradCAM(model, target_layer=layer)
    try:
        maps = []
        for start in range(0, len(x), 64):
            scores = model(x[start : start + 64])
            maps.append(extractor(scores.argmax(1).tolist(), scores)[0].detach())
    finally:
        extractor.remove_hooks()
    return torch.nan_to_num(torch.cat(maps))


def centre(maps: torch.Tensor, axis: int) -> np.ndarray:
    """Return the centre of mass (N,) of maps (N, F', T') along axis (1: frequency, 2: time),
    as a fraction in [0, 1] of that axis."""
    weights = maps.sum(dim=3 - axis)
    positions = (torch.arange(maps.shape[axis]) + 0.5) / maps.shape[axis]
    return ((weights * positions).sum(1) / weights.sum(1).clamp_min(1e-9)).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--test-speaker", required=True,
                        help="the fold (its speaker is left out and never read)")
    parser.add_argument("--changes", default='{"ensemble": 1}',
                        help="AudioConfig fields on top of the strict recipe, as JSON")
    parser.add_argument("--out", type=Path, default=Path("runs/audio_speaker_probe"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = lesson.load_audio(args.root, cache_dir=args.out / "cache")
    changes = {**lesson.RECIPE, "adapt": 0.0, **json.loads(args.changes)}
    config = replace(AudioConfig(label="cam", device="cpu"), **changes, split="speaker",
                     test_speaker=args.test_speaker, eval="validation")
    model, _ = lesson.run(config, checkpoint=args.out / f"{config.name}.pt", data=data,
                          verbose=False)
    model.eval()
    parts = lesson.prepare(config, data)
    val_speaker = lesson.validation_speaker(data.speakers, args.test_speaker)
    x, y = parts["x_eval"], parts["y_eval"]
    predicted = predict(model, [x]).argmax(1)
    print(f"validation speaker {val_speaker} (fold without {args.test_speaker}): "
          f"accuracy {100 * float((predicted == y).float().mean()):.1f} %")
    maps = grad_cams(model, x, "features.2")
    wrong = predicted != y
    pairs = [(int(a), int(b)) for a, b in zip(y[wrong], predicted[wrong], strict=True)]
    counts = {p: pairs.count(p) for p in set(pairs)}
    top = sorted(counts, key=counts.get, reverse=True)[:5]
    centres = mel_frequencies(data.mel)[lesson.band_slice(config, data.mel)]
    low, high = np.log(centres[0]), np.log(centres[-1])

    def where(rows: torch.Tensor) -> str:
        t, f = centre(maps[rows], 2).mean(), centre(maps[rows], 1).mean()
        hz = np.exp(low + f * (high - low))  # mel bands are close to log-spaced here
        return f"time {100 * t:.0f} % of the word, ~{hz:.0f} Hz"

    for a, b in top:
        errors = wrong & (y == a) & (predicted == b)
        right_b = ~wrong & (y == b)
        print(f"'{DIGITS_FR[a]}' read '{DIGITS_FR[b]}': {counts[(a, b)]} of "
              f"{int((y == a).sum())}; maps of the errors: {where(errors)}; correct "
              f"'{DIGITS_FR[b]}': {where(right_b) if right_b.any() else '-'}")
    a, b = top[0]
    errors, right_b = wrong & (y == a) & (predicted == b), ~wrong & (y == b)
    train_a = parts["y_train"] == a
    train_maps = grad_cams(model, parts["x_train"][train_a], "features.2")
    panels = [
        (f"{val_speaker} : « {DIGITS_FR[a]} » lu « {DIGITS_FR[b]} »", x[errors], maps[errors]),
        (f"{val_speaker} : « {DIGITS_FR[b]} » bien lu", x[right_b], maps[right_b]),
        (f"voix d'apprentissage : « {DIGITS_FR[a]} »", parts["x_train"][train_a], train_maps),
    ]
    means = [inputs[:, 0].mean(0) for _, inputs, _ in panels]
    scale = float(max(m.abs().max() for m in means))  # one colour scale for the three inputs
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.5), sharex=True)
    for column, (title, inputs, cams) in enumerate(panels):
        axes[0, column].imshow(means[column], origin="lower", aspect="auto", cmap="magma",
                               vmin=-scale, vmax=scale)
        axes[0, column].set_title(f"{title} ({len(inputs)})", fontsize=9)
        axes[1, column].imshow(cams.mean(0), origin="lower", aspect="auto", cmap="viridis",
                               vmin=0, vmax=1)
        axes[1, column].set_xlabel("temps (fraction du mot)")
    axes[0, 0].set_ylabel("bande mel (entrée moyenne)")
    axes[1, 0].set_ylabel("Grad-CAM moyenne")
    for ax in axes.flat:
        ax.set_xticks([])
    fig.tight_layout()
    path = args.out / f"cam_{val_speaker}.png"
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
