"""``focus prepare``: a folder of photos (CelebA-HQ or your own) -> a training folder.

The result has the layout :class:`focus.data.FaceImageFolder` reads (see :mod:`focus.data.dataset`)::

    OUT/images/<name>.png        one loosely aligned crop per usable photo
    OUT/landmarks.csv            name,x1,y1,...,x68,y68 (68 iBUG points in the crop's pixels)
    OUT/rejected.csv             name,reason for every photo that was not used
    OUT/prepare_report.json      counts, reasons, settings, the landmark detector and its licence
    OUT/preview.png              the first crops with their landmarks

Landmarks: MediaPipe's face mesh mapped to the 68 iBUG points
(:class:`focus.apps.detect.MediaPipe68Detector`; Apache-2.0, weights in the wheel), searched inside
MTCNN's boxes when facenet-pytorch is installed. One face per photo: the largest (the others are
counted in the report).

Crops: the face is framed the way FFHQ / CelebA-HQ crops are (rotation from the eye line, centre
between the eyes and the mouth, side ``max(4 x eye distance, 3.6 x eye-to-mouth distance)``) and
then zoomed out by ``zoom_out``, so the training loader's own 5-point alignment and augmentation
(shift, scale 0.9-1.1, rotation +-10 degrees) stay inside the stored pixels. The training crop
covers about 60 % of the stored side with the default ``zoom_out = 1.25``: ``size = 256`` gives
about 150 px of face crop (enough for the CPU default's 64 px; use ``--size 384`` for the paper's
224 px).

Rejected (listed in ``rejected.csv`` with the reason): unreadable, truncated or oversized files,
photos without a face, faces whose eye distance is below ``min_eye_distance`` pixels, faces cut
off by the photo's border (more than ``max_outside`` of the 68 landmarks outside it).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from focus.apps.detect import Face, FaceDetector
from focus.apps.photos import DEFAULT_MAX_MEGAPIXELS, InputImage, find_images, output_stems, read_photo, source_labels
from focus.config import check_fields, nonnegative, param, positive, probability
from focus.data.alignment import transform_points, warp_to_crop
from focus.data.landmarks_csv import write_landmarks_csv
from focus.errors import FocusError, InputFileError
from focus.io_utils import atomic_path, write_json_atomic, write_text_atomic

log = logging.getLogger("focus.apps")

IMAGE_FORMATS = ("png", "jpg")


@dataclass(frozen=True)
class PrepareSettings:
    """Options of ``focus prepare``.

    Attributes:
        size: side of the stored crops, px.
        zoom_out: field of view relative to the FFHQ framing (> 1 keeps more context).
        image_format: ``"png"`` (lossless, default) or ``"jpg"`` (``jpeg_quality``).
        min_eye_distance: faces with a smaller eye distance (source pixels) are rejected.
        max_outside: largest share of the 68 landmarks allowed outside the photo.
        max_megapixels: larger photos are rejected.
        recursive: also read sub-folders (their structure is kept under ``images/``).
        preview_count: crops shown in ``preview.png`` (0: none).
        progress: progress bar.
    """

    size: int = param(256, ge=32)
    zoom_out: float = positive(1.25)
    image_format: str = param("png", choices=IMAGE_FORMATS)
    jpeg_quality: int = param(95, ge=1, le=100)
    min_eye_distance: float = nonnegative(20.0)
    max_outside: float = probability(0.1)
    max_megapixels: float = positive(DEFAULT_MAX_MEGAPIXELS)
    recursive: bool = False
    preview_count: int = param(24, ge=0)
    progress: bool = True

    def __post_init__(self) -> None:
        check_fields(self)


def framing_matrix(landmarks68: np.ndarray, size: int, zoom_out: float = 1.25) -> np.ndarray:
    """``(3, 3)`` photo -> stored-crop similarity of the FFHQ-style framing (module docstring).

    Image frame on both sides (pixels, pixel centres at +0.5). The crop's x axis follows the
    direction ``eye_to_eye - rot90(eye_to_mouth)``, so a tilted head comes out upright.
    """
    lm = np.asarray(landmarks68, dtype=np.float64)
    eye_r, eye_l = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    mouth = (lm[48] + lm[54]) / 2
    eye_avg = (eye_r + eye_l) / 2
    e2e, e2m = eye_l - eye_r, mouth - eye_avg
    x = e2e - np.array([-e2m[1], e2m[0]])  # rot90 in the image frame (y down)
    nx = np.linalg.norm(x)
    if not np.isfinite(nx) or nx < 1e-6:
        raise ValueError("degenerate landmarks: cannot frame the face")
    half = max(2.0 * np.linalg.norm(e2e), 1.8 * np.linalg.norm(e2m)) * zoom_out  # half side, photo px
    centre = eye_avg + 0.1 * e2m
    ux = x / nx
    k = size / (2.0 * half)  # crop px per photo px
    # crop = k R (p - centre) + size / 2, with R rotating ux onto +x
    R = np.array([[ux[0], ux[1]], [-ux[1], ux[0]]])
    A = k * R
    t = np.array([size / 2.0, size / 2.0]) - A @ centre
    return np.array([[A[0, 0], A[0, 1], t[0]], [A[1, 0], A[1, 1], t[1]], [0.0, 0.0, 1.0]])


@dataclass
class PrepareReport:
    """What :func:`prepare` did (also ``prepare_report.json``)."""

    out_dir: Path
    prepared: list[str]
    rejected: list[tuple[str, str]]
    ignored: list[tuple[str, str]]
    notes: list[tuple[str, str]]
    detector: dict
    settings: dict
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if self.prepared else 1

    def to_dict(self) -> dict:
        reasons = Counter(_reason_kind(r) for _, r in self.rejected)
        return {
            "out_dir": str(self.out_dir),
            "prepared": len(self.prepared),
            "rejected": len(self.rejected),
            "ignored": len(self.ignored),
            "rejected_by_reason": dict(reasons),
            "detector": self.detector,
            "settings": self.settings,
            "seconds": self.seconds,
            "notes": [{"name": n, "note": t} for n, t in self.notes],
            "ignored_files": [{"name": n, "reason": r} for n, r in self.ignored],
        }


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


def _check_face(face: Face, shape: tuple[int, int], s: PrepareSettings) -> str | None:
    if face.landmarks68 is None:
        return "the detector gave no 68 landmarks"
    if face.eye_distance < s.min_eye_distance:
        return f"face too small (eye distance {face.eye_distance:.1f} px < {s.min_eye_distance:g})"
    h, w = shape
    lm = face.landmarks68
    outside = float(((lm[:, 0] < 0) | (lm[:, 0] > w) | (lm[:, 1] < 0) | (lm[:, 1] > h)).mean())
    if outside > s.max_outside:
        return f"face cut off by the photo's border ({outside:.0%} of the landmarks outside)"
    return None


def prepare(
    photos: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    detector: FaceDetector,
    settings: PrepareSettings = PrepareSettings(),
) -> PrepareReport:
    """Turn the photos (a folder, or several files / folders) into a training folder at ``out_dir``.

    Photos are keyed by their full path: two photos of the same name in different folders give
    two crops, named after the part of their path that tells them apart (``DIR1/a.png``,
    ``DIR2/a.png``, see :func:`focus.apps.photos.output_stems`); ``rejected.csv`` and the report
    name photos the same way.

    Raises:
        FocusError: when not a single photo could be used (the report files are written first).
    """
    t0 = time.perf_counter()
    s = settings
    out_dir = Path(out_dir)
    inputs = [photos] if isinstance(photos, (str, Path)) else list(photos)
    items, skipped = find_images(inputs, s.recursive, exclude=out_dir)
    rejected = [(str(x.path), x.reason) for x in skipped if x.failed]
    ignored = [(str(x.path), x.reason) for x in skipped if not x.failed]
    stems = output_stems(items)
    labels = source_labels(items)
    names: list[str] = []
    lms: list[np.ndarray] = []
    notes: list[tuple[str, str]] = []
    for it in tqdm(items, desc="prepare", unit="photo", disable=not s.progress):
        label = labels[it.key]
        try:
            name, lm, photo_notes = _prepare_photo(it, f"{stems[it.key]}.{s.image_format}", out_dir, detector, s)
        except _Rejected as exc:
            rejected.append((label, str(exc)))
            continue
        names.append(name)
        lms.append(lm)
        notes += [(label, n) for n in photo_notes]
    report = PrepareReport(
        out_dir, names, rejected, ignored, notes, {"name": detector.name, "licence": detector.licence}, asdict(s)
    )
    _write_tables(out_dir, names, lms, rejected)
    if names and s.preview_count > 0:
        from focus.synth.contact_sheet import contact_sheet

        contact_sheet(out_dir, out_dir / "preview.png", f"focus prepare: {len(names)} photos", count=s.preview_count)
    report.seconds = round(time.perf_counter() - t0, 3)
    write_json_atomic(out_dir / "prepare_report.json", report.to_dict())
    for n, r in rejected[:20]:
        log.warning("rejected %s: %s", n, r)
    if not names:
        raise FocusError(
            f"no usable photo among {len(items)} images in {', '.join(map(str, inputs))}; "
            f"see {out_dir / 'rejected.csv'}"
        )
    return report


class _Rejected(Exception):
    """A photo that cannot be used; the message is the reason."""


def _prepare_photo(
    it: InputImage, name: str, out_dir: Path, detector: FaceDetector, s: PrepareSettings
) -> tuple[str, np.ndarray, list[str]]:
    """Detect, check and crop one photo into ``out_dir/images/name``.

    Returns ``(name, (68, 2) landmarks in the crop's pixels, notes)``.

    Raises:
        _Rejected: unreadable photo, no face, or a face that fails :func:`_check_face`.
    """
    try:
        photo = read_photo(it.path, s.max_megapixels)
        faces = detector.detect(photo.pixels)
        if not faces:
            raise _Rejected("no face found")
        face = faces[0]
        problem = _check_face(face, (photo.height, photo.width), s)
        if problem:
            raise _Rejected(problem)
        M = framing_matrix(face.landmarks68, s.size, s.zoom_out)
        crop = np.clip(warp_to_crop(photo.pixels, M, s.size, order=1, mode="reflect"), 0.0, 1.0)
        _save_image(out_dir / "images" / name, crop, s)
    except InputFileError as exc:
        raise _Rejected(exc.problem) from exc
    except ValueError as exc:
        raise _Rejected(str(exc)) from exc
    notes = [f"{len(faces)} faces found; kept the largest"] if len(faces) > 1 else []
    if photo.notes:
        notes.append("; ".join(photo.notes))
    return name, transform_points(M, face.landmarks68), notes


def _write_tables(out_dir: Path, names: list[str], lms: list[np.ndarray], rejected: list[tuple[str, str]]) -> None:
    """``rejected.csv`` and (when a photo was used) ``landmarks.csv``; a stale ``landmarks.csv`` is removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "reason"])
    w.writerows(rejected)
    write_text_atomic(out_dir / "rejected.csv", buf.getvalue())
    if names:
        write_landmarks_csv(out_dir / "landmarks.csv", names, np.stack(lms))
    elif (out_dir / "landmarks.csv").exists():
        (out_dir / "landmarks.csv").unlink()


def _save_image(path: Path, crop: np.ndarray, s: PrepareSettings) -> None:
    arr = np.clip(crop * 255.0 + 0.5, 0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        if s.image_format == "png":
            Image.fromarray(arr).save(tmp, format="PNG")
        else:
            Image.fromarray(arr).save(tmp, format="JPEG", quality=int(s.jpeg_quality))


__all__ = ["IMAGE_FORMATS", "PrepareReport", "PrepareSettings", "framing_matrix", "prepare"]
