"""Where and how a process computes: the device (:func:`resolve_device`), the number of CPU threads
(:func:`resolve_threads`, :func:`set_threads`) and deterministic kernels (:func:`use_deterministic`).

One rule for the whole package. Thread counts come from settings, never from the current load of
the machine, so that the same machine, code and params give the same bytes whatever else the
machine is doing (see README, "Reproducibility").
"""

from __future__ import annotations

import os

import torch

from focus.errors import FocusError


def resolve_device(
    name: str = "auto", setting: str = "device", fix: str = "use cpu", index: int | None = None
) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` -> ``cuda:<index>`` when ``index`` is
    given (one process per GPU under ``torchrun``: the local rank); anything else as given.

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


def resolve_threads(setting: int, world_size: int = 1, cpu_count: int | None = None) -> int:
    """Torch threads per process for a ``num_threads`` setting; ``0`` means "leave torch's default".

    ``n > 0``: ``n``. ``-1`` ("auto"): the machine's cores (``os.cpu_count()``) shared among the
    ``world_size`` processes, at least 1. Never the current load: a count that depends on what
    else runs would make results depend on it (reductions split over threads round differently).
    """
    if setting > 0:
        return int(setting)
    if setting == 0:
        return 0
    if setting != -1:
        raise FocusError(f"num_threads is {setting}; use a positive count, 0 (torch's default) or -1 (auto)")
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, int(cores) // max(1, int(world_size)))


def set_threads(setting: int, world_size: int = 1) -> int:
    """Apply :func:`resolve_threads` to torch (intra-op threads); returns the count in use."""
    n = resolve_threads(setting, world_size)
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def use_deterministic() -> None:
    """Deterministic kernels wherever PyTorch has them (``torch.use_deterministic_algorithms``);
    an op without one warns instead of failing. On CUDA, cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG``
    set before its first call (:func:`focus.stage_cli.pin_process` sets it before torch loads)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


__all__ = ["resolve_device", "resolve_threads", "set_threads", "use_deterministic"]
