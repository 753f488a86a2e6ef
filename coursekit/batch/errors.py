"""Errors of the `coursekit` command, in a module with no heavy import.

The command catches them all to print one clear line; each subcommand imports only what it
needs, so `coursekit runs` does not pay for optuna or papermill.
"""

from __future__ import annotations

import signal


class ParameterError(ValueError):
    """A parameter name or value that the notebook's parameters cell does not accept."""


class RunError(RuntimeError):
    """A run that cannot start or did not end well; the message says what to do."""


class OarError(ValueError):
    """A job that cannot be written or submitted; the message says how to fix it."""


class SweepError(ValueError):
    """A sweep that cannot start or whose workers failed; the message says why."""


class RunInterrupted(BaseException):
    """The run received a stop signal; a BaseException so no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
