import json

import pytest
import torch

from coursekit import checkpoint as ck
from coursekit.checkpoint import CheckpointError, atomic_dir, load_checkpoint, save_checkpoint
from coursekit.mnist.lesson import MnistLossConfig


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"epoch": 1}, path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the job is killed in the middle of writing

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Delete it"):
        load_checkpoint(path)


def test_write_json_is_atomic_and_jsonable(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    ck.write_json({"acc": torch.tensor(0.5), "nan": float("nan"), "steps": (1, 2)}, path)
    assert json.loads(path.read_text()) == {"acc": 0.5, "nan": None, "steps": [1, 2]}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ck.os, "fsync", broken)
    with pytest.raises(OSError):
        ck.write_json({"acc": 0.9}, path)
    assert json.loads(path.read_text())["acc"] == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_checkpoint_path_in_a_batch_run_in_lab_and_in_smoke_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path / "run"))
    assert ck.checkpoint_path("nb", "a") == tmp_path / "run" / "checkpoints" / "a.pt"
    monkeypatch.delenv("COURSEKIT_RUN_DIR")
    monkeypatch.setenv("COURSEKIT_SMOKE", "0")
    lab = tmp_path / "runs" / "lab" / "nb" / "checkpoints"
    assert ck.checkpoint_path("nb", "a") == lab / "a.pt"
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    smoke = tmp_path / "runs" / "smoke" / "nb" / "checkpoints"
    assert ck.checkpoint_path("nb", "a") == smoke / "a.pt"


def test_config_name_hashes_every_field_but_the_ignored_ones():
    base = MnistLossConfig()
    assert ck.config_name("x", base) == ck.config_name("x", MnistLossConfig(device="cpu"))
    assert ck.config_name("x", base) != ck.config_name("x", MnistLossConfig(epochs=3))
    assert ck.config_name("a b", {"k": 1}).startswith("a_b_")


def test_atomic_files_get_the_mode_of_a_plain_open(tmp_path):
    old = ck.os.umask(0o022)
    try:
        path = ck.write_json({"a": 1}, tmp_path / "shared.json")
    finally:
        ck.os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by the group, as open() would do


def test_atomic_dir_is_all_or_nothing(tmp_path):
    target = tmp_path / "set"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.wav").write_bytes(b"1")
        raise RuntimeError("crash halfway")
    assert not target.exists() and list(tmp_path.iterdir()) == []  # nothing half-written
    with atomic_dir(target) as tmp:
        (tmp / "a.wav").write_bytes(b"1")
    with atomic_dir(target) as tmp:  # an existing folder is replaced as a whole
        (tmp / "b.wav").write_bytes(b"2")
    assert [p.name for p in target.iterdir()] == ["b.wav"] and len(list(tmp_path.iterdir())) == 1
