"""Notebook 06: COPHY-style coloured balls, generated fast and read in the course's format.

The course's `mini_balls` and `mini_balls_seq` (subsets of COPHY's BallsCF, Baradel et al.
2019) are not reachable offline, and COPHY is itself simulated, so coursekit generates
look-alikes, deterministic by seed, and writes them in the original on-disk format:

- `mini_balls/img_%05d.jpg`: 100x100 RGB, exactly 3 balls of distinct colours out of
  COLORS; `mini_balls/p_bb_%05d.npy` (9, 5): column 0 colour presence, columns 1:5 the box
  [x1, y1, x2, y2] in pixels, one row per colour (zeros when absent);
- `mini_balls_seq/p_%05d.npy` (9,) colour presence and `seq_bb_%05d.npy` (20, 9, 4): the
  boxes over 20 steps.

Physics (vectorized numpy over sequences): 2D discs with a hidden mass in MASSES, friction
in FRICTIONS (a linear drag: each step keeps 1 - DRAG * friction of the speed) and
restitution in RESTITUTIONS, as COPHY draws them; wall bounces lose speed by the ball's
restitution, ball-ball collisions exchange momentum with the pair's mean restitution. The
future is thus only partly predictable from the past. A folder written here holds a
GENERATED marker (JSON: kind, n, seed, version); a folder without it is the user's
original files and is only ever read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from coursekit.checkpoint import atomic_write
from coursekit.data.errors import DatasetFormatError, DatasetMissingError
from coursekit.data.roots import resolve_root

COLORS = ("red", "green", "blue", "yellow", "lime", "purple", "orange", "cyan", "magenta")
# What the student reads (prints, titles, bars), in the order of COLORS.
COLOR_NAMES = ("rouge", "vert", "bleu", "jaune", "vert clair", "violet", "orange", "cyan",
               "magenta")  # fmt: skip
RGB = np.array(
    [
        (230, 25, 25), (0, 128, 0), (30, 60, 255), (255, 230, 0), (120, 255, 60),
        (128, 0, 160), (255, 140, 0), (0, 230, 230), (255, 0, 255),
    ],
    dtype=np.float32,
)  # fmt: skip
N_COLORS, N_BALLS, SIZE, STEPS = 9, 3, 100, 20
BOX_SCALE = (89.0, 88.0, 99.0, 99.0)  # the course's box normalization: boxes / BOX_SCALE
MASSES, FRICTIONS, RESTITUTIONS = (1.0, 2.0, 5.0), (0.1, 0.5, 1.0), (0.1, 0.5, 1.0)
RADIUS = (4.5, 6.0)  # ball radius range in pixels
SPEED = (2.0, 6.0)  # initial speed range in pixels per step
DRAG = 0.04  # share of the speed lost per step at friction 1
SUBSTEPS = 4  # integration steps per recorded step: collisions are checked this often
BACKGROUND = (24.0, 24.0, 28.0)
SHADE = 0.35  # a ball's edge is this much darker than its centre (a lit sphere)
JPEG_QUALITY = 95
IMAGES_FOLDER, SEQUENCES_FOLDER = "mini_balls", "mini_balls_seq"
GENERATED = "COURSEKIT_GENERATED"
VERSION = 1
_INDEX = r"(\d{5,})"


@dataclass
class BallImages:
    """Images uint8 (N, 100, 100, 3), presence float32 (N, 9), boxes float32 (N, 9, 4)."""

    images: np.ndarray
    presence: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class BallSequences:
    """Presence float32 (N, 9), boxes float32 (N, T, 9, 4); physics: hidden per-ball
    parameters (N, 3) in colour order, known for generated data only."""

    presence: np.ndarray
    boxes: np.ndarray
    physics: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.presence)


# --- generation ----------------------------------------------------------------------------


def _draw_colors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return (n, 3) distinct colour indices per row, sorted ascending."""
    return np.sort(np.argsort(rng.random((n, N_COLORS)), axis=1)[:, :N_BALLS], axis=1)


def _overlapping(pos: np.ndarray, radius: np.ndarray, gap: float = 1.0) -> np.ndarray:
    """Return (n,) True where two of the 3 discs (pos (n, 3, 2), radius (n, 3)) are too close."""
    d = np.linalg.norm(pos[:, :, None] - pos[:, None], axis=-1)
    too_close = d < radius[:, :, None] + radius[:, None] + gap
    too_close[:, np.arange(N_BALLS), np.arange(N_BALLS)] = False
    return too_close.any(axis=(1, 2))


def _place(rng: np.random.Generator, radius: np.ndarray) -> np.ndarray:
    """Return (n, 3, 2) ball centres inside the image without overlap (redrawn until so)."""
    pos = np.empty(radius.shape + (2,), dtype=np.float64)
    todo = np.arange(len(radius))
    while len(todo):
        r = radius[todo][..., None]
        pos[todo] = r + rng.random((len(todo), N_BALLS, 2)) * (SIZE - 2 * r)
        todo = todo[_overlapping(pos[todo], radius[todo])]
    return pos


def _boxes(pos: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Return boxes (..., 3, 4) [x1, y1, x2, y2] of discs at pos (..., 3, 2), radius (..., 3)."""
    r = radius[..., None]
    return np.concatenate([pos - r, pos + r], axis=-1)


def _scatter(colors: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return presence (n, 9) and boxes (n, ..., 9, 4) from colours (n, 3) and (n, ..., 3, 4)."""
    n = len(colors)
    presence = np.zeros((n, N_COLORS), dtype=np.float32)
    presence[np.arange(n)[:, None], colors] = 1.0
    out = np.zeros(boxes.shape[:-2] + (N_COLORS, 4), dtype=np.float32)
    by_colour = np.moveaxis(out, -2, 1)  # a view (n, 9, ..., 4): writes go into `out`
    by_colour[np.arange(n)[:, None], colors] = np.moveaxis(boxes, -2, 1)
    return presence, out


def ball_masks(boxes: np.ndarray) -> np.ndarray:
    """Return bool (n, 3, 100, 100): the pixels whose centre lies in each ball's disc.

    boxes: (n, 3, 4) boxes of the balls, [x1, y1, x2, y2] in pixels.
    """
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    radius = (boxes[..., 2] - boxes[..., 0]) / 2
    grid = np.arange(SIZE, dtype=np.float32) + 0.5  # pixel (row i, col j): centre (j+.5, i+.5)
    dx = grid[None, None, None, :] - centre[..., 0, None, None]
    dy = grid[None, None, :, None] - centre[..., 1, None, None]
    return dx**2 + dy**2 <= radius[..., None, None] ** 2


def render(colors: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Return uint8 images (n, 100, 100, 3) of balls colours (n, 3) with boxes (n, 3, 4).

    Each ball is a shaded disc (centre brightest); later balls are drawn over earlier ones.
    """
    n = len(colors)
    images = np.broadcast_to(np.asarray(BACKGROUND, np.float32), (n, SIZE, SIZE, 3)).copy()
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    radius = (boxes[..., 2] - boxes[..., 0]) / 2
    grid = np.arange(SIZE, dtype=np.float32) + 0.5
    for k in range(N_BALLS):
        d2 = (grid[None, None, :] - centre[:, k, 0, None, None]) ** 2 + (
            grid[None, :, None] - centre[:, k, 1, None, None]
        ) ** 2
        rel = d2 / radius[:, k, None, None] ** 2  # (n, 100, 100), <= 1 inside the disc
        colour = RGB[colors[:, k]][:, None, None, :] * (1 - SHADE * rel[..., None])
        images = np.where((rel <= 1)[..., None], colour, images)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def generate_images(n: int, seed: int = 0, chunk: int = 1000) -> BallImages:
    """Return n images of 3 non-overlapping balls, deterministic by seed."""
    rng = np.random.default_rng([seed, 1])
    colors = _draw_colors(rng, n)
    radius = rng.uniform(*RADIUS, size=(n, N_BALLS))
    boxes = _boxes(_place(rng, radius), radius).astype(np.float32)
    images = np.concatenate(
        [render(colors[i : i + chunk], boxes[i : i + chunk]) for i in range(0, n, chunk)]
    ) if n else np.zeros((0, SIZE, SIZE, 3), np.uint8)  # fmt: skip
    presence, full = _scatter(colors, boxes)
    return BallImages(images, presence, full)


def _walls(pos: np.ndarray, vel: np.ndarray, radius: np.ndarray, rest: np.ndarray) -> None:
    """Reflect, in place, the discs that crossed a wall; the bounce keeps `rest` of the speed."""
    lo, hi = radius[..., None], SIZE - radius[..., None]
    for past, limit in ((pos < lo, lo), (pos > hi, hi)):
        bounce = rest[..., None]
        pos[past] = (limit + (limit - pos) * bounce)[past]
        vel[past] = -(vel * bounce)[past]


def _collide(
    pos: np.ndarray, vel: np.ndarray, radius: np.ndarray, mass: np.ndarray, rest: np.ndarray
) -> None:
    """Resolve, in place, every touching and approaching pair of discs with an impulse."""
    for i, j in ((0, 1), (0, 2), (1, 2)):
        d = pos[:, j] - pos[:, i]
        dist = np.maximum(np.linalg.norm(d, axis=-1), 1e-9)
        normal = d / dist[:, None]
        closing = np.einsum("nk,nk->n", vel[:, i] - vel[:, j], normal)
        hit = (dist < radius[:, i] + radius[:, j]) & (closing > 0)
        e = (rest[:, i] + rest[:, j]) / 2
        inv_i, inv_j = 1 / mass[:, i], 1 / mass[:, j]
        impulse = np.where(hit, (1 + e) * closing / (inv_i + inv_j), 0.0)[:, None] * normal
        vel[:, i] -= impulse * inv_i[:, None]
        vel[:, j] += impulse * inv_j[:, None]
        # Push overlapping discs apart along the normal, the lighter one further.
        overlap = np.where(hit, radius[:, i] + radius[:, j] - dist, 0.0)
        share = (overlap / (inv_i + inv_j))[:, None] * normal
        pos[:, i] -= share * inv_i[:, None]
        pos[:, j] += share * inv_j[:, None]


def simulate(
    rng: np.random.Generator, radius: np.ndarray, steps: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return centres (n, steps, 3, 2) of simulated balls and their physics {name: (n, 3)}."""
    n = len(radius)
    physics = {
        "mass": rng.choice(MASSES, size=(n, N_BALLS)),
        "friction": rng.choice(FRICTIONS, size=(n, N_BALLS)),
        "restitution": rng.choice(RESTITUTIONS, size=(n, N_BALLS)),
    }
    pos = _place(rng, radius)
    angle = rng.uniform(0, 2 * np.pi, size=(n, N_BALLS))
    speed = rng.uniform(*SPEED, size=(n, N_BALLS))
    vel = np.stack([np.cos(angle), np.sin(angle)], axis=-1) * speed[..., None]
    out = np.empty((n, steps, N_BALLS, 2))
    out[:, 0] = pos
    for t in range(1, steps):
        out[:, t] = advance(pos, vel, radius, physics)
    return out, physics


def substep_keep(friction: np.ndarray) -> np.ndarray:
    """Return the share of the speed kept at each substep for a friction (any shape)."""
    return (1 - DRAG * friction) ** (1 / SUBSTEPS)


def advance(
    pos: np.ndarray, vel: np.ndarray, radius: np.ndarray, physics: dict[str, np.ndarray]
) -> np.ndarray:
    """Move pos, vel (n, 3, 2) one recorded step in place; return the centres (n, 3, 2) as
    recorded. physics: mass, friction, restitution, each (n, 3)."""
    keep = substep_keep(physics["friction"])[..., None]
    for _ in range(SUBSTEPS):
        vel *= keep
        pos += vel / SUBSTEPS
        _collide(pos, vel, radius, physics["mass"], physics["restitution"])
        _walls(pos, vel, radius, physics["restitution"])
    # A collision push can still leave a disc a hair past a wall: keep boxes in the image.
    return np.clip(pos, radius[..., None], SIZE - radius[..., None])


def generate_sequences(n: int, seed: int = 0, steps: int = STEPS) -> BallSequences:
    """Return n simulated sequences of `steps` steps of 3 balls, deterministic by seed."""
    rng = np.random.default_rng([seed, 2])
    colors = _draw_colors(rng, n)
    radius = rng.uniform(*RADIUS, size=(n, N_BALLS))
    centres, physics = simulate(rng, radius, steps)
    boxes = _boxes(centres, radius[:, None]).astype(np.float32)
    presence, full = _scatter(colors, boxes)
    return BallSequences(presence, full, {**physics, "radius": radius, "colors": colors})


# --- on-disk format ------------------------------------------------------------------------


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array))


def _save_jpeg(path: Path, image: np.ndarray) -> None:
    atomic_write(path, lambda f: Image.fromarray(image).save(f, "JPEG", quality=JPEG_QUALITY))


def write_images(data: BallImages, folder: str | Path) -> Path:
    """Write `data` as img_%05d.jpg and p_bb_%05d.npy (9, 5) files in `folder`; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(data)):
        _save_jpeg(folder / f"img_{i:05d}.jpg", data.images[i])
        _save_npy(folder / f"p_bb_{i:05d}.npy", np.concatenate(
            [data.presence[i][:, None], data.boxes[i]], axis=1))  # fmt: skip
    return folder


def write_sequences(data: BallSequences, folder: str | Path) -> Path:
    """Write `data` as p_%05d.npy (9,) and seq_bb_%05d.npy (T, 9, 4) in `folder`; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(data)):
        _save_npy(folder / f"p_{i:05d}.npy", data.presence[i])
        _save_npy(folder / f"seq_bb_{i:05d}.npy", data.boxes[i])
    return folder


def _indexed(folder: Path, prefix: str, suffix: str) -> dict[int, Path]:
    """Return {index: path} of the files `<prefix><digits><suffix>` in folder."""
    pattern = re.compile(rf"^{re.escape(prefix)}{_INDEX}{re.escape(suffix)}$")
    found = (pattern.match(p.name) for p in folder.iterdir())
    return {int(m.group(1)): folder / m.group(0) for m in found if m}


def _pairs(folder: Path, first: tuple[str, str], second: tuple[str, str]) -> list[tuple]:
    """Return [(path of first, path of second)] by index; errors name what is missing."""
    if not folder.is_dir():
        raise DatasetMissingError(f"{folder} does not exist: expected a folder of ball files")
    a, b = _indexed(folder, *first), _indexed(folder, *second)
    if not a:
        raise DatasetMissingError(
            f"{folder} holds no {first[0]}NNNNN{first[1]} file; expected the course's format "
            "(see coursekit.balls.data) or an empty folder to generate into"
        )
    missing = sorted(set(a) ^ set(b))
    if missing:
        i = missing[0]
        name = f"{first[0]}{i:05d}{first[1]}" if i not in a else f"{second[0]}{i:05d}{second[1]}"
        raise DatasetFormatError(
            f"{folder / name} is missing ({len(missing)} unpaired file(s)): each "
            f"{first[0]}NNNNN{first[1]} needs its {second[0]}NNNNN{second[1]}"
        )
    return [(a[i], b[i]) for i in sorted(a)]


def _load_npy(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Return the float32 array of `path`, which must have `shape`."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DatasetFormatError(f"{path} is not a readable .npy file ({exc})") from exc
    if array.shape != shape or not np.issubdtype(array.dtype, np.number):
        raise DatasetFormatError(
            f"{path} has shape {array.shape} and dtype {array.dtype}; expected a numeric "
            f"array of shape {shape}"
        )
    return array.astype(np.float32)


def _load_jpeg(path: Path) -> np.ndarray:
    """Return the uint8 (100, 100, 3) RGB pixels of `path`."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except OSError as exc:
        raise DatasetFormatError(f"{path} is not a readable image ({exc})") from exc
    if pixels.shape != (SIZE, SIZE, 3):
        raise DatasetFormatError(
            f"{path} is {pixels.shape[1]}x{pixels.shape[0]}; expected {SIZE}x{SIZE} RGB"
        )
    return pixels


def read_images(folder: str | Path, limit: int | None = None) -> BallImages:
    """Return the images of a `mini_balls` folder (the first `limit` by index, or all)."""
    pairs = _pairs(Path(folder), ("img_", ".jpg"), ("p_bb_", ".npy"))[:limit]
    images = np.stack([_load_jpeg(img) for img, _ in pairs])
    labels = np.stack([_load_npy(bb, (N_COLORS, 5)) for _, bb in pairs])
    return BallImages(images, labels[:, :, 0], labels[:, :, 1:])


def read_sequences(folder: str | Path, limit: int | None = None) -> BallSequences:
    """Return the sequences of a `mini_balls_seq` folder (the first `limit`, or all)."""
    pairs = _pairs(Path(folder), ("p_", ".npy"), ("seq_bb_", ".npy"))[:limit]
    presence = np.stack([_load_npy(p, (N_COLORS,)) for p, _ in pairs])
    steps = np.load(pairs[0][1], mmap_mode="r").shape[0]
    boxes = np.stack([_load_npy(bb, (steps, N_COLORS, 4)) for _, bb in pairs])
    return BallSequences(presence, boxes)


# --- where the data lives ------------------------------------------------------------------


def generated_marker(folder: Path) -> dict | None:
    """Return the GENERATED marker of a folder written by coursekit, or None (original data)."""
    path = folder / GENERATED
    return json.loads(path.read_text()) if path.is_file() else None


def _clear_generated(folder: Path) -> None:
    """Delete the files coursekit generated in folder (only called when its marker is there)."""
    pattern = re.compile(rf"^(img_|p_bb_|p_|seq_bb_){_INDEX}\.(jpg|npy)$")
    for path in folder.iterdir():
        if pattern.match(path.name):
            path.unlink()


def _ensure(folder: Path, kind: str, n: int, seed: int, make, write, read):
    """Return (data, source): read the folder, or generate it first if absent or stale."""
    wanted = {"kind": kind, "n": n, "seed": seed, "version": VERSION}
    marker = generated_marker(folder) if folder.is_dir() else None
    has_files = folder.is_dir() and any(folder.iterdir())
    if has_files and marker is None:
        return read(folder, limit=n), "original"
    made = None
    if marker != wanted:
        if marker is not None:
            _clear_generated(folder)
        made = make(n, seed)
        write(made, folder)
        text = json.dumps(wanted)
        atomic_write(folder / GENERATED, lambda f: f.write(text.encode()))
    # Always the files' content, also right after writing them: JPEG changes the pixels a
    # little, and a detector trained on the rendered images, then evaluated on the files
    # read back by the next run, lost 5 to 18 points of IoU.
    data = read(folder)
    if kind == "sequences":  # the course's files hold no hidden parameters: redraw them
        data.physics = (made if made is not None else make(n, seed)).physics
    return data, "generated"


def ensure_images(
    n: int, seed: int = 0, root: str | Path | None = None
) -> tuple[BallImages, str]:
    """Return (images, 'original' or 'generated') from `<root>/mini_balls`.

    A folder of the user's original files (no GENERATED marker) is read, its first n images;
    otherwise n images are generated and written once (again if n or seed change).
    """
    folder = resolve_root(root) / IMAGES_FOLDER
    return _ensure(folder, "images", n, seed, generate_images, write_images, read_images)


def ensure_sequences(
    n: int, seed: int = 0, root: str | Path | None = None
) -> tuple[BallSequences, str]:
    """Return (sequences, 'original' or 'generated') from `<root>/mini_balls_seq` (see
    `ensure_images`)."""
    folder = resolve_root(root) / SEQUENCES_FOLDER
    return _ensure(
        folder, "sequences", n, seed, generate_sequences, write_sequences, read_sequences
    )


def split_indices(
    n: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, np.ndarray]:
    """Return {'train', 'val', 'test'}: disjoint index arrays covering range(n), by seed."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"need 3 positive fractions summing to 1, got {fractions}")
    order = np.random.default_rng([seed, 3]).permutation(n)
    n_val, n_test = round(n * fractions[1]), round(n * fractions[2])
    n_train = n - n_val - n_test
    return {
        "train": np.sort(order[:n_train]),
        "val": np.sort(order[n_train : n_train + n_val]),
        "test": np.sort(order[n_train + n_val :]),
    }


def present_boxes(boxes: np.ndarray, presence: np.ndarray) -> np.ndarray:
    """Return (N, ..., 3, 4): the boxes (N, ..., 9, 4) of the 3 present colours, colour order."""
    colors = np.sort(np.argsort(-presence, axis=1, kind="stable")[:, :N_BALLS], axis=1)
    by_colour = np.moveaxis(boxes, -2, 1)  # (N, 9, ..., 4)
    return np.moveaxis(by_colour[np.arange(len(boxes))[:, None], colors], 1, -2)


def tensor_batches(*tensors, batch_size: int, shuffle: bool):
    """Return a DataLoader of batches of in-memory tensors (first axis N), one index op each.

    The batch sampler hands TensorDataset a whole batch of indices at once, so no per-sample
    collate runs; shuffling draws from the global torch RNG (reproducible by seed).
    """
    from torch.utils.data import (
        BatchSampler,
        DataLoader,
        RandomSampler,
        SequentialSampler,
        TensorDataset,
    )

    dataset = TensorDataset(*tensors)
    order = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    sampler = BatchSampler(order, batch_size=batch_size, drop_last=False)
    return DataLoader(dataset, sampler=sampler, batch_size=None)
