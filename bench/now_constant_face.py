"""How much of a model's NoW-like score a *constant* face gets: the model's average prediction.

The NoW protocol scores one neutral mesh per image against the subject's scan. When the encoder
has not learnt identity (identity correlation near 0), its meshes differ little from image to image,
and a gain over the mean face can come from the *average* shape it predicts rather than from
following each face. This bench separates the two: it averages a model's kept NoW predictions
(``data/eval/now/predictions/<key>``, written by the ``eval_now`` stage; no ground truth is used)
and scores that one face for every image with the same protocol (``focus now-eval``), beside the
model's own score and the mean face's (``reports/eval/now/metrics.json``).

    python bench/now_constant_face.py --out bench/results/now_constant_face.json

Run it after ``dvc repro eval_now`` on the same workspace; it writes only under ``--work`` and
``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def read_predictions(folder: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(names, vertices (N, V, 3) mm, triangles (F, 3))`` of a NoW predictions folder."""
    from focus.geometry.mesh_io import read_mesh

    objs = sorted(folder.rglob("*.obj"))
    if not objs:
        raise SystemExit(f"{folder}: no predictions (*.obj); run `dvc repro eval_now` first")
    names, verts, faces = [], [], None
    for p in objs:
        v, f = read_mesh(p)
        if faces is None:
            faces = f
        names.append(p.relative_to(folder).with_suffix(".jpg").as_posix())
        verts.append(v)
    return names, np.stack(verts), faces


def score(dataset: Path, predictions: Path, out: Path) -> dict:
    """The ``focus now-eval`` protocol on ``predictions``: ``{challenge or 'all': {median, mean, std, ...}}``."""
    from focus.now.scorer import score_predictions_folder

    return score_predictions_folder(dataset, predictions, out, progress=False)["results"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["focus"], help="kept NoW predictions to average (default focus)")
    p.add_argument("--predictions", default="data/eval/now/predictions", help="the eval_now stage's kept predictions")
    p.add_argument("--dataset", default="data/synth/now", help="the NoW-layout set they were made for")
    p.add_argument("--metrics", default="reports/eval/now/metrics.json", help="the eval_now stage's metrics")
    p.add_argument("--work", default="/tmp/focus_now_constant_face", help="folder for the constant predictions")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    a = p.parse_args(argv)

    from focus.config import merged_params
    from focus.eval.now_predictions import write_now_predictions
    from focus.facemodel import load_face_model

    params = merged_params(["params.yaml"])
    fm = load_face_model(params["train"]["facemodel"])
    ids = fm.now_landmarks7.numpy()
    metrics = json.loads(Path(a.metrics).read_text(encoding="utf-8"))
    work = Path(a.work)
    results = {}
    for key in a.models:
        t0 = time.perf_counter()
        names, verts, faces = read_predictions(Path(a.predictions) / key)
        const = np.broadcast_to(verts.mean(0), verts.shape)
        spread = float(np.linalg.norm(verts - verts.mean(0), axis=-1).mean())
        folder = write_now_predictions(work / f"{key}_average", names, const, faces, ids)
        res = score(Path(a.dataset), folder, work / f"{key}_average.json")
        row = {
            "images": len(names),
            "mean_vertex_distance_to_average_mm": round(spread, 4),
            "model": {ch: metrics.get(key, {}).get(ch, {}).get("median") for ch in ("all", "multiview_occlusions")},
            "average_face": {ch: round(float(res[ch]["median"]), 4) for ch in ("all", "multiview_occlusions")},
            "mean_face": {
                ch: metrics.get("mean_face", {}).get(ch, {}).get("median") for ch in ("all", "multiview_occlusions")
            },
            "seconds": round(time.perf_counter() - t0, 1),
        }
        results[key] = row
        print(key, json.dumps(row), flush=True)
    if a.out:
        doc = {
            "what": "NoW-like medians (mm) of each model, of its average prediction used for every image, and of the "
            "mean face; mean_vertex_distance_to_average_mm: how far the model's meshes lie from their average",
            "dataset": a.dataset,
            "results": results,
        }
        from focus.io_utils import write_json_atomic

        write_json_atomic(Path(a.out), doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
