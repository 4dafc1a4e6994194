"""Example grids: the panel mosaic (torchvision's make_grid) against panels placed one by one."""

from __future__ import annotations

import numpy as np
from PIL import Image

from focus.eval.grids import panel_mosaic, save_grid


def _reference_mosaic(rows, n_cols, gap):
    h = max(p.shape[0] for row in rows for p in row)
    w = max(p.shape[1] for row in rows for p in row)
    out = np.ones((gap + len(rows) * (h + gap), gap + n_cols * (w + gap), 3), np.float32)
    for r, row in enumerate(rows):
        for c, p in enumerate(row):
            y, x = gap + r * (h + gap), gap + c * (w + gap)
            out[y : y + p.shape[0], x : x + p.shape[1]] = np.clip(p, 0, 1)
    return out


def test_panel_mosaic_matches_the_reference():
    rng = np.random.default_rng(0)
    rows = [[rng.normal(0.5, 0.4, (12, 10, 3)) for _ in range(3)], [rng.random((12, 10, 3)), rng.random((7, 9, 3))]]
    got = panel_mosaic(rows, 3, gap=2)
    assert got.shape == (2 + 2 * 14, 2 + 3 * 12, 3)
    assert np.allclose(got, _reference_mosaic(rows, 3, 2), atol=1e-6)


def test_save_grid_writes_a_png(tmp_path):
    rng = np.random.default_rng(1)
    rows = [[rng.random((16, 16, 3)) for _ in range(4)], [rng.random((16, 16, 3)) for _ in range(3)]]
    save_grid(rows, ["a\nF1 0.5", "b"], ["input", "render", "mask", "true"], tmp_path / "g.png", "title")
    save_grid([], [], ["input"], tmp_path / "empty.png")
    for name in ("g.png", "empty.png"):
        with Image.open(tmp_path / name) as im:
            assert im.size[0] > 100 and im.size[1] > 50
