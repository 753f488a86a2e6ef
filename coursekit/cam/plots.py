"""Notebook 03's figures: CAM overlays, the three images, the methods side by side, the
transform grids, the sensitivity curves, and the ipywidgets explorer.

The maps and numbers come from `coursekit.cam.lesson`; this module only draws them. Every
figure carries the backbone's caption, which says when its weights are random.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter
from PIL import Image

from coursekit.cam import lesson
from coursekit.cam.backbones import Backbone
from coursekit.french import fr_num, fr_pct


def overlay(image: np.ndarray, cam: np.ndarray, display: int = 160) -> np.ndarray:
    """Return torchcam's overlay_mask of cam (H, W) on image (H, W, 3), uint8 at >= display px.

    Small images (CIFAR-10's 32 px) are upsampled for display only.
    """
    from torchcam.utils import overlay_mask

    img = Image.fromarray(image)
    if max(img.size) < display:
        scale = display / max(img.size)
        img = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)),
                         Image.Resampling.BICUBIC)  # fmt: skip
    mask = Image.fromarray(np.asarray(cam, dtype=np.float32), mode="F")
    return np.asarray(overlay_mask(img, mask, alpha=0.5))


def _show(ax: plt.Axes, picture: np.ndarray, title: str) -> None:
    """Draw `picture` on `ax` without axes; small pictures keep their pixels sharp."""
    ax.imshow(picture, interpolation="nearest" if picture.shape[0] < 64 else "antialiased")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _score(probs: np.ndarray, class_idx: int) -> str:
    """Return 'p = 12,50 %, rang 1' for one image's probabilities (C,)."""
    rank = int(lesson.class_rank(probs, class_idx)[0])
    return f"p = {fr_pct(float(probs[class_idx]))}, rang {rank}"


def plot_methods(
    backbone: Backbone, image: np.ndarray, class_idx: int, maps: Mapping[str, np.ndarray],
    probs: np.ndarray,
) -> plt.Figure:  # fmt: skip
    """Return a Figure: the image (with the class's probability), then each map over it."""
    panels = len(maps) + 1
    cols = min(panels, 4)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    _show(axes.flat[0], image, _score(probs, class_idx))
    for ax, (method, cam) in zip(axes.flat[1:], maps.items(), strict=False):
        _show(ax, overlay(image, cam), lesson.METHODS[method].label)
    for ax in axes.flat[panels:]:
        ax.axis("off")
    fig.suptitle(f"Classe « {backbone.classes[class_idx]} » — {backbone.caption}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_roles(
    backbone: Backbone, images: Mapping[str, np.ndarray], class_idx: int, method: str
) -> tuple[plt.Figure, dict[str, dict]]:
    """Return (Figure, {role: {'prob', 'rank', 'cam'}}): each image over its map for the class."""
    fig, axes = plt.subplots(2, len(images), figsize=(3.4 * len(images), 7), squeeze=False)
    results = {}
    for j, (role, image) in enumerate(images.items()):
        cams, probs = lesson.compute_cams(backbone, image, method, class_idx)
        rank = int(lesson.class_rank(probs, class_idx)[0])
        results[role] = {"prob": float(probs[0, class_idx]), "rank": rank, "cam": cams[0]}
        _show(axes[0, j], image, f"{lesson.ROLES.get(role, role)}\n{_score(probs[0], class_idx)}")
        _show(axes[1, j], overlay(image, cams[0]), lesson.METHODS[method].label)
    fig.suptitle(f"Classe « {backbone.classes[class_idx]} » — {backbone.caption}", fontsize=10)
    fig.tight_layout()
    return fig, results


def plot_transform_grid(
    backbone: Backbone, image: np.ndarray, class_idx: int, method: str, transform: str,
    steps: int = lesson.STEPS, seed: int = 0,
) -> plt.Figure:  # fmt: skip
    """Return a Figure: the original apart (the reference, first column, then a gap), then
    each of the `steps` transformed images (top) with its map (bottom)."""
    mags = lesson.study_magnitudes(transform, steps)  # 0 (the original), then `steps` others
    moved = np.stack([lesson.apply_transform(transform, m, image, seed=seed)[0] for m in mags])
    cams, probs = lesson.compute_cams(backbone, moved, method, class_idx, seed=seed)
    fig, axes = plt.subplots(2, steps + 2, figsize=(1.7 * (steps + 1.3), 4.4), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 0.3] + [1] * steps})  # fmt: skip
    for ax in axes[:, 1]:
        fig.delaxes(ax)
    for j, m in enumerate(mags):
        col = 0 if j == 0 else j + 1
        _show(axes[0, col], moved[j], "origine\n(référence)" if j == 0 else f"{fr_num(m, 3)}")
        _show(axes[1, col], overlay(moved[j], cams[j], display=96),
              f"p = {fr_pct(float(probs[j, class_idx]), 1)}")  # fmt: skip
    spec = lesson.TRANSFORMS[transform]
    fig.suptitle(
        f"{spec.label} ({spec.unit}) — {lesson.METHODS[method].label}, classe « "
        f"{backbone.classes[class_idx]} » — {backbone.caption}", fontsize=10,
    )  # fmt: skip
    fig.tight_layout()
    return fig


CURVE_LABELS = {
    "prob": "probabilité de la classe",
    "iou": "IoU des 20 % les plus forts",
    "pearson": "corrélation de Pearson",
    "energy": "part de l'énergie dans la zone",
    "pointing": "pointing game (maximum dans la zone)",
    "top1": "part des images classées en tête",
}


def plot_curves(
    curves: pd.DataFrame, caption: str, metrics: Sequence[str] = ("prob", "iou", "pearson")
) -> plt.Figure:
    """Return a Figure of `sensitivity_curves`: one column per transform, one row per metric,
    one line per method (probability and top-1 do not depend on the method: one line)."""
    transforms = list(dict.fromkeys(curves["transform"]))
    methods = list(dict.fromkeys(curves["method"]))
    fig, axes = plt.subplots(len(metrics), len(transforms), squeeze=False,
                             figsize=(3.1 * len(transforms), 2.6 * len(metrics)))  # fmt: skip
    comma = FuncFormatter(lambda v, _pos: fr_num(v, 3))
    for j, transform in enumerate(transforms):
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            shown = methods[:1] if metric in ("prob", "top1", "rank") else methods
            for method in shown:
                g = curves[(curves["transform"] == transform) & (curves["method"] == method)]
                label = "toutes méthodes" if len(shown) == 1 else lesson.METHODS[method].label
                ax.plot(g["magnitude"], g[metric], marker="o", markersize=3, label=label)
            ax.set_ylim(-0.05 if metric != "pearson" else -1.05, 1.05)
            ax.xaxis.set_major_formatter(comma)
            ax.yaxis.set_major_formatter(comma)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(lesson.TRANSFORMS[transform].label, fontsize=10)
            if i == len(metrics) - 1:
                ax.set_xlabel(lesson.TRANSFORMS[transform].unit, fontsize=8)
            if j == 0:
                ax.set_ylabel(CURVE_LABELS.get(metric, metric), fontsize=8)
    handles, labels = axes[-1, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(methods), fontsize=8,
               bbox_to_anchor=(0.5, -0.02))  # fmt: skip
    fig.suptitle(f"Sensibilité, moyenne sur les images — {caption}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def explorer(
    backbone: Backbone, image: np.ndarray, class_idx: int, methods: Sequence[str],
    transforms: Sequence[str] = tuple(lesson.TRANSFORMS), steps: int = lesson.STEPS,
):  # fmt: skip
    """Return an ipywidgets `interactive`: method, transform and magnitude step (0: the
    original); it shows the transformed image, its map and the warped reference map with
    their consistency."""
    import ipywidgets as widgets

    def show(method: str, transform: str, step: int) -> None:
        ref = lesson.compute_cams(backbone, image, method, class_idx)[0][0]
        magnitude = lesson.study_magnitudes(transform, steps)[step]
        moved, warped = lesson.apply_transform(transform, magnitude, image, ref)
        cams, probs = lesson.compute_cams(backbone, moved, method, class_idx)
        c = lesson.consistency(warped, cams[0])
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
        _show(axes[0], moved, f"{lesson.TRANSFORMS[transform].label} {fr_num(magnitude, 3)}")
        _show(axes[1], overlay(moved, cams[0]), _score(probs[0], class_idx))
        _show(axes[2], overlay(moved, warped), "carte de référence déformée")
        fig.suptitle(
            f"{lesson.METHODS[method].label} — IoU {fr_num(c['iou'], 3)}, Pearson "
            f"{fr_num(c['pearson'], 3)} — {backbone.caption}", fontsize=9,
        )  # fmt: skip
        fig.tight_layout()
        plt.show()

    return widgets.interactive(
        show,
        method=widgets.Dropdown(options=[(lesson.METHODS[m].label, m) for m in methods]),
        transform=widgets.Dropdown(options=[(lesson.TRANSFORMS[t].label, t) for t in transforms]),
        step=widgets.IntSlider(value=0, min=0, max=steps, description="magnitude"),
    )
