"""Notebook 03's backbones: ImageNet weights and their errors, and notebook 04's network found
through its hand-off file (given, JupyterLab, then finished batch runs)."""

from __future__ import annotations

import dataclasses
import shutil
import urllib.error
from pathlib import Path

import pytest
import torch

from coursekit.cam import backbones as cb
from coursekit.checkpoint import checkpoint_path, save_checkpoint, write_json
from coursekit.cifar import handoff as ho
from coursekit.cifar import lesson as lc
from coursekit.cifar.models import FinalNet

NB04 = "04_cifar10_256k"
TINY = dataclasses.replace(lc.FINAL, widths=(8, 16, 16), holdout=50, subset=200)


def hand_on(val_acc: float, monkeypatch: pytest.MonkeyPatch, run: Path | None = None) -> Path:
    """Do what notebook 04 does after its final training, in JupyterLab or in batch run `run`:
    save a (random) final network's checkpoint and write its hand-off; return the hand-off."""
    with monkeypatch.context() as m:
        if run is not None:
            m.setenv("COURSEKIT_RUN_DIR", str(run))
        model = FinalNet(widths=TINY.widths)
        checkpoint = save_checkpoint({"model": model.state_dict()}, checkpoint_path(NB04, "net"))
        return ho.write_handoff(TINY, model, val_acc, checkpoint)


def batch_run(runs: Path, name: str, state: str, smoke: bool = False) -> Path:
    """Return a run folder of notebook 04 whose status.json says `state`."""
    folder = runs / NB04 / name
    write_json({"state": state, "smoke": smoke, "updated": name}, folder / "status.json")
    return folder


def test_nothing_handed_on_is_one_error_that_says_where_and_how(runs):
    with pytest.raises(cb.HandoffMissingError) as info:
        cb.load_backbone("cifar10")
    message = str(info.value)
    assert str(runs / "lab" / NB04 / "handoff" / "final_net.json") in message
    assert f"{runs / NB04}/*/handoff/final_net.json" in message and "done" in message
    assert "coursekit run notebooks/04_cifar10_256k.ipynb" in message
    assert "cifar10_handoff=" in message
    with pytest.raises(cb.HandoffMissingError, match="cifar10_handoff='/absent'"):
        cb.find_cifar10_handoff("/absent")


def test_the_newest_finished_batch_run_of_the_same_mode_is_used(runs, monkeypatch):
    old = hand_on(0.1, monkeypatch, batch_run(runs, "20260101-100000-run", "done"))
    new = hand_on(0.2, monkeypatch, batch_run(runs, "20260102-100000-run", "done"))
    hand_on(0.3, monkeypatch, batch_run(runs, "20260103-100000-run", "failed"))
    hand_on(0.4, monkeypatch, batch_run(runs, "20260104-100000-smoke", "done", smoke=True))
    assert cb.batch_handoffs() == [new, old]
    net = cb.load_backbone("cifar10")
    assert net.handoff.path == new and net.handoff.val_acc == 0.2 and not net.random_weights
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")  # a smoke session takes the smoke run only
    assert cb.find_cifar10_handoff().parent.parent.name == "20260104-100000-smoke"


def test_jupyterlab_comes_before_batch_runs_and_a_given_path_before_both(runs, monkeypatch):
    hand_on(0.2, monkeypatch, batch_run(runs, "20260102-100000-run", "done"))
    lab = hand_on(0.7, monkeypatch)
    assert lab == cb.lab_handoff()
    # Notebook 03 in a batch run of its own still finds what notebook 04 wrote in JupyterLab.
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(runs / "03_cam_sensitivity" / "x-run"))
    assert cb.find_cifar10_handoff() == lab
    given = runs / NB04 / "20260102-100000-run"
    assert cb.find_cifar10_handoff(given) == given / "handoff" / "final_net.json"
    assert cb.find_cifar10_handoff(given / "handoff" / "final_net.json").parent.parent == given


def test_a_moved_runs_folder_still_loads(runs, monkeypatch, tmp_path):
    path = hand_on(0.5, monkeypatch)
    reference = cb.load_backbone("cifar10", cifar10_handoff=path)
    shutil.move(runs, tmp_path / "moved")
    monkeypatch.setenv("COURSEKIT_RUNS", str(tmp_path / "moved"))
    moved = cb.load_backbone("cifar10")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(moved.model(x), reference.model(x))
    assert moved.caption == "réseau CIFAR-10 du notebook 04 (net.pt, validation 50,0\u00a0%)"


def test_random_cifar10_backbone_reads_nothing(runs):
    net = cb.load_backbone("cifar10", pretrained=False)
    assert net.random_weights and net.handoff is None and "ALÉATOIRES" in net.caption
    assert (net.target_layer, net.fc_layer) == ("blocks.2", "head")


def test_class_index_by_name_or_number():
    net = cb.load_backbone("cifar10", pretrained=False)
    assert net.class_index("Cat") == 3 and net.class_index(3) == 3
    with pytest.raises(ValueError, match="no class named"):
        net.class_index("tabby")
    with pytest.raises(ValueError, match="out of range"):
        net.class_index(10)


def test_missing_imagenet_weights_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def offline(weights):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(cb, "_download_state_dict", offline)
    with pytest.raises(cb.WeightsMissingError) as info:
        cb.load_backbone("resnet18")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "backbone='cifar10'" in message


def test_random_imagenet_backbone_says_so():
    backbone = cb.load_backbone("resnet18", pretrained=False, input_size=32)
    assert backbone.random_weights and "ALÉATOIRES" in backbone.caption
    assert backbone.classes[281] == "tabby" and backbone.class_index("tabby") == 281
