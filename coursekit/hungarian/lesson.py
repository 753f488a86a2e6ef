"""Notebook 07: HungarianNet vs a Deep Hungarian Net, 2 to 10 DOAs, a tracked ablation study.

A `HungarianConfig` names everything one training depends on (data: max_doas, samples per
group, data seed; model: architecture and its switches; loss: terms, BCE or focal, class
balancing; training: epochs, batch, learning rate, seed). `run(config, checkpoint=...)`
trains it through `coursekit.train.fit` and returns (model, History) with the validation
weighted F1 of every epoch; `train_public_recipe` is the public train_hnet.py loop,
written again as the baseline. `tracked_run` does a `run` inside an MLflow run (parameters,
metrics per epoch, final scores, CPU inference time, git commit, seed, the model file as an
artifact and a version of a registered model) and `run_ablation` does it for a list of
configurations; `runs_table` reads the tracker back.

Splits: train, val and test are generated independently (`coursekit.hungarian.data`);
settings are compared on val, test is for the final numbers.

Tracker: MLflow with a SQLite database and a folder of artifacts, `runs/mlflow/` (env
COURSEKIT_RUNS moves `runs/`); in smoke mode a fresh temporary folder per process, deleted
when the process ends, so smoke runs never mix with real ones. MLflow's telemetry is
switched off before it is imported: nothing here uses the network.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.ops import sigmoid_focal_loss

from coursekit.checkpoint import (
    atomic_write,
    config_name,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from coursekit.hungarian.data import (
    AssignmentData,
    MatrixLoader,
    balanced_sample_range,
    ensure_dataset,
)
from coursekit.hungarian.metrics import AssignmentScores, cell_weights
from coursekit.hungarian.models import DeepHungarianNet, HNet, three_outputs
from coursekit.models.measure import count_parameters
from coursekit.settings import REPO_ROOT, get_device, runs_dir, seed_everything, smoke_mode
from coursekit.train import EarlyStopping, History, fit, predict

if TYPE_CHECKING:
    from mlflow import MlflowClient

ARCHS = ("hnet", "dhn")
LOSSES = ("bce", "focal")
EXPERIMENT = "07_hungariannet"
EVAL_BATCH = 4096
TIMING_MATRICES = 1024
SCORE_KEYS = ("f1", "assignment_acc", "cell_acc", "precision_0", "recall_0", "precision_1",
              "recall_1", "f1_0", "f1_1")  # fmt: skip


@dataclass(frozen=True)
class HungarianConfig:
    """One training of notebook 07; the defaults are the public HungarianNet recipe, except
    clip_input (the network reads min(distance, 3); 0: the public raw distances).

    max_doas: side M of the matrices; per_group: samples per resolution and per number of
      ones of the label (15000: the public 405,000 training samples at M = 2);
      data_seed: seed of the generated splits;
    arch: 'hnet' (HNet with hidden, gru, attention, gru_layers) or 'dhn' (DeepHungarianNet
      with hidden, its two 2-layer Bi-GRUs);
    loss: 'bce' or 'focal' (gamma) on each of the three outputs, weighted by `weights`
      (cells, row max, column max); balance: positive weights (BCE) or alpha (focal) from
      the training labels' class frequencies;
    epochs, batch_size, lr (Adam), patience (early stopping on val_loss, 0: none), seed.
    """

    max_doas: int = 2
    per_group: int = 15000
    data_seed: int = 0
    arch: str = "hnet"
    hidden: int = 128
    gru: bool = True
    attention: bool = True
    gru_layers: int = 1
    clip_input: float = 3.0
    loss: str = "bce"
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    balance: bool = False
    gamma: float = 2.0
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    patience: int = 0
    seed: int = 0
    device: str = "cpu"
    label: str = "run"

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.arch not in ARCHS or self.loss not in LOSSES:
            raise ValueError(
                f"arch must be one of {ARCHS} and loss one of {LOSSES}, got {self.arch!r}, "
                f"{self.loss!r}"
            )
        if len(self.weights) != 3 or min(self.weights) < 0 or max(self.weights) == 0:
            raise ValueError(
                f"weights are three non-negative loss weights (cells, rows, columns), not all "
                f"zero; got {self.weights}"
            )
        if min(self.max_doas, self.per_group, self.epochs, self.batch_size) < 1 or self.lr <= 0:
            raise ValueError("max_doas, per_group, epochs and batch_size must be >= 1, lr > 0")

    @property
    def name(self) -> str:
        """Return a file-safe run name, e.g. 'hnet2_full_3f2a9c1b', unique per experiment."""
        return config_name(f"hnet{self.max_doas}_{self.label}", self)


Splits = tuple[AssignmentData, AssignmentData, AssignmentData]


def load_data(config: HungarianConfig) -> Splits:
    """Return the (train, val, test) splits of the config, generated on first use."""
    sample_range = balanced_sample_range(config.max_doas, config.per_group)
    return tuple(  # type: ignore[return-value]
        ensure_dataset(config.max_doas, split, sample_range, config.data_seed)
        for split in ("train", "val", "test")
    )


def make_model(config: HungarianConfig) -> nn.Module:
    """Return the untrained network of the config."""
    clip = config.clip_input if config.clip_input > 0 else None
    if config.arch == "dhn":
        return DeepHungarianNet(config.max_doas, hidden=config.hidden, clip_input=clip)
    return HNet(
        config.max_doas, hidden=config.hidden, gru=config.gru, attention=config.attention,
        gru_layers=config.gru_layers, clip_input=clip,
    )  # fmt: skip


def output_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the targets of the three outputs of labels (B, M, M): flattened (B, M*M), row
    sums (B, M), column sums (B, M)."""
    return labels.flatten(1), labels.sum(dim=2), labels.sum(dim=1)


def balance_weights(labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Return the positive weights (negatives / positives per position) of the three targets
    of the training labels (N, M, M): shapes (M*M,), (M,), (M,)."""
    weights = []
    for target in output_targets(torch.as_tensor(labels).float()):
        positives = target.sum(dim=0)
        weights.append((len(target) - positives) / positives.clamp(min=1))
    return tuple(weights)


class AssignmentLoss(nn.Module):
    """Weighted sum of a BCE (or focal) loss on each of the three outputs of HungarianNet.

    Each term is summed over the cells (or rows, columns) of a matrix and averaged over the
    batch: the public recipe's sum over the batch, divided by the batch size (Adam is
    insensitive to that constant). pos_weights: one tensor per term (see
    `balance_weights`), for BCE; alpha: focal loss weight of the positives (-1: none).
    """

    def __init__(
        self,
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        kind: str = "bce",
        pos_weights: Sequence[torch.Tensor | None] | None = None,
        alpha: float = -1.0,
        gamma: float = 2.0,
    ) -> None:
        super().__init__()
        if kind not in LOSSES:
            raise ValueError(f"kind must be one of {LOSSES}, got {kind!r}")
        self.weights, self.kind = tuple(weights), kind
        self.pos_weights = tuple(pos_weights) if pos_weights is not None else (None,) * 3
        self.alpha, self.gamma = alpha, gamma

    def _term(self, out: torch.Tensor, target: torch.Tensor, pos: torch.Tensor | None):
        if self.kind == "focal":
            loss = sigmoid_focal_loss(out, target, self.alpha, self.gamma, reduction="sum")
        else:
            pos = None if pos is None else pos.to(out.device)
            loss = F.binary_cross_entropy_with_logits(out, target, pos_weight=pos, reduction="sum")
        return loss / len(target)

    def terms(self, logits: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
        """Return the three unweighted terms (cells, rows, columns) for logits (B, M, M)."""
        parts = zip(three_outputs(logits), output_targets(labels), self.pos_weights, strict=True)
        return [self._term(out, target, pos) for out, target, pos in parts]

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        parts = zip(three_outputs(logits), output_targets(labels), self.pos_weights, strict=True)
        return sum(
            w * self._term(out, target, pos)
            for w, (out, target, pos) in zip(self.weights, parts, strict=True)
            if w > 0
        )


def make_loss(config: HungarianConfig, train_labels: torch.Tensor) -> AssignmentLoss:
    """Return the config's loss; with balance, its weights come from the training labels."""
    labels = torch.as_tensor(train_labels).float()
    pos = balance_weights(labels) if config.balance and config.loss == "bce" else None
    alpha = 1 - labels.mean().item() if config.balance and config.loss == "focal" else -1.0
    return AssignmentLoss(config.weights, config.loss, pos, alpha, config.gamma)


def predict_logits(model: nn.Module, data: AssignmentData, batch: int = EVAL_BATCH) -> torch.Tensor:
    """Return the logits (N, M, M) of `model` on every matrix of `data`, in eval mode."""
    return predict(model, data.tensors()[0], batch)


def score(model: nn.Module, data: AssignmentData, weights: torch.Tensor) -> dict[str, float]:
    """Return `AssignmentScores.compute()` of the model on a split (cell weights from train)."""
    scores = AssignmentScores(weights)
    scores.update(predict_logits(model, data), torch.from_numpy(data.labels))
    return scores.compute()


def scores_by_ones(model: nn.Module, data: AssignmentData, weights: torch.Tensor) -> pd.DataFrame:
    """Return one row of scores per number of ones of the label, min(nb_ref, nb_pred)."""
    logits, labels = predict_logits(model, data), torch.from_numpy(data.labels)
    ones = np.minimum(data.nb_ref, data.nb_pred)
    rows = {}
    for k in np.unique(ones):
        scores = AssignmentScores(weights)
        index = torch.from_numpy(np.flatnonzero(ones == k))
        scores.update(logits[index], labels[index])
        rows[int(k)] = scores.compute()
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("uns")


def run(
    config: HungarianConfig,
    *,
    checkpoint: str | Path | None,
    retrain: bool = False,
    data: Splits | None = None,
    verbose: bool = True,
) -> tuple[nn.Module, History]:
    """Return (trained model, History) of one training through `coursekit.train.fit`.

    History columns: epoch, lr, train_loss, val_loss, seconds, and val_<score> for the
    SCORE_KEYS, measured after every epoch on the validation split (weighted F1 with the
    training labels' cell weights). The seed is set before the model is built.
    checkpoint: written after every epoch; an unfinished one is resumed, a finished one
    loaded (retrain: start afresh). data: the (train, val, test) splits, to share them
    between runs; default `load_data(config)`.
    """
    device = get_device(config.device)
    train, val, _ = data or load_data(config)
    _check_splits(config, train)
    weights = cell_weights(torch.from_numpy(train.labels))
    seed_everything(config.seed)
    model = make_model(config).to(device)
    loader = MatrixLoader(train, config.batch_size, shuffle=True, device=device)
    val_loader = MatrixLoader(val, EVAL_BATCH, device=device)

    def add_scores(row: dict[str, float]) -> None:
        # fit calls this with the epoch's row before saving it: the scores go in the history
        row.update({f"val_{k}": v for k, v in score(model, val, weights).items()
                    if k in SCORE_KEYS})  # fmt: skip

    history = fit(
        model, loader, val_loader, epochs=config.epochs,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=make_loss(config, torch.from_numpy(train.labels)), metrics={}, device=device,
        early_stopping=EarlyStopping(config.patience) if config.patience > 0 else None,
        checkpoint=checkpoint, restart=retrain, callback=add_scores, verbose=verbose,
    )  # fmt: skip
    return model, history


def _check_splits(config: HungarianConfig, train: AssignmentData) -> None:
    if train.max_doas != config.max_doas:
        raise ValueError(
            f"the data has {train.max_doas} DOAs per matrix, the config {config.max_doas}; "
            "pass the splits of load_data(config)"
        )


def train_public_recipe(
    config: HungarianConfig,
    *,
    checkpoint: str | Path | None,
    retrain: bool = False,
    data: Splits | None = None,
    verbose: bool = True,
) -> tuple[HNet, pd.DataFrame]:
    """Return (HNet, per-epoch DataFrame) trained as the public train_hnet.py does.

    DataLoader(batch 256, shuffle, drop_last), Adam(lr 1e-3), three BCEWithLogits losses
    with reduction 'sum' and weights 1, 1, 1, config.epochs epochs; the weights kept are
    those of the epoch with the best weighted F1, measured here on the validation split
    (the public script measures, and picks, on its test split). The network reads the raw
    distances; only max_doas, epochs, seed and the data fields of the config are used.
    checkpoint: written after every epoch, resumed if unfinished, loaded if finished
    (retrain: start afresh).
    """
    train, val, _ = data or load_data(config)
    _check_splits(config, train)
    weights = cell_weights(torch.from_numpy(train.labels))
    seed_everything(config.seed)
    model = HNet(config.max_doas)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    state = {"epoch": 0, "rows": [], "best_f1": -1.0, "best": None}
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists() and not retrain:
        state = load_checkpoint(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
    loader = DataLoader(TensorDataset(*train.tensors()), batch_size=256, shuffle=True,
                        drop_last=True)  # fmt: skip
    bce = nn.BCEWithLogitsLoss(reduction="sum")
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = sum(bce(o, t) for o, t in zip(three_outputs(model(x)), output_targets(y),
                                                 strict=True))  # fmt: skip
            loss.backward()
            optimizer.step()
            total += loss.item()
        f1 = score(model, val, weights)["f1"]
        row = {"epoch": epoch, "train_loss": total / (len(loader) * 256), "val_f1": f1,
               "seconds": time.perf_counter() - t0}  # fmt: skip
        state["rows"].append(row)
        if f1 > state["best_f1"]:
            state["best_f1"], state["best"] = f1, copy.deepcopy(model.state_dict())
        state.update(epoch=epoch, model=model.state_dict(), optimizer=optimizer.state_dict(),
                     rng=rng_state())  # fmt: skip
        if path is not None:
            save_checkpoint(state, path)
        if verbose:
            print(f"epoch {epoch}  train_loss {row['train_loss']:.4g}  val_f1 {f1:.4f}")
    if state["best"] is not None:
        model.load_state_dict(state["best"])
    return model, pd.DataFrame(state["rows"]).set_index("epoch")


# --- HNet vs the exact Hungarian algorithm ---------------------------------------------


def hungarian_labels(data: AssignmentData, n: int | None = None) -> np.ndarray:
    """Return uint8 (n, M, M): scipy's assignment of the active block of the first n matrices
    (active rows and columns from the stored masks), one linear_sum_assignment per matrix."""
    n = len(data) if n is None else min(n, len(data))
    labels = np.zeros((n, data.max_doas, data.max_doas), np.uint8)
    for i in range(n):
        rows, cols = np.flatnonzero(data.ref_mask[i]), np.flatnonzero(data.pred_mask[i])
        if len(rows) and len(cols):
            r, c = linear_sum_assignment(data.distances[i][np.ix_(rows, cols)])
            labels[i, rows[r], cols[c]] = 1
    return labels


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: first calls pay allocations and lazy initialisations
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def hungarian_ms(data: AssignmentData, n: int = TIMING_MATRICES, repeats: int = 3) -> float:
    """Return the median milliseconds for scipy to assign the first n matrices, one by one."""
    return 1000 * _median_seconds(lambda: hungarian_labels(data, n), repeats)


@torch.no_grad()
def model_ms(model: nn.Module, data: AssignmentData, n: int = TIMING_MATRICES,
             repeats: int = 5) -> float:  # fmt: skip
    """Return the median milliseconds for `model` (eval mode, CPU) to score the first n
    matrices in one batch, sigmoid and threshold included."""
    model = copy.deepcopy(model).cpu().eval()
    x = torch.from_numpy(data.distances[:n])
    return 1000 * _median_seconds(lambda: torch.sigmoid(model(x)) > 0.5, repeats)


# --- Tracking with MLflow ----------------------------------------------------------------


@cache
def _smoke_tracking_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="coursekit-mlflow-smoke-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)  # smoke runs are throwaway
    return path


def tracking_dir() -> Path:
    """Return the tracker's folder: runs/mlflow, or a temporary one per process in smoke mode."""
    return _smoke_tracking_dir() if smoke_mode() else runs_dir() / "mlflow"


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
    uri = f"sqlite:///{root.resolve() / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _artifact_location(client: MlflowClient) -> str:
    database = Path(client.tracking_uri.removeprefix("sqlite:///"))
    return (database.parent / "artifacts").as_uri()


def experiment_id(client: MlflowClient, name: str = EXPERIMENT) -> str:
    """Return the id of experiment `name`, created (artifacts next to the database) if new."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_location(client))


def code_version() -> dict[str, str]:
    """Return {'mlflow.source.git.commit': sha or 'unknown', 'git_dirty': 'true'/'false'/...}."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=True)  # fmt: skip
        return done.stdout.strip()

    try:
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"mlflow.source.git.commit": git("rev-parse", "HEAD"), "git_dirty": str(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"mlflow.source.git.commit": "unknown", "git_dirty": "unknown"}


def find_run(client: MlflowClient, config: HungarianConfig, experiment: str = EXPERIMENT):
    """Return the latest FINISHED tracked run of this exact config, or None."""
    runs = client.search_runs(
        [experiment_id(client, experiment)],
        filter_string=f"attributes.status = 'FINISHED' and tags.config_name = '{config.name}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )  # fmt: skip
    return runs[0] if runs else None


def _log_model(client: MlflowClient, run_id: str, model: nn.Module, config: HungarianConfig):
    """Log the weights as artifact model/<name>.pt and register them as a model version."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{config.name}.pt"
        atomic_write(path, lambda f: torch.save(model.state_dict(), f))
        client.log_artifact(run_id, str(path), artifact_path="model")
    registered = f"{EXPERIMENT}-{config.arch}-{config.max_doas}doas"
    try:
        client.create_registered_model(registered)
    except MlflowException:
        pass  # already registered by an earlier run
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    return client.create_model_version(registered, source=source, run_id=run_id,
                                       tags={"config_name": config.name})  # fmt: skip


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
    verbose: bool = False,
) -> str:
    """Return the MLflow run id of `run(config)`, training and logging it if not tracked yet.

    Logged: every config field as a parameter, plus parameter count and split sizes; tags
    config_name, seed, git commit and dirty flag, torch version, CPU threads; per-epoch
    metrics (the History columns, step = epoch); final_val_<score> (and final_test_<score>
    with test=True); cpu_ms_per_1024 (inference time); the weights as an artifact and a
    version of the registered model '<experiment>-<arch>-<M>doas'. A config already
    tracked as FINISHED is not run again unless retrain.
    """
    found = None if retrain else find_run(client, config, experiment)
    if found is not None:
        return found.info.run_id
    data = data or load_data(config)
    tags = {"config_name": config.name, "label": config.label, "seed": str(config.seed),
            "torch": torch.__version__, "cpu_threads": str(torch.get_num_threads()),
            **code_version()}  # fmt: skip
    mlflow_run = client.create_run(experiment_id(client, experiment), run_name=config.name,
                                   tags=tags)  # fmt: skip
    run_id = mlflow_run.info.run_id
    try:
        model, history = run(config, checkpoint=checkpoint, retrain=retrain, data=data,
                             verbose=verbose)  # fmt: skip
        _log_results(client, run_id, config, model, history, data, test)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def _log_results(client, run_id, config, model, history, data, test) -> None:
    """Log the parameters, per-epoch and final metrics and the model of a finished run."""
    from mlflow.entities import Param

    train, val, test_split = data
    weights = cell_weights(torch.from_numpy(train.labels))
    params = {**asdict(config), "n_params": count_parameters(model), "n_train": len(train),
              "n_val": len(val), "n_test": len(test_split)}  # fmt: skip
    per_epoch = [m for row in history.rows for m in _metrics(
        {k: v for k, v in row.items() if k != "epoch"}, int(row["epoch"]))]  # fmt: skip
    final = {f"final_val_{k}": v for k, v in score(model, val, weights).items() if k in SCORE_KEYS}
    if test:
        final.update({f"final_test_{k}": v for k, v in score(model, test_split, weights).items()
                      if k in SCORE_KEYS})  # fmt: skip
    final.update(cpu_ms_per_1024=model_ms(model, val), epochs_run=len(history),
                 train_seconds=sum(history["seconds"]))  # fmt: skip
    metrics = per_epoch + _metrics(final, len(history))
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=metrics[:1000])  # fmt: skip
    for start in range(1000, len(metrics), 1000):  # MLflow takes 1,000 metrics per call
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    _log_model(client, run_id, model, config)


def runs_table(client: MlflowClient, experiment: str = EXPERIMENT) -> pd.DataFrame:
    """Return one row per FINISHED run of the experiment, read from the tracker: run_id,
    config_name, label, seed, commit, the config parameters and final_* metrics."""
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
    return pd.DataFrame(rows)


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


# --- Ablation study ----------------------------------------------------------------------

ABLATION: dict[str, dict[str, Any]] = {
    "full": {},
    "raw_input": {"clip_input": 0.0},
    "no_gru": {"gru": False},
    "no_attention": {"attention": False},
    "hidden32": {"hidden": 32},
    "hidden512": {"hidden": 512},
    "gru2": {"gru_layers": 2},
    "no_row_term": {"weights": (1.0, 0.0, 1.0)},
    "no_col_term": {"weights": (1.0, 1.0, 0.0)},
    "cell_term_only": {"weights": (1.0, 0.0, 0.0)},
    "focal": {"loss": "focal"},
    "pos_weight": {"balance": True},
    "dhn": {"arch": "dhn", "loss": "focal", "balance": True},
}


def ablation_configs(
    base: HungarianConfig, variants: Iterable[str] = ABLATION, seeds: Sequence[int] = (0, 1, 2)
) -> list[HungarianConfig]:
    """Return base changed by each ABLATION variant (label = variant name), once per seed."""
    unknown = [v for v in variants if v not in ABLATION]
    if unknown:
        raise KeyError(f"unknown ablation variants {unknown}; known: {list(ABLATION)}")
    return [replace(base, **ABLATION[v], label=v, seed=s) for v in variants for s in seeds]


def run_ablation(
    configs: Sequence[HungarianConfig],
    *,
    client: MlflowClient,
    checkpoint_for: Callable[[HungarianConfig], str | Path | None],
    retrain: bool = False,
    experiment: str = EXPERIMENT,
    verbose: bool = False,
) -> pd.DataFrame:
    """Return `runs_table` of the experiment after a `tracked_run` of every config.

    checkpoint_for(config): where each training keeps its checkpoint. Splits are loaded
    once per (max_doas, per_group, data_seed) and shared by the runs that use them.
    """
    cache: dict[tuple[int, int, int], Splits] = {}
    for config in configs:
        key = (config.max_doas, config.per_group, config.data_seed)
        if key not in cache:
            cache[key] = load_data(config)
        if verbose:
            print(f"{config.label} seed {config.seed} ...", flush=True)
        tracked_run(config, client=client, checkpoint=checkpoint_for(config), retrain=retrain,
                    data=cache[key], experiment=experiment)  # fmt: skip
    return runs_table(client, experiment)


def ablation_summary(table: pd.DataFrame, metric: str = "final_val_f1") -> pd.DataFrame:
    """Return mean, std, min, max and count of `metric` per label (variant) over its seeds."""
    if table.empty:
        raise ValueError("the tracker holds no finished run for this experiment")
    grouped = table.groupby("label", sort=False)[metric]
    return grouped.agg(["mean", "std", "min", "max", "count"])


def ablation_verdicts(
    summary: pd.DataFrame, reference: str = "full", k: float = 2.0
) -> pd.DataFrame:
    """Return, per variant of `ablation_summary`, delta (mean - reference mean), band and
    verdict: 'mieux' / 'moins bien' when |delta| > band = k * the larger seed standard
    deviation of the two, else 'indiscernable'; 'une seule graine' when a std is unknown."""
    if reference not in summary.index:
        raise KeyError(f"reference {reference!r} is not one of the variants {list(summary.index)}")
    ref = summary.loc[reference]
    delta = summary["mean"] - ref["mean"]
    band = k * np.maximum(summary["std"], ref["std"])
    worse = np.where(delta < -band, "moins bien", "indiscernable")
    verdict = np.where(delta > band, "mieux", worse)
    verdict = np.where(band.isna(), "une seule graine", verdict)
    return pd.DataFrame({"delta": delta, "band": band, "verdict": verdict}, index=summary.index)
