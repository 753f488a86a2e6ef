import pytest

from coursekit.checkpoint import checkpoint_path
from coursekit.mnist import lesson as mnist_loss
from coursekit.mnist.lesson import MnistLossConfig, make_loaders, run, split_sizes
from coursekit.mnist.models import MnistNet

FIXTURE_TRAIN, FIXTURE_TEST = 1000, 200  # sizes of the MNIST fixture's two splits


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


def test_an_int_subset_keeps_the_ratio_of_the_splits_so_the_swap_still_matters(smoke):
    # fixture: 1000 training and 200 test images, a 5:1 ratio (MNIST's is 6:1)
    assert split_sizes(MnistLossConfig(subset=500)) == (500, 100)
    assert split_sizes(MnistLossConfig(subset=500, swap=True)) == (100, 500)
    assert split_sizes(MnistLossConfig(subset=10_000)) == (FIXTURE_TRAIN, FIXTURE_TEST)
    assert mnist_loss.subset_sizes(64, 60_000, 10_000) == (64, 11)
    assert mnist_loss.subset_sizes(3, 60_000, 10_000) == (3, 1)
    with pytest.raises(ValueError, match="positive"):
        mnist_loss.subset_sizes(0, 60_000, 10_000)


def test_two_epoch_swap_run_trains_on_the_small_split_and_loss_falls(smoke, monkeypatch):
    seen = {}
    real_fit = mnist_loss.fit

    def spy(model, train_loader, val_loader, **kwargs):
        seen.update(n_train=len(train_loader.dataset), n_val=len(val_loader.dataset), **kwargs)
        return real_fit(model, train_loader, val_loader, **kwargs)

    monkeypatch.setattr(mnist_loss, "fit", spy)
    # Asking for up to 500 training samples gets the 200 of the small (test) split.
    config = MnistLossConfig(swap=True, dropout=False, epochs=2, subset=(500, 100), device="cpu")
    model, history = run(config, checkpoint=None, verbose=False)
    assert isinstance(model, MnistNet)
    assert seen["n_train"] == FIXTURE_TEST and seen["n_val"] == 100
    assert seen["eval_train"] is True and seen["checkpoint"] is None
    assert [row["epoch"] for row in history.rows] == [1, 2]
    assert {"train_loss", "train_eval_loss", "val_loss", "val_acc", "lr"} <= set(history.columns)
    assert history["lr"] == pytest.approx([1.0, 0.7])  # StepLR(step_size=1, gamma=0.7)
    assert history["train_eval_loss"][1] < history["train_eval_loss"][0]
    assert history["val_loss"][1] < history["val_loss"][0]


def test_checkpoint_name_separates_experiments(smoke):
    names = {
        MnistLossConfig(swap=s, dropout=d, subset=n).name
        for s in (False, True)
        for d in (False, True)
        for n in (None, 100)
    }
    assert len(names) == 8
    assert MnistLossConfig(epochs=3).name != MnistLossConfig(epochs=14).name
    assert MnistLossConfig(device="cpu").name == MnistLossConfig(device="cuda").name
    assert MnistLossConfig(swap=True, dropout=False).name.startswith("mnist_swap_nodropout_")


def test_lab_rerun_loads_the_finished_training_instead_of_training(smoke, monkeypatch, capsys):
    config = MnistLossConfig(swap=True, epochs=1, subset=64, device="cpu")
    path = checkpoint_path("01_mnist_loss_curves", config.name)
    folder = smoke / "runs" / "smoke" / "01_mnist_loss_curves" / "checkpoints"
    assert path == folder / f"{config.name}.pt"
    first_model, first = run(config, checkpoint=path, verbose=False)
    assert path.is_file()
    calls = []
    monkeypatch.setattr("coursekit.train.train_epoch", lambda *a, **k: calls.append(1))
    monkeypatch.setenv("COURSEKIT_PROGRESS", "text")
    model, again = run(config, checkpoint=path)
    assert calls == []  # nothing was trained
    assert "déjà entraîné" in capsys.readouterr().out
    assert again.rows == first.rows
    for a, b in zip(model.state_dict().values(), first_model.state_dict().values(), strict=True):
        assert a.equal(b)


def test_retrain_trains_again(smoke, monkeypatch):
    config = MnistLossConfig(swap=True, epochs=1, subset=64, device="cpu")
    path = checkpoint_path("01_mnist_loss_curves", config.name)
    run(config, checkpoint=path, verbose=False)
    calls = []
    real = mnist_loss.fit

    def spy(*args, **kwargs):
        calls.append(kwargs["restart"])
        return real(*args, **kwargs)

    monkeypatch.setattr(mnist_loss, "fit", spy)
    _, history = run(config, checkpoint=path, retrain=True, verbose=False)
    assert calls == [True] and len(history) == 1


def test_the_full_profile_is_the_recipe_and_the_quick_one_keeps_the_swap():
    table = mnist_loss.PROFILES
    assert set(table) == {"séance", "complet"}
    recipe = MnistLossConfig()
    assert table["complet"] == {"epochs": recipe.epochs, "subset": recipe.subset}
    assert table["complet"] == {"epochs": 14, "subset": None}  # the sheet's 14 epochs, all data
    quick = table["séance"]
    assert 1 <= quick["epochs"] < 14
    n_train, n_test = mnist_loss.subset_sizes(quick["subset"], 60_000, 10_000)
    assert n_test < n_train  # swapped, the quick run still learns on the smaller set
