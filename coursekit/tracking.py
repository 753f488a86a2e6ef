"""The headline numbers of a run, recorded for `coursekit runs`.

Notebooks call `record_metrics(...)` for the numbers that summarize them; in a batch run
(`coursekit run`) they are merged into the run folder's metrics.json, in JupyterLab they
are only returned.
"""

from __future__ import annotations

import json
from typing import Any

from coursekit.checkpoint import jsonable, write_json
from coursekit.settings import run_dir

METRICS_FILE = "metrics.json"


def record_metrics(**values: Any) -> dict[str, Any]:
    """Merge `values` into the run's metrics.json (in a batch run) and return all metrics."""
    values = jsonable(values)
    root = run_dir()
    if root is None:
        return values
    path = root / METRICS_FILE
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics.update(values)
    write_json(metrics, path)
    return metrics
