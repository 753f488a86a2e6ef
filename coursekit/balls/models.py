"""Notebook 06: the ball detector (conv backbone + FC, layer lists) and the MLP forecaster.

Layer lists follow the report's hyper-parameter spaces: ("conv", out_channels, kernel,
stride=1, padding=kernel // 2), ("avgpool", kernel), ("fc", width); plus ("coords",),
which appends 2 channels holding each pixel's x and y in [-1, 1] (CoordConv, Liu et al.
2018), ("globalmax",), the maximum of each channel over the image, and ("heatmap",), the
per-colour heatmap head (HeatmapHead), which ends the list in place of fc. Each conv is
Conv2d -> ReLU -> BatchNorm2d (the report's order), each hidden fc Linear -> ReLU ->
Dropout; a last Linear gives the outputs.

Inputs are standardized with the pixel statistics of generated images (PIXEL_MEAN,
PIXEL_STD): scaled to [0, 1] only, the mostly dark background gives the first layers
features of variance ~1e-3, and BatchNorm's running variance, which starts at 1 and
forgets it at 10 % per batch, stays several times too large for hundreds of batches, so
the network in eval mode (validation, predictions) is far worse than in training.
FAST_LAYERS ends with a global max: "is colour c anywhere" and, with the coordinate
channels, "where are its extreme pixels" do not depend on where the ball is, so the
detector learns them from a few thousand images instead of memorizing positions. It finds
colours but not boxes: after the max, where the ball is must be rebuilt from extreme
coordinates, and a flatten head memorizes positions. HEATMAP_LAYERS keeps a stride-4 map
(25 x 25) and ends with HeatmapHead: one heatmap per colour, whose soft-argmax is the
centre, so a position is read where the ball is and learns from every ball at once.

Detector outputs (B, 9 + 4 * K): 9 colour logits, then K boxes normalized by BOX_SCALE.
Layout "nine": K = 9, one box per colour (zeros for absent colours, as in the files);
layout "three": K = 3, the boxes of the 3 present colours in colour order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from coursekit.balls.data import BOX_SCALE, N_BALLS, N_COLORS, SIZE

LAYOUTS = {"colors": 0, "three": N_BALLS, "nine": N_COLORS}  # boxes per output layout
# The report's final backbone (its best hyperopt result), then a fast one for CPU.
REPORT_LAYERS = (
    ("conv", 4, 3, 1, 0), ("conv", 4, 3, 1, 0), ("conv", 4, 3, 1, 0), ("avgpool", 2),
    ("conv", 16, 5, 1, 0), ("conv", 16, 5, 1, 0), ("avgpool", 2),
    ("conv", 32, 5), ("conv", 32, 7), ("avgpool", 2), ("conv", 64, 5),
)  # fmt: skip
FAST_LAYERS = (("coords",), ("conv", 16, 5, 2), ("conv", 32, 3, 2), ("conv", 64, 3, 2),
               ("conv", 64, 3, 2), ("globalmax",), ("fc", 256))  # fmt: skip
# Stride 4 (25 x 25 cells of 4 pixels); receptive field 17 pixels, more than a ball (<= 12).
HEATMAP_LAYERS = (("conv", 16, 5, 2), ("conv", 32, 3, 2), ("conv", 32, 3), ("heatmap",))
MEAN_RADIUS = 5.25  # middle of the RADIUS range of generated balls: the head's first guess
# Mean and standard deviation of the pixels of generated images (uint8 scale), per channel.
PIXEL_MEAN, PIXEL_STD = (26.4, 26.0, 29.7), (20.6, 17.8, 17.8)
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}
RESIDUALS = ("none", "last", "velocity")
INPUTS = ("boxes", "moves", "contacts")
MOVE_SCALE = 50.0  # moves (normalized boxes per step, ~0.02) times this are ~1, as tanh wants
GAP_SCALE = 3.0  # pixels: tanh(gap / GAP_SCALE) is ~1 far from a contact, steep near one
PAIRS = ((0, 1), (0, 2), (1, 2))
STEP = N_BALLS * 4  # values per time step in a forecaster input


def box_scale(like: torch.Tensor | None = None) -> torch.Tensor:
    """Return BOX_SCALE (4,) as a tensor of `like`'s device and dtype (default: float32, CPU)."""
    if like is None:
        return torch.tensor(BOX_SCALE, dtype=torch.float32)
    return torch.tensor(BOX_SCALE, device=like.device, dtype=like.dtype)


def output_size(layout: str) -> int:
    """Return the detector's number of outputs for a layout: 9 + 4 * boxes."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return N_COLORS + 4 * LAYOUTS[layout]


def _conv(c_in: int, out: int, kernel: int, stride: int = 1, padding: int | None = None):
    pad = kernel // 2 if padding is None else padding
    return nn.Sequential(
        nn.Conv2d(c_in, out, kernel, stride=stride, padding=pad), nn.ReLU(), nn.BatchNorm2d(out)
    )


class Coords(nn.Module):
    """Append 2 channels to (B, C, H, W): x and y of each pixel, from -1 to 1 (CoordConv)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))  # (2, H, W): x, then y
        return torch.cat([x, grid.expand(b, -1, -1, -1)], dim=1)


def cell_centres(n: int, size: float = SIZE) -> torch.Tensor:
    """Return (n,) the pixel coordinates of the centres of n equal cells spanning size pixels.

    Pixel j spans [j, j + 1] (as the boxes do), so cell k of a stride-s map is s * (k + 0.5).
    """
    return (torch.arange(n, dtype=torch.float32) + 0.5) * (size / n)


def soft_argmax(logits: torch.Tensor, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Return (x, y, *averages), each (B, K): the softmax-weighted mean position in pixels of
    logits (B, K, h, w), then of each values map (B, K, h, w) under the same weights."""
    b, k, h, w = logits.shape
    weights = logits.flatten(2).softmax(-1).view(b, k, h, w)
    xs = cell_centres(w).to(logits)
    ys = cell_centres(h).to(logits)
    x = (weights.sum(2) * xs).sum(-1)  # marginal over rows, then the expected column
    y = (weights.sum(3) * ys).sum(-1)
    return (x, y, *((weights * v).sum((2, 3)) for v in values))


class HeatmapHead(nn.Module):
    """Feature map (B, C, h, w) -> (colour logits (B, 9), boxes (B, 9, 4) normalized).

    A 1x1 conv gives per colour 4 maps: a heatmap, x and y offsets and a radius (pixels).
    Presence logit: the heatmap's maximum over space (a logsumexp would start every logit at
    log(h * w), all colours "present"). Centre: soft-argmax of the heatmap plus
    the offsets, radius: the radius map, both averaged with the same softmax weights, so the
    box is read where the colour is. Box: centre +- radius, divided by BOX_SCALE.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4 * N_COLORS, 1)
        with torch.no_grad():  # start from the mean ball: zero offsets, the mean radius
            self.conv.weight[N_COLORS:].zero_()
            self.conv.bias[N_COLORS:].zero_()
            self.conv.bias[3 * N_COLORS :].fill_(MEAN_RADIUS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heat, dx, dy, radius = self.conv(x).chunk(4, dim=1)  # each (B, 9, h, w)
        cx, cy, ox, oy, r = soft_argmax(heat, dx, dy, radius)
        cx, cy = cx + ox, cy + oy
        boxes = torch.stack([cx - r, cy - r, cx + r, cy + r], dim=-1)
        return heat.flatten(2).amax(-1), boxes / box_scale(x)


def head_output(logits: torch.Tensor, boxes: torch.Tensor, layout: str) -> torch.Tensor:
    """Return (B, 9 + 4K) in the layout's order from logits (B, 9) and boxes (B, 9, 4).

    "nine": each box times its colour's probability, detached, so absent colours give the
    zeros of the files without their MSE reaching (and fighting) the box maps (a gate for
    the loss only: the metrics read `BallDetector.detections`); "three": the
    boxes of the 3 most probable colours, colour order (what `decode` expects).
    """
    if layout == "colors":
        return logits
    if layout == "nine":
        picked = boxes * logits.detach().sigmoid()[..., None]
    else:
        picked = boxes.gather(1, predicted_colors(logits)[..., None].expand(-1, -1, 4))
    return torch.cat([logits, picked.flatten(1)], dim=1)


def standardize(images: torch.Tensor) -> torch.Tensor:
    """Return uint8 images (B, 3, H, W) as float32 with PIXEL_MEAN / PIXEL_STD removed."""
    mean = torch.tensor(PIXEL_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() - mean) / std


class BallDetector(nn.Module):
    """Conv backbone + FC or heatmap head from a layer list: images (B, 3, 100, 100) ->
    (B, outputs).

    uint8 images are standardized inside (see `standardize`); float images are taken as
    they are, already standardized.
    """

    def __init__(
        self, layers: Sequence[tuple] = HEATMAP_LAYERS, layout: str = "nine", dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.layout = layout
        blocks: list[nn.Module] = []
        channels, flat = 3, False
        self.head: HeatmapHead | None = None
        for kind, *args in layers:
            if self.head is not None:
                raise ValueError("the heatmap layer must come last")
            if kind == "heatmap":
                self.head = HeatmapHead(channels)
            elif kind == "conv":
                blocks.append(_conv(channels, *args))
                channels = args[0]
            elif kind == "avgpool":
                blocks.append(nn.AvgPool2d(args[0]))
            elif kind == "coords":
                blocks.append(Coords())
                channels += 2
            elif kind == "globalmax":
                blocks.append(nn.AdaptiveMaxPool2d(1))
            elif kind == "fc":
                if not flat:
                    blocks.append(nn.Flatten())
                    flat = True
                blocks += [nn.LazyLinear(args[0]), nn.ReLU(), nn.Dropout(dropout)]
            else:
                raise ValueError(
                    f"unknown layer kind {kind!r}; use conv, avgpool, coords, globalmax, fc "
                    "or heatmap"
                )
        if self.head is None:
            blocks += ([] if flat else [nn.Flatten()]) + [nn.LazyLinear(output_size(layout))]
        elif flat:
            raise ValueError("the heatmap layer needs a feature map: no fc before it")
        else:
            output_size(layout)  # an unknown layout fails here, not at the first forward
        self.layers = nn.Sequential(*blocks)
        self.eval()  # materialize the lazy layers' weights now, BatchNorm statistics untouched
        with torch.no_grad():
            self(torch.zeros(1, 3, 100, 100))
        self.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = standardize(x)
        x = self.layers(x)
        return x if self.head is None else head_output(*self.head(x), self.layout)

    def detections(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, 9 + 4K): forward's outputs with the boxes as predicted, for the metrics.

        Only layout "nine" of the heatmap head differs: `head_output` multiplies its boxes by
        their colour's probability so that the loss sees the files' zeros; scored that way,
        a box of probability 0.6 would shrink towards (0, 0). The metrics take the box as the
        head predicts it and the probability as the detection's confidence.
        """
        if self.head is None or self.layout != "nine":
            return self(x)
        if x.dtype == torch.uint8:
            x = standardize(x)
        logits, boxes = self.head(self.layers(x))
        return torch.cat([logits, boxes.flatten(1)], dim=1)


class Detections(nn.Module):
    """Wrap a detector so that calling it gives `BallDetector.detections` (for `predict`)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.detector, BallDetector):
            return self.detector.detections(x)
        return self.detector(x)


def predicted_colors(logits: torch.Tensor) -> torch.Tensor:
    """Return (B, 3) the indices of the 3 highest colour logits (B, 9), in colour order."""
    return logits.topk(N_BALLS, dim=1).indices.sort(dim=1).values


def decode(output: torch.Tensor, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (colour probabilities (B, 9), boxes in pixels (B, 9, 4)) of detector outputs.

    Layout "three": the 3 boxes go to the 3 most probable colours in colour order; the other
    colours get NaN boxes (no detection). Layout "nine": every colour has its box.
    """
    logits = output[:, :N_COLORS]
    scale = box_scale(output)
    k = LAYOUTS[layout]
    boxes = output[:, N_COLORS:].reshape(len(output), k, 4) * scale
    if layout == "nine":
        return logits.sigmoid(), boxes
    full = torch.full((len(output), N_COLORS, 4), float("nan"), device=output.device)
    full.scatter_(1, predicted_colors(logits)[..., None].expand(-1, -1, 4), boxes)
    return logits.sigmoid(), full


def contact_gaps(boxes: torch.Tensor) -> torch.Tensor:
    """Return (B, 15) pixels: for boxes (B, 3, 4) of 3 discs, each disc's gap to the left,
    top, right and bottom walls (12), then each pair's gap between edges (3); negative:
    overlapping, a collision."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    radius = (boxes[..., 2:3] - boxes[..., 0:1]) / 2
    walls = torch.cat([centre - radius, SIZE - centre - radius], dim=-1)  # (B, 3, 4)
    pairs = [(centre[:, i] - centre[:, j]).norm(dim=-1) - radius[:, i, 0] - radius[:, j, 0]
             for i, j in PAIRS]  # fmt: skip
    return torch.cat([walls.flatten(1), torch.stack(pairs, dim=1)], dim=1)


class Forecaster(nn.Module):
    """MLP: x (B, 19 * 12 + 9) = 19 steps of 3 normalized boxes, then presence -> (B, 3, 4).

    residual "last": the network predicts the move from the last step; "velocity": the
    change from the constant-velocity guess 2 * last - previous (its last layer starts at
    zero, so the untrained network is that baseline), both in pixels; "none": the boxes.
    inputs "boxes": the MLP reads x as it is; "moves": it reads the last step's boxes and
    the 18 moves between steps (times MOVE_SCALE), the same information, but a velocity or a
    deceleration is then one input, not a difference of two nearly equal ones; "contacts":
    the moves, plus what decides a collision (`contact_gaps`): the gaps between each ball
    and each wall, and between each two balls, after a constant-velocity step.
    colours: False zeroes the colour vector before the MLP reads it.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (512, 256, 128, 128),
        activation: str = "tanh",
        dropout: float = 0.0,
        residual: str = "none",
        steps: int = 19,
        inputs: str = "boxes",
        colours: bool = True,
    ) -> None:
        super().__init__()
        if residual not in RESIDUALS:
            raise ValueError(f"unknown residual {residual!r}; choose one of {RESIDUALS}")
        if inputs not in INPUTS:
            raise ValueError(f"unknown inputs {inputs!r}; choose one of {INPUTS}")
        self.residual, self.steps, self.inputs = residual, steps, inputs
        self.colours = colours
        layers: list[nn.Module] = []
        width = steps * STEP + N_COLORS + (len(PAIRS) + 4 * N_BALLS) * (inputs == "contacts")
        for out in hidden:
            layers += [nn.Linear(width, out), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            width = out
        layers.append(nn.Linear(width, STEP))
        if residual != "none":  # start exactly at the baseline the network corrects
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return what the MLP reads of x (B, steps * 12 + 9): see `inputs`."""
        if not self.colours:  # the same width, the colour vector zeroed: no colour is seen
            x = torch.cat([x[:, : self.steps * STEP], torch.zeros_like(x[:, self.steps * STEP :])],
                          dim=1)  # fmt: skip
        if self.inputs == "boxes":
            return x
        boxes = x[:, : self.steps * STEP].view(-1, self.steps, STEP)
        moves = (boxes[:, 1:] - boxes[:, :-1]) * MOVE_SCALE
        seen = [boxes[:, -1], moves.flatten(1), x[:, self.steps * STEP :]]
        if self.inputs == "contacts":
            guess = (2 * boxes[:, -1] - boxes[:, -2]).view(-1, N_BALLS, 4) * box_scale(x)
            seen.append(torch.tanh(contact_gaps(guess) / GAP_SCALE))
        return torch.cat(seen, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(self.features(x)).view(-1, N_BALLS, 4)
        if self.residual == "none":
            return out
        # A correction is a few pixels, a few hundredths once normalized: predicted in pixels,
        # it keeps last-layer weights of order 1, on the scale of Adam's steps (measured on
        # notebook 06's validation: 0.175 px -> 0.103 px, same inputs, loss and epochs).
        out = out / box_scale(x)
        last = x[:, (self.steps - 1) * STEP : self.steps * STEP].view(-1, N_BALLS, 4)
        if self.residual == "last":
            return last + out
        previous = x[:, (self.steps - 2) * STEP : (self.steps - 1) * STEP].view(-1, N_BALLS, 4)
        return 2 * last - previous + out


def colour_network() -> nn.Sequential:
    """Return notebook 06's task-1a network: standardized images (B, 3, 100, 100) -> 9 logits.

    Three strided convolutions, then a max over the image ("is colour c anywhere?") and a
    linear layer: the network the notebook asks the student to write, for what follows it.
    """
    return nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(), nn.BatchNorm2d(16),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(32),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(64),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, N_COLORS),
    )  # fmt: skip
