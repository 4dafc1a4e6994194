"""Validation after every training phase on held-out synthetic images with ground truth.

The same held-out images are measured after the initialisation (with the pseudo masks ``z(p)`` as
the "segmentation"), after the U-Net pre-training, and after every EM phase:

* segmentation F1 and IoU of the face (inlier) class against the true visible-face mask, inside
  the prediction's rendered face region (docs/evaluation.md, section 2), soft and thresholded at 0.5,
  averaged over images, separately on **occluded** and **unoccluded** images;
* photometric error ``||I - R||_2`` on the truly visible rendered face;
* landmark error (px) of the projected model landmarks against the true landmarks (the noise-free
  projections when the set has them, else the given ones);
* neutral-shape error (mm): predicted neutral mesh (identity only, expression zero) against the
  true one (true identity coefficients), mean per-vertex distance over the model's ``face``
  region after a similarity alignment (:func:`focus.train.metrics.shape_error`).

Occluded images are those whose true face region is occluded by more than
``OCCLUDED_MIN_SHARE`` (from the set's metadata when it has them, else from the masks).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from focus.errors import InputFileError
from focus.losses import ROBUST_SIGMA, ROBUST_THRESHOLD
from focus.predictor import Predictor
from focus.train import metrics as M

log = logging.getLogger("focus.train")

#: an image counts as occluded when more than this share of its true face region is covered.
OCCLUDED_MIN_SHARE = 0.02
#: the metric keys a validation record holds (besides counts), in the plot's order.
SEG_KEYS = ("f1", "iou", "f1_hard", "iou_hard")


@dataclass(frozen=True)
class ValidationSet:
    """Held-out crops with ground truth (all tensors on one device, float32).

    Attributes:
        names: image names.
        images: ``(N, 3, S, S)`` aligned crops in [0, 1] (no augmentation).
        landmarks: ``(N, 68, 2)`` landmarks to compare with (true ones when known), crop px.
        masks: ``(N, 1, S, S)`` true visible-face masks.
        face_masks: ``(N, 1, S, S)`` true face regions (occluded or not).
        occluded: ``(N,)`` bool.
        true_id: ``(N, K_id)`` true identity coefficients, or ``None`` (no shape error then).
    """

    names: tuple[str, ...]
    images: Tensor
    landmarks: Tensor
    masks: Tensor
    face_masks: Tensor
    occluded: Tensor
    true_id: Tensor | None

    def __len__(self) -> int:
        return len(self.names)

    def to(self, device) -> ValidationSet:
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return ValidationSet(
            self.names,
            mv(self.images),
            mv(self.landmarks),
            mv(self.masks),
            mv(self.face_masks),
            mv(self.occluded),
            mv(self.true_id),
        )


# ---------------------------------------------------------------------------- ground truth files
def read_truth(root: str | Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-image ground truth of a synthetic set, in the order of ``names``.

    Reads ``<root>/truth.npz`` (arrays ``names`` and any of ``id`` ``(N, K_id)``,
    ``landmarks_true`` ``(N, 68, 2)`` source-image pixels, ``occluded_share`` ``(N,)``); returns
    the arrays found (possibly none). A missing file gives ``{}``.
    """
    root = Path(root)
    path = root / "truth.npz"
    if not path.is_file():
        return {}
    try:
        data = np.load(path, allow_pickle=False)
        file_names = [str(n) for n in data["names"]]
    except Exception as exc:  # noqa: BLE001
        raise InputFileError(path, f"unreadable ground-truth file ({exc.__class__.__name__}: {exc})") from exc
    pos = {n: i for i, n in enumerate(file_names)}
    missing = [n for n in names if n not in pos]
    if missing:
        raise InputFileError(
            path, f"no ground truth for {len(missing)} images (e.g. {missing[:3]})", "re-run the synth stage"
        )
    rows = np.array([pos[n] for n in names], dtype=np.int64)
    out = {}
    for k in data.files:
        arr = np.asarray(data[k])
        if k != "names" and arr.ndim >= 1 and arr.shape[0] == len(file_names):
            out[k] = arr[rows]
    return out


def load_validation_set(
    dataset, indices: Sequence[int], truth: dict[str, np.ndarray] | None = None, progress: bool = False
) -> ValidationSet:
    """Load ``dataset[indices]`` (a :class:`focus.data.FaceImageFolder` without augmentation,
    with ``masks/`` and ``face_masks/``) and its ground truth into memory.

    ``truth`` (from :func:`read_truth`, rows in the order of ``indices``) may hold ``id``,
    ``landmarks_true`` (source pixels; moved into the crop with each sample's transform) and
    ``occluded_share``.
    """
    truth = truth or {}
    items = [dataset[i] for i in tqdm(indices, desc="validation set", disable=not progress)]
    if not items:
        raise ValueError("empty validation set (train.val_count = 0?)")
    for key in ("mask", "face_mask"):
        if key not in items[0]:
            raise InputFileError(
                getattr(dataset, "root", "<dataset>"),
                f"validation images need true {key.replace('_', ' ')}s ({key}s/ folder)",
                "validate on a synthetic set",
            )
    images = torch.stack([it["image"] for it in items])
    masks = torch.stack([it["mask"] for it in items])
    face_masks = torch.stack([it["face_mask"] for it in items])
    if "landmarks_true" in truth:
        lms = []
        for it, lm in zip(items, truth["landmarks_true"]):
            T = it["transform"].double().numpy()
            lms.append(torch.from_numpy((np.asarray(lm, np.float64) @ T[:2, :2].T + T[:2, 2]).astype(np.float32)))
        landmarks = torch.stack(lms)
    else:
        landmarks = torch.stack([it["landmarks"] for it in items])
    if "occluded_share" in truth:
        occluded = torch.as_tensor(np.asarray(truth["occluded_share"], np.float64) > OCCLUDED_MIN_SHARE)
    else:
        fm = face_masks.sum((1, 2, 3)).clamp_min(1.0)
        occluded = (face_masks * (1 - masks)).sum((1, 2, 3)) / fm > OCCLUDED_MIN_SHARE
    true_id = torch.as_tensor(np.asarray(truth["id"], np.float32)) if "id" in truth else None
    return ValidationSet(tuple(it["name"] for it in items), images, landmarks, masks, face_masks, occluded, true_id)


# ---------------------------------------------------------------------------- evaluation
def _mean(x: Tensor) -> float | None:
    return float(x.mean()) if x.numel() else None


@torch.no_grad()
def evaluate(
    encoder,
    renderer,
    vs: ValidationSet,
    unet=None,
    batch_size: int = 32,
    face_region: Tensor | None = None,
    sigma: float = ROBUST_SIGMA,
    threshold: float = ROBUST_THRESHOLD,
) -> dict:
    """Metrics of ``encoder`` (+ ``unet``, or the pseudo masks ``z(p)`` when ``unet`` is ``None``) on ``vs``,
    through the one forward pass (:class:`focus.predictor.Predictor`).

    The networks are put in eval mode (the caller restores modes). ``face_region`` ``(V,)`` bool
    restricts the shape error to those vertices (``None``: all). Returns a flat dict:
    ``f1_occluded``, ``iou_occluded``, ``f1_hard_occluded``, ... ``_unoccluded``, ``_all``,
    ``photo``, ``landmark_px``, ``shape_mm`` (``None`` without true identities), ``shape_mm_occluded``,
    ``shape_mm_unoccluded`` (means over images), ``f1_allface_*`` (the F1 of the trivial
    segmentation "every rendered pixel is face", for reference) and medians ``photo_median``, ``landmark_px_median``,
    ``shape_mm_median``, ``shape_mm_occluded_median``; references ``shape_mm_mean_face`` (the
    error of the mean face, identity 0) and ``id_corr`` (:func:`focus.train.metrics.coefficient_correlation`
    of the predicted and true identity coefficients); counts ``n_occluded`` / ``n_unoccluded`` and
    ``seg_source``.
    """
    encoder.eval()
    if unet is not None:
        unet.eval()
    predictor = Predictor(encoder, unet, renderer)
    seg_name = predictor.default_segmentation
    seg_scores: dict[str, list[Tensor]] = {k: [] for k in SEG_KEYS + ("f1_allface",)}
    photo, lm_err, shape, shape_mean_face, pred_id = [], [], [], [], []
    for s in range(0, len(vs), batch_size):
        sl = slice(s, s + batch_size)
        image = vs.images[sl]
        pred = predictor(image, (seg_name,), sigma, threshold)
        coeffs, out, seg = pred.coeffs, pred.render, pred.seg[seg_name]
        soft = M.segmentation_scores(seg, vs.masks[sl], out.mask)
        hard = M.segmentation_scores((seg > 0.5).to(seg.dtype), vs.masks[sl], out.mask)
        seg_scores["f1"].append(soft["f1"])
        seg_scores["iou"].append(soft["iou"])
        seg_scores["f1_hard"].append(hard["f1"])
        seg_scores["iou_hard"].append(hard["iou"])
        # reference: the trivial "everything rendered is face" segmentation (no outliers at all)
        seg_scores["f1_allface"].append(M.segmentation_scores(torch.ones_like(seg), vs.masks[sl], out.mask)["f1"])
        photo.append(M.photometric_error(image, out.image, vs.masks[sl] * out.mask))
        lm_err.append(M.landmark_error(out.landmarks, vs.landmarks[sl]))
        if vs.true_id is not None:
            zeros = coeffs.exp.new_zeros(coeffs.exp.shape)
            true = renderer.shape(vs.true_id[sl].to(coeffs.id.dtype), zeros)
            shape.append(M.shape_error(pred.neutral, true, face_region))
            shape_mean_face.append(M.shape_error(renderer.shape(torch.zeros_like(coeffs.id), zeros), true, face_region))
            pred_id.append(coeffs.id.detach())
    occ = vs.occluded.cpu().bool()
    res: dict = {
        "seg_source": "unet" if unet is not None else "pseudo",
        "n_occluded": int(occ.sum()),
        "n_unoccluded": int((~occ).sum()),
    }
    for key, parts in seg_scores.items():
        v = torch.cat(parts).cpu()
        res[f"{key}_occluded"] = _mean(v[occ])
        res[f"{key}_unoccluded"] = _mean(v[~occ])
        res[f"{key}_all"] = _mean(v)
    ph, lm = torch.cat(photo).cpu(), torch.cat(lm_err).cpu()
    res["photo"] = _mean(ph)
    res["photo_median"] = float(ph.median())
    res["landmark_px"] = _mean(lm)
    res["landmark_px_median"] = float(lm.median())
    if shape:
        sh = torch.cat(shape).cpu()
        res["shape_mm"] = _mean(sh)
        res["shape_mm_occluded"] = _mean(sh[occ])
        res["shape_mm_unoccluded"] = _mean(sh[~occ])
        res["shape_mm_median"] = float(sh.median())
        res["shape_mm_occluded_median"] = float(sh[occ].median()) if bool(occ.any()) else None
        # references: the mean face (identity 0) and how far the predicted identity follows the truth
        res["shape_mm_mean_face"] = _mean(torch.cat(shape_mean_face).cpu())
        res["id_corr"] = M.coefficient_correlation(torch.cat(pred_id).cpu(), vs.true_id.cpu())
    else:
        for k in (
            "shape_mm",
            "shape_mm_occluded",
            "shape_mm_unoccluded",
            "shape_mm_median",
            "shape_mm_occluded_median",
            "shape_mm_mean_face",
            "id_corr",
        ):
            res[k] = None
    return res


def write_records(path: str | Path, records: list[dict], extra: dict | None = None) -> None:
    """The validation records of a stage as JSON (atomic)."""
    from focus.io_utils import write_json_atomic

    write_json_atomic(path, {**(extra or {}), "records": records})


def read_records(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "validation records not found", "run the stage that writes them")
    return list(json.loads(path.read_text(encoding="utf-8"))["records"])


__all__ = [
    "OCCLUDED_MIN_SHARE",
    "SEG_KEYS",
    "ValidationSet",
    "evaluate",
    "load_validation_set",
    "read_records",
    "read_truth",
    "write_records",
]
