"""The package's rooms: shared code never imports an exercise, notebooks never need batch/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import coursekit

PACKAGE = Path(coursekit.__file__).parent
EXERCISES = ("mnist", "audio", "cam", "cifar", "fashion", "balls", "hungarian")


def imported_modules(path: Path) -> set[str]:
    """Return every module name `path` imports, at top level or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # `from coursekit import audio` names the exercise in the alias, not the module.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def room(path: Path) -> str:
    """Return the first folder of `path` under the package ('' for a top-level module)."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def _is_exercise(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "coursekit" and len(parts) > 1 and parts[1] in EXERCISES


def test_every_exercise_has_its_folder():
    assert all((PACKAGE / name / "__init__.py").is_file() for name in EXERCISES)
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    # Anything that is neither an exercise nor a shared room is a new room: list it here.
    assert folders == {*EXERCISES, "data", "models", "batch"}


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if room(p) not in EXERCISES),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_shared_code_never_imports_an_exercise(path: Path):
    bad = sorted(m for m in imported_modules(path) if _is_exercise(m))
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}: move that code into the exercise"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if room(p) in EXERCISES),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_exercises_never_import_batch(path: Path):
    bad = sorted(m for m in imported_modules(path) if m.startswith("coursekit.batch"))
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}: notebooks must not need batch/"


def test_the_walk_sees_function_level_and_aliased_imports(tmp_path: Path):
    source = tmp_path / "m.py"
    source.write_text(
        "def f():\n    from coursekit import audio\n    import coursekit.cam.lesson\n"
    )
    assert {m for m in imported_modules(source) if _is_exercise(m)} == {
        "coursekit.audio", "coursekit.cam.lesson",
    }
