"""Where data and figures live, which device to use, smoke mode and seeding."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# numpy and torch are imported where they are used: the `coursekit` command and its batch
# runner read these settings too, and must not pay torch's import time for it.

REPO_ROOT = Path(__file__).resolve().parents[1]


def smoke_mode() -> bool:
    """Return True when COURSEKIT_SMOKE=1: notebooks run in seconds on fixture data."""
    return os.environ.get("COURSEKIT_SMOKE", "0").strip().lower() in {"1", "true", "yes"}


def data_root() -> Path:
    """Return the root folder of real datasets (env COURSEKIT_DATA, default `data/`)."""
    return Path(os.environ.get("COURSEKIT_DATA", REPO_ROOT / "data")).expanduser()


def fixture_root() -> Path:
    """Return the folder where coursekit writes its tiny fixture datasets."""
    default = data_root() / "_fixtures"
    return Path(os.environ.get("COURSEKIT_FIXTURES", default)).expanduser()


def figures_dir(notebook: str) -> Path:
    """Return (and create) `figures/<notebook>/`, where a notebook saves its figures."""
    root = Path(os.environ.get("COURSEKIT_FIGURES", REPO_ROOT / "figures")).expanduser()
    path = root / notebook
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Return the folder for checkpoints, studies and batch-run outputs (env COURSEKIT_RUNS)."""
    return Path(os.environ.get("COURSEKIT_RUNS", REPO_ROOT / "runs")).expanduser()


def run_dir() -> Path | None:
    """Return the folder of the current batch run (env COURSEKIT_RUN_DIR), or None in Lab."""
    value = os.environ.get("COURSEKIT_RUN_DIR")
    return Path(value) if value else None


def lab_path(notebook: str, kind: str, name: str = "") -> Path:
    """Return `<runs>/lab/<notebook>/<kind>/<name>` (`smoke` for `lab` in smoke mode): where
    the notebook keeps that artifact when it runs in JupyterLab (not created)."""
    folder = runs_dir() / ("smoke" if smoke_mode() else "lab") / notebook / kind
    return folder / name if name else folder


def artifact_path(notebook: str, kind: str, name: str = "") -> Path:
    """Return where `notebook` keeps artifact `name` of `kind` ('checkpoints', 'studies',
    'mlflow', 'cache', 'handoff'): the one rule for everything a run writes.

    In a batch run (`coursekit run`, env COURSEKIT_RUN_DIR): `<run dir>/<kind>/<name>`, so a
    run folder holds all it wrote. In JupyterLab: `lab_path`, so fixture runs (smoke mode)
    never mix with real ones. The folder is created; `name=""` returns the folder itself.
    """
    run = run_dir()
    folder = run / kind if run is not None else lab_path(notebook, kind)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name if name else folder


def get_device(prefer: str | torch.device | None = "auto") -> torch.device:
    """Return the training device: `prefer`, or for 'auto'/None env COURSEKIT_DEVICE, else
    the best available one (cuda > mps > cpu)."""
    import torch

    if isinstance(prefer, torch.device):
        return prefer
    name = prefer if prefer not in (None, "auto") else os.environ.get("COURSEKIT_DEVICE", "auto")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {name!r} was asked for but CUDA is not available here; "
            "use device='cpu' or 'auto'."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {name!r} was asked for but MPS is not available here.")
    return device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (CPU and CUDA); optionally force deterministic kernels."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def interactive_session() -> bool:
    """Return False in smoke mode, on CI and in batch runs (`coursekit run` sets
    PAPERMILL_EXECUTION): there a live widget is useless, and nbclient can block on one
    (jupyter/nbclient#312, nteract/papermill#723: a cell with ipywidgets never returns)."""
    return not (smoke_mode() or os.environ.get("CI") or os.environ.get("PAPERMILL_EXECUTION"))


def progress_mode() -> str:
    """Return how loops report progress: 'bar' (tqdm), 'text' (a line per epoch) or 'off'.

    Env COURSEKIT_PROGRESS wins; CI, smoke mode and headless runs get 'text'
    because widget bars end up as noise in executed notebooks.
    """
    mode = os.environ.get("COURSEKIT_PROGRESS")
    if mode in {"bar", "text", "off"}:
        return mode
    if os.environ.get("CI") or smoke_mode() or os.environ.get("PAPERMILL_EXECUTION"):
        return "text"
    return "bar"
