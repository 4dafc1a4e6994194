"""One loader for every face-image folder: synthetic sets and real data alike.

Folder layout (what :mod:`focus.synth` writes, and what a real set is prepared into)::

    <root>/landmarks.csv        name,x1,y1,...,x68,y68   (see focus.data.landmarks_csv)
    <root>/images/<name>        the images (any format Pillow reads: .png, .jpg, ...)
    <root>/masks/<stem>.png     optional: true visible-face masks (white = visible face skin)
    <root>/face_masks/<stem>.png  optional: true face region, occluded or not (synthetic sets)

``<stem>`` is the image name without its extension (sub-folders kept). Masks have the size of
their image. Images are aligned to the training crop with the five-point transform of
:mod:`focus.data.alignment` and augmented with :mod:`focus.data.augment` in one resampling.

Bad input (an unreadable image, a CSV row with the wrong number of columns or non-numbers, NaN
landmarks, a name with no file, a missing mask) is reported with the file and the CSV line.
``on_bad_input="skip"`` drops such rows (one warning each, then a count in the log);
``"error"`` makes the first one fatal (:class:`focus.errors.InputFileError`). Problems that
only show when an image is decoded in a worker are handled the same way: fatal, or that sample
is replaced by the next good one (logged, counted in :attr:`FaceImageFolder.runtime_skips`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from focus.config import check_fields, param
from focus.data.alignment import ALIGN_METHODS, AlignmentTemplate, estimate_alignment, transform_points, warp_to_crop
from focus.data.augment import AugmentSettings, identity_augmentation, mirror_landmarks, sample_augmentation
from focus.data.landmarks_csv import LandmarkProblem, read_landmarks_csv
from focus.errors import InputFileError

log = logging.getLogger("focus.data")

BAD_INPUT_POLICIES = ("skip", "error")
BORDER_MODES = ("reflect", "edge", "constant", "symmetric")
#: how many individual problems are logged before only the count is
MAX_LOGGED_PROBLEMS = 20


@dataclass(frozen=True)
class DataSettings:
    """How face-image folders are read (``params.yaml``: group ``data``).

    Attributes:
        crop_size: side of the aligned training crop, pixels (``None``: ``render.image_size``).
        align_method: ``"similarity"`` or ``"pos"`` (see :mod:`focus.data.alignment`).
        augment: the paper's augmentation (used only where the caller asks for it).
        on_bad_input: ``"skip"`` (log and drop, with a count) or ``"error"`` (fatal).
        verify_images: check every image's header when the folder is opened (cheap; catches
            missing and truncated files before training starts).
        border: how the image is extended beyond its edges (``skimage.transform.warp`` mode).
    """

    crop_size: int | None = param(None, ge=16, le=4096)
    align_method: str = param("similarity", choices=ALIGN_METHODS)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    on_bad_input: str = param("skip", choices=BAD_INPUT_POLICIES)
    verify_images: bool = True
    border: str = param("reflect", choices=BORDER_MODES)

    def __post_init__(self) -> None:
        check_fields(self)


def read_image(path: Path) -> np.ndarray:
    """``(H, W, 3)`` float32 RGB in [0, 1]; raises :class:`InputFileError` if unreadable."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    except FileNotFoundError:
        raise InputFileError(path, "image file not found") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for corrupt files
        raise InputFileError(path, f"unreadable image ({exc.__class__.__name__}: {exc})") from exc
    return arr / 255.0


def read_mask(path: Path) -> np.ndarray:
    """``(H, W)`` float32 in [0, 1] (grey level / 255); raises :class:`InputFileError`."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"), dtype=np.float32)
    except FileNotFoundError:
        raise InputFileError(path, "mask file not found") from None
    except Exception as exc:  # noqa: BLE001
        raise InputFileError(path, f"unreadable mask ({exc.__class__.__name__}: {exc})") from exc
    return arr / 255.0


def mask_name(image_name: str) -> str:
    """Mask file name of an image: the same relative path with a ``.png`` extension."""
    p = Path(image_name)
    return str(p.with_suffix(".png").as_posix())


class FaceImageFolder(Dataset):
    """A folder of face images with a landmark CSV (and optional masks), as aligned crops.

    ``dataset[i]`` is a dict:

    * ``image``: ``(3, S, S)`` float32 RGB in [0, 1], the aligned (and augmented) crop.
    * ``landmarks``: ``(68, 2)`` float32, the CSV landmarks moved into the crop (pixels, image
      frame), indices mirrored when flipped.
    * ``mask`` / ``face_mask``: ``(1, S, S)`` float32 in {0, 1}, only when the folder has them.
    * ``transform``: ``(3, 3)`` float32, source image pixels -> crop pixels.
    * ``flipped``: bool; ``index``: the sample's position; ``name``: the CSV name.

    Works with :class:`torch.utils.data.DataLoader` and worker processes (holds only paths and
    arrays). Augmentation randomness comes from ``(seed, epoch, index)``, so a sample is the
    same whatever the worker count; call :meth:`set_epoch` before each epoch (with persistent
    workers, the epoch a worker sees is the one set when it started).

    Args:
        root: the folder.
        template: where the five points go (:func:`focus.data.alignment.template_from_model`).
        settings: :class:`DataSettings`; ``settings.crop_size`` overrides the template's size.
        augment: apply ``settings.augment`` (training) or not (evaluation).
        images, landmarks, masks, face_masks: names of the parts inside ``root`` (``None``
            disables a mask kind; a missing mask folder simply means no masks).
        seed: base seed of the augmentation.
    """

    def __init__(self, root: str | Path, template: AlignmentTemplate, settings: DataSettings = DataSettings(), *,
                 augment: bool = False, images: str = "images", landmarks: str = "landmarks.csv",
                 masks: str | None = "masks", face_masks: str | None = "face_masks", seed: int = 0) -> None:
        self.root = Path(root)
        self.settings = settings
        crop = settings.crop_size or template.crop_size
        self.template = template if crop == template.crop_size else template.resized(crop)
        self.crop_size = int(crop)
        self.augment = bool(augment and settings.augment.enabled)
        self.seed = int(seed)
        self.epoch = 0
        self.runtime_skips = 0
        self.image_dir = self.root / images
        if not self.root.is_dir():
            raise InputFileError(self.root, "face-image folder not found")
        if not self.image_dir.is_dir():
            raise InputFileError(self.image_dir, "image directory not found", f"put the images under {self.image_dir}")
        strict = settings.on_bad_input == "error"
        table = read_landmarks_csv(self.root / landmarks, strict=False)
        problems: list[LandmarkProblem] = list(table.problems)
        self.mask_dirs: dict[str, Path] = {}
        for key, sub in (("mask", masks), ("face_mask", face_masks)):
            if sub is not None and (self.root / sub).is_dir():
                self.mask_dirs[key] = self.root / sub

        keep: list[int] = []
        for i, (name, line) in enumerate(zip(table.names, table.lines)):
            problem = self._check_files(name)
            if problem is not None:
                problems.append(LandmarkProblem(table.path, line, name, problem))
                continue
            keep.append(i)
        problems.sort(key=lambda p: p.line)
        if strict and problems:
            first = problems[0]
            more = f" ({len(problems) - 1} more bad rows)" if len(problems) > 1 else ""
            raise InputFileError(table.path, f"line {first.line} ({first.name}): {first.problem}{more}",
                                 "fix the row, or set data.on_bad_input: skip to leave bad rows out")
        self.names: tuple[str, ...] = tuple(table.names[i] for i in keep)
        self.lines: tuple[int, ...] = tuple(table.lines[i] for i in keep)
        self.landmarks: np.ndarray = table.landmarks[keep] if keep else np.zeros((0, 68, 2))
        self.problems: tuple[LandmarkProblem, ...] = tuple(problems)
        self.csv_path = table.path
        for p in problems[:MAX_LOGGED_PROBLEMS]:
            log.warning("skipping bad input: %s", p)
        if problems:
            more = f" ({len(problems) - MAX_LOGGED_PROBLEMS} not shown)" if len(problems) > MAX_LOGGED_PROBLEMS else ""
            log.warning("%s: skipped %d of %d rows with bad input%s", self.root, len(problems), len(problems) + len(keep), more)
        if not self.names:
            raise InputFileError(self.root, "no usable images (every row of the landmark CSV was bad or the CSV is empty)")

    # ------------------------------------------------------------------ checks
    def _check_files(self, name: str) -> str | None:
        path = self.image_dir / name
        if not path.is_file():
            return f"no image file {path}"
        if self.settings.verify_images:
            try:
                with Image.open(path) as im:
                    im.verify()
            except Exception as exc:  # noqa: BLE001
                return f"unreadable image {path} ({exc.__class__.__name__}: {exc})"
        for key, d in self.mask_dirs.items():
            mp = d / mask_name(name)
            if not mp.is_file():
                return f"no {key.replace('_', ' ')} file {mp}"
        return None

    # ------------------------------------------------------------------ dataset protocol
    def __len__(self) -> int:
        return len(self.names)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (deterministic in ``(seed, epoch, index)``)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        n = len(self.names)
        if not 0 <= index < n:
            raise IndexError(index)
        for k in range(n):
            i = (index + k) % n
            try:
                return self._load(i)
            except InputFileError as exc:
                if self.settings.on_bad_input == "error":
                    raise InputFileError(exc.path, f"{exc.problem} (landmark CSV {self.csv_path}, line {self.lines[i]})") from exc
                self.runtime_skips += 1
                log.warning("skipping bad input: %s:%d (%s): %s; serving the next sample instead (%d skipped in this process)",
                            self.csv_path, self.lines[i], self.names[i], exc, self.runtime_skips)
        raise InputFileError(self.root, "no sample of this folder could be read")

    def _load(self, i: int) -> dict:
        name = self.names[i]
        image = read_image(self.image_dir / name)
        lm = self.landmarks[i]
        try:
            M = estimate_alignment(lm, self.template, self.settings.align_method)
        except ValueError as exc:
            raise InputFileError(self.csv_path, f"line {self.lines[i]} ({name}): {exc}") from exc
        aug = identity_augmentation()
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            aug = sample_augmentation(rng, self.settings.augment, self.crop_size)
        M = aug.matrix @ M
        S = self.crop_size
        crop = warp_to_crop(image, M, S, order=1, mode=self.settings.border)
        lm_crop = transform_points(M, lm)
        if aug.flip:
            lm_crop = mirror_landmarks(lm_crop)
        out = {
            "image": torch.from_numpy(np.ascontiguousarray(np.clip(crop, 0, 1).transpose(2, 0, 1))),
            "landmarks": torch.from_numpy(lm_crop.astype(np.float32)),
            "transform": torch.from_numpy(M.astype(np.float32)),
            "flipped": aug.flip,
            "index": i,
            "name": name,
        }
        for key, d in self.mask_dirs.items():
            mpath = d / mask_name(name)
            m = read_mask(mpath)
            if m.shape != image.shape[:2]:
                raise InputFileError(mpath, f"mask is {m.shape[1]}x{m.shape[0]} but its image is {image.shape[1]}x{image.shape[0]}")
            mc = warp_to_crop(m, M, S, order=1, mode="constant", cval=0.0)
            out[key] = torch.from_numpy((mc >= 0.5).astype(np.float32)[None])
        return out
