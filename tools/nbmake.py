"""Write a notebook from a list of ("md"|"code"|"params", source) cells, without outputs.

Used to write the notebooks the batch-run tests execute (`tests/notebooks/make_notebooks.py`,
and tests that build one on the fly). The workbook's own notebooks are edited in JupyterLab.
"""

from __future__ import annotations

from pathlib import Path

import nbformat


def write_notebook(path: str | Path, cells: list[tuple[str, str]]) -> Path:
    """Write `cells` as a clean nbformat-4 notebook at `path` and return the path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python"
    }
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in cells:
        source = source.strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:03d}"
    nbformat.validate(nb)
    path = Path(path)
    nbformat.write(nb, path)
    return path
