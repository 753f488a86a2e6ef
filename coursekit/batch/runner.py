"""`coursekit run`: execute a notebook headless with papermill, in a resumable run folder.

The run folder (see coursekit.batch.runs) receives the executed notebook, its figures
(COURSEKIT_FIGURES) and metrics.json (coursekit.tracking.record_metrics). The kernel
sees COURSEKIT_RUN_DIR, so `checkpoint_path(name)` puts checkpoints there: a rerun of
the same command after a kill reuses the folder and fit() resumes from them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coursekit.batch.errors import NoProgress, RunError, RunInterrupted
from coursekit.batch.nbparams import check_parameters, resolved_parameters
from coursekit.batch.runs import (
    HEARTBEAT_S,
    check_label,
    checkpoint_marks,
    find_resumable,
    fingerprint,
    new_run_dir,
    read_status,
    write_heartbeat,
    write_status,
)
from coursekit.settings import REPO_ROOT, runs_dir, smoke_mode
from coursekit.tracking import code_version

# SIGUSR2 is the signal OAR sends before the walltime (`oarsub --checkpoint`).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    # The kernel inherits this process's environment; restore it for in-process callers.
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    # Python handlers can only be installed from the main thread.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not received:  # raise once: a second signal must not break the kernel shutdown
            received.append(signum)
            raise RunInterrupted(signum)

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _kernel_env(folder: Path, smoke: bool) -> dict[str, str]:
    env = {
        "COURSEKIT_RUN_DIR": str(folder),
        "COURSEKIT_FIGURES": str(folder / "figures"),
        "PAPERMILL_EXECUTION": "1",
    }
    if smoke:
        env["COURSEKIT_SMOKE"] = "1"
    return env


def papermill_values(value: Any) -> Any:
    """Return value with every tuple turned into a list, at any depth.

    papermill writes a tuple into the injected cell as the *string* "(1, 2)" (its Python
    translator knows lists, dicts and scalars only); a list stays a list literal.
    """
    if isinstance(value, tuple | list):
        return [papermill_values(v) for v in value]
    if isinstance(value, dict):
        return {k: papermill_values(v) for k, v in value.items()}
    return value


# The kernelspec the run writes for its own Python (see _own_kernel).
KERNEL_NAME = "coursekit-run-python"


@contextmanager
def _own_kernel() -> Iterator[str]:
    """Yield the name of a kernelspec that runs ipykernel with this very Python.

    Papermill would start the notebook's `python3` kernelspec, which a kernel.json in the
    user's (NFS) home, ~/.local/share/jupyter/kernels/python3, overrides: the notebook would
    then run in another interpreter than the one checked. A kernelspec of a name of our own,
    in a folder put first on JUPYTER_PATH for the run, leaves no such choice.
    """
    with tempfile.TemporaryDirectory(prefix="coursekit-kernel-") as tmp:
        spec = Path(tmp) / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        kernel = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({sys.executable})",
            "language": "python",
            "metadata": {"debugger": False},
        }
        (spec / "kernel.json").write_text(json.dumps(kernel, indent=1))
        path = os.pathsep.join(p for p in (tmp, os.environ.get("JUPYTER_PATH")) if p)
        with _environment({"JUPYTER_PATH": path}):
            yield KERNEL_NAME


def _papermill(notebook: Path, output: Path, parameters: dict[str, Any]) -> None:
    import papermill

    with _own_kernel() as kernel_name:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=papermill_values(parameters),
            kernel_name=kernel_name,
            language="python",
            cwd=str(notebook.parent),
            progress_bar=False,
            stdout_file=sys.stderr,
            stderr_file=sys.stderr,
            # Everything the notebook writes is on disk when its last cell ends; a graceful
            # kernel shutdown would only add seconds to every run.
            shutdown_kernel="immediate",
        )


def _failure(notebook: Path, output: Path, exc: Exception) -> Exception:
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return RunError(
            f"{notebook.name} failed in cell [{exc.exec_count}]: {exc.ename}: {exc.evalue}\n"
            f"the executed notebook with the traceback is {output}; once fixed, rerun the same "
            "command: it resumes in the same folder"
        )
    if isinstance(exc, DeadKernelError):
        return RunError(
            f"the kernel running {notebook.name} died (out of memory?): {exc}\n"
            "rerun the same command to resume from the last checkpoint"
        )
    return exc


@contextmanager
def _heartbeat(folder: Path) -> Iterator[None]:
    """Keep the folder's heartbeat fresh while the block runs (see runs.live_writer)."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                write_heartbeat(folder)
            except OSError:  # a full or flaky disk must not kill the run; the next beat retries
                pass
            if stop.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, name="coursekit-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _interrupted(folder: Path, exc: RunInterrupted, progressed: bool) -> Exception | None:
    """Record the interruption; return NoProgress when resubmitting could only repeat it."""
    if exc.signum != signal.SIGUSR2 or progressed:
        write_status(folder, state="interrupted", error=f"stopped by {exc}")
        return None
    # OAR's checkpoint signal and no epoch saved since the job started: the walltime
    # minus the checkpoint delay is shorter than the first epoch (plus the notebook's set-up).
    message = (
        f"stopped by OAR's checkpoint signal ({exc}) before saving any checkpoint in this "
        f"attempt: one epoch takes longer than the walltime minus the checkpoint delay, so a "
        f"resubmitted job would stop at the same point again. Submit it again with a longer "
        f"--walltime (or a smaller --checkpoint-delay); it resumes in {folder}"
    )
    write_status(folder, state="failed", error=message)
    return NoProgress(message)


def _execute(notebook: Path, folder: Path, parameters: dict[str, Any], smoke: bool) -> None:
    output = folder / notebook.name
    before = checkpoint_marks(folder)
    try:
        with _environment(_kernel_env(folder, smoke)), _heartbeat(folder), _stop_signals_raise():
            _papermill(notebook, output, parameters)
    except RunInterrupted as exc:
        error = _interrupted(folder, exc, checkpoint_marks(folder) != before)
        if error is not None:
            raise error from None
        raise
    except KeyboardInterrupt:
        write_status(folder, state="interrupted", error="stopped by Ctrl-C")
        raise
    except Exception as exc:
        error = _failure(notebook, output, exc)
        summary = str(error).splitlines()[0] if error is not exc else f"{type(exc).__name__}: {exc}"
        write_status(folder, state="failed", error=summary)
        if error is exc:
            raise
        raise error from None


def _code_change(first: dict[str, Any], code: dict[str, Any]) -> str | None:
    """Return what differs between the first attempt's code and this one's, or None."""
    keys = ("commit", "dirty", "diff")
    if all(first.get(k) == code.get(k) for k in keys):
        return None

    def name(c: dict[str, Any]) -> str:
        dirty = f" with uncommitted changes {c['diff']}" if c.get("dirty") else ""
        return f"commit {(c.get('commit') or 'unknown')[:12]}{dirty}"

    return f"this attempt runs {name(code)}, the first attempt ran {name(first)}"


def _prepare_run(
    notebook: Path, checked: dict[str, Any], smoke: bool, label: str, root: Path, fresh: bool
) -> Path:
    """Return the run folder to use (an unfinished one with the same fingerprint, or a new one)."""
    resolved = resolved_parameters(notebook, checked)
    key = fingerprint(notebook.stem, resolved, smoke, label)
    folder = None if fresh else find_resumable(root, notebook.stem, key)
    folder = folder or new_run_dir(root, notebook.stem, label)
    previous = read_status(folder) or {}
    code = code_version()
    first_code = previous.get("first_code") or previous.get("code") or code
    change = _code_change(first_code, code)
    if change:
        print(f"coursekit run: warning: {change} (resumed in {folder})", file=sys.stderr,
              flush=True)  # fmt: skip
    write_status(
        folder,
        state="running",
        notebook=str(notebook),
        name=notebook.stem,
        label=label,
        smoke=smoke,
        parameters=checked,
        resolved=resolved,
        fingerprint=key,
        created=previous.get("created", time.strftime("%Y-%m-%dT%H:%M:%S")),
        attempts=previous.get("attempts", 0) + 1,
        host=socket.gethostname(),
        pid=os.getpid(),
        oar_job_id=os.environ.get("OAR_JOB_ID"),
        python=sys.executable,
        code=code,
        first_code=first_code,
        code_changed=change,
        error=None,
    )
    return folder


def run_notebook(
    notebook: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    smoke: bool = False,
    label: str | None = None,
    out: str | Path | None = None,
    fresh: bool = False,
) -> Path:
    """Execute `notebook` with `parameters` and return its run folder.

    Values may be command-line text ("14") or Python values; both are checked against the
    notebook's parameters cell before anything starts. smoke: run on fixture data.
    out: the root of run folders (default runs/ or COURSEKIT_RUNS). fresh: never reuse
    an unfinished run folder.
    """
    notebook = Path(notebook).resolve()
    checked = check_parameters(notebook, parameters or {})
    smoke = smoke or smoke_mode()
    label = check_label(label or ("smoke" if smoke else "run"))
    # Absolute: the kernel runs in the notebook's folder and must find the run folder.
    root = Path(out if out is not None else runs_dir()).resolve()
    folder = _prepare_run(notebook, checked, smoke, label, root, fresh)
    print(f"coursekit run: {notebook.name} in {folder}", file=sys.stderr, flush=True)
    _execute(notebook, folder, checked, smoke)
    write_status(folder, state="done", error=None)
    return folder


def workbook_notebooks(folder: Path | None = None) -> list[Path]:
    """Return the workbook's notebooks (notebooks/*.ipynb), sorted by name."""
    folder = folder or REPO_ROOT / "notebooks"
    found = sorted(folder.glob("*.ipynb"))
    if not found:
        raise RunError(f"no notebook found in {folder}")
    return found


def run_all(
    notebooks: list[Path], *, smoke: bool, out: str | Path | None = None
) -> dict[Path, Path | Exception]:
    """Run every notebook with its defaults; return notebook -> run folder, or the error."""
    results: dict[Path, Path | Exception] = {}
    for notebook in notebooks:
        try:
            results[notebook] = run_notebook(notebook, smoke=smoke, out=out)
        except (RunError, ValueError) as exc:  # one broken notebook must not hide the others
            results[notebook] = exc
    return results
