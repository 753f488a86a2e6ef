"""Notebook 03's figures: each draws what it is given, with the backbone's caption."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from coursekit import settings  # noqa: E402
from coursekit.cam import backbones as cb  # noqa: E402
from coursekit.cam import lesson as lcam  # noqa: E402
from coursekit.cam import plots as pcam  # noqa: E402
from coursekit.french import fr_num  # noqa: E402


@pytest.fixture(scope="module")
def cifar_net() -> cb.Backbone:
    """The notebook-04 final network with random weights (no hand-off, no download)."""
    return cb.load_backbone("cifar10", pretrained=False)


@pytest.fixture(scope="module")
def cat32() -> np.ndarray:
    return lcam.default_images(32)["one"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_overlay_upsamples_small_images_for_display_only(cat32):
    cam = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    picture = pcam.overlay(cat32, cam)
    assert picture.shape == (160, 160, 3) and picture.dtype == np.uint8
    assert pcam.overlay(lcam.default_images(200)["one"], np.zeros((200, 200))).shape[0] == 200


def test_plot_methods_and_roles_carry_the_caption(cifar_net, cat32):
    maps, probs = lcam.method_maps(cifar_net, cat32, 3, ["gradcam", "cam"])
    fig = pcam.plot_methods(cifar_net, cat32, 3, maps, probs)
    assert len([a for a in fig.axes if a.images]) == 3
    assert cifar_net.caption in fig._suptitle.get_text()
    images = {"one": cat32, "none": cat32[::-1]}
    fig, results = pcam.plot_roles(cifar_net, images, 3, "gradcam")
    assert set(results) == {"one", "none"} and results["one"]["cam"].shape == (32, 32)
    assert "ALÉATOIRES" in fig._suptitle.get_text()
    assert fig.axes[0].get_title().startswith("un objet\np = ")


def test_plot_transform_grid_shows_every_magnitude_and_the_original_apart(cifar_net, cat32):
    fig = pcam.plot_transform_grid(cifar_net, cat32, 3, "gradcam", "shear", steps=3)
    assert len(fig.axes) == 2 * (1 + 3)  # the original and 3 transformed images, two rows
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles == ["origine\n(référence)", "15", "30", "45"]
    assert fig.axes[1].get_position().x0 - fig.axes[0].get_position().x1 > (
        fig.axes[2].get_position().x0 - fig.axes[1].get_position().x1
    )  # a wider gap after the original
    assert fig._suptitle.get_text().startswith("cisaillement (angle (degrés))")


def test_plot_curves_one_panel_per_transform_and_metric(cifar_net, cat32):
    study = lcam.sensitivity_study(cifar_net, cat32, 3, ["gradcam", "layercam"],
                                   ["shear", "contrast"], steps=3)  # fmt: skip
    fig = pcam.plot_curves(lcam.sensitivity_curves(study), "légende", metrics=("prob", "iou"))
    assert len(fig.axes) == 4
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[2].lines) == 2  # prob: one line


def test_explorer_draws_what_its_widgets_ask(cifar_net, cat32, monkeypatch):
    shown = []
    monkeypatch.setattr(pcam.plt, "show", lambda: shown.append(pcam.plt.gcf()))
    widget = pcam.explorer(cifar_net, cat32, 3, ["gradcam", "layercam"], ["shear", "contrast"])
    method, transform, step = widget.children[:3]
    method.value, transform.value, step.value = "layercam", "contrast", 7
    widget.update()
    assert widget.kwargs == {"method": "layercam", "transform": "contrast", "step": 7}
    fig = shown[-1]
    assert lcam.METHODS["layercam"].label in fig._suptitle.get_text()
    magnitude = lcam.study_magnitudes("contrast", lcam.STEPS)[7]
    assert magnitude != lcam.study_magnitudes("contrast", lcam.STEPS)[0]
    picture = fig.axes[0]
    assert lcam.TRANSFORMS["contrast"].label in picture.get_title()
    assert fr_num(magnitude, 3) in picture.get_title()
    ref = lcam.compute_cams(cifar_net, cat32, "layercam", 3)[0][0]
    moved, _ = lcam.apply_transform("contrast", magnitude, cat32, ref)
    np.testing.assert_array_equal(np.asarray(picture.images[0].get_array()), moved)
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    assert not settings.interactive_session()
