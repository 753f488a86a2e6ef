import pytest
import torch
from torch import nn

from coursekit.fashion.models import LeNet5
from coursekit.models import count_parameters


def test_plain_lenet5_has_44426_parameters_and_a_16x4x4_flatten():
    model = LeNet5()
    assert count_parameters(model) == 44_426
    assert model.flat_features == 16 * 4 * 4
    x = torch.randn(3, 1, 28, 28)
    assert model.features(x).shape == (3, 256)
    assert model(x).shape == (3, 10)


def test_by_hand_count_matches_the_layers():
    convs = (25 * 6 + 6) + (6 * 25 * 16 + 16)
    dense = (256 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    by_hand = convs + dense
    assert by_hand == count_parameters(LeNet5()) == 44_426


@pytest.mark.parametrize("kwargs", [{"input_size": 32}, {"padding": 2}])
def test_32x32_geometry_gives_the_classic_61706(kwargs):
    model = LeNet5(**kwargs)
    assert count_parameters(model) == 61_706
    assert model.flat_features == 16 * 5 * 5
    side = kwargs.get("input_size", 28)
    assert model(torch.randn(2, 1, side, side)).shape == (2, 10)


def test_outputs_are_logits_not_probabilities():
    torch.manual_seed(0)
    out = LeNet5()(torch.randn(4, 1, 28, 28))
    assert not torch.allclose(out.sum(dim=1), torch.ones(4))
    assert (out < 0).any()


def test_dropout_sits_between_c1_c2_and_f3_f4_and_only_acts_in_train_mode():
    model = LeNet5(dropout=0.5)
    assert isinstance(model.drop_conv, nn.Dropout) and model.drop_conv.p == 0.5
    assert isinstance(model.drop, nn.Dropout) and model.drop.p == 0.5
    assert count_parameters(model) == 44_426
    x = torch.randn(8, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    assert not torch.equal(model(x), model(x))


def test_conv_dropout_can_differ_from_the_dense_one():
    model = LeNet5(dropout=0.5, conv_dropout=0.0)
    assert isinstance(model.drop_conv, nn.Identity) and model.drop.p == 0.5


def test_batchnorm_between_the_two_convolutions():
    model = LeNet5(batchnorm=True)
    assert isinstance(model.bn1, nn.BatchNorm2d) and model.bn1.num_features == 6
    assert isinstance(model.bn2, nn.Identity)
    assert count_parameters(model) == 44_426 + 2 * 6  # gamma and beta per channel
    both = LeNet5(batchnorm="convs")
    assert isinstance(both.bn2, nn.BatchNorm2d) and count_parameters(both) == 44_426 + 2 * 22
    assert both(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    ("channels", "hidden", "expected"), [((16, 32), (84, 64), 62_526), ((24, 48), (40, 40), 62_426)]
)
def test_wider_variants_stay_lenet_sized(channels, hidden, expected):
    model = LeNet5(channels=channels, hidden=hidden, batchnorm="convs")
    assert count_parameters(model) == expected < 65_000
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="batchnorm"):
        LeNet5(batchnorm="everywhere")
    with pytest.raises(ValueError, match="too small"):
        LeNet5(input_size=12)
