"""CIFAR-10 networks of notebook 04: the PyTorch tutorial net, its variants, the final net.

All take images (B, 3, 32, 32) and return logits (B, 10).

- `TutorialNet`: the "Training a classifier" tutorial's net, unchanged (62,006 parameters).
- `VariantNet`: the same net with every knob of the sheet's variants as an argument, so
  that a variant is one line: `VariantNet(channels=(32, 64))`, `VariantNet(extra_conv=32)`,
  `VariantNet(hidden=(256, 128, 64))`, `VariantNet(activation="gelu")`.
- `FinalNet`: the sheet's final network, at most `MAX_PARAMS` parameters counting its frozen
  whitening weights (the sheet's 250,000 of séance 7, under the design's 256K). Its
  layout follows Keller Jordan's airbench (itself from tysam-code's hlb-CIFAR10 and David
  Page's "How to train your ResNet"), narrowed to the budget: a frozen 2x2 patch-whitening
  convolution, then three blocks of conv - max-pool - BatchNorm - GELU - conv - BatchNorm -
  GELU, global max-pooling and a scaled linear layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.models.measure import count_parameters

MAX_PARAMS = 250_000  # the sheet's limit (séance 7), every parameter counted, frozen ones too
DESIGN_PARAMS = 256_000  # the design's "256K (1 Moctet)", above the sheet's final limit
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


class TutorialNet(nn.Module):
    """The PyTorch CIFAR-10 tutorial net: conv 6@5x5, pool, conv 16@5x5, pool, FC 120-84-10.

    Shapes: (B, 3, 32, 32) -> conv1 (B, 6, 28, 28) -> pool (B, 6, 14, 14) -> conv2
    (B, 16, 10, 10) -> pool (B, 16, 5, 5) -> flatten (B, 400) -> (B, 120) -> (B, 84) ->
    logits (B, 10). 62,006 trainable parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, 10) of images (B, 3, 32, 32)."""
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def make_activation(name: str) -> nn.Module:
    """Return a new activation module for `name` (one of ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class VariantNet(nn.Module):
    """The tutorial net with the sheet's knobs; the defaults give TutorialNet's layers.

    channels: filters of each conv layer, each followed by the activation and a 2x2 max-pool;
    kernel_size, padding: of those conv layers (padding = kernel_size // 2 keeps the size,
      which a third conv-pool layer needs: without it 32 -> 28 -> 14 -> 10 -> 5 -> 1);
    extra_conv: filters of an extra 3x3 conv (padding 1) after the last conv layer, before
      its pool, so the tutorial geometry stays (0 = none);
    split: indices of conv layers whose kernel_size x kernel_size conv becomes two
      convs of (kernel_size + 1) // 2 (5x5 -> two 3x3, séance 6): the same cropping, each
      followed by the activation, one pool after both;
    hidden: sizes of the hidden fully connected layers (the output layer is added);
    activation: 'relu', 'gelu', 'tanh' or 'leaky_relu';
    batchnorm: BatchNorm2d after every conv; dropout: before every hidden FC layer.

    Shapes: (B, 3, 32, 32) -> features (B, flat_features) -> logits (B, num_classes); with
    the defaults flat_features = 16 * 5 * 5 = 400.
    """

    def __init__(
        self,
        channels: Sequence[int] = (6, 16),
        kernel_size: int = 5,
        padding: int = 0,
        extra_conv: int = 0,
        split: Sequence[int] = (),
        hidden: Sequence[int] = (120, 84),
        activation: str = "relu",
        batchnorm: bool = False,
        dropout: float = 0.0,
        num_classes: int = 10,
        input_size: int = 32,
    ) -> None:
        super().__init__()
        if any(not 0 <= i < len(channels) for i in split) or kernel_size % 2 == 0:
            raise ValueError(
                f"split names conv layers 0..{len(channels) - 1} of an odd kernel, got "
                f"split={tuple(split)}, kernel_size={kernel_size}"
            )
        layers: list[nn.Module] = []
        cin = 3
        for i, cout in enumerate(channels):
            if i in split:  # two k'xk' convs crop as much as one kxk: 2 (k' - 1) = k - 1
                half, pad = (kernel_size + 1) // 2, padding // 2
                layers += _conv_act(cin, cout, half, pad, activation, batchnorm)
                layers += _conv_act(cout, cout, half, padding - pad, activation, batchnorm)
            else:
                layers += _conv_act(cin, cout, kernel_size, padding, activation, batchnorm)
            cin = cout
            if i == len(channels) - 1 and extra_conv > 0:
                layers += _conv_act(cin, extra_conv, 3, 1, activation, batchnorm)
                cin = extra_conv
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.flat_features = _flat_size(self.features, input_size)
        dense: list[nn.Module] = []
        width = self.flat_features
        for size in hidden:
            dense += [nn.Dropout(dropout)] if dropout > 0 else []
            dense += [nn.Linear(width, size), make_activation(activation)]
            width = size
        self.classifier = nn.Sequential(*dense, nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, num_classes) of images (B, 3, H, W)."""
        return self.classifier(self.features(x))


def _conv_act(
    cin: int, cout: int, kernel_size: int, padding: int, act: str, batchnorm: bool
) -> list[nn.Module]:
    """Return [conv, (BatchNorm), activation] for one conv layer."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size, padding=padding)]
    layers += [nn.BatchNorm2d(cout)] if batchnorm else []
    return [*layers, make_activation(act)]


def _flat_size(features: nn.Module, input_size: int) -> int:
    """Return the number of features `features` gives for one (1, 3, S, S) image."""
    try:
        with torch.no_grad():
            return features(torch.zeros(1, 3, input_size, input_size)).shape[1]
    except RuntimeError as exc:  # a feature map shrank below the kernel or the pool
        raise ValueError(
            f"these conv layers do not fit a {input_size}x{input_size} image ({exc}); "
            "use fewer layers, a smaller kernel or padding=kernel_size // 2"
        ) from exc


def check_budget(model: nn.Module, limit: int = MAX_PARAMS) -> int:
    """Return the model's parameter count, frozen ones included; ValueError above `limit`.

    The sheet counts every parameter that defines the network: the frozen whitening
    weights, computed from the data, define it as much as the trained ones.
    """
    n = count_parameters(model, trainable_only=False)
    if n > limit:
        trainable = count_parameters(model)
        raise ValueError(
            f"{type(model).__name__} has {n:,} parameters ({trainable:,} trainable + "
            f"{n - trainable:,} frozen), over the budget of {limit:,}; narrow its widths"
        )
    return n


class ConvBlock(nn.Module):
    """conv 3x3 - max-pool 2 - BN - GELU - conv 3x3 - BN - GELU (+ a residual conv pair).

    Shapes: (B, cin, H, W) -> (B, cout, H // 2, W // 2). Pooling right after the first
    conv (before BN) as in airbench: the second conv then costs a quarter of the FLOPs.
    depth 3 adds a third conv and a skip connection over the last two (airbench96).
    """

    def __init__(self, cin: int, cout: int, depth: int = 2) -> None:
        super().__init__()
        if depth not in (2, 3):
            raise ValueError(f"depth must be 2 or 3 convs per block, got {depth}")
        self.conv1 = _dirac_conv(cin, cout)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = nn.BatchNorm2d(cout)
        self.conv2 = _dirac_conv(cout, cout)
        self.norm2 = nn.BatchNorm2d(cout)
        self.conv3 = _dirac_conv(cout, cout) if depth == 3 else None
        self.norm3 = nn.BatchNorm2d(cout) if depth == 3 else None
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, cout, H // 2, W // 2) features of (B, cin, H, W) features."""
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        y = self.act(self.norm2(self.conv2(x)))
        if self.conv3 is None:
            return y
        return x + self.act(self.norm3(self.conv3(y)))


def _dirac_conv(cin: int, cout: int) -> nn.Conv2d:
    """Return a bias-free 3x3 'same' conv whose first min(cin, cout) filters are identities.

    Identity initialization (airbench) makes each conv start as a partial skip connection,
    which trains faster than a random start; BatchNorm supplies the bias.
    """
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(cin, cout), :])
    return conv


class FinalNet(nn.Module):
    """Small airbench-style CIFAR-10 net, within `max_params` trainable parameters.

    Shapes with the default widths (32, 80, 95), 248,483 parameters (248,195 trainable
    + 288 frozen whitening weights):
      (B, 3, 32, 32) -> whiten 2x2 conv, 24 filters, no padding (B, 24, 31, 31), GELU
      -> block 1 (B, 32, 15, 15) -> block 2 (B, 80, 7, 7) -> block 3 (B, 95, 3, 3)
      -> global max-pool (B, 95) -> linear, no bias (B, 10) -> x head_scale.
    The whitening conv's weights are frozen (not trained, but counted in the budget); call
    `init_whitening` with training images before training, otherwise they stay random.

    widths: filters of the three blocks; depth: convs per block (2, or 3 with a skip);
    head_scale: multiplies the logits; 0.125 as in Page's ResNet-9, it keeps early logits
      small so that the large learning rates of one-cycle training stay stable;
    max_params: raise ValueError above it, frozen weights counted (None: no check).
    """

    WHITEN_FILTERS = 24  # 2 x (3 channels x 2 x 2 patch): each eigenvector and its negative

    def __init__(
        self,
        widths: Sequence[int] = (32, 80, 95),
        depth: int = 2,
        num_classes: int = 10,
        head_scale: float = 0.125,
        max_params: int | None = MAX_PARAMS,
    ) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"widths must give 3 block widths, got {tuple(widths)}")
        self.whiten = nn.Conv2d(3, self.WHITEN_FILTERS, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.act = nn.GELU()
        cins = (self.WHITEN_FILTERS, *widths[:-1])
        self.blocks = nn.Sequential(
            *(ConvBlock(a, b, depth) for a, b in zip(cins, widths, strict=True))
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        self.head_scale = head_scale
        if max_params is not None:
            check_budget(self, max_params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, num_classes) of normalized images (B, 3, 32, 32)."""
        x = self.blocks(self.act(self.whiten(x)))
        return self.head(torch.flatten(self.pool(x), 1)) * self.head_scale

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the frozen 2x2 conv to whiten the patches of `images` (N, 3, H, W), normalized.

        Filters are the eigenvectors of the 12x12 covariance of all 2x2 patches, divided
        by sqrt(eigenvalue + eps), and their negatives (so GELU keeps both signs): the
        first layer then outputs decorrelated features of unit variance (Page, airbench).
        Use training images only, never the validation or test split.
        """
        weight = self.whiten.weight
        patches = images.to(weight.device, torch.float32).unfold(2, 2, 1).unfold(3, 2, 1)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)  # (N*31*31, 3*2*2)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).flip(0)
        filters = filters.reshape(12, 3, 2, 2)
        weight.copy_(torch.cat([filters, -filters]))


def describe_final(model: FinalNet) -> str:
    """Return a French sentence describing `model`'s layout, read from the model itself."""
    convs = 3 if model.blocks[0].conv3 is not None else 2
    skip = "avec" if convs == 3 else "sans"
    widths = [block.conv1.out_channels for block in model.blocks]
    whiten = model.whiten
    frozen = "figée" if not whiten.weight.requires_grad else "entraînée"
    return (
        f"une convolution de blanchiment {whiten.kernel_size[0]}×{whiten.kernel_size[1]} "
        f"({whiten.out_channels} filtres, {frozen}) puis GELU, {len(model.blocks)} blocs de "
        f"{convs} convolutions 3×3 (largeurs {', '.join(map(str, widths))}) chacun avec "
        f"max-pooling 2×2, normalisation par lots et GELU, {skip} connexion résiduelle, "
        f"un max-pooling global et une couche linéaire {model.head.in_features} → "
        f"{model.head.out_features} sans biais, sorties multipliées par "
        f"{str(model.head_scale).replace('.', ',')}"
    )
