"""Run profiles of the exercise notebooks: one lab session on a CPU, or the full study.

Every exercise notebook has a parameter `profil`: "séance" (the default: every question of
the sheet answered on smaller runs, "Run All" within a lab session on a laptop CPU) or
"complet" (the full study, for a GPU and `coursekit run`). A parameter whose value is None
takes the profile's value; a value given explicitly (in the cell, or `-p name value`)
always wins. How long each profile took is measured by `benchmarks/notebook_times.py`,
recorded in `benchmarks/notebook_times/<notebook>.json` and shown at the top of each
notebook.

A notebook resolves its profile in the cell right after its `parameters` cell, and nothing
else happens there (tests execute the two cells alone):

    from coursekit.mnist.lesson import PROFILES
    from coursekit.profiles import profile_values
    epochs, subset = profile_values(profil, PROFILES, epochs=epochs, subset=subset)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coursekit.french import fr_int
from coursekit.settings import REPO_ROOT

PROFILES = ("séance", "complet")
TIMES_DIR = REPO_ROOT / "benchmarks" / "notebook_times"


def profile_values(
    profile: str, table: Mapping[str, Mapping[str, Any]], verbose: bool = True, **given: Any
) -> tuple[Any, ...]:
    """Return the values to run with, in the order of `given`: each given value that is not
    None, else the profile's (`table[profile][name]`); print which is which in French."""
    if profile not in table:
        raise ValueError(f"profil {profile!r} inconnu : choisir parmi {', '.join(table)}")
    values = table[profile]
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise KeyError(f"le profil {profile!r} ne donne pas de valeur à {unknown}")
    chosen = {k: values[k] if v is None else v for k, v in given.items()}
    if verbose:
        forced = [k for k, v in given.items() if v is not None]
        print(f"profil « {profile} » : " + ", ".join(f"{k} = {chosen[k]!r}" for k in chosen))
        if forced:
            print("  donnés explicitement (priorité sur le profil) : " + ", ".join(forced))
    return tuple(chosen.values())


def times_file(notebook: str, folder: Path = TIMES_DIR) -> Path:
    """Return the file that records the measured durations of `notebook`."""
    return Path(folder) / f"{notebook}.json"


def recorded_times(notebook: str, folder: Path = TIMES_DIR) -> dict[str, dict[str, Any]]:
    """Return {profile: record} of the measured durations of `notebook` ({} if none)."""
    try:
        return json.loads(times_file(notebook, folder).read_text())
    except (OSError, ValueError):
        return {}


def durations_sentence(notebook: str, folder: Path = TIMES_DIR) -> str:
    """Return, in French, how long each profile of `notebook` took where it was measured."""
    records = recorded_times(notebook, folder)
    if not records:
        return "durée de « Run All » : pas encore mesurée (benchmarks/notebook_times.py)"
    parts = []
    for profile in PROFILES:
        if profile in records:
            r = records[profile]
            minutes = r["seconds"] / 60
            span = f"{fr_int(round(minutes))} min" if minutes >= 1 else "moins d'une minute"
            where = f"{r['machine']}, {r['data']}, {r['date']}"
            parts.append(f"profil « {profile} » : {span} ({where})")
    return "durée mesurée de « Run All » — " + " ; ".join(parts)
