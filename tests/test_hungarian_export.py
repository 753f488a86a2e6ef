"""Notebook 07's TorchScript export: the file loads without coursekit and gives the same logits."""

import subprocess
import sys

import pytest
import torch

from coursekit.hungarian.export import check_export, export_torchscript
from coursekit.hungarian.models import HNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("switches", [{}, {"attention": False}, {"clip_input": 3.0}])
def test_the_exported_hnet_gives_the_same_logits_on_other_matrices(tmp_path, switches):
    torch.manual_seed(0)
    model = HNet(3, hidden=16, **switches)
    path = export_torchscript(model, torch.rand(8, 3, 3) * 4, tmp_path / "hnet.pt")
    other = torch.rand(50, 3, 3) * 4  # another batch size, other values (some above 3)
    assert check_export(model, path, other) < 1e-5
    # a different network gives different logits: the check can fail
    assert check_export(HNet(3, hidden=16, **switches), path, other) > 1e-3


def test_the_exported_file_loads_without_coursekit(tmp_path):
    model = HNet(2, hidden=8)
    path = export_torchscript(model, torch.rand(4, 2, 2), tmp_path / "hnet.pt")
    code = (
        "import sys, torch\n"
        "m = torch.jit.load(sys.argv[1])\n"
        "assert 'coursekit' not in sys.modules\n"
        "print(tuple(m(torch.zeros(5, 2, 2)).shape))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True, cwd=tmp_path)  # fmt: skip
    assert out.stdout.strip() == "(5, 2, 2)"
