"""The student edition: the teacher's notebooks with answers replaced by stubs, via nbgrader.

The teacher's notebooks are the source of truth. Their answers are marked with nbgrader's
conventions (cell metadata `nbgrader`, `### BEGIN SOLUTION` / `### END SOLUTION`,
`### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`); nbgrader's own preprocessors do the
conversion. This module only checks the marks first, to say clearly which cell is wrong.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import nbformat

from coursekit.settings import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
STUDENT_DIR = REPO_ROOT / "student"  # git-ignored: regenerated from notebooks/ (README)

CODE_STUB = "# VOTRE CODE ICI\nraise NotImplementedError()"
TEXT_STUB = "VOTRE RÉPONSE ICI"
# nbgrader's delimiters (its defaults); the workbook writes them as `### BEGIN SOLUTION`.
DELIMITERS = {
    "solution": ("BEGIN SOLUTION", "END SOLUTION"),
    "hidden tests": ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"),
}


class StudentEditionError(ValueError):
    """A notebook whose answer marks cannot make a student edition; the message says why."""


def _marks(cell) -> dict:
    return cell.metadata.get("nbgrader", {}) or {}


def _regions(source: str, kind: str, where: str) -> list[tuple[int, int]]:
    """Return the (begin, end) line indices of the `kind` regions of a cell's source."""
    begin, end = DELIMITERS[kind]
    found, start = [], None
    for i, line in enumerate(source.split("\n")):
        if begin in line:
            if start is not None:
                raise StudentEditionError(
                    f"{where}: '{begin}' on line {i + 1} inside the region opened on line "
                    f"{start + 1}; close it with '### {end}' first (regions do not nest)"
                )
            start = i
        elif end in line:
            if start is None:
                raise StudentEditionError(
                    f"{where}: '{end}' on line {i + 1} without a '### {begin}' before it"
                )
            found.append((start, i))
            start = None
    if start is not None:
        raise StudentEditionError(
            f"{where}: '{begin}' on line {start + 1} is never closed; add a line '### {end}'"
        )
    return found


def solution_regions(source: str, where: str = "cell") -> list[tuple[int, int]]:
    """Return the (BEGIN, END) line indices of the solution regions of a cell's source."""
    return _regions(source, "solution", where)


def _written_answers_graded(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return nb with each markdown answer made an nbgrader "manually graded answer".

    The workbook marks a written answer "solution": true only; nbgrader's format wants such a
    cell to be a grade cell too, with points: one point, graded by hand in formgrader.
    """
    for cell in nb.cells:
        marks = _marks(cell)
        if cell.cell_type == "markdown" and marks.get("solution") and not marks.get("grade"):
            marks.update(grade=True, points=marks.get("points") or 1)
    return nb


def check_marks(nb: nbformat.NotebookNode, name: str = "notebook") -> None:
    """Return None if the notebook's answer marks are consistent; raise StudentEditionError."""
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        marks = _marks(cell)
        where = f"{name}, cell {index}"
        solutions = _regions(cell.source, "solution", where)
        hidden = _regions(cell.source, "hidden tests", where)
        if solutions and not marks.get("solution"):
            raise StudentEditionError(
                f"{where}: a '### BEGIN SOLUTION' region in a cell without nbgrader metadata "
                '"solution": true; mark the cell as an answer (see docs/student_edition.md)'
            )
        if hidden and not marks.get("grade"):
            raise StudentEditionError(
                f"{where}: a '### BEGIN HIDDEN TESTS' region in a cell that is not a grade cell; "
                'give it nbgrader metadata "grade": true (see docs/student_edition.md)'
            )
        if solutions and cell.cell_type != "code":
            raise StudentEditionError(
                f"{where}: solution regions belong in code cells; a markdown answer is a cell "
                'of its own with "solution": true, replaced whole'
            )
        if not (marks.get("solution") or marks.get("grade")):
            continue
        grade_id = marks.get("grade_id")
        if not grade_id:
            raise StudentEditionError(f"{where}: nbgrader metadata without a grade_id")
        if grade_id in seen:
            raise StudentEditionError(
                f"{where}: grade_id '{grade_id}' is already used by cell {seen[grade_id]}; "
                "grade ids must be unique in a notebook"
            )
        seen[grade_id] = index
        if marks.get("grade") and cell.cell_type == "code" and marks.get("points") is None:
            raise StudentEditionError(f"{where}: grade cell '{grade_id}' has no points")
    from nbgrader.nbgraderformat import MetadataValidator, ValidationError
    from nbgrader.nbgraderformat.common import SchemaMismatchError

    try:  # nbgrader's own schema check (version, types), after ours that name the cell
        MetadataValidator().validate_nb(_written_answers_graded(copy.deepcopy(nb)))
    except (ValidationError, SchemaMismatchError) as exc:
        raise StudentEditionError(f"{name}: nbgrader metadata rejected: {exc}") from exc


def student_edition(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """Return the student edition of a teacher's notebook (a new notebook, outputs cleared)."""
    from nbconvert.exporters.exporter import ResourcesDict
    from nbgrader.preprocessors import (
        ClearHiddenTests,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    check_marks(nb, name)
    nb = _written_answers_graded(copy.deepcopy(nb))
    steps = [
        ClearSolutions(code_stub={"python": CODE_STUB}, text_stub=TEXT_STUB),
        ClearHiddenTests(),
        ClearOutput(),
        LockCells(),  # grade cells read-only in JupyterLab (nbgrader's default locks)
        ComputeChecksums(),  # lets `nbgrader autograde` notice an edited grade cell
    ]
    resources = ResourcesDict()
    for step in steps:
        nb, resources = step.preprocess(nb, resources)
    nbformat.validate(nb)
    return nb


def _resolve(notebook: str | Path, folder: Path) -> Path:
    path = Path(notebook)
    for candidate in (path, folder / path, folder / f"{path}.ipynb"):
        if candidate.suffix == ".ipynb" and candidate.is_file():
            return candidate
    known = sorted(folder.glob("*.ipynb"))
    prefixed = [p for p in known if p.stem.startswith(str(notebook))]
    if len(prefixed) == 1:  # `coursekit student 05`
        return prefixed[0]
    raise StudentEditionError(
        f"unknown notebook '{notebook}': give a .ipynb file, or a name (or the start of one) "
        f"in {folder}: {', '.join(p.stem for p in known)}"
    )


def write_student_editions(
    notebooks: Iterable[str | Path] = (), out: str | Path | None = None
) -> list[Path]:
    """Return the paths written: the student edition of each notebook (default: all) in out."""
    try:
        import nbgrader  # noqa: F401  (a dev dependency: the teacher's tool)
    except ImportError as exc:
        raise StudentEditionError(
            "nbgrader is not installed: use `./kit student`, or pip install -e '.[dev]'"
        ) from exc
    paths = [_resolve(n, NOTEBOOKS) for n in notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    if not paths:
        raise StudentEditionError(f"no notebook found in {NOTEBOOKS}")
    out = Path(out) if out is not None else STUDENT_DIR
    if out.exists() and not out.is_dir():
        raise StudentEditionError(f"--out {out} is a file; give a folder")
    if any(out.resolve() == path.parent.resolve() for path in paths):
        raise StudentEditionError(
            f"--out {out} holds the teacher's notebooks, which the student edition would "
            "overwrite; give another folder (default: student/)"
        )
    # every edition is made before any is written: one bad notebook leaves out/ as it was
    editions = {}
    for path in paths:
        try:
            teacher = nbformat.read(path, as_version=4)
        except Exception as exc:  # nbformat raises several types for a broken file
            raise StudentEditionError(f"{path}: not a readable notebook ({exc})") from exc
        editions[path.name] = student_edition(teacher, path.name)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, nb in editions.items():
        target = out / file_name
        tmp = target.with_suffix(".ipynb.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(target)  # atomic: a reader never sees half a notebook
        written.append(target)
    return written
