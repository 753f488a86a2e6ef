"""What a run records: its headline numbers (for `coursekit runs`) and the code it ran.

Notebooks call `record_metrics(...)` for the numbers that summarize them; in a batch run
(`coursekit run`) they are merged into the run folder's metrics.json, in JupyterLab they
are only returned.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from coursekit.checkpoint import jsonable, write_json
from coursekit.settings import REPO_ROOT, run_dir

METRICS_FILE = "metrics.json"


def record_metrics(**values: Any) -> dict[str, Any]:
    """Merge `values` into the run's metrics.json (in a batch run) and return all metrics."""
    values = jsonable(values)
    root = run_dir()
    if root is None:
        return values
    path = root / METRICS_FILE
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics.update(values)
    write_json(metrics, path)
    return metrics


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,
                              text=True, timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def code_version() -> dict[str, Any]:
    """Return the code this process runs: its package folder, git commit and dirty state.

    dirty: tracked files differ from the commit; diff: a hash of those differences, so
    that two dirty states can be told apart. commit None: not a git checkout (or no git).
    """
    commit = _git("rev-parse", "HEAD")
    diff = _git("diff", "HEAD", "--no-ext-diff", "--binary") if commit else None
    return {
        "package": str(Path(__file__).resolve().parent),
        "commit": commit.strip() if commit else None,
        "dirty": bool(diff) if diff is not None else None,
        "diff": hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else None,
    }
