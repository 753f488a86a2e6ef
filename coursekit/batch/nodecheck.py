"""`python -m coursekit.batch.nodecheck`: does this torch build run a CUDA kernel here?

An OAR job with `--gpu` runs it before the notebook. A GPU older than the build supports
(e.g. a GTX 1080 Ti, compute capability 6.1, under the CUDA 12.8 build of torch 2.9.1)
is found by torch but fails at the first kernel with "no kernel image is available"; the
job then stops at once, with a message and an exit code OAR does not resubmit, instead of
failing inside the notebook after queueing.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence

from coursekit.batch.errors import EXIT_NO_GPU
from coursekit.batch.oar import GPU_PROPERTY


def cuda_problem() -> str | None:
    """Return why no CUDA kernel runs on GPU 0 of this node, or None if one does."""
    import torch

    host = socket.gethostname()
    if not torch.cuda.is_available():
        return (
            f"no CUDA GPU is usable on {host} (torch.cuda.is_available() is False): ask OAR for "
            "a GPU (-l gpu=1, coursekit oar --gpu) or drop -p device cuda"
        )
    name = torch.cuda.get_device_name(0)
    major, minor = torch.cuda.get_device_capability(0)
    try:
        x = torch.arange(4, dtype=torch.float32, device="cuda")
        total = float((x * 2).sum())  # .item() waits for the kernels: errors surface here
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0]
        built = ", ".join(torch.cuda.get_arch_list()) or "unknown"
        return (
            f"{name} on {host} (compute capability {major}.{minor}) cannot run torch "
            f"{torch.__version__}'s CUDA kernels ({reason}); this build has kernels for "
            f"{built}. Ask OAR for a newer GPU with -p \"{GPU_PROPERTY}\" "
            "(coursekit oar --gpu adds it)"
        )
    if total != 12.0:
        return f"{name} on {host} computed 2 * (0+1+2+3) = {total}, not 12: a faulty GPU"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Print the verdict; return 0 if a CUDA kernel runs, EXIT_NO_GPU otherwise."""
    del argv  # no options: the check is the same for every job
    problem = cuda_problem()
    if problem is not None:
        print(f"coursekit oar: {problem}", file=sys.stderr, flush=True)
        return EXIT_NO_GPU
    import torch

    print(f"coursekit oar: CUDA kernels run on {torch.cuda.get_device_name(0)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
