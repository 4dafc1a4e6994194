"""Image grids of examples: input, reconstruction, estimated masks and the true mask, one row per image.

Panels are ``(H, W, 3)`` float RGB in [0, 1] (crops of the evaluation, image frame); masks are
shown as grey levels (white = face / inlier). :func:`example_panels` builds the panels of one
image from a :class:`focus.eval.predict.Predictions`; :func:`save_grid` draws rows of panels with
column titles and a caption per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

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


def panel_mosaic(rows: Sequence[Sequence[np.ndarray]], n_cols: int, gap: int = 2) -> np.ndarray:
    """The panels as one ``(H, W, 3)`` image with :func:`torchvision.utils.make_grid`: ``n_cols``
    per row, ``gap`` px of white between them; missing panels of a short row and the margins of a
    smaller panel (placed top left) are white."""
    from torchvision.utils import make_grid

    h = max(p.shape[0] for row in rows for p in row)
    w = max(p.shape[1] for row in rows for p in row)
    cells = torch.ones((len(rows) * n_cols, 3, h, w))
    for r, row in enumerate(rows):
        for c, p in enumerate(row[:n_cols]):
            panel = torch.from_numpy(np.clip(np.asarray(p, np.float32), 0, 1)).permute(2, 0, 1)
            cells[r * n_cols + c, :, : panel.shape[1], : panel.shape[2]] = panel
    return make_grid(cells, nrow=n_cols, padding=gap, pad_value=1.0).permute(1, 2, 0).numpy()


def save_grid(
    rows: Sequence[Sequence[np.ndarray]],
    captions: Sequence[str],
    columns: Sequence[str],
    path: str | Path,
    title: str = "",
    panel_inches: float = 1.35,
) -> None:
    """Draw ``rows`` of panels with ``columns`` titles on top and one caption left of each row (PNG).

    The panels are laid out by :func:`panel_mosaic` and drawn as one image; titles and captions
    are the tick labels at the panels' centres.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_cols = max((len(r) for r in rows), default=len(columns))
    if not rows:
        rows, captions = [[np.zeros((8, 8, 3))] * n_cols], ["(no examples)"]
    gap = max(2, round(min(p.shape[0] for row in rows for p in row) / 8))
    mosaic = panel_mosaic(rows, n_cols, gap)
    h = (mosaic.shape[0] - gap) / len(rows)
    w = (mosaic.shape[1] - gap) / n_cols
    fig = Figure(figsize=(panel_inches * n_cols + 1.9, panel_inches * len(rows) + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.xaxis.tick_top()
    ax.set_xticks([gap + c * w + (w - gap) / 2 for c in range(min(n_cols, len(columns)))])
    ax.set_xticklabels(list(columns)[:n_cols], fontsize=8)
    ax.set_yticks([gap + r * h + (h - gap) / 2 for r in range(len(rows))])
    ax.set_yticklabels(list(captions), fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")


__all__ = ["example_panels", "mask_panel", "overlay_render", "panel_mosaic", "save_grid"]
