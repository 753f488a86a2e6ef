"""Notebook 07 tracking: where the MLflow store lives, tracked runs written and read back."""

import shlex
import socket

import pytest
import torch

from coursekit.hungarian import lesson as H
from coursekit.hungarian import tracking as T
from coursekit.hungarian.metrics import cell_weights

SMALL = {"per_group": 60, "epochs": 2, "batch_size": 64, "lr": 3e-3, "hidden": 32}


# Tiny batches: one thread is faster, and immune to a machine busy with other work.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def splits(assignment_splits):
    """The conftest's small 2-DOA splits (SMALL["per_group"] matrices per group to train)."""
    return assignment_splits


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    """One tracker for the module: creating an MLflow database takes seconds."""
    return T.open_tracker(tmp_path_factory.mktemp("mlflow"))


@pytest.mark.parametrize(
    ("smoke", "batch", "expected"),
    [("0", False, "runs/lab/07_hungariannet/mlflow"),
     ("1", False, "runs/smoke/07_hungariannet/mlflow"),
     ("1", True, "run/mlflow")],
)  # fmt: skip
def test_the_store_goes_where_artifact_path_says(tmp_path, monkeypatch, smoke, batch, expected):
    monkeypatch.setenv("COURSEKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COURSEKIT_SMOKE", smoke)
    if batch:
        monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path / "run"))
    else:
        monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
    assert T.tracking_dir() == tmp_path / expected and T.tracking_dir().is_dir()


def test_default_tracker_and_its_ui_command_name_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")  # a folder of runs/, no temporary one
    monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
    client = T.open_tracker()
    store = tmp_path / "runs" / "smoke" / "07_hungariannet" / "mlflow"
    assert T.store_dir(client) == store.resolve()
    command = shlex.split(T.ui_command(client))
    assert command == ["./kit", "mlflow", str(store.resolve())]


def test_tracked_run_is_written_and_read_back(splits, tracker, tmp_path, monkeypatch):
    connections = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: connections.append(address))
    config = H.HungarianConfig(**SMALL, label="tracked")
    run_id = T.tracked_run(config, client=tracker, checkpoint=tmp_path / "t.pt", data=splits,
                           test=True, experiment="test_tracking")  # fmt: skip
    table = T.runs_table(tracker, "test_tracking")
    row = table.set_index("run_id").loc[run_id]
    assert row["label"] == "tracked" and row["seed"] == 0 and row["hidden"] == 32
    assert row["n_train"] == len(splits[0]) and row["n_params"] > 0
    assert 0 <= row["final_val_f1"] <= 1 and 0 <= row["final_test_f1"] <= 1
    assert row["cpu_ms_per_1024"] > 0 and row["config_name"] == config.name
    per_epoch = T.epoch_history(tracker, run_id, "val_f1")
    assert list(per_epoch.index) == [1, 2]
    assert per_epoch.iloc[-1] == pytest.approx(row["final_val_f1"])
    run = tracker.get_run(run_id)
    assert run.data.tags["mlflow.source.git.commit"] and run.data.tags["seed"] == "0"
    version = T.run_version(tracker, run_id)
    assert version.name == T.registered_name(config, "test_tracking") == "test_tracking-hnet-2doas"
    assert version.source.startswith("models:/")  # resolved through the store, no file path
    assert version.tags["config_name"] == config.name
    # the version is an MLflow model: named by an alias, loaded back, same outputs and F1
    uri = T.set_alias(tracker, run_id, "best")
    assert uri == "models:/test_tracking-hnet-2doas@best"
    loaded = T.load_version(tracker, uri)
    assert isinstance(loaded, type(H.make_model(config)))
    trained, _ = H.run(config, checkpoint=tmp_path / "t.pt", data=splits, verbose=False)
    x = torch.from_numpy(splits[1].distances[:64])
    assert torch.equal(loaded(x), trained.eval()(x))
    weights = cell_weights(torch.from_numpy(splits[0].labels))
    assert H.score(loaded, splits[1], weights)["f1"] == row["final_val_f1"]
    by_number = T.load_version(tracker, f"models:/{version.name}/{version.version}")
    assert torch.equal(by_number(x), loaded(x))
    signature = T.version_signature(tracker, version)
    assert signature.inputs.inputs[0].shape == (-1, 2, 2)
    # tracked again: found, not trained nor logged twice
    again = T.tracked_run(config, client=tracker, checkpoint=None, data=splits,
                          experiment="test_tracking")  # fmt: skip
    assert again == run_id and len(T.runs_table(tracker, "test_tracking")) == 1
    assert connections == []  # the tracker is a local SQLite file: no network at all


def test_run_ablation_tracks_each_config_and_reads_the_table_back(splits, tracker, tmp_path):
    base = H.HungarianConfig(**{**SMALL, "epochs": 1})
    configs = H.ablation_configs(base, ["full", "no_attention"], seeds=[0])
    table = T.run_ablation(configs, client=tracker,
                           checkpoint_for=lambda c: tmp_path / f"{c.name}.pt",
                           experiment="test_ablation")  # fmt: skip
    assert sorted(table["label"]) == ["full", "no_attention"]
    assert list(H.ablation_summary(table)["count"]) == [1, 1]
    assert (tmp_path / f"{configs[0].name}.pt").exists()
    # retrained: new runs replace the old ones, one row per configuration still
    again = T.run_ablation(configs, client=tracker, retrain=True,
                           checkpoint_for=lambda c: tmp_path / f"{c.name}.pt",
                           experiment="test_ablation", verbose=False)  # fmt: skip
    assert sorted(again["config_name"]) == sorted(c.name for c in configs)
    assert not set(again["run_id"]) & set(table["run_id"])  # the latest runs
    assert list(H.ablation_summary(again)["count"]) == [1, 1]
    latest = {c.name: T.find_run(tracker, c, "test_ablation").info.run_id for c in configs}
    assert dict(zip(again["config_name"], again["run_id"], strict=True)) == latest


def test_typed_parameters_come_back_as_numbers_and_booleans():
    typed = T._typed({"hidden": "32", "lr": "0.001", "gru": "False", "arch": "hnet",
                      "weights": "(1.0, 0.0, 1.0)"})  # fmt: skip
    assert typed == {"hidden": 32, "lr": 0.001, "gru": False, "arch": "hnet",
                     "weights": "(1.0, 0.0, 1.0)"}  # fmt: skip


def test_a_moved_store_loads_its_registered_models_from_where_it_is(splits, tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    client = T.open_tracker(before)
    config = H.HungarianConfig(**SMALL, label="moved")
    run_id = T.tracked_run(config, client=client, checkpoint=None, data=splits,
                           experiment="test_move", verbose=False)  # fmt: skip
    uri = T.set_alias(client, run_id, "best")
    x = torch.from_numpy(splits[1].distances[:16])
    expected = T.load_version(client, uri)(x)
    before.rename(after)  # the whole store elsewhere: the old path no longer exists
    from mlflow import MlflowClient

    database = f"sqlite:///{after / T.DATABASE}"
    stale = MlflowClient(tracking_uri=database, registry_uri=database)
    with pytest.raises(Exception):  # noqa: B017  MLflow alone still reads the old place
        T.load_version(stale, uri)
    moved = T.open_tracker(after)
    assert torch.equal(T.load_version(moved, uri)(x), expected)
    assert str(before) not in moved.get_run(run_id).info.artifact_uri
    assert T.relocate_store(after) == 0  # in place now: nothing left to rewrite
