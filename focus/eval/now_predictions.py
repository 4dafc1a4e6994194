"""Predictions in the NoW submission layout, and their NoW scores.

:func:`write_now_predictions` writes one colourless neutral mesh (model frame, mm) and its 7 NoW
landmarks per image with the NoW writer (:func:`focus.now.layout.write_prediction`):
``<pred>/<subject>/<challenge>/<IMG>.obj`` + ``<IMG>.npy``. :func:`score_now` scores such a folder
with the NoW scorer's functions (:func:`focus.now.evaluate_now`, :func:`focus.now.save_evaluation`:
the same protocol and outputs as ``focus now-eval``) and returns its JSON summary (median / mean /
std in mm per challenge and over all, pooled over scan vertices). :func:`identity_correlation`
compares predicted identity coefficients with the true ones of a synthetic set.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm


def write_now_predictions(
    out_dir: str | Path,
    names: Sequence[str],
    neutral: np.ndarray,
    triangles: np.ndarray,
    now_landmark_ids: np.ndarray,
    clean: bool = True,
    progress: bool = False,
) -> Path:
    """Write the predictions of ``names`` (NoW image-list entries ``<subject>/<challenge>/<IMG>.jpg``).

    Args:
        out_dir: the predictions folder (emptied first when ``clean``).
        names: one entry per row of ``neutral``.
        neutral: ``(N, V, 3)`` neutral meshes, mm.
        triangles: ``(F, 3)`` 0-based.
        now_landmark_ids: ``(7,)`` vertex ids of the NoW landmarks (``FaceModel.now_landmarks7``).
    """
    from focus.now.layout import NowImage, write_prediction

    out_dir = Path(out_dir)
    neutral = np.asarray(neutral)
    if len(names) != len(neutral):
        raise ValueError(f"{len(names)} names for {len(neutral)} meshes")
    if clean and out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = np.asarray(now_landmark_ids, np.int64)
    tri = np.asarray(triangles, np.int64)
    for name, verts in tqdm(
        list(zip(names, neutral, strict=True)),
        desc=f"write {out_dir.name}",
        unit="mesh",
        disable=not progress,
        leave=False,
    ):
        write_prediction(out_dir, NowImage.parse(name), verts, tri, verts[ids])
    return out_dir


def score_now(
    dataset: str | Path,
    predictions: str | Path,
    out_json: str | Path,
    image_list: str | Path | None = None,
    allow_missing: bool = False,
    progress: bool = False,
) -> dict:
    """Score a predictions folder with the NoW protocol; returns the JSON document written to ``out_json``.

    Besides ``out_json`` the scorer writes ``<stem>_per_image.npz`` and ``<stem>_cumulative_error.png``
    beside it, and ``<stem>_missing.txt`` listing the images without a prediction (when there are any).

    Raises:
        focus.now.scorer.MissingPredictionsError: predictions are missing and ``allow_missing`` is false
            (its ``missing`` attribute lists them).
        InputFileError: a dataset file is missing, a prediction is malformed (the message names the file)
            or ``out_json`` cannot be written (checked before scoring).
    """
    from focus.now.scorer import score_predictions_folder

    return score_predictions_folder(
        dataset, predictions, out_json, image_list=image_list, allow_missing=allow_missing, progress=progress
    )


@dataclass(frozen=True)
class ScoreJob:
    """One predictions folder to score into ``<scores_dir>/<key>.json`` (picklable, for worker processes)."""

    key: str
    predictions: Path
    image_list: Path | None
    dataset: Path
    scores_dir: Path
    allow_missing: bool = False

    @property
    def out_json(self) -> Path:
        return Path(self.scores_dir) / f"{self.key}.json"


def score_job(job: ScoreJob) -> str:
    """:func:`score_now` of one :class:`ScoreJob` (no progress bar); returns its key.

    The scorer's timings go beside its JSON (``<key>.timings.json``): ``data/eval`` is a hashed DVC output.
    """
    import json

    from focus.run_info import write_json_reproducible

    score_now(job.dataset, job.predictions, job.out_json, job.image_list, job.allow_missing, False)
    write_json_reproducible(job.out_json, json.loads(job.out_json.read_text(encoding="utf-8")))
    return job.key


def read_truth_id(root: str | Path, names: Sequence[str]) -> np.ndarray | None:
    """True identity coefficients ``(N, K_id)`` of ``names`` from a synthetic set's ``truth.npz``.

    ``None`` when the set has no ``truth.npz`` (real data) or it lacks one of the names.
    """
    path = Path(root) / "truth.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        if "names" not in z.files or "id" not in z.files:
            return None
        row = {str(n): i for i, n in enumerate(z["names"])}
        if any(n not in row for n in names):
            return None
        return np.asarray(z["id"], np.float64)[[row[n] for n in names]]


def identity_correlation(pred_id: np.ndarray, true_id: np.ndarray, k: int = 10) -> float | None:
    """Mean Pearson correlation, across images, of the first ``k`` predicted and true identity
    coefficients (``(N, K)`` each; :func:`focus.train.metrics.coefficient_correlation`, as in training's
    validation). 0 for a constant prediction (the mean face); ``None`` with fewer than 3 images."""
    import torch

    from focus.train.metrics import coefficient_correlation

    return coefficient_correlation(
        torch.as_tensor(np.asarray(pred_id, np.float64)), torch.as_tensor(np.asarray(true_id, np.float64)), k
    )


def per_image_errors(out_json: str | Path) -> dict[str, np.ndarray]:
    """Per-image arrays of a scorer run: ``image`` keys, ``challenge``, ``median`` and ``mean`` (mm)."""
    p = Path(out_json)
    npz = p.with_name(p.stem + "_per_image.npz")
    with np.load(npz, allow_pickle=False) as z:
        return {k: np.asarray(z[k]) for k in ("image", "challenge", "median", "mean")}


def cumulative_curves(out_json: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The cumulative error curves of a scorer run: ``{challenge or 'all': (x_mm, percent)}``."""
    p = Path(out_json)
    npz = p.with_name(p.stem + "_per_image.npz")
    with np.load(npz, allow_pickle=False) as z:
        x = np.asarray(z["curve_x_mm"])
        return {k[len("curve_percent_") :]: (x, np.asarray(z[k])) for k in z.files if k.startswith("curve_percent_")}


__all__ = [
    "ScoreJob",
    "cumulative_curves",
    "identity_correlation",
    "per_image_errors",
    "read_truth_id",
    "score_job",
    "score_now",
    "write_now_predictions",
]
