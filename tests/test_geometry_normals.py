"""Face and vertex normals (numpy) against direct per-vertex loops and the torch renderer's."""

from __future__ import annotations

import numpy as np
import torch

from focus.geometry.normals import face_normals, vertex_normals
from focus.now.synthetic import FaceShape, prediction_mesh


def _reference_vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Obviously correct: add each triangle's cross product to its corners (corner 0 of every
    triangle first, then corners 1, then 2: the summation order of the synthetic scans' normals)."""
    fn = [np.cross(v[b] - v[a], v[c] - v[a]) for a, b, c in f]
    n = np.zeros_like(v)
    for k in range(3):
        for t in range(len(f)):
            n[f[t, k]] += fn[t]
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _fixture() -> tuple[np.ndarray, np.ndarray]:
    v, f = prediction_mesh(FaceShape(), 400)
    return np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64)


def test_vertex_normals_equal_the_reference_bit_for_bit() -> None:
    v, f = _fixture()
    # The same sums in the same order: identical bits, so the synthetic scans built with these
    # normals do not change.
    np.testing.assert_array_equal(vertex_normals(v, f), _reference_vertex_normals(v, f))


def test_vertex_normals_match_the_differentiable_renderer() -> None:
    from focus.render.shading import vertex_normals as torch_vertex_normals

    v, f = _fixture()
    ours = vertex_normals(v, f)
    theirs = torch_vertex_normals(torch.from_numpy(v)[None], torch.from_numpy(f))[0].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_face_normals_unit_zero_for_degenerate_and_area_weighted() -> None:
    v = np.array([[0.0, 0, 0], [2, 0, 0], [0, 3, 0], [4, 0, 0]])
    f = np.array([[0, 1, 2], [0, 1, 3]])  # the second is degenerate (collinear)
    np.testing.assert_array_equal(face_normals(v, f), [[0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(face_normals(v, f, normalize=False)[0], [0, 0, 6])  # twice the area
    isolated = vertex_normals(np.vstack([v, [[9.0, 9, 9]]]), f)
    np.testing.assert_array_equal(isolated[4], [0, 0, 0])
