"""Segmentation metrics of the face (inlier) class and of the occluder class
(``docs/evaluation.md`` section 2).

Per image, with ``M`` the estimated face probability, ``m_r`` the prediction's rendered face
region and ``T`` the true visible-face mask (all ``(H, W)``, in the aligned crop), counted over a
region ``W``:

    TP = sum_W P T,  FP = sum_W P (1 - T),  FN = sum_W (1 - P) T,  TN = sum_W (1 - P)(1 - T)

accuracy = (TP + TN) / all, precision = TP / (TP + FP), recall = TP / (TP + FN),
F1 = 2 TP / (2 TP + FP + FN), IoU = TP / (TP + FP + FN), each denominator clamped to at least 1
(:func:`focus.train.metrics.segmentation_scores`, the training's validation uses the same
definition).

The occluder class, metrics that cannot flatter: face-class F1 is high for anything that
calls most pixels face (the all-face mask), so the same counts are also read for the other class,
the non-face pixels of ``W`` (the occluders themselves, plus any rendered pixel that is not visible
face): ``occluder_f1 = 2 TN / (2 TN + FP + FN)``, ``occluder_iou = TN / (TN + FP + FN)`` (again
clamped to at least 1). The all-face mask scores 0 on both. On an image without occluders inside
``W`` both are 0 whatever is predicted (no true positives are possible): on the unoccluded subset
they only show how much is falsely called occluder, read them on the occluded subsets.

Variants (:data:`VARIANTS`):

* ``soft``: ``W = m_r``, ``P = M`` as predicted (the authors' numbers);
* ``hard``: ``W = m_r``, ``P = [M > 0.5]``;
* ``face_region_soft`` / ``face_region_hard`` (synthetic data, where the true face region ``F``
  is known): ``W = F``, ``P = m_r M`` (resp. ``m_r [M > 0.5]``): a true face pixel the
  reconstruction does not cover counts as predicted non-face.

Per-image values are averaged over the images of a subset (mean and population std).
"""

from __future__ import annotations

import numpy as np
import torch

#: Face-class metrics, then the occluder class's F1 and IoU (module docstring).
METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "iou", "occluder_f1", "occluder_iou")
VARIANTS: tuple[str, ...] = ("soft", "hard", "face_region_soft", "face_region_hard")
THRESHOLD = 0.5


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray, region: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image :data:`METRICS` ``(N,)`` of ``pred`` against ``truth`` inside ``region`` (all
    ``(N, 1, H, W)`` or ``(N, H, W)`` in [0, 1]; soft values count fractionally): the face class's
    ``accuracy, precision, recall, f1, iou`` and the occluder class's ``occluder_f1, occluder_iou``."""
    from focus.train.metrics import segmentation_scores

    def t(a: np.ndarray) -> torch.Tensor:
        a = np.asarray(a, np.float64)
        return torch.from_numpy(a if a.ndim == 4 else a[:, None])

    p, tr, r = t(pred), t(truth), t(region)
    if not (p.shape == tr.shape == r.shape):
        raise ValueError(
            f"pred {tuple(p.shape)}, truth {tuple(tr.shape)} and region {tuple(r.shape)} must have one shape"
        )
    out = {k: v.numpy() for k, v in segmentation_scores(p, tr, r).items()}
    occ = segmentation_scores(1.0 - p, 1.0 - tr, r)  # the other class: its TP is the face class's TN
    out["occluder_f1"], out["occluder_iou"] = occ["f1"].numpy(), occ["iou"].numpy()
    return out


def image_metrics(
    face_prob: np.ndarray, coverage: np.ndarray, truth: np.ndarray, face_region: np.ndarray | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Per-image metrics of every variant (module docstring): ``{variant: {metric: (N,)}}``.

    Args:
        face_prob: ``(N, 1, H, W)`` estimated face probability ``M``.
        coverage: ``(N, 1, H, W)`` rendered-face coverage ``m_r``.
        truth: ``(N, 1, H, W)`` true visible-face mask.
        face_region: ``(N, 1, H, W)`` true face region (occluded or not), or ``None`` (the
            ``face_region_*`` variants are left out).
    """
    hard = (np.asarray(face_prob) > THRESHOLD).astype(np.float64)
    out = {
        "soft": segmentation_metrics(face_prob, truth, coverage),
        "hard": segmentation_metrics(hard, truth, coverage),
    }
    if face_region is not None:
        out["face_region_soft"] = segmentation_metrics(np.asarray(coverage) * face_prob, truth, face_region)
        out["face_region_hard"] = segmentation_metrics(np.asarray(coverage) * hard, truth, face_region)
    return out


def summarize(
    per_image: dict[str, dict[str, np.ndarray]], select: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """``{variant: {metric: mean, metric + "_std": std}}`` over the images (or those in ``select``)."""
    out: dict[str, dict[str, float]] = {}
    for variant, metrics in per_image.items():
        row: dict[str, float] = {}
        for name in METRICS:
            v = np.asarray(metrics[name], np.float64)
            if select is not None:
                v = v[np.asarray(select)]
            row[name] = float(v.mean()) if v.size else float("nan")
            row[f"{name}_std"] = float(v.std()) if v.size else float("nan")
        out[variant] = row
    return out


__all__ = ["METRICS", "THRESHOLD", "VARIANTS", "image_metrics", "segmentation_metrics", "summarize"]
