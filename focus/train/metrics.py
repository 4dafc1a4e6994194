"""Validation metrics of the training loop, per image (docs/evaluation.md, section 2, and shape error).

* :func:`segmentation_scores` -- accuracy, precision, recall, F1 and IoU of the face (inlier)
  class inside a region (the prediction's rendered face ``m_r``), from soft or hard masks:
  ``TP = sum_region pred * truth``, ``FP = sum_region pred (1 - truth)``, ``FN = sum_region
  (1 - pred) truth``, ``TN = sum_region (1 - pred)(1 - truth)``; each denominator clamped to >= 1.
* :func:`photometric_error` -- mean ``||I - R||_2`` (RGB) over the truly visible, rendered face.
* :func:`landmark_error` -- mean Euclidean distance of 68 landmarks, pixels.
* :func:`similarity_align` / :func:`shape_error` -- mean per-vertex distance (mm) between a
  predicted and a true mesh with the same topology after the least-squares similarity transform
  (rotation, uniform scale, translation; Umeyama 1991) of the prediction onto the truth.
"""

from __future__ import annotations

import torch
from torch import Tensor

from focus.geometry.similarity import apply_similarity, umeyama


def segmentation_counts(pred: Tensor, truth: Tensor, region: Tensor) -> dict[str, Tensor]:
    """Soft confusion counts per image: ``pred``, ``truth``, ``region`` ``(B, 1, H, W)`` in [0, 1] -> ``(B,)`` each."""
    dims = tuple(range(1, pred.ndim))
    p, t, r = pred.double(), truth.double(), region.double()
    return {
        "tp": (r * p * t).sum(dims),
        "fp": (r * p * (1 - t)).sum(dims),
        "fn": (r * (1 - p) * t).sum(dims),
        "tn": (r * (1 - p) * (1 - t)).sum(dims),
    }


def segmentation_scores(pred: Tensor, truth: Tensor, region: Tensor) -> dict[str, Tensor]:
    """Per-image ``accuracy, precision, recall, f1, iou`` ``(B,)`` of the face class inside ``region``."""
    c = segmentation_counts(pred, truth, region)
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    one = torch.ones_like(tp)
    return {
        "accuracy": (tp + tn) / torch.maximum(tp + tn + fp + fn, one),
        "precision": tp / torch.maximum(tp + fp, one),
        "recall": tp / torch.maximum(tp + fn, one),
        "f1": 2 * tp / torch.maximum(2 * tp + fp + fn, one),
        "iou": tp / torch.maximum(tp + fp + fn, one),
    }


def photometric_error(image: Tensor, render: Tensor, visible: Tensor) -> Tensor:
    """Per-image mean ``||I(p) - R(p)||_2`` over pixels with ``visible`` (e.g. true mask x ``m_r``); ``(B,)``."""
    d = torch.linalg.vector_norm(image.double() - render.double(), dim=1, keepdim=True)
    w = visible.double()
    return (w * d).sum((1, 2, 3)) / w.sum((1, 2, 3)).clamp_min(1.0)


def landmark_error(pred: Tensor, truth: Tensor) -> Tensor:
    """Per-image mean Euclidean distance ``(B,)`` between ``(B, L, 2)`` landmark sets (pixels)."""
    return torch.linalg.vector_norm(pred.double() - truth.double(), dim=-1).mean(-1)


def similarity_align(src: Tensor, dst: Tensor, weights: Tensor | None = None) -> Tensor:
    """``src`` ``(B, V, 3)`` moved by the least-squares similarity onto ``dst`` ``(B, V, 3)`` (no reflection).

    Umeyama's solution (:func:`focus.geometry.similarity.umeyama`). ``weights`` ``(V,)`` optionally
    restricts/weights the vertices that define the fit (the whole mesh is moved). Computed in float64.
    """
    scale, rot, t = umeyama(src, dst, weights)
    return apply_similarity(scale, rot, t, src).to(src.dtype)


def shape_error(pred: Tensor, truth: Tensor, weights: Tensor | None = None) -> Tensor:
    """Per-mesh mean per-vertex distance (mm) ``(B,)`` after :func:`similarity_align` of ``pred`` onto ``truth``.

    ``weights`` ``(V,)`` (e.g. a boolean face region) selects the vertices that are aligned *and*
    averaged.
    """
    aligned = similarity_align(pred, truth, weights)
    d = torch.linalg.vector_norm(aligned.double() - truth.double(), dim=-1)  # (B, V)
    if weights is None:
        return d.mean(-1)
    w = weights.double()[None]
    return (w * d).sum(-1) / w.sum()


__all__ = [
    "landmark_error",
    "photometric_error",
    "segmentation_counts",
    "segmentation_scores",
    "shape_error",
    "similarity_align",
]


def coefficient_correlation(pred: Tensor, truth: Tensor, k: int = 10) -> float | None:
    """Mean over the first ``k`` coefficients of the Pearson correlation, across images, between
    predicted and true values (``(N, K)`` each). 1: the encoder tracks those coefficients; ~0: its
    predictions do not depend on them (for identity: a constant shape, whatever the face).
    ``None`` with fewer than 3 images; coefficients with no spread in either array count as 0."""
    if pred.shape[0] < 3:
        return None
    k = min(k, pred.shape[1], truth.shape[1])
    p = pred[:, :k].double() - pred[:, :k].double().mean(0)
    t = truth[:, :k].double() - truth[:, :k].double().mean(0)
    den = p.norm(dim=0) * t.norm(dim=0)
    corr = torch.where(den > 0, (p * t).sum(0) / den.clamp_min(1e-300), torch.zeros_like(den))
    return float(corr.mean())
