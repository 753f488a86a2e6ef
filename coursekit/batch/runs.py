"""Run folders of `coursekit run`: `<runs>/<notebook>/<timestamp>-<label>/` and their status.

Each folder holds a `status.json`, written atomically, with the run's parameters, their
fingerprint and its state: running, interrupted, failed or done. Rerunning the same
command finds the latest folder with the same fingerprint and, unless it is done,
reuses it so that the notebook's trainings resume from their checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from coursekit.batch.errors import RunError
from coursekit.checkpoint import write_json
from coursekit.tracking import METRICS_FILE

STATUS_FILE = "status.json"
STATES = ("running", "interrupted", "failed", "done")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*")


def check_label(label: str) -> str:
    """Return `label` if it can name a folder, else raise RunError."""
    if not _LABEL.fullmatch(label):
        raise RunError(
            f"label {label!r} cannot name a run folder: use letters, digits and _ . = + - "
            "(starting with a letter or digit)"
        )
    return label


def fingerprint(notebook: str, parameters: dict[str, Any], smoke: bool, label: str) -> str:
    """Return a short hash identifying a run: notebook name, every parameter, smoke, label."""
    key = {"notebook": notebook, "parameters": parameters, "smoke": smoke, "label": label}
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_status(folder: Path) -> dict[str, Any] | None:
    """Return the status of the run in `folder`, or None if it has no readable status."""
    try:
        return json.loads((folder / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_status(folder: Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into the folder's status.json (atomically) and return the status."""
    status = read_status(folder) or {}
    status.update(changes, updated=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json(status, folder / STATUS_FILE)
    return status


def _alive_here(status: dict[str, Any]) -> bool:
    if status.get("host") != socket.gethostname() or not status.get("pid"):
        return False
    if status["pid"] == os.getpid():
        return False
    try:
        os.kill(status["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


def _statuses(root: Path, notebook: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    pattern = f"{notebook}/*/{STATUS_FILE}" if notebook else f"*/*/{STATUS_FILE}"
    found = []
    for path in root.glob(pattern):
        status = read_status(path.parent)
        if status is not None:
            found.append((path.parent, status))
    return sorted(found, key=lambda item: (item[1].get("created", ""), item[0].name))


def find_resumable(root: Path, notebook: str, fingerprint_: str) -> Path | None:
    """Return the latest unfinished run folder with this fingerprint, or None.

    None also when the latest such run is done: running the same command again then
    starts a new run. Raises RunError if that run is still alive on this machine.
    """
    matching = [
        (f, s) for f, s in _statuses(root, notebook) if s.get("fingerprint") == fingerprint_
    ]
    if not matching:
        return None
    folder, status = matching[-1]
    if status.get("state") == "done":
        return None
    if status.get("state") == "running" and _alive_here(status):
        raise RunError(
            f"the same run is already going on in {folder} (pid {status['pid']}); wait for it, "
            f"stop it (kill {status['pid']}), or pass --fresh to start a separate run"
        )
    return folder


def new_run_dir(root: Path, notebook: str, label: str) -> Path:
    """Create and return `<root>/<notebook>/<timestamp>-<label>/` (a suffix if it exists)."""
    base = root / notebook / f"{time.strftime('%Y%m%d-%H%M%S')}-{check_label(label)}"
    folder, n = base, 1
    while True:
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            n += 1
            folder = base.with_name(f"{base.name}-{n}")


def list_runs(root: Path, notebook: str | None = None) -> list[dict[str, Any]]:
    """Return the runs under `root`, oldest first: status plus `folder` and `metrics`."""
    runs = []
    for folder, status in _statuses(root, notebook):
        try:
            metrics = json.loads((folder / METRICS_FILE).read_text())
        except (OSError, ValueError):
            metrics = {}
        runs.append({**status, "folder": str(folder), "metrics": metrics})
    return runs


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _pairs(values: dict[str, Any]) -> str:
    # Lists (per-epoch curves) do not fit a table cell; scalars are the headline numbers.
    scalars = {k: v for k, v in values.items() if not isinstance(v, list | dict)}
    return " ".join(f"{k}={_short(v)}" for k, v in scalars.items()) or "-"


def format_runs_table(runs: list[dict[str, Any]], root: Path) -> str:
    """Return `runs` as a text table: run, state, parameters given, scalar metrics."""
    if not runs:
        return f"no runs under {root}"
    rows = [("run", "state", "parameters", "metrics")]
    for run in runs:
        folder = Path(run["folder"])
        name = f"{folder.parent.name}/{folder.name}"
        rows.append(
            (name, run.get("state", "?"), _pairs(run.get("parameters", {})), _pairs(run["metrics"]))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)), r[3]]) for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)
