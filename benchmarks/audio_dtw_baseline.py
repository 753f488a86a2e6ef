"""A reference for notebook 02's speaker-independent goal: MFCC + DTW templates, no training.

    .venv/bin/python benchmarks/audio_dtw_baseline.py --root DIR \\
        --train-speakers george,jackson,lucas --test-speakers nicolas
    # without --test-speakers: leave-one-speaker-out over every speaker of --root

Each recording becomes its MFCC sequence (the cached log-mel of `coursekit.audio.lesson`,
silence cut at 30 dB, DCT coefficients 1-12 of each frame, each coefficient's mean and
std over the word removed: cepstral mean and variance normalization); a held-out recording
takes the digit of its nearest training recording (1-NN) under dynamic time warping
(`dtaidistance.dtw_ndim`, C, squared Euclidean frame distance). Nothing is fitted or chosen
(the settings are the textbook ones, fixed before any run), so the held-out speakers'
accuracy is a reference for the networks, not a choice. The last line is `accuracy: NN.NN`
(mean over the test speakers, in %), as for `audio_speaker_probe.py`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio
from dtaidistance import dtw_ndim

from coursekit.audio import lesson
from coursekit.audio.transforms import trim_silence, utterance_normalize

N_CEPSTRA = 13  # c0 (the level) is dropped: coefficients 1-12


def mfcc_sequences(data: lesson.AudioData, trim_db: float = 30.0) -> list[np.ndarray]:
    """Return each recording's MFCC sequence, float64 (frames of the word, 12)."""
    x, lengths = trim_silence(data.x, data.lengths, trim_db)
    dct = torchaudio.functional.create_dct(N_CEPSTRA, data.mel.n_mels, norm="ortho")
    cepstra = torch.einsum("fk,nft->nkt", dct, x)[:, 1:]  # (N, 12, T)
    cepstra = utterance_normalize(cepstra, lengths)
    return [c[:, :n].T.double().contiguous().numpy() for c, n in zip(cepstra, lengths.tolist(),
                                                                      strict=True)]


def nearest_template(queries: list[np.ndarray], templates: list[np.ndarray]) -> np.ndarray:
    """Return, for each query sequence, the index of its nearest template under DTW."""
    series = [*queries, *templates]
    block = ((0, len(queries)), (len(queries), len(series)))
    distances = dtw_ndim.distance_matrix_fast(series, block=block, parallel=False)
    return np.argmin(distances[: len(queries), len(queries):], axis=1)


def heldout(data: lesson.AudioData, sequences: list[np.ndarray], train: list[str],
            test: list[str], per_digit: int | None = None) -> dict[str, float]:
    """Return {test speaker: 1-NN DTW accuracy against the training speakers' templates};
    per_digit: keep only each training speaker's first recordings of each digit (by index)."""
    table = data.table
    speakers, digits = table["speaker"].to_numpy(), table["digit"].to_numpy()
    templates = np.flatnonzero(np.isin(speakers, train))
    if per_digit is not None:
        ranks = table.iloc[templates].groupby(["speaker", "digit"])["index"].rank(method="first")
        templates = templates[ranks.to_numpy() <= per_digit]
    accuracies = {}
    for speaker in test:
        rows = np.flatnonzero(speakers == speaker)
        nearest = nearest_template([sequences[i] for i in rows], [sequences[i] for i in templates])
        accuracies[speaker] = float((digits[templates[nearest]] == digits[rows]).mean())
    return accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True,
                        help="the data root or the recordings folder (read only)")
    parser.add_argument("--train-speakers", default=None,
                        help="comma-separated template speakers (default: every other one)")
    parser.add_argument("--test-speakers", default=None,
                        help="comma-separated held-out speakers (default: each in turn)")
    parser.add_argument("--per-digit", type=int, default=None,
                        help="templates per training speaker and digit (default: all; fewer "
                             "is faster: the cost is queries x templates DTWs)")
    parser.add_argument("--cache", type=Path, default=Path("runs/audio_speaker_probe/cache"))
    args = parser.parse_args()
    data = lesson.load_audio(args.root, cache_dir=args.cache)
    names = lambda text: [s for s in (text or "").split(",") if s]  # noqa: E731
    unknown = sorted(set(names(args.train_speakers) + names(args.test_speakers))
                     - set(data.speakers))
    if unknown:
        parser.error(f"speakers {unknown} are not in {args.root}; it has {data.speakers}")
    sequences = mfcc_sequences(data)
    folds = ([names(args.test_speakers)] if args.test_speakers
             else [[s] for s in data.speakers])
    accuracies = {}
    for test in folds:
        train = names(args.train_speakers) or [s for s in data.speakers if s not in test]
        if set(train) & set(test):
            parser.error(f"{sorted(set(train) & set(test))} both template and test speakers")
        start = time.perf_counter()
        fold = heldout(data, sequences, train, test, args.per_digit)
        for speaker, accuracy in fold.items():
            print(f"{speaker}: {100 * accuracy:.2f} (templates of {','.join(train)}, "
                  f"{time.perf_counter() - start:.0f} s)", flush=True)
        accuracies.update(fold)
    print(f"worst: {100 * min(accuracies.values()):.2f}")
    print(f"accuracy: {100 * np.mean(list(accuracies.values())):.2f}")


if __name__ == "__main__":
    main()
