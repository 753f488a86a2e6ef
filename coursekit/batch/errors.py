"""Errors of the `coursekit` command, in a module with no heavy import.

The command catches them all to print one clear line; each subcommand imports only what it
needs, so `coursekit runs` does not pay for optuna or papermill.
"""

from __future__ import annotations

import signal

# Exit codes of an OAR job (`coursekit oar`). OAR resubmits an idempotent job only when it
# exits with RESUBMIT; every other code ends the chain of jobs, which is what a job that
# could never succeed on a resubmission must do.
RESUBMIT = 99
EXIT_ENVIRONMENT = 3  # the environment's Python cannot import coursekit and torch on the node
EXIT_NO_GPU = 4  # no GPU on which this torch build runs a CUDA kernel
EXIT_NO_PROGRESS = 5  # stopped by OAR's checkpoint signal without saving any new checkpoint


class ParameterError(ValueError):
    """A parameter name or value that the notebook's parameters cell does not accept."""


class RunError(RuntimeError):
    """A run that cannot start or did not end well; the message says what to do."""


class OarError(ValueError):
    """A job that cannot be written or submitted; the message says how to fix it."""


class SweepError(ValueError):
    """A sweep that cannot start or whose workers failed; the message says why."""


class NoProgress(RunError):
    """A run stopped before the walltime without saving a checkpoint: resubmitting repeats it."""


class RunInterrupted(BaseException):
    """The run received a stop signal; a BaseException so no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
