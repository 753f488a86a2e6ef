"""Notebook 07: the generated data of HungarianNet (Adavanne et al. 2021), any max_doas.

Each sample is a (max_doas x max_doas) matrix of Euclidean distances between reference and
predicted directions of arrival (DOAs) as unit vectors (the chord, not the angle), and its
label, the 0/1 assignment that `scipy.optimize.linear_sum_assignment` finds on the active
(nb_ref x nb_pred) block. The recipe is the public hungarian-net generator's, vectorized:

- for each grid resolution in RESOLUTIONS (degrees; azimuth -180..180 excluded, elevation
  -90..90 included) and each (nb_ref, nb_pred) in {0..max_doas}^2, `sample_range[min(nb_ref,
  nb_pred)]` samples (x `scale`: 1 for train, 0.1 for validation and test); azimuths and
  elevations are drawn without repetition on the grid, each coordinate on its own (so a
  (nb_ref, nb_pred) pair that needs more values than the grid has is skipped, as the public
  code does for 10 DOAs at 30 degrees: 7 elevations);
- padding rows: for half of the samples uniform in [-100, 100] per coordinate, values in
  [-1, 1] replaced by 10; for the other half every coordinate is 10;
- then the rows of both matrices, or their columns (one coin per sample), are permuted.

Splits are disjoint by content: the public recipe draws its splits independently, so a
coarse grid, or a block without association and constant padding (an all-zero matrix),
gives validation and test matrices byte-identical to training ones (`overlap_share`
measures the share; notebook 07 prints it for the raw draw). Here a validation matrix
whose distances already appear in train, and a test matrix whose distances appear in train
or validation, are dropped
(not redrawn: a redraw would only shift the same blocks' odds). The test split is thus the
recipe's distribution conditioned on being new; `meta` says how many were dropped per
block, and `combination_table` shows the blocks that shrink.

`balanced_sample_range(max_doas, per_group)` gives every number of ones in a label
(min(nb_ref, nb_pred) = 0..max_doas) the same share: per_group=15000 and max_doas=2 give the
public (3000, 5000, 15000), i.e. 405,000 training and 40,500 test samples.

File format: one `.npz` per split (numpy, no pickle) with arrays distances float32
(N, M, M), labels uint8 (N, M, M), nb_ref/nb_pred/resolution int16 (N,), ref_mask/pred_mask
bool (N, M) (where the active rows and columns ended up after the permutation), and `meta`,
a JSON string (format version, max_doas, sample_range, seed, split, scale, skipped blocks,
disjoint_from and dropped: the earlier splits and the matrices dropped as seen there).
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment

from coursekit.checkpoint import atomic_write
from coursekit.data.errors import DatasetFormatError, DatasetMissingError
from coursekit.data.roots import resolve_root

RESOLUTIONS = (1, 2, 3, 4, 5, 10, 15, 20, 30)
PUBLIC_PER_GROUP = 15000  # public recipe, 2 DOAs: (3000, 5000, 15000) x 5, 3, 1 pairs
SPLITS = {"train": 1.0, "val": 0.1, "test": 0.1}  # scale of sample_range per split
PAD_VALUE = 10.0
PAD_RANGE = 100.0
FORMAT_VERSION = 1
ARRAYS = {
    "distances": np.float32, "labels": np.uint8, "nb_ref": np.int16, "nb_pred": np.int16,
    "resolution": np.int16, "ref_mask": np.bool_, "pred_mask": np.bool_,
}  # fmt: skip


@dataclass(frozen=True)
class AssignmentData:
    """One split: distances float32 (N, M, M), labels uint8 (N, M, M), per-sample counts."""

    distances: np.ndarray
    labels: np.ndarray
    nb_ref: np.ndarray
    nb_pred: np.ndarray
    resolution: np.ndarray
    ref_mask: np.ndarray
    pred_mask: np.ndarray
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def max_doas(self) -> int:
        """Return M, the side of every matrix."""
        return int(self.labels.shape[-1])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x float32 (N, M, M) distances, y float32 (N, M, M) 0/1 labels)."""
        return torch.from_numpy(self.distances), torch.from_numpy(self.labels).float()


def take(data: AssignmentData, index: np.ndarray) -> AssignmentData:
    """Return the matrices of `data` at `index` (an integer or boolean array), meta kept."""
    return AssignmentData(**{key: getattr(data, key)[index] for key in ARRAYS}, meta=data.meta)


def pairs_per_group(max_doas: int) -> np.ndarray:
    """Return (max_doas + 1,) ints: how many (nb_ref, nb_pred) pairs have min(...) = k."""
    _check_max_doas(max_doas)
    k = np.arange(max_doas + 1)
    return np.where(k < max_doas, 2 * (max_doas - k) + 1, 1)


def balanced_sample_range(max_doas: int, per_group: int = PUBLIC_PER_GROUP) -> tuple[int, ...]:
    """Return samples per (nb_ref, nb_pred) pair, indexed by min(nb_ref, nb_pred).

    Each group of pairs with the same min (= the number of ones of the label) gets about
    `per_group` samples per resolution, so no number of associations dominates.
    """
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1, got {per_group}")
    return tuple(max(1, round(per_group / n)) for n in pairs_per_group(max_doas))


def _check_max_doas(max_doas: int) -> None:
    if not isinstance(max_doas, int | np.integer) or max_doas < 1:
        raise ValueError(f"max_doas must be an integer >= 1, got {max_doas!r}")


def grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the (azimuths, elevations) grid in degrees at `resolution` degrees."""
    return np.arange(-180, 180, resolution), np.arange(-90, 91, resolution)


def planned_counts(
    max_doas: int,
    sample_range: Sequence[int],
    scale: float = 1.0,
    resolutions: Sequence[int] = RESOLUTIONS,
) -> pd.DataFrame:
    """Return one row per (resolution, nb_ref, nb_pred): samples planned and whether skipped.

    A pair is skipped when the grid has fewer azimuths or elevations than DOAs to draw
    without repetition. Columns: resolution, nb_ref, nb_pred, ones (per label), samples,
    skipped.
    """
    _check_max_doas(max_doas)
    if len(sample_range) != max_doas + 1:
        raise ValueError(
            f"sample_range needs max_doas + 1 = {max_doas + 1} values (one per "
            f"min(nb_ref, nb_pred)), got {len(sample_range)}"
        )
    rows = []
    for res in resolutions:
        azi, ele = grid(res)
        for nb_ref in range(max_doas + 1):
            for nb_pred in range(max_doas + 1):
                n = int(scale * sample_range[min(nb_ref, nb_pred)])
                skipped = max(nb_ref, nb_pred) > min(len(azi), len(ele))
                rows.append((res, nb_ref, nb_pred, min(nb_ref, nb_pred), n, skipped))
    columns = ["resolution", "nb_ref", "nb_pred", "ones", "samples", "skipped"]
    return pd.DataFrame(rows, columns=columns)


def sph2cart(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """Return unit vectors (..., 3) for angles in radians of any shape (...)."""
    cos_e = np.cos(elevation)
    return np.stack([cos_e * np.cos(azimuth), cos_e * np.sin(azimuth), np.sin(elevation)], -1)


def _draw_without_repetition(rng: np.random.Generator, n: int, pool: int, k: int) -> np.ndarray:
    """Return (n, k) indices in [0, pool), distinct within each row, in random order."""
    if k == 0:
        return np.zeros((n, 0), dtype=np.int64)
    keys = rng.random((n, pool))
    chosen = np.argpartition(keys, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(keys, chosen, axis=1), axis=1)
    return np.take_along_axis(chosen, order, axis=1)


def _random_doas(rng: np.random.Generator, n: int, k: int, resolution: int) -> np.ndarray:
    """Return (n, k, 3) unit vectors of DOAs drawn on the grid, no azimuth or elevation twice."""
    azi, ele = grid(resolution)
    a = azi[_draw_without_repetition(rng, n, len(azi), k)]
    e = ele[_draw_without_repetition(rng, n, len(ele), k)]
    return sph2cart(np.deg2rad(a), np.deg2rad(e))


def _padding(rng: np.random.Generator, n: int, max_doas: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (ref, pred) padding rows, each (n, max_doas, 3): for about half of the samples
    (one coin per sample, shared by both) uniform in [-100, 100] but never in [-1, 1], for the
    others every coordinate 10."""
    pads = rng.uniform(-PAD_RANGE, PAD_RANGE, size=(2, n, max_doas, 3))
    pads[np.abs(pads) <= 1] = PAD_VALUE  # keep padding out of the range of unit vectors
    pads[:, rng.random(n) <= 0.5] = PAD_VALUE
    return pads[0], pads[1]


def assignment_labels(distances: np.ndarray, nb_ref: int, nb_pred: int) -> np.ndarray:
    """Return uint8 (n, M, M) labels: scipy's optimal assignment of each active block."""
    labels = np.zeros(distances.shape, dtype=np.uint8)
    if nb_ref == 0 or nb_pred == 0:
        return labels
    for i, block in enumerate(distances[:, :nb_ref, :nb_pred]):
        rows, cols = linear_sum_assignment(block)
        labels[i, rows, cols] = 1
    return labels


def _permute(rng: np.random.Generator, arrays: dict[str, np.ndarray], max_doas: int) -> None:
    """Permute in place, per sample, the rows (or, one coin per sample, the columns) of the
    matrices and the matching mask."""
    n = len(arrays["labels"])
    perm = rng.permuted(np.tile(np.arange(max_doas), (n, 1)), axis=1)
    by_row = rng.random(n) > 0.5
    for key in ("distances", "labels"):
        rows = np.take_along_axis(arrays[key], perm[:, :, None], axis=1)
        cols = np.take_along_axis(arrays[key], perm[:, None, :], axis=2)
        arrays[key] = np.where(by_row[:, None, None], rows, cols)
    for key, use in (("ref_mask", by_row), ("pred_mask", ~by_row)):
        moved = np.take_along_axis(arrays[key], perm, axis=1)
        arrays[key] = np.where(use[:, None], moved, arrays[key])


def _block(
    rng: np.random.Generator, n: int, max_doas: int, nb_ref: int, nb_pred: int, res: int
) -> dict[str, np.ndarray]:
    """Return the arrays of n samples of one (resolution, nb_ref, nb_pred) block."""
    ref, pred = _padding(rng, n, max_doas)
    ref[:, :nb_ref] = _random_doas(rng, n, nb_ref, res)
    pred[:, :nb_pred] = _random_doas(rng, n, nb_pred, res)
    # float32 before labelling, so that the stored matrices give scipy's labels exactly
    distances = np.linalg.norm(ref[:, :, None, :] - pred[:, None, :, :], axis=-1)
    distances = distances.astype(np.float32)
    arange = np.arange(max_doas)
    arrays = {
        "distances": distances,
        "labels": assignment_labels(distances, nb_ref, nb_pred),
        "nb_ref": np.full(n, nb_ref, np.int16),
        "nb_pred": np.full(n, nb_pred, np.int16),
        "resolution": np.full(n, res, np.int16),
        "ref_mask": np.tile(arange < nb_ref, (n, 1)),
        "pred_mask": np.tile(arange < nb_pred, (n, 1)),
    }
    _permute(rng, arrays, max_doas)
    return arrays


def generate(
    max_doas: int,
    sample_range: Sequence[int] | None = None,
    *,
    seed: int = 0,
    split: str = "train",
    resolutions: Sequence[int] = RESOLUTIONS,
    exclude: Sequence[AssignmentData] | None = None,
) -> AssignmentData:
    """Return a generated split (see the module docstring); same arguments, same arrays.

    sample_range: samples per (nb_ref, nb_pred) pair indexed by min(nb_ref, nb_pred)
    (default `balanced_sample_range(max_doas)`); scaled by SPLITS[split]. Each split draws
    from its own stream of `seed`; then every matrix whose distances appear in a split of
    `exclude` is dropped. exclude None: the earlier splits of the same arguments (none for
    train, train for val, train and val for test), generated here unless given, so that
    train, val and test never share a matrix; () keeps the raw draw (the public recipe's).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    sample_range = tuple(sample_range or balanced_sample_range(max_doas))
    plan = planned_counts(max_doas, sample_range, SPLITS[split], resolutions)
    rng = np.random.default_rng([seed, list(SPLITS).index(split)])
    t0 = time.perf_counter()
    blocks = [
        _block(rng, row.samples, max_doas, row.nb_ref, row.nb_pred, row.resolution)
        for row in plan.itertuples()
        if not row.skipped and row.samples > 0
    ]
    if not blocks:
        raise ValueError("this sample_range and split plan no sample at all; raise it")
    arrays = {key: np.concatenate([b[key] for b in blocks]) for key in ARRAYS}
    if exclude is None:
        earlier = list(SPLITS)[: list(SPLITS).index(split)]
        exclude = [generate(max_doas, sample_range, seed=seed, split=name,
                            resolutions=resolutions) for name in earlier]  # fmt: skip
    seen = _matrix_keys(exclude)
    keep = np.array([key not in seen for key in _keys(arrays["distances"])], dtype=bool)
    dropped = pd.DataFrame({key: arrays[key][~keep] for key in ("resolution", "nb_ref", "nb_pred")})
    dropped = dropped.value_counts().sort_index().reset_index()
    arrays = {key: value[keep] for key, value in arrays.items()}
    skipped = plan[plan.skipped & (plan.samples > 0)]
    meta = {
        "format_version": FORMAT_VERSION, "max_doas": max_doas, "sample_range": sample_range,
        "seed": seed, "split": split, "scale": SPLITS[split], "resolutions": list(resolutions),
        "skipped": skipped[["resolution", "nb_ref", "nb_pred", "samples"]].values.tolist(),
        "disjoint_from": [d.meta.get("split", "?") for d in exclude],
        "dropped": int((~keep).sum()), "dropped_blocks": dropped.values.tolist(),
        "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    return AssignmentData(**arrays, meta=meta)


def _keys(distances: np.ndarray) -> list[bytes]:
    """Return the bytes of each (M, M) matrix of (N, M, M) distances (float32, C order)."""
    flat = np.ascontiguousarray(distances, dtype=np.float32).reshape(len(distances), -1)
    return [row.tobytes() for row in flat]


def _matrix_keys(splits: Sequence[AssignmentData]) -> set[bytes]:
    return {key for data in splits for key in _keys(data.distances)}


def overlap_share(
    reference: AssignmentData | Sequence[AssignmentData], data: AssignmentData
) -> float:
    """Return the share (0..1) of `data`'s matrices whose distances are byte-identical to a
    matrix of `reference` (one split or several)."""
    if isinstance(reference, AssignmentData):
        reference = [reference]
    if len(data) == 0:
        return 0.0
    seen = _matrix_keys(reference)
    return sum(key in seen for key in _keys(data.distances)) / len(data)


def save(data: AssignmentData, path: str | Path) -> Path:
    """Write `data` to `path` (.npz, no pickle) atomically and return the path."""
    buffer = io.BytesIO()
    arrays = {key: getattr(data, key) for key in ARRAYS}
    np.savez_compressed(buffer, **arrays, meta=np.array(json.dumps(data.meta)))
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def load(path: str | Path) -> AssignmentData:
    """Return the split stored at `path`; DatasetMissingError / DatasetFormatError if unusable."""
    path = Path(path)
    if not path.exists():
        raise DatasetMissingError(
            f"no HungarianNet dataset at {path}. It is generated, not downloaded: run "
            "coursekit.hungarian.data.ensure_dataset(max_doas, split, ...) (the notebook's "
            "data cell does) to write it."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = {key: npz[key] for key in npz.files}
    except Exception as exc:  # zipfile and numpy raise several types for a damaged file
        raise DatasetFormatError(f"{path} is not a readable .npz file ({exc}); delete it") from exc
    return _from_arrays(files, path)


def _from_arrays(files: dict[str, np.ndarray], path: Path) -> AssignmentData:
    """Return AssignmentData from the arrays of a file, after checking names, types, shapes."""
    missing = [key for key in (*ARRAYS, "meta") if key not in files]
    if missing:
        raise DatasetFormatError(f"{path} lacks the arrays {missing}; delete it to regenerate")
    meta = json.loads(str(files["meta"]))
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetFormatError(
            f"{path} has format version {meta.get('format_version')}, this coursekit reads "
            f"{FORMAT_VERSION}; delete it to regenerate"
        )
    n, m = len(files["labels"]), meta["max_doas"]
    shapes = {"distances": (n, m, m), "labels": (n, m, m), "ref_mask": (n, m), "pred_mask": (n, m)}
    for key, dtype in ARRAYS.items():
        array = files[key]
        if array.dtype != dtype or array.shape != shapes.get(key, (n,)):
            raise DatasetFormatError(
                f"{path}: array {key!r} is {array.dtype} {array.shape}, expected "
                f"{np.dtype(dtype)} {shapes.get(key, (n,))}; delete the file to regenerate"
            )
    meta["sample_range"] = tuple(meta["sample_range"])
    return AssignmentData(**{key: files[key] for key in ARRAYS}, meta=meta)


def dataset_dir(root: str | Path | None = None) -> Path:
    """Return where generated splits live: `<data root>/hungarian` (`data.roots.resolve_root`)."""
    return resolve_root(root) / "hungarian"


def dataset_path(max_doas: int, split: str, sample_range: Sequence[int], seed: int) -> Path:
    """Return the file of one split, named after everything that determines its content."""
    counts = "-".join(str(int(n)) for n in sample_range)
    return dataset_dir() / f"hnet_{max_doas}doas_{counts}_seed{seed}_{split}.npz"


def ensure_dataset(
    max_doas: int, split: str, sample_range: Sequence[int] | None = None, seed: int = 0
) -> AssignmentData:
    """Return the split from its file, generating and writing the file first if absent.

    A val or test file written before splits were made disjoint (no 'disjoint_from' in its
    meta) is generated again, from the earlier splits' files (written first if absent).
    """
    sample_range = tuple(sample_range or balanced_sample_range(max_doas))
    path = dataset_path(max_doas, split, sample_range, seed)
    if path.exists():
        data = load(path)
        if split == "train" or "disjoint_from" in data.meta:
            return data
    earlier = list(SPLITS)[: list(SPLITS).index(split)]
    exclude = [ensure_dataset(max_doas, name, sample_range, seed) for name in earlier]
    data = generate(max_doas, sample_range, seed=seed, split=split, exclude=exclude)
    save(data, path)
    return data


def combination_table(data: AssignmentData) -> pd.DataFrame:
    """Return, per (nb_ref, nb_pred), samples, share of samples, ones and zeros of the labels."""
    frame = pd.DataFrame({
        "nb_ref": data.nb_ref, "nb_pred": data.nb_pred,
        "ones": data.labels.reshape(len(data), -1).sum(1, dtype=np.int64),
    })  # fmt: skip
    table = frame.groupby(["nb_ref", "nb_pred"]).agg(
        samples=("ones", "size"), ones=("ones", "sum")
    )
    table["zeros"] = table["samples"] * data.max_doas**2 - table["ones"]
    table["share"] = table["samples"] / len(data)
    table["ones_fraction"] = table["ones"] / (table["ones"] + table["zeros"])
    return table


def class_balance(data: AssignmentData) -> dict[str, Any]:
    """Return the label classes over all cells: ones, zeros, ones_fraction, zeros_per_one,
    cell_frequency (M, M) (share of samples with a one in each cell), samples."""
    ones = int(data.labels.sum())
    cells = data.labels.size
    return {
        "samples": len(data), "ones": ones, "zeros": cells - ones,
        "ones_fraction": ones / cells,
        "zeros_per_one": (cells - ones) / ones if ones else math.inf,
        "cell_frequency": data.labels.mean(axis=0, dtype=np.float64),
    }  # fmt: skip


def planned_balance(max_doas: int, sample_range: Sequence[int] | None = None) -> dict[str, float]:
    """Return the class balance a full training split would have, without generating it.

    Keys: samples, ones, zeros, ones_fraction, zeros_per_one (each label has
    min(nb_ref, nb_pred) ones among max_doas^2 cells).
    """
    plan = planned_counts(max_doas, sample_range or balanced_sample_range(max_doas))
    plan = plan[~plan.skipped]
    samples = int(plan.samples.sum())
    ones = int((plan.samples * plan.ones).sum())
    zeros = samples * max_doas**2 - ones
    return {
        "samples": samples, "ones": ones, "zeros": zeros,
        "ones_fraction": ones / (ones + zeros), "zeros_per_one": zeros / ones,
    }  # fmt: skip


class MatrixLoader:
    """Iterable of (x float32 (B, M, M), y float32 (B, M, M)) batches of one split.

    With `shuffle`, each epoch's order is a permutation drawn from the global torch RNG
    when iteration starts, so `torch.manual_seed` (or a restored RNG state) reproduces it.
    `len(loader)` is the number of batches.
    """

    def __init__(
        self,
        data: AssignmentData,
        batch_size: int = 256,
        shuffle: bool = False,
        drop_last: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        x, y = data.tensors()
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = torch.randperm(n) if self.shuffle else torch.arange(n)
        order = order.to(self.y.device)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.x[index], self.y[index]
