import torch
from torch import nn

from coursekit.mnist.models import MnistNet
from coursekit.models import count_parameters


def images(n: int = 8) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_output_is_log_probabilities_of_10_classes():
    torch.manual_seed(0)
    out = MnistNet().eval()(images(5))
    assert out.shape == (5, 10)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(5), atol=1e-5)
    assert (out <= 0).all()


def test_parameter_count_matches_the_pytorch_example():
    assert count_parameters(MnistNet()) == 1_199_882
    assert count_parameters(MnistNet(dropout=False)) == 1_199_882


def test_dropout_false_removes_dropout():
    torch.manual_seed(0)
    model = MnistNet(dropout=False)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    x = images()
    train_out = model.train()(x)
    assert torch.equal(train_out, model.train()(x))
    assert torch.allclose(train_out, model.eval()(x))


def test_dropout_true_makes_training_outputs_random():
    torch.manual_seed(0)
    model = MnistNet(dropout=True)
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2
    x = images()
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
