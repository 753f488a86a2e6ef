"""`coursekit` command: parameter validation before anything runs, run folders, `runs` table."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from coursekit.batch.cli import main
from coursekit.batch.errors import ParameterError
from coursekit.batch.nbparams import check_parameters, inspect_parameters
from coursekit.batch.runner import run_all
from tools.nbmake import write_notebook

HERE = Path(__file__).resolve().parent
TINY = HERE / "notebooks" / "tiny_train.ipynb"
HELLO = HERE / "notebooks" / "hello.ipynb"


@pytest.fixture
def typed_notebook(tmp_path: Path) -> Path:
    return write_notebook(tmp_path / "typed.ipynb", [
        ("md", "# Typed"),
        ("params", """
epochs = 14
lr = 0.1
device = "auto"
augment = False
sizes = [32, 64]
batch: int = 128  # batch size
start = compute()
"""),
        ("code", "print(epochs)"),
    ])  # fmt: skip


def test_parameters_come_from_papermill_inspection(typed_notebook):
    params = inspect_parameters(typed_notebook)
    assert list(params) == ["epochs", "lr", "device", "augment", "sizes", "batch", "start"]
    assert [params[n].type for n in params] == [int, float, str, bool, list, int, None]
    assert params["batch"].describe() == "batch: int = 128  # batch size"


def test_command_line_values_are_converted_to_the_parameter_types(typed_notebook):
    given = {"epochs": "3", "lr": "1e-3", "device": "cuda", "augment": "true", "sizes": "[8]",
             "batch": "64", "start": "12"}  # fmt: skip
    assert check_parameters(typed_notebook, given) == {
        "epochs": 3, "lr": 0.001, "device": "cuda", "augment": True, "sizes": [8], "batch": 64,
        "start": 12,
    }  # fmt: skip
    typed = check_parameters(typed_notebook, {"lr": 1, "augment": False})
    assert typed == {"lr": 1.0, "augment": False} and isinstance(typed["lr"], float)


@pytest.mark.parametrize(
    ("name", "value"),
    [("epochs", "3.5"), ("epochs", "ten"), ("lr", "fast"), ("augment", "maybe"), ("sizes", "8"),
     ("epochs", True), ("device", 3)],
)  # fmt: skip
def test_badly_typed_values_are_refused_with_the_valid_parameters(typed_notebook, name, value):
    with pytest.raises(ParameterError) as err:
        check_parameters(typed_notebook, {name: value})
    message = str(err.value)
    assert f"parameter {name!r}" in message and repr(value) in message
    assert "valid parameters:" in message and "batch: int = 128  # batch size" in message


def test_unknown_parameter_suggests_the_closest_name(typed_notebook):
    with pytest.raises(ParameterError, match=r"no parameter 'epoch' \(did you mean 'epochs'\?\)"):
        check_parameters(typed_notebook, {"epoch": "3"})


def test_cli_refuses_bad_parameters_before_creating_a_run(tmp_path, capsys):
    code = main(["run", str(TINY), "-p", "epochs", "many", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 1
    assert "parameter 'epochs' of tiny_train.ipynb expects int (default 6), got 'many'" in err
    assert "  lr: float = 0.05" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run"], "give either a NOTEBOOK or --all"),
        (["run", "missing.ipynb"], "missing.ipynb does not exist"),
        (["run", str(TINY), "-p", "seed", "1", "-p", "seed", "2"], "more than once: seed"),
        (["run", "--all", "-p", "seed", "1"], "-p, --label and --fresh do not apply"),
        (["run", str(TINY), "--label", "my run"], "label 'my run' cannot name a run folder"),
    ],
)
def test_cli_usage_errors_say_what_to_fix(argv, expected, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == 1
    assert expected in capsys.readouterr().err


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    plain = write_notebook(tmp_path / "plain.ipynb", [("md", "# Plain"), ("code", "x = 1")])
    with pytest.raises(ParameterError, match="no cell tagged 'parameters'"):
        check_parameters(plain, {})


def test_run_writes_notebook_figures_and_metrics_and_is_listed(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COURSEKIT_SMOKE", raising=False)
    out = tmp_path / "runs"
    assert main(["run", str(HELLO), "-p", "name", "Ada", "--smoke", "--out", str(out)]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder.parent == out / "hello" and folder.name.endswith("-smoke")
    executed = nbformat.read(folder / "hello.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert (folder / "figures" / "hello" / "greeting.txt").read_text() == "hello Ada"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics == {"greeting": "hello Ada", "smoke": "1"}
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "done" and status["attempts"] == 1
    assert status["parameters"] == {"name": "Ada"}

    assert main(["runs", "--out", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["run", "state", "parameters", "metrics"]
    row = [f"hello/{folder.name}", "done", "name=Ada", "greeting=hello", "Ada", "smoke=1"]
    assert table[1].split() == row


def test_run_all_reports_each_notebook(tmp_path):
    broken = write_notebook(tmp_path / "broken.ipynb", [("md", "# Broken"), ("code", "x = 1")])
    results = run_all([broken, HELLO], smoke=True, out=tmp_path / "runs")
    assert isinstance(results[broken], ParameterError)
    assert results[HELLO].parent == tmp_path / "runs" / "hello"
    assert json.loads((results[HELLO] / "status.json").read_text())["state"] == "done"


def test_runs_on_an_empty_folder_says_so(tmp_path, capsys):
    assert main(["runs", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"no runs under {tmp_path}"


def test_a_failing_notebook_is_reported_and_marked_failed(tmp_path, capsys):
    failing = write_notebook(tmp_path / "failing.ipynb", [
        ("md", "# Failing"),
        ("params", "limit = 3"),
        ("code", "raise ValueError(f'limit {limit} is too low')"),
    ])  # fmt: skip
    out = tmp_path / "runs"
    assert main(["run", str(failing), "-p", "limit", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    # [3]: the execution count in the executed notebook, after the injected parameters
    assert "failing.ipynb failed in cell [3]: ValueError: limit 2 is too low" in err
    assert "rerun the same command" in err
    (folder,) = (out / "failing").iterdir()
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "failed" and "limit 2 is too low" in status["error"]
    assert (folder / "failing.ipynb").exists()  # the executed notebook shows the traceback
