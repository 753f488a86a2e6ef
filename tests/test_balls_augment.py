"""Notebook 06's detection augmentation: the boxes follow the flipped image."""

import numpy as np
import pytest
import torch

from coursekit.balls import data as balls
from coursekit.balls import lesson as lb
from coursekit.balls.augment import FlippedBatches, flip_detection


@pytest.fixture(scope="module")
def images():
    return balls.generate_images(40, seed=3)


def _same_image(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when two uint8 images differ by at most 1 level (float rounding of the shading):
    a ball drawn elsewhere differs by tens of levels."""
    return (a.int() - b.int()).abs().max().item() <= 1


def _rendered(boxes: torch.Tensor, presence: np.ndarray) -> torch.Tensor:
    """Images (n, 3, 100, 100) drawn from scratch with the balls at `boxes` (n, 9, 4)."""
    colors = np.stack([np.nonzero(p)[0] for p in presence])
    drawn = balls.render(colors, balls.present_boxes(boxes.numpy(), presence))
    return torch.from_numpy(drawn).permute(0, 3, 1, 2)


@pytest.mark.parametrize("horizontal, vertical", [(True, False), (False, True), (True, True)])
def test_flipped_boxes_draw_the_flipped_image(images, horizontal, vertical):
    pixels, presence = lb.image_tensors(images, np.arange(len(images)))
    n = len(images)
    flipped, boxes = flip_detection(pixels, torch.from_numpy(images.boxes), presence > 0.5,
                                    torch.full((n,), horizontal), torch.full((n,), vertical))
    assert not torch.equal(flipped, pixels)
    # The balls redrawn at the flipped boxes are the flipped image.
    assert _same_image(_rendered(boxes, images.presence), flipped)
    assert torch.equal(boxes[presence < 0.5], torch.zeros_like(boxes[presence < 0.5]))


def test_unflipped_images_are_unchanged(images):
    pixels, presence = lb.image_tensors(images, np.arange(4))
    boxes = torch.from_numpy(images.boxes[:4])
    no = torch.zeros(4, dtype=torch.bool)
    out, out_boxes = flip_detection(pixels, boxes, presence > 0.5, no, no)
    assert torch.equal(out, pixels) and torch.equal(out_boxes, boxes)


def test_flip_refuses_boxes_of_the_wrong_shape(images):
    pixels, presence = lb.image_tensors(images, np.arange(4))
    with pytest.raises(ValueError, match="boxes"):
        flip_detection(pixels, torch.zeros(4, 36), presence > 0.5, presence[:, 0] > 0,
                       presence[:, 0] > 0)


def test_flipped_batches_give_targets_of_the_layout_that_match_their_images(images):
    index = np.arange(len(images))
    pixels, presence = lb.image_tensors(images, index)
    for layout, k in (("nine", 9), ("three", 3)):
        target = lb.detector_targets(images, index, layout)
        boxes = target[:, 9:].view(len(index), k, 4) * lb.box_scale()
        batches = FlippedBatches(pixels, presence, boxes, batch_size=16, seed=0)
        seen = 0
        for x, y in batches:
            assert y.shape == (len(x), 9 + 4 * k)
            full = torch.zeros(len(x), 9, 4)
            got = y[:, 9:].view(len(x), k, 4) * lb.box_scale()
            if layout == "nine":
                full = got
            else:  # back to one row per colour, colour order
                full[y[:, :9] > 0.5] = got.reshape(-1, 4)
            assert _same_image(_rendered(full, y[:, :9].numpy()), x)
            seen += len(x)
        assert seen == len(images) and len(batches) == 3
