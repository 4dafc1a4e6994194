"""Device names from settings and command lines -> :class:`torch.device` (one rule for the whole package)."""

from __future__ import annotations

import torch

from focus.errors import FocusError


def resolve_device(name: str = "auto", setting: str = "device", fix: str = "use cpu", index: int | None = None
                   ) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` -> ``cuda:<index>`` when ``index`` is
    given (one process per GPU under ``torchrun``); anything else as given.

    Raises :class:`focus.errors.FocusError` naming ``setting`` and ``fix`` when CUDA is asked for
    but not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and index is not None:
        name = f"cuda:{index}"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FocusError(f"{setting} is {name!r} but CUDA is not available here; {fix}")
    return dev


__all__ = ["resolve_device"]
