"""Image grids of examples: input, reconstruction, estimated masks and the true mask, one row per image.

Panels are ``(H, W, 3)`` float RGB in [0, 1] (crops of the evaluation, image frame); masks are
shown as grey levels (white = face / inlier). :func:`example_panels` builds the panels of one
image from a :class:`focus.eval.predict.Predictions`; :func:`save_grid` draws rows of panels with
column titles and a caption per row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from focus.io_utils import atomic_path


def _hwc(x: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` or ``(H, W)`` -> ``(H, W, 3)`` float in [0, 1]."""
    a = np.asarray(x, np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    return np.clip(a.transpose(1, 2, 0), 0.0, 1.0)


def overlay_render(image: np.ndarray, render: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """The render pasted over the input where the face is rendered ``(H, W, 3)`` (all ``(C, H, W)``)."""
    c = np.asarray(coverage, np.float32)[0][..., None]
    return np.clip(_hwc(image) * (1 - c) + _hwc(render) * c, 0, 1)


def mask_panel(face_prob: np.ndarray, coverage: np.ndarray | None = None) -> np.ndarray:
    """A face-probability map in grey; outside the rendered region (``coverage`` given) dimmed blue."""
    m = _hwc(face_prob)
    if coverage is None:
        return m
    c = np.asarray(coverage, np.float32)[0][..., None]
    outside = np.array([0.1, 0.12, 0.25], np.float32)
    return np.clip(m * c + outside * (1 - c), 0, 1)


def example_panels(pred, i: int, extra_seg: Sequence[str] = ()) -> list[np.ndarray]:
    """Panels of image ``i``: input, reconstruction, estimated mask (first segmentation of
    ``pred.seg`` unless ``extra_seg`` lists others first), any ``extra_seg`` masks, true mask."""
    names = list(extra_seg) or list(pred.seg)[:1]
    panels = [_hwc(pred.images[i]), overlay_render(pred.images[i], pred.renders[i], pred.coverage[i])]
    for name in names:
        panels.append(mask_panel(pred.seg[name][i], pred.coverage[i]))
    if pred.masks is not None:
        panels.append(_hwc(pred.masks[i]))
    return panels


def save_grid(rows: Sequence[Sequence[np.ndarray]], captions: Sequence[str], columns: Sequence[str], path: str | Path,
              title: str = "", panel_inches: float = 1.35) -> None:
    """Draw ``rows`` of equally many panels with ``columns`` titles and one caption per row (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=len(columns))
    if n_rows == 0:
        n_rows, rows, captions = 1, [[np.zeros((8, 8, 3))] * n_cols], ["(no examples)"]
    fig = Figure(figsize=(panel_inches * n_cols + 1.9, panel_inches * n_rows + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, (row, cap) in enumerate(zip(rows, captions)):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(row):
                ax.imshow(np.clip(row[c], 0, 1), interpolation="nearest")
            else:
                ax.axis("off")
            if r == 0 and c < len(columns):
                ax.set_title(columns[c], fontsize=8)
        axes[r][0].set_ylabel(cap, fontsize=7, rotation=0, ha="right", va="center", labelpad=4)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")


__all__ = ["example_panels", "mask_panel", "overlay_render", "save_grid"]
