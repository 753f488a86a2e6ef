"""Shared pytest fixtures: isolated data folders, a session-wide fixture dataset root."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    """Return a fixture root holding MNIST, FashionMNIST and CIFAR-10 fixtures (read-only)."""
    return ensure_fixtures(tmp_path_factory.mktemp("fixture_data") / "root")
