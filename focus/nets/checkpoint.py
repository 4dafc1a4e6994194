"""Safe reading of ``.pt`` files and strict loading of weights, with errors naming the file.

:func:`load_torch_file` is the one place the package reads a ``torch.save``-d file: always with
``torch.load(weights_only=True)``, so a file holding pickled Python objects (which could run code
while being read) is refused, never executed. :func:`read_state_dict` and
:func:`load_state_dict_strict` read third-party weights (torchvision, insightface).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from focus.errors import InputFileError

#: BatchNorm bookkeeping buffers: they have no effect in eval mode and older checkpoints lack them.
_OPTIONAL_SUFFIX = "num_batches_tracked"


class RefusedFileError(InputFileError):
    """A ``.pt`` file that holds pickled Python objects besides tensors and plain data: not loaded."""


def _unsupported_global(exc: BaseException) -> str | None:
    """The first Python object a refused pickle asked for (from torch's message), if named."""
    m = re.search(r"Unsupported global: GLOBAL ([^\s]+)", str(exc))
    return m.group(1) if m else None


def load_torch_file(path: str | Path, what: str, fix: str | None = None) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors naming the file.

    Only tensors and plain data (dicts, lists, tuples, strings, numbers, ``None``) are read; a file
    that needs any other Python object is refused before anything in it runs.

    Args:
        path: the file.
        what: what it should hold, for the messages (e.g. ``"FOCUS checkpoint"``).
        fix: what the user can do, appended to every message.

    Raises:
        RefusedFileError: the file holds pickled Python objects (an :class:`InputFileError`).
        InputFileError: the file is missing, is not a PyTorch file or is corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, f"{what} not found", fix)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = _unsupported_global(exc)
        detail = f"it asks for the Python object {name}" if name else "it is not plain tensor data"
        problem = f"refused to load this {what}: {detail}, and unpickling such a file could run code"
        raise RefusedFileError(path, problem + " (only tensors and plain data are read)", fix) from exc
    except Exception as exc:  # noqa: BLE001 - any reader failure means a wrong or corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputFileError(path, f"not a readable {what} ({exc.__class__.__name__}: {first[:200]})", fix) from exc


def read_state_dict(path: str | Path, what: str) -> dict[str, Tensor]:
    """Read a ``torch.save``-d state dict (tensors only, ``weights_only``) from ``path``.

    A dict wrapped as ``{"state_dict": ...}`` is unwrapped and a ``module.`` prefix (from
    ``DistributedDataParallel``) is stripped. ``what`` names the expected content in errors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, f"{what} weights file not found", "name an existing file or leave the path empty")
    data = load_torch_file(path, f"PyTorch state dict for {what}")
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in data.items()):
        from focus.nets.trained import describe_contents

        kind = describe_contents(data)
        raise InputFileError(path, f"expected a state dict (name -> tensor) of {what}, but it is {kind}")
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    return data


def load_state_dict_strict(
    model: nn.Module, state: dict[str, Tensor], path: str | Path, what: str, hint: str | None = None
) -> None:
    """Copy ``state`` into ``model``; every key and shape must match (except missing BN counters).

    Raises :class:`InputFileError` naming ``path``, listing (a few of) the missing, unexpected and
    mis-shaped entries; ``hint`` is appended as the fix.
    """
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state and not k.endswith(_OPTIONAL_SUFFIX))
    unexpected = sorted(k for k in state if k not in own)
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    )
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            shown = ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise InputFileError(path, f"does not match {what}; " + "; ".join(problems), hint)
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise InputFileError(path, f"{what} weights contain NaN or infinite values in {bad[:6]}")
    full = dict(own)
    full.update(state)
    model.load_state_dict(full, strict=True)
