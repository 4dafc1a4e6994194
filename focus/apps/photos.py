"""Finding images among the user's inputs and reading them robustly.

:func:`find_images` turns command-line arguments (files and folders) into the list of images to
process plus the list of things that were skipped, each with a reason: a missing path fails, a
file in a folder whose extension is not an image format is *ignored* (reported, but it does not
make the run fail; hidden files are passed over silently).

:func:`read_photo` decodes one image into ``(H, W, 3)`` float32 RGB in [0, 1] whatever its mode:
grey-scale, grey + alpha, palette, RGBA (composited over white), 16-bit grey (scaled by 65535),
32-bit integer or float grey, CMYK; the EXIF orientation is applied (phone photos) and only the
first frame of an animation is used. Unreadable, truncated, oversized (more than
``max_megapixels``) and tiny images raise :class:`focus.errors.InputFileError` naming the file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from focus.errors import InputFileError

#: Extensions treated as images when a folder is scanned (case-insensitive).
IMAGE_EXTENSIONS: frozenset[str] = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
    ".pbm", ".pnm", ".tga", ".jp2", ".j2k", ".qoi", ".avif", ".sgi", ".pcx",
})
#: Default limit on the decoded size of one image (Pillow's own decompression-bomb warning is at 89 MP).
DEFAULT_MAX_MEGAPIXELS = 80.0
#: Images smaller than this (either side, px) cannot hold a usable face.
MIN_SIDE = 32


@dataclass(frozen=True)
class InputImage:
    """One image to process.

    Attributes:
        path: the file.
        name: its name for outputs and landmark-CSV look-ups: the path relative to the folder
            it was found in (``/`` separators), or the file name when it was named directly.
    """

    path: Path
    name: str


@dataclass(frozen=True)
class Skipped:
    """An input that was not processed: ``failed`` ones make the run's exit status non-zero."""

    path: Path
    reason: str
    failed: bool = True

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Photo:
    """A decoded image.

    Attributes:
        pixels: ``(H, W, 3)`` float32 RGB in [0, 1]; row 0 is the top (after EXIF orientation).
        mode: the Pillow mode of the file (``"RGB"``, ``"L"``, ``"RGBA"``, ``"I;16"``, ...).
        notes: what was done to make it RGB (for reports), e.g. ``"grey-scale"``.
    """

    pixels: np.ndarray
    mode: str
    notes: tuple[str, ...] = field(default=())

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def is_image_name(path: str | Path) -> bool:
    """Whether the extension is one of :data:`IMAGE_EXTENSIONS`."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def find_images(inputs: Sequence[str | Path], recursive: bool = False,
                exclude: str | Path | None = None) -> tuple[list[InputImage], list[Skipped]]:
    """The images named by ``inputs`` (files or folders), in a stable order, and what was skipped.

    * a file given directly is always tried (whatever its extension);
    * a folder contributes its files with an image extension (sorted by name; sub-folders only
      with ``recursive``); other files are reported as ignored (``failed=False``); hidden files
      and folders (name starting with ``.``) are passed over;
    * a path that does not exist is a failure; a file reached twice is processed once;
    * files inside ``exclude`` (e.g. the output folder placed inside a scanned folder) are left out.
    """
    images: list[InputImage] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    skip_root = Path(exclude).resolve() if exclude is not None else None

    def add(path: Path, name: str) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            images.append(InputImage(path, name))

    for raw in inputs:
        p = Path(raw)
        if p.is_file():
            add(p, p.name)
        elif p.is_dir():
            files = sorted(p.rglob("*") if recursive else p.iterdir())
            for f in files:
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts) or not f.is_file():
                    continue
                if skip_root is not None and skip_root in f.resolve().parents:
                    continue
                if is_image_name(f):
                    add(f, rel.as_posix())
                else:
                    skipped.append(Skipped(f, f"not an image file ('{f.suffix or 'no extension'}'), ignored", failed=False))
        else:
            skipped.append(Skipped(p, "no such file or folder"))
    return images, skipped


def unique_stems(names: Sequence[str], reserved: Sequence[str] = ()) -> dict[str, str]:
    """A unique output stem per image name: the name without its extension (sub-folders kept),
    with ``_<ext>`` added where two names would collide (``a.jpg`` and ``a.png``) and a counter
    where that is not enough. Comparisons ignore case (case-insensitive file systems); stems
    never start with ``.`` and never equal one of ``reserved``."""
    base = {n: Path(n).with_suffix("").as_posix() for n in names}
    counts: dict[str, int] = {}
    for b in base.values():
        counts[b.lower()] = counts.get(b.lower(), 0) + 1
    taken = {r.lower() for r in reserved}
    out: dict[str, str] = {}
    for n in names:
        b = base[n]
        if counts[b.lower()] > 1:
            b = f"{b}_{Path(n).suffix.lstrip('.').lower() or 'noext'}"
        if Path(b).name.startswith("."):
            b = str(Path(b).with_name("_" + Path(b).name.lstrip(".")))
        k, cand = 1, b
        while cand.lower() in taken:
            k += 1
            cand = f"{b}_{k}"
        taken.add(cand.lower())
        out[n] = cand
    return out


def read_photo(path: str | Path, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS, exif_orientation: bool = True) -> Photo:
    """Decode ``path`` into a :class:`Photo` (see the module docstring for the modes handled).

    ``exif_orientation=False`` keeps the pixels as stored (what landmark CSVs refer to, as in
    :mod:`focus.data.dataset`).

    Raises:
        InputFileError: missing, unreadable, truncated, larger than ``max_megapixels`` or
            smaller than :data:`MIN_SIDE` pixels.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_megapixels * 1e6:
                    raise InputFileError(path, f"image is too large ({w} x {h} = {w * h / 1e6:.0f} megapixels, limit "
                                         f"{max_megapixels:g})", "downscale it or raise --max-megapixels")
                if min(w, h) < MIN_SIDE:
                    raise InputFileError(path, f"image is too small ({w} x {h} px) to hold a face")
                mode = im.mode
                im.seek(0)
                im.load()
                if exif_orientation:
                    im = ImageOps.exif_transpose(im) or im
                pixels, notes = _to_rgb(im)
    except InputFileError:
        raise
    except FileNotFoundError:
        raise InputFileError(path, "image file not found") from None
    except Image.DecompressionBombError as exc:
        raise InputFileError(path, f"image is too large ({exc})", "downscale it or raise --max-megapixels") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for corrupt or foreign files
        what = "truncated or corrupt image" if "truncated" in str(exc).lower() else "unreadable image"
        raise InputFileError(path, f"{what} ({exc.__class__.__name__}: {exc})") from exc
    if not np.isfinite(pixels).all():
        raise InputFileError(path, "image has NaN or infinite values")
    return Photo(np.ascontiguousarray(pixels, dtype=np.float32), mode, tuple(notes))


def _to_rgb(im: Image.Image) -> tuple[np.ndarray, list[str]]:
    """``(H, W, 3)`` float32 in [0, 1] from any Pillow mode, and notes on the conversion."""
    mode = im.mode
    notes: list[str] = []
    if mode == "RGB":
        return np.asarray(im, dtype=np.float32) / 255.0, notes
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im).astype(np.float64)
        if mode.startswith("I;16"):
            scale = 65535.0
        elif mode == "I":
            scale = 65535.0 if arr.max(initial=0) > 255 else 255.0
        else:
            scale = max(1.0, float(arr.max(initial=0)))
        notes.append(f"{'16-bit' if scale == 65535.0 else mode} grey-scale")
        g = np.clip(arr / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(g[..., None], 3, axis=-1), notes
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:4]
        if (alpha < 1).any():
            notes.append("transparency composited over white")
        rgb = rgba[..., :3] * alpha + (1.0 - alpha)
        if mode in ("LA", "La"):
            notes.append("grey-scale")
        return rgb.astype(np.float32), notes
    if mode in ("L", "1"):
        notes.append("grey-scale")
    elif mode != "P":
        notes.append(f"converted from {mode}")
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0, notes


__all__ = ["DEFAULT_MAX_MEGAPIXELS", "IMAGE_EXTENSIONS", "InputImage", "MIN_SIDE", "Photo", "Skipped", "find_images",
           "is_image_name", "read_photo", "unique_stems"]
