import linecache

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from coursekit.data.tensor_loader import TensorLoader
from coursekit.fashion.models import LeNet5
from coursekit.identity import (
    data_identity,
    differences,
    model_identity,
    training_identity,
)

CELL = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return {body}
"""


def cell_network(body: str, register: bool, n: int = 0) -> nn.Module:
    """Return a Net defined the way a notebook cell defines it (module __main__)."""
    source = CELL.format(body=body)
    filename = f"/tmp/ipykernel_0/{n}.py"
    if register:  # what IPython does for every cell, so that inspect finds its source
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["Net"]()


def loader(images: torch.Tensor, labels: torch.Tensor, **kw) -> TensorLoader:
    return TensorLoader(images, labels, batch_size=4, device="cpu", mean=0.5, std=0.25, **kw)


def test_same_data_same_identity_other_data_another():
    images = torch.randint(0, 255, (20, 1, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (20,))
    first = data_identity(loader(images, labels))
    assert first == data_identity(loader(images.clone(), labels.clone()))
    assert first != data_identity(loader(images[:19], labels[:19]))  # a smaller subset
    changed = images.clone()
    changed[3, 0, 0, 0] += 1  # one pixel of one image
    assert first != data_identity(loader(changed, labels))
    assert first != data_identity(loader(images, labels, hflip=True))  # augmented differently


def test_datasets_and_dataloaders_have_a_content_fingerprint():
    x, y = torch.randn(10, 3), torch.arange(10)
    base = TensorDataset(x, y)
    assert data_identity(DataLoader(base, batch_size=2)) == data_identity(
        DataLoader(TensorDataset(x.clone(), y.clone()), batch_size=5)
    )
    assert data_identity(Subset(base, [0, 1, 2])) != data_identity(Subset(base, [0, 1, 3]))
    assert data_identity(iter([1, 2])) is None  # unknown content: no fingerprint claimed


def test_a_network_written_in_a_cell_is_identified_by_its_code():
    for register in (True, False):  # with IPython's source cache, and from bytecode alone
        relu = cell_network("torch.relu(self.fc(x))", register, n=1 if register else 3)
        plain = cell_network("self.fc(x)", register, n=2 if register else 4)
        same = cell_network("torch.relu(self.fc(x))", register, n=5 if register else 6)
        # Same structure (repr), different forward: only the cell's code tells them apart.
        assert repr(relu) == repr(plain)
        assert model_identity(relu)["cell_code"] != model_identity(plain)["cell_code"]
        assert model_identity(relu) == model_identity(same)


def test_package_networks_are_identified_by_structure_not_code():
    identity = model_identity(LeNet5())
    assert identity["cell_code"] == {} and identity["class"].endswith("LeNet5")
    assert identity != model_identity(LeNet5(dropout=0.5))


def test_differences_say_in_french_what_changed():
    x = torch.randint(0, 255, (8, 1, 8, 8), dtype=torch.uint8)
    y = torch.arange(8) % 10
    net = cell_network("self.fc(x)", True, n=7)
    stored = training_identity(net, loader(x, y))
    assert differences(stored, training_identity(net, loader(x, y))) == []
    other_data = training_identity(net, loader(x[:4], y[:4]))
    assert differences(stored, other_data) == ["données (taille, découpage, graine ou fichiers)"]
    other_code = training_identity(cell_network("-self.fc(x)", True, n=8), loader(x, y))
    assert differences(stored, other_code) == ["code du réseau écrit dans le notebook"]
    assert "identité inconnue" in differences(None, stored)[0]
