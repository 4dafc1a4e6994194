"""Benchmark of the NoW scorer: seconds and peak memory to score one image.

A synthetic scan of about 120k vertices (a face-like surface wider than the NoW crop, like a
head scan) and a prediction of about 35k vertices / 70k faces are written in the exact NoW
layout, then scored with :func:`focus.now.scorer.evaluate_now` (reading the scan, its ``.pp``,
the prediction mesh and landmarks, crop, Procrustes, refinement, errors). Two predictions:

* ``different_face``: another face shape with noisy landmarks in a random frame and unit
  (the timed case: refinement has real work to do; errors ~0.5-1 mm like real methods);
* ``same_surface``: the scan's own surface on a different grid, mirrored and in another frame
  (correctness: the errors must be ~0, up to the tessellation of the two grids).

With ``--compare-libraries`` the JSON also records the library checks behind
:mod:`focus.geometry`: libigl's point-to-mesh distance against the brute-force exact distance,
trimesh's point-to-mesh query, and trimesh's OBJ reader against ours (time, vertex order).

Run:  .venv/bin/python bench/now_eval.py --compare-libraries --out bench/results/now_eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from focus.now.alignment import crop_sphere  # noqa: E402
from focus.now.layout import NowDataset, write_prediction  # noqa: E402
from focus.now.scorer import evaluate_now  # noqa: E402
from focus.now.synthetic import (  # noqa: E402
    FaceShape,
    prediction_mesh,
    random_similarity,
    scan_mesh,
    write_synthetic_now,
)

SUBJECT = "FaMoS_180424_03335_TA"
#: The face shape of the timed prediction.
OTHER_FACE = FaceShape(dome_x=82.0, dome_y=118.0, dome_z=72.0, nose=19.0, eyes=8.0, lips=3.0, chin=8.0)


def _write_case(root: Path, scan_vertices: int, pred_vertices: int, full_crop: bool) -> dict:
    shape = FaceShape()
    if full_crop:  # every scan vertex inside the crop: the worst case for a given scan size
        from focus.now.synthetic import grid_mesh

        nx = int(round(np.sqrt(scan_vertices * 150.0 / 130.0)))
        sv, sf = grid_mesh(shape, nx, int(round(scan_vertices / nx)), (-65.0, 65.0), (-80.0, 70.0))
    else:
        sv, sf = scan_mesh(shape, scan_vertices)
    lmk = shape.landmarks()
    centre, radius = crop_sphere(lmk)
    images = [f"{SUBJECT}/multiview_neutral/IMG_0001.jpg", f"{SUBJECT}/selfie/IMG_0002.jpg"]
    write_synthetic_now(root / "NoW", {SUBJECT: (sv, sf, lmk)}, images, scan_extra_obj_records=True)
    rng = np.random.default_rng(0)
    pv, pf = prediction_mesh(OTHER_FACE, pred_vertices)
    tf = random_similarity(rng, scale=0.001)  # metres, random pose
    plmk = OTHER_FACE.landmarks() + rng.normal(scale=2.0, size=(7, 3))
    write_prediction(root / "pred", images[0], tf.apply(pv), pf, tf.apply(plmk))
    sv2, sf2 = prediction_mesh(shape, pred_vertices)
    tf2 = random_similarity(rng, reflect=True)
    write_prediction(root / "pred", images[1], tf2.apply(sv2), sf2, tf2.apply(lmk))
    return {
        "scan_vertices": int(len(sv)),
        "scan_vertices_in_crop": int((np.linalg.norm(sv - centre, axis=1) <= radius).sum()),
        "prediction_vertices": int(len(pv)),
        "prediction_faces": int(len(pf)),
    }


def _time_image(
    dataset: NowDataset, preds: Path, challenge: str, repeats: int
) -> tuple[list[float], list[float], object]:
    walls, cpus, ev = [], [], None
    for _ in range(repeats):
        c0 = time.process_time()
        ev = evaluate_now(dataset, preds, challenge=challenge, progress=False)
        cpus.append(time.process_time() - c0)
        walls.append(ev.seconds)
    return walls, cpus, ev


def _best_time(fn, repeats: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def compare_libraries(root: Path, pred_vertices: int, sample: int = 300) -> dict:
    """Library checks on the benchmark's files: the scan, the cropped scan against the
    different-face prediction (in the scan's frame, as during the refinement)."""
    import igl
    import trimesh

    from focus.geometry.closest_points import brute_force_closest_points
    from focus.geometry.mesh_io import read_mesh
    from focus.now.pp_io import read_pp

    scan_path = next((root / "NoW" / "scans").rglob("*.obj"))
    pred_path = next((root / "pred").rglob("IMG_0001.obj"))
    lmk = read_pp(next((root / "NoW" / "scans_lmks_onlypp").rglob("*.pp")))
    scan, _ = read_mesh(scan_path, need_faces=False)
    centre, radius = crop_sphere(lmk)
    crop = scan[np.linalg.norm(scan - centre, axis=1) <= radius]
    pv, pf = prediction_mesh(OTHER_FACE, pred_vertices)
    pv, pf = np.ascontiguousarray(pv, dtype=np.float64), np.ascontiguousarray(pf, dtype=np.int64)
    rng = np.random.default_rng(0)
    queries = crop + rng.normal(scale=2.0, size=crop.shape)
    tree = igl.AABB()
    build_s, _ = _best_time(lambda: tree.init(pv, pf), 1)
    query_s, (sq, _, _) = _best_time(lambda: tree.squared_distance(pv, pf, queries))
    sub = rng.choice(len(queries), sample, replace=False)
    exact = brute_force_closest_points(queries[sub], pv, pf).distance
    out = {
        "point_to_mesh": {
            "queries": int(len(queries)),
            "faces": int(len(pf)),
            "libigl_aabb_build_seconds": round(build_s, 4),
            "libigl_query_seconds": round(query_s, 4),
            "libigl_max_abs_diff_to_exact_mm": float(np.abs(np.sqrt(sq[sub]) - exact).max()),
            "exact_reference": f"brute force over all faces, {sample} query points",
        }
    }
    mesh = trimesh.Trimesh(pv, pf, process=False)
    try:
        t, (_, dist, _) = _best_time(lambda: trimesh.proximity.closest_point(mesh, queries[sub]), 1)
        out["point_to_mesh"]["trimesh_seconds_for_sample"] = round(t, 4)
        out["point_to_mesh"]["trimesh_max_abs_diff_to_exact_mm"] = float(np.abs(dist - exact).max())
    except ImportError as exc:
        out["point_to_mesh"]["trimesh"] = f"unavailable: {exc}"
    ours_scan_s, (sv, _) = _best_time(lambda: read_mesh(scan_path, need_faces=False))
    ours_pred_s, _ = _best_time(lambda: read_mesh(pred_path))
    kw = {"process": False, "maintain_order": True, "skip_materials": True}
    tm_scan_s, tm_scan = _best_time(lambda: trimesh.load(scan_path, **kw))
    tm_pred_s, _ = _best_time(lambda: trimesh.load(pred_path, **kw))
    default = trimesh.load(scan_path, process=False, skip_materials=True)
    out["obj_reader"] = {
        "scan": scan_path.name,
        "ours_scan_vertices_seconds": round(ours_scan_s, 4),
        "trimesh_scan_seconds": round(tm_scan_s, 4),
        "ours_prediction_seconds": round(ours_pred_s, 4),
        "trimesh_prediction_seconds": round(tm_pred_s, 4),
        "trimesh_maintain_order_same_vertices": bool(np.array_equal(np.asarray(tm_scan.vertices), sv)),
        "trimesh_default_vertex_count": int(len(default.vertices)),
        "scan_vertex_count": int(len(sv)),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/now_eval.json"))
    ap.add_argument("--scan-vertices", type=int, default=120_000)
    ap.add_argument("--pred-vertices", type=int, default=35_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full-crop", action="store_true", help="put every scan vertex inside the crop (worst case)")
    ap.add_argument("--compare-libraries", action="store_true", help="also record the library checks (see above)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sizes = _write_case(root, args.scan_vertices, args.pred_vertices, args.full_crop)
        dataset = NowDataset.open(root / "NoW")
        preds = root / "pred"
        walls, cpus, ev = _time_image(dataset, preds, "multiview_neutral", args.repeats)
        errors = ev.scores[0].errors
        same_walls, _, ev_same = _time_image(dataset, preds, "selfie", 1)
        same = ev_same.scores[0].errors
        tracemalloc.start()
        evaluate_now(dataset, preds, challenge="multiview_neutral", progress=False)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # before the library checks
        libraries = compare_libraries(root, args.pred_vertices) if args.compare_libraries else None

    correct = bool(np.median(same) < 0.02 and np.percentile(same, 99) < 0.1)
    doc = {
        "benchmark": "NoW scorer, one image (load scan + .pp + prediction, crop, Procrustes, refinement, errors)",
        **sizes,
        "seconds_per_image": round(statistics.median(walls), 3),
        "seconds_per_image_min": round(min(walls), 3),
        "cpu_seconds_per_image": round(statistics.median(cpus), 3),
        "repeats": args.repeats,
        "peak_traced_memory_mb": round(traced_peak / 2**20, 1),
        "peak_rss_mb": round(maxrss_kb / 1024, 1),
        "refinement_iterations": int(ev.scores[0].iterations),
        "different_face_errors_mm": {
            "median": round(float(np.median(errors)), 4),
            "mean": round(float(np.mean(errors)), 4),
            "std": round(float(np.std(errors)), 4),
        },
        "same_surface_errors_mm": {
            "median": round(float(np.median(same)), 5),
            "p99": round(float(np.percentile(same, 99)), 5),
            "max": round(float(np.max(same)), 5),
            "mirrored_prediction": bool(ev_same.scores[0].reflection),
            "seconds": round(same_walls[0], 3),
        },
        "correct": correct,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "target": "under 2 s per image on 2 cores",
    }
    if libraries is not None:
        doc["libraries"] = libraries
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
