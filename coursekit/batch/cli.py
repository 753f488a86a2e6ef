"""The `coursekit` command: run notebooks headless, list runs, write OAR jobs, run sweeps."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from coursekit.batch.errors import (
    EXIT_NO_PROGRESS,
    NoProgress,
    OarError,
    ParameterError,
    RunError,
    RunInterrupted,
    SweepError,
)

EXAMPLES = """\
examples:
  coursekit run notebooks/01_mnist_loss_curves.ipynb -p epochs 14 -p device cuda
  coursekit run --all --smoke
  coursekit runs
  coursekit oar notebooks/01_mnist_loss_curves.ipynb -p epochs 14 --walltime 1:00:00 --gpu \\
      --queue production --submit     # on the frontend of Nancy, the production queue's site
  coursekit sweep coursekit.batch.sweep:demo_objective --study demo --storage demo.db --trials 20
"""


def _add_out(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="root folder of the runs (default: runs/ or COURSEKIT_RUNS)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter of the notebook's parameters cell",
    )
    p.add_argument(
        "--smoke", action="store_true", help="run on the tiny fixture datasets (COURSEKIT_SMOKE=1)"
    )
    p.add_argument("--label", help="end of the run folder's name (default: run, or smoke)")
    _add_out(p)


def _run_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="execute a notebook headless in a resumable run folder",
        description="Execute a notebook with papermill. Rerunning the same command "
        "after a kill resumes in the same run folder from its checkpoints.",
    )
    p.add_argument("notebook", nargs="?", type=Path, help="the notebook (.ipynb) to run")
    p.add_argument(
        "--all", action="store_true", help="run every notebook of notebooks/ with its defaults"
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start a new run folder even if an unfinished one matches",
    )
    _add_run_options(p)


def _runs_parser(sub) -> None:
    p = sub.add_parser("runs", help="list past runs with their parameters and metrics")
    p.add_argument(
        "notebook", nargs="?", help="only the runs of this notebook (name without .ipynb)"
    )
    _add_out(p)


def _oar_parser(sub) -> None:
    p = sub.add_parser(
        "oar",
        help="write (and submit) a Grid'5000 OAR job running `coursekit run`",
        description="Write a new OAR job script: OAR signals it before the walltime, the "
        "run stops cleanly and OAR resubmits the job, which resumes. Each call writes its own "
        "script; none is ever overwritten.",
    )
    p.add_argument("notebook", type=Path, help="the notebook (.ipynb) to run")
    _add_run_options(p)
    p.add_argument("--walltime", required=True, help="the job's walltime, H:MM:SS (e.g. 1:00:00)")
    p.add_argument(
        "--gpu",
        action="store_true",
        help="ask for one GPU that this torch build supports (-l gpu=1 -p "
        "'gpu_compute_capability_major>=7'); default: one host, CPU only",
    )
    p.add_argument(
        "--resources", help="OAR resource request instead of host=1 / gpu=1 (e.g. core=8)"
    )
    p.add_argument("--queue", help="OAR queue (e.g. production, at Nancy only; besteffort)")
    p.add_argument(
        "--checkpoint-delay",
        type=int,
        default=300,
        help="seconds before the walltime at which OAR signals the job (default 300)",
    )
    p.add_argument(
        "--env",
        "--venv",
        dest="venv",
        type=Path,
        help="Python environment the job runs in: a conda environment or a virtual "
        "environment (default: the one running this command)",
    )
    p.add_argument(
        "--data",
        help="COURSEKIT_DATA for the job (default: COURSEKIT_DATA of this shell, if set)",
    )
    p.add_argument(
        "--script", type=Path, help="where to write the job script (default: new in runs/oar/)"
    )
    p.add_argument("--submit", action="store_true", help="submit the script with `oarsub -S`")
    p.add_argument(
        "--force",
        action="store_true",
        help="submit even if a job of the same run is already queued or running",
    )


def _sweep_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="run an Optuna study with several worker processes",
        description="Run trials of an Optuna study shared through its storage; "
        "several commands (or OAR jobs) on the same storage share the trial budget.",
    )
    p.add_argument(
        "objective", help="MODULE:FUNCTION, a function taking an optuna trial and returning a value"
    )
    p.add_argument("--study", required=True, help="study name")
    p.add_argument(
        "--storage",
        required=True,
        help="a file (.db: SQLite; other names: journal file, safe on NFS) or a database URL",
    )
    p.add_argument("--trials", type=int, required=True, help="total number of trials of the study")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes started by this command"
    )
    p.add_argument("--direction", choices=("minimize", "maximize"), default="minimize")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median")


def _student_parser(sub) -> None:
    p = sub.add_parser(
        "student",
        help="write the student edition of notebooks (answers replaced by stubs, via nbgrader)",
        description="Write the student edition of each notebook: answers replaced by "
        "`# VOTRE CODE ICI` / `VOTRE RÉPONSE ICI`, hidden tests removed, outputs cleared.",
    )
    p.add_argument(
        "notebooks", nargs="*", metavar="NOTEBOOK", help="notebooks (default: all of notebooks/)"
    )
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="where to write them (default: student/)"
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `coursekit` command."""
    parser = argparse.ArgumentParser(
        prog="coursekit",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_run_parser, _runs_parser, _oar_parser, _sweep_parser, _student_parser):
        add(sub)
    return parser


def _parameters(pairs: list[list[str]]) -> dict[str, str]:
    names = [name for name, _ in pairs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ParameterError(f"parameter(s) given more than once: {', '.join(repeated)}")
    return dict(pairs)


def _cmd_run(args: argparse.Namespace) -> int:
    from coursekit.batch.runner import run_all, run_notebook, workbook_notebooks

    if args.all == (args.notebook is not None):
        raise RunError("give either a NOTEBOOK or --all")
    if not args.all:
        folder = run_notebook(
            args.notebook,
            _parameters(args.parameter),
            smoke=args.smoke,
            label=args.label,
            out=args.out,
            fresh=args.fresh,
        )
        print(folder)
        return 0
    if args.parameter or args.label or args.fresh:
        raise RunError(
            "--all runs every notebook with its defaults: -p, --label and --fresh do not apply"
        )
    results = run_all(workbook_notebooks(), smoke=args.smoke, out=args.out)
    for notebook, result in results.items():
        print(result if isinstance(result, Path) else f"FAILED {notebook.name}: {result}")
    return int(any(not isinstance(r, Path) for r in results.values()))


def _cmd_runs(args: argparse.Namespace) -> int:
    from coursekit.batch.runs import format_runs_table, list_runs
    from coursekit.settings import runs_dir

    root = args.out or runs_dir()
    print(format_runs_table(list_runs(root, args.notebook), root))
    return 0


def _cmd_oar(args: argparse.Namespace) -> int:
    from coursekit.batch.oar import (
        JobSpec,
        node_local_paths,
        oar_request,
        submit_job,
        write_job_script,
    )

    spec = JobSpec(
        notebook=args.notebook,
        parameters=_parameters(args.parameter),
        walltime=args.walltime,
        gpu=args.gpu,
        smoke=args.smoke,
        label=args.label,
        out=args.out,
        resources=args.resources,
        queue=args.queue,
        checkpoint_delay=args.checkpoint_delay,
        venv=args.venv,
        data=args.data,
    )
    if not args.submit:
        script, answer = write_job_script(spec, args.script), None
    else:
        script, answer = submit_job(spec, args.script, force=args.force)
    print(f"coursekit oar: the job asks OAR for {oar_request(spec)}", file=sys.stderr)
    for where in node_local_paths(spec):
        print(f"coursekit oar: warning: the job's {where} is under /tmp, which is the "
              "frontend's own: the node's /tmp will not hold it (use your home)", file=sys.stderr)
    print(script)
    if answer is not None:
        print(answer)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from coursekit.batch.sweep import sweep

    study = sweep(
        args.objective,
        study=args.study,
        storage=args.storage,
        trials=args.trials,
        workers=args.workers,
        direction=args.direction,
        pruner=args.pruner,
    )
    states = Counter(t.state.name.lower() for t in study.trials)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    print(f"study {study.study_name}: {summary}")
    done = [t for t in study.trials if t.value is not None]
    if done:
        best = study.best_trial
        print(f"best: trial {best.number}, value {best.value:.6g}, params {best.params}")
    return 0


def _cmd_student(args: argparse.Namespace) -> int:
    from coursekit.batch.student import StudentEditionError, write_student_editions

    try:
        written = write_student_editions(args.notebooks, args.out)
    except StudentEditionError as exc:
        print(f"coursekit student: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `coursekit` command with `argv`; return its exit status."""
    args = build_parser().parse_args(argv)
    commands = {"run": _cmd_run, "runs": _cmd_runs, "oar": _cmd_oar, "sweep": _cmd_sweep,
                "student": _cmd_student}
    from coursekit.tuning import StudyError  # optuna itself is imported only by `sweep`

    try:
        return commands[args.command](args)
    except NoProgress as exc:  # before RunError, its base: the OAR job must not be resubmitted
        print(f"coursekit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_NO_PROGRESS
    except (ParameterError, RunError, OarError, SweepError, StudyError, FileNotFoundError) as exc:
        print(f"coursekit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except RunInterrupted as exc:
        print(f"coursekit run: stopped by {exc}; rerun the same command to resume", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(
            f"coursekit {args.command}: interrupted; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
