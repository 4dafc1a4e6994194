"""The contact-sheet grid (torchvision's make_grid) against a plain reference: the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from focus.synth.contact_sheet import save_grid


def _reference_grid(tiles, labels, title, columns):
    """The sheet pasted tile by tile: 8 px gaps, a 20 px title band, a 14 px label band per cell."""
    tw, th, lab = max(t.width for t in tiles), max(t.height for t in tiles), 14
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (tw + 8) + 8, 28 + rows * (th + lab + 8)), (250, 250, 250))
    d = ImageDraw.Draw(sheet)
    d.text((8, 8), title, fill=(0, 0, 0))
    for i, (t, name) in enumerate(zip(tiles, labels, strict=True)):
        r, c = divmod(i, columns)
        x, y = 8 + c * (tw + 8), 28 + r * (th + lab + 8)
        d.text((x, y), name[-40:], fill=(60, 60, 60))
        sheet.paste(t, (x, y + lab))
    return np.asarray(sheet)


@pytest.mark.parametrize("n, columns", [(1, 4), (3, 4), (4, 4), (7, 3)])
def test_save_grid_matches_the_reference(tmp_path, n, columns):
    rng = np.random.default_rng(n)
    sizes = [(40, 30), (32, 40), (40, 40), (17, 23)]
    tiles = [Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)) for w, h in (sizes * 2)[:n]]
    labels = [f"photo_{i}_with_a_rather_long_name_that_overflows.png #0" for i in range(n)]
    save_grid(tiles, labels, tmp_path / "g.png", "a title", columns)
    with Image.open(tmp_path / "g.png") as im:
        got = np.asarray(im.convert("RGB"))
    assert np.array_equal(got, _reference_grid(tiles, labels, "a title", columns))
