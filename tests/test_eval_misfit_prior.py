"""The misfit prior: rigid alignment, estimation, application, storage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from focus.errors import InputFileError
from focus.eval.misfit_prior import (
    MisfitPrior,
    estimate_misfit_prior,
    load_misfit_prior,
    prior_diagnostics,
    rigid_align,
    save_misfit_prior,
)


def random_rigid(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    rots = Rotation.random(n, random_state=rng).as_matrix()
    return rots, rng.uniform(-50, 50, (n, 3))


def test_rigid_align_undoes_a_rigid_motion() -> None:
    rng = np.random.default_rng(0)
    dst = rng.normal(0, 40, (3, 50, 3))
    R, t = random_rigid(rng, 3)
    src = np.einsum("nij,nvj->nvi", R, dst) + t[:, None]
    np.testing.assert_allclose(rigid_align(src, dst), dst, atol=1e-9)


def test_rigid_align_fits_only_the_weighted_vertices() -> None:
    rng = np.random.default_rng(1)
    dst = rng.normal(0, 40, (2, 40, 3))
    bump = np.zeros_like(dst)
    bump[:, :5] = 7.0  # vertices 0-4 are off; the others are a rigid copy
    R, t = random_rigid(rng, 2)
    src = np.einsum("nij,nvj->nvi", R, dst + bump) + t[:, None]
    w = np.ones(40)
    w[:5] = 0
    out = rigid_align(src, dst, w)
    np.testing.assert_allclose(out[:, 5:], dst[:, 5:], atol=1e-9)
    np.testing.assert_allclose(out[:, :5] - dst[:, :5], bump[:, :5], atol=1e-9)


def test_rigid_align_is_least_squares() -> None:
    """Any perturbation of the returned pose increases the weighted squared error."""
    rng = np.random.default_rng(2)
    dst = rng.normal(0, 30, (1, 30, 3))
    src = dst + rng.normal(0, 3, dst.shape)
    w = rng.uniform(0.2, 1.0, 30)
    out = rigid_align(src, dst, w)[0]
    best = (w * ((out - dst[0]) ** 2).sum(1)).sum()
    c = out.mean(0)
    for _ in range(20):
        dR = Rotation.from_rotvec(rng.normal(0, 0.01, 3)).as_matrix()
        moved = (out - c) @ dR.T + c + rng.normal(0, 0.05, 3)
        assert (w * ((moved - dst[0]) ** 2).sum(1)).sum() > best


def test_estimate_recovers_a_known_bias_and_spread() -> None:
    rng = np.random.default_rng(4)
    n, V = 400, 60
    true = rng.normal(0, 40, (n, V, 3))
    bias = np.zeros((V, 3))
    bias[:8] = rng.normal(0, 2.0, (8, 3))  # systematic misfit on a few vertices ("eyebrows")
    noise = rng.normal(0, 0.3, (n, V, 3))
    noise[:, 8:] = 0.0
    R, t = random_rigid(rng, n)
    pred = np.einsum("nij,nvj->nvi", R, true + bias + noise) + t[:, None]
    w = np.ones(V)
    w[:8] = 0  # the alignment uses the well-fitted vertices only
    prior = estimate_misfit_prior(pred, true, w, region="test")
    np.testing.assert_allclose(prior.offset, bias, atol=0.1)
    assert prior.count == n and prior.region == "test"
    np.testing.assert_allclose(prior.spread[8:], 0.0, atol=1e-9)
    np.testing.assert_allclose(prior.spread[:8], 0.3 * np.sqrt(3), rtol=0.15)
    # applying it in the model frame removes the bias of an unposed prediction
    np.testing.assert_allclose(prior.apply(true[0] + bias), true[0], atol=0.1)


def test_diagnostics_show_the_gain_on_held_out_faces() -> None:
    rng = np.random.default_rng(5)
    n, V = 40, 30
    true = rng.normal(0, 40, (n, V, 3))
    bias = rng.normal(0, 1.0, (V, 3))
    pred = true + bias + rng.normal(0, 0.1, (n, V, 3))
    d = prior_diagnostics(pred, true, np.ones(V))
    assert d["mean_vertex_error_cross_validated_with_prior_mm"] < 0.5 * d["mean_vertex_error_cross_validated_mm"]
    assert d["mean_vertex_error_in_sample_with_prior_mm"] <= d["mean_vertex_error_cross_validated_with_prior_mm"] + 1e-9


def test_apply_checks_the_topology() -> None:
    prior = MisfitPrior(np.ones((5, 3)), np.zeros(5), 2)
    out = prior.apply(np.zeros((2, 5, 3), np.float32))
    assert out.dtype == np.float32 and np.all(out == -1)
    with pytest.raises(ValueError, match="do not match"):
        prior.apply(np.zeros((4, 3)))


def test_save_load_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(6)
    prior = MisfitPrior(rng.normal(0, 1, (7, 3)), rng.uniform(0, 1, 7), 12, "face", "model-x", "models/focus.pt")
    path = save_misfit_prior(tmp_path / "p.npz", prior)
    back = load_misfit_prior(path, num_vertices=7)
    np.testing.assert_allclose(back.offset, prior.offset, atol=1e-6)
    np.testing.assert_allclose(back.spread, prior.spread, atol=1e-6)
    assert (back.count, back.region, back.model_name, back.checkpoint) == (12, "face", "model-x", "models/focus.pt")
    with pytest.raises(InputFileError, match="face model has 8"):
        load_misfit_prior(path, num_vertices=8)
    with pytest.raises(InputFileError, match="not found"):
        load_misfit_prior(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="bad.npz"):
        load_misfit_prior(tmp_path / "bad.npz")
