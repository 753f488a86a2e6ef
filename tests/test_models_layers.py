import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from coursekit.cifar.models import TutorialNet
from coursekit.models import count_parameters
from coursekit.models.layers import (
    COUNT_COLUMNS,
    NO_WEIGHT,
    count_summary,
    layer_table,
    layer_totals,
    operation_counts,
    pass_operations,
)


class ResidualNet(nn.Module):
    """BatchNorm, a depthwise conv used twice, residual additions, pooling and log_softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 16, 1, groups=4)
        self.act = nn.SiLU()
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.act(self.depthwise(x))
        x = torch.add(x, F.gelu(self.depthwise(x)))
        x = F.avg_pool2d(self.grouped(x), 2)
        return F.log_softmax(self.head(x), dim=1)


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)
    )


def test_layer_table_of_the_tutorial_net():
    model = TutorialNet()
    table = layer_table(model, (3, 32, 32))
    assert count_parameters(model) == 62_006
    assert list(table["layer"]) == [f"F{i}" for i in range(1, 13)]
    assert list(table["type"]) == [
        "Conv2d", "relu", "MaxPool2d", "Conv2d", "relu", "MaxPool2d",
        "flatten", "Linear", "relu", "Linear", "relu", "Linear",
    ]  # fmt: skip
    assert list(table["input"]) == [f"X{i}" for i in range(12)]
    assert list(table["output"]) == [f"X{i}" for i in range(1, 13)]
    assert table.loc[0, "input_shape"] == (3, 32, 32)
    assert list(table["output_shape"]) == [
        (6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5),
        (400,), (120,), (120,), (84,), (84,), (10,),
    ]  # fmt: skip
    free = table["type"].isin(["relu", "MaxPool2d", "flatten"])
    assert (table.loc[free, "weights"] == NO_WEIGHT).all()
    assert (table.loc[free, "n_params"] == 0).all()
    assert list(table.loc[~free, "weights"]) == ["W1", "W2", "W3", "W4", "W5"]
    assert table.loc[0, "weight_shapes"] == "(6, 3, 5, 5) + (6,)"
    assert table.loc[0, "params"] == "3→6, 5×5, stride 1, pad 0"
    assert table.loc[2, "params"] == "2×2, stride 2"
    assert table.loc[7, "params"] == "400→120"
    assert table["n_params"].sum() == 62_006
    assert layer_totals(table) == {
        "operations": 12, "weight_tensors": 5, "data_tensors": 13, "n_params": 62_006
    }  # fmt: skip


def test_counts_of_a_tiny_net_by_hand():
    counts = operation_counts(tiny_net(), (1, 6, 6))
    expected = {
        # Conv2d(1, 2, 3) on 1×6×6 -> 2×4×4 = 32 outputs, each a dot product of 9 terms:
        # 32·9 = 288 mults, 32·8 = 256 adds for the sums + 32 for the bias = 288 adds.
        "F1": (288, 288, 0, 0),
        "F2": (0, 0, 32, 0),  # ReLU: one max(0, x) per value
        "F3": (0, 0, 24, 0),  # MaxPool2d(2): 2×2×2 = 8 outputs, 3 comparisons per 2×2 window
        "F4": (0, 0, 0, 0),  # Flatten
        "F5": (24, 24, 0, 0),  # Linear(8, 3): 3·8 mults, 3·7 adds + 3 for the bias
    }
    for layer, (adds, mults, maxima, other) in expected.items():
        row = counts.loc[layer]
        assert (row["additions"], row["multiplications"], row["maxima"], row["other"]) == (
            adds, mults, maxima, other
        )  # fmt: skip
        assert row["total"] == adds + mults + maxima + other
    total = counts.loc["total"]
    assert (total["additions"], total["multiplications"], total["maxima"]) == (312, 312, 56)
    assert total["total"] == 680
    assert list(counts.index) == ["F1", "F2", "F3", "F4", "F5", "total"]


def test_counts_of_normalization_pooling_and_softmax_by_hand():
    model = nn.Sequential(
        nn.BatchNorm2d(2), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Softmax(dim=1)
    )
    counts = operation_counts(model, (2, 5, 5))
    # BatchNorm folded to x·s + t: one add and one mult for each of the 2·5·5 = 50 values
    assert counts.loc["F1", "additions"] == counts.loc["F1", "multiplications"] == 50
    # 5 -> 3 adaptive windows are [0, 2), [1, 4), [3, 5): lengths 2 + 3 + 2 = 7 per axis,
    # so 7·7 = 49 values read per channel for 9 outputs: 49 - 9 = 40 adds per channel,
    # plus one multiplication by 1/window per output
    assert counts.loc["F2", "additions"] == 2 * 40
    assert counts.loc["F2", "multiplications"] == 2 * 9
    # softmax over C = 18: 17 maxima, 18 + 17 adds, 18 exp + 18 divisions
    assert tuple(counts.loc["F4", ["additions", "maxima", "other"]]) == (35, 17, 36)


def conv_linear_multiplications(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    counts = operation_counts(model, input_shape)
    dot = counts["type"].isin(["Conv2d", "Linear"])
    return int(counts.loc[dot, "multiplications"].sum())


@pytest.mark.parametrize(
    ("net", "input_shape"), [(TutorialNet, (3, 32, 32)), (ResidualNet, (3, 16, 16))]
)
def test_multiplications_match_flop_counter(net: type[nn.Module], input_shape: tuple[int, ...]):
    # FlopCounterMode only counts conv and matmul/addmm, a multiply-accumulate as 2 FLOPs
    model = net().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, *input_shape))
    assert conv_linear_multiplications(model, input_shape) == counter.get_total_flops() // 2


def test_residual_net_table_and_counts():
    model = ResidualNet()
    table = layer_table(model, (3, 16, 16))
    assert table["n_params"].sum() == count_parameters(model)
    adds = table[table["type"] == "add"]
    assert len(adds) == 2
    assert all(len(names.split(", ")) == 2 for names in adds["input"])
    assert all(shape == [(8, 16, 16), (8, 16, 16)] for shape in adds["input_shape"])
    depthwise = table[table["name"] == "depthwise"]
    assert list(depthwise["weights"]) == ["W3", "W3"]
    assert list(depthwise["n_params"]) == [80, 0]  # shared: 8·1·3·3 + 8 counted once
    assert "groups 8" in depthwise["params"].iloc[0]
    assert table["output_shape"].iloc[-1] == (10,)
    counts = operation_counts(model, (3, 16, 16))
    residual = counts[counts["type"] == "add"]
    assert (residual["additions"] == 8 * 16 * 16).all()
    assert (counts[list(COUNT_COLUMNS)] >= 0).all().all()
    assert counts.loc["total", "total"] == counts.drop(index="total")["total"].sum()


def test_module_used_twice_counts_its_parameters_once():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shared(torch.relu(self.shared(x)))

    table = layer_table(Twice(), (4,))
    assert list(table["type"]) == ["Linear", "relu", "Linear"]
    assert list(table["weights"]) == ["W1", NO_WEIGHT, "W1"]
    assert table["n_params"].sum() == 20
    assert layer_totals(table)["weight_tensors"] == 1


def test_train_and_eval_modes_are_restored():
    model = ResidualNet().train()
    model.stem[1].eval()  # a frozen BatchNorm inside a model in train mode
    layer_table(model, (3, 16, 16))
    operation_counts(model, (3, 16, 16))
    assert model.training and model.head.training and not model.stem[1].training


def test_untraceable_model_falls_back_to_hooks():
    class Branching(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 1e9:  # data-dependent control flow: fx cannot trace it
                x = -x
            return self.fc(self.act(self.fc(x)))

    model = Branching().train()
    with pytest.warns(UserWarning, match="falling back to hooks"):
        table = layer_table(model, (4,))
    assert list(table["name"]) == ["fc", "act", "fc"]
    assert list(table["input"]) == ["X0", "X1", "X2"]
    assert table["n_params"].sum() == 20
    assert model.training


def test_a_model_that_cannot_run_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot analyse"):
        layer_table(nn.Linear(3, 2), (4,))


def test_count_summary_scales_the_per_image_total():
    counts = operation_counts(tiny_net(), (1, 6, 6))
    summary = count_summary(counts, batch_size=4, n_images=10, seconds=2.0)
    assert summary["per_image"] == 680
    assert summary["per_batch"] == 4 * 680
    assert summary["per_pass"] == 10 * 680
    assert summary["train_pass_estimate"] == 3 * 10 * 680
    assert summary["ops_per_second"] == pytest.approx(10 * 680 / 2.0)


def test_frozen_weights_are_listed_apart_from_the_trained_ones():
    from coursekit.cifar.models import FinalNet

    model = FinalNet()
    table = layer_table(model, (3, 32, 32))
    whiten = table.iloc[0]
    assert (whiten["name"], whiten["weights"]) == ("whiten", "W1")  # the whitening is visible
    assert whiten["weight_shapes"] == "(24, 3, 2, 2) + (24,)"
    assert (whiten["n_params"], whiten["n_frozen"]) == (24, 288)
    assert table["n_params"].sum() == count_parameters(model)
    assert table["n_params"].sum() + table["n_frozen"].sum() == count_parameters(
        model, trainable_only=False
    )
    assert table.loc[table["name"] != "whiten", "n_frozen"].eq(0).all()


def test_pass_operations_split_by_type():
    counts = operation_counts(tiny_net(), (1, 6, 6))
    forward = pass_operations(counts, n_images=10)
    train = pass_operations(counts, n_images=10, factor=3)
    assert forward["total"] == 10 * 680
    assert forward["maxima"] == 10 * int(counts.loc["total", "maxima"]) > 0
    parts = ("additions", "multiplications", "maxima", "other")
    assert sum(forward[k] for k in parts) == forward["total"]
    assert train == {k: 3 * v for k, v in forward.items()}
