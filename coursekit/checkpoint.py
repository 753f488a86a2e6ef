"""Everything a run writes to disk: the one atomic write, JSON files, checkpoints, RNG state.

A file is written next to its final place, flushed to disk, then renamed over the old one:
a crash or a SIGKILL at any moment leaves either the previous file or the new one, never
a half-written file. torch and numpy are imported where they are used, so the `coursekit`
command (run folders, status files) does not pay their import time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import IO, Any

from coursekit import settings


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be used."""


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call write(f) on a temporary binary file, fsync it, rename it to `path`; return path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file owner-only; give it the mode a plain open() would, so that
        # a data folder or a run folder shared with a group stays readable by the group.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a new temporary folder next to `path`; renamed to `path` if the block succeeds.

    A folder of many files written this way is either all there or not there: an error or a
    crash leaves no half-written folder under its real name (the temporary one is removed
    on an error). An existing `path` is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()  # a plain mkdir gets the umask's permissions (mkdtemp's are owner-only)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def jsonable(value: Any) -> Any:
    """Return `value` with numpy/torch scalars as numbers and NaN/inf as None (JSON-safe)."""
    if hasattr(value, "item") and not isinstance(value, dict):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def write_json(data: Mapping[str, Any], path: str | Path) -> Path:
    """Write `data` as indented JSON to `path` atomically and return the path."""
    text = json.dumps(jsonable(dict(data)), indent=2, sort_keys=True)
    return atomic_write(path, lambda f: f.write(text.encode()))


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` (anything torch.save takes) to `path` atomically and return the path."""
    import torch

    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Return the state stored at `path`; a clear CheckpointError if it is unreadable."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises several types for a damaged file
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}). "
            "Delete it to start the run from scratch, or pass another checkpoint path."
        ) from exc


def config_name(prefix: str, config: Any, ignore: tuple[str, ...] = ("device", "label")) -> str:
    """Return '<prefix>_<hash>', a file-safe name unique to the config's fields.

    The hash covers every field (epochs included: a schedule may depend on it) except
    those in `ignore`, which do not change what is learned; a checkpoint is thus only ever
    resumed or reloaded by the very same experiment.
    """
    fields = asdict(config) if is_dataclass(config) else dict(config)
    kept = sorted((k, v) for k, v in fields.items() if k not in ignore)
    digest = hashlib.sha1(repr(kept).encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() else "_" for c in prefix)
    return f"{safe}_{digest}"


def checkpoint_path(notebook: str, name: str) -> Path:
    """Return where training `name` of `notebook` keeps its checkpoint,
    `settings.artifact_path(notebook, 'checkpoints', name + '.pt')`.

    In a batch run the run folder holds it, so a killed run resumes; in JupyterLab a dead
    kernel loses at most one epoch and a finished training is loaded instead of run again.
    """
    return settings.artifact_path(notebook, "checkpoints", f"{name}.pt")


def rng_state() -> dict[str, Any]:
    """Return the python, numpy and torch RNG states as checkpoint-safe values."""
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, python, gauss = random.getstate()
    state = {
        "python": list(python),
        "python_version": version,
        "python_gauss": gauss,
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states saved by `rng_state`."""
    import numpy as np
    import torch

    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
