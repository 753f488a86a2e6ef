"""Where a notebook's datasets live: the one meaning of a data root, for every exercise."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from coursekit import settings
from coursekit.data.fixtures import claim_fixture_root


def resolve_root(
    root: str | os.PathLike | None = None, fixtures: Callable[[Path], Path] | None = None
) -> Path:
    """Return the folder that holds the datasets: `root` when given, else in smoke mode the
    fixture root (marked synthetic, then completed by `fixtures(root)`), else
    `settings.data_root()` (COURSEKIT_DATA).

    Smoke mode is the one place where loading asks for fixtures, and only when switched on:
    outside it a missing dataset is an error, never a silent fallback.
    """
    if root is not None:
        return Path(root).expanduser()
    if settings.smoke_mode():
        base = claim_fixture_root()
        return fixtures(base) if fixtures is not None else base
    return settings.data_root()
