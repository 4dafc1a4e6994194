"""Strict loading of third-party weight files (torchvision, insightface) with errors naming the file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from focus.errors import InputFileError

#: BatchNorm bookkeeping buffers: they have no effect in eval mode and older checkpoints lack them.
_OPTIONAL_SUFFIX = "num_batches_tracked"


def read_state_dict(path: str | Path, what: str) -> dict[str, Tensor]:
    """Read a ``torch.save``-d state dict (tensors only, ``weights_only``) from ``path``.

    A dict wrapped as ``{"state_dict": ...}`` is unwrapped and a ``module.`` prefix (from
    ``DistributedDataParallel``) is stripped. ``what`` names the expected content in errors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, f"{what} weights file not found", "name an existing file or leave the path empty")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure means a wrong or corrupt file
        raise InputFileError(path, f"not a readable PyTorch state dict for {what} ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in data.items()):
        raise InputFileError(path, f"expected a state dict (name -> tensor) of {what}, got {type(data).__name__}")
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module."):]: v for k, v in data.items()}
    return data


def load_state_dict_strict(model: nn.Module, state: dict[str, Tensor], path: str | Path, what: str,
                           hint: str | None = None) -> None:
    """Copy ``state`` into ``model``; every key and shape must match (except missing BN counters).

    Raises :class:`InputFileError` naming ``path``, listing (a few of) the missing, unexpected and
    mis-shaped entries; ``hint`` is appended as the fix.
    """
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state and not k.endswith(_OPTIONAL_SUFFIX))
    unexpected = sorted(k for k in state if k not in own)
    shapes = sorted(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape))
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
