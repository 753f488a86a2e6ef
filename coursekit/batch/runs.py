"""Run folders of `coursekit run`: `<runs>/<notebook>/<timestamp>-<label>/` and their status.

Each folder holds a `status.json`, written atomically, with the run's parameters, their
fingerprint and its state: running, interrupted, failed or done. Rerunning the same
command finds the latest folder with the same fingerprint and, unless it is done,
reuses it so that the notebook's trainings resume from their checkpoints.

A running run also keeps `heartbeat.json` fresh (host, pid, OAR job id, time). Run folders
may sit on NFS, shared by the nodes of a Grid'5000 site: a run started on another host is
taken for alive while its heartbeat is recent, so two jobs never write the same folder.
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
HEARTBEAT_FILE = "heartbeat.json"
HEARTBEAT_S = 30.0  # seconds between two heartbeats of a running run
STALE_S = 120.0  # a heartbeat older than this (4 missed beats) is a dead run's
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


def read_heartbeat(folder: Path) -> dict[str, Any] | None:
    """Return the folder's last heartbeat (host, pid, oar_job_id, time), or None."""
    try:
        return json.loads((folder / HEARTBEAT_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_heartbeat(folder: Path) -> None:
    """Record that this process, on this host (in this OAR job), is writing the run now."""
    beat = {"host": socket.gethostname(), "pid": os.getpid(),
            "oar_job_id": os.environ.get("OAR_JOB_ID"), "time": time.time()}  # fmt: skip
    write_json(beat, folder / HEARTBEAT_FILE)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


def live_writer(folder: Path, status: dict[str, Any]) -> str | None:
    """Return who is still writing this running run (host, pid, OAR job), or None if nobody.

    On this host the process itself is checked. On another host (a run folder on NFS) only
    the heartbeat can tell: the writer is alive while its heartbeat is under STALE_S old.
    """
    if status.get("state") != "running":
        return None
    host, pid, job = status.get("host"), status.get("pid"), status.get("oar_job_id")
    if host == socket.gethostname():
        alive = bool(pid) and pid != os.getpid() and _pid_alive(pid)
    else:
        beat = read_heartbeat(folder) or {}
        alive = time.time() - float(beat.get("time", 0.0)) < STALE_S
    if not alive:
        return None
    return f"pid {pid} on {host}" + (f", OAR job {job}" if job else "")


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
    starts a new run. Raises RunError if that run is still being written, here or on
    another host (see `live_writer`).
    """
    matching = [
        (f, s) for f, s in _statuses(root, notebook) if s.get("fingerprint") == fingerprint_
    ]
    if not matching:
        return None
    folder, status = matching[-1]
    if status.get("state") == "done":
        return None
    writer = live_writer(folder, status)
    if writer is not None:
        job = status.get("oar_job_id")
        stop = f"oardel {job}" if job else f"kill {status.get('pid')} on {status.get('host')}"
        raise RunError(
            f"the same run is already going on in {folder} ({writer}); wait for it, "
            f"stop it ({stop}), or pass --fresh to start a separate run"
        )
    return folder


def checkpoint_marks(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Return {checkpoint file: (inode, size, mtime_ns)} for the files under folder/checkpoints.

    Compared before and after an attempt, the marks tell whether it saved anything, with no
    clock involved (the nodes writing to an NFS folder need not agree on the time).
    """
    marks = {}
    for path in sorted((Path(folder) / "checkpoints").rglob("*")):
        if path.is_file():
            info = path.stat()
            marks[str(path.relative_to(folder))] = (info.st_ino, info.st_size, info.st_mtime_ns)
    return marks


def checkpoint_snapshot(root: Path, notebook: str) -> dict[str, list[list[Any]]]:
    """Return {run folder: sorted [file, inode, size, mtime_ns] rows} of the checkpoints of
    every run of `notebook` under `root` (JSON-ready: a job takes it at its start)."""
    return {str(folder): checkpoint_snapshot_of(folder)
            for folder, _ in _statuses(Path(root), notebook)}  # fmt: skip


def abandon_runs(
    root: Path, notebook: str, pid: int, reason: str,
    before: dict[str, list[list[Any]]] | None = None,
) -> list[tuple[Path, bool]]:  # fmt: skip
    """Mark the runs of `notebook` under `root` that process `pid` of this host left
    `running` (it was killed before it could say so); return [(folder, progressed)].

    before: `checkpoint_snapshot` taken when the job started. A run that saved no checkpoint
    since (progressed False) is marked `failed`, not `interrupted`: resubmitted, a run that
    hung before its first checkpoint would hang again, forever. Without `before`, every
    run counts as progressed (`interrupted`).
    """
    found = []
    for folder, status in _statuses(Path(root), notebook):
        mine = status.get("host") == socket.gethostname() and status.get("pid") == int(pid)
        if not (mine and status.get("state") == "running"):
            continue
        now = checkpoint_snapshot_of(folder)
        progressed = before is None or now != before.get(str(folder), [])
        if progressed:
            write_status(folder, state="interrupted", error=reason)
        else:
            write_status(folder, state="failed", error=(
                f"{reason}; it saved no checkpoint in this attempt, so a resubmitted job would "
                "stop at the same point again: not resubmitted. Find why it hangs (the "
                f"notebook in {folder}), then run the same command again"))  # fmt: skip
        found.append((folder, progressed))
    return found


def checkpoint_snapshot_of(folder: Path) -> list[list[Any]]:
    """Return the sorted [file, inode, size, mtime_ns] rows of one run folder's checkpoints."""
    return sorted([name, *mark] for name, mark in checkpoint_marks(folder).items())


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
