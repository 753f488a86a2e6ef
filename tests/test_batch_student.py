"""The student edition (`coursekit student`): stubs in place of answers, checks that grade them.

Every notebook of notebooks/ is checked, whatever is marked in it. The checks pass on the
teacher's edition because nbval runs the teacher's notebooks in smoke mode (`./kit test`): a
failing assert in a grade cell fails that run. Here the student edition is executed the same
way (nbclient, smoke mode) to see each check fail on the stubs.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import nbformat
import pytest

from coursekit.batch.cli import main
from coursekit.batch.student import (
    CODE_STUB,
    DELIMITERS,
    TEXT_STUB,
    StudentEditionError,
    check_marks,
    solution_regions,
    student_edition,
    write_student_editions,
)

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
STUB_ERRORS = {"NotImplementedError", "NameError"}  # what a check meets on the stub


def _marks(cell) -> dict:
    return cell.metadata.get("nbgrader", {}) or {}


def _is_answer(cell) -> bool:
    return bool(_marks(cell).get("solution"))


def _is_check(cell) -> bool:
    return bool(_marks(cell).get("grade")) and cell.cell_type == "code"


@cache
def _editions(path: Path) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """Return (teacher, student) editions of a workbook notebook, made once per session."""
    teacher = nbformat.read(path, as_version=4)
    return teacher, student_edition(teacher, path.name)


def _region_lines(source: str, kind: str) -> tuple[list[list[str]], list[str]]:
    """Return (the kind's regions, delimiters included; the lines outside them)."""
    begin, end = DELIMITERS[kind]
    regions, outside, current = [], [], None
    for line in source.split("\n"):
        if begin in line:
            current = [line]
        elif current is not None:
            current.append(line)
            if end in line:
                regions.append(current)
                current = None
        else:
            outside.append(line)
    return regions, outside


def _put_back(student: str, teacher: str) -> str:
    """Return the student's code cell with the teacher's solution regions put in the stubs."""
    regions, _ = _region_lines(teacher, "solution")
    if not regions:
        return teacher if student == CODE_STUB else student
    first, second = CODE_STUB.split("\n")
    lines, out, i = student.split("\n"), [], 0
    while i < len(lines):
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        if lines[i] == indent + first and i + 1 < len(lines) and lines[i + 1] == indent + second:
            assert regions, "more stubs than teacher's solution regions"
            out += regions.pop(0)
            i += 2
        else:
            out.append(lines[i])
            i += 1
    assert not regions, "a teacher's solution region has no stub in the student edition"
    return "\n".join(out)


def _secret_lines(teacher: nbformat.NotebookNode) -> set[str]:
    """Return the teacher's non-trivial answer and hidden-test lines that appear nowhere else."""
    secret, public = set(), set()
    for cell in teacher.cells:
        if cell.cell_type == "markdown" and _is_answer(cell):
            secret.update(line.strip() for line in cell.source.split("\n"))
            continue
        hidden, rest = _region_lines(cell.source, "hidden tests")
        solutions, rest = _region_lines("\n".join(rest), "solution")
        for region in hidden + solutions:
            secret.update(line.strip() for line in region[1:-1])
        public.update(line.strip() for line in rest)
    # a line of a few characters (`return x`, `)`) says nothing of the answer
    return {line for line in secret - public if len(re.findall(r"\w", line)) >= 8}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_student_edition_is_a_clean_notebook_with_its_parameters(path):
    teacher, student = _editions(path)
    nbformat.validate(student)
    assert len(student.cells) == len(teacher.cells)
    code = [c for c in student.cells if c.cell_type == "code"]
    assert not [c for c in code if c.outputs or c.execution_count is not None]
    tagged = [i for i, c in enumerate(student.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: the student edition lost its parameters cell"
    i = tagged[0]
    assert student.cells[i].source == teacher.cells[i].source
    assert student.cells[i + 1].source == teacher.cells[i + 1].source  # the profile cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_teacher_solution_line_is_in_the_student_edition(path):
    teacher, student = _editions(path)
    secret = _secret_lines(teacher)
    seen = {line.strip() for cell in student.cells for line in cell.source.split("\n")}
    leaked = sorted(secret & seen)
    assert not leaked, f"{path.name}: solution lines left in the student edition: {leaked}"
    for t, s in zip(teacher.cells, student.cells, strict=True):
        if t.cell_type == "markdown" and _is_answer(t):
            assert s.source == TEXT_STUB


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_putting_the_solutions_back_gives_the_teacher_cells(path):
    teacher, student = _editions(path)
    for index, (t, s) in enumerate(zip(teacher.cells, student.cells, strict=True)):
        if t.cell_type != "code":
            assert s.source == t.source or (_is_answer(t) and s.source == TEXT_STUB)
            continue
        _, visible = _region_lines(t.source, "hidden tests")  # gone for good in a grade cell
        assert _put_back(s.source, t.source) == "\n".join(visible), f"{path.name}, cell {index}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_answer_says_what_to_expect_and_each_code_answer_has_its_check(path):
    teacher, student = _editions(path)
    cells = student.cells
    for i, cell in enumerate(cells):
        if not _is_answer(cell):
            continue
        gid = _marks(cell)["grade_id"]
        if cell.cell_type == "markdown":  # its question is the cell before
            before = cells[i - 1] if i > 0 else None
            assert before is not None and before.cell_type == "markdown", f"{path.name}: {gid}"
            assert not _is_answer(before), f"{path.name}: {gid} has no question before it"
            continue
        assert "attendu" in cell.source.lower(), f"{path.name}: {gid} says nothing of its result"
        after = cells[i + 1] if i + 1 < len(cells) else None
        assert after is not None and _is_check(after), f"{path.name}: no check right after {gid}"
        assert _marks(after).get("locked") and after.metadata.get("editable") is False


def _bound(node: ast.AST) -> set[str]:
    """Return the names a statement binds in the notebook's namespace (not in inner scopes)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Store) else set()
    if isinstance(node, ast.Lambda | ast.comprehension | ast.ListComp | ast.SetComp
                  | ast.DictComp | ast.GeneratorExp):
        return set()  # their names are local
    return set().union(*(_bound(child) for child in ast.iter_child_nodes(node)))


def _parse(source: str) -> ast.Module:
    lines = []
    for line in source.split("\n"):  # IPython magics and shell lines are not Python
        stripped = line.lstrip()
        magic = re.match(r"%|!(?!=)", stripped) is not None  # `!= x` goes on a line
        lines.append(line[: len(line) - len(stripped)] + "pass" if magic else line)
    return ast.parse("\n".join(lines))


def _stubbed(node: ast.AST) -> bool:
    """Return True if the node is, or holds, a `raise NotImplementedError(...)`."""
    return any(
        isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n)
        for n in ast.walk(node)
    )


def _missing(teacher: str, student: str) -> set[str]:
    """Return the names the teacher's answer cell binds that the student's stub leaves unusable.

    The stub raises where it stands: what follows it in the cell never runs, and a function
    or class that holds it raises when used.
    """
    kept = set()
    for stmt in _parse(student).body:
        if isinstance(stmt, ast.Raise) and _stubbed(stmt):
            break
        if not _stubbed(stmt):
            kept |= _bound(stmt)
    return _bound(_parse(teacher)) - kept


def _names(source: str) -> tuple[set[str], set[str]]:
    """Return (names a code cell binds at top level, names it reads anywhere)."""
    tree = _parse(source)
    read = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return _bound(tree), read


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_notebook_goes_on_without_the_student_names(path):
    """After an answer, ordinary cells read no name last bound by an answer or a check."""
    teacher, student = _editions(path)
    owner: dict[str, str] = {}
    used = []
    for index, (cell, edition) in enumerate(zip(teacher.cells, student.cells, strict=True)):
        if cell.cell_type != "code":
            continue
        bound, read = _names(cell.source)
        if _is_answer(cell) or _is_check(cell):  # a check may stop at any line: all at risk
            at_risk = _missing(cell.source, edition.source) if _is_answer(cell) else bound
            owner = {n: g for n, g in owner.items() if n not in bound}
            owner |= dict.fromkeys(at_risk, _marks(cell)["grade_id"])
            continue
        # a name the cell binds itself is taken to be its own (loop variables and the like)
        used += [f"cell {index} reads {n} ({owner[n]})" for n in sorted(read - bound) if n in owner]
        owner = {n: g for n, g in owner.items() if n not in bound}
    assert not used, f"{path.name}: the rest of the notebook needs the student's names: {used}"


MARKED = [
    p for p in NOTEBOOKS if any(_is_check(c) for c in nbformat.read(p, as_version=4).cells)
]


@pytest.mark.parametrize("path", MARKED, ids=lambda p: p.name)
def test_every_check_fails_on_the_student_stubs(path, smoke):
    """Run the student edition in smoke mode up to its last check, errors allowed."""
    from nbclient import NotebookClient

    _, student = _editions(path)
    last = max(i for i, c in enumerate(student.cells) if _is_check(c))
    nb = nbformat.from_dict(student)
    nb.cells = nb.cells[: last + 1]  # what follows the last check cannot change an outcome
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    ).execute()
    errors = {
        i: [o.ename for o in c.outputs if o.output_type == "error"]
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
    }
    for i, cell in enumerate(nb.cells):
        gid = _marks(cell).get("grade_id")
        if _is_check(cell):
            assert errors[i], f"{path.name}: check {gid} passed on the stub"
            assert errors[i][0] in STUB_ERRORS, f"{path.name}: {gid} failed with {errors[i]}"
        elif cell.cell_type == "code" and not _is_answer(cell):
            assert not errors[i], f"{path.name}: cell {i} fails in the student edition: {errors[i]}"


def _notebook(cells: list[tuple[str, str, dict | None]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Py", "language": "python"}
    for i, (kind, source, marks) in enumerate(cells):
        new = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        cell = new(source)
        cell["id"] = f"c{i}"
        if kind == "params":
            cell.metadata["tags"] = ["parameters"]
        if marks is not None:
            cell.metadata["nbgrader"] = {"schema_version": 3, "locked": False, "task": False,
                                         "grade": False, "solution": False, **marks}
        if kind == "code" and cell.get("outputs") is not None:
            cell.outputs = [nbformat.v4.new_output("stream", text="old output\n")]
            cell.execution_count = 3
        nb.cells.append(cell)
    return nb


ANSWER = {"solution": True, "grade_id": "00-answer"}
CHECK = {"grade": True, "locked": True, "points": 1, "grade_id": "00-answer-test"}
REGION = (
    "def f(x):\n    # Attendu : un entier\n    ### BEGIN SOLUTION\n    return 2 * x\n"
    "    ### END SOLUTION"
)


def test_answers_become_stubs_and_checks_lose_their_hidden_part():
    nb = _notebook([
        ("params", "n = 1", None),
        ("code", REGION, ANSWER),
        ("code", "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(3) == 6\n"
                 "### END HIDDEN TESTS", CHECK),
        ("md", "Pourquoi ? (Attendu : une phrase.)", None),
        ("md", "Parce que.", {"solution": True, "grade_id": "00-why"}),
        ("code", "x = 1", {"solution": True, "grade_id": "00-whole"}),
    ])  # fmt: skip
    out = student_edition(nb)
    assert out.cells[1].source == (
        "def f(x):\n    # Attendu : un entier\n"
        "    # VOTRE CODE ICI\n    raise NotImplementedError()"
    )
    assert out.cells[2].source == "assert f(1) == 2"
    assert out.cells[2].metadata["editable"] is False  # nbgrader's LockCells
    assert out.cells[4].source == "VOTRE RÉPONSE ICI"
    assert out.cells[5].source == CODE_STUB
    assert all(not c.outputs and c.execution_count is None for c in out.cells[::5])
    assert nb.cells[1].source == REGION, "the teacher's notebook is left as it was"
    assert solution_regions(REGION) == [(2, 4)]


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ([("code", REGION, None)], "cell 0: a '### BEGIN SOLUTION' region in a cell without"),
        ([("code", "x = 1\n### END SOLUTION", ANSWER)], "'END SOLUTION' on line 2 without"),
        ([("code", "### BEGIN SOLUTION\nx = 1", ANSWER)], "is never closed"),
        ([("code", "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", ANSWER)],
         "regions do not nest"),
        ([("code", "x = 1", ANSWER), ("code", "y = 2", ANSWER)],
         "cell 1: grade_id '00-answer' is already used by cell 0"),
        ([("code", "### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS", None)],
         "not a grade cell"),
        ([("code", "assert 1", {**CHECK, "points": None})], "has no points"),
        ([("code", "x = 1", {"solution": True, "grade_id": ""})], "without a grade_id"),
        ([("md", "### BEGIN SOLUTION\nx\n### END SOLUTION", ANSWER)], "belong in code cells"),
    ],
)  # fmt: skip
def test_bad_marks_get_a_clear_error(cells, message):
    with pytest.raises(StudentEditionError, match=re.escape(message)):
        check_marks(_notebook(cells), "tiny.ipynb")


def test_nbgrader_schema_errors_are_reported_too():
    nb = _notebook([("code", "x = 1", ANSWER)])
    nb.cells[0].metadata["nbgrader"]["schema_version"] = 99
    with pytest.raises(StudentEditionError, match="tiny.ipynb: nbgrader metadata rejected"):
        check_marks(nb, "tiny.ipynb")


def test_the_command_writes_the_editions_and_rejects_unknown_notebooks(tmp_path, capsys):
    source = tmp_path / "tiny.ipynb"
    nbformat.write(_notebook([("params", "n = 1", None), ("code", REGION, ANSWER)]), source)
    assert main(["student", "--out", str(tmp_path / "out"), str(source)]) == 0
    written = tmp_path / "out" / "tiny.ipynb"
    assert capsys.readouterr().out.strip() == str(written)
    assert "raise NotImplementedError()" in nbformat.read(written, as_version=4).cells[1].source
    assert main(["student", "--out", str(tmp_path / "out"), "no_such_notebook"]) == 1
    err = capsys.readouterr().err
    assert "unknown notebook 'no_such_notebook'" in err and "05_fashionmnist" in err


def test_one_bad_notebook_writes_nothing(tmp_path):
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    nbformat.write(_notebook([("code", REGION, ANSWER)]), good)
    nbformat.write(_notebook([("code", REGION, None)]), bad)
    with pytest.raises(StudentEditionError, match="bad.ipynb, cell 0"):
        write_student_editions([good, bad], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_nbgrader_validates_the_student_edition(tmp_path):
    """nbgrader's Validate (the student's button) fails the stubs, then flags an edited check."""
    from nbgrader.validator import Validator

    teacher = _notebook([
        ("code", REGION, ANSWER),
        ("code", "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(3) == 6\n"
                 "### END HIDDEN TESTS", CHECK),
        ("md", "Pourquoi ? (Attendu : une phrase.)", None),
        ("md", "Parce que.", {"solution": True, "grade_id": "00-why"}),
    ])  # fmt: skip
    student = student_edition(teacher)
    stub = tmp_path / "stub.ipynb"
    nbformat.write(student, stub)
    failed = Validator().validate(str(stub))["failed"]
    assert [cell["source"] for cell in failed] == ["assert f(1) == 2", TEXT_STUB]
    student.cells[0].source = student.cells[0].source.replace(
        "# VOTRE CODE ICI\n    raise NotImplementedError()", "return 2 * x"
    )
    student.cells[3].source = "Parce que deux fois un font deux."
    answered = tmp_path / "answered.ipynb"
    nbformat.write(student, answered)
    assert Validator().validate(str(answered)) == {}
    student.cells[1].source = "assert True"
    nbformat.write(student, answered)
    assert Validator().validate(str(answered))["changed"] == [{"source": "assert True"}]


def test_the_teacher_notebooks_are_never_overwritten(tmp_path):
    source = tmp_path / "tiny.ipynb"
    nbformat.write(_notebook([("code", REGION, ANSWER)]), source)
    with pytest.raises(StudentEditionError, match="holds the teacher's notebooks"):
        write_student_editions([source], tmp_path)
    assert nbformat.read(source, as_version=4).cells[0].source == REGION
    with pytest.raises(StudentEditionError, match="is a file"):
        write_student_editions([source], source)
