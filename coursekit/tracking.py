"""Where a batch run keeps its checkpoints and headline metrics.

`coursekit run` executes a notebook with COURSEKIT_RUN_DIR set to the run's folder.
Notebooks call `checkpoint_path(name)` for each training (so a killed run resumes) and
`record_metrics(...)` for the numbers that summarize it (written to metrics.json).
In JupyterLab, with no run folder, checkpoints are off and metrics are only returned.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def run_dir() -> Path | None:
    """Return the folder of the current batch run, or None outside `coursekit run`."""
    value = os.environ.get("COURSEKIT_RUN_DIR")
    return Path(value) if value else None


def checkpoint_path(name: str) -> Path | None:
    """Return `<run dir>/checkpoints/<name>.pt` in a batch run, else None (no checkpoint)."""
    root = run_dir()
    return None if root is None else root / "checkpoints" / f"{name}.pt"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_json(data: dict[str, Any], path: Path) -> Path:
    """Write `data` as JSON to `path` atomically and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def record_metrics(**values: Any) -> dict[str, Any]:
    """Merge `values` into the run's metrics.json (in a batch run) and return all metrics."""
    values = {k: _jsonable(v) for k, v in values.items()}
    root = run_dir()
    if root is None:
        return values
    path = root / "metrics.json"
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics.update(values)
    write_json(metrics, path)
    return metrics
