"""Byte-deterministic writers for the synthetic sets: images, masks, coefficient archives, tables."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from focus.io_utils import atomic_path

#: fixed timestamp inside ``.npz`` archives (numpy's writer stamps the current time)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 ``(H, W)`` or ``(H, W, 3)`` array as PNG (lossless, deterministic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG", compress_level=6)


def write_jpeg(path: Path, array: np.ndarray, quality: int = 95) -> None:
    """Write a uint8 ``(H, W, 3)`` array as a high-quality JPEG (4:4:4 chroma)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="JPEG", quality=int(quality), subsampling=0)


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Write a boolean mask as an 8-bit PNG (255 = true)."""
    write_png(path, (np.asarray(mask, bool) * 255).astype(np.uint8))


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Like :func:`numpy.savez_compressed` but byte-identical run to run (fixed zip timestamps);
    readable with :func:`numpy.load`. Written atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key in arrays:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(arrays[key]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())


def write_csv(path: str | Path, header: list[str], rows: list[list]) -> None:
    """Write a small CSV table atomically (floats with 4 decimals)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([f"{x:.4f}" if isinstance(x, float) else x for x in row])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def write_face_box(path: Path, left: float, right: float, top: float, bottom: float) -> None:
    """A NoW ``detected_face`` file: a pickled dict with ``left``, ``right``, ``top``, ``bottom``
    (pixels), as ``numpy.save`` writes it (read with ``np.load(path, allow_pickle=True).item()``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    box = {"left": float(left), "right": float(right), "top": float(top), "bottom": float(bottom)}
    with open(path, "wb") as fh:
        np.save(fh, np.array(box, dtype=object), allow_pickle=True)
