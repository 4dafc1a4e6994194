"""Validation metrics of the training loop against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.transform import SimilarityTransform

from focus.train import metrics as M
from focus.train.report import em_summary


def _loop_scores(pred, truth, region):
    """Per-image scores with explicit Python loops over pixels (the obviously-correct reference)."""
    out = {k: [] for k in ("accuracy", "precision", "recall", "f1", "iou")}
    for b in range(pred.shape[0]):
        tp = fp = fn = tn = 0.0
        for i in range(pred.shape[2]):
            for j in range(pred.shape[3]):
                r, p, t = float(region[b, 0, i, j]), float(pred[b, 0, i, j]), float(truth[b, 0, i, j])
                tp += r * p * t
                fp += r * p * (1 - t)
                fn += r * (1 - p) * t
                tn += r * (1 - p) * (1 - t)
        out["accuracy"].append((tp + tn) / max(tp + tn + fp + fn, 1))
        out["precision"].append(tp / max(tp + fp, 1))
        out["recall"].append(tp / max(tp + fn, 1))
        out["f1"].append(2 * tp / max(2 * tp + fp + fn, 1))
        out["iou"].append(tp / max(tp + fp + fn, 1))
    return out


@pytest.mark.parametrize("soft", [False, True])
def test_segmentation_scores_vs_loop(soft: bool):
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(3, 1, 7, 6, generator=g)
    if not soft:
        pred = (pred > 0.5).float()
    truth = (torch.rand(3, 1, 7, 6, generator=g) > 0.4).float()
    region = (torch.rand(3, 1, 7, 6, generator=g) > 0.3).float()
    got = M.segmentation_scores(pred, truth, region)
    ref = _loop_scores(pred, truth, region)
    for k in ref:
        np.testing.assert_allclose(got[k].numpy(), ref[k], rtol=1e-12, atol=1e-12)


def test_segmentation_scores_known_case():
    truth = torch.tensor([[1.0, 1.0, 0.0, 0.0]]).reshape(1, 1, 1, 4)
    pred = torch.tensor([[1.0, 0.0, 1.0, 0.0]]).reshape(1, 1, 1, 4)
    region = torch.tensor([[1.0, 1.0, 1.0, 0.0]]).reshape(1, 1, 1, 4)  # last pixel outside the face
    s = M.segmentation_scores(pred, truth, region)
    # inside: TP=1 (px0), FN=1 (px1), FP=1 (px2), TN=0
    assert float(s["f1"]) == pytest.approx(2 / 4)
    assert float(s["iou"]) == pytest.approx(1 / 3)
    assert float(s["accuracy"]) == pytest.approx(1 / 3)
    # an empty region gives zeros, not NaN
    z = M.segmentation_scores(pred, truth, torch.zeros_like(region))
    assert all(math.isfinite(float(v)) for v in z.values())


def test_photometric_and_landmark_error_vs_loop():
    g = torch.Generator().manual_seed(2)
    img, ren = torch.rand(2, 3, 5, 4, generator=g), torch.rand(2, 3, 5, 4, generator=g)
    vis = (torch.rand(2, 1, 5, 4, generator=g) > 0.5).float()
    got = M.photometric_error(img, ren, vis)
    for b in range(2):
        vals = [
            math.sqrt(sum((float(img[b, c, i, j]) - float(ren[b, c, i, j])) ** 2 for c in range(3)))
            for i in range(5)
            for j in range(4)
            if vis[b, 0, i, j] > 0
        ]
        assert float(got[b]) == pytest.approx(sum(vals) / max(len(vals), 1))
    a = torch.rand(2, 68, 2, generator=g, dtype=torch.float64) * 10
    b_ = torch.rand(2, 68, 2, generator=g, dtype=torch.float64) * 10
    le = M.landmark_error(a, b_)
    ref = [np.mean([np.hypot(*(a[k, i] - b_[k, i]).tolist()) for i in range(68)]) for k in range(2)]
    np.testing.assert_allclose(le.numpy(), ref, rtol=1e-10)


def _random_similarity(rng):
    q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q, rng.uniform(0.7, 1.4), rng.normal(0, 50, 3)


def test_shape_error_is_invariant_to_similarity():
    rng = np.random.default_rng(3)
    truth = rng.normal(0, 40, (2, 50, 3))
    pred = np.empty_like(truth)
    for b in range(2):
        R, s, t = _random_similarity(rng)
        pred[b] = s * truth[b] @ R.T + t
    err = M.shape_error(torch.as_tensor(pred), torch.as_tensor(truth))
    assert float(err.max()) < 1e-8


def test_similarity_align_matches_skimage():
    rng = np.random.default_rng(4)
    truth = rng.normal(0, 40, (1, 60, 3))
    R, s, t = _random_similarity(rng)
    pred = s * truth[0] @ R.T + t + rng.normal(0, 3, (60, 3))  # not an exact similarity
    got = M.similarity_align(torch.as_tensor(pred[None]), torch.as_tensor(truth)).numpy()[0]
    tf = SimilarityTransform.from_estimate(pred, truth[0])
    assert tf
    np.testing.assert_allclose(got, tf(pred), atol=1e-8)
    ref_err = np.linalg.norm(tf(pred) - truth[0], axis=1).mean()
    assert float(M.shape_error(torch.as_tensor(pred[None]), torch.as_tensor(truth))) == pytest.approx(ref_err, rel=1e-9)


def test_shape_error_with_region_weights():
    rng = np.random.default_rng(5)
    truth = rng.normal(0, 40, (1, 30, 3))
    pred = truth.copy()
    pred[0, 20:] += 100.0  # far-off vertices outside the region
    region = torch.zeros(30, dtype=torch.bool)
    region[:20] = True
    assert float(M.shape_error(torch.as_tensor(pred), torch.as_tensor(truth), region)) < 1e-8
    assert float(M.shape_error(torch.as_tensor(pred), torch.as_tensor(truth))) > 1.0


def test_em_summary_targets():
    recs = [
        {"phase": "init", "f1_occluded": 0.6, "shape_mm_occluded": 3.0},
        {"phase": "r1/rec", "f1_occluded": 0.66, "shape_mm_occluded": 2.6},
    ]
    s = em_summary(recs)
    assert s["f1_occluded_gain"] == pytest.approx(0.06)
    assert s["shape_occluded_reduction"] == pytest.approx(1 - 2.6 / 3.0)
    assert s["targets_met"] is True
    recs[-1]["shape_mm_occluded"] = 2.8
    assert em_summary(recs)["targets_met"] is False


def test_coefficient_correlation_tracks_and_ignores() -> None:
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(50, 12, generator=g)
    assert M.coefficient_correlation(2.0 * truth + 1.0, truth) == pytest.approx(1.0)
    assert M.coefficient_correlation(-truth, truth) == pytest.approx(-1.0)
    const = torch.ones(50, 12) * 3.0  # a constant prediction: no correlation, whatever its offset
    assert M.coefficient_correlation(const, truth) == 0.0
    noise = torch.randn(50, 12, generator=g)
    assert abs(M.coefficient_correlation(noise, truth)) < 0.2
    assert M.coefficient_correlation(truth[:2], truth[:2]) is None
    # only the first k coefficients count
    mixed = torch.cat([truth[:, :3], noise[:, 3:]], 1)
    assert M.coefficient_correlation(mixed, truth, k=3) == pytest.approx(1.0)
