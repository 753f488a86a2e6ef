"""Notebook 03's computed sentences: the class's rank under a transform, the rankings of
methods and transforms (only beyond a noise band), the images and the map observations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from coursekit.cam import lesson as lcam

MAGS = [0.0, 5.0, 10.0, 15.0, 20.0]


def test_rank_sentence_never_first():
    text = lcam.rank_sentence(MAGS, [373, 200, 12, 5, 2])
    assert "n'est en tête ni sur l'image d'origine (rang 373)" in text
    assert "ni à aucune des 4 magnitudes" in text


def test_rank_sentence_first_then_lost():
    text = lcam.rank_sentence(MAGS, [1, 1, 2, 4, 9])
    assert text.startswith(
        "la classe, en tête sur l'image d'origine, ne l'est plus à la magnitude 10"
    )
    assert "(rang 2)" in text and "ni à aucune magnitude plus forte" in text
    regained = lcam.rank_sentence(MAGS, [1, 3, 1, 1, 2])
    assert "magnitude 5 (rang 3)" in regained
    assert "le redevient à 2 des 3 magnitudes plus fortes" in regained


def test_rank_sentence_lost_at_magnitude_zero():
    # The bug: rank 373 on the original was reported as "plus en tête dès la magnitude 0".
    text = lcam.rank_sentence(MAGS, [373, 2, 1, 1, 5])
    assert "n'est pas en tête sur l'image d'origine (rang 373)" in text
    assert "mais l'est à 2 des 4 magnitudes, dès la magnitude 10" in text
    assert "plus en tête dès la magnitude 0" not in text


def test_rank_sentence_always_first():
    assert lcam.rank_sentence(MAGS, [1] * 5) == (
        "la classe reste en tête sur l'image d'origine et aux 4 magnitudes"
    )


def test_rank_sentence_needs_the_original_first():
    with pytest.raises(ValueError, match="original"):
        lcam.rank_sentence([5.0, 10.0], [1, 1])


def _scores(gap: float, noise: float, n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.7, n)  # per-image level, shared by both items (paired)
    return pd.DataFrame({
        "shear": base + rng.normal(0, noise, n),
        "scale": base + gap + rng.normal(0, noise, n),
    })  # fmt: skip


def test_bootstrap_band_shrinks_with_images_and_is_infinite_for_one():
    assert lcam.bootstrap_band([0.5]) == float("inf")
    assert lcam.bootstrap_band([0.5, np.nan], drop_nan=True) == float("inf")
    small = lcam.bootstrap_band(np.random.default_rng(0).normal(0, 1, 10))
    large = lcam.bootstrap_band(np.random.default_rng(0).normal(0, 1, 1000))
    assert 0 < large < small
    assert lcam.bootstrap_band([1.0, 2.0, 3.0]) == lcam.bootstrap_band([1.0, 2.0, 3.0])


def test_ranking_beyond_the_band_says_which_is_higher():
    scores = _scores(gap=0.2, noise=0.02)
    c = lcam.compare_items(scores, "scale", "shear")
    assert c["delta"] > c["band"] > 0 and c["verdict"] == "mieux" and c["n"] == 20
    assert lcam.compare_items(scores, "shear", "scale")["verdict"] == "moins bien"
    table = lcam.ranked(scores)
    assert list(table.index) == ["scale", "shear"]
    assert table["vs_next"].tolist() == ["mieux", ""]
    labels = {"scale": "mise à l'échelle", "shear": "cisaillement"}
    text = lcam.extremes_sentence(scores, labels, "IoU moyenne")
    assert "la plus haute avec mise à l'échelle" in text and text.endswith(": mieux")


def test_ranking_within_the_band_is_indiscernable():
    scores = _scores(gap=0.002, noise=0.1)  # "0,74 vs 0,73": a gap far inside the noise
    c = lcam.compare_items(scores, "scale", "shear")
    assert abs(c["delta"]) <= c["band"] and c["verdict"] == "indiscernable"
    assert lcam.ranked(scores)["vs_next"].iloc[0] == "indiscernable"
    labels = {"scale": "mise à l'échelle", "shear": "cisaillement"}
    text = lcam.extremes_sentence(scores, labels, "IoU moyenne")
    assert ": indiscernable (écart" in text and "aucun classement" in text
    assert "la plus haute" not in text


def test_one_image_ranks_nothing():
    one = pd.DataFrame({"a": [0.74], "b": [0.73]})
    assert lcam.compare_items(one, "a", "b")["verdict"] == "indiscernable"
    assert "marge de bruit inconnue : 1 image" in lcam.extremes_sentence(
        one, {"a": "A", "b": "B"}, "x"
    )


def test_image_scores_from_a_study():
    rows = []
    for image in (0, 1):
        for method in ("gradcam", "cam"):
            for transform, probs in (("shear", [0.9, 0.5, 0.2]), ("contrast", [0.9, 0.9, 0.9])):
                for step, prob in enumerate(probs):
                    rows.append({"image": image, "method": method, "transform": transform,
                                 "step": step, "prob": prob + 0.01 * image,
                                 "iou": 1.0 if step == 0 else 0.5 + 0.1 * (method == "cam"),
                                 "pearson": 1.0})  # fmt: skip
    study = pd.DataFrame(rows)
    change = lcam.image_scores(study, "transform", "prob_change")
    np.testing.assert_allclose(change["shear"], [-0.7, -0.7])
    np.testing.assert_allclose(change["contrast"], [0.0, 0.0], atol=1e-12)
    iou = lcam.image_scores(study, "method", "iou")  # step 0 (always 1) left out
    np.testing.assert_allclose(iou["gradcam"], [0.5, 0.5])
    np.testing.assert_allclose(iou["cam"], [0.6, 0.6])


def test_imagenet_images_use_different_instances_when_given(tmp_path):
    images, study, sources = lcam.imagenet_images(tmp_path / "absent", 32)
    assert study.shape == (1, 32, 32, 3) and "un seul chat" in sources["several"]
    colours = [10, 60, 110, 160, 210]
    for name, c in zip(["un", "chat2", "chat3", "chat4", "chat5"], colours, strict=True):
        Image.fromarray(np.full((40, 40, 3), c, np.uint8)).save(tmp_path / f"{name}.png")
    Image.fromarray(np.full((40, 40, 3), 250, np.uint8)).save(tmp_path / "aucun.png")
    images, study, sources = lcam.imagenet_images(tmp_path, 32)
    assert study.shape == (5, 32, 32, 3) and study[0, 0, 0, 0] == 10  # `un` first
    assert images["none"][0, 0, 0] == 250 and 250 not in study[:, 0, 0, 0]
    corners = images["several"][::16, ::16, 0].ravel().tolist()
    assert corners == colours[:4]  # four different images, one per quadrant
    assert "4 de vos images différentes" in sources["several"]
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "plusieurs.png")
    images, study, _ = lcam.imagenet_images(tmp_path, 32)
    assert images["several"].min() == 90 and len(study) == 5  # the given file wins


def test_default_several_image_shows_four_different_cifar10_cats(tmp_path, fixture_data):
    cats = lcam.cifar10_instances(fixture_data, "cat")
    assert len(cats) == 4 and all(c.shape == (32, 32, 3) and c.dtype == np.uint8 for c in cats)
    assert len({c.tobytes() for c in cats}) == 4  # four different images
    from coursekit.data import load_dataset, to_uint8_tensors

    images, labels = to_uint8_tensors(load_dataset("CIFAR10", train=False, root=fixture_data,
                                                   download=False))
    of_class = images[labels == 3].permute(0, 2, 3, 1).numpy()  # 3: cat
    assert all(np.array_equal(c, of_class[i]) for i, c in enumerate(cats))
    shown, _, sources = lcam.imagenet_images(tmp_path / "absent", 64, instances=cats)
    quadrants = [shown["several"][r:r + 32, c:c + 32] for r in (0, 32) for c in (0, 32)]
    for quadrant, cat in zip(quadrants, cats, strict=True):
        assert np.abs(quadrant.astype(int) - lcam.square(cat, 32).astype(int)).mean() < 8
    assert "4 chats différents de CIFAR-10" in sources["several"]
    assert lcam.cifar10_instances(tmp_path / "empty", "cat") == []  # no CIFAR-10: no download
    with pytest.raises(ValueError, match="not a CIFAR-10 class"):
        lcam.cifar10_instances(fixture_data, "tabby")


def test_map_observation_says_where_the_mass_lies():
    cam = np.zeros((8, 8))
    cam[:4, 4:] = 1.0  # all of it in the top-right quadrant
    text = lcam.map_observation(cam, objects_in_quadrants=True)
    assert text.startswith("100\u00a0% de la carte dans le quart haut droite")
    assert "1 objet(s) sur 4" in text
    spread = lcam.map_observation(np.ones((8, 8)), objects_in_quadrants=True)
    assert "4 objet(s) sur 4" in spread
    assert lcam.map_observation(np.zeros((8, 8))) == "carte nulle : aucune zone chaude"
