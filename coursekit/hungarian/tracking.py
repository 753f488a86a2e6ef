"""Notebook 07's MLflow tracker: trainings of `coursekit.hungarian.lesson` logged and read back.

`tracked_run` does a `lesson.run` inside an MLflow run (parameters, metrics per epoch, final
scores, CPU inference time, git commit, seed, the model logged with `mlflow.pytorch` and
registered as a version), `run_ablation` does it for a list of configurations,
`runs_table` / `epoch_history` read the tracker back, `set_alias` / `load_version` name a
version in the registry and load it back.

Store: a SQLite database and a folder of artifacts in
`settings.artifact_path("07_hungariannet", "mlflow")`, the one rule for what runs write:
the run folder's `mlflow/` in a batch run, `runs/lab/07_hungariannet/mlflow/` in
JupyterLab, `runs/smoke/...` in smoke mode (so smoke runs never mix with real ones).
MLflow's telemetry is switched off before it is imported: nothing here uses the network.
"""

from __future__ import annotations

import copy
import logging
import os
import shlex
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from coursekit.hungarian.lesson import (
    SCORE_KEYS,
    HungarianConfig,
    Splits,
    load_data,
    model_ms,
    run,
    score,
)
from coursekit.hungarian.metrics import cell_weights
from coursekit.models.measure import count_parameters
from coursekit.settings import artifact_path
from coursekit.tracking import code_version
from coursekit.train import History

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models import ModelSignature

NOTEBOOK = "07_hungariannet"
EXPERIMENT = NOTEBOOK
DATABASE = "mlflow.db"
BATCH_METRICS = 1000  # MLflow takes at most 1,000 metrics per log_batch call
EXAMPLE_MATRICES = 4  # the logged model's input example: a few validation matrices


def tracking_dir() -> Path:
    """Return the tracker's folder, `settings.artifact_path('07_hungariannet', 'mlflow')`."""
    return artifact_path(NOTEBOOK, "mlflow")


def open_tracker(root: str | Path | None = None) -> MlflowClient:
    """Return an MlflowClient on `<root>/mlflow.db` (SQLite; default `tracking_dir()`).

    The runs' files (model weights) go to `<root>/artifacts/`. Telemetry is off and MLflow's
    start-up messages are silenced.
    """
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # read when mlflow is imported
    os.environ["DO_NOT_TRACK"] = "true"
    from mlflow import MlflowClient

    for name in ("mlflow", "alembic"):  # after the import, which sets mlflow's level to INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    root = Path(root) if root is not None else tracking_dir()
    root.mkdir(parents=True, exist_ok=True)
    relocate_store(root)
    uri = f"sqlite:///{root.resolve() / DATABASE}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# Where MLflow writes an absolute artifact URI in a SQLite store (MLflow 3): the tables and
# columns a moved store must have rewritten.
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
)


def relocate_store(root: str | Path) -> int:
    """Point the store's artifact URIs at `<root>/artifacts`, where they are now; return how
    many values were rewritten (0 when the store has not moved, or has no database yet).

    MLflow keeps absolute artifact URIs in its database (relative ones are an open request,
    mlflow#3144), so a store copied elsewhere (a run folder brought back from Grid'5000)
    would still read its models from the old place. The old root is the one under which
    the experiments' artifact folders were created (`experiment_id`); every value under it
    is rewritten in one transaction.
    """
    database = Path(root) / DATABASE
    if not database.is_file():
        return 0
    here = (Path(root).resolve() / "artifacts").as_uri()
    with sqlite3.connect(database) as db:
        tables = {name for (name,) in db.execute("select name from sqlite_master")}
        found = db.execute(
            "select distinct artifact_location from experiments where artifact_location like "
            "'file://%/artifacts' and artifact_location != ?",
            (here,),
        ).fetchall() if "experiments" in tables else []  # fmt: skip
        changed = 0
        for (old,) in found:
            for table, column in ARTIFACT_COLUMNS:
                if table in tables:
                    changed += db.execute(
                        f"update {table} set {column} = ? || substr({column}, ?) "
                        f"where {column} = ? or {column} like ?",
                        (here, len(old) + 1, old, old + "/%"),
                    ).rowcount
    return changed


def store_dir(client: MlflowClient) -> Path:
    """Return the folder of the client's SQLite database (and of its artifacts)."""
    return Path(client.tracking_uri.removeprefix("sqlite:///")).parent


def ui_command(client: MlflowClient) -> str:
    """Return the shell command that opens MLflow's web interface on the client's store,
    `./kit mlflow <store>` (it installs the full mlflow package, extra `mlflow-ui`, if needed)."""
    return f"./kit mlflow {shlex.quote(str(store_dir(client)))}"


def _artifact_location(client: MlflowClient) -> str:
    return (store_dir(client) / "artifacts").as_uri()


def experiment_id(client: MlflowClient, name: str = EXPERIMENT) -> str:
    """Return the id of experiment `name`, created (artifacts next to the database) if new."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_location(client))


def code_tags() -> dict[str, str]:
    """Return the MLflow tags of the code that runs: {'mlflow.source.git.commit': sha or
    'unknown', 'git_dirty': 'True'/'False'/'unknown'} (`coursekit.tracking.code_version`)."""
    code = code_version()
    dirty = "unknown" if code["dirty"] is None else str(code["dirty"])
    return {"mlflow.source.git.commit": code["commit"] or "unknown", "git_dirty": dirty}


def find_run(client: MlflowClient, config: HungarianConfig, experiment: str = EXPERIMENT):
    """Return the latest FINISHED tracked run of this exact config, or None."""
    runs = client.search_runs(
        [experiment_id(client, experiment)],
        filter_string=f"attributes.status = 'FINISHED' and tags.config_name = '{config.name}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )  # fmt: skip
    return runs[0] if runs else None


def registered_name(config: HungarianConfig, experiment: str = EXPERIMENT) -> str:
    """Return the registry name of the config's model versions, '<experiment>-<arch>-<M>doas'."""
    return f"{experiment}-{config.arch}-{config.max_doas}doas"


@contextmanager
def _fluent(client: MlflowClient) -> Iterator[None]:
    """Point MLflow's fluent API (mlflow.pytorch.log_model) at the client's store, then back."""
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client._registry_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


def _log_model(
    client: MlflowClient, run_id: str, model: nn.Module, config: HungarianConfig,
    example: np.ndarray, experiment: str = EXPERIMENT,
) -> ModelVersion:  # fmt: skip
    """Log the model the MLflow way (MLmodel, signature, input example) and register it as a
    version of `registered_name(config)`; return that version.

    The version's source is the logged model's `models:/<id>` URI, resolved through the
    store (no absolute file path); pip requirements are given, not inferred (inferring
    them loads the model in a subprocess, seconds per run). Pickle format, not MLflow 3's
    default torch.export archive: that one fixes the batch size of the input example and
    loads back as a graph, not as the HNet class.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    model = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    # Pickle is chosen on purpose (above): mlflow's warning about it, at every run, says no more.
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
    with _fluent(client), mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(
            model, name="model", signature=infer_signature(example, output),
            input_example=example, serialization_format="pickle",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )  # fmt: skip
    name = registered_name(config, experiment)
    try:  # registered here, not by log_model, which prints a line per version
        client.create_registered_model(name)
    except MlflowException:
        pass  # already registered by an earlier run
    with _fluent(client):  # the source 'models:/<id>' resolves through the tracking URI
        return client.create_model_version(name, source=info.model_uri, run_id=run_id,
                                           tags={"config_name": config.name},
                                           model_id=info.model_id)  # fmt: skip


def run_version(client: MlflowClient, run_id: str) -> ModelVersion:
    """Return the registered model version logged by run `run_id`."""
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    if not versions:
        raise LookupError(
            f"run {run_id} registered no model version (tracked before models were logged "
            "with mlflow.pytorch?); retrain it with retrain=True"
        )
    return max(versions, key=lambda v: int(v.version))


def set_alias(client: MlflowClient, run_id: str, alias: str = "best") -> str:
    """Give the alias to the version that run `run_id` logged; return 'models:/<name>@<alias>'."""
    version = run_version(client, run_id)
    client.set_registered_model_alias(version.name, alias, version.version)
    return f"models:/{version.name}@{alias}"


def version_signature(client: MlflowClient, version: ModelVersion) -> ModelSignature:
    """Return the signature (input and output tensor specs) logged with a model version."""
    from mlflow.models import get_model_info

    with _fluent(client):
        return get_model_info(f"models:/{version.name}/{version.version}").signature


def load_version(client: MlflowClient, uri: str) -> nn.Module:
    """Return the model of a registry URI ('models:/<name>@<alias>' or '.../<version>') on CPU."""
    import mlflow

    with _fluent(client):
        return mlflow.pytorch.load_model(uri, map_location="cpu").eval()


def _metrics(values: dict[str, float], step: int = 0) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for k, v in values.items() if np.isfinite(v)]


def tracked_run(
    config: HungarianConfig,
    *,
    client: MlflowClient,
    checkpoint: str | Path | None,
    retrain: bool = False,
    data: Splits | None = None,
    test: bool = False,
    experiment: str = EXPERIMENT,
    verbose: bool = True,
) -> str:
    """Return the MLflow run id of `lesson.run(config)`, training and logging it if not
    tracked yet.

    Logged: every config field as a parameter, plus parameter count and split sizes; tags
    config_name, seed, git commit and dirty flag, torch version, CPU threads; per-epoch
    metrics (the History columns, step = epoch); final_val_<score> (and final_test_<score>
    with test=True); cpu_ms_per_1024 (inference time); the model (`mlflow.pytorch`, with
    signature and input example) as a version of the registered model `registered_name`.
    A config already tracked as FINISHED is not run again unless retrain. verbose: the
    training's progress (`fit`), or a line saying the run was found in the tracker.
    """
    found = None if retrain else find_run(client, config, experiment)
    if found is not None:
        if verbose:
            print(f"déjà suivi dans MLflow (run {found.info.run_id[:8]}) : pas réentraîné",
                  flush=True)  # fmt: skip
        return found.info.run_id
    data = data or load_data(config)
    tags = {"config_name": config.name, "label": config.label, "seed": str(config.seed),
            "torch": torch.__version__, "cpu_threads": str(torch.get_num_threads()),
            **code_tags()}  # fmt: skip
    mlflow_run = client.create_run(experiment_id(client, experiment), run_name=config.name,
                                   tags=tags)  # fmt: skip
    run_id = mlflow_run.info.run_id
    try:
        model, history = run(config, checkpoint=checkpoint, retrain=retrain, data=data,
                             verbose=verbose)  # fmt: skip
        _log_results(client, run_id, config, model, history, data, test, experiment)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def _final_scores(model: nn.Module, data: Splits, test: bool) -> dict[str, float]:
    """Return final_val_<score> (and final_test_<score>) of the trained model."""
    train, val, test_split = data
    weights = cell_weights(torch.from_numpy(train.labels))
    splits = {"val": val, **({"test": test_split} if test else {})}
    return {f"final_{name}_{k}": v for name, split in splits.items()
            for k, v in score(model, split, weights).items() if k in SCORE_KEYS}  # fmt: skip


def _log_results(
    client: MlflowClient,
    run_id: str,
    config: HungarianConfig,
    model: nn.Module,
    history: History,
    data: Splits,
    test: bool,
    experiment: str = EXPERIMENT,
) -> None:
    """Log the parameters, per-epoch and final metrics and the model of a finished run."""
    from mlflow.entities import Param

    train, val, test_split = data
    params = {**asdict(config), "n_params": count_parameters(model), "n_train": len(train),
              "n_val": len(val), "n_test": len(test_split)}  # fmt: skip
    per_epoch = [m for row in history.rows for m in _metrics(
        {k: v for k, v in row.items() if k != "epoch"}, int(row["epoch"]))]  # fmt: skip
    final = _final_scores(model, data, test)
    final.update(cpu_ms_per_1024=model_ms(model, val), epochs_run=len(history),
                 train_seconds=sum(history["seconds"]))  # fmt: skip
    metrics = per_epoch + _metrics(final, len(history))
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=metrics[:BATCH_METRICS])  # fmt: skip
    for start in range(BATCH_METRICS, len(metrics), BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH_METRICS])
    _log_model(client, run_id, model, config, val.distances[:EXAMPLE_MATRICES], experiment)


def runs_table(client: MlflowClient, experiment: str = EXPERIMENT) -> pd.DataFrame:
    """Return one row per tracked configuration of the experiment, read from the tracker:
    run_id, config_name, label, seed, commit, the config parameters and final_* metrics.

    Only the latest FINISHED run of each config_name is kept (a retrain logs a new run of
    the same configuration, which replaces the earlier one here, not joins it); rows are
    in the order of their runs' start."""
    runs = client.search_runs(
        [experiment_id(client, experiment)], filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"], max_results=10_000,
    )  # fmt: skip
    rows = []
    for r in runs:
        row = {"run_id": r.info.run_id, "config_name": r.data.tags.get("config_name"),
               "commit": r.data.tags.get("mlflow.source.git.commit", "")[:8],
               **_typed(r.data.params)}  # fmt: skip
        row.update({k: v for k, v in r.data.metrics.items()
                    if k.startswith("final_") or k in ("cpu_ms_per_1024", "epochs_run",
                                                       "train_seconds")})  # fmt: skip
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    named = table["config_name"].notna()
    latest = ~table["config_name"].duplicated(keep="last") | ~named
    return table[latest].reset_index(drop=True)


def _typed(params: dict[str, str]) -> dict[str, Any]:
    """Return MLflow's string parameters as numbers or booleans where they are."""
    out: dict[str, Any] = {}
    for key, text in params.items():
        if text in ("True", "False"):
            out[key] = text == "True"
            continue
        try:
            out[key] = int(text)
        except ValueError:
            try:
                out[key] = float(text)
            except ValueError:
                out[key] = text
    return out


def epoch_history(client: MlflowClient, run_id: str, key: str = "val_f1") -> pd.Series:
    """Return the per-epoch values of metric `key` of a tracked run, indexed by epoch."""
    history = client.get_metric_history(run_id, key)
    return pd.Series({m.step: m.value for m in history}, name=key).sort_index()


def run_ablation(
    configs: Sequence[HungarianConfig],
    *,
    client: MlflowClient,
    checkpoint_for: Callable[[HungarianConfig], str | Path | None],
    retrain: bool = False,
    experiment: str = EXPERIMENT,
    verbose: bool = True,
) -> pd.DataFrame:
    """Return `runs_table` of the experiment after a `tracked_run` of every config.

    checkpoint_for(config): where each training keeps its checkpoint. Splits are loaded
    once per (max_doas, per_group, data_seed) and shared by the runs that use them.
    verbose: a French counter line before each training ('variante 3/36 : ...'), then its
    progress.
    """
    cache: dict[tuple[int, int, int], Splits] = {}
    for i, config in enumerate(configs, 1):
        key = (config.max_doas, config.per_group, config.data_seed)
        if key not in cache:
            cache[key] = load_data(config)
        if verbose:
            print(f"variante {i}/{len(configs)} : {config.label}, graine {config.seed}, "
                  f"{config.max_doas} DOA", flush=True)  # fmt: skip
        tracked_run(config, client=client, checkpoint=checkpoint_for(config), retrain=retrain,
                    data=cache[key], experiment=experiment, verbose=verbose)  # fmt: skip
    return runs_table(client, experiment)
