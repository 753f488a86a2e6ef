"""Notebook 06: detection augmentation, flips that move the boxes with the image.

torchvision's v2 functional flips do both: `horizontal_flip` on the images and on
`tv_tensors.BoundingBoxes` (x -> width - x, so [x1, y1, x2, y2] stays ordered). What is
added here: a flip drawn per image, and the files' zero boxes of absent colours kept at
zero (a flipped zero box would become [100, 0, 100, 0]).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from coursekit.balls.models import box_scale


def flip_detection(
    images: torch.Tensor, boxes: torch.Tensor, present: torch.Tensor,
    horizontal: torch.Tensor, vertical: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Return (images, boxes) with image i flipped left-right where horizontal[i], top-bottom
    where vertical[i]. images (n, 3, H, W), boxes (n, K, 4) pixels, present (n, K) bool:
    boxes of absent balls (the files' zeros) stay zeros."""
    if images.dim() != 4 or boxes.dim() != 3 or boxes.shape[-1] != 4:
        raise ValueError(
            f"expected images (n, 3, H, W) and boxes (n, K, 4), got {tuple(images.shape)} "
            f"and {tuple(boxes.shape)}"
        )
    images, boxes = images.clone(), boxes.clone()
    canvas = tuple(images.shape[-2:])
    for chosen, flip in ((horizontal, TF.horizontal_flip), (vertical, TF.vertical_flip)):
        idx = torch.nonzero(chosen).flatten()
        if len(idx) == 0:
            continue
        images[idx] = flip(images[idx])
        picked = tv_tensors.BoundingBoxes(boxes[idx].reshape(-1, 4), format="XYXY",
                                          canvas_size=canvas)  # fmt: skip
        boxes[idx] = flip(picked).as_subclass(torch.Tensor).reshape(len(idx), -1, 4)
    return images, torch.where(present[..., None], boxes, torch.zeros_like(boxes))


class FlippedBatches:
    """Training batches (images uint8, targets (9 + 4K) normalized) whose images are flipped
    left-right and top-bottom at random anew each epoch, boxes with them; flips and order
    drawn from a generator seeded once. boxes: (n, K, 4) pixels of the layout."""

    def __init__(self, images: torch.Tensor, presence: torch.Tensor, boxes: torch.Tensor,
                 batch_size: int, seed: int = 0) -> None:  # fmt: skip
        self.images, self.presence, self.boxes = images, presence, boxes
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        flips = torch.rand(n, 2, generator=self.generator) < 0.5
        order = torch.randperm(n, generator=self.generator)
        # Layout "three" lists the present balls only: every one of its boxes is present.
        present = (self.presence > 0.5) if self.boxes.shape[1] == self.presence.shape[1] else (
            torch.ones(self.boxes.shape[:2], dtype=torch.bool))  # fmt: skip
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            images, boxes = flip_detection(self.images[idx], self.boxes[idx], present[idx],
                                           flips[idx, 0], flips[idx, 1])  # fmt: skip
            if boxes.shape[1] == 0:  # layout "colors": presence only
                yield images, self.presence[idx]
            else:
                yield images, torch.cat([self.presence[idx], (boxes / box_scale()).flatten(1)], 1)
