"""OAR job scripts: directives, the resume command, the checkpoint trap, no secrets."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coursekit.batch.cli import main
from coursekit.batch.errors import OarError, ParameterError
from coursekit.batch.oar import JobSpec, submit, walltime_seconds, write_job_script
from coursekit.settings import REPO_ROOT

TINY = Path(__file__).resolve().parent / "notebooks" / "tiny_train.ipynb"


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Path]:
    """A stand-in environment whose `coursekit` waits until it gets SIGTERM."""
    root = tmp_path / "venv"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "activate").write_text(f'export PATH="{root / "bin"}:$PATH"\n')
    fake = root / "bin" / "coursekit"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'trap \'echo "$@" > "$FAKE_DIR/stopped"; exit 143\' TERM\n'
        'echo $$ > "$FAKE_DIR/pid"\n'
        'echo "$@" > "$FAKE_DIR/started"\n'
        "while true; do sleep 0.05; done\n"
    )
    fake.chmod(0o755)
    yield root
    pid_file = tmp_path / "pid"
    if pid_file.exists():  # a failed test must not leave the stand-in running
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _spec(tmp_path: Path, venv: Path, **changes) -> JobSpec:
    values = dict(notebook=TINY, walltime="1:30", parameters={"epochs": "40", "tag": "a b"},
                  out=tmp_path / "runs", venv=venv)  # fmt: skip
    return JobSpec(**{**values, **changes})


def test_walltimes_are_parsed_and_bad_ones_refused():
    assert walltime_seconds("1:00:00") == 3600
    assert walltime_seconds("2:30") == 9000
    assert walltime_seconds("12") == 43200
    with pytest.raises(OarError, match="is not H:MM:SS"):
        walltime_seconds("1h")


def test_script_asks_oar_for_an_idempotent_checkpointed_job(tmp_path, venv):
    script = write_job_script(_spec(tmp_path, venv, gpu=True, queue="production", data="/srv/d"))
    text = script.read_text()
    assert os.access(script, os.X_OK)
    assert script == tmp_path / "runs" / "oar" / "tiny_train-run.sh"
    directives = [line for line in text.splitlines() if line.startswith("#OAR ")]
    logs = tmp_path / "runs" / "oar" / "tiny_train-run"
    assert directives == [
        "#OAR -n coursekit-tiny_train",
        "#OAR -l gpu=1,walltime=1:30:00",
        "#OAR -q production",
        "#OAR -t idempotent",
        "#OAR --checkpoint 300",
        "#OAR --signal 12",
        f"#OAR -O {logs}.%jobid%.out",
        f"#OAR -E {logs}.%jobid%.err",
    ]
    assert f"source {venv / 'bin' / 'activate'}" in text
    assert "export COURSEKIT_DATA=/srv/d" in text
    assert f"cd {REPO_ROOT}" in text
    run = (f"coursekit run {TINY} -p epochs 40 -p tag 'a b' --label run "
           f"--out {tmp_path / 'runs'} &")  # fmt: skip
    assert run in text.splitlines()
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_cpu_job_asks_for_a_host_and_custom_resources_win(tmp_path, venv):
    text = write_job_script(_spec(tmp_path, venv)).read_text()
    assert "#OAR -l host=1,walltime=1:30:00" in text and "#OAR -q" not in text
    text = write_job_script(_spec(tmp_path, venv, resources="core=8", label="c8")).read_text()
    assert "#OAR -l core=8,walltime=1:30:00" in text and "--label c8" in text


def test_script_holds_no_secret_from_the_environment(tmp_path, venv, monkeypatch):
    secrets = {"OAR_TOKEN": "tok-91c2", "AWS_SECRET_ACCESS_KEY": "aws-77x", "HF_TOKEN": "hf_5511"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    text = write_job_script(_spec(tmp_path, venv)).read_text()
    for name, value in secrets.items():
        assert name not in text and value not in text
    exports = [line for line in text.splitlines() if line.lstrip().startswith("export ")]
    assert exports == []  # nothing from this shell travels into the job


def _start_job(script: Path, fake_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "FAKE_DIR": str(fake_dir)}
    proc = subprocess.Popen(["bash", str(script)], env=env)
    deadline = time.monotonic() + 20
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


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"walltime": "0:01:00"}, OarError, "must exceed 60 s"),
        ({"walltime": "1:00:00", "checkpoint_delay": 3550}, OarError, "must exceed 60 s"),
        ({"venv": Path("/nonexistent/venv")}, OarError, "no virtual environment at"),
        ({"parameters": {"epoch": "3"}}, ParameterError, "did you mean 'epochs'"),
    ],
)
def test_bad_jobs_are_refused_before_writing(tmp_path, venv, changes, error, match):
    spec = _spec(tmp_path, changes.pop("venv", venv), **changes)
    with pytest.raises(error, match=match):
        write_job_script(spec)
    assert not (tmp_path / "runs" / "oar").exists()


def test_submit_calls_oarsub_with_the_script(tmp_path, venv, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    oarsub = bin_dir / "oarsub"
    oarsub.write_text(f'#!/bin/bash\necho "$@" > {tmp_path}/oarsub.args\necho OAR_JOB_ID=4242\n')
    oarsub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    argv = ["oar", str(TINY), "--walltime", "2:00:00", "--venv", str(venv), "--out",
            str(tmp_path / "runs"), "--submit"]  # fmt: skip
    assert main(argv) == 0
    script, answer = capsys.readouterr().out.split()
    assert answer == "OAR_JOB_ID=4242"
    assert shlex.split((tmp_path / "oarsub.args").read_text()) == ["-S", script]


def test_submit_without_oarsub_says_where_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OarError, match="run this on a Grid'5000 frontend"):
        submit(tmp_path / "job.sh")
