"""Evidence that a ``focus reconstruct`` run is right on photos with a known occluder.

Given a photo with a patch pasted over the face at a known box, the run's outlier mask
(``outlier.png``) should mark the patch and little else; given the detector's points, the projected
model should line up with them (``coeffs.json``'s ``fit``). :func:`occluder_scores` measures the
first, :func:`collect_run_numbers` gathers both over a run (used by the quality test and by
``bench/reconstruct.py --quality``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def occluder_scores(outlier: np.ndarray, face_mask: np.ndarray, box: tuple[int, int, int, int]) -> dict:
    """Scores of an outlier mask against a pasted occluder.

    Args:
        outlier: ``(H, W)`` outlier probability in the photo (``outlier.png`` / 255).
        face_mask: ``(H, W)`` visible-face probability (``face_mask.png`` / 255); the rendered
            face region is where ``outlier + face_mask > 0.5``.
        box: ``(x0, y0, x1, y1)`` the pasted region, pixels.

    Returns ``iou`` of the predicted outliers (``> 0.5``) with the paste region inside the rendered
    face, ``outlier_rate_in_box`` (share of the occluded face marked outlier), ``outlier_rate_outside``
    (share of the rest of the face marked outlier) and ``box_share_of_face``.
    """
    outlier = np.asarray(outlier, np.float64)
    region = (outlier + np.asarray(face_mask, np.float64)) > 0.5
    pred = (outlier > 0.5) & region
    inbox = np.zeros_like(region)
    x0, y0, x1, y1 = box
    inbox[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    target = inbox & region
    rest = region & ~inbox
    union = (pred | target).sum()
    return {
        "iou": float((pred & target).sum() / union) if union else None,
        "outlier_rate_in_box": float(pred[target].mean()) if target.any() else None,
        "outlier_rate_outside": float(pred[rest].mean()) if rest.any() else None,
        "box_share_of_face": float(target.sum() / max(region.sum(), 1)),
    }


def _grey(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), np.float64) / 255.0


def collect_run_numbers(out_dir: str | Path, boxes: dict[str, tuple[int, int, int, int] | None]) -> dict:
    """Per reconstructed image of the run in ``out_dir`` (its ``report.json``): the landmark fit of
    face 0 and, where ``boxes`` gives the pasted region for the image's name, its occluder scores;
    plus the means over images (``summary``)."""
    out_dir = Path(out_dir)
    report = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    rows = {}
    for img in report["images"]:
        if img["status"] != "ok":
            continue
        d = out_dir / img["folder"] / "face_0"
        info = json.loads((d / "coeffs.json").read_text(encoding="utf-8"))
        row = {
            "fit": info["fit"],
            "outlier_share": info["outlier_share"],
            "yaw_deg": info["coefficients"]["rotation"]["yaw_deg"],
        }
        box = boxes.get(img["name"])
        if box is not None:
            row["occluder"] = occluder_scores(_grey(d / "outlier.png"), _grey(d / "face_mask.png"), box)
        rows[img["name"]] = row

    def mean(values):
        v = [x for x in values if x is not None]
        return float(np.mean(v)) if v else None

    summary = {
        "nme5": mean(r["fit"]["nme5"] for r in rows.values()),
        "nme68": mean(r["fit"].get("nme68") for r in rows.values()),
        "occluder_iou": mean(r["occluder"]["iou"] for r in rows.values() if "occluder" in r),
        "outlier_rate_in_box": mean(r["occluder"]["outlier_rate_in_box"] for r in rows.values() if "occluder" in r),
        "outlier_rate_outside": mean(r["occluder"]["outlier_rate_outside"] for r in rows.values() if "occluder" in r),
        "outlier_share_unoccluded": mean(r["outlier_share"] for r in rows.values() if "occluder" not in r),
    }
    return {"images": rows, "summary": summary}


__all__ = ["collect_run_numbers", "occluder_scores"]
