import pytest

from coursekit.experiments import mnist_loss
from coursekit.experiments.mnist_loss import MnistLossConfig, make_loaders, run, split_sizes
from coursekit.models import MnistNet

FIXTURE_TRAIN, FIXTURE_TEST = 1000, 200  # sizes of the MNIST fixture's two splits


@pytest.fixture
def smoke(monkeypatch, tmp_path, fixture_data):
    """Smoke mode on the session's fixture root; returns a scratch folder."""
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    monkeypatch.setenv("COURSEKIT_FIXTURES", str(fixture_data))
    monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
    return tmp_path


def test_swap_learns_on_the_small_split(smoke):
    config = MnistLossConfig(swap=True, subset=None, device="cpu")
    assert split_sizes(config) == (FIXTURE_TEST, FIXTURE_TRAIN)
    assert split_sizes(MnistLossConfig(swap=False, device="cpu")) == (FIXTURE_TRAIN, FIXTURE_TEST)
    train, test = make_loaders(config)
    assert train.num_samples == FIXTURE_TEST and test.num_samples == FIXTURE_TRAIN
    assert train.batch_size == 64 and test.batch_size == 1000
    assert train.shuffle and not test.shuffle
    x, y = next(iter(train))
    assert x.shape == (64, 1, 28, 28) and y.shape == (64,)


def test_two_epoch_swap_run_trains_on_the_small_split_and_loss_falls(smoke, monkeypatch):
    seen = {}
    real_fit = mnist_loss.fit

    def spy(model, train_loader, val_loader, **kwargs):
        seen.update(n_train=len(train_loader.dataset), n_val=len(val_loader.dataset), **kwargs)
        return real_fit(model, train_loader, val_loader, **kwargs)

    monkeypatch.setattr(mnist_loss, "fit", spy)
    # Asking for up to 500 training samples gets the 200 of the small (test) split.
    config = MnistLossConfig(swap=True, dropout=False, epochs=2, subset=(500, 100), device="cpu")
    model, history = run(config, verbose=False)
    assert isinstance(model, MnistNet)
    assert seen["n_train"] == FIXTURE_TEST and seen["n_val"] == 100
    assert seen["eval_train"] is True and seen["checkpoint"] is None
    assert [row["epoch"] for row in history.rows] == [1, 2]
    assert {"train_loss", "train_eval_loss", "val_loss", "val_acc", "lr"} <= set(history.columns)
    assert history["lr"] == pytest.approx([1.0, 0.7])  # StepLR(step_size=1, gamma=0.7)
    assert history["train_eval_loss"][1] < history["train_eval_loss"][0]
    assert history["val_loss"][1] < history["val_loss"][0]


def test_checkpoint_name_separates_experiments(smoke, monkeypatch):
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(smoke / "run"))
    names = {
        MnistLossConfig(swap=s, dropout=d, subset=n).name
        for s in (False, True)
        for d in (False, True)
        for n in (None, 100)
    }
    assert len(names) == 8
    assert MnistLossConfig(epochs=3).name == MnistLossConfig(epochs=14, device="cpu").name
    assert MnistLossConfig(swap=True, dropout=False).name.startswith("mnist_swap_nodropout_")


def test_batch_run_resumes_from_its_checkpoint(smoke, monkeypatch):
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(smoke / "run"))
    config = MnistLossConfig(swap=True, epochs=1, subset=64, device="cpu")
    _, first = run(config, verbose=False)
    assert (smoke / "run" / "checkpoints" / f"{config.name}.pt").is_file()
    _, longer = run(MnistLossConfig(swap=True, epochs=2, subset=64, device="cpu"), verbose=False)
    assert longer.rows[0] == first.rows[0]  # epoch 1 comes from the checkpoint
    assert len(longer) == 2
