"""Resumable runs: a run killed by SIGTERM or SIGKILL, rerun, ends like an unbroken run."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import psutil
import pytest

from coursekit.batch.errors import RunError
from coursekit.batch.nbparams import check_parameters
from coursekit.batch.runner import _prepare_run, run_notebook
from coursekit.batch.runs import (
    HEARTBEAT_FILE,
    STALE_S,
    find_resumable,
    new_run_dir,
    write_status,
)
from coursekit.checkpoint import load_checkpoint, write_json

TINY = Path(__file__).resolve().parent / "notebooks" / "tiny_train.ipynb"
EPOCHS = 16  # with 0.8 s per epoch, time to kill the run twice before it ends, even
# on a loaded machine where a killed run's kernel takes seconds to stop (at 8 epochs, one
# CI-equivalent run of 2026-12-02 found all 8 saved after the SIGTERM)


def test_rerun_reuses_the_latest_unfinished_folder_with_the_same_fingerprint(tmp_path):
    old = new_run_dir(tmp_path, "nb", "run")
    write_status(old, fingerprint="abc", state="interrupted", created="2026-01-01T10:00:00")
    other = new_run_dir(tmp_path, "nb", "run")
    write_status(other, fingerprint="xyz", state="failed", created="2026-01-01T11:00:00")
    assert other != old
    assert find_resumable(tmp_path, "nb", "abc") == old
    assert find_resumable(tmp_path, "nb", "xyz") == other
    assert find_resumable(tmp_path, "nb", "new") is None
    assert find_resumable(tmp_path, "other_nb", "abc") is None

    write_status(old, state="done")  # a finished run is never reused: a new one starts
    assert find_resumable(tmp_path, "nb", "abc") is None


def test_a_run_still_alive_is_not_reused(tmp_path):
    folder = new_run_dir(tmp_path, "nb", "run")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_status(folder, fingerprint="abc", state="running", host=socket.gethostname(),
                     pid=sleeper.pid, created="2026-01-01T10:00:00")  # fmt: skip
        with pytest.raises(RunError, match=f"already going on .*pid {sleeper.pid}"):
            find_resumable(tmp_path, "nb", "abc")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert find_resumable(tmp_path, "nb", "abc") == folder  # its process is gone: resume it


def test_a_run_written_from_another_node_is_not_reused_while_its_heartbeat_is_fresh(tmp_path):
    # Run folders on NFS: a job on another node of the site writes this run right now.
    folder = new_run_dir(tmp_path, "nb", "run")
    other = "graffiti-3.nancy.grid5000.fr"
    write_status(folder, fingerprint="abc", state="running", host=other, pid=os.getpid() + 1,
                 oar_job_id="4242", created="2026-01-01T10:00:00")  # fmt: skip
    beat = {"host": other, "pid": os.getpid() + 1, "oar_job_id": "4242"}
    write_json({**beat, "time": time.time() - 5}, folder / HEARTBEAT_FILE)
    with pytest.raises(RunError, match=f"already going on .*on {other}, OAR job 4242.*oardel 4242"):
        find_resumable(tmp_path, "nb", "abc")
    write_json({**beat, "time": time.time() - STALE_S - 5}, folder / HEARTBEAT_FILE)
    assert find_resumable(tmp_path, "nb", "abc") == folder  # that job died: resume the run


def test_a_run_records_its_oar_job_and_keeps_a_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setenv("OAR_JOB_ID", "777")
    before = time.time()
    folder = run_notebook(TINY.with_name("hello.ipynb"), smoke=True, out=tmp_path)
    status = _status(folder)
    assert (status["oar_job_id"], status["host"]) == ("777", socket.gethostname())
    beat = json.loads((folder / HEARTBEAT_FILE).read_text())
    assert (beat["oar_job_id"], beat["host"], beat["pid"]) == ("777", status["host"], os.getpid())
    assert beat["time"] >= before


def _prepare(notebook: Path, given: dict, root: Path, fresh: bool = False) -> Path:
    """The run folder `coursekit run` would use (what run_notebook does before executing)."""
    checked = check_parameters(notebook, given)
    return _prepare_run(notebook, checked, False, "run", root, fresh)


def test_the_run_folder_is_shared_only_by_the_same_parameters(tmp_path):
    fourteen = _prepare(TINY, {"epochs": "14"}, tmp_path)
    write_status(fourteen, state="interrupted")
    fifteen = _prepare(TINY, {"epochs": "15"}, tmp_path)
    write_status(fifteen, state="interrupted")
    assert fifteen != fourteen  # a 15-epoch run never resumes a 14-epoch one (or vice versa)
    assert _prepare(TINY, {"epochs": 14}, tmp_path) == fourteen  # typed or text, same run
    write_status(fourteen, state="interrupted")
    assert _prepare(TINY, {"epochs": "15", "lr": "0.05"}, tmp_path) == fifteen  # lr's default
    write_status(fifteen, state="interrupted")
    fresh = _prepare(TINY, {"epochs": "14"}, tmp_path, fresh=True)
    assert fresh not in (fourteen, fifteen) and _status(fresh)["attempts"] == 1
    assert _status(fourteen)["attempts"] == 2


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _epoch(folder: Path) -> int:
    path = folder / "checkpoints" / "tiny.pt"
    return int(load_checkpoint(path)["epoch"]) if path.exists() else 0


def _status(folder: Path) -> dict:
    return json.loads((folder / "status.json").read_text())


class TinyRun:
    """`coursekit run tiny_train.ipynb` started as a subprocess, as a user or OAR would."""

    def __init__(self, out: Path, log: Path) -> None:
        self.argv = [sys.executable, "-m", "coursekit.batch.cli", "run", str(TINY),
                     "-p", "pause", "0.8", "-p", "epochs", str(EPOCHS),
                     "--out", str(out)]  # fmt: skip
        self.out, self.log = out, log
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        with self.log.open("a") as log:
            self.procs.append(subprocess.Popen(self.argv, stdout=log, stderr=log, text=True))
        return self.procs[-1]

    def kill_leftovers(self) -> None:
        """Kill the runs a failed test left behind (their kernels follow their parent)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def folder(self) -> Path | None:
        found = list((self.out / "tiny_train").glob("*/status.json"))
        return found[0].parent if found else None

    def wait_training(self, attempt: int, past_epoch: int) -> Path:
        """Wait until `attempt` has checkpointed an epoch after `past_epoch`; return the folder."""

        def trained() -> bool:
            folder = self.folder()
            return (
                folder is not None
                and _status(folder).get("attempts") == attempt
                and _epoch(folder) > past_epoch
            )

        _wait_for(trained, f"attempt {attempt} to checkpoint an epoch after {past_epoch}")
        return self.folder()


def _kill_and_reap(proc: subprocess.Popen, signum: int) -> int:
    kernels = psutil.Process(proc.pid).children(recursive=True)
    assert kernels, "the run should have started a kernel"
    proc.send_signal(signum)
    code = proc.wait(timeout=30)
    # The kernel must not outlive its runner, or it could write into the folder being resumed.
    _, alive = psutil.wait_procs(kernels, timeout=15)
    assert not alive, f"kernel processes {alive} survived the runner"
    return code


@pytest.fixture(scope="module")
def unbroken_metrics(tmp_path_factory) -> dict:
    folder = run_notebook(TINY, {"epochs": EPOCHS}, out=tmp_path_factory.mktemp("unbroken"))
    return json.loads((folder / "metrics.json").read_text())


@pytest.fixture
def tiny_run(tmp_path) -> Iterator[TinyRun]:
    run = TinyRun(tmp_path / "runs", tmp_path / "log.txt")
    yield run
    run.kill_leftovers()


def test_killed_runs_resume_and_end_like_an_unbroken_run(tmp_path, tiny_run, unbroken_metrics):
    run = tiny_run

    # 1. SIGTERM (what OAR and `kill` send): the folder records the interruption.
    proc = run.start()
    folder = run.wait_training(attempt=1, past_epoch=0)
    assert _kill_and_reap(proc, signal.SIGTERM) == 128 + signal.SIGTERM
    assert _status(folder)["state"] == "interrupted"
    first_epoch = _epoch(folder)
    assert first_epoch < EPOCHS, "the run ended before it could be stopped; raise `pause`"

    # 2. Same command: same folder, training goes on from the checkpoint; then SIGKILL,
    # which nothing can catch (the status still says running, from a dead process).
    proc = run.start()
    assert run.wait_training(attempt=2, past_epoch=first_epoch) == folder
    _kill_and_reap(proc, signal.SIGKILL)
    assert _status(folder)["state"] == "running"
    killed_epoch = _epoch(folder)
    assert killed_epoch < EPOCHS, "the run ended before it could be killed; raise `pause`"
    saved_rows = load_checkpoint(folder / "checkpoints" / "tiny.pt")["history"]

    # 3. Same command again: it resumes after the last saved epoch and finishes.
    done = subprocess.run(run.argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(folder)
    assert [p.name for p in (tmp_path / "runs" / "tiny_train").iterdir()] == [folder.name]
    assert (_status(folder)["state"], _status(folder)["attempts"]) == ("done", 3)
    executed = nbformat.read(folder / "tiny_train.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    checkpoint = folder / "checkpoints" / "tiny.pt"
    assert f"reprise à l'époque {killed_epoch + 1} depuis {checkpoint}" in outputs
    # The last attempt trained exactly the missing epochs, and kept the saved ones as they
    # were: their wall-clock `seconds` could not come out equal from a new training.
    trained = [int(n) for n in re.findall(r"^epoch +(\d+) ", outputs, flags=re.MULTILINE)]
    assert trained == list(range(killed_epoch + 1, EPOCHS + 1))
    final_rows = load_checkpoint(checkpoint)["history"]
    assert final_rows[:killed_epoch] == saved_rows and len(final_rows) == EPOCHS

    assert json.loads((folder / "metrics.json").read_text()) == unbroken_metrics
    assert unbroken_metrics["epochs_run"] == EPOCHS


def test_sigterm_handler_is_only_active_during_the_run(tmp_path):
    # An in-process run must leave the caller's own SIGTERM handling as it found it.
    before = signal.getsignal(signal.SIGTERM)
    hello = TINY.with_name("hello.ipynb")
    run_notebook(hello, smoke=True, out=tmp_path)
    assert signal.getsignal(signal.SIGTERM) is before
    assert os.environ.get("COURSEKIT_RUN_DIR") is None


def test_tuple_parameters_reach_the_notebook_as_sequences_not_strings():
    from papermill.translators import PythonTranslator

    from coursekit.batch.runner import papermill_values

    given = {"subset": (10000, 2000), "nested": {"a": [1, (2, 3)]}, "name": "x", "n": None}
    injected = {k: PythonTranslator.translate(v) for k, v in papermill_values(given).items()}
    assert ast.literal_eval(injected["subset"]) == [10000, 2000]
    assert ast.literal_eval(injected["nested"]) == {"a": [1, [2, 3]]}
    assert injected["name"] == '"x"' and injected["n"] == "None"


def test_the_notebook_runs_in_this_python_whatever_python3_kernelspec_the_home_has(
    tmp_path, monkeypatch
):
    from tools.nbmake import write_notebook

    # A `python3` kernelspec in the user's (NFS) home, for another interpreter: papermill's
    # default choice for the notebook's kernelspec.
    home_kernel = tmp_path / "home-jupyter" / "kernels" / "python3"
    home_kernel.mkdir(parents=True)
    (home_kernel / "kernel.json").write_text(json.dumps({
        "argv": ["/nonexistent/other-env/bin/python", "-m", "ipykernel_launcher", "-f",
                 "{connection_file}"], "display_name": "other", "language": "python"}))  # fmt: skip
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "home-jupyter"))
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")  # the home first, as outside a venv
    notebook = write_notebook(tmp_path / "which.ipynb", [
        ("md", "# Which Python"), ("params", "n = 1"),
        ("code", "import os, sys\nfrom pathlib import Path\n"
                 "Path(os.environ['COURSEKIT_RUN_DIR'], 'python.txt').write_text(sys.executable)"),
    ])  # fmt: skip
    folder = run_notebook(notebook, out=tmp_path / "runs")
    assert (folder / "python.txt").read_text() == sys.executable
    status = json.loads((folder / "status.json").read_text())
    assert status["python"] == sys.executable and status["state"] == "done"


def test_status_records_the_code_and_a_resumed_attempt_running_other_code(
    tmp_path, monkeypatch, capsys
):
    from coursekit.batch import runner
    from coursekit.settings import REPO_ROOT

    checked = check_parameters(TINY, {})
    first = runner._prepare_run(TINY, checked, False, "run", tmp_path, False)
    status = json.loads((first / "status.json").read_text())
    assert status["code"]["package"] == str(REPO_ROOT / "coursekit")
    assert status["code"] == status["first_code"] == runner.code_version()
    assert status["code_changed"] is None
    write_status(first, state="interrupted")

    same = runner._prepare_run(TINY, checked, False, "run", tmp_path, False)
    assert same == first and json.loads((first / "status.json").read_text())["code_changed"] is None
    assert "warning" not in capsys.readouterr().err
    write_status(first, state="interrupted")

    other = {"package": "/x/coursekit", "commit": "f" * 40, "dirty": True, "diff": "0123abcd"}
    monkeypatch.setattr(runner, "code_version", lambda: dict(other))
    again = runner._prepare_run(TINY, checked, False, "run", tmp_path, False)
    assert again == first
    status = json.loads((first / "status.json").read_text())
    assert status["code"] == other and status["first_code"] != other
    assert status["code_changed"].startswith(
        "this attempt runs commit ffffffffffff with uncommitted changes 0123abcd, the first attempt"
    )
    assert "warning: this attempt runs commit ffffffffffff" in capsys.readouterr().err
