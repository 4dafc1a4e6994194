"""Contact sheets of a face-image folder: each sample as the image and, beside it, the image with
the true masks and the landmarks overlaid (green = visible face, red = occluded face, yellow dots =
the CSV's noisy landmarks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from focus.data.dataset import mask_name
from focus.data.landmarks_csv import read_landmarks_csv
from focus.io_utils import atomic_path


def overlay(image: np.ndarray, mask: np.ndarray | None, face_mask: np.ndarray | None) -> np.ndarray:
    """``(H, W, 3)`` uint8 image with visible face tinted green and occluded face tinted red."""
    out = image.astype(np.float32)
    if face_mask is not None:
        occ = face_mask & ~(mask if mask is not None else np.zeros_like(face_mask))
        out[occ] = 0.45 * out[occ] + 0.55 * np.array([255, 40, 40])
    if mask is not None:
        out[mask] = 0.6 * out[mask] + 0.4 * np.array([40, 255, 80])
    return np.clip(out, 0, 255).astype(np.uint8)


def _read(path: Path, mode: str) -> np.ndarray | None:
    if not path.is_file():
        return None
    with Image.open(path) as im:
        return np.asarray(im.convert(mode))


def tile(root: Path, name: str, landmarks: np.ndarray, images_dir: str, scale: int, tile_px: int) -> Image.Image:
    """One sample: image | overlay, each resized to ``tile_px`` (landmarks drawn on the overlay)."""
    img = _read(root / images_dir / name, "RGB")
    m = _read(root / "masks" / mask_name(name), "L")
    fm = _read(root / "face_masks" / mask_name(name), "L")
    ov = overlay(img, None if m is None else m > 127, None if fm is None else fm > 127)
    H, W = img.shape[:2]
    k = tile_px / max(H, W)
    a = Image.fromarray(img).resize((round(W * k), round(H * k)), Image.BILINEAR)
    b = Image.fromarray(ov).resize((round(W * k), round(H * k)), Image.NEAREST)
    d = ImageDraw.Draw(b)
    r = max(1.0, scale * 0.5)
    for x, y in landmarks * k:
        d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 230, 0))
    out = Image.new("RGB", (a.width * 2 + 2, a.height), (255, 255, 255))
    out.paste(a, (0, 0))
    out.paste(b, (a.width + 2, 0))
    return out


def contact_sheet(
    root: str | Path,
    out: str | Path,
    title: str,
    count: int = 24,
    columns: int = 4,
    tile_px: int = 160,
    images_dir: str = "images",
    names: list[str] | None = None,
) -> Path:
    """Write a PNG contact sheet of the first ``count`` samples (or ``names``) of a folder."""
    root = Path(root)
    table = read_landmarks_csv(root / "landmarks.csv")
    lms = dict(zip(table.names, table.landmarks, strict=True))
    names = list(names or table.names[:count])
    tiles = [tile(root, n, lms[n], images_dir, max(1, tile_px // 64), tile_px) for n in names]
    return save_grid(tiles, names, out, title, columns)


#: Layout of :func:`save_grid`, pixels: title band, label band above each tile, gap between tiles.
_TITLE_PX, _LABEL_PX, _GAP_PX = 20, 14, 8
_BACKGROUND = 250


def save_grid(tiles: list[Image.Image], labels: list[str], out: str | Path, title: str, columns: int) -> Path:
    """Arrange labelled tiles in a grid under a title and write it as PNG.

    Each cell is as large as the largest tile (smaller tiles sit at its top left) with the label
    above it; :func:`torchvision.utils.make_grid` lays out the cells with an 8 px gap, in rows of
    ``columns`` (the sheet is always ``columns`` cells wide).
    """
    from torchvision.utils import make_grid

    tw = max(t.width for t in tiles)
    th = max(t.height for t in tiles)
    cells = torch.full((max(len(tiles), columns), 3, _LABEL_PX + th, tw), _BACKGROUND, dtype=torch.uint8)
    for cell, t in zip(cells, tiles, strict=False):  # blank cells fill the first row
        pixels = torch.from_numpy(np.array(t.convert("RGB"))).permute(2, 0, 1)  # (3, h, w) uint8
        cell[:, _LABEL_PX : _LABEL_PX + t.height, : t.width] = pixels
    grid = make_grid(cells, nrow=columns, padding=_GAP_PX, pad_value=_BACKGROUND)
    sheet = Image.new("RGB", (grid.shape[2], _TITLE_PX + grid.shape[1]), (_BACKGROUND,) * 3)
    sheet.paste(Image.fromarray(grid.permute(1, 2, 0).numpy()), (0, _TITLE_PX))
    d = ImageDraw.Draw(sheet)
    d.text((_GAP_PX, _GAP_PX), title, fill=(0, 0, 0))
    for i, name in enumerate(labels[: len(tiles)]):
        r, c = divmod(i, columns)
        x, y = _GAP_PX + c * (tw + _GAP_PX), _TITLE_PX + _GAP_PX + r * (th + _LABEL_PX + _GAP_PX)
        d.text((x, y), name[-40:], fill=(60, 60, 60))
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return out
