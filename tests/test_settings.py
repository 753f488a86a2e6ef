import torch

from coursekit import settings


def test_smoke_mode_reads_env(monkeypatch):
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    assert settings.smoke_mode()
    monkeypatch.setenv("COURSEKIT_SMOKE", "0")
    assert not settings.smoke_mode()


def test_data_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    monkeypatch.delenv("COURSEKIT_FIXTURES", raising=False)
    assert settings.data_root() == tmp_path
    assert settings.fixture_root() == tmp_path / "_fixtures"


def test_device_choice(monkeypatch):
    assert settings.get_device("cpu") == torch.device("cpu")
    assert settings.get_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setenv("COURSEKIT_DEVICE", "cpu")
    assert settings.get_device() == torch.device("cpu")
    assert settings.get_device("auto") == torch.device("cpu")
    assert settings.get_device(None) == torch.device("cpu")


def test_auto_device_honours_the_environment_even_when_cuda_exists(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("COURSEKIT_DEVICE", "cpu")
    assert settings.get_device("auto") == torch.device("cpu")
    monkeypatch.delenv("COURSEKIT_DEVICE")
    assert settings.get_device("auto") == torch.device("cuda")


def test_unavailable_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    try:
        settings.get_device("cuda")
    except RuntimeError as exc:
        assert "CUDA is not available" in str(exc)
    else:
        raise AssertionError("expected a RuntimeError")


def test_seed_everything_repeats_draws():
    settings.seed_everything(3)
    a = torch.rand(5)
    settings.seed_everything(3)
    assert torch.equal(a, torch.rand(5))


def test_artifact_path_puts_every_kind_in_the_run_folder_or_the_mode_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COURSEKIT_SMOKE", "0")
    monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
    lab = settings.artifact_path("05_x", "studies", "s.db")
    assert lab == tmp_path / "runs" / "lab" / "05_x" / "studies" / "s.db"
    assert lab.parent.is_dir()
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    smoke = tmp_path / "runs" / "smoke" / "05_x"
    assert settings.artifact_path("05_x", "mlflow") == smoke / "mlflow"
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path / "run"))
    # A batch run keeps everything it writes in its own folder, whatever the mode.
    run = tmp_path / "run"
    assert settings.artifact_path("05_x", "studies", "s.db") == run / "studies" / "s.db"


def test_live_widgets_only_in_an_interactive_session(monkeypatch):
    for name in ("COURSEKIT_SMOKE", "CI", "PAPERMILL_EXECUTION"):
        monkeypatch.delenv(name, raising=False)
    assert settings.interactive_session()
    for name in ("COURSEKIT_SMOKE", "CI", "PAPERMILL_EXECUTION"):
        monkeypatch.setenv(name, "1")
        assert not settings.interactive_session(), name
        monkeypatch.delenv(name)
