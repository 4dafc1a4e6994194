"""Predictions in the NoW submission layout, scored with ``focus now-eval``.

:func:`write_now_predictions` writes one colourless neutral mesh (model frame, mm) and its 7 NoW
landmarks per image with the NoW writer (:func:`focus.now.layout.write_prediction`):
``<pred>/<subject>/<challenge>/<IMG>.obj`` + ``<IMG>.npy``. :func:`score_now` runs the
``focus now-eval`` command on such a folder (in this process, exactly as on the command line)
and returns its JSON summary (median / mean / std in mm per challenge and over all, pooled over
scan vertices).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from focus.errors import FocusError


def write_now_predictions(out_dir: str | Path, names: Sequence[str], neutral: np.ndarray, triangles: np.ndarray,
                          now_landmark_ids: np.ndarray, clean: bool = True, progress: bool = False) -> Path:
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
    for name, verts in tqdm(list(zip(names, neutral)), desc=f"write {out_dir.name}", unit="mesh", disable=not progress,
                            leave=False):
        write_prediction(out_dir, NowImage.parse(name), verts, tri, verts[ids])
    return out_dir


def score_now(dataset: str | Path, predictions: str | Path, out_json: str | Path, image_list: str | Path | None = None,
              allow_missing: bool = False, progress: bool = False) -> dict:
    """Score a predictions folder with ``focus now-eval``; returns the JSON document it writes.

    Besides ``out_json`` the scorer writes ``<stem>_per_image.npz`` and
    ``<stem>_cumulative_error.png`` beside it.

    Raises:
        FocusError: the scorer failed (its message names the problem, e.g. missing predictions).
    """
    import contextlib
    import io

    from focus.cli import main

    argv = ["now-eval", "--dataset", str(dataset), "--predictions", str(predictions), "--out", str(out_json)]
    if image_list is not None:
        argv += ["--image-list", str(image_list)]
    if allow_missing:
        argv.append("--allow-missing")
    if not progress:
        argv.append("--no-progress")
    err = io.StringIO()
    with contextlib.redirect_stderr(err) if not progress else contextlib.nullcontext():
        rc = main(argv)
    if rc != 0:
        raise FocusError(f"focus {' '.join(argv)} failed (exit status {rc}): {err.getvalue().strip()}")
    return json.loads(Path(out_json).read_text(encoding="utf-8"))


def score_job(args: tuple) -> str:
    """:func:`score_now` on ``(key, predictions, image_list, dataset, scores_dir, allow_missing)``,
    writing ``<scores_dir>/<key>.json`` (a picklable job for worker processes); returns ``key``."""
    import json

    from focus.run_info import write_json_reproducible

    key, predictions, image_list, dataset, scores_dir, allow_missing = args
    out = Path(scores_dir) / f"{key}.json"
    score_now(dataset, predictions, out, image_list, allow_missing, False)
    # the scorer's timings go beside it (``<key>.timings.json``): data/eval is a hashed DVC output
    write_json_reproducible(out, json.loads(out.read_text(encoding="utf-8")))
    return key


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
        return {k[len("curve_percent_"):]: (x, np.asarray(z[k])) for k in z.files if k.startswith("curve_percent_")}


__all__ = ["cumulative_curves", "per_image_errors", "score_job", "score_now", "write_now_predictions"]
