"""Networks used by the notebooks."""

from coursekit.models.lenet import LeNet5
from coursekit.models.mnist_net import MnistNet

__all__ = ["LeNet5", "MnistNet", "count_parameters"]


def count_parameters(model, trainable_only: bool = True) -> int:
    """Return the number of (trainable) scalar parameters of `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
