"""Resumable training state: atomic checkpoints with optimiser, step and RNG state.

A stage's run folder (e.g. ``checkpoints/em``) holds

* ``last.pt`` -- the latest resumable state (written every ``train.checkpoint_every`` steps and at
  the end of every phase);
* per-phase / per-round snapshots (``round_01.pt``, ...) and ``final.pt`` (networks only).

Every file is written with :func:`focus.io_utils.atomic_path` + ``torch.save``, so an interrupted
run never leaves a half-written checkpoint (a process killed mid-write can leave the temporary file,
which the next run of the stage removes:
:meth:`focus.train.trainer.Trainer.remove_stale_temporaries`). Every file holds tensors and plain
data only (the RNG states too, :func:`rng_state`) and is read with ``torch.load(weights_only=True)``
(:func:`focus.nets.checkpoint.load_torch_file`): a crafted file cannot run code.

A state carries a **fingerprint** of everything that determines the training trajectory
(settings, input files); a run resumes only from a state with the same fingerprint, so changing
a parameter starts afresh instead of silently continuing a different run.
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
from focus.nets.checkpoint import RefusedFileError, load_torch_file

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
    """The global RNG states (torch CPU, CUDA if any, numpy, python) for exact resumption.

    Tensors and plain types only (readable with ``weights_only=True``): ``torch`` ``(N,)`` uint8;
    ``numpy`` a dict of the Mersenne Twister's ``keys`` ``(624,)`` int64 and its ``pos``,
    ``has_gauss``, ``cached_gaussian``; ``python`` a dict of ``version``, ``internal`` ``(625,)``
    int64 and ``gauss_next``; ``cuda`` a list of uint8 tensors.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": None if gauss_next is None else float(gauss_next),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
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
    """Read a checkpoint written by :func:`save_checkpoint` (CPU tensors, ``weights_only``); errors name the file.

    Raises:
        InputFileError: missing, corrupt, not a dict, or refused (it holds pickled Python objects;
            a resume state written by focus before the RNG states were stored as tensors is refused too).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found", "run the stage that writes it (e.g. `dvc repro init`)")
    state = load_torch_file(path, "checkpoint", "delete it to start the stage afresh")
    if not isinstance(state, dict):
        raise InputFileError(
            path,
            f"not a checkpoint (holds a {type(state).__name__}, not a dict)",
            "delete it to start the stage afresh",
        )
    return state


def find_resumable(run_dir: str | Path, fp: str) -> dict[str, Any] | None:
    """The ``last.pt`` state of ``run_dir`` if its fingerprint is ``fp``, else ``None``.

    A state with another fingerprint (other settings or inputs) is ignored with a log line; a
    corrupt one too (it is never half-written by this code, but a user may have copied it).

    Raises:
        InputFileError: ``last.pt`` holds pickled Python objects: it is refused (not run, not
            deleted); the message names it.
    """
    path = Path(run_dir) / LAST
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
    except RefusedFileError:
        raise
    except InputFileError as exc:
        log.warning("ignoring unreadable resume state: %s", exc)
        return None
    if state.get("fingerprint") != fp:
        log.info(
            "%s belongs to other settings or inputs (fingerprint %s, now %s): starting afresh",
            path,
            state.get("fingerprint"),
            fp,
        )
        return None
    return state


__all__ = [
    "LAST",
    "file_digest",
    "find_resumable",
    "fingerprint",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]
