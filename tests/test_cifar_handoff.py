"""Notebook 04's hand-off file: what it records, and that it rebuilds the very same net."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from coursekit.checkpoint import save_checkpoint
from coursekit.cifar import handoff as ho
from coursekit.cifar import lesson as lc
from coursekit.cifar.models import FinalNet, TutorialNet

TINY = dataclasses.replace(lc.FINAL, widths=(8, 16, 16), depth=3, holdout=50, subset=200)


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """JupyterLab layout under tmp_path/runs, outside smoke mode; returns tmp_path."""
    monkeypatch.setenv("COURSEKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
    monkeypatch.delenv("COURSEKIT_SMOKE", raising=False)
    return tmp_path


def _trained(folder: Path) -> tuple[FinalNet, Path]:
    """Return a FinalNet of TINY's architecture with random weights, saved under `folder`."""
    torch.manual_seed(1)
    model = FinalNet(widths=TINY.widths, depth=TINY.depth)
    return model, save_checkpoint({"model": model.state_dict()}, folder / "net.pt")


def test_handoff_records_what_notebook_03_needs(lab):
    model, checkpoint = _trained(lab / "runs" / "lab" / ho.NOTEBOOK / "checkpoints")
    path = ho.write_handoff(TINY, model, 0.625, checkpoint)
    assert path == lab / "runs" / "lab" / ho.NOTEBOOK / "handoff" / "final_net.json"
    data = json.loads(path.read_text())
    assert data["checkpoint"] == "../checkpoints/net.pt"  # relative: the folder may move
    assert data["model"] == {"widths": [8, 16, 16], "depth": 3, "num_classes": 10,
                             "head_scale": 0.125}  # fmt: skip
    assert (data["holdout"], data["subset"], data["smoke"]) == (50, 200, False)
    assert data["mean"] == list(lc.CIFAR_MEAN) and data["classes"][3] == "cat"
    assert data["n_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert data["config"]["widths"] == [8, 16, 16] and data["val_acc"] == 0.625


def test_read_handoff_rebuilds_the_same_network_after_a_move(lab):
    model, checkpoint = _trained(lab / "runs" / "lab" / ho.NOTEBOOK / "checkpoints")
    ho.write_handoff(TINY, model, 0.5, checkpoint)
    shutil.move(lab / "runs", lab / "moved")  # e.g. a run folder copied off the cluster
    hand = ho.read_handoff(lab / "moved" / "lab" / ho.NOTEBOOK / "handoff" / "final_net.json")
    assert hand.checkpoint == (lab / "moved" / "lab" / ho.NOTEBOOK / "checkpoints" / "net.pt")
    loaded = hand.load_model()
    assert not loaded.training
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


def test_handoff_refuses_what_it_cannot_hand_on(lab):
    model, checkpoint = _trained(lab)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ho.write_handoff(TINY, model, 0.5, lab / "absent.pt")
    with pytest.raises(ho.HandoffError, match="FinalNet, got TutorialNet"):
        ho.write_handoff(TINY, TutorialNet(), 0.5, checkpoint)
    path = ho.write_handoff(TINY, model, 0.5, checkpoint, path=lab / "h.json")
    checkpoint.unlink()
    with pytest.raises(FileNotFoundError, match="rerun notebook 04"):
        ho.read_handoff(path).load_model()


def test_unreadable_handoffs_are_one_clear_error(tmp_path):
    path = tmp_path / "final_net.json"
    path.write_text("[1, 2]")
    with pytest.raises(ho.HandoffError, match="not a JSON object"):
        ho.read_handoff(path)
    path.write_text(json.dumps({"format": 0}))
    with pytest.raises(ho.HandoffError, match="format 0, this coursekit reads format 1"):
        ho.read_handoff(path)
    path.write_text(json.dumps({"format": 1, "checkpoint": "x.pt"}))
    with pytest.raises(ho.HandoffError, match="lacks or garbles 'model'"):
        ho.read_handoff(path)
