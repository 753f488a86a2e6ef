"""Networks used by the notebooks, one file each, and `measure` to look inside them."""

from coursekit.models.lenet import LeNet5
from coursekit.models.measure import count_parameters
from coursekit.models.mnist_net import MnistNet

__all__ = ["LeNet5", "MnistNet", "count_parameters"]
