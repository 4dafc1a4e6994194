"""Resumable training state: atomic checkpoints with optimiser, step and RNG state.

A stage's run folder (e.g. ``checkpoints/em``) holds

* ``last.pt`` -- the latest resumable state (written every ``train.checkpoint_every`` steps and at
  the end of every phase);
* per-phase / per-round snapshots (``round_01.pt``, ...) and ``final.pt`` (networks only).

Every file is written with :func:`focus.io_utils.atomic_path` + ``torch.save``, so an interrupted
run never leaves a half-written checkpoint. A state carries a **fingerprint** of everything that
determines the training trajectory (settings, input files); a run resumes only from a state with
the same fingerprint, so changing a parameter starts afresh instead of silently continuing a
different run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from focus.errors import InputFileError
from focus.io_utils import atomic_path

log = logging.getLogger("focus.train")

LAST = "last.pt"


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (``"missing"`` if it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(data: Any) -> str:
    """Short SHA-256 of a JSON-able description (settings, input digests)."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU, CUDA if any, numpy, python) for exact resumption."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """``torch.save(state)`` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as fh:
        # to a file object: torch names the zip's inner folder after a path's (random, temporary) stem,
        # which would make the same state different bytes on every save
        torch.save(state, fh)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (CPU tensors); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found", "run the stage that writes it (e.g. `dvc repro init`)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
        raise InputFileError(path, f"not a readable checkpoint ({exc.__class__.__name__}: {exc})",
                             "delete it to start the stage afresh") from exc


def find_resumable(run_dir: str | Path, fp: str) -> dict[str, Any] | None:
    """The ``last.pt`` state of ``run_dir`` if its fingerprint is ``fp``, else ``None``.

    A state with another fingerprint (other settings or inputs) is ignored with a log line; a
    corrupt one too (it is never half-written by this code, but a user may have copied it).
    """
    path = Path(run_dir) / LAST
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
    except InputFileError as exc:
        log.warning("ignoring unreadable resume state: %s", exc)
        return None
    if state.get("fingerprint") != fp:
        log.info("%s belongs to other settings or inputs (fingerprint %s, now %s): starting afresh",
                 path, state.get("fingerprint"), fp)
        return None
    return state


__all__ = ["LAST", "file_digest", "find_resumable", "fingerprint", "load_checkpoint", "rng_state", "save_checkpoint",
           "set_rng_state"]
