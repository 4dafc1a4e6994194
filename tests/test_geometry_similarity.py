"""focus.geometry.similarity: the one Umeyama fit against exact transforms and independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation
from skimage.transform import SimilarityTransform

from focus.geometry.similarity import apply_similarity, five_points, homogeneous_matrix, umeyama


def _random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    if d == 2:
        a = rng.uniform(-np.pi, np.pi)
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()


def _cost(s, r, t, src, dst, w):
    return float((w[:, None] * (s * src @ r.T + t - dst) ** 2).sum())


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_known_transform_recovered_exactly(d, backend):
    rng = np.random.default_rng(d)
    r, s, t = _random_rotation(rng, d), 2.7, rng.normal(size=d) * 10
    src = rng.normal(size=(4, 9, d)) * 5
    dst = s * src @ r.T + t
    a, b = (src, dst) if backend == "numpy" else (torch.from_numpy(src), torch.from_numpy(dst))
    s_hat, r_hat, t_hat = umeyama(a, b)
    assert type(s_hat) is type(a)
    np.testing.assert_allclose(np.asarray(s_hat), np.full(4, s), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(r_hat), np.broadcast_to(r, (4, d, d)), atol=1e-12)
    np.testing.assert_allclose(np.asarray(t_hat), np.broadcast_to(t, (4, d)), atol=1e-10)
    np.testing.assert_allclose(np.asarray(apply_similarity(s_hat, r_hat, t_hat, a)), dst, atol=1e-10)


@pytest.mark.parametrize("d", [2, 3])
def test_matches_skimage_on_noisy_points(d):
    rng = np.random.default_rng(10 + d)
    src = rng.normal(size=(12, d))
    dst = 1.3 * src @ _random_rotation(rng, d).T + 4 + rng.normal(size=(12, d)) * 0.2
    s, r, t = umeyama(src, dst)
    ref = SimilarityTransform.from_estimate(src, dst)
    assert ref
    np.testing.assert_allclose(homogeneous_matrix(s, r, t), ref.params, atol=1e-12)


def test_is_the_weighted_least_squares_optimum_against_a_brute_force_search():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(10, 3))
    dst = 0.8 * src @ _random_rotation(rng, 3).T + rng.normal(size=(10, 3)) * 0.3
    w = rng.uniform(0.1, 2.0, 10)
    s, r, t = umeyama(src, dst, w)
    best = _cost(s, r, t, src, dst, w)

    def f(p):  # scale, rotation vector, translation
        return _cost(p[0], Rotation.from_rotvec(p[1:4]).as_matrix(), p[4:], src, dst, w)

    for seed in range(5):  # several starts; none may beat the closed form
        p0 = np.random.default_rng(seed).normal(size=7)
        res = minimize(f, p0, method="BFGS", options={"gtol": 1e-10})
        assert best <= res.fun + 1e-9


def test_rotation_without_scale_matches_scipy_weighted_kabsch():
    rng = np.random.default_rng(4)
    src = rng.normal(size=(8, 3))
    dst = 3.0 * src @ _random_rotation(rng, 3).T + rng.normal(size=(8, 3))
    w = rng.uniform(0.0, 1.0, 8)
    s, r, t = umeyama(src, dst, w, scale=False)
    assert s == 1.0
    mx, my = (w[:, None] * src).sum(0) / w.sum(), (w[:, None] * dst).sum(0) / w.sum()
    ref, _ = Rotation.align_vectors(dst - my, src - mx, weights=w)
    np.testing.assert_allclose(r, ref.as_matrix(), atol=1e-10)
    np.testing.assert_allclose(t, my - r @ mx, atol=1e-10)


@pytest.mark.parametrize("d", [2, 3])
def test_reflection_only_when_allowed(d):
    rng = np.random.default_rng(5)
    src = rng.normal(size=(7, d))
    mirror = np.diag([-1.0] + [1.0] * (d - 1))
    dst = 2.0 * src @ mirror.T + 1.0
    s, r, t = umeyama(src, dst, reflection=True)
    np.testing.assert_allclose(r, mirror, atol=1e-12)
    np.testing.assert_allclose(s, 2.0, rtol=1e-12)
    s, r, _ = umeyama(src, dst)
    assert np.linalg.det(r) == pytest.approx(1.0)
    assert s < 2.0  # the best proper rotation fits worse


def test_weights_select_points_and_equal_duplication():
    rng = np.random.default_rng(6)
    src = rng.normal(size=(9, 3))
    r = _random_rotation(rng, 3)
    dst = 1.5 * src @ r.T + 2
    dst[6:] += rng.normal(size=(3, 3)) * 50  # outliers
    w = np.r_[np.ones(6), np.zeros(3)]
    s, r_hat, t = umeyama(src, dst, w)
    np.testing.assert_allclose(r_hat, r, atol=1e-10)
    np.testing.assert_allclose(s, 1.5, rtol=1e-10)
    counts = np.array([1, 2, 3, 1, 1, 2, 1, 1, 4])
    by_weight = umeyama(src, dst, counts.astype(float))
    by_repeat = umeyama(np.repeat(src, counts, 0), np.repeat(dst, counts, 0))
    for a, b in zip(by_weight, by_repeat, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_torch_broadcast_template_and_degenerate_points():
    src = torch.randn(3, 5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    tmpl = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    s, r, t = umeyama(src, tmpl)
    for b in range(3):
        sb, rb, tb = umeyama(src[b].numpy(), tmpl.numpy())
        np.testing.assert_allclose(s[b].numpy(), sb, rtol=1e-12)
        np.testing.assert_allclose(t[b].numpy(), tb, atol=1e-12)
    s, _, t = umeyama(np.zeros((5, 2)), tmpl.numpy())
    assert s == 0.0 and np.allclose(t, tmpl.numpy().mean(0))


def test_five_points_numpy_and_torch_are_one_definition():
    lm = np.random.default_rng(7).normal(size=(2, 68, 3))
    p = five_points(lm)
    np.testing.assert_allclose(p[:, 0], (lm[:, 36] + lm[:, 39]) / 2)
    np.testing.assert_allclose(p[:, 1], (lm[:, 42] + lm[:, 45]) / 2)
    np.testing.assert_array_equal(p[:, 2:], lm[:, [30, 48, 54]])
    pt = five_points(torch.from_numpy(lm).float())
    assert pt.dtype == torch.float32
    np.testing.assert_allclose(pt.numpy(), p, atol=1e-6)
    with pytest.raises(ValueError):
        five_points(np.zeros((5, 2)))
