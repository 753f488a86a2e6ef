"""Notebook 03: what a CNN looks at (the CAM family, torchcam 0.5) and how its maps move
when the image is transformed (imgaug).

- Images: scikit-image's samples (the cat `chelsea` for one cat, the `coffee` cup for
  none; several cats: a mosaic of four different CIFAR-10 cats read from the data root,
  `cifar10_instances`, nothing downloaded), students' own files in `<data root>/cam/`, or
  CIFAR-10 validation images.
- `compute_cams`: maps (N, H, W) in [0, 1] at the image's size, and class probabilities.
- `TRANSFORMS`: brightness, contrast, shear, elastic distortion, scale, perspective, each
  with `STEPS` deterministic magnitudes > 0 (the original image, magnitude 0, is the
  reference apart); `apply_transform` warps CAM heatmaps with the image (imgaug augments
  both with the same parameters).
- `consistency`: the CAM of a transformed image against the reference CAM warped by the
  same transform (Pearson correlation, IoU of the top-20 % regions, energy share and
  pointing game in the reference's top region); `sensitivity_study` tabulates it with the
  class probability and rank for every transform, magnitude and method.
- `rank_sentence`: when the class stops being ranked first, true whatever the ranks.
- `image_scores`, `bootstrap_band`, `compare_items`, `ranked`, `extremes_sentence`: methods
  and transforms compared over the study's images, only beyond a bootstrap noise band, with
  the workbook's one rule `coursekit.analysis.verdict`.
- `method_maps`, `agreement`, `quadrant_shares`, `map_observation`: maps compared and
  described (where their mass lies, how much of it each object of a mosaic gets).

The figures (overlays, grids, curves, the explorer) are drawn by `coursekit.cam.plots`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from coursekit.analysis import bootstrap_band, verdict
from coursekit.cam.augment import iaa
from coursekit.cam.backbones import Backbone
from coursekit.french import fr_int, fr_num, fr_pct

STEPS = 10  # transformed images per transform, the sheet's "10 images" (magnitudes > 0)
TOP_FRACTION = 0.2  # the "important" region of a map: its top 20 % pixels
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ROLES = {"one": "un objet", "several": "plusieurs objets", "none": "aucun objet"}
# File stems accepted in <data root>/cam/ for each role (English or French).
ROLE_STEMS = {"one": ("one", "un"), "several": ("several", "plusieurs"), "none": ("none", "aucun")}

# Notebook 03's two profiles (coursekit.profiles.profile_values). "complet" keeps the study
# as it was: torchvision's ResNet-18 with its ImageNet weights (downloaded once into torch's
# cache). "séance" (one lab session on a CPU) takes backbone "cifar10", notebook 04's final
# network, which the session's run of notebook 04 has just handed on: it needs no download,
# so the session also runs offline (the ImageNet weights are often not in a lab machine's
# cache), and its 32x32 images make every CAM cheap (the whole notebook takes well under a
# minute on 2 CPU cores, with the curves still averaged over n_study = 50 images).
PROFILES: dict[str, dict[str, object]] = {
    "séance": {"backbone": "cifar10"},
    "complet": {"backbone": "resnet18"},
}


@dataclass(frozen=True)
class Method:
    """A torchcam CAM method: class name in torchcam.methods, French label, whether it needs
    the fc layer after global pooling, is fast on a CPU, and draws random noise."""

    torchcam: str
    label: str
    needs_fc: bool = False
    fast: bool = True
    stochastic: bool = False


METHODS: dict[str, Method] = {
    "cam": Method("CAM", "CAM", needs_fc=True),
    "gradcam": Method("GradCAM", "Grad-CAM"),
    "gradcampp": Method("GradCAMpp", "Grad-CAM++"),
    "smoothgradcampp": Method("SmoothGradCAMpp", "Smooth Grad-CAM++", fast=False, stochastic=True),
    "scorecam": Method("ScoreCAM", "Score-CAM", fast=False),
    "xgradcam": Method("XGradCAM", "XGrad-CAM"),
    "layercam": Method("LayerCAM", "Layer-CAM"),
}


# --- images -----------------------------------------------------------------------------


def square(image: np.ndarray, size: int) -> np.ndarray:
    """Return `image` (H, W[, C]) center-cropped to a square, resized to uint8 (size, size, 3)."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3].astype(np.uint8)
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(image[top : top + side, left : left + side])
    return np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC))


def mosaic(tiles: Sequence[np.ndarray]) -> np.ndarray:
    """Return the 2x2 mosaic uint8 (2h, 2w, 3) of four same-sized tiles (h, w, 3)."""
    if len(tiles) != 4:
        raise ValueError(f"a 2x2 mosaic needs 4 tiles, got {len(tiles)}")
    return np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)


def default_images(size: int) -> dict[str, np.ndarray]:
    """Return scikit-image's samples for the cat class: {'one', 'several', 'none'} (size, size, 3).

    one: the cat `chelsea`; several: a 2x2 mosaic of four views of it (whole, mirrored,
    two close-ups); none: the `coffee` cup.
    """
    from skimage import data

    cat = data.chelsea()
    half = max(size // 2, 1)
    face = cat[20:260, 60:300]  # the cat's head and chest
    tiles = [square(cat, half), square(cat[:, ::-1], half), square(face, half),
             square(face[:, ::-1], half)]  # fmt: skip
    several = square(mosaic(tiles), size)
    return {"one": square(cat, size), "several": several, "none": square(data.coffee(), size)}


def user_images(folder: str | Path, size: int) -> dict[str, np.ndarray]:
    """Return the students' images found in `folder`, by role, as uint8 (size, size, 3).

    A file named one.*, several.*, none.* (or un.*, plusieurs.*, aucun.*) with an image
    suffix replaces the default image of that role; a missing folder gives {}.
    """
    folder = Path(folder)
    found: dict[str, np.ndarray] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        for role, stems in ROLE_STEMS.items():
            if path.stem.lower() in stems and role not in found:
                with Image.open(path) as im:
                    found[role] = square(np.asarray(im.convert("RGB")), size)
    return found


def class_images(folder: str | Path, size: int) -> list[np.ndarray]:
    """Return the images of the class in `folder`, uint8 (size, size, 3), the `one` image first.

    Every image file except the 'several' and 'none' roles (plusieurs.*, aucun.*, ...) is
    taken as one more image of the class (un.jpg, chat2.jpg, ...); a missing folder gives [].
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    skip = set(ROLE_STEMS["several"]) | set(ROLE_STEMS["none"])
    paths = [p for p in sorted(folder.iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.lower() not in skip]  # fmt: skip
    paths.sort(key=lambda p: p.stem.lower() not in ROLE_STEMS["one"])  # stable: `one` first
    found = []
    for path in paths:
        with Image.open(path) as im:
            found.append(square(np.asarray(im.convert("RGB")), size))
    return found


def cifar10_instances(root: str | Path | None, class_name: str = "cat", n: int = 4
                      ) -> list[np.ndarray]:
    """Return the first n CIFAR-10 images of `class_name` in the data root `root`, uint8
    (32, 32, 3): different objects of the class (test split if present, else training);
    [] when the root holds no CIFAR-10 (nothing is downloaded)."""
    from coursekit.data import load_dataset, to_uint8_tensors
    from coursekit.data.formats import CIFAR_CLASSES
    from coursekit.data.vision import DatasetMissingError

    if class_name not in CIFAR_CLASSES:
        raise ValueError(f"{class_name!r} is not a CIFAR-10 class; choose among {CIFAR_CLASSES}")
    for train in (False, True):
        try:
            dataset = load_dataset("CIFAR10", train=train, root=root, download=False)
        except DatasetMissingError:
            continue
        images, labels = to_uint8_tensors(dataset)
        picked = torch.nonzero(labels == CIFAR_CLASSES.index(class_name)).flatten()[:n]
        if len(picked) == n:
            return list(images[picked].permute(0, 2, 3, 1).numpy())
    return []


def imagenet_images(
    folder: str | Path, size: int, instances: Sequence[np.ndarray] = ()
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, str]]:
    """Return ({'one', 'several', 'none'}, study images (N, size, size, 3), {role: source}).

    The students' files of `folder` (`user_images`) replace scikit-image's samples
    (`default_images`). Without a `several` file, the 2x2 mosaic of four different objects
    comes from four or more images of the class in the folder (`class_images`), else from
    `instances` (four different objects of the default class, e.g. `cifar10_instances`);
    only without either does it show scikit-image's only cat four times, and its source
    says so. The study images are the class images of the folder, or the `one` image alone.
    """
    images = default_images(size)
    sources = {role: "scikit-image" for role in images}
    sources["several"] = ("scikit-image : le même chat sous quatre vues (un seul chat "
                          "disponible ; CIFAR-10 absent de la racine des données)")
    half = max(size // 2, 1)
    if len(instances) >= 4:
        images["several"] = square(mosaic([square(im, half) for im in instances[:4]]), size)
        sources["several"] = ("mosaïque de 4 chats différents de CIFAR-10 (32 × 32 pixels, "
                              "agrandis)")
    own = user_images(folder, size)
    images.update(own)
    sources.update({role: f"votre image ({folder})" for role in own})
    found = class_images(folder, size)
    if "several" not in own and len(found) >= 4:
        images["several"] = square(mosaic([square(im, half) for im in found[:4]]), size)
        sources["several"] = f"mosaïque de 4 de vos images différentes ({folder})"
    study = np.stack(found) if found else images["one"][None]
    return images, study, sources


def cifar10_images(
    images: torch.Tensor, labels: torch.Tensor, val_index: torch.Tensor, target: int,
    none_class: int, n_study: int, backbone: Backbone | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """Return ({'one', 'several', 'none'}, study images) from a CIFAR-10 validation split.

    images uint8 (N, 3, 32, 32), labels (N,), val_index: the validation indices. one: the
    first validation image of class `target` (with a backbone: the first one it classifies
    correctly, if any); several: a 2x2 mosaic (64, 64, 3) of the next four images of the
    class; none: the first validation image of `none_class`; study: the first n_study
    validation images of `target` whatever the network says, uint8 (n_study, 32, 32, 3).
    """
    if none_class == target:
        raise ValueError("none_class must differ from the target class")
    of_class = val_index[labels[val_index] == target]
    other = val_index[labels[val_index] == none_class]
    if len(of_class) < max(5, n_study) or len(other) < 1:
        raise ValueError(
            f"the validation split has {len(of_class)} images of class {target} and "
            f"{len(other)} of class {none_class}; need {max(5, n_study)} and 1"
        )
    hwc = images.permute(0, 2, 3, 1).numpy()
    first = 0
    if backbone is not None:
        right = np.flatnonzero(predict(backbone, hwc[of_class]) == target)
        first = int(right[0]) if len(right) else 0
    rest = [i for i in range(len(of_class)) if i != first][:4]
    picked = {
        "one": hwc[of_class[first]],
        "several": mosaic([hwc[of_class[i]] for i in rest]),
        "none": hwc[other[0]],
    }
    return picked, hwc[of_class[:n_study]]


# --- CAMs ---------------------------------------------------------------------------------


def to_input(images: np.ndarray, backbone: Backbone) -> torch.Tensor:
    """Return normalized float32 (N, 3, H, W) on the backbone's device from uint8 (N, H, W, 3)."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std).view(1, 3, 1, 1)
    return ((x - mean) / std).to(backbone.device)


@torch.no_grad()
def predict(backbone: Backbone, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Return the predicted class (N,) of uint8 images (N, H, W, 3)."""
    out = [backbone.model(to_input(images[i : i + batch_size], backbone)).argmax(1).cpu()
           for i in range(0, len(images), batch_size)]  # fmt: skip
    return torch.cat(out).numpy()


def make_extractor(backbone: Backbone, method: str):
    """Return a torchcam extractor of `method` hooked on the backbone's target layer."""
    import torchcam.methods

    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    info = METHODS[method]
    cls = getattr(torchcam.methods, info.torchcam)
    if info.needs_fc:
        if backbone.fc_layer is None:
            raise ValueError(
                f"plain CAM needs global pooling followed by one linear layer at the hooked "
                f"layer; {backbone.name} ({backbone.target_layer}) has none: choose another "
                f"method, e.g. 'gradcam'"
            )
        return cls(backbone.model, backbone.target_layer, fc_layer=backbone.fc_layer)
    return cls(backbone.model, backbone.target_layer)


def compute_cams(
    backbone: Backbone, images: np.ndarray, method: str, class_idx: int, batch_size: int = 32,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Return (maps float32 (N, H, W) in [0, 1], probabilities float32 (N, C)).

    images: uint8 (N, H, W, 3) or one image (H, W, 3) (then N = 1). Each map is torchcam's
    (ReLU then min-max normalized at the feature map's resolution), upsampled bilinearly
    to the image's size. The RNG is seeded per batch and a stochastic method (Smooth
    Grad-CAM++, whose noise is drawn for the whole batch) gets one image per batch: a map
    depends on its image only, not on the other images of its batch.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if METHODS.get(method, METHODS["cam"]).stochastic:
        batch_size = 1
    maps, probs = [], []
    extractor = make_extractor(backbone, method)
    try:
        for start in range(0, len(images), batch_size):
            torch.manual_seed(seed)
            x = to_input(images[start : start + batch_size], backbone)
            with torch.enable_grad():
                scores = backbone.model(x)
                cam = extractor([class_idx] * len(x), scores)[0]
            cam = F.interpolate(cam[:, None].float(), size=x.shape[-2:], mode="bilinear")
            maps.append(torch.nan_to_num(cam[:, 0]).clamp(0, 1).detach().cpu())
            probs.append(scores.detach().float().softmax(1).cpu())
    finally:
        extractor.remove_hooks()
    return torch.cat(maps).numpy(), torch.cat(probs).numpy()


def class_rank(probs: np.ndarray, class_idx: int) -> np.ndarray:
    """Return the rank (1 = top) of class_idx in each row of probs (N, C), as int (N,)."""
    probs = np.atleast_2d(probs)
    return 1 + (probs > probs[:, [class_idx]]).sum(1)


# --- transforms ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Transform:
    """One imgaug transformation: French label, magnitude unit, largest magnitude, builder.

    build(magnitude, size, seed) returns the augmenter; magnitude 0 is the identity.
    """

    label: str
    unit: str
    max_magnitude: float
    geometric: bool
    build: Callable[[float, int, int], iaa.Augmenter]


def _elastic(m: float, size: int, seed: int) -> iaa.Augmenter:
    # imgaug moves pixels by about 0.2 * alpha / sigma pixels on average (measured at 32,
    # 64 and 224 px), so alpha = 5 * m * size * sigma moves them by about m of the side.
    sigma = max(0.08 * size, 1.0)
    return iaa.ElasticTransformation(alpha=5 * m * size * sigma, sigma=sigma, seed=seed)


TRANSFORMS: dict[str, Transform] = {
    "brightness": Transform("luminosité", "valeur ajoutée aux pixels (0-255)", 180.0, False,
                            lambda m, size, seed: iaa.Add(m)),
    "contrast": Transform("contraste", "baisse du contraste (1 − facteur)", 0.9, False,
                          lambda m, size, seed: iaa.LinearContrast(1.0 - m)),
    "shear": Transform("cisaillement", "angle (degrés)", 45.0, True,
                       lambda m, size, seed: iaa.Affine(shear=m)),
    "elastic": Transform("distorsion élastique", "déplacement moyen (fraction du côté)", 0.1,
                         True, _elastic),
    "scale": Transform("mise à l'échelle", "réduction (1 − facteur d'échelle)", 0.6, True,
                       lambda m, size, seed: iaa.Affine(scale=1.0 - m)),
    "perspective": Transform("perspective", "écart des coins (fraction du côté)", 0.2, True,
                             lambda m, size, seed: iaa.PerspectiveTransform(
                                 scale=m, keep_size=True, seed=seed)),
}  # fmt: skip


def magnitudes(transform: str, steps: int = STEPS) -> np.ndarray:
    """Return `steps` evenly spaced magnitudes > 0 of `transform`, up to its largest.

    Magnitude 0 (the original image) is not among them: it is the reference, shown apart.
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {tuple(TRANSFORMS)}, got {transform!r}")
    if steps < 1:
        raise ValueError(f"need at least 1 magnitude, got {steps}")
    return TRANSFORMS[transform].max_magnitude * np.arange(1, steps + 1) / steps


def study_magnitudes(transform: str, steps: int = STEPS) -> np.ndarray:
    """Return [0, *magnitudes(transform, steps)]: the original (step 0), then `steps` others."""
    return np.concatenate([[0.0], magnitudes(transform, steps)])


def apply_transform(
    transform: str, magnitude: float, image: np.ndarray, heatmaps: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Return (transformed image uint8 (H, W, 3), heatmaps warped alike or None).

    heatmaps: float (H, W) or (H, W, K) in [0, 1]; imgaug moves them with the image
    (geometric transforms) and leaves them as they are otherwise. A fresh augmenter seeded
    with `seed` makes the result deterministic: the same call gives the same image.
    """
    from imgaug.augmentables.heatmaps import HeatmapsOnImage

    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {tuple(TRANSFORMS)}, got {transform!r}")
    aug = TRANSFORMS[transform].build(float(magnitude), image.shape[0], seed)
    if heatmaps is None:
        return aug(image=image), None
    arr = np.asarray(heatmaps, dtype=np.float32)
    hm = HeatmapsOnImage(arr if arr.ndim == 3 else arr[..., None], shape=image.shape)
    out, hm = aug(image=image, heatmaps=hm)
    warped = np.clip(hm.get_arr().reshape(*image.shape[:2], -1), 0, 1)
    return out, warped if arr.ndim == 3 else warped[..., 0]


# --- consistency --------------------------------------------------------------------------


def top_region(cam: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """Return the bool mask of the `fraction` highest pixels of cam (H, W); empty if flat.

    Pixels at the map's minimum are never in it: a map that is 0 on most of the image (a
    shrunk image's warped map) gives its positive part, not the whole image.
    """
    if np.ptp(cam) < 1e-6:
        return np.zeros(cam.shape, dtype=bool)
    return (cam >= np.quantile(cam, 1 - fraction)) & (cam > cam.min())


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Return the Pearson correlation of two maps, NaN if either is flat."""
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Return the intersection over union of two bool masks, NaN if both are empty."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def consistency(reference: np.ndarray, cam: np.ndarray, fraction: float = TOP_FRACTION) -> dict:
    """Return how well cam (H, W) matches the warped reference map (H, W).

    pearson: correlation of the two maps; iou: IoU of their top-`fraction` regions;
    energy: share of cam's total inside the reference's top region (energy-based pointing
    game); pointing: 1 if cam's maximum lies in that region, else 0. NaN where undefined
    (a flat map). An identical map gives pearson = iou = pointing = 1.
    """
    region = top_region(reference, fraction)
    total = float(cam.sum())
    flat = np.ptp(cam) < 1e-6 or not region.any()
    return {
        "pearson": pearson(reference, cam),
        "iou": iou(region, top_region(cam, fraction)),
        "energy": float(cam[region].sum()) / total if total > 0 and region.any() else np.nan,
        "pointing": np.nan if flat else float(region.flat[int(np.argmax(cam))]),
    }


def sensitivity_study(
    backbone: Backbone, images: np.ndarray, class_idx: int, methods: Sequence[str],
    transforms: Sequence[str] = tuple(TRANSFORMS), steps: int = STEPS,
    fraction: float = TOP_FRACTION, seed: int = 0,
) -> pd.DataFrame:  # fmt: skip
    """Return one row per (image, method, transform, step): the class's probability and rank
    and the `consistency` of the transformed image's map with the warped reference map.

    images: uint8 (N, H, W, 3). Step 0 is the original image (magnitude 0, the reference),
    steps 1..`steps` the transformed images (`magnitudes`). Columns: image, method,
    transform, step, magnitude, prob, rank, pearson, iou, energy, pointing.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    refs = np.stack([compute_cams(backbone, images, m, class_idx, seed=seed)[0] for m in methods],
                    axis=-1)  # (N, H, W, M)  # fmt: skip
    rows = []
    for transform in transforms:
        # All magnitudes of one transform in one batch: one forward/backward per method.
        mags = study_magnitudes(transform, steps)
        pairs = [apply_transform(transform, m, img, ref, seed)
                 for m in mags for img, ref in zip(images, refs, strict=True)]  # fmt: skip
        moved = np.stack([p[0] for p in pairs])  # (steps * N, H, W, 3), magnitude-major
        warped = np.stack([p[1] for p in pairs])  # (steps * N, H, W, M)
        for k, method in enumerate(methods):
            cams, probs = compute_cams(backbone, moved, method, class_idx, seed=seed)
            ranks = class_rank(probs, class_idx)
            for j in range(len(moved)):
                step, i = divmod(j, len(images))
                rows.append({
                    "image": i, "method": method, "transform": transform, "step": step,
                    "magnitude": float(mags[step]), "prob": float(probs[j, class_idx]),
                    "rank": int(ranks[j]), **consistency(warped[j, ..., k], cams[j], fraction),
                })  # fmt: skip
    return pd.DataFrame(rows)


def sensitivity_curves(study: pd.DataFrame) -> pd.DataFrame:
    """Return the study averaged over images: one row per (transform, method, step).

    NaN values (flat maps) are left out of the means; 'top1' is the share of images whose
    class stays ranked first.
    """
    frame = study.assign(top1=(study["rank"] == 1).astype(float))
    keys = ["transform", "method", "step"]
    cols = ["magnitude", "prob", "rank", "top1", "pearson", "iou", "energy", "pointing"]
    return frame.groupby(keys, sort=False)[cols].mean().reset_index()


def sensitivity_summary(curves: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Return the headline numbers per (transform, method) from `sensitivity_curves`.

    prob_0, prob_max: mean probability on the original (step 0) and at the largest
    magnitude; top1_0, top1_max: share of images whose class is ranked first there;
    iou_max, pearson_max: mean consistency at the largest magnitude; iou_mean: mean IoU
    over the transformed magnitudes (step > 0; higher: more stable maps); iou_break: the
    first magnitude whose mean IoU falls below `threshold` (NaN: never).
    """
    rows = {}
    for (transform, method), g in curves.groupby(["transform", "method"], sort=False):
        g = g.sort_values("step")
        moved = g[g["step"] > 0]
        below = moved.loc[moved["iou"] < threshold, "magnitude"]
        rows[(transform, method)] = {
            "prob_0": g["prob"].iloc[0], "prob_max": g["prob"].iloc[-1],
            "top1_0": g["top1"].iloc[0], "top1_max": g["top1"].iloc[-1],
            "iou_max": g["iou"].iloc[-1],
            "pearson_max": g["pearson"].iloc[-1], "iou_mean": moved["iou"].mean(),
            "iou_break": below.iloc[0] if len(below) else np.nan,
        }  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["transform", "method"])


def transform_ranking(summary: pd.DataFrame) -> pd.DataFrame:
    """Return one row per transform of `sensitivity_summary`, averaged over the methods,
    most sensitive maps first (lowest mean IoU over the magnitudes).

    Columns: prob_0, prob_max, top1_0, top1_max (method-independent), iou_mean, iou_max,
    pearson_max (means over the methods).
    """
    cols = ["prob_0", "prob_max", "top1_0", "top1_max", "iou_mean", "iou_max", "pearson_max"]
    return summary.groupby(level="transform", sort=False)[cols].mean().sort_values("iou_mean")


def rank_sentence(magnitudes: Sequence[float], ranks: Sequence[int], digits: int = 3) -> str:
    """Return a French clause saying when the class is ranked first, true whatever the ranks.

    magnitudes, ranks: the original image first (magnitude 0), then the transformed ones in
    increasing magnitude. Four cases: never first; first on the original then lost (for
    good, or regained later); not first on the original but first at some magnitude;
    always first.
    """
    mags, ranks = np.asarray(magnitudes, dtype=float), np.asarray(ranks, dtype=int)
    if len(mags) != len(ranks) or len(mags) < 2 or mags[0] != 0:
        raise ValueError("give the original (magnitude 0) first, then at least one magnitude")
    first = ranks == 1
    n = len(mags) - 1
    if first.all():
        return f"la classe reste en tête sur l'image d'origine et aux {fr_int(n)} magnitudes"
    if not first.any():
        return (f"la classe n'est en tête ni sur l'image d'origine (rang {fr_int(ranks[0])}) "
                f"ni à aucune des {fr_int(n)} magnitudes")  # fmt: skip
    if not first[0]:
        won = mags[1:][first[1:]]
        return (f"la classe n'est pas en tête sur l'image d'origine (rang {fr_int(ranks[0])}) "
                f"mais l'est à {fr_int(len(won))} des {fr_int(n)} magnitudes, dès la "
                f"magnitude {fr_num(won[0], digits)}")  # fmt: skip
    k = int(np.argmin(first))  # first magnitude where it is not first (k >= 1)
    lost = (
        f"la classe, en tête sur l'image d'origine, ne l'est plus à la magnitude "
        f"{fr_num(mags[k], digits)} (rang {fr_int(ranks[k])})"
    )
    back = int(first[k + 1 :].sum())
    if back == 0:
        return lost + " ni à aucune magnitude plus forte"
    return lost + f", mais le redevient à {fr_int(back)} des {fr_int(n - k)} magnitudes plus fortes"


def image_scores(study: pd.DataFrame, by: str, score: str) -> pd.DataFrame:
    """Return one score per image (rows) and value of `by` (columns) from `sensitivity_study`.

    score 'iou' or 'pearson': the mean over the transformed images (step > 0) and the
    other key; 'prob_change': the class's probability at the largest magnitude minus on
    the original, averaged over the methods (it does not depend on them).
    """
    if by not in ("transform", "method"):
        raise ValueError(f"by must be 'transform' or 'method', got {by!r}")
    if score in ("iou", "pearson"):
        moved = study[study["step"] > 0]
        return moved.pivot_table(index="image", columns=by, values=score, aggfunc="mean",
                                 sort=False)  # fmt: skip
    if score != "prob_change":
        raise ValueError(f"score must be 'iou', 'pearson' or 'prob_change', got {score!r}")
    last = study.groupby("transform")["step"].transform("max")
    end = study[study["step"] == last].set_index(["image", "method", "transform"])["prob"]
    start = study[study["step"] == 0].set_index(["image", "method", "transform"])["prob"]
    change = (end - start).rename("change").reset_index()
    return change.pivot_table(index="image", columns=by, values="change", aggfunc="mean",
                              sort=False)  # fmt: skip


def compare_items(scores: pd.DataFrame, a: str, b: str, **band_kw) -> dict:
    """Return {'delta', 'band', 'verdict', 'n'}: column a against column b of `image_scores`.

    delta: the mean over images of a - b (paired: the same images); band: its
    `bootstrap_band`; verdict: `coursekit.analysis.verdict(delta, band)` ('mieux': a above b).
    """
    d = (scores[a] - scores[b]).dropna()
    band = bootstrap_band(d.to_numpy(), drop_nan=True, **band_kw)
    delta = float(d.mean()) if len(d) else float("nan")
    return {"delta": delta, "band": band, "verdict": verdict(delta if len(d) else 0.0, band),
            "n": len(d)}  # fmt: skip


def ranked(scores: pd.DataFrame, ascending: bool = False, **band_kw) -> pd.DataFrame:
    """Return the columns of `image_scores` ranked by their mean over images, with margins.

    Columns: mean, band (noise band of the mean), vs_next (the verdict of this item
    against the next one, paired over images: 'indiscernable' within the band; '' for
    the last), n (images).
    """
    means = scores.mean().sort_values(ascending=ascending)
    items = list(means.index)
    rows = {}
    for i, item in enumerate(items):
        nxt = (
            compare_items(scores, item, items[i + 1], **band_kw)["verdict"]
            if i + 1 < len(items)
            else ""
        )
        rows[item] = {"mean": float(means[item]),
                      "band": bootstrap_band(scores[item].to_numpy(), drop_nan=True, **band_kw),
                      "vs_next": nxt, "n": int(scores[item].notna().sum())}  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index")


def extremes_sentence(scores: pd.DataFrame, labels: Mapping[str, str], what: str,
                      fmt: Callable[[float], str] = lambda x: fr_num(x, 2),
                      **band_kw) -> str:  # fmt: skip
    """Return a French sentence comparing the highest and lowest columns of `image_scores`.

    It ranks them only when their paired difference lies beyond its bootstrap band
    (`verdict` 'mieux'); otherwise it calls them 'indiscernable' and gives the margin.
    """
    means = scores.mean().dropna().sort_values()
    if len(means) < 2:
        raise ValueError("need two items with a score to compare")
    low, high = means.index[0], means.index[-1]
    c = compare_items(scores, high, low, **band_kw)
    margin = (f"marge de bruit inconnue : {fr_int(c['n'])} image" if np.isinf(c["band"])
              else f"marge ± {fmt(c['band'])} sur {fr_int(c['n'])} images")  # fmt: skip
    pair = f"{labels[high]} ({fmt(means[high])}) et {labels[low]} ({fmt(means[low])})"
    if c["verdict"] == "mieux":
        return (f"{what} : la plus haute avec {labels[high]} ({fmt(means[high])}), la plus "
                f"basse avec {labels[low]} ({fmt(means[low])}) ; écart {fmt(c['delta'])} "
                f"au-delà de la {margin} : mieux")  # fmt: skip
    return (
        f"{what} : {pair} : indiscernable (écart {fmt(c['delta'])}, dans la {margin}) ; "
        "aucun classement"
    )


# --- comparing methods -----------------------------------------------------------------


def method_maps(
    backbone: Backbone, image: np.ndarray, class_idx: int, methods: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Return ({method: map (H, W)}, probabilities (C,)) of one image (H, W, 3)."""
    maps, probs = {}, None
    for method in methods:
        cams, probs = compute_cams(backbone, image, method, class_idx)
        maps[method] = cams[0]
    if probs is None:
        raise ValueError("give at least one method")
    return maps, probs[0]


def agreement(maps: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Return the Pearson correlation of every pair of maps (methods x methods)."""
    names = list(maps)
    return pd.DataFrame(
        [[pearson(maps[a], maps[b]) for b in names] for a in names], index=names, columns=names
    )


def quadrant_shares(cam: np.ndarray) -> np.ndarray:
    """Return the share of the map's total in each quadrant of a 2x2 mosaic, (4,) row-major."""
    h, w = cam.shape[0] // 2, cam.shape[1] // 2
    parts = [cam[:h, :w], cam[:h, w:], cam[h:, :w], cam[h:, w:]]
    total = float(cam.sum())
    return np.array([p.sum() / total if total > 0 else np.nan for p in parts])


QUADRANTS = ("haut gauche", "haut droite", "bas gauche", "bas droite")


def map_observation(cam: np.ndarray, objects_in_quadrants: bool = False,
                    threshold: float = 0.15) -> str:  # fmt: skip
    """Return a French clause saying where the mass of a map (H, W) lies.

    The quadrant shares (`quadrant_shares`), the centre of mass (fractions of width and
    height) and the share of the map in its top-20 % region; with objects_in_quadrants (a
    2x2 mosaic, one object per quadrant), how many objects get at least `threshold` of it.
    """
    cam = np.asarray(cam, dtype=float)
    total = cam.sum()
    if not total > 0:
        return "carte nulle : aucune zone chaude"
    shares = quadrant_shares(cam)
    yy, xx = np.mgrid[: cam.shape[0], : cam.shape[1]]
    cy, cx = (yy * cam).sum() / total / cam.shape[0], (xx * cam).sum() / total / cam.shape[1]
    top = float(cam[top_region(cam)].sum() / total)
    k = int(np.argmax(shares))
    text = (f"{fr_pct(shares[k], 0)} de la carte dans le quart {QUADRANTS[k]} "
            f"(quarts {', '.join(fr_pct(x, 0) for x in shares)}) ; centre de masse à "
            f"{fr_pct(cx, 0)} de la largeur, {fr_pct(cy, 0)} de la hauteur ; les 20 % de "
            f"pixels les plus forts portent {fr_pct(top, 0)} de la carte")  # fmt: skip
    if objects_in_quadrants:
        covered = int((shares >= threshold).sum())
        text += (f" ; {fr_int(covered)} objet(s) sur 4 reçoivent au moins "
                 f"{fr_pct(threshold, 0)} de la carte")  # fmt: skip
    return text
