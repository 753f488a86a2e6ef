import math

import pytest
import torch
from torch import nn

from coursekit.fashion.models import LeNet5
from coursekit.models.measure import capture_io, feature_stats, parameter_stats


def known_model() -> nn.Module:
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -0.5]]))
        model.bias.copy_(torch.tensor([-1.0, 0.25]))
    return model


def test_parameter_stats_of_a_known_model():
    stats = parameter_stats(known_model(), by_layer=True, near_zero=0.1)
    assert list(stats.index) == ["weight", "bias", "all"]
    values = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, -0.5, -1.0, 0.25])
    row = stats.loc["all"]
    assert row["count"] == 8
    assert row["min"] == -2.0 and row["max"] == 3.0
    assert row["mean"] == pytest.approx(values.mean().item())
    assert row["std"] == pytest.approx(values.std().item())
    assert row["near_zero"] == pytest.approx(1 / 8)
    assert stats.loc["bias", "count"] == 2 and stats.loc["bias", "min"] == -1.0


def test_parameter_stats_default_is_one_row_like_the_sheet():
    stats = parameter_stats(LeNet5())
    assert list(stats.index) == ["all"] and stats.loc["all", "count"] == 44_426


def test_capture_io_sees_the_input_and_output_of_a_layer():
    model = LeNet5(batchnorm=True)
    x = torch.randn(4, 1, 28, 28)
    before, after = capture_io(model, model.bn1, x)
    assert before.shape == after.shape == (4, 6, 24, 24)
    assert torch.allclose(before, model.c1(x))
    assert not model.bn1._forward_hooks  # the hook is removed


def test_batchnorm_features_are_normalized_per_channel_in_train_mode():
    torch.manual_seed(0)
    model = LeNet5(batchnorm=True).train()
    x = 3 * torch.randn(32, 1, 28, 28) + 2
    overall, per_channel = feature_stats(model, model.bn1, x)
    assert list(overall.index) == ["before", "after"]
    assert list(overall.columns) == ["min", "max", "mean", "std"]
    assert per_channel.shape == (6, 4)
    assert per_channel["mean_after"].abs().max() < 1e-4
    assert ((per_channel["std_after"] - 1).abs() < 1e-2).all()
    assert not math.isclose(overall.loc["before", "std"], 1.0, abs_tol=0.05)


def test_capture_io_of_an_unused_module_is_an_error():
    model = LeNet5()
    with pytest.raises(ValueError, match="not called"):
        capture_io(model, nn.Linear(2, 2), torch.randn(1, 1, 28, 28))
