"""The EM report: a summary of the validation records and the per-round plot.

The records are the validation results in training order: ``init`` (segmentation = pseudo masks
``z(p)``), ``pretrain_seg`` (the pre-trained U-Net), then ``r{k}/seg`` and ``r{k}/rec`` for every
EM round. :func:`em_summary` compares the last record with the initialisation on the held-out
**occluded** images (the targets of docs/evaluation.md 4: F1 at least 0.05 higher than the pseudo masks, neutral
shape error at least 10 % lower); :func:`plot_em_rounds` draws every metric against the phase.
"""

from __future__ import annotations

from pathlib import Path

#: The targets (docs/evaluation.md 4) for the EM rounds against their starting point (occluded images).
TARGET_F1_GAIN = 0.05
TARGET_SHAPE_REDUCTION = 0.10


def _get(rec: dict, key: str):
    v = rec.get(key)
    return None if v is None else float(v)


def em_summary(records: list[dict]) -> dict:
    """Start (``init``) vs. end (last record) on the occluded images, and whether the targets are met."""
    if not records:
        return {}
    start = next((r for r in records if r.get("phase") == "init"), records[0])
    end = records[-1]
    out = {"start_phase": start.get("phase"), "end_phase": end.get("phase")}
    for key in (
        "f1_occluded",
        "f1_unoccluded",
        "iou_occluded",
        "iou_unoccluded",
        "f1_hard_occluded",
        "f1_allface_occluded",
        "shape_mm",
        "shape_mm_occluded",
        "shape_mm_median",
        "shape_mm_occluded_median",
        "photo",
        "photo_median",
        "landmark_px",
        "shape_mm_mean_face",
        "id_corr",
    ):
        out[f"{key}_start"] = _get(start, key)
        out[f"{key}_end"] = _get(end, key)
    f1s, f1e = out["f1_occluded_start"], out["f1_occluded_end"]
    shs, she = out["shape_mm_occluded_start"], out["shape_mm_occluded_end"]
    out["f1_occluded_gain"] = None if f1s is None or f1e is None else f1e - f1s
    out["shape_occluded_reduction"] = None if not shs or she is None else 1.0 - she / shs
    out["target_f1_gain"] = TARGET_F1_GAIN
    out["target_shape_reduction"] = TARGET_SHAPE_REDUCTION
    out["targets_met"] = bool(
        out["f1_occluded_gain"] is not None
        and out["f1_occluded_gain"] >= TARGET_F1_GAIN
        and out["shape_occluded_reduction"] is not None
        and out["shape_occluded_reduction"] >= TARGET_SHAPE_REDUCTION
    )
    return out


def plot_em_rounds(records: list[dict], path: str | Path) -> None:
    """Segmentation F1 / IoU (occluded, unoccluded), shape error, photometric and landmark error per phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from focus.io_utils import atomic_path

    labels = [r.get("phase", str(i)) for i, r in enumerate(records)]
    x = list(range(len(records)))

    def series(key):
        return [_get(r, key) if _get(r, key) is not None else float("nan") for r in records]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for key, style in (
        ("f1_occluded", "o-"),
        ("f1_unoccluded", "s-"),
        ("iou_occluded", "o--"),
        ("iou_unoccluded", "s--"),
    ):
        ax.plot(x, series(key), style, label=key.replace("_", " "))
    ax.plot(x, series("f1_allface_occluded"), ":", color="grey", label="F1 occluded, all-face mask (reference)")
    ax.set_title("segmentation of the face class (held-out)")
    ax.set_ylabel("score (soft mask)")
    ax = axes[1]
    for key, style in (("shape_mm", "o-"), ("shape_mm_occluded", "s--")):
        ax.plot(x, series(key), style, label=key.replace("_", " "))
    ax.plot(x, series("shape_mm_mean_face"), ":", color="grey", label="mean face (identity 0, reference)")
    ax.set_title("neutral shape error (mm, similarity-aligned)")
    if any(_get(r, "id_corr") is not None for r in records):
        ax_c = ax.twinx()
        ax_c.plot(x, series("id_corr"), "^-", color="tab:green", alpha=0.6)
        ax_c.set_ylabel("identity correlation with the truth (first 10)", color="tab:green")
        ax_c.set_ylim(-1, 1)
    ax = axes[2]
    ax.plot(x, series("landmark_px"), "o-", label="landmark error (px)")
    ax2 = ax.twinx()
    ax2.plot(x, series("photo"), "s-", color="tab:red", label="photometric error (visible face)")
    ax2.set_ylabel("||I - R||", color="tab:red")
    ax.set_title("landmarks and photometric error")
    for a in axes:
        a.set_xticks(x)
        a.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        a.grid(alpha=0.3)
        a.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


__all__ = ["TARGET_F1_GAIN", "TARGET_SHAPE_REDUCTION", "em_summary", "plot_em_rounds"]
