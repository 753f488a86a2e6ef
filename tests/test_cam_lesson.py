"""Notebook 03's CAM study: transforms, maps, consistency, the methods compared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from coursekit.cam import backbones as cb
from coursekit.cam import lesson as lcam


@pytest.fixture(scope="module")
def cifar_net() -> cb.Backbone:
    """The notebook-04 final network with random weights (no checkpoint, no download)."""
    torch.manual_seed(0)
    return cb.load_backbone("cifar10", pretrained=False)


@pytest.fixture(scope="module")
def cat32() -> np.ndarray:
    return lcam.default_images(32)["one"]


def _blob(size: int, y: float, x: float) -> np.ndarray:
    """Return a Gaussian heatmap (size, size) in [0, 1] centred at (y, x) (fractions)."""
    yy, xx = np.mgrid[:size, :size] / size
    return np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 0.02).astype(np.float32)


@pytest.mark.parametrize("transform", list(lcam.TRANSFORMS))
def test_magnitude_zero_is_the_identity_on_image_and_heatmaps(transform, cat32):
    heat = _blob(32, 0.3, 0.6)
    image, warped = lcam.apply_transform(transform, 0.0, cat32, heat)
    np.testing.assert_array_equal(image, cat32)
    np.testing.assert_allclose(warped, heat, atol=1e-6)
    stacked = np.stack([heat, _blob(32, 0.7, 0.2)], axis=-1)
    _, warped = lcam.apply_transform(transform, 0.0, cat32, stacked)
    assert warped.shape == stacked.shape
    np.testing.assert_allclose(warped, stacked, atol=1e-6)


@pytest.mark.parametrize("transform", list(lcam.TRANSFORMS))
def test_ten_magnitudes_above_zero_grow_and_so_does_the_change(transform, cat32):
    mags = lcam.magnitudes(transform)
    assert len(mags) == lcam.STEPS == 10 and mags[0] > 0 and np.all(np.diff(mags) > 0)
    assert mags[-1] == pytest.approx(lcam.TRANSFORMS[transform].max_magnitude)
    full = lcam.study_magnitudes(transform)
    assert full[0] == 0 and np.array_equal(full[1:], mags)  # the original, apart
    change = [
        np.abs(lcam.apply_transform(transform, m, cat32)[0].astype(float) - cat32).mean()
        for m in mags
    ]
    assert change[0] > 0 and np.all(np.diff(change) > 0), change


@pytest.mark.parametrize("transform", list(lcam.TRANSFORMS))
def test_transforms_are_deterministic(transform, cat32):
    m = lcam.magnitudes(transform)[5]
    a, _ = lcam.apply_transform(transform, m, cat32)
    b, _ = lcam.apply_transform(transform, m, cat32)
    np.testing.assert_array_equal(a, b)


def test_geometric_transforms_move_the_heatmap_with_the_image():
    # A bright square on black, and the same square as a heatmap: they must move together.
    image = np.zeros((64, 64, 3), np.uint8)
    image[10:26, 36:52] = 255
    heat = (image[..., 0] > 0).astype(np.float32)
    for transform in ("shear", "scale", "perspective", "elastic"):
        moved, warped = lcam.apply_transform(transform, lcam.magnitudes(transform)[-1], image, heat)
        assert not np.allclose(warped, heat), transform
        assert lcam.iou(moved[..., 0] > 127, warped > 0.5) > 0.7, transform


def test_unknown_transform_is_a_clear_error(cat32):
    with pytest.raises(ValueError, match="transform must be one of"):
        lcam.apply_transform("rotation", 1.0, cat32)


@pytest.mark.parametrize("method", list(lcam.METHODS))
def test_maps_have_the_image_size_and_lie_in_0_1(method, cifar_net, cat32):
    images = np.stack([cat32, cat32[:, ::-1]])
    cams, probs = lcam.compute_cams(cifar_net, images, method, class_idx=3)
    assert cams.shape == (2, 32, 32) and cams.dtype == np.float32
    assert cams.min() >= 0 and cams.max() <= 1
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    mosaic = lcam.mosaic([cat32] * 4)
    cams, _ = lcam.compute_cams(cifar_net, mosaic, method, class_idx=3)
    assert cams.shape == (1, 64, 64) and 0 <= cams.min() and cams.max() <= 1


def test_a_map_does_not_depend_on_its_batch(cifar_net, cat32):
    other = lcam.apply_transform("shear", 20.0, cat32)[0]
    for method in ("gradcam", "smoothgradcampp"):
        alone, _ = lcam.compute_cams(cifar_net, cat32, method, 3)
        batch, _ = lcam.compute_cams(cifar_net, np.stack([other, cat32]), method, 3)
        np.testing.assert_allclose(batch[1], alone[0], atol=1e-4)


def test_consistency_of_a_map_with_itself_is_one():
    heat = _blob(32, 0.3, 0.6)
    c = lcam.consistency(heat, heat)
    assert c["pearson"] == pytest.approx(1) and c["iou"] == 1 and c["pointing"] == 1
    assert 0 < c["energy"] < 1


def test_consistency_of_the_identity_transform_is_one(cifar_net, cat32):
    ref, _ = lcam.compute_cams(cifar_net, cat32, "gradcam", 3)
    moved, warped = lcam.apply_transform("shear", 0.0, cat32, ref[0])
    cam, _ = lcam.compute_cams(cifar_net, moved, "gradcam", 3)
    c = lcam.consistency(warped, cam[0])
    assert c["pearson"] == pytest.approx(1, abs=1e-6) and c["iou"] == 1 and c["pointing"] == 1


def test_consistency_falls_when_the_map_moves():
    a, b = _blob(32, 0.25, 0.25), _blob(32, 0.75, 0.75)
    c = lcam.consistency(a, b)
    assert c["iou"] == 0 and c["pointing"] == 0 and c["pearson"] < 0.2
    assert c["energy"] < lcam.consistency(a, a)["energy"]


def test_flat_maps_give_nan_not_a_perfect_score():
    flat = np.zeros((16, 16), np.float32)
    c = lcam.consistency(flat, flat)
    assert all(np.isnan(v) for v in c.values())


def test_sensitivity_study_rows_and_identity_step(cifar_net, cat32):
    images = np.stack([cat32, cat32[::-1]])
    study = lcam.sensitivity_study(cifar_net, images, 3, ["gradcam", "cam"], ["shear", "contrast"],
                                   steps=3)  # fmt: skip
    assert len(study) == 2 * 2 * 2 * (3 + 1)  # the original (step 0) and 3 magnitudes > 0
    assert (study.loc[study["step"] > 0, "magnitude"] > 0).all()
    assert set(study.columns) >= {"prob", "rank", "pearson", "iou", "energy", "pointing"}
    first = study[study["step"] == 0].dropna(subset=["iou"])
    assert len(first) and (first["iou"] == 1).all()
    np.testing.assert_allclose(first["pearson"], 1, atol=1e-4)
    assert study["rank"].between(1, 10).all() and study["prob"].between(0, 1).all()
    curves = lcam.sensitivity_curves(study)
    assert len(curves) == 2 * 2 * 4
    summary = lcam.sensitivity_summary(curves)
    assert summary.loc[("shear", "gradcam"), "prob_0"] == pytest.approx(
        study.query("transform == 'shear' and step == 0")["prob"].mean()
    )


def test_class_rank():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    assert lcam.class_rank(probs, 2).tolist() == [2, 2]
    assert lcam.class_rank(probs, 1).tolist() == [1, 3]


def test_default_and_user_images(tmp_path):
    images = lcam.default_images(48)
    assert set(images) == {"one", "several", "none"}
    assert all(im.shape == (48, 48, 3) and im.dtype == np.uint8 for im in images.values())
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "plusieurs.png")
    Image.fromarray(np.full((30, 20), 10, np.uint8)).save(tmp_path / "one.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    found = lcam.user_images(tmp_path, 16)
    assert set(found) == {"one", "several"}
    assert found["several"].shape == (16, 16, 3) and found["several"].min() == 200
    assert lcam.user_images(tmp_path / "absent", 16) == {}


def test_cifar10_images_come_from_the_validation_split():
    images = torch.arange(20).view(20, 1, 1, 1).expand(20, 3, 32, 32).to(torch.uint8)
    labels = torch.tensor([3] * 10 + [8] * 10)
    val = torch.tensor([4, 5, 6, 7, 8, 9, 17, 18])
    picked, study = lcam.cifar10_images(images, labels, val, target=3, none_class=8, n_study=5)
    assert picked["one"][0, 0, 0] == 4 and picked["none"][0, 0, 0] == 17
    assert picked["several"].shape == (64, 64, 3) and picked["several"][40, 40, 0] == 8
    assert study.shape == (5, 32, 32, 3) and study[:, 0, 0, 0].tolist() == [4, 5, 6, 7, 8]
    with pytest.raises(ValueError, match="validation split has"):
        lcam.cifar10_images(images, labels, val, target=3, none_class=8, n_study=7)


class _Threshold(torch.nn.Module):
    """Says class 3 when the image's mean pixel is at least 6/255, class 0 otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 10)
        logits[:, 3] = (x.mean((1, 2, 3)) * 255 >= 5.5).float()
        return logits


def test_one_object_image_is_the_first_the_network_gets_right():
    net = cb.Backbone("toy", _Threshold(), 32, (0.0,) * 3, (1.0,) * 3, tuple("abcdefghij"),
                      "unused", None, True, "toy")  # fmt: skip
    images = torch.arange(20).view(20, 1, 1, 1).expand(20, 3, 32, 32).to(torch.uint8)
    labels = torch.tensor([3] * 10 + [8] * 10)
    val = torch.tensor([2, 3, 4, 5, 6, 7, 8, 9, 17])
    picked, study = lcam.cifar10_images(images, labels, val, 3, 8, n_study=5, backbone=net)
    assert picked["one"][0, 0, 0] == 6
    corners = picked["several"][::32, ::32, 0].ravel().tolist()
    assert corners == [2, 3, 4, 5]  # the other images of the class, in order
    assert study[:, 0, 0, 0].tolist() == [2, 3, 4, 5, 6]  # unselected: whatever the network says


def test_cam_needs_an_fc_layer(cifar_net):
    from dataclasses import replace

    with pytest.raises(ValueError, match="plain CAM needs"):
        lcam.make_extractor(replace(cifar_net, fc_layer=None), "cam")
    with pytest.raises(ValueError, match="method must be one of"):
        lcam.make_extractor(cifar_net, "gradcam3")


def test_agreement_and_quadrant_shares():
    a, b = _blob(32, 0.25, 0.25), _blob(32, 0.75, 0.75)
    table = lcam.agreement({"x": a, "y": b, "z": a})
    assert table.loc["x", "z"] == pytest.approx(1) and table.loc["x", "y"] < 0.2
    shares = lcam.quadrant_shares(a)
    assert shares.sum() == pytest.approx(1) and shares.argmax() == 0 and shares[0] > 0.9
    assert np.isnan(lcam.quadrant_shares(np.zeros((8, 8)))).all()


def test_transform_ranking_averages_over_methods_least_stable_first():
    # "shear" holds the single worst map (0,1) but "blur" is worse on average: the ranking
    # must follow the mean over methods, not the minimum, the first method or the reverse.
    rows = {
        ("shear", "gradcam"): 0.1, ("shear", "layercam"): 0.9,
        ("blur", "gradcam"): 0.45, ("blur", "layercam"): 0.45,
        ("tint", "gradcam"): 0.8, ("tint", "layercam"): 0.8,
    }  # fmt: skip
    cols = ["prob_0", "prob_max", "top1_0", "top1_max", "iou_mean", "iou_max", "pearson_max"]
    summary = pd.DataFrame(
        [{c: v if c == "iou_mean" else 0.5 for c in cols} for v in rows.values()],
        index=pd.MultiIndex.from_tuples(list(rows), names=["transform", "method"]),
    )
    ranking = lcam.transform_ranking(summary)
    assert list(ranking.index) == ["blur", "shear", "tint"]
    assert ranking.loc["shear", "iou_mean"] == pytest.approx(0.5)


def test_transform_ranking_of_a_real_study_covers_each_transform_once(cifar_net, cat32):
    study = lcam.sensitivity_study(cifar_net, cat32, 3, ["gradcam", "cam"],
                                   ["brightness", "scale"], steps=4)  # fmt: skip
    ranking = lcam.transform_ranking(lcam.sensitivity_summary(lcam.sensitivity_curves(study)))
    assert sorted(ranking.index) == ["brightness", "scale"]
    assert ranking["iou_mean"].is_monotonic_increasing


def test_top_region_of_a_mostly_empty_map_is_its_positive_part():
    cam = np.zeros((10, 10), np.float32)
    cam[2:4, 2:4] = 1.0  # 4 % of the pixels above the minimum
    region = lcam.top_region(cam)
    assert region.sum() == 4 and region[2:4, 2:4].all()
    assert lcam.top_region(_blob(20, 0.5, 0.5)).mean() == pytest.approx(0.2, abs=0.02)


def test_profiles():
    quick, full = lcam.PROFILES["séance"], lcam.PROFILES["complet"]
    assert set(quick) == set(full) == {"backbone"}
    assert quick["backbone"] == "cifar10"  # offline: notebook 04's network, no download
    assert full["backbone"] == "resnet18"  # the study as it was
    assert {quick["backbone"], full["backbone"]} <= set(cb.BACKBONES)
