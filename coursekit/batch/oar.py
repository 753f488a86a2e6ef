"""`coursekit oar`: a Grid'5000 OAR job script that runs `coursekit run` and survives walltimes.

The job is idempotent (`-t idempotent`) and checkpointable (`--checkpoint DELAY`): DELAY
seconds before the walltime OAR sends SIGUSR2 to the script, which passes it to the run;
the run stops (status `interrupted`, at most the current epoch lost) and the script exits
with code 99. A watchdog in the script sends that signal itself should OAR's not come, and
kills a run that has not stopped shortly before the walltime (exit 99 if it saved a
checkpoint in this attempt, else 5: a run hung from the start must not loop).
OAR resubmits an idempotent job that exits with 99 after running more than
60 s; the new job runs the same command, which resumes in the same run folder.

What would make a resubmitted job fail again ends the chain with another exit code
(`coursekit.batch.errors`): an environment that does not run on the node (3), no GPU
this torch build runs on (4), an attempt that saved no checkpoint before the signal, or a
run killed by the watchdog that saved none in the attempt (5).
Each job gets its own script, never overwritten: OAR resubmits a job by its script's path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coursekit.batch.errors import (
    EXIT_ENVIRONMENT,
    EXIT_NO_GPU,
    EXIT_NO_PROGRESS,
    RESUBMIT,
    OarError,
)
from coursekit.batch.nbparams import check_parameters, needs_data, resolved_parameters
from coursekit.batch.runs import check_label, fingerprint
from coursekit.settings import REPO_ROOT, runs_dir

# OAR resubmits an idempotent job only if it ran longer than this (oar3 node_change_state).
OAR_MIN_RUNTIME_S = 60
RESUBMIT_EXIT_CODE = RESUBMIT
# torch 2.9.1 from PyPI is built with CUDA 12.8, which has no kernels for Maxwell and Pascal
# GPUs (compute capability < 7.0, pytorch issue 157517); Grid'5000 still has such nodes.
MIN_GPU_CAPABILITY_MAJOR = 7
GPU_PROPERTY = f"gpu_compute_capability_major>={MIN_GPU_CAPABILITY_MAJOR}"
# Job states (OAR 2.5 and 3) in which a job will still run or is running.
LIVE_STATES = frozenset(
    {"Waiting", "Hold", "toLaunch", "toAckReservation", "Launching", "Running", "Suspended",
     "Resuming", "Finishing"}
)  # fmt: skip
_DATA_NAMES_IGNORED = {"README.md"}  # plus hidden files and `_fixtures`-like folders


@dataclass
class JobSpec:
    """What an OAR job runs (the `coursekit run` arguments) and what it asks OAR for.

    venv: the Python environment the job uses, a virtual environment (bin/activate) or a
    conda environment (conda-meta/); default: the one running this code (sys.prefix).
    data: COURSEKIT_DATA for the job; default: this process's COURSEKIT_DATA, if set.
    """

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


def _activation(spec: JobSpec) -> tuple[Path, str]:
    """Return (environment root, the shell lines that put it first on PATH)."""
    env = Path(spec.venv or sys.prefix).expanduser().resolve()
    activate = env / "bin" / "activate"
    if activate.is_file():
        return env, f"source {shlex.quote(str(activate))} || exit {EXIT_ENVIRONMENT}"
    if (env / "conda-meta").is_dir():
        # A conda environment has no bin/activate; its own bin/ first on PATH is all pip's
        # packages (torch included) need, and it works without `module load conda`.
        quoted = shlex.quote(str(env))
        return env, f'export CONDA_PREFIX={quoted}\nexport PATH="$CONDA_PREFIX/bin:$PATH"'
    raise OarError(
        f"no Python environment at {env}: neither a virtual environment (bin/activate) nor a "
        "conda environment (conda-meta/). On Grid'5000 create the conda environment once on "
        "the frontend (module load conda; conda env create -f environment.yml -p "
        "~/coursekit-env) and pass --env ~/coursekit-env"
    )


def _has_dataset(folder: Path) -> bool:
    """Return True if `folder` holds anything but its README, hidden files and fixtures."""
    if not folder.is_dir():
        return False
    return any(
        not p.name.startswith((".", "_")) and p.name not in _DATA_NAMES_IGNORED
        for p in folder.iterdir()
    )


def _data_lines(spec: JobSpec) -> str:
    """Return the lines exporting COURSEKIT_DATA in the job ('' if the job uses data/)."""
    if spec.data:
        value, origin = spec.data, "--data"
    elif os.environ.get("COURSEKIT_DATA"):
        value, origin = os.environ["COURSEKIT_DATA"], "COURSEKIT_DATA when `coursekit oar` ran"
    else:
        # Notebooks that generate their data (06, 07) say so in their metadata.
        wanted = not spec.smoke and needs_data(spec.notebook)
        if wanted and not _has_dataset(REPO_ROOT / "data"):
            raise OarError(
                f"{REPO_ROOT / 'data'} holds no dataset and neither --data nor COURSEKIT_DATA "
                "is set, so the job would stop at its first data cell: link the datasets into "
                "data/ (README, 'Batch runs on Grid'5000'), pass --data DIR, or export "
                "COURSEKIT_DATA=DIR first (--smoke jobs need no data)"
            )
        return ""
    path = Path(value).expanduser().resolve()  # absolute: the job starts in the repository
    if not path.is_dir():
        raise OarError(f"dataset folder {path} (from {origin}) does not exist here")
    return f"# From {origin}:\nexport COURSEKIT_DATA={shlex.quote(str(path))}"


def run_command(spec: JobSpec, label: str, out: Path) -> list[str]:
    """Return the `coursekit run` command line the job runs (the same at every resubmission)."""
    cmd = ["coursekit", "run", str(spec.notebook.resolve())]
    for name, value in spec.parameters.items():
        cmd += ["-p", name, value if isinstance(value, str) else repr(value)]
    if spec.smoke:
        cmd.append("--smoke")
    return [*cmd, "--label", label, "--out", str(out)]


def _label(spec: JobSpec) -> str:
    return check_label(spec.label or ("smoke" if spec.smoke else "run"))


def _out(spec: JobSpec) -> Path:
    return Path(spec.out or runs_dir()).resolve()


def job_name(spec: JobSpec) -> str:
    """Return the OAR job name: notebook, label and a key of the run (parameters, folder).

    Two jobs with the same name would run, and write, the same run; OAR gives a
    resubmitted job the name of the job it replaces.
    """
    checked = check_parameters(spec.notebook, spec.parameters)
    resolved = resolved_parameters(spec.notebook, checked)
    label = _label(spec)
    run = fingerprint(spec.notebook.stem, resolved, spec.smoke, label)
    key = hashlib.sha256(f"{run} {_out(spec)}".encode()).hexdigest()[:10]
    return f"coursekit-{spec.notebook.stem}-{label}-{key}"


def _request(spec: JobSpec, walltime: str) -> list[str]:
    resources = spec.resources or ("gpu=1" if spec.gpu else "host=1")
    lines = [f"-l {resources},walltime={walltime}"]
    if spec.gpu:
        # OAR takes the rest of a `#OAR -p` line as the SQL filter, verbatim: no quotes.
        lines.append(f"-p {GPU_PROPERTY}")
    if spec.queue:
        lines.append(f"-q {spec.queue}")
    return lines


def oar_request(spec: JobSpec) -> str:
    """Return what the job asks OAR for, e.g. `-l gpu=1,walltime=1:00:00 -p ... -q production`."""
    return " ".join(_request(spec, _check_timing(spec)))


def _directives(spec: JobSpec, name: str, walltime: str, logs: Path) -> list[str]:
    lines = [f"-n {name}", *_request(spec, walltime)]
    lines += [
        "-t idempotent",
        f"--checkpoint {spec.checkpoint_delay}",
        "--signal 12",  # SIGUSR2, OAR's default, written out so the trap below is explicit
        f"-O {logs}.%jobid%.out",
        f"-E {logs}.%jobid%.err",
    ]
    return [f"#OAR {line}" for line in lines]


_CHECKS = """\
# Fail fast, before any work, when the environment does not run on this node.
PY={python}
if ! (cd / && "$PY" -c 'import coursekit, torch'); then
  echo "coursekit oar: $PY cannot import coursekit and torch on $(hostname) (error above)." >&2
  echo "  A virtual environment made from a Python that exists only on the frontend does not" >&2
  echo "  run on the nodes. Create the conda environment once on the frontend (module load" >&2
  echo "  conda; conda env create -f environment.yml -p ~/coursekit-env) and submit with" >&2
  echo "  --env ~/coursekit-env (README, 'Batch runs on Grid'5000')." >&2
  exit {exit_environment}
fi
# The code that runs is the code checked: the environment's Python, from outside the
# repository (as the `coursekit` command and the kernel import it), must import the
# coursekit of the repository this job was written for, not another (editable) checkout.
if ! (cd / && "$PY" - {repo} <<'PYTHON'
import sys
from pathlib import Path

import coursekit

package = Path(coursekit.__file__).resolve().parent
print(f"coursekit oar: Python {{sys.executable}} runs coursekit from {{package}}", file=sys.stderr)
if package != (Path(sys.argv[1]) / "coursekit").resolve():
    print(f"coursekit oar: this job was written for the repository {{sys.argv[1]}}, but the "
          "environment's Python imports coursekit from another place: reinstall the "
          f"repository in the environment (pip install -e {{sys.argv[1]}})", file=sys.stderr)
    sys.exit(1)
PYTHON
); then
  exit {exit_environment}
fi
if ! [ "$(command -v coursekit)" -ef {command} ]; then
  echo "coursekit oar: the coursekit command found, $(command -v coursekit), is not" >&2
  echo "  {command}, the environment's; the job would run other code" >&2
  exit {exit_environment}
fi
"""
_GPU_CHECK = """\
"$PY" -m coursekit.batch.nodecheck || exit {exit_no_gpu}
"""
_BODY = """\
# The run's pid: ${{!:-}} is it as soon as it is forked, before run_pid is assigned (the
# watchdog, which changes $!, starts after that).
run_pid=
watchdog_pid=
stop_run() {{
  local pid=${{run_pid:-${{!:-}}}}
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid"
}}
on_checkpoint() {{
  trap '' USR2  # one stop: a second signal (OAR's or the watchdog's) must not cut it short
  echo "coursekit oar: walltime is near; stopping the run, OAR resubmits this job to resume it" >&2
  local pid=${{run_pid:-${{!:-}}}} status=0
  if [ -n "$pid" ]; then
    kill -USR2 "$pid" 2>/dev/null
    wait "$pid"
    status=$?
  fi
  # {no_progress}: no checkpoint saved since this job started; a resubmission would loop.
  [ "$status" -eq {no_progress} ] && exit {no_progress}
  [ "$status" -eq 0 ] && exit 0  # the run ended before the signal
  if [ -n "$pid" ] && [ "$status" -ne 140 ]; then
    # Killed (by the watchdog): the run could not record that it stopped; say it for it.
    # Resubmitted only if it saved a checkpoint in this attempt: a run hung before any
    # would hang again at each resubmission ({no_progress} ends the chain).
    local why="killed (exit $status) after the checkpoint signal, by the job's walltime"
    why+=" watchdog if it did not stop within {margin} s; it resumes from its last checkpoint"
    "$PY" -c 'import json, sys; from coursekit.batch import runs
found = runs.abandon_runs(*sys.argv[1:3], int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5]))
sys.exit(0 if any(progressed for _, progressed in found) else 1)' \
      {out} {name} "$pid" "$why" "$checkpoints_at_start" || exit {no_progress}
  fi
  exit {resubmit}
}}
# The runs' checkpoints as this attempt starts, to tell whether a killed run saved any.
checkpoints_at_start=$("$PY" -c 'import json, sys; from coursekit.batch import runs
print(json.dumps(runs.checkpoint_snapshot(*sys.argv[1:3])))' {out} {name}) ||
  checkpoints_at_start={{}}
# The walltime watchdog: OAR's checkpoint signal may not come, and a run that hangs after it
# would outlive the walltime (the job then ends without exit {resubmit} and the run stays
# "running"). Seconds since this script started (bash's SECONDS; OAR's clock started first):
checkpoint_at={checkpoint_at}  # the watchdog sends the checkpoint signal (as OAR does)
stop_by={stop_by}  # a run still alive then is killed (SIGTERM, then SIGKILL {grace} s later)
watchdog() {{
  local nap=
  trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  nap_until() {{
    local left=$(( $1 - SECONDS ))
    [ "$left" -gt 0 ] || return 0
    sleep "$left" & nap=$!
    wait "$nap"
  }}
  nap_until "$checkpoint_at"
  echo "coursekit oar: watchdog: walltime minus {delay} s reached; checkpoint signal" >&2
  kill -USR2 $$ 2>/dev/null
  nap_until "$stop_by"
  kill -0 "$run_pid" 2>/dev/null || exit 0
  echo "coursekit oar: watchdog: the run did not stop after the checkpoint signal; killing it" >&2
  kill -TERM "$run_pid" 2>/dev/null
  nap_until $(( stop_by + {grace} ))
  kill -KILL "$run_pid" 2>/dev/null
}}
trap on_checkpoint USR2
trap 'stop_run; exit 143' TERM INT
trap '[ -n "$watchdog_pid" ] && kill "$watchdog_pid" 2>/dev/null' EXIT
# In the background, so that bash runs the traps while it waits.
{command} &
run_pid=$!
watchdog &
watchdog_pid=$!
wait "$run_pid"
status=$?
# 140 = 128 + SIGUSR2: the run itself got OAR's checkpoint signal and stopped cleanly.
[ "$status" -eq 140 ] && exit {resubmit}
exit "$status"
"""
KILL_GRACE_S = 5  # between the watchdog's SIGTERM and its SIGKILL


def watchdog_times(spec: JobSpec) -> tuple[int, int]:
    """Return (checkpoint_at, stop_by), seconds after the job's start: when the job's watchdog
    sends the checkpoint signal, and when it kills a run that has not stopped since."""
    total = walltime_seconds(spec.walltime)
    checkpoint_at = total - spec.checkpoint_delay
    margin = min(90, max(2 * KILL_GRACE_S, spec.checkpoint_delay // 2))
    return checkpoint_at, max(checkpoint_at, total - margin)


def job_script(spec: JobSpec, path: Path) -> str:
    """Return the text of the OAR job script for `spec`, to be saved at `path`.

    Checks the notebook, its parameters, the walltime, the environment and the data first
    (OarError/ParameterError).
    """
    walltime = _check_timing(spec)
    name = job_name(spec)  # checks the parameters
    env, activate = _activation(spec)
    data = _data_lines(spec)
    logs = path.with_suffix("")
    header = [
        "#!/usr/bin/env bash",
        f"# OAR job written by `coursekit oar` for {spec.notebook.name}.",
        f"# Submit it from a Grid'5000 frontend: oarsub -S {shlex.quote(str(path))}",
        f"# Exit codes: {RESUBMIT} OAR resubmits the job (walltime reached, run saved); "
        f"{EXIT_ENVIRONMENT} the environment",
        f"# does not run on the node; {EXIT_NO_GPU} no GPU this torch runs on; "
        f"{EXIT_NO_PROGRESS} no checkpoint saved in the attempt.",
        *_directives(spec, name, walltime, logs),
    ]
    lines = ["set -u", f"cd {shlex.quote(str(REPO_ROOT))} || exit 1", activate]
    lines += [data] if data else []
    checks = _CHECKS.format(
        python=shlex.quote(str(env / "bin" / "python")),
        repo=shlex.quote(str(REPO_ROOT)),
        command=shlex.quote(str(env / "bin" / "coursekit")),
        exit_environment=EXIT_ENVIRONMENT,
    )
    checks += _GPU_CHECK.format(exit_no_gpu=EXIT_NO_GPU) if spec.gpu else ""
    checkpoint_at, stop_by = watchdog_times(spec)
    body = _BODY.format(
        command=shlex.join(run_command(spec, _label(spec), _out(spec))),
        resubmit=RESUBMIT,
        no_progress=EXIT_NO_PROGRESS,
        out=shlex.quote(str(_out(spec))),
        name=shlex.quote(spec.notebook.stem),
        checkpoint_at=checkpoint_at,
        stop_by=stop_by,
        margin=stop_by - checkpoint_at,
        delay=spec.checkpoint_delay,
        grace=KILL_GRACE_S,
    )
    return "\n".join([*header, *lines]) + "\n" + checks + body


def _claim(spec: JobSpec, path: Path | None) -> Path:
    """Create and return an empty, new script file: never one that a queued job may run."""
    if path is not None:
        path = Path(path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.open("x").close()
        except FileExistsError:
            raise OarError(
                f"{path} exists: job scripts are never overwritten, because OAR resubmits a "
                "job by its script's path; choose another --script or leave it out"
            ) from None
        return path
    folder = _out(spec) / "oar"
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{spec.notebook.stem}-{_label(spec)}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        candidate = folder / (f"{base}.sh" if n == 1 else f"{base}-{n}.sh")
        try:
            candidate.open("x").close()
            return candidate
        except FileExistsError:
            continue
    raise OarError(f"could not find a free script name for {base} in {folder}")


def node_local_paths(spec: JobSpec) -> list[str]:
    """Return the job's paths that lie under /tmp (environment, repository, runs, data): a
    node's /tmp is not the frontend's, so the job would not find them there."""
    env = Path(spec.venv or sys.prefix).expanduser().resolve()
    named = {"environment": env, "repository": REPO_ROOT.resolve(), "runs": _out(spec).resolve()}
    data = spec.data or os.environ.get("COURSEKIT_DATA")
    if data:
        named["data"] = Path(data).expanduser().resolve()
    return [f"{what} {path}" for what, path in named.items()
            if path == Path("/tmp") or Path("/tmp") in path.parents]  # fmt: skip


def write_job_script(spec: JobSpec, path: Path | None = None) -> Path:
    """Write a new job script (executable) and return its path.

    Default path: runs/oar/<notebook>-<label>-<timestamp>.sh, with its logs next to it
    (<same name>.<job id>.out/.err). An existing file is never overwritten (OarError).
    """
    # Everything is checked before a file is created (the path is only needed for comments).
    job_script(spec, Path(path or _out(spec) / "oar" / "check.sh").resolve())
    script = _claim(spec, path)
    try:
        script.write_text(job_script(spec, script))
    except BaseException:
        script.unlink(missing_ok=True)
        raise
    script.chmod(0o755)
    return script


def _oar_command(name: str, script: Path | None = None) -> str:
    if shutil.which(name) is None:
        where = f"copy {script} there and submit it with `oarsub -S <script>`" if script else ""
        raise OarError(
            f"{name} is not available here: run this on a Grid'5000 frontend"
            + (f", or {where}" if where else "")
        )
    return name


def live_jobs(name: str) -> list[tuple[str, str]]:
    """Return [(job id, state)] of this user's OAR jobs named `name` that are queued or running.

    Reads `oarstat -J -u`, whose JSON is a dict by job id (OAR 2.5) or a list (OAR 3).
    """
    done = subprocess.run(
        [_oar_command("oarstat"), "-J", "-u"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise OarError(f"oarstat failed (exit {done.returncode}): {done.stderr.strip()}")
    try:
        data = json.loads(done.stdout or "{}")
    except ValueError as exc:
        raise OarError(f"cannot read oarstat's JSON output: {exc}") from None
    jobs = data.items() if isinstance(data, dict) else ((None, job) for job in data)
    found = []
    for key, job in jobs:
        job_id = str(job.get("id") or job.get("Job_Id") or job.get("job_id") or key)
        if (job.get("name") or job.get("job_name")) == name and job.get("state") in LIVE_STATES:
            found.append((job_id, job["state"]))
    return found


def submit(script: Path) -> str:
    """Submit `script` with `oarsub -S` and return oarsub's answer (it holds OAR_JOB_ID)."""
    oarsub = _oar_command("oarsub", script)
    done = subprocess.run([oarsub, "-S", str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        raise OarError(f"oarsub refused {script} (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def submit_job(spec: JobSpec, path: Path | None = None, force: bool = False) -> tuple[Path, str]:
    """Write a new job script and submit it; return (script, oarsub's answer).

    Refused (OarError) while a job of the same run is queued or running, since both would
    write the same run folder; force: submit anyway (e.g. to replace a held job).
    """
    if not force:
        name = job_name(spec)
        live = live_jobs(name)
        if live:
            jobs = ", ".join(f"{job} ({state})" for job, state in live)
            raise OarError(
                f"job(s) {jobs} already run this notebook with these parameters and label "
                f"({name}); a second job would write the same run folder. Wait for it, remove "
                f"it (oardel {live[0][0]}), or pass --force"
            )
    script = write_job_script(spec, path)
    return script, submit(script)
