"""A notebook's papermill parameters: what they are, and command-line values checked against them.

The parameters are read with papermill's own inspection (`papermill.inspect_notebook`), so
coursekit accepts exactly what papermill will inject. A parameter's type is its annotation
(`epochs: int = 14`) or else the type of its literal default (`epochs = 14`).
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coursekit.batch.errors import ParameterError

_TYPES: dict[str, type] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
    "tuple": tuple,
}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


@dataclass(frozen=True)
class NotebookParameter:
    """One assignment of a notebook's `parameters` cell."""

    name: str
    type: type | None  # None: the default is not a literal, any value is accepted
    default: str  # the source text of the default, as papermill reports it
    help: str

    def describe(self) -> str:
        """Return e.g. `epochs: int = 14  # number of epochs`."""
        kind = self.type.__name__ if self.type is not None else "any"
        text = f"{self.name}: {kind} = {self.default}"
        return f"{text}  # {self.help}" if self.help else text


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return NotImplemented


def _parameter_type(annotation: str, default: str) -> type | None:
    base = annotation.split("[", 1)[0].strip()
    if base in _TYPES:
        return _TYPES[base]
    value = _literal(default)
    return None if value is NotImplemented or value is None else type(value)


def inspect_parameters(notebook: str | Path) -> dict[str, NotebookParameter]:
    """Return the notebook's parameters by name; ParameterError if it has no parameters cell."""
    import nbformat
    import papermill

    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} does not exist")
    nb = nbformat.read(notebook, as_version=4)
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells):
        raise ParameterError(
            f"{notebook.name} has no cell tagged 'parameters'; tag the cell that holds its "
            "settings (View > Cell Toolbar > Tags in Jupyter) so it can be run headless."
        )
    found = papermill.inspect_notebook(str(notebook))
    return {
        name: NotebookParameter(
            name, _parameter_type(p["inferred_type_name"], p["default"]), p["default"], p["help"]
        )
        for name, p in found.items()
    }


def _valid_list(params: Mapping[str, NotebookParameter]) -> str:
    lines = [f"  {p.describe()}" for p in params.values()] or ["  (none)"]
    return "valid parameters:\n" + "\n".join(lines)


def _coerce_text(text: str, kind: type | None) -> Any:
    if kind is str:
        return text
    if kind is bool:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError
    if kind is int:
        if not re.fullmatch(r"[+-]?\d+", text.strip()):
            raise ValueError
        return int(text)
    if kind is float:
        return float(text)
    value = _literal(text)
    if kind is None:  # untyped default: a Python literal if it is one, else the text itself
        return text if value is NotImplemented else value
    if value is NotImplemented or not isinstance(value, kind):
        raise ValueError
    return value


def _check_typed(value: Any, kind: type | None) -> Any:
    if kind is None or (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ValueError


def coerce_value(param: NotebookParameter, value: Any) -> Any:
    """Return `value` (command-line text or a Python value) converted to the parameter's type."""
    if isinstance(value, str):
        return _coerce_text(value, param.type)
    return _check_typed(value, param.type)


def check_parameters(notebook: str | Path, given: Mapping[str, Any]) -> dict[str, Any]:
    """Return `given` converted to the types of the notebook's parameters cell.

    Raises ParameterError naming the unknown name or the badly typed value, with the
    list of valid parameters.
    """
    notebook = Path(notebook)
    params = inspect_parameters(notebook)
    checked: dict[str, Any] = {}
    for name, value in given.items():
        if name not in params:
            close = difflib.get_close_matches(name, list(params), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(
                f"{notebook.name} has no parameter {name!r}{hint}; {_valid_list(params)}"
            )
        param = params[name]
        try:
            checked[name] = coerce_value(param, value)
        except ValueError:
            kind = param.type.__name__ if param.type is not None else "a Python literal"
            raise ParameterError(
                f"parameter {name!r} of {notebook.name} expects {kind} (default "
                f"{param.default}), got {value!r}; {_valid_list(params)}"
            ) from None
    return checked


def resolved_parameters(notebook: str | Path, given: Mapping[str, Any]) -> dict[str, Any]:
    """Return every parameter's value for a run: the defaults overridden by `given`.

    A default that is not a literal is kept as its source text.
    """
    params = inspect_parameters(notebook)
    values: dict[str, Any] = {}
    for name, p in params.items():
        literal = _literal(p.default)
        values[name] = p.default if literal is NotImplemented else literal
    values.update(given)
    return values


def needs_data(notebook: str | Path) -> bool:
    """Return False if the notebook declares that it reads no dataset (it generates its data:
    notebook metadata `{"coursekit": {"needs_data": false}}`), else True."""
    import nbformat

    meta = nbformat.read(Path(notebook), as_version=4).metadata.get("coursekit", {})
    return bool(meta.get("needs_data", True))
