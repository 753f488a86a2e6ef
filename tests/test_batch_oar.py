"""OAR job scripts: directives, the environment and GPU checks, the checkpoint trap, one
script per job, no duplicate job, settings carried, no secrets."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from coursekit.batch.cli import main
from coursekit.batch.errors import (
    EXIT_ENVIRONMENT,
    EXIT_NO_GPU,
    EXIT_NO_PROGRESS,
    OarError,
    ParameterError,
)
from coursekit.batch.nbparams import needs_data
from coursekit.batch.oar import (
    GPU_PROPERTY,
    JobSpec,
    job_name,
    node_local_paths,
    submit,
    submit_job,
    walltime_seconds,
    write_job_script,
)
from coursekit.settings import REPO_ROOT

TINY = Path(__file__).resolve().parent / "notebooks" / "tiny_train.ipynb"
# A Python that imports coursekit and torch, as an environment's bin/python must.
PYTHON_WRAPPER = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n'


def _fake_env(root: Path, kind: str = "venv") -> Path:
    """An environment whose `coursekit` records its arguments and waits for a stop signal."""
    (root / "bin").mkdir(parents=True)
    if kind == "venv":
        (root / "bin" / "activate").write_text(f'export PATH="{root / "bin"}:$PATH"\n')
    else:
        (root / "conda-meta").mkdir()
    stop = 'echo "$@" > "$FAKE_DIR/stopped"'
    programs = {
        "python": PYTHON_WRAPPER,
        "coursekit": "#!/usr/bin/env bash\n"
        f"trap '{stop}; exit 143' TERM\n"
        f"trap '{stop}; exit 140' USR2\n"
        'echo $$ > "$FAKE_DIR/pid"\n'
        'echo "$@" > "$FAKE_DIR/started"\n'
        "while true; do sleep 0.05; done\n",
    }
    for name, text in programs.items():
        (root / "bin" / name).write_text(text)
        (root / "bin" / name).chmod(0o755)
    return root


@pytest.fixture
def venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stand-in environment (see _fake_env); COURSEKIT_DATA unset, as in a fresh shell."""
    monkeypatch.delenv("COURSEKIT_DATA", raising=False)
    yield _fake_env(tmp_path / "venv")
    pid_file = tmp_path / "pid"
    if pid_file.exists():  # a failed test must not leave the stand-in running
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _spec(tmp_path: Path, venv: Path, **changes) -> JobSpec:
    data = tmp_path / "datasets"
    data.mkdir(exist_ok=True)
    values = dict(notebook=TINY, walltime="1:30", parameters={"epochs": "40", "tag": "a b"},
                  out=tmp_path / "runs", venv=venv, data=str(data))  # fmt: skip
    return JobSpec(**{**values, **changes})


def oar_scan(text: str) -> dict[str, list[str]]:
    """Read the #OAR lines as OAR's `scan_script` does (oar3 oar/lib/submission.py)."""
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        if re.match(r"^#OAR\s+", line):
            match = re.match(r"^#OAR\s+(-\w|--\w+)\s*(.+)\s*$", line.strip())
            assert match, f"OAR cannot read {line!r}"
            options.setdefault(match.group(1), []).append(match.group(2))
    return options


def test_walltimes_are_parsed_and_bad_ones_refused():
    assert walltime_seconds("1:00:00") == 3600
    assert walltime_seconds("2:30") == 9000
    assert walltime_seconds("12") == 43200
    with pytest.raises(OarError, match="is not H:MM:SS"):
        walltime_seconds("1h")


def test_script_asks_oar_for_an_idempotent_checkpointed_job(tmp_path, venv):
    spec = _spec(tmp_path, venv, queue="production")
    script = write_job_script(spec)
    text = script.read_text()
    assert os.access(script, os.X_OK)
    assert script.parent == tmp_path / "runs" / "oar" and script.name.startswith("tiny_train-run-")
    logs = script.with_suffix("")
    assert oar_scan(text) == {
        "-n": [job_name(spec)],
        "-l": ["host=1,walltime=1:30:00"],
        "-q": ["production"],
        "-t": ["idempotent"],
        "--checkpoint": ["300"],
        "--signal": ["12"],
        "-O": [f"{logs}.%jobid%.out"],
        "-E": [f"{logs}.%jobid%.err"],
    }
    assert f"source {venv / 'bin' / 'activate'}" in text
    assert f"export COURSEKIT_DATA={tmp_path / 'datasets'}" in text
    assert f"cd {REPO_ROOT}" in text
    run = (f"coursekit run {TINY} -p epochs 40 -p tag 'a b' --label run "
           f"--out {tmp_path / 'runs'} &")  # fmt: skip
    assert run in text.splitlines()
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_gpu_job_asks_for_a_gpu_this_torch_supports(tmp_path, venv, capsys):
    script = write_job_script(_spec(tmp_path, venv, gpu=True))
    options = oar_scan(script.read_text())
    assert options["-l"] == ["gpu=1,walltime=1:30:00"]
    # OAR uses the rest of the line as its SQL filter: no quotes may wrap it.
    assert options["-p"] == [GPU_PROPERTY] == ["gpu_compute_capability_major>=7"]
    argv = ["oar", str(TINY), "--walltime", "1:00:00", "--gpu", "--env", str(venv), "--data",
            str(tmp_path / "datasets"), "--out", str(tmp_path / "runs")]  # fmt: skip
    assert main(argv) == 0
    assert "-p gpu_compute_capability_major>=7" in capsys.readouterr().err


def test_cpu_job_asks_for_a_host_and_custom_resources_win(tmp_path, venv):
    text = write_job_script(_spec(tmp_path, venv)).read_text()
    assert "#OAR -l host=1,walltime=1:30:00" in text and "#OAR -q" not in text
    assert "#OAR -p" not in text and "nodecheck" not in text
    text = write_job_script(_spec(tmp_path, venv, resources="core=8", label="c8")).read_text()
    assert "#OAR -l core=8,walltime=1:30:00" in text and "--label c8" in text


def test_each_job_gets_its_own_script_never_overwritten(tmp_path, venv):
    spec = _spec(tmp_path, venv)
    first = write_job_script(spec)
    before = first.read_text()
    second = write_job_script(_spec(tmp_path, venv, parameters={"epochs": "41"}))
    assert second != first and first.read_text() == before
    assert oar_scan(second.read_text())["-O"] != oar_scan(before)["-O"]  # logs apart too
    with pytest.raises(OarError, match="never overwritten"):
        write_job_script(spec, first)
    assert first.read_text() == before


def test_script_holds_no_secret_from_the_environment(tmp_path, venv, monkeypatch):
    secrets = {"OAR_TOKEN": "tok-91c2", "AWS_SECRET_ACCESS_KEY": "aws-77x", "HF_TOKEN": "hf_5511"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    text = write_job_script(_spec(tmp_path, venv)).read_text()
    for name, value in secrets.items():
        assert name not in text and value not in text
    exports = [line for line in text.splitlines() if line.lstrip().startswith("export ")]
    assert exports == [f"export COURSEKIT_DATA={tmp_path / 'datasets'}"]  # only the dataset


def test_coursekit_data_of_the_submitting_shell_travels_into_the_job(tmp_path, venv, monkeypatch):
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COURSEKIT_DATA", "shared/data")  # relative to where oar was run
    text = write_job_script(_spec(tmp_path, venv, data=None)).read_text()
    assert f"export COURSEKIT_DATA={shared}" in text.splitlines()
    assert "# From COURSEKIT_DATA" in text


def test_a_job_without_any_dataset_is_refused(tmp_path, venv, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "data" / "_fixtures").mkdir(parents=True)
    (repo / "data" / "README.md").write_text("datasets go here")
    monkeypatch.setattr("coursekit.batch.oar.REPO_ROOT", repo)
    with pytest.raises(OarError, match="holds no dataset and neither --data nor COURSEKIT_DATA"):
        write_job_script(_spec(tmp_path, venv, data=None))
    assert not (tmp_path / "runs" / "oar").exists()  # refused before any file is written
    write_job_script(_spec(tmp_path, venv, data=None, smoke=True))  # fixtures need no dataset
    (repo / "data" / "FashionMNIST").mkdir()
    text = write_job_script(_spec(tmp_path, venv, data=None)).read_text()
    assert "COURSEKIT_DATA" not in text  # the job reads the repository's data/


def test_a_notebook_that_generates_its_data_is_submitted_without_any(tmp_path, venv, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    monkeypatch.setattr("coursekit.batch.oar.REPO_ROOT", repo)
    generating = tmp_path / "gen.ipynb"
    nb = nbformat.read(TINY, as_version=4)
    nb.metadata["coursekit"] = {"needs_data": False}
    nbformat.write(nb, generating)
    text = write_job_script(_spec(tmp_path, venv, data=None, notebook=generating)).read_text()
    assert "COURSEKIT_DATA" not in text
    with pytest.raises(OarError, match="holds no dataset"):  # TINY declares nothing: checked
        write_job_script(_spec(tmp_path, venv, data=None))


@pytest.mark.parametrize("name", ["06_balls_detection_forecasting", "07_hungariannet"])
def test_notebooks_06_and_07_declare_that_they_need_no_dataset(name):
    assert not needs_data(REPO_ROOT / "notebooks" / f"{name}.ipynb")
    assert needs_data(REPO_ROOT / "notebooks" / "05_fashionmnist_regularization.ipynb")


def _start_job(script: Path, fake_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "FAKE_DIR": str(fake_dir)}
    proc = subprocess.Popen(["bash", "-c", shlex.quote(str(script))], env=env)
    deadline = time.monotonic() + 60
    while not (fake_dir / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the job did not start the run"
        time.sleep(0.05)
    return proc


def test_checkpoint_signal_stops_the_run_and_asks_oar_to_resubmit(tmp_path, venv):
    script = write_job_script(_spec(tmp_path, venv))
    proc = _start_job(script, tmp_path)
    proc.send_signal(signal.SIGUSR2)  # what OAR sends --checkpoint seconds before the walltime
    assert proc.wait(timeout=20) == 99  # idempotent job + exit 99: OAR resubmits it
    stopped = (tmp_path / "stopped").read_text().split()
    started = (tmp_path / "started").read_text().split()
    assert stopped == started and started[:2] == ["run", str(TINY)]


def test_sigterm_stops_the_run_without_resubmission(tmp_path, venv):
    proc = _start_job(write_job_script(_spec(tmp_path, venv)), tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    assert (tmp_path / "stopped").exists()


def test_a_conda_environment_is_put_first_on_path(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSEKIT_DATA", raising=False)
    env = _fake_env(tmp_path / "conda-env", kind="conda")
    script = write_job_script(_spec(tmp_path, env))
    assert f"export CONDA_PREFIX={env}" in script.read_text()
    proc = _start_job(script, tmp_path)  # its `coursekit` is the one found: PATH is right
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 143
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)


def _run_job(script: Path, fake_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FAKE_DIR": str(fake_dir)}
    return subprocess.run(["bash", "-c", shlex.quote(str(script))], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_an_environment_that_does_not_run_on_the_node_fails_fast(tmp_path, venv):
    # A venv made from a Python that exists only on the frontend: bin/python dangles.
    python = venv / "bin" / "python"
    python.unlink()
    python.symlink_to("/frontend-only/bin/python3.11")
    done = _run_job(write_job_script(_spec(tmp_path, venv)), tmp_path)
    assert done.returncode == EXIT_ENVIRONMENT != 99
    assert "cannot import coursekit and torch" in done.stderr
    assert "conda env create -f environment.yml" in done.stderr  # the fix
    assert not (tmp_path / "started").exists()  # the notebook never started


@pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux machine without CUDA GPU")
def test_gpu_job_on_a_node_without_usable_gpu_stops_before_the_run(tmp_path, venv):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU on which CUDA kernels run")
    done = _run_job(write_job_script(_spec(tmp_path, venv, gpu=True)), tmp_path)
    assert done.returncode == EXIT_NO_GPU != 99
    assert "no CUDA GPU is usable" in done.stderr
    assert not (tmp_path / "started").exists()


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"walltime": "0:01:00"}, OarError, "must exceed 60 s"),
        ({"walltime": "1:00:00", "checkpoint_delay": 3550}, OarError, "must exceed 60 s"),
        ({"venv": Path("/nonexistent/venv")}, OarError, "no Python environment at"),
        ({"parameters": {"epoch": "3"}}, ParameterError, "did you mean 'epochs'"),
        ({"data": "/nonexistent/datasets"}, OarError, "does not exist"),
    ],
)
def test_bad_jobs_are_refused_before_writing(tmp_path, venv, changes, error, match):
    spec = _spec(tmp_path, changes.pop("venv", venv), **changes)
    with pytest.raises(error, match=match):
        write_job_script(spec)
    assert not (tmp_path / "runs" / "oar").exists()


def _fake_oar(tmp_path: Path, monkeypatch, jobs: object) -> None:
    """oarsub and oarstat stand-ins: oarstat prints `jobs` as JSON, oarsub a new job id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "oarstat.json").write_text(json.dumps(jobs))
    programs = {
        "oarsub": f'#!/bin/bash\necho "$@" > {tmp_path}/oarsub.args\necho OAR_JOB_ID=4242\n',
        "oarstat": f'#!/bin/bash\ncat {tmp_path}/oarstat.json\n',
    }
    for name, text in programs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_submit_calls_oarsub_with_the_script(tmp_path, venv, monkeypatch, capsys):
    _fake_oar(tmp_path, monkeypatch, {})
    argv = ["oar", str(TINY), "--walltime", "2:00:00", "--venv", str(venv), "--out",
            str(tmp_path / "runs"), "--data", str(tmp_path), "--submit"]  # fmt: skip
    assert main(argv) == 0
    script, answer = capsys.readouterr().out.split()
    assert answer == "OAR_JOB_ID=4242"
    assert shlex.split((tmp_path / "oarsub.args").read_text()) == ["-S", script]


@pytest.mark.parametrize("layout", ["oar2 dict by id", "oar3 list"])
def test_a_second_job_of_the_same_run_is_refused_while_the_first_is_queued(
    tmp_path, venv, monkeypatch, layout
):
    spec = _spec(tmp_path, venv)
    other = job_name(_spec(tmp_path, venv, parameters={"epochs": "41"}))
    assert other != job_name(spec)
    found = [("4242", job_name(spec), "Waiting"), ("4243", other, "Running"),
             ("4100", job_name(spec), "Terminated")]  # fmt: skip
    if layout == "oar3 list":
        jobs: object = [{"id": int(i), "job_name": n, "state": s} for i, n, s in found]
    else:
        jobs = {i: {"Job_Id": i, "name": n, "state": s} for i, n, s in found}
    _fake_oar(tmp_path, monkeypatch, jobs)
    with pytest.raises(OarError, match=r"job\(s\) 4242 \(Waiting\) already run .* --force"):
        submit_job(spec)
    assert not (tmp_path / "oarsub.args").exists() and not (tmp_path / "runs" / "oar").exists()

    script, answer = submit_job(spec, force=True)  # asked for: submitted
    assert answer == "OAR_JOB_ID=4242" and script.is_file()
    finished = [{"id": 4242, "job_name": job_name(spec), "state": "Terminated"}]
    (tmp_path / "oarstat.json").write_text(json.dumps(finished))
    assert submit_job(spec)[0] != script  # nothing queued any more: a new job, a new script


def test_submit_without_oarsub_says_where_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OarError, match="run this on a Grid'5000 frontend"):
        submit(tmp_path / "job.sh")


# --- the job's exit codes, with a real `coursekit run` started as OAR starts a job ---------


class RealJob:
    """A job script running tiny_train.ipynb in the tests' own environment."""

    def __init__(self, tmp_path: Path, notebook: Path = TINY, **parameters: str) -> None:
        spec = JobSpec(notebook=notebook, walltime="1:00:00", parameters=parameters,
                       out=tmp_path / "runs", venv=Path(sys.prefix),
                       data=str(tmp_path))  # fmt: skip
        self.script = write_job_script(spec)
        self.runs = tmp_path / "runs" / notebook.stem
        self.log = tmp_path / "job.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        with self.log.open("a") as log:  # OAR runs the script through `bash -c`
            self.proc = subprocess.Popen(["bash", "-c", shlex.quote(str(self.script))],
                                         stdout=log, stderr=log)  # fmt: skip
        return self.proc

    def run(self) -> int:
        return self.start().wait(timeout=300)

    def status(self) -> dict:
        found = list(self.runs.glob("*/status.json"))
        return json.loads(found[0].read_text()) if found else {}

    def epoch(self) -> int:
        found = list(self.runs.glob("*/checkpoints/tiny.pt"))
        if not found:
            return 0
        from coursekit.checkpoint import load_checkpoint

        return int(load_checkpoint(found[0])["epoch"])

    def wait_for(self, predicate, what: str) -> None:
        deadline = time.monotonic() + 120
        while not predicate():
            assert self.proc is not None and self.proc.poll() is None, f"job ended before {what}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def real_job(tmp_path: Path) -> Iterator[RealJob]:
    jobs: list[RealJob] = []

    def make(**kwargs) -> RealJob:
        jobs.append(RealJob(tmp_path, **kwargs))
        return jobs[-1]

    yield make
    for job in jobs:
        job.kill()


def test_job_of_a_run_that_finishes_exits_0(real_job):
    job = real_job(epochs="2")
    assert job.run() == 0, job.log.read_text()
    assert job.status()["state"] == "done" and job.epoch() == 2


def test_job_signalled_after_a_checkpoint_is_resubmitted_and_resumes(real_job):
    job = real_job(epochs="6", pause="0.5")
    proc = job.start()
    job.wait_for(lambda: job.epoch() >= 1, "a first checkpoint")
    proc.send_signal(signal.SIGUSR2)  # OAR's checkpoint signal, to the job's script
    assert proc.wait(timeout=60) == 99, job.log.read_text()  # OAR resubmits the job
    status = job.status()
    assert (status["state"], status["error"]) == ("interrupted", "stopped by SIGUSR2")
    saved = job.epoch()
    assert 1 <= saved < 6
    assert job.run() == 0, job.log.read_text()  # the resubmitted job: the same script
    assert (job.status()["state"], job.status()["attempts"], job.epoch()) == ("done", 2, 6)


def test_job_signalled_before_any_checkpoint_is_not_resubmitted(real_job):
    job = real_job(epochs="2", pause="120")  # the first checkpoint would come after 2 minutes
    proc = job.start()
    job.wait_for(lambda: job.status().get("state") == "running", "the run to start")
    time.sleep(2)  # the notebook is running
    proc.send_signal(signal.SIGUSR2)
    assert proc.wait(timeout=60) == EXIT_NO_PROGRESS != 99, job.log.read_text()
    status = job.status()
    assert status["state"] == "failed" and job.epoch() == 0
    assert "one epoch takes longer than the walltime minus the checkpoint delay" in status["error"]
    assert "walltime minus the checkpoint delay" in job.log.read_text()


def test_job_of_a_failing_notebook_is_not_resubmitted(real_job, tmp_path):
    from tools.nbmake import write_notebook

    failing = write_notebook(tmp_path / "failing.ipynb", [
        ("md", "# Failing"), ("params", "limit = 3"), ("code", "raise ValueError('too low')"),
    ])  # fmt: skip
    job = real_job(notebook=failing)
    assert job.run() == 1, job.log.read_text()
    assert job.status()["state"] == "failed"
    assert "failing.ipynb failed in cell" in job.log.read_text()


def test_paths_under_tmp_are_named_for_a_warning(monkeypatch):
    home = Path("/home/student")
    monkeypatch.setattr("coursekit.batch.oar.REPO_ROOT", home / "coursekit")
    monkeypatch.delenv("COURSEKIT_DATA", raising=False)
    spec = JobSpec(notebook=TINY, walltime="1:00:00", venv=home / "env", out=home / "runs",
                   data=str(home / "data"))  # fmt: skip
    assert node_local_paths(spec) == []
    spec = JobSpec(notebook=TINY, walltime="1:00:00", venv=Path("/tmp/env"),
                   out=home / "runs", data="/tmp/x/data")  # fmt: skip
    assert [where.split()[0] for where in node_local_paths(spec)] == ["environment", "data"]
    monkeypatch.setattr("coursekit.batch.oar.REPO_ROOT", Path("/tmp/clone"))
    assert "repository /tmp/clone" in node_local_paths(spec)


def test_a_job_whose_environment_imports_another_checkout_fails_fast(tmp_path, venv, monkeypatch):
    # The environment's coursekit is this checkout; the job is written for another one.
    other = tmp_path / "other-clone"
    (other / "coursekit").mkdir(parents=True)
    monkeypatch.setattr("coursekit.batch.oar.REPO_ROOT", other)
    done = _run_job(write_job_script(_spec(tmp_path, venv)), tmp_path)
    assert done.returncode == EXIT_ENVIRONMENT != 99, done.stderr
    assert f"runs coursekit from {REPO_ROOT / 'coursekit'}" in done.stderr  # what would run
    assert f"written for the repository {other}" in done.stderr
    assert not (tmp_path / "started").exists()


def test_the_job_prints_the_python_and_the_coursekit_that_run(tmp_path, venv):
    script = write_job_script(_spec(tmp_path, venv))
    proc = subprocess.Popen(["bash", "-c", shlex.quote(str(script))], stderr=subprocess.PIPE,
                            env={**os.environ, "FAKE_DIR": str(tmp_path)}, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert f"Python {sys.executable} runs coursekit from {REPO_ROOT / 'coursekit'}" in err


def test_a_coursekit_command_of_another_environment_is_refused(tmp_path, venv):
    (venv / "bin" / "coursekit").unlink()  # PATH then finds another environment's command
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "coursekit").write_text('#!/bin/sh\ntouch "$FAKE_DIR/started"\n')
    (other / "coursekit").chmod(0o755)
    env = {**os.environ, "FAKE_DIR": str(tmp_path), "PATH": f"{other}:{os.environ['PATH']}"}
    script = write_job_script(_spec(tmp_path, venv))
    done = subprocess.run(["bash", "-c", shlex.quote(str(script))], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == EXIT_ENVIRONMENT, done.stderr
    assert "is not" in done.stderr and not (tmp_path / "started").exists()


def _with_watchdog_times(script: Path, checkpoint_in: int, stop_in: int) -> Path:
    """The job script with a fake walltime: its watchdog acts seconds after the environment
    checks (which take seconds themselves), not hours after the start."""
    text = re.sub(r"^checkpoint_at=\d+", f"checkpoint_at=$((SECONDS + {checkpoint_in}))",
                  script.read_text(), count=1, flags=re.M)  # fmt: skip
    text = re.sub(r"^stop_by=\d+", f"stop_by=$((SECONDS + {stop_in}))", text, count=1,
                  flags=re.M)  # fmt: skip
    assert text.count("SECONDS + ") == 2
    script.write_text(text)
    return script


def test_the_watchdog_times_come_from_the_walltime_and_the_checkpoint_delay(tmp_path, venv):
    text = write_job_script(_spec(tmp_path, venv, walltime="1:00:00")).read_text()
    assert re.search(r"^checkpoint_at=3300 ", text, re.M)  # 3600 - 300, when OAR signals
    assert re.search(r"^stop_by=3510 ", text, re.M)  # 90 s before the walltime


def test_the_watchdog_signals_the_run_when_oar_does_not(tmp_path, venv):
    script = _with_watchdog_times(write_job_script(_spec(tmp_path, venv)), 2, 60)
    proc = _start_job(script, tmp_path)
    assert proc.wait(timeout=30) == 99  # no signal sent by the test: the watchdog's
    assert (tmp_path / "stopped").exists()


@pytest.mark.parametrize(
    ("checkpoints", "code", "state"),
    [("saved in the attempt", 99, "interrupted"),  # OAR resubmits the job, which resumes
     ("none", 5, "failed"),  # a run hung from the start would hang at every resubmission
     ("only an earlier attempt's", 5, "failed")],
)  # fmt: skip
def test_the_watchdog_kills_a_hung_run_and_resubmits_it_only_if_it_saved_a_checkpoint(
    tmp_path, venv, checkpoints, code, state
):
    import socket

    run = tmp_path / "runs/tiny_train/20260101-000000-run"
    if checkpoints == "only an earlier attempt's":
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "old.pt").write_text("epoch 1")
        (run / "status.json").write_text('{"state": "interrupted"}')
    save = 'mkdir -p "$out/checkpoints"; echo 2 > "$out/checkpoints/new.pt"\n'
    # A run that records itself as running, then ignores the checkpoint signal and SIGTERM.
    (venv / "bin" / "coursekit").write_text(
        "#!/usr/bin/env bash\ntrap '' USR2 TERM\n"
        'out="${@: -1}"/tiny_train/20260101-000000-run\nmkdir -p "$out"\n'
        f'printf \'{{"state": "running", "pid": %d, "host": "{socket.gethostname()}"}}\' $$ '
        '> "$out/status.json"\n'
        + (save if checkpoints == "saved in the attempt" else "")
        + 'echo $$ > "$FAKE_DIR/pid"\necho "$@" > "$FAKE_DIR/started"\n'
        "while true; do sleep 0.05; done\n"
    )
    script = _with_watchdog_times(write_job_script(_spec(tmp_path, venv)), 2, 4)
    proc = _start_job(script, tmp_path)
    start = time.monotonic()
    assert proc.wait(timeout=60) == code
    assert time.monotonic() - start < 30
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == state
    assert "by the job's walltime watchdog" in status["error"]
    assert ("not resubmitted" in status["error"]) == (code == 5)
