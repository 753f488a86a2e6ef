"""HNet, the DHN-style network, and the assignment scores (weighted F1 on hand-made cases)."""

import math

import pytest
import torch

from coursekit.hungarian.metrics import (
    AssignmentScores,
    assignment_accuracy,
    cell_weights,
    class_scores,
    weighted_confusion,
    weighted_f1,
)
from coursekit.hungarian.models import AttentionLayer, DeepHungarianNet, HNet, three_outputs
from coursekit.models.measure import count_parameters


def hnet_parameters(m: int, h: int = 128) -> int:
    gru = 3 * (h * m + h * h + 2 * h)  # input and hidden weights, two biases, 3 gates
    return gru + 3 * h * h + (h * m + m)  # Q, K, V without bias; the output Linear


@pytest.mark.parametrize("max_doas", [2, 4, 10])
def test_hnet_shapes_and_parameter_count(max_doas):
    model = HNet(max_doas)
    x = torch.rand(5, max_doas, max_doas)
    assert model(x).shape == (5, max_doas, max_doas)
    assert count_parameters(model) == hnet_parameters(max_doas)
    flat, rows, cols = three_outputs(model(x))
    assert flat.shape == (5, max_doas**2) and rows.shape == cols.shape == (5, max_doas)


def test_two_doa_hnet_has_about_100k_parameters():
    assert count_parameters(HNet(2)) == 100_098


def test_ablation_switches_remove_what_they_say():
    full = count_parameters(HNet(3))
    no_attention = HNet(3, attention=False)
    assert no_attention.attn is None and count_parameters(no_attention) == full - 3 * 128**2
    no_gru = HNet(3, gru=False)
    assert no_gru.gru is None and count_parameters(no_gru) == full - hnet_parameters(3) + (
        3 * 128**2 + (128 * 3 + 3) + (3 * 128 + 128)
    )
    assert HNet(3, hidden=32)(torch.rand(2, 3, 3)).shape == (2, 3, 3)
    assert HNet(3, gru_layers=2).gru.num_layers == 2


def test_clip_input_reads_distances_clipped_at_the_threshold():
    torch.manual_seed(0)
    raw, clipped = HNet(3), HNet(3, clip_input=3.0)
    clipped.load_state_dict(raw.state_dict())
    x = torch.rand(4, 3, 3) * 10
    torch.testing.assert_close(clipped(x), raw(x.clamp(max=3.0)))
    dhn_raw, dhn_clip = DeepHungarianNet(2, hidden=8), DeepHungarianNet(2, hidden=8, clip_input=3.0)
    dhn_clip.load_state_dict(dhn_raw.state_dict())
    torch.testing.assert_close(dhn_clip(x[:, :2, :2]), dhn_raw(x[:, :2, :2].clamp(max=3.0)))


def test_attention_is_softmax_of_qk_applied_to_v():
    layer = AttentionLayer(4, 6, 5)
    x = torch.randn(2, 4, 3)
    q = torch.einsum("ki,bil->bkl", layer.conv_q.weight[:, :, 0], x)
    k = torch.einsum("ki,bil->bkl", layer.conv_k.weight[:, :, 0], x)
    v = torch.einsum("ki,bil->bkl", layer.conv_v.weight[:, :, 0], x)
    weights = torch.softmax(q.transpose(1, 2) @ k, dim=2)
    torch.testing.assert_close(layer(x), (weights @ v.transpose(1, 2)).transpose(1, 2))


def test_three_outputs_are_flat_row_max_and_column_max():
    logits = torch.tensor([[[1.0, -2.0], [3.0, 0.5]]])
    flat, rows, cols = three_outputs(logits)
    assert flat.tolist() == [[1.0, -2.0, 3.0, 0.5]]
    assert rows.tolist() == [[1.0, 3.0]] and cols.tolist() == [[3.0, 0.5]]


def test_hnet_names_a_wrong_input_shape():
    with pytest.raises(ValueError, match=r"expects \(B, 2, 2\)"):
        HNet(2)(torch.rand(4, 3, 3))
    with pytest.raises(ValueError, match="hidden"):
        HNet(2, hidden=0)


@pytest.mark.parametrize("max_doas", [2, 5])
def test_dhn_shapes_and_row_then_column_reading(max_doas):
    model = DeepHungarianNet(max_doas, hidden=16, fc=(8,))
    x = torch.rand(3, max_doas, max_doas)
    assert model(x).shape == (3, max_doas, max_doas)
    assert model.row_gru.bidirectional and model.row_gru.num_layers == 2
    assert model.col_gru.input_size == 32


def test_dhn_default_sizes_follow_xu():
    model = DeepHungarianNet(2)
    assert model.row_gru.hidden_size == 256
    widths = [m.out_features for m in model.mlp if isinstance(m, torch.nn.Linear)]
    assert model.mlp[0].in_features == 512 and widths == [256, 64, 1]


# --- assignment scores: hand-made cases, no sklearn -----------------------------------


def test_weighted_f1_of_a_hand_case_without_weights():
    target = torch.tensor([[[1, 0], [0, 0]]])
    predicted = torch.tensor([[[1, 1], [0, 0]]])
    # class 1: TP 1, FP 1, FN 0 -> F1 2/3; class 0: TP 2, FN 1 -> F1 4/5; supports 1 and 3
    assert weighted_f1(predicted, target) == pytest.approx((2 / 3 * 1 + 4 / 5 * 3) / 4)
    scores = class_scores(weighted_confusion(predicted, target))
    assert scores["precision_1"] == pytest.approx(0.5) and scores["recall_1"] == 1.0
    assert scores["precision_0"] == 1.0 and scores["recall_0"] == pytest.approx(2 / 3)


def test_weighted_f1_of_a_hand_case_with_cell_weights():
    target = torch.tensor([[[1, 0], [0, 0]]])
    predicted = torch.tensor([[[1, 1], [0, 0]]])
    weights = torch.tensor([[0.5, 0.25], [0.25, 0.0]])
    # class 1: TP .5, FP .25 -> F1 0.8; class 0: TP .25, FN .25 -> F1 2/3; supports .5, .5
    assert weighted_f1(predicted, target, weights) == pytest.approx(0.5 * 0.8 + 0.5 * 2 / 3)


def test_perfect_and_all_zero_cases():
    target = torch.tensor([[[1, 0], [0, 1]], [[0, 0], [0, 0]]])
    assert weighted_f1(target, target) == 1.0
    zeros = torch.zeros_like(target)
    # predicting no association: class 1 has F1 0, class 0 has TP 6, FN 0, FP 2 -> 12/14
    assert weighted_f1(zeros, target) == pytest.approx((6 * 12 / 14 + 2 * 0) / 8)
    assert weighted_f1(zeros, zeros) == 1.0  # zero_division=1; class 1 has no support
    assert assignment_accuracy(zeros, target) == 0.5


def test_scores_add_up_over_batches():
    torch.manual_seed(0)
    logits = torch.randn(10, 3, 3)
    target = (torch.rand(10, 3, 3) > 0.7).float()
    weights = cell_weights(target)
    whole, parts = AssignmentScores(weights), AssignmentScores(weights)
    whole.update(logits, target)
    parts.update(logits[:4], target[:4])
    parts.update(logits[4:], target[4:])
    assert whole.compute() == pytest.approx(parts.compute())
    expected = weighted_f1(torch.sigmoid(logits) > 0.5, target, weights)
    assert whole.compute()["f1"] == pytest.approx(expected)
    assert whole.compute()["matrices"] == 10


def test_cell_weights_and_errors():
    labels = torch.tensor([[[1, 0], [0, 1]], [[0, 1], [0, 0]]])
    assert cell_weights(labels).tolist() == [[0.5, 0.5], [0.0, 0.5]]
    with pytest.raises(ValueError, match="same"):
        weighted_confusion(torch.zeros(1, 2, 2), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="nothing to score"):
        AssignmentScores().compute()


# Degenerate matrices, scored as sklearn's f1_score / precision_recall_fscore_support with
# average='weighted', labels (0, 1) and zero_division=1 would: a class with nothing to divide
# by (no prediction for precision, no support for recall, neither for F1) scores 1.
IDENTITY = torch.tensor([[[1, 0], [0, 1]]])
NONE = torch.zeros_like(IDENTITY)
ALL = torch.ones_like(IDENTITY)
DEGENERATE = {
    # name: (predicted, target, expected per-class scores, expected weighted F1)
    "no association, none predicted": (NONE, NONE, {
        "precision_0": 1.0, "recall_0": 1.0, "f1_0": 1.0, "support_0": 4.0,
        "precision_1": 1.0, "recall_1": 1.0, "f1_1": 1.0, "support_1": 0.0}, 1.0),
    "all associated, all predicted": (ALL, ALL, {
        "precision_0": 1.0, "recall_0": 1.0, "f1_0": 1.0, "support_0": 0.0,
        "precision_1": 1.0, "recall_1": 1.0, "f1_1": 1.0, "support_1": 4.0}, 1.0),
    # class 1: TP 0, FP 0, FN 2 -> precision 0/0 = 1, recall 0, F1 0
    # class 0: TP 2, FP 2, FN 0 -> precision 1/2, recall 1, F1 4/6; weighted (2*4/6 + 2*0)/4
    "nothing predicted": (NONE, IDENTITY, {
        "precision_0": 0.5, "recall_0": 1.0, "f1_0": 2 / 3, "support_0": 2.0,
        "precision_1": 1.0, "recall_1": 0.0, "f1_1": 0.0, "support_1": 2.0}, 1 / 3),
    # class 1: TP 0, FP 2, FN 0 -> precision 0, recall 0/0 = 1, F1 0 (support 0: weight 0)
    # class 0: TP 2, FP 0, FN 2 -> precision 1, recall 1/2, F1 4/6; weighted 4*(4/6)/4
    "nothing true": (IDENTITY, NONE, {
        "precision_0": 1.0, "recall_0": 0.5, "f1_0": 2 / 3, "support_0": 4.0,
        "precision_1": 0.0, "recall_1": 1.0, "f1_1": 0.0, "support_1": 0.0}, 2 / 3),
    # class 0: TP 0, FP 0, FN 4 -> precision 0/0 = 1, recall 0, F1 0; class 1 never true
    "nothing true, everything predicted": (ALL, NONE, {
        "precision_0": 1.0, "recall_0": 0.0, "f1_0": 0.0, "support_0": 4.0,
        "precision_1": 0.0, "recall_1": 1.0, "f1_1": 0.0, "support_1": 0.0}, 0.0),
    # class 0: TP 0, FP 4, FN 0 -> precision 0, recall 0/0 = 1, F1 0 (support 0)
    # class 1: TP 0, FP 0, FN 4 -> precision 0/0 = 1, recall 0, F1 0
    "all true, nothing predicted": (NONE, ALL, {
        "precision_0": 0.0, "recall_0": 1.0, "f1_0": 0.0, "support_0": 0.0,
        "precision_1": 1.0, "recall_1": 0.0, "f1_1": 0.0, "support_1": 4.0}, 0.0),
}  # fmt: skip


@pytest.mark.parametrize("case", DEGENERATE)
def test_degenerate_matrices_score_as_sklearn_with_zero_division_one(case):
    predicted, target, expected, f1 = DEGENERATE[case]
    scores = class_scores(weighted_confusion(predicted, target))
    assert {k: scores[k] for k in expected} == pytest.approx(expected)
    assert scores["f1"] == pytest.approx(f1) and weighted_f1(predicted, target) == pytest.approx(f1)
    # the same through the batch accumulator (logits of +-5 give the 0/1 predictions)
    accumulated = AssignmentScores()
    accumulated.update(10.0 * predicted.float() - 5.0, target.float())
    done = accumulated.compute()
    assert {k: done[k] for k in expected} == pytest.approx(expected)
    assert done["f1_unweighted"] == pytest.approx(f1) and done["f1"] == pytest.approx(f1)


def test_cell_weights_can_empty_a_class_and_zero_support_gives_nan():
    # weights of the identity labels: off-diagonal cells weigh 0, so class 0 has no weighted
    # support: TP 0, FP 2 (the diagonal), FN 0 -> precision 0, recall 0/0 = 1, F1 0
    weights = cell_weights(IDENTITY)
    scores = class_scores(weighted_confusion(NONE, IDENTITY, weights))
    assert scores["support_0"] == 0.0 and scores["support_1"] == 2.0
    assert scores["precision_0"] == 0.0 and scores["recall_0"] == 1.0 and scores["f1_0"] == 0.0
    assert scores["precision_1"] == 1.0 and scores["recall_1"] == 0.0 and scores["f1"] == 0.0
    # every weight zero: nothing supports either class, the weighted F1 is undefined
    assert math.isnan(weighted_f1(IDENTITY, IDENTITY, torch.zeros(2, 2)))
