"""Crop, Procrustes (with the official reflection behaviour) and rigid refinement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from focus.geometry.closest_points import brute_force_closest_points
from focus.now.alignment import (
    RefinementSettings,
    Similarity,
    crop_scan,
    crop_sphere,
    procrustes,
    refine_alignment,
)
from focus.now.synthetic import FaceShape, grid_mesh, random_similarity


def official_style_procrustes(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """MATLAB procrustes(X, Y) with reflection='best', written as in its numpy port (row form)."""
    x0, y0 = x - x.mean(0), y - y.mean(0)
    nx, ny = np.sqrt((x0**2).sum()), np.sqrt((y0**2).sum())
    u, s, vt = np.linalg.svd((x0 / nx).T @ (y0 / ny))
    t = vt.T @ u.T
    b = s.sum() * nx / ny
    return b, t, x.mean(0) - b * (y.mean(0) @ t)


def test_crop_sphere_formula() -> None:
    lmk = np.array(
        [[-45, 30, 0], [-15, 30, 5], [15, 30, 5], [45, 30, 0], [0, -20, 20], [-25, -45, 5], [25, -45, 5]],
        dtype=float,
    )
    centre, radius = crop_sphere(lmk)
    bridge = np.array([0.0, 30.0, 5.0])
    np.testing.assert_allclose(centre, lmk[4] + 0.3 * (bridge - lmk[4]))
    assert radius == pytest.approx(1.4 * (90.0 + np.linalg.norm(bridge - lmk[4])) / 2.0)
    pts = centre + np.array([[radius - 1e-9, 0, 0], [radius + 1e-6, 0, 0], [0, 0, 0]])
    faces = np.array([[0, 1, 2], [0, 2, 2]])
    v, f, ids = crop_scan(pts, faces, lmk)
    np.testing.assert_array_equal(ids, [0, 2])
    np.testing.assert_array_equal(f, [[0, 1, 1]])


@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_recovers_similarity_and_matches_official_port(reflect: bool) -> None:
    rng = np.random.default_rng(0)
    target = FaceShape().landmarks()
    tf = random_similarity(rng, reflect=reflect)
    source = tf.apply(target)  # the prediction's landmarks, in its own frame
    fit, d = procrustes(target, source)
    np.testing.assert_allclose(fit.apply(source), target, atol=1e-9)
    assert d == pytest.approx(0.0, abs=1e-12)
    assert (np.linalg.det(fit.rotation) < 0) == reflect  # reflections are kept, like the official
    b, t, c = official_style_procrustes(target, source)
    assert fit.scale == pytest.approx(b)
    np.testing.assert_allclose(fit.rotation, t.T, atol=1e-12)
    np.testing.assert_allclose(fit.translation, c, atol=1e-9)


def test_procrustes_without_reflection_matches_scikit_image() -> None:
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(1)
    target = FaceShape().landmarks()
    source = random_similarity(rng, reflect=True).apply(target) + rng.normal(scale=0.5, size=(7, 3))
    fit, _ = procrustes(target, source, allow_reflection=False)
    assert np.linalg.det(fit.rotation) > 0
    ref = SimilarityTransform.from_estimate(source, target)
    assert ref
    np.testing.assert_allclose(fit.apply(source), ref(source), atol=1e-8)
    with pytest.raises(ValueError, match="spread"):
        procrustes(target, np.zeros((7, 3)))


def _surface() -> tuple[np.ndarray, np.ndarray]:
    return grid_mesh(FaceShape(), 60, 70, (-80.0, 80.0), (-100.0, 95.0))


def _surface_samples(v: np.ndarray, f: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    fi = rng.integers(0, len(f), n)
    w = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    return np.einsum("nk,nkj->nj", w, v[f[fi]])


@pytest.mark.parametrize("coarse_points", [0, 800])
def test_refinement_recovers_known_similarity(coarse_points: int) -> None:
    rng = np.random.default_rng(2)
    v, f = _surface()
    scan = _surface_samples(v, f, 3000, rng)
    scan = scan[np.linalg.norm(scan[:, :2], axis=1) < 70.0]  # inside the mesh, like a cropped scan
    moved = Similarity(1.04, Rotation.from_rotvec([0.03, -0.02, 0.04]).as_matrix(), np.array([2.0, -1.5, 1.0]))
    res = refine_alignment(scan, moved.apply(v), f, RefinementSettings(coarse_points=coarse_points))
    total = moved.then(res.transform)  # should be the identity
    assert res.converged
    assert total.scale == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(total.rotation, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(total.translation, 0.0, atol=1e-7)
    assert res.closest.distance.max() < 1e-7  # a scan sampled from the surface scores ~0
    # The reported distances are the exact distances to the transformed mesh.
    ref = brute_force_closest_points(scan[:50], res.transform.apply(moved.apply(v)), f)
    np.testing.assert_allclose(res.closest.distance[:50], ref.distance, atol=1e-9)


def test_rigid_refinement_keeps_scale() -> None:
    rng = np.random.default_rng(3)
    v, f = _surface()
    scan = _surface_samples(v, f, 2000, rng)
    scan = scan[np.linalg.norm(scan[:, :2], axis=1) < 70.0]
    moved = Similarity(1.0, Rotation.from_rotvec([0.0, 0.02, -0.01]).as_matrix(), np.array([0.5, 1.0, -2.0]))
    res = refine_alignment(scan, moved.apply(v), f, RefinementSettings(fit_scale=False))
    assert res.transform.scale == 1.0
    total = moved.then(res.transform)
    np.testing.assert_allclose(total.rotation, np.eye(3), atol=1e-8)
    np.testing.assert_allclose(total.translation, 0.0, atol=1e-6)


def test_procrustes_then_refinement_undo_a_random_similarity() -> None:
    """Prediction = scan mesh in a random frame/scale with noisy landmarks: the landmark fit is
    only approximate, the refinement makes the alignment exact."""
    from focus.now.scorer import score_prediction

    rng = np.random.default_rng(4)
    v, f = grid_mesh(FaceShape(), 70, 80, (-110.0, 110.0), (-140.0, 130.0))
    lmk = FaceShape().landmarks()
    tf = random_similarity(rng)
    noisy = tf.apply(lmk + rng.normal(scale=1.5, size=(7, 3)))
    s = score_prediction(v, lmk, tf.apply(v), f, noisy)
    total = tf.then(s.procrustes).then(s.refinement)  # should be the identity
    assert total.scale == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(total.rotation, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(total.translation, 0.0, atol=1e-7)
    assert s.errors.max() < 1e-6


def test_left_jacobian_of_the_rotation_vector() -> None:
    """``R(w + d) ~ exp(J d) R(w)``: the Jacobian the refinement's least squares is given."""
    from focus.now.alignment import _left_jacobian

    rng = np.random.default_rng(7)
    for w in (rng.normal(scale=0.4, size=3), np.array([1e-8, 0.0, -2e-8])):
        jac = _left_jacobian(w)
        eps = 1e-6
        for k in range(3):
            d = np.zeros(3)
            d[k] = eps
            rel = Rotation.from_rotvec(w + d) * Rotation.from_rotvec(w).inv()
            np.testing.assert_allclose(rel.as_rotvec() / eps, jac[:, k], atol=1e-6)
