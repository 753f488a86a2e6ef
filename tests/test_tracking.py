import json

from coursekit.tracking import checkpoint_path, record_metrics


def test_outside_a_batch_run_nothing_is_written(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
    assert checkpoint_path("baseline") is None
    assert record_metrics(acc=0.5) == {"acc": 0.5}


def test_metrics_merge_into_the_run_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    assert checkpoint_path("baseline") == tmp_path / "checkpoints" / "baseline.pt"
    record_metrics(acc=0.5, loss=float("nan"))
    record_metrics(epochs=3)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {
        "acc": 0.5, "loss": None, "epochs": 3,
    }
