"""Notebook 06's networks and box metrics, on hand-made cases."""

import math

import pytest
import torch
from torchvision.ops import box_iou

from coursekit.balls.data import BOX_SCALE
from coursekit.balls.metrics import (
    COCO_THRESHOLDS,
    average_precision,
    colour_set_accuracy,
    mean_average_precision,
    mean_iou,
    paired_iou,
)
from coursekit.balls.models import (
    FAST_LAYERS,
    HEATMAP_LAYERS,
    MOVE_SCALE,
    REPORT_LAYERS,
    BallDetector,
    Forecaster,
    HeatmapHead,
    cell_centres,
    colour_network,
    contact_gaps,
    decode,
    head_output,
    output_size,
    soft_argmax,
    standardize,
)


@pytest.mark.parametrize("layers", [FAST_LAYERS, HEATMAP_LAYERS], ids=["fast", "heatmap"])
@pytest.mark.parametrize("layout,size", [("colors", 9), ("three", 21), ("nine", 45)])
def test_detector_outputs_follow_the_layout(layers, layout, size):
    assert output_size(layout) == size
    model = BallDetector(layers, layout).eval()
    images = torch.randint(0, 256, (2, 3, 100, 100), dtype=torch.uint8)
    out = model(images)
    assert out.shape == (2, size)
    assert torch.allclose(out, model(standardize(images)))


def test_building_leaves_batchnorm_statistics_untouched():
    model = BallDetector(FAST_LAYERS, "nine")
    assert model.training
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        assert int(bn.num_batches_tracked) == 0 and torch.all(bn.running_var == 1)


def test_standardized_pixels_have_unit_scale():
    from coursekit.balls.data import generate_images

    x = standardize(torch.from_numpy(generate_images(50, seed=2).images).permute(0, 3, 1, 2))
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.3
    assert ((x.std(dim=(0, 2, 3)) - 1).abs() < 0.3).all()


def test_the_report_backbone_builds():
    assert BallDetector(REPORT_LAYERS, "nine")(torch.zeros(1, 3, 100, 100)).shape == (1, 45)
    with pytest.raises(ValueError, match="layout"):
        output_size("four")


def test_the_heatmap_layer_must_end_the_list_on_a_feature_map():
    with pytest.raises(ValueError, match="last"):
        BallDetector((("conv", 8, 3, 4), ("heatmap",), ("fc", 16)))
    with pytest.raises(ValueError, match="feature map"):
        BallDetector((("conv", 8, 3, 4), ("fc", 16), ("heatmap",)))
    with pytest.raises(ValueError, match="layout"):
        BallDetector(HEATMAP_LAYERS, "four")


def test_cell_centres_are_pixel_centres_of_stride_4_cells():
    assert torch.allclose(cell_centres(25)[[0, 1, 24]], torch.tensor([2.0, 6.0, 98.0]))
    assert torch.allclose(cell_centres(100)[:2], torch.tensor([0.5, 1.5]))  # stride 1: pixels


@pytest.mark.parametrize("i,j", [(0, 0), (3, 17), (24, 24), (12, 5)])
def test_soft_argmax_of_a_one_hot_heatmap_is_that_cell(i, j):
    heat = torch.full((1, 2, 25, 25), -1e4)
    heat[0, 0, i, j] = 0.0
    heat[0, 1, j, i] = 0.0  # the transposed cell in a second channel
    values = torch.arange(625.0).view(1, 1, 25, 25).expand(1, 2, 25, 25)
    x, y, v = soft_argmax(heat, values)
    assert torch.allclose(x, torch.tensor([[4 * j + 2.0, 4 * i + 2.0]]))
    assert torch.allclose(y, torch.tensor([[4 * i + 2.0, 4 * j + 2.0]]))
    assert torch.allclose(v, torch.tensor([[25.0 * i + j, 25.0 * j + i]]))


def test_soft_argmax_of_two_equal_peaks_is_their_midpoint():
    heat = torch.full((1, 1, 25, 25), -1e4)
    heat[0, 0, 5, 5] = heat[0, 0, 5, 15] = 0.0
    x, y = soft_argmax(heat)
    assert torch.allclose(x, torch.tensor([[42.0]])) and torch.allclose(y, torch.tensor([[22.0]]))


def test_heatmap_head_reads_the_box_at_the_peak():
    head = HeatmapHead(36)
    with torch.no_grad():  # the 1x1 conv passes its 36 input maps through
        head.conv.weight.copy_(torch.eye(36).view(36, 36, 1, 1))
        head.conv.bias.zero_()
    maps = torch.zeros(1, 4, 9, 25, 25)  # heatmap, dx, dy, radius per colour
    maps[:, 0] = -1e4
    maps[0, 0, 2, 10, 7] = 3.0  # colour 2 at cell (row 10, column 7): centre (30, 42)
    maps[0, 1:3, 2, 10, 7] = torch.tensor([0.5, -1.0])  # offsets: centre (30.5, 41)
    maps[0, 3, 2] = 5.0
    logits, boxes = head(maps.view(1, 36, 25, 25))
    assert logits[0, 2] == 3.0 and logits.shape == (1, 9) and boxes.shape == (1, 9, 4)
    expected = torch.tensor([25.5, 36.0, 35.5, 46.0]) / torch.tensor(BOX_SCALE)
    assert torch.allclose(boxes[0, 2], expected)


def test_untrained_heatmap_head_guesses_the_mean_ball_size():
    model = BallDetector(HEATMAP_LAYERS, "nine").eval()
    _, boxes = model.head(model.layers(torch.zeros(2, 3, 100, 100)))
    pixels = boxes * torch.tensor(BOX_SCALE)
    assert torch.allclose(pixels[..., 2] - pixels[..., 0], torch.tensor(10.5), atol=1e-4)


def test_head_output_gates_nine_boxes_and_gathers_three():
    logits = torch.full((1, 9), -20.0)
    logits[0, [6, 1, 3]] = 20.0
    boxes = torch.arange(36.0).view(1, 9, 4)
    nine = head_output(logits, boxes, "nine")[0, 9:].view(9, 4)
    assert torch.allclose(nine[[1, 3, 6]], boxes[0, [1, 3, 6]])  # present: the box
    assert nine[[0, 2, 4, 5, 7, 8]].abs().max() < 1e-6  # absent: zeros, as in the files
    three = head_output(logits, boxes, "three")
    assert torch.equal(three[0, 9:].view(3, 4), boxes[0, [1, 3, 6]])  # colour order
    assert torch.equal(head_output(logits, boxes, "colors"), logits)


def test_decode_puts_three_boxes_on_the_three_most_probable_colours():
    logits = torch.full((1, 9), -5.0)
    logits[0, [7, 1, 4]] = torch.tensor([3.0, 2.0, 1.0])
    boxes = torch.tensor([[0.1, 0.1, 0.2, 0.2], [0.3, 0.3, 0.4, 0.4], [0.5, 0.5, 0.6, 0.6]])
    probs, full = decode(torch.cat([logits, boxes.view(1, 12)], dim=1), "three")
    assert torch.isnan(full[0, [0, 2, 3, 5, 6, 8]]).all()
    scale = torch.tensor([89.0, 88.0, 99.0, 99.0])
    assert torch.allclose(full[0, 1], boxes[0] * scale)  # colours in colour order: 1, 4, 7
    assert torch.allclose(full[0, 7], boxes[2] * scale)
    assert torch.allclose(probs, logits.sigmoid())


def test_velocity_residual_starts_from_the_constant_velocity_guess():
    model = Forecaster(hidden=(8,), residual="velocity")  # untrained: exactly the baseline
    x = torch.randn(5, 19 * 12 + 9)
    steps = x[:, : 19 * 12].view(5, 19, 3, 4)
    assert torch.allclose(model(x), 2 * steps[:, -1] - steps[:, -2])
    assert Forecaster(hidden=(16, 8))(x).shape == (5, 3, 4)


def test_moves_inputs_hold_the_last_step_and_the_moves():
    steps = torch.arange(19.0)[None, :, None].expand(2, 19, 12) * 0.01  # moves 0.01 per step
    presence = torch.zeros(2, 9)
    presence[:, [0, 4, 8]] = 1
    x = torch.cat([steps.flatten(1), presence], dim=1)
    model = Forecaster(hidden=(8,), residual="velocity", inputs="moves")
    seen = model.features(x)
    assert seen.shape == (2, 12 + 18 * 12 + 9)
    assert torch.allclose(seen[:, :12], steps[:, -1])
    assert torch.allclose(seen[:, 12:-9], torch.full((2, 18 * 12), 0.01 * MOVE_SCALE))
    assert torch.equal(seen[:, -9:], presence)
    assert torch.allclose(model(x), 2 * steps[:, -1].view(2, 3, 4) - steps[:, -2].view(2, 3, 4))
    with pytest.raises(ValueError, match="inputs"):
        Forecaster(inputs="speeds")


def test_contact_gaps_by_hand():
    boxes = torch.tensor([[[10.0, 10, 20, 20], [20, 10, 30, 20], [90, 40, 100, 50]]])
    gaps = contact_gaps(boxes)  # disc 0 touches disc 1; disc 2 touches the right wall
    assert torch.allclose(gaps[0, :4], torch.tensor([10.0, 10, 80, 80]))
    assert torch.allclose(gaps[0, 8:12], torch.tensor([90.0, 40, 0, 50]))
    pair_02 = (80**2 + 30**2) ** 0.5 - 10  # centres (15, 15) and (95, 45), radii 5
    pair_12 = (70**2 + 30**2) ** 0.5 - 10  # centres (25, 15) and (95, 45)
    assert torch.allclose(gaps[0, 12:], torch.tensor([0.0, pair_02, pair_12]))
    model = Forecaster(hidden=(8,), residual="velocity", inputs="contacts")
    x = torch.rand(4, 19 * 12 + 9)
    assert model.features(x).shape == (4, 19 * 12 + 9 + 15)
    assert model(x).shape == (4, 3, 4)


def test_paired_iou_is_the_diagonal_of_box_iou():
    a = torch.rand(20, 2) * 50
    b = torch.rand(20, 2) * 50
    boxes_a = torch.cat([a, a + 10 + torch.rand(20, 2) * 10], dim=1)
    boxes_b = torch.cat([b, b + 10 + torch.rand(20, 2) * 10], dim=1)
    assert torch.allclose(paired_iou(boxes_a, boxes_b), box_iou(boxes_a, boxes_b).diagonal())


def test_paired_iou_hand_cases():
    box = torch.tensor([0.0, 0.0, 10.0, 10.0])
    half = torch.tensor([5.0, 0.0, 15.0, 10.0])  # overlap 50, union 150
    far = torch.tensor([20.0, 20.0, 30.0, 30.0])
    nan = torch.full((4,), float("nan"))
    got = paired_iou(torch.stack([box, box, box, box]), torch.stack([box, half, far, nan]))
    assert torch.allclose(got, torch.tensor([1.0, 1 / 3, 0.0, 0.0]))


def test_colour_set_accuracy_needs_the_exact_set():
    presence = torch.tensor([[1.0, 1, 1, 0, 0, 0, 0, 0, 0]] * 2)
    logits = torch.where(presence > 0, 4.0, -4.0)
    logits[1, 3] = 1.0  # one extra colour: the whole set is wrong
    assert colour_set_accuracy(logits, presence).item() == 0.5


def test_average_precision_hand_cases():
    assert average_precision([0.9, 0.8], [True, True], 2) == 1.0
    # ranks: TP, FP, TP -> precision 1 at recall 1/2, 2/3 at recall 1
    assert math.isclose(average_precision([0.9, 0.8, 0.7], [True, False, True], 2), 0.5 + 1 / 3)
    assert math.isclose(average_precision([0.9], [True], 4), 0.25)  # 3 balls never detected
    # precision is made non-increasing: FP first then TP gives 1/2 over the whole recall
    assert math.isclose(average_precision([0.9, 0.8], [False, True], 1), 0.5)
    assert math.isnan(average_precision([], [], 0))


def test_map_and_mean_iou_on_perfect_and_shifted_boxes():
    presence = torch.zeros(2, 9)
    presence[0, [0, 1, 2]] = 1
    presence[1, [2, 3, 4]] = 1
    true = torch.zeros(2, 9, 4)
    true[presence > 0] = torch.tensor([10.0, 10.0, 20.0, 20.0])
    scores = presence * 0.8 + 0.1
    assert mean_average_precision(scores, true, presence, true, COCO_THRESHOLDS) == 1.0
    shifted = true.clone()
    shifted[..., [0, 2]] += 2.0  # IoU 80 / 120 = 2/3 with the true box
    assert math.isclose(mean_iou(shifted, true, presence), 2 / 3, rel_tol=1e-6)
    assert mean_average_precision(scores, shifted, presence, true) == 1.0  # @0.5
    passed = sum(t <= 2 / 3 for t in COCO_THRESHOLDS) / len(COCO_THRESHOLDS)
    assert math.isclose(
        mean_average_precision(scores, shifted, presence, true, COCO_THRESHOLDS), passed
    )
    no_box = true.clone()
    no_box[0, 0] = float("nan")  # ball of colour 0 not detected: IoU 0, AP of colour 0 is 0
    assert math.isclose(mean_iou(no_box, true, presence), 5 / 6, rel_tol=1e-6)
    assert math.isclose(mean_average_precision(scores, no_box, presence, true), 4 / 5)


def test_colour_network_gives_nine_logits_whatever_the_ball_positions():
    net = colour_network().eval()
    assert net(torch.zeros(2, 3, 100, 100)).shape == (2, 9)
    # The global max makes it blind to where a colour is: a shifted image, the same logits.
    x = torch.zeros(1, 3, 100, 100)
    x[..., 20:28, 20:28] = 3.0
    shifted = torch.roll(x, shifts=(40, 40), dims=(2, 3))
    assert torch.allclose(net(x), net(shifted), atol=1e-5)
