"""Shared pytest fixtures: isolated data folders, a session-wide fixture dataset root."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from coursekit.audio.fixtures import ensure_fsdd_fixture
from coursekit.data.fixtures import ensure_fixtures


@pytest.fixture
def tmp_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return tmp_path with COURSEKIT_DATA=tmp_path/data, COURSEKIT_FIXTURES=tmp_path/fixtures.

    Smoke mode is switched off so each test decides it (set COURSEKIT_SMOKE itself).
    """
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COURSEKIT_FIXTURES", str(tmp_path / "fixtures"))
    monkeypatch.delenv("COURSEKIT_SMOKE", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a fixture root holding MNIST, FashionMNIST, CIFAR-10 and FSDD fixtures (read-only)."""
    return ensure_fsdd_fixture(ensure_fixtures(tmp_path_factory.mktemp("fixture_data") / "root"))


@pytest.fixture
def smoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fixture_data: Path) -> Path:
    """Smoke mode on the session's fixture root, outside any batch run, with checkpoints and
    figures under tmp_path; returns tmp_path."""
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    monkeypatch.setenv("COURSEKIT_FIXTURES", str(fixture_data))
    monkeypatch.setenv("COURSEKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COURSEKIT_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("COURSEKIT_PROGRESS", "off")
    monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
    return tmp_path


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return tmp_path/runs as an empty COURSEKIT_RUNS: JupyterLab layout (no batch run),
    smoke mode off."""
    monkeypatch.setenv("COURSEKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
    monkeypatch.delenv("COURSEKIT_SMOKE", raising=False)
    return tmp_path / "runs"


@pytest.fixture
def toy_study() -> Callable:
    """Return make(n): an in-memory maximized study of n trials over x (float) and c (a/b),
    each reporting 3 intermediate values; its objective depends mostly on x."""
    import optuna

    def make(n: int) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.RandomSampler(seed=0)
        study = optuna.create_study(direction="maximize", sampler=sampler)

        def objective(trial):
            x = trial.suggest_float("x", 0, 1)
            c = trial.suggest_categorical("c", ["a", "b"])
            for epoch in range(1, 4):
                trial.report(x * epoch, epoch)
            return x + 0.01 * (c == "a")

        study.optimize(objective, n_trials=n)
        return study

    return make


@pytest.fixture
def one_thread():
    """Run torch on one CPU thread: for the small models of the tests, threads cost more than
    they give (several times slower when other jobs share the 2 cores of CI)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def assignment_splits():
    """Return small 2-DOA (train, val, test) assignment splits of notebook 07: 60 matrices
    per group to train on, ten times more for validation and test."""
    from coursekit.hungarian import data as assignment

    per_group = 60
    big = assignment.balanced_sample_range(2, 10 * per_group)
    train = assignment.generate(2, assignment.balanced_sample_range(2, per_group), seed=0)
    # The earlier splits given, not regenerated: val and test exclude the train split used.
    val = assignment.generate(2, big, seed=0, split="val", exclude=[train])
    return train, val, assignment.generate(2, big, seed=0, split="test", exclude=[train, val])


@pytest.fixture(scope="module")
def audio_data(fixture_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """Return notebook 02's AudioData of the FSDD fixture (features cached in a temporary
    folder)."""
    from coursekit.audio import lesson

    return lesson.load_audio(fixture_data, cache_dir=tmp_path_factory.mktemp("audio_cache"))
