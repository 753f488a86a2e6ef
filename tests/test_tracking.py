import json

from coursekit.tracking import record_metrics


def test_outside_a_batch_run_metrics_are_only_returned(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert record_metrics(acc=0.5, loss=float("nan")) == {"acc": 0.5, "loss": None}
    assert list(tmp_path.iterdir()) == []


def test_metrics_merge_into_the_run_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    record_metrics(acc=0.5, loss=float("nan"))
    record_metrics(epochs=3)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {
        "acc": 0.5, "loss": None, "epochs": 3,
    }
