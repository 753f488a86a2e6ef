"""Notebooks are committed clean: valid nbformat, no outputs, a papermill parameters cell."""

import json
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebook found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    raw = json.loads(path.read_text())
    # nbformat >= 4.5 wants an id per cell; reading fills missing ones and only warns.
    no_id = [i for i, c in enumerate(raw["cells"]) if "id" not in c]
    assert not no_id, f"{path.name}: cells {no_id} have no id; rewrite it with nbformat.write"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs; clear them before committing"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


# f-string fields that print a decimal point ({x:.2f}, {x:+.1%}, {x:.3g}) or an English
# thousands separator ({n:,}); French prose uses coursekit.analysis.fr_* instead.
ENGLISH_NUMBER = re.compile(r"\{[^{}]*?:[+ ]?(?:,|\d*\.\d+[fgeE%]|,\.\d+[f%])\}")
DECIMAL_POINT = re.compile(r"(?<![\w.`/-])\d+\.\d+(?![\w.]*`)")


def _prose(markdown: str) -> str:
    """Return markdown without code spans and code blocks (where Python numbers belong)."""
    markdown = re.sub(r"```.*?```", "", markdown, flags=re.S)
    markdown = re.sub(r"^#.*$", "", markdown, flags=re.M)  # headings number sections: 3.4
    return re.sub(r"`[^`]*`", "", markdown)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_numbers_are_printed_the_french_way(path):
    nb = nbformat.read(path, as_version=4)
    english = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            english += [f"cell {i}: {m}" for m in ENGLISH_NUMBER.findall(cell.source)]
        else:
            english += [f"cell {i}: {m}" for m in DECIMAL_POINT.findall(_prose(cell.source))]
    assert not english, f"{path.name}: numbers with a decimal point: {english}"


def test_the_french_check_catches_english_numbers():
    assert ENGLISH_NUMBER.findall('print(f"{acc:.2%} {loss:+.4f} {n:,} {x:.3g}")') == [
        "{acc:.2%}", "{loss:+.4f}", "{n:,}", "{x:.3g}",
    ]
    assert not ENGLISH_NUMBER.findall('print(f"{fr_pct(acc)} {label} {d[\'a\']}")')
    assert DECIMAL_POINT.findall(_prose("une loss de 0.042 ; `lr=0.1` ; 0,042")) == ["0.042"]


EXERCISES = [p for p in NOTEBOOKS if re.match(r"0[1-7]_", p.name)]


def _profile_cells(path: Path) -> tuple[str, str]:
    """Return the sources of the `parameters` cell and of the cell right after it."""
    cells = nbformat.read(path, as_version=4).cells
    i = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    return cells[i].source, cells[i + 1].source


def _resolve(path: Path, **injected) -> dict:
    """Run the parameters cell, papermill's injection, then the profile cell; return names."""
    parameters, profile = _profile_cells(path)
    namespace: dict = {}
    exec(parameters, namespace)
    namespace.update(injected)
    exec(profile, namespace)
    return namespace


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_the_quick_profile_is_what_runs_unless_a_value_is_given(path, capsys):
    defaults = _resolve(path)
    assert defaults["profil"] == "séance", f"{path.name}: the default profile must be 'séance'"
    table = defaults["PROFILES"]
    assert set(table) == {"séance", "complet"}
    parameters, _ = _profile_cells(path)
    given: dict = {}
    exec(parameters, given)
    chosen = [k for k in table["séance"] if k in given]
    assert chosen, f"{path.name}: no parameter takes its value from the profile"
    for name in chosen:
        assert given[name] is None, f"{path.name}: {name} must default to None (the profile's)"
        assert defaults[name] == table["séance"][name]
    assert _resolve(path, profil="complet")[chosen[0]] == table["complet"][chosen[0]]
    forced = object()  # an explicit value wins over any profile
    assert _resolve(path, profil="complet", **{chosen[0]: forced})[chosen[0]] is forced
    assert "profil « séance »" in capsys.readouterr().out
