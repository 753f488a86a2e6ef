"""Notebook 06's lesson: targets, losses, baselines, rollout, and trainings that learn."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coursekit.balls import data as balls
from coursekit.balls import lesson as lb
from coursekit.balls.models import FAST_LAYERS, HEATMAP_LAYERS, MEAN_RADIUS

TINY_LAYERS = (("conv", 8, 5, 4), ("conv", 16, 3, 2), ("fc", 64))


@pytest.fixture(scope="module")
def images():
    return balls.generate_images(400, seed=0)


@pytest.fixture(scope="module")
def sequences():
    return balls.generate_sequences(1200, seed=0)


def test_detector_targets_per_layout(images):
    index = np.arange(5)
    nine = lb.detector_targets(images, index, "nine")
    three = lb.detector_targets(images, index, "three")
    assert nine.shape == (5, 45) and three.shape == (5, 21)
    assert lb.detector_targets(images, index, "colors").shape == (5, 9)
    scale = torch.tensor(balls.BOX_SCALE)
    assert torch.allclose(nine[:, 9:].view(5, 9, 4) * scale, torch.from_numpy(images.boxes[:5]))
    first = int(np.nonzero(images.presence[0])[0][0])
    assert torch.allclose(three[0, 9:13] * scale, torch.from_numpy(images.boxes[0, first]))


def test_detection_loss_is_bce_times_scale_plus_mse():
    output, target = torch.randn(4, 45), torch.rand(4, 45).round()
    bce = F.binary_cross_entropy_with_logits(output[:, :9], target[:, :9])
    mse = ((output[:, 9:] - target[:, 9:]) ** 2).mean()
    assert torch.allclose(lb.detection_loss("nine", 0.1)(output, target), 0.1 * bce + mse)
    assert torch.allclose(lb.detection_loss("colors")(output[:, :9], target[:, :9]), bce)


def test_baselines_formulas():
    t = torch.arange(19.0).view(1, 19, 1, 1)
    context = (torch.tensor([1.0, 2.0, 11.0, 12.0]) + 0.5 * t).expand(2, 19, 3, 4)
    assert torch.equal(lb.last_position(context), context[:, 18])
    assert torch.allclose(lb.constant_velocity(context), context[:, 18] + 0.5)


def test_rollout_and_scores_on_a_straight_line():
    t = torch.arange(25.0).view(1, 25, 1, 1)
    boxes = (torch.tensor([10.0, 10.0, 20.0, 20.0]) + 1.5 * t).expand(3, 25, 3, 4)
    scores = lb.forecast_scores(
        {"cv": lb.constant_velocity, "last": lb.last_position}, boxes, context=19, horizon=6
    )
    assert scores["cv"]["ade"] < 1e-4 and scores["cv"]["fde"] < 1e-4
    moved = 1.5 * np.sqrt(2)  # the centre moves 1.5 px along x and along y per step
    assert np.allclose(scores["last"]["by_horizon"], moved * np.arange(1, 7), atol=1e-4)
    assert np.isclose(scores["last"]["step_error"], moved)


def test_centre_error_in_pixels():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[3.0, 4.0, 13.0, 14.0]])
    assert torch.allclose(lb.centre_error(a, b), torch.tensor([5.0]))


def test_forecaster_learns_and_beats_the_last_position(sequences, tmp_path):
    split = balls.split_indices(len(sequences), seed=0)
    config = lb.ForecastConfig(hidden=(128, 128), residual="velocity", epochs=4, device="cpu")
    model, history = lb.run_forecaster(
        config, sequences, split, checkpoint=tmp_path / "f.pt", verbose=False
    )
    assert history["val_loss"][-1] < history["val_loss"][0]
    boxes = torch.from_numpy(lb.sequence_boxes(sequences, split["val"]))
    presence = torch.from_numpy(sequences.presence[split["val"]])
    scores = lb.forecast_scores(
        {"model": lb.model_predictor(model, presence), "last": lb.last_position}, boxes, 19, 1
    )
    assert scores["model"]["step_error"] < scores["last"]["step_error"]
    again, h2 = lb.run_forecaster(config, sequences, split, checkpoint=tmp_path / "f.pt",
                                  verbose=False)  # fmt: skip
    assert h2.rows == history.rows  # a finished checkpoint is loaded, not trained again


def test_simulator_forecast_knows_what_is_predictable(sequences):
    boxes = torch.from_numpy(lb.sequence_boxes(sequences, np.arange(300)))
    physics = {k: v[:300] for k, v in sequences.physics.items()}
    error = lambda pred: lb.centre_error(pred, boxes[:, 19]).mean().item()  # noqa: E731
    velocity = error(lb.constant_velocity(boxes[:, :19]))
    known = error(lb.simulator_forecast(boxes[:, :19], physics))
    guessed = error(lb.simulator_forecast(boxes[:, :19], physics, ("mass", "restitution")))
    assert known < 0.3 * velocity  # the same physics, one step: only the last move's
    assert known < guessed < velocity  # collisions inside it blur the speed read
    with pytest.raises(ValueError, match="unknown"):
        lb.simulator_forecast(boxes[:, :19], physics, ("radius",))


def test_absolute_error_keeps_the_free_flights_precise(sequences, one_thread):
    # ForecastConfig's claim: trained on the square error the network hedges on the rare
    # collisions and loses the common case; on the absolute error or the distance it keeps
    # it. Measured on held-out sequences, by the median distance (the typical, collision-free
    # step).
    split = balls.split_indices(len(sequences), seed=0)
    boxes = torch.from_numpy(lb.sequence_boxes(sequences, split["val"]))
    presence = torch.from_numpy(sequences.presence[split["val"]])
    median = {}
    for loss in ("mse", "l1", "distance"):
        config = lb.ForecastConfig(hidden=(128, 128), residual="velocity", inputs="contacts",
                                   loss=loss, epochs=4, device="cpu")  # fmt: skip
        model, history = lb.run_forecaster(config, sequences, split, checkpoint=None,
                                           verbose=False)  # fmt: skip
        if loss != "mse":
            assert history["val_loss"][-1] < history["val_loss"][0]
        pred = lb.model_predictor(model, presence)(boxes[:, :19])
        median[loss] = lb.centre_error(pred, boxes[:, 19]).median().item()
    assert median["l1"] < 0.5 * median["mse"]
    assert median["distance"] < 0.5 * median["mse"]
    with pytest.raises(ValueError, match="loss"):
        lb.forecast_loss("huber")
    with pytest.raises(ValueError, match="loss"):
        lb.ForecastConfig(loss="huber")


def test_colour_detector_generalizes_to_held_out_images(one_thread):
    # Measured on images it never saw, in eval mode, as the notebook does. Before the
    # fix (inputs /255, BatchNorm running variance far too large, a flatten head that
    # memorizes positions) validation stayed at chance: set accuracy ~1/84, BCE above
    # the constant guess's 0.64, while training accuracy rose.
    data = balls.generate_images(640, seed=1)
    split = balls.split_indices(len(data), (0.75, 0.125, 0.125), seed=0)
    # 5 epochs: after 3, validation set accuracy was 0.03 to 0.43 by seed (and CPU: the
    # same seed passed on one machine, failed on another); after 5, 0.40 to 0.76.
    config = lb.DetectorConfig(layout="colors", layers=FAST_LAYERS, lr=3e-3, epochs=5,
                               batch_size=16, device="cpu")  # fmt: skip
    model, history = lb.run_detector(config, data, split, checkpoint=None, verbose=False)
    prior = F.binary_cross_entropy(torch.full((1, 9), 1 / 3), torch.ones(1, 9) / 3).item()
    assert history["val_loss"][-1] < 0.75 * prior  # fit()'s own validation path
    scores = lb.detector_scores(model, data, split["val"], "colors")
    assert scores["set_acc"] > 5 / 84  # chance: 1 colour set out of C(9, 3) = 84
    assert scores["colour_acc"] > 6 / 9 + 0.08  # "no colour at all" scores 6/9 per colour


def test_heatmap_head_learns_boxes_on_held_out_images(one_thread):
    # Same data, split and settings, validation mean IoU (measured): the global-max head
    # (FAST_LAYERS) 0.0017 and mAP@0.5 0.0 -- position is thrown away -- ; the heatmap head
    # 0.55 and mAP@0.5 0.69.
    data = balls.generate_images(1000, seed=1)
    split = balls.split_indices(len(data), (0.8, 0.1, 0.1), seed=0)
    config = lb.DetectorConfig(layout="nine", layers=HEATMAP_LAYERS, lr=3e-3, epochs=4,
                               batch_size=16, device="cpu")  # fmt: skip
    model, _ = lb.run_detector(config, data, split, checkpoint=None, verbose=False)
    scores = lb.detector_scores(model, data, split["val"], "nine")
    assert scores["mean_iou"] > 0.3
    assert scores["map50"] > 0.3
    assert scores["colour_acc"] > 0.9


def test_box_detector_scores_have_every_metric(images):
    split = {"train": np.arange(64), "val": np.arange(64, 96)}
    config = lb.DetectorConfig(layout="three", layers=TINY_LAYERS, epochs=1, device="cpu")
    model, _ = lb.run_detector(config, images, split, checkpoint=None, verbose=False)
    scores = lb.detector_scores(model, images, split["val"], "three")
    for key in ("set_acc", "colour_acc", "mean_iou", "map50", "map50_95"):
        assert 0.0 <= scores[key] <= 1.0
    assert scores["boxes"].shape == (32, 9, 4)


def test_show_boxes_draws_predictions_only_for_colours_predicted_present():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presence = np.zeros(9, dtype=np.float32)
    presence[[1, 4, 7]] = 1
    true = np.zeros((9, 4), dtype=np.float32)
    true[[1, 4, 7]] = [10, 10, 20, 20]
    pred = np.full((9, 4), 0.5, dtype=np.float32)  # layout "nine": tiny boxes everywhere
    pred[[1, 4, 7]] = [11, 11, 21, 21]
    probs = presence * 0.9 + 0.05
    fig, ax = plt.subplots()
    lb.show_boxes(ax, np.zeros((100, 100, 3), np.uint8), true, presence, pred, pred_probs=probs)
    dashed = [p for p in ax.patches if p.get_linestyle() == "--"]
    assert len(ax.patches) == 6 and len(dashed) == 3
    plt.close(fig)


def test_nine_box_layout_is_scored_with_boxes_as_predicted(images):
    # A heatmap detector whose heatmaps are flat: every colour has probability 0.5 and its
    # box centred at (50, 50) with the mean radius. Scored as predicted, the boxes stay
    # there; multiplied by the probability (the loss's gate), they would shrink to (25, 25).
    model = lb.BallDetector(HEATMAP_LAYERS, "nine")
    with torch.no_grad():
        model.head.conv.weight[:9].zero_()
        model.head.conv.bias[:9].zero_()
    scores = lb.detector_scores(model, images, np.arange(8), "nine")
    assert torch.allclose(scores["probs"], torch.full((8, 9), 0.5))
    r = MEAN_RADIUS
    expected = torch.tensor([50 - r, 50 - r, 50 + r, 50 + r]).expand(8, 9, 4)
    assert torch.allclose(scores["boxes"], expected, atol=1e-3)
    # The loss still compares the gated boxes with the files' zeros of absent colours.
    out = model.eval()(lb.image_tensors(images, np.arange(8))[0])
    assert torch.allclose(out[:, 9:].view(8, 9, 4) * lb.box_scale(), expected / 2, atol=1e-3)


def test_scores_use_the_three_colour_prior_and_give_per_image_ious(images):
    split = {"train": np.arange(64), "val": np.arange(64, 96)}
    config = lb.DetectorConfig(layout="nine", layers=TINY_LAYERS, epochs=1, device="cpu")
    model, _ = lb.run_detector(config, images, split, checkpoint=None, verbose=False)
    scores = lb.detector_scores(model, images, split["val"], "nine")
    # An exact set above 0.5 has 3 colours, the 3 most probable: top-3 is never below.
    assert scores["set_acc_top3"] >= scores["set_acc"]
    assert scores["per_image_iou"].shape == (32,)
    assert scores["per_image_iou"].mean() == pytest.approx(scores["mean_iou"], abs=1e-5)


def test_one_cycle_detector_peaks_at_lr_and_anneals(images):
    split = {"train": np.arange(64), "val": np.arange(64, 96)}
    config = lb.DetectorConfig(layout="colors", layers=TINY_LAYERS, epochs=4, lr=1e-2,
                               schedule="onecycle", device="cpu")  # fmt: skip
    _, history = lb.run_detector(config, images, split, checkpoint=None, verbose=False)
    lrs = history["lr"]
    assert max(lrs) <= 1e-2 * (1 + 1e-6) and max(lrs) > 0.5e-2
    assert lrs[0] < max(lrs) and lrs[-1] < max(lrs)
    with pytest.raises(ValueError, match="schedule"):
        lb.DetectorConfig(schedule="cyclic")


def test_augmented_detector_trains(images, one_thread):
    split = {"train": np.arange(64), "val": np.arange(64, 96)}
    config = lb.DetectorConfig(layout="nine", layers=HEATMAP_LAYERS, epochs=2, lr=3e-3,
                               batch_size=16, augment=True, device="cpu")  # fmt: skip
    _, history = lb.run_detector(config, images, split, checkpoint=None, verbose=False)
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_forecaster_without_colours_ignores_them():
    model = lb.make_forecaster(lb.ForecastConfig(colours=False)).eval()
    x = torch.rand(4, 19 * 12 + 9)
    other = x.clone()
    other[:, -9:] = torch.rand(4, 9)
    assert torch.equal(model(x), model(other))
    seen = lb.make_forecaster(lb.ForecastConfig()).eval()
    assert not torch.equal(seen(x), seen(other))


def test_cophy_metric_is_the_coordinate_mse_over_steps_and_balls():
    t = torch.arange(25.0).view(1, 25, 1, 1)
    boxes = (torch.tensor([10.0, 10.0, 20.0, 20.0]) + 1.5 * t).expand(3, 25, 3, 4)
    scores = lb.forecast_scores({"last": lb.last_position}, boxes, context=19, horizon=6)
    # Each coordinate is off by 1.5 h px at h steps ahead.
    expected = np.mean([(1.5 * h) ** 2 for h in range(1, 7)])
    assert scores["last"]["cophy_mse"] == pytest.approx(expected, rel=1e-5)
    assert np.allclose(scores["last"]["per_sequence"], 1.5 * np.sqrt(2), atol=1e-4)
