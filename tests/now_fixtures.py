"""Small NoW fixtures: sphere and face scans in the exact NoW layout, with predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from focus.cli import main
from focus.now.layout import write_prediction
from focus.now.synthetic import FaceShape, grid_mesh, random_similarity, write_synthetic_now

RADIUS = 40.0  # mm: small enough for the NoW crop of the landmarks below to keep the whole sphere
OFFSET = 0.8  # mm, normal displacement of the offset-sphere predictions


def _sphere(radius: float) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    return np.asarray(s.vertices, dtype=np.float64), np.asarray(s.faces, dtype=np.int64)


def _sphere_landmarks(radius: float) -> np.ndarray:
    """7 landmarks on a sphere, spread so that the NoW crop keeps all of it.

    Outer eye corners at opposite ends of a diameter; the crop radius is then
    ``1.4 (2 R + nose) / 2 > 2 R``, so no rigid motion can bring an offset sphere closer.
    """
    xy = np.array([[-1.0, 0.2], [-0.35, 0.25], [0.35, 0.25], [1.0, 0.2], [0.0, -0.75], [-0.5, -0.7], [0.5, -0.7]])
    xy = xy / np.maximum(1.0, np.linalg.norm(xy, axis=1, keepdims=True))
    z = np.sqrt(np.maximum(0.0, 1.0 - (xy**2).sum(axis=1)))
    return radius * np.column_stack([xy, z])


def _facet_sag(v: np.ndarray, f: np.ndarray, radius: float) -> float:
    """How far inside the circumscribed sphere of ``radius`` the flat facets of ``(v, f)`` lie."""
    tri = v[f]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    plane = np.abs(np.einsum("ij,ij->i", normal / np.linalg.norm(normal, axis=1, keepdims=True), tri[:, 0]))
    return float(radius - plane.min())


def _dataset(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Two subjects in the exact NoW layout and predictions (in cm) for all their images."""
    rng = np.random.default_rng(1)
    face_v, face_f = grid_mesh(FaceShape(), 50, 60, (-110.0, 110.0), (-140.0, 130.0))
    sph_v, sph_f = _sphere(RADIUS)
    scans = {
        "FaMoS_180101_00001_TA": (face_v, face_f, FaceShape().landmarks()),
        "FaMoS_180202_00002_TA": (sph_v, sph_f, _sphere_landmarks(RADIUS)),
    }
    images = [
        "FaMoS_180101_00001_TA/multiview_neutral/IMG_0001.jpg",
        "FaMoS_180101_00001_TA/multiview_expressions/IMG_0002.jpg",
        "FaMoS_180101_00001_TA/selfie/IMG_0003.jpg",
        "FaMoS_180202_00002_TA/multiview_neutral/IMG_0011.jpg",
        "FaMoS_180202_00002_TA/multiview_occlusions/IMG_0012.jpg",
    ]
    root = write_synthetic_now(tmp_path / "NoW", scans, images)
    preds = tmp_path / "predictions"
    for i, entry in enumerate(images):
        subject = entry.split("/")[0]
        v, f, lmk = scans[subject]
        grow = 1.0 if subject.endswith("1_TA") else (RADIUS + OFFSET) / RADIUS
        tf = random_similarity(rng, scale=0.1, reflect=(i == 1))  # cm; one mirrored prediction
        mesh, _ = write_prediction(preds, entry, tf.apply(v * grow), f, tf.apply(lmk * grow), ("npy", "txt")[i % 2])
        if i == 2:  # one PLY prediction
            import trimesh

            trimesh.Trimesh(tf.apply(v * grow), f, process=False).export(mesh.with_suffix(".ply"))
            mesh.unlink()
    return root, preds, images


def _now_eval(root: Path, preds: Path, out: Path, *extra: str) -> int:
    args = ["now-eval", "--dataset", str(root), "--predictions", str(preds), "--out", str(out), "--no-progress"]
    return main(args + list(extra))
