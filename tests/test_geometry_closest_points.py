"""Exact point-to-triangle and point-to-mesh distances against direct computations."""

from __future__ import annotations

import numpy as np
import pytest

from focus.geometry.closest_points import (
    PART_A,
    PART_AB,
    PART_B,
    PART_BC,
    PART_C,
    PART_CA,
    PART_FACE,
    TriangleMeshIndex,
    brute_force_closest_points,
    closest_points_on_triangles,
)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    ll = float(ab @ ab)
    t = 0.0 if ll == 0.0 else min(1.0, max(0.0, float((p - a) @ ab) / ll))
    return float(np.linalg.norm(p - (a + t * ab)))


def reference_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Obviously correct: the plane foot point if it lies inside, else the nearest edge."""
    best = min(_segment_distance(p, a, b), _segment_distance(p, b, c), _segment_distance(p, c, a))
    n = np.cross(b - a, c - a)
    nn = float(n @ n)
    if nn > 1e-20 * max(float((b - a) @ (b - a)), float((c - a) @ (c - a))) ** 2:
        foot = p - (float((p - a) @ n) / nn) * n
        # Barycentric coordinates of the foot from signed sub-areas.
        wa = float(np.cross(b - foot, c - foot) @ n) / nn
        wb = float(np.cross(c - foot, a - foot) @ n) / nn
        wc = 1.0 - wa - wb
        if min(wa, wb, wc) >= 0.0:
            best = min(best, float(np.linalg.norm(p - foot)))
    return best


def _random_triangles(rng: np.random.Generator, m: int) -> tuple[np.ndarray, ...]:
    a = rng.normal(size=(m, 3))
    b = a + rng.normal(size=(m, 3))
    c = a + rng.normal(size=(m, 3))
    # Some slivers, zero-length edges and collinear (degenerate) triangles.
    k = m // 10
    c[:k] = a[:k] + 0.5 * (b[:k] - a[:k]) + 1e-9 * rng.normal(size=(k, 3))
    b[k : 2 * k] = a[k : 2 * k]
    c[2 * k : 3 * k] = a[2 * k : 3 * k] + 2.0 * (b[2 * k : 3 * k] - a[2 * k : 3 * k])
    p = a + 2.0 * rng.normal(size=(m, 3))
    return p, a, b, c


def test_closest_points_match_direct_computation_in_every_region() -> None:
    rng = np.random.default_rng(0)
    p, a, b, c = _random_triangles(rng, 3000)
    sq, q, part = closest_points_on_triangles(p, a, b, c)
    ref = np.array([reference_distance(*x) for x in zip(p, a, b, c, strict=True)])
    np.testing.assert_allclose(np.sqrt(sq), ref, rtol=1e-9, atol=1e-9)
    # The returned point is at that distance and lies on the triangle.
    np.testing.assert_allclose(np.linalg.norm(p - q, axis=1), ref, rtol=1e-9, atol=1e-9)
    for i in range(0, 3000, 7):
        assert reference_distance(q[i], a[i], b[i], c[i]) < 1e-9
    # Every feature type was exercised.
    assert set(np.unique(part)) == {PART_FACE, PART_AB, PART_BC, PART_CA, PART_A, PART_B, PART_C}


def test_feature_codes_on_a_known_triangle() -> None:
    a, b, c = np.array([0.0, 0, 0]), np.array([1.0, 0, 0]), np.array([0.0, 1, 0])
    cases = {
        (0.2, 0.2, 1.0): (PART_FACE, 1.0),
        (0.5, -1.0, 0.0): (PART_AB, 1.0),
        (1.0, 1.0, 0.0): (PART_BC, np.sqrt(0.5)),
        (-2.0, 0.5, 0.0): (PART_CA, 2.0),
        (-1.0, -1.0, 0.0): (PART_A, np.sqrt(2.0)),
        (3.0, -0.5, 0.0): (PART_B, np.sqrt(4.25)),
        (-0.5, 3.0, 0.0): (PART_C, np.sqrt(4.25)),
    }
    pts = np.array(list(cases))
    sq, _, part = closest_points_on_triangles(pts, a[None], b[None], c[None])
    for i, (code, dist) in enumerate(cases.values()):
        assert part[i] == code
        assert np.sqrt(sq[i]) == pytest.approx(dist, abs=1e-12)


def test_no_sampled_point_of_the_triangle_is_closer() -> None:
    rng = np.random.default_rng(1)
    p, a, b, c = _random_triangles(rng, 200)
    sq, _, _ = closest_points_on_triangles(p, a, b, c)
    w = rng.dirichlet([1.0, 1.0, 1.0], size=500)
    for i in range(200):
        samples = w[:, :1] * a[i] + w[:, 1:2] * b[i] + w[:, 2:3] * c[i]
        assert np.linalg.norm(samples - p[i], axis=1).min() >= np.sqrt(sq[i]) - 1e-12


def _test_mesh(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A bumpy open surface with a few huge, thin and degenerate triangles."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=50.0)
    v = np.asarray(sphere.vertices) * (1.0 + 0.05 * rng.normal(size=(len(sphere.vertices), 1)))
    f = np.asarray(sphere.faces)
    f = f[v[f].mean(axis=1)[:, 2] > -20.0]  # open it
    extra_v = np.array(
        [[-200.0, -200.0, -60.0], [200.0, -200.0, -60.0], [0.0, 250.0, -60.0], [10.0, 10.0, 80.0], [11.0, 10.0, 80.0]]
    )
    base = len(v)
    v = np.concatenate([v, extra_v])
    extra_f = np.array([[base, base + 1, base + 2], [base + 3, base + 4, base + 3], [base + 3, base + 4, 0]])
    return v, np.concatenate([f, extra_f])


def test_mesh_index_equals_brute_force() -> None:
    rng = np.random.default_rng(2)
    v, f = _test_mesh(rng)
    near = v[rng.integers(0, len(v), 300)] + rng.normal(scale=2.0, size=(300, 3))
    far = rng.uniform(-300.0, 300.0, size=(100, 3))
    pts = np.concatenate([near, far])
    index = TriangleMeshIndex(v, f)
    got = index.query(pts)
    ref = brute_force_closest_points(pts, v, f)
    np.testing.assert_allclose(got.distance, ref.distance, rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(pts - got.point, axis=1), got.distance, atol=1e-10)


def test_mesh_index_on_points_far_from_a_fine_mesh_is_exact_and_quick() -> None:
    """Points metres away from a 70k-triangle face (a wrong unit, a bad start): no blow-up."""
    import time

    from focus.now.synthetic import FaceShape, prediction_mesh

    v, f = prediction_mesh(FaceShape(), 35_000)
    rng = np.random.default_rng(4)
    pts = v[rng.integers(0, len(v), 2000)] + np.array([0.0, 0.0, 2000.0]) + rng.normal(scale=50.0, size=(2000, 3))
    start = time.perf_counter()
    got = TriangleMeshIndex(v, f).query(pts)
    assert time.perf_counter() - start < 5.0
    sub = rng.choice(len(pts), 20, replace=False)
    ref = brute_force_closest_points(pts[sub], v, f)
    np.testing.assert_allclose(got.distance[sub], ref.distance, rtol=0, atol=1e-9)
