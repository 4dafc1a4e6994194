"""Segmentation metrics of the evaluation against direct per-pixel computations."""

from __future__ import annotations

import numpy as np
import pytest

from focus.eval.ar_metrics import METRICS, image_metrics, segmentation_metrics, summarize


def direct(pred: np.ndarray, truth: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """One image, pixel by pixel, straight from docs/evaluation.md section 2."""
    tp = fp = fn = tn = 0.0
    for p, t, r in zip(pred.ravel(), truth.ravel(), region.ravel()):
        tp += r * p * t
        fp += r * p * (1 - t)
        fn += r * (1 - p) * t
        tn += r * (1 - p) * (1 - t)
    return {
        "accuracy": (tp + tn) / max(tp + tn + fp + fn, 1.0),
        "precision": tp / max(tp + fp, 1.0),
        "recall": tp / max(tp + fn, 1.0),
        "f1": 2 * tp / max(2 * tp + fp + fn, 1.0),
        "iou": tp / max(tp + fp + fn, 1.0),
        "occluder_f1": 2 * tn / max(2 * tn + fp + fn, 1.0),
        "occluder_iou": tn / max(tn + fp + fn, 1.0),
    }


@pytest.fixture
def masks():
    rng = np.random.default_rng(3)
    n, s = 4, 12
    face_prob = rng.uniform(0, 1, (n, 1, s, s))
    coverage = (rng.uniform(0, 1, (n, 1, s, s)) > 0.3).astype(np.float64)
    face_region = np.clip(coverage + (rng.uniform(0, 1, (n, 1, s, s)) > 0.8), 0, 1)
    truth = face_region * (rng.uniform(0, 1, (n, 1, s, s)) > 0.4)
    return face_prob, coverage, truth, face_region


def test_soft_and_hard_match_direct_computation(masks) -> None:
    face_prob, coverage, truth, face_region = masks
    res = image_metrics(face_prob, coverage, truth, face_region)
    for i in range(len(face_prob)):
        hard = (face_prob[i] > 0.5).astype(float)
        expected = {
            "soft": direct(face_prob[i], truth[i], coverage[i]),
            "hard": direct(hard, truth[i], coverage[i]),
            "face_region_soft": direct(coverage[i] * face_prob[i], truth[i], face_region[i]),
            "face_region_hard": direct(coverage[i] * hard, truth[i], face_region[i]),
        }
        for variant, exp in expected.items():
            for name in METRICS:
                assert res[variant][name][i] == pytest.approx(exp[name], abs=1e-12), (variant, name, i)


def test_perfect_and_inverted_masks() -> None:
    truth = np.zeros((1, 1, 8, 8))
    truth[..., 2:6, 2:6] = 1
    region = np.ones_like(truth)
    perfect = segmentation_metrics(truth, truth, region)
    assert all(perfect[m][0] == pytest.approx(1.0) for m in METRICS)
    wrong = segmentation_metrics(1 - truth, truth, region)
    assert all(wrong[m][0] == pytest.approx(0.0) for m in METRICS)


def test_empty_region_gives_zeros_not_nan() -> None:
    z = np.zeros((2, 1, 5, 5))
    res = segmentation_metrics(np.ones_like(z), np.ones_like(z), z)
    for m in METRICS:
        assert np.all(np.isfinite(res[m])) and np.all(res[m] == 0)


def test_without_face_region_only_soft_and_hard(masks) -> None:
    face_prob, coverage, truth, _ = masks
    assert set(image_metrics(face_prob, coverage, truth)) == {"soft", "hard"}


def test_summary_mean_and_std(masks) -> None:
    face_prob, coverage, truth, face_region = masks
    per = image_metrics(face_prob, coverage, truth, face_region)
    s = summarize(per)
    f1 = per["soft"]["f1"]
    assert s["soft"]["f1"] == pytest.approx(f1.mean())
    assert s["soft"]["f1_std"] == pytest.approx(f1.std())
    sel = np.array([True, False, True, False])
    assert summarize(per, sel)["hard"]["iou"] == pytest.approx(per["hard"]["iou"][sel].mean())


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="one shape"):
        segmentation_metrics(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 5)), np.zeros((1, 1, 4, 4)))


def test_occluder_class_against_numpy_on_small_masks() -> None:
    """Occluder IoU / F1 straight from numpy set operations on hard masks (the all-face mask scores 0)."""
    rng = np.random.default_rng(11)
    truth = (rng.uniform(0, 1, (3, 1, 9, 9)) > 0.3).astype(np.float64)
    pred = (rng.uniform(0, 1, (3, 1, 9, 9)) > 0.4).astype(np.float64)
    region = (rng.uniform(0, 1, (3, 1, 9, 9)) > 0.2).astype(np.float64)
    res = segmentation_metrics(pred, truth, region)
    for i in range(3):
        r = region[i] > 0
        occ_t, occ_p = (truth[i] == 0) & r, (pred[i] == 0) & r
        inter, union = (occ_t & occ_p).sum(), (occ_t | occ_p).sum()
        assert res["occluder_iou"][i] == pytest.approx(inter / union)
        assert res["occluder_f1"][i] == pytest.approx(2 * inter / (occ_t.sum() + occ_p.sum()))
    all_face = segmentation_metrics(np.ones_like(pred), truth, region)
    assert np.all(all_face["occluder_f1"] == 0) and np.all(all_face["occluder_iou"] == 0)
    assert np.all(all_face["recall"] == 1)  # while the face class calls it perfect recall
