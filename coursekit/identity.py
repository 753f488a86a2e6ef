"""What makes two trainings the same one: a fingerprint of their data and network code.

A checkpoint is reused only for the same training (`train.fit` compares identities before
loading one). Its configuration is already in its file name (`checkpoint.config_name`);
this module adds what the name cannot see: the images and labels actually trained on (a
subset, another split or another data folder gives another fingerprint) and the source of
any network class written outside the package, in a notebook cell.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

# Classes from these packages are identified by their configuration (the checkpoint's name);
# any other class is a student's or a cell's, and its source joins the identity.
PACKAGED = ("coursekit", "torch", "torchvision", "torchaudio", "timm")


def digest(*parts: Any) -> str:
    """Return a 16-hex-digit SHA-1 of `parts`: bytes as they are, anything else by repr."""
    h = hashlib.sha1()
    for part in parts:
        h.update(part if isinstance(part, bytes) else repr(part).encode())
    return h.hexdigest()[:16]


def array_digest(array: torch.Tensor | np.ndarray | Iterable) -> str:
    """Return the digest of an array's shape, dtype and every value (a tensor on any device)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().contiguous().numpy()
    array = np.ascontiguousarray(np.asarray(array))
    return digest(array.shape, str(array.dtype), array.tobytes())


def data_identity(data: Any) -> dict[str, Any] | None:
    """Return a fingerprint of a loader or dataset ({'n', 'images', 'labels', ...}), or None
    when its content cannot be read without iterating it."""
    if data is None:
        return None
    if callable(getattr(data, "data_identity", None)):  # a loader that knows its content
        return data.data_identity()
    if hasattr(data, "images") and hasattr(data, "labels"):  # TensorLoader
        options = {k: getattr(data, k, None) for k in ("hflip", "crop_padding", "drop_last")}
        mean, std = getattr(data, "mean", None), getattr(data, "std", None)
        return {
            "n": len(data.labels), "images": array_digest(data.images),
            "labels": array_digest(data.labels), "options": options,
            "normalize": [array_digest(t) if t is not None else None for t in (mean, std)],
        }  # fmt: skip
    if isinstance(data, torch.utils.data.DataLoader):
        inner = data_identity(data.dataset)
        return None if inner is None else {**inner, "drop_last": data.drop_last}
    if isinstance(data, torch.utils.data.Subset):
        inner = data_identity(data.dataset)
        return None if inner is None else {"subset": array_digest(list(data.indices)), **inner}
    if isinstance(data, torch.utils.data.TensorDataset):
        return {"n": len(data), "tensors": [array_digest(t) for t in data.tensors]}
    if hasattr(data, "data") and hasattr(data, "targets"):  # torchvision datasets
        return {"n": len(data), "images": array_digest(data.data),
                "labels": array_digest(data.targets)}
    return None


def _class_source(cls: type) -> str:
    """Return the source of a class's own methods (a class typed in a notebook cell has no
    file for `inspect.getsource`, its functions do: IPython registers each cell's code)."""
    parts = []
    for name, member in sorted(vars(cls).items()):
        func = getattr(member, "__func__", member)
        if inspect.isfunction(func):
            try:
                parts.append(inspect.getsource(func))
            except (OSError, TypeError):  # no source kept: the compiled code still differs
                code = func.__code__
                parts.append(repr((code.co_code, code.co_consts, code.co_names)))
        elif not name.startswith("__"):
            parts.append(f"{name}={member!r}")
    return "\n".join(parts)


def written_outside_the_package(cls: type) -> bool:
    """Return True for a class defined in a notebook cell or a user's module."""
    return cls.__module__.split(".")[0] not in PACKAGED


def model_identity(model: nn.Module) -> dict[str, Any]:
    """Return the network's identity: its class, its printed structure, and the source of
    every module class in it written outside the package (a network typed in a cell)."""
    written = sorted(
        {type(m) for m in model.modules() if written_outside_the_package(type(m))},
        key=lambda c: c.__qualname__,
    )
    return {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "structure": digest(repr(model)),
        "cell_code": {c.__qualname__: digest(_class_source(c)) for c in written},
    }


def training_identity(model: nn.Module, *loaders: Any) -> dict[str, Any]:
    """Return {'model': model_identity, 'data': [data_identity of each loader]}."""
    return {"model": model_identity(model), "data": [data_identity(d) for d in loaders]}


def differences(stored: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Return, in French, what differs between two identities ([] when they are the same)."""
    if stored is None:
        return ["identité inconnue (point de sauvegarde d'une version antérieure)"]
    found = []
    old_model, new_model = stored.get("model", {}), current["model"]
    if old_model.get("cell_code") != new_model["cell_code"]:
        found.append("code du réseau écrit dans le notebook")
    if {k: old_model.get(k) for k in ("class", "structure")} != {
        k: new_model[k] for k in ("class", "structure")
    }:
        found.append("architecture du réseau")
    if stored.get("data") != current["data"]:
        found.append("données (taille, découpage, graine ou fichiers)")
    return found
