"""The GPU check an OAR job runs first: a GPU this torch build has no kernels for is refused."""

from __future__ import annotations

import pytest
import torch

from coursekit.batch import nodecheck
from coursekit.batch.errors import EXIT_NO_GPU


@pytest.fixture
def pascal_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch sees a GTX 1080 Ti (capability 6.1), which the CUDA 12.8 build cannot run on."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA GeForce GTX 1080 Ti")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (6, 1))
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_70", "sm_80", "sm_90"])
    arange = torch.arange

    def kernel(*args, device=None, **kwargs):
        if device == "cuda":  # what torch raises at the first kernel on such a GPU
            raise RuntimeError(
                "CUDA error: no kernel image is available for execution on the device\n"
                "CUDA kernel errors might be asynchronously reported"
            )
        return arange(*args, device=device, **kwargs)

    monkeypatch.setattr(torch, "arange", kernel)


@pytest.mark.usefixtures("pascal_gpu")
def test_a_gpu_too_old_for_this_torch_is_refused_with_the_property_to_ask(capsys):
    assert nodecheck.main([]) == EXIT_NO_GPU != 99
    err = capsys.readouterr().err
    assert "GTX 1080 Ti" in err and "compute capability 6.1" in err
    assert "no kernel image is available" in err and "sm_70, sm_80, sm_90" in err
    assert '-p "gpu_compute_capability_major>=7"' in err


def test_no_gpu_at_all_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert nodecheck.main([]) == EXIT_NO_GPU
    assert "no CUDA GPU is usable" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_supported_gpu_passes(capsys):
    assert nodecheck.cuda_problem() is None
    assert nodecheck.main([]) == 0
    assert "CUDA kernels run on" in capsys.readouterr().out
