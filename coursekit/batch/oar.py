"""`coursekit oar`: a Grid'5000 OAR job script that runs `coursekit run` and survives walltimes.

The job is idempotent (`-t idempotent`) and checkpointable (`--checkpoint DELAY`): DELAY
seconds before the walltime OAR sends SIGUSR2 to the script, which stops the run
(status `interrupted`, at most the current epoch lost) and exits with code 99. OAR
resubmits an idempotent job that exits with 99 after running more than 60 s; the new
job runs the same command, which resumes in the same run folder from its checkpoints.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coursekit.batch.errors import OarError
from coursekit.batch.nbparams import check_parameters
from coursekit.batch.runs import check_label
from coursekit.settings import REPO_ROOT, runs_dir

# OAR resubmits an idempotent job only if it ran longer than this (oar3 node_change_state).
OAR_MIN_RUNTIME_S = 60
RESUBMIT_EXIT_CODE = 99


@dataclass
class JobSpec:
    """What an OAR job runs (the `coursekit run` arguments) and what it asks OAR for."""

    notebook: Path
    walltime: str
    parameters: dict[str, Any] = field(default_factory=dict)
    gpu: bool = False
    smoke: bool = False
    label: str | None = None
    out: Path | None = None
    resources: str | None = None
    queue: str | None = None
    checkpoint_delay: int = 300
    venv: Path | None = None
    data: str | None = None


def walltime_seconds(walltime: str) -> int:
    """Return the seconds of an OAR walltime `H[:MM[:SS]]`; OarError if it is malformed."""
    match = re.fullmatch(r"(\d+)(?::([0-5]?\d))?(?::([0-5]?\d))?", walltime.strip())
    if not match:
        raise OarError(f"walltime {walltime!r} is not H:MM:SS (e.g. 1:00:00 for one hour)")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _check_timing(spec: JobSpec) -> str:
    total = walltime_seconds(spec.walltime)
    if spec.checkpoint_delay < 1 or total - spec.checkpoint_delay <= OAR_MIN_RUNTIME_S:
        raise OarError(
            f"walltime {spec.walltime} minus the checkpoint delay ({spec.checkpoint_delay} s) "
            f"must exceed {OAR_MIN_RUNTIME_S} s, or OAR never resubmits the job; ask for a longer "
            "walltime or a shorter --checkpoint-delay"
        )
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _venv(spec: JobSpec) -> Path:
    venv = (spec.venv or REPO_ROOT / ".venv").resolve()
    if not (venv / "bin" / "activate").is_file():
        raise OarError(
            f"no virtual environment at {venv} (bin/activate missing): create it on the frontend "
            "with `./kit test` (or `./kit python -V`), or pass --venv PATH"
        )
    return venv


def run_command(spec: JobSpec, label: str, out: Path) -> list[str]:
    """Return the `coursekit run` command line the job runs (the same at every resubmission)."""
    cmd = ["coursekit", "run", str(spec.notebook.resolve())]
    for name, value in spec.parameters.items():
        cmd += ["-p", name, value if isinstance(value, str) else repr(value)]
    if spec.smoke:
        cmd.append("--smoke")
    return [*cmd, "--label", label, "--out", str(out)]


def _directives(spec: JobSpec, name: str, walltime: str, logs: Path) -> list[str]:
    resources = spec.resources or ("gpu=1" if spec.gpu else "host=1")
    lines = [f"-n {name}", f"-l {resources},walltime={walltime}"]
    if spec.queue:
        lines.append(f"-q {spec.queue}")
    lines += [
        "-t idempotent",
        f"--checkpoint {spec.checkpoint_delay}",
        "--signal 12",  # SIGUSR2, OAR's default, written out so the trap below is explicit
        f"-O {logs}.%jobid%.out",
        f"-E {logs}.%jobid%.err",
    ]
    return [f"#OAR {line}" for line in lines]


_BODY = """\
set -u
cd {repo} || exit 1
source {activate} || exit 1
{exports}
# ${{!:-}} is the run's pid as soon as it is forked, even before run_pid is assigned.
stop_run() {{
  local pid=${{!:-}}
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid"
}}
on_checkpoint() {{
  echo "coursekit oar: walltime is near; stopping the run, OAR resubmits this job to resume it" >&2
  stop_run
  exit {resubmit}
}}
trap on_checkpoint USR2
trap 'stop_run; exit 143' TERM INT
# In the background, so that bash runs the traps while it waits.
{command} &
run_pid=$!
wait "$run_pid"
status=$?
# 140 = 128 + SIGUSR2: the run itself got OAR's checkpoint signal and stopped cleanly.
[ "$status" -eq 140 ] && exit {resubmit}
exit "$status"
"""


def _label(spec: JobSpec) -> str:
    return check_label(spec.label or ("smoke" if spec.smoke else "run"))


def _logs(spec: JobSpec) -> Path:
    return (spec.out or runs_dir()).resolve() / "oar" / f"{spec.notebook.stem}-{_label(spec)}"


def job_script(spec: JobSpec, path: Path) -> str:
    """Return the text of the OAR job script for `spec`, to be saved at `path`.

    Checks the notebook, its parameters and the walltime first (OarError/ParameterError).
    """
    walltime = _check_timing(spec)
    check_parameters(spec.notebook, spec.parameters)
    label = _label(spec)
    out = (spec.out or runs_dir()).resolve()
    name = f"coursekit-{spec.notebook.stem}"
    logs = _logs(spec)
    exports = f"export COURSEKIT_DATA={shlex.quote(spec.data)}" if spec.data else ""
    header = [
        "#!/usr/bin/env bash",
        f"# OAR job written by `coursekit oar` for {spec.notebook.name}.",
        f"# Submit it from a Grid'5000 frontend: oarsub -S {shlex.quote(str(path))}",
        *_directives(spec, name, walltime, logs),
    ]
    body = _BODY.format(
        repo=shlex.quote(str(REPO_ROOT)),
        activate=shlex.quote(str(_venv(spec) / "bin" / "activate")),
        exports=exports,
        command=shlex.join(run_command(spec, label, out)),
        resubmit=RESUBMIT_EXIT_CODE,
    )
    return "\n".join(header) + "\n" + body


def write_job_script(spec: JobSpec, path: Path | None = None) -> Path:
    """Write the job script (executable) and return its path (default runs/oar/<nb>-<label>.sh)."""
    logs = _logs(spec)
    path = (path or logs.with_name(logs.name + ".sh")).resolve()
    text = job_script(spec, path)
    for folder in {path.parent, logs.parent}:  # OAR does not create the log folder
        folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def submit(script: Path) -> str:
    """Submit `script` with `oarsub -S` and return oarsub's answer (it holds OAR_JOB_ID)."""
    if shutil.which("oarsub") is None:
        raise OarError(
            f"oarsub is not available here: run this on a Grid'5000 frontend, or copy {script} "
            "there and submit it with `oarsub -S <script>`"
        )
    done = subprocess.run(["oarsub", "-S", str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        raise OarError(f"oarsub refused {script} (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()
