"""The CIFAR-10 networks of notebook 04: parameter counts, shapes, budget, whitening."""

from __future__ import annotations

import pytest
import torch

from coursekit.cifar.models import (
    MAX_PARAMS,
    FinalNet,
    TutorialNet,
    VariantNet,
    check_budget,
    describe_final,
)
from coursekit.models import count_parameters


def test_tutorial_net_has_the_tutorials_62006_parameters():
    model = TutorialNet()
    assert count_parameters(model) == 62_006
    assert model(torch.zeros(3, 3, 32, 32)).shape == (3, 10)


def test_variant_defaults_are_the_tutorial_net():
    torch.manual_seed(0)
    tutorial = TutorialNet()
    torch.manual_seed(0)
    variant = VariantNet()
    assert count_parameters(variant) == 62_006
    assert variant.flat_features == 16 * 5 * 5
    shapes = [tuple(p.shape) for p in variant.parameters()]
    assert shapes == [tuple(p.shape) for p in tutorial.parameters()]
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(variant(x), tutorial(x))  # same layers in the same order


@pytest.mark.parametrize(
    ("kwargs", "flat"),
    [
        ({"channels": (32, 64)}, 64 * 5 * 5),
        ({"extra_conv": 32}, 32 * 5 * 5),
        ({"channels": (6, 16, 32), "padding": 2}, 32 * 4 * 4),
        ({"kernel_size": 3}, 16 * 6 * 6),
        ({"hidden": (256, 128, 64), "activation": "gelu", "batchnorm": True, "dropout": 0.2}, 400),
    ],
)
def test_variants_are_one_line_each(kwargs, flat):
    model = VariantNet(**kwargs)
    assert model.flat_features == flat
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_variant_rejects_bad_options_clearly():
    with pytest.raises(ValueError, match="activation must be one of"):
        VariantNet(activation="swish")
    with pytest.raises(ValueError, match="padding=kernel_size // 2"):
        VariantNet(channels=(6, 16, 32))  # 32 -> 28 -> 14 -> 10 -> 5 -> 1 -> no pool


@pytest.mark.parametrize("depth", [2, 3])
def test_final_net_fits_the_sheets_250000_counting_frozen_weights(depth):
    widths = (32, 80, 95) if depth == 2 else (24, 56, 72)
    model = FinalNet(widths, depth=depth)
    total = count_parameters(model, trainable_only=False)
    assert check_budget(model) == total <= MAX_PARAMS == 250_000
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_final_net_default_count_and_frozen_whitening():
    model = FinalNet()
    frozen = model.whiten.weight.numel()
    assert not model.whiten.weight.requires_grad and frozen == 24 * 3 * 2 * 2
    assert count_parameters(model) == 248_195  # trained by gradient descent
    assert count_parameters(model, trainable_only=False) == 248_195 + frozen == 248_483


def test_the_budget_counts_the_frozen_whitening_weights():
    model = FinalNet()
    trainable = count_parameters(model)
    with pytest.raises(ValueError, match=r"\+ 288 frozen\), over the budget"):
        check_budget(model, limit=trainable)  # the trained weights alone would fit
    # the net: 250,648 trainable + 288 frozen, over the sheet's 250,000
    with pytest.raises(ValueError, match="250,936 parameters"):
        FinalNet(widths=(32, 80, 96))


def test_final_net_over_budget_raises():
    with pytest.raises(ValueError, match="over the budget of 250,000"):
        FinalNet(widths=(32, 64, 128))
    assert count_parameters(FinalNet(widths=(32, 64, 128), max_params=None)) > MAX_PARAMS


def test_the_final_nets_description_is_read_from_the_model():
    plain, skip = describe_final(FinalNet()), describe_final(FinalNet((24, 56, 72), depth=3))
    assert "sans connexion résiduelle" in plain and "2 convolutions 3×3" in plain
    assert "avec connexion résiduelle" in skip and "3 convolutions 3×3" in skip
    assert "largeurs 32, 80, 95" in plain and "(24 filtres, figée)" in plain
    assert "95 → 10" in plain and "0,125" in plain


def test_a_5x5_conv_split_into_two_3x3_keeps_the_geometry():
    model = VariantNet(split=(1,))
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (3, 3), (3, 3)]
    assert model.flat_features == 16 * 5 * 5  # same cropping as one 5x5
    assert count_parameters(model) == 62_006 - (6 * 25 * 16) + 6 * 9 * 16 + 16 * 9 * 16 + 16
    both = VariantNet(split=(0, 1), channels=(6, 16, 32), padding=2)
    assert both.flat_features == 32 * 4 * 4
    with pytest.raises(ValueError, match="split names conv layers"):
        VariantNet(split=(2,))


def test_init_whitening_decorrelates_2x2_patches():
    torch.manual_seed(0)
    mix = torch.tensor([[1.0, 0.8, 0.5], [0.0, 0.6, 0.5], [0.0, 0.0, 0.7]])
    images = torch.einsum("dc,nchw->ndhw", mix, torch.randn(200, 3, 32, 32))
    model = FinalNet()
    model.init_whitening(images)
    with torch.no_grad():
        out = model.whiten(images) - model.whiten.bias.view(1, -1, 1, 1)
    half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = half.T @ half / len(half)
    torch.testing.assert_close(covariance, torch.eye(12), atol=0.02, rtol=0)
    torch.testing.assert_close(out[:, 12:], -out[:, :12])
