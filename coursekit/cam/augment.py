"""The one place coursekit imports imgaug (notebook 03).

imgaug 0.4.0 (2020, the course's library) still refers to `np.bool` and `np.complex`,
removed in numpy 1.24; we restore those two aliases before importing it.
"""

from __future__ import annotations

import numpy as np

# Look in the module dict: getattr on a removed alias raises a FutureWarning on numpy 1.x.
if "bool" not in vars(np):
    np.bool = bool  # type: ignore[attr-defined]
if "complex" not in vars(np):
    np.complex = complex  # type: ignore[attr-defined]

import imgaug  # noqa: E402
import imgaug.augmenters as iaa  # noqa: E402

__all__ = ["iaa", "imgaug"]
