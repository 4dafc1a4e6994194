"""The NoW benchmark scorer (non-metrical and metrical protocols), runnable anywhere.

Modules: :mod:`~focus.now.layout` (dataset and prediction folders, prediction writer),
:mod:`~focus.now.pp_io` (scan landmark ``.pp`` files), :mod:`~focus.now.landmark_io` (prediction
landmark files), :mod:`~focus.now.alignment` (crop, Procrustes, rigid refinement), :mod:`~focus.now.scorer`
(per-image and pooled scores), :mod:`~focus.now.plots` (cumulative error curves),
:mod:`~focus.now.cli` (``focus now-eval``). Mesh files and point-to-surface distances are general geometry:
:mod:`focus.geometry`.

The names below are importable from ``focus.now`` directly; they are loaded on first use so that
the ``focus`` command starts quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "RefinementSettings": "alignment",
    "Similarity": "alignment",
    "crop_scan": "alignment",
    "crop_sphere": "alignment",
    "procrustes": "alignment",
    "refine_alignment": "alignment",
    "CHALLENGES": "layout",
    "NowDataset": "layout",
    "NowImage": "layout",
    "find_prediction": "layout",
    "write_prediction": "layout",
    "read_landmarks": "landmark_io",
    "write_landmarks": "landmark_io",
    "read_pp": "pp_io",
    "write_pp": "pp_io",
    "ImageScore": "scorer",
    "MissingPredictionsError": "scorer",
    "NowEvaluation": "scorer",
    "evaluate_now": "scorer",
    "save_evaluation": "scorer",
    "score_prediction": "scorer",
    "score_predictions_folder": "scorer",
    "summarize": "scorer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"focus.now.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'focus.now' has no attribute {name!r}")
