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

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from focus.errors import InputFileError

#: Extensions treated as images when a folder is scanned (case-insensitive).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".bmp",
        ".dib",
        ".gif",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
        ".jp2",
        ".j2k",
        ".qoi",
        ".avif",
        ".sgi",
        ".pcx",
    }
)
#: Default limit on the decoded size of one image (Pillow's own decompression-bomb warning is at 89 MP).
DEFAULT_MAX_MEGAPIXELS = 80.0
#: Images smaller than this (either side, px) cannot hold a usable face.
MIN_SIDE = 32


@dataclass(frozen=True)
class InputImage:
    """One image to process.

    Attributes:
        path: the file.
        name: its name for landmark-CSV look-ups: the path relative to the folder it was found
            in (``/`` separators), or the file name when it was named directly. Two inputs can
            share a name (``DIR1/a.png`` and ``DIR2/a.png``); :attr:`key` cannot.
        root: the input folder it was found in (the file's folder when it was named directly).
    """

    path: Path
    name: str
    root: Path | None = None

    @property
    def key(self) -> str:
        """The input's identity: its full path (symbolic links resolved)."""
        return str(self.path.resolve())


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


def find_images(
    inputs: Sequence[str | Path], recursive: bool = False, exclude: str | Path | None = None
) -> tuple[list[InputImage], list[Skipped]]:
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

    def add(path: Path, name: str, root: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            images.append(InputImage(path, name, root))

    for raw in inputs:
        p = Path(raw)
        if p.is_file():
            add(p, p.name, p.parent)
        elif p.is_dir():
            files = sorted(p.rglob("*") if recursive else p.iterdir())
            for f in files:
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts) or not f.is_file():
                    continue
                if skip_root is not None and skip_root in f.resolve().parents:
                    continue
                if is_image_name(f):
                    add(f, rel.as_posix(), p)
                else:
                    skipped.append(
                        Skipped(f, f"not an image file ('{f.suffix or 'no extension'}'), ignored", failed=False)
                    )
        else:
            skipped.append(Skipped(p, "no such file or folder"))
    return images, skipped


def source_labels(items: Sequence[InputImage]) -> dict[str, str]:
    """A unique, readable label per input (keyed by :attr:`InputImage.key`): its name, or, where
    several inputs share a name (case-insensitively), the name under as many of its input folder's
    trailing path parts as tell them apart (``DIR1/a.png``, ``DIR2/a.png``). Deterministic: the same
    paths give the same labels whatever their order."""
    groups: dict[str, list[InputImage]] = {}
    for it in items:
        groups.setdefault(it.name.lower(), []).append(it)
    labels: dict[str, str] = {}
    for group in groups.values():
        if len(group) == 1:
            labels[group[0].key] = group[0].name
            continue
        parents = [_folder_parts(it) for it in group]
        depth = max(len(p) for p in parents)
        for k in range(1, depth + 1):
            cands = ["/".join([*p[-k:], it.name]) for p, it in zip(parents, group, strict=True)]
            if len({c.lower() for c in cands}) == len(cands):
                break
        labels.update({it.key: c for it, c in zip(group, cands, strict=True)})
    return labels


def _folder_parts(item: InputImage) -> tuple[str, ...]:
    """The parts of the item's input folder as an absolute path, without the root (``/``, ``C:\\``)."""
    root = item.root if item.root is not None else item.path.parent
    return Path(os.path.abspath(root)).parts[1:]


def output_stems(
    items: Sequence[InputImage], reserved: Sequence[str] = (), earlier: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A unique output stem (a relative ``/`` path without extension) per input, keyed by
    :attr:`InputImage.key`: :func:`source_labels` made unique by :func:`unique_stems`.

    Args:
        reserved: stems no input may take (e.g. the run's own summary files).
        earlier: ``{input key: stem}`` of results already in the output folder. An input found
            there keeps its stem (its new result replaces its own old one); the others avoid
            these stems, so one photo's results never replace another's.
    """
    earlier = dict(earlier or {})
    keys = [it.key for it in items]
    out: dict[str, str] = {}
    taken = _Taken(reserved)
    for key in keys:
        stem = earlier.get(key)
        if stem is not None and not taken.clashes(stem):
            out[key] = stem
            taken.add(stem)
    for stem in earlier.values():
        taken.add(stem)
    labels = source_labels(items)
    todo = [k for k in keys if k not in out]
    out.update(zip(todo, _unique_stems([labels[k] for k in todo], taken), strict=True))
    return out


class _Taken:
    """Stems in use, compared case-insensitively (case-insensitive file systems); a stem also
    clashes with its own folders and sub-folders (``a`` would hold ``a/b``'s results)."""

    def __init__(self, stems: Sequence[str] = ()) -> None:
        self.stems: set[str] = set()
        self.folders: set[str] = set()
        for s in stems:
            self.add(s)

    def add(self, stem: str) -> None:
        low = stem.lower()
        self.stems.add(low)
        parts = low.split("/")
        self.folders.update("/".join(parts[:i]) for i in range(1, len(parts)))

    def clashes(self, stem: str) -> bool:
        low = stem.lower()
        return low in self.stems or low in self.folders or self.inside_a_stem(low)

    def inside_a_stem(self, stem: str) -> bool:
        """Whether a folder of ``stem`` is a taken stem (no suffix on ``stem`` can fix that)."""
        parts = stem.lower().split("/")
        return any("/".join(parts[:i]) in self.stems for i in range(1, len(parts)))


def unique_stems(names: Sequence[str], reserved: Sequence[str] = ()) -> dict[str, str]:
    """A unique output stem per image name: the name without its extension (sub-folders kept),
    with ``_<ext>`` added where two names would collide (``a.jpg`` and ``a.png``) and a counter
    where that is not enough. Comparisons ignore case (case-insensitive file systems); no path
    part starts with ``.``; no stem equals one of ``reserved`` or is a folder of another stem."""
    return dict(zip(names, _unique_stems(list(names), _Taken(reserved)), strict=True))


def _unique_stems(names: list[str], taken: _Taken) -> list[str]:
    base = [_unhidden(Path(n).with_suffix("").as_posix()) for n in names]
    counts: dict[str, int] = {}
    for b in base:
        counts[b.lower()] = counts.get(b.lower(), 0) + 1
    out = []
    for n, b in zip(names, base, strict=True):
        if counts[b.lower()] > 1:
            b = f"{b}_{Path(n).suffix.lstrip('.').lower() or 'noext'}"
        if taken.inside_a_stem(b):
            b = b.replace("/", "_")  # flat: only its own name can clash, and a counter fixes that
        k, cand = 1, b
        while taken.clashes(cand):
            k += 1
            cand = f"{b}_{k}"
        taken.add(cand)
        out.append(cand)
    return out


def _unhidden(stem: str) -> str:
    """``stem`` with a ``_`` before every path part that starts with ``.`` (no hidden outputs)."""
    return "/".join("_" + p.lstrip(".") if p.startswith(".") else p for p in stem.split("/"))


def read_photo(
    path: str | Path, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS, exif_orientation: bool = True
) -> Photo:
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
                    raise InputFileError(
                        path,
                        f"image is too large ({w} x {h} = {w * h / 1e6:.0f} megapixels, limit {max_megapixels:g})",
                        "downscale it or raise --max-megapixels",
                    )
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


__all__ = [
    "DEFAULT_MAX_MEGAPIXELS",
    "IMAGE_EXTENSIONS",
    "InputImage",
    "MIN_SIDE",
    "Photo",
    "Skipped",
    "find_images",
    "is_image_name",
    "output_stems",
    "read_photo",
    "source_labels",
    "unique_stems",
]
