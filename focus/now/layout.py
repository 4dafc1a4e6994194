"""The NoW dataset layout and the prediction (submission) layout.

Dataset folder (the validation download, unchanged)::

    imagepathsvalidation.txt                  <subject>/<challenge>/<IMG>.jpg per line
    scans/<subject>/*.obj                     one neutral scan per subject, mm
    scans_lmks_onlypp/<subject>/*.pp          its 7 landmarks (MeshLab PickedPoints)
    NoW_Dataset/final_release_version/iphone_pictures/<subject>/<challenge>/<IMG>.jpg
    NoW_Dataset/final_release_version/detected_face/<subject>/<challenge>/<IMG>.npy

Predictions folder::

    <subject>/<challenge>/<IMG>.obj   (or .ply)   the mesh, no vertex colours
    <subject>/<challenge>/<IMG>.npy   (or .txt)   its 7 landmarks, (7, 3), same frame and unit

Both ``.obj`` and ``.ply`` (or both ``.npy`` and ``.txt``) for one image is refused as
ambiguous (the official scorer silently prefers one). :func:`write_prediction` writes this layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from focus.errors import InputFileError
from focus.geometry.mesh_io import write_obj
from focus.now.landmark_io import write_landmarks

#: The four NoW challenges, in the order reports list them.
CHALLENGES: tuple[str, ...] = (
    "multiview_neutral",
    "multiview_expressions",
    "multiview_occlusions",
    "selfie",
)

#: Image lists of the splits (inside the dataset folder).
IMAGE_LISTS: dict[str, str] = {"val": "imagepathsvalidation.txt", "test": "imagepathstest.txt"}

SCANS_DIR = "scans"
SCAN_LANDMARKS_DIR = "scans_lmks_onlypp"
IMAGES_DIR = Path("NoW_Dataset") / "final_release_version" / "iphone_pictures"
FACE_BOXES_DIR = Path("NoW_Dataset") / "final_release_version" / "detected_face"


@dataclass(frozen=True)
class NowImage:
    """One entry of a NoW image list.

    Attributes:
        subject, challenge: the folders of the entry.
        filename: the image file name, e.g. ``IMG_0051.jpg``.
        line_no: 1-based line of the image list (for messages).
    """

    subject: str
    challenge: str
    filename: str
    line_no: int = 0

    @property
    def stem(self) -> str:
        return os.path.splitext(self.filename)[0]

    @property
    def key(self) -> str:
        """``<subject>/<challenge>/<IMG>`` (no extension): names the image in outputs."""
        return f"{self.subject}/{self.challenge}/{self.stem}"

    @property
    def relpath(self) -> str:
        return f"{self.subject}/{self.challenge}/{self.filename}"

    @staticmethod
    def parse(entry: str, line_no: int = 0, source: str | Path = "image list") -> NowImage:
        """Parse ``.../<subject>/<challenge>/<IMG>.jpg`` (the last three parts are used)."""
        parts = [p for p in entry.strip().replace("\\", "/").split("/") if p]
        if len(parts) < 3:
            raise InputFileError(source, f"line {line_no}: '{entry.strip()}' is not '<subject>/<challenge>/<image>'")
        subject, challenge, filename = parts[-3:]
        if challenge not in CHALLENGES:
            raise InputFileError(
                source,
                f"line {line_no}: unknown challenge '{challenge}' in '{entry.strip()}'",
                f"NoW challenges are {', '.join(CHALLENGES)}",
            )
        return NowImage(subject, challenge, filename, line_no)


def read_image_list(path: str | Path) -> list[NowImage]:
    """The entries of a NoW image list (blank lines skipped; duplicates are an error)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "image list not found", "pass the NoW dataset folder or --image-list")
    images: list[NowImage] = []
    seen: dict[str, int] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        img = NowImage.parse(line, i, path)
        if img.key in seen:
            raise InputFileError(path, f"line {i}: '{line.strip()}' repeats line {seen[img.key]}")
        seen[img.key] = i
        images.append(img)
    if not images:
        raise InputFileError(path, "image list is empty")
    return images


@dataclass(frozen=True)
class NowDataset:
    """A NoW dataset folder (see the module docstring)."""

    root: Path
    image_list: Path

    @staticmethod
    def open(root: str | Path, image_list: str | Path | None = None, split: str = "val") -> NowDataset:
        root = Path(root)
        if not root.is_dir():
            raise InputFileError(root, "NoW dataset folder not found")
        lst = Path(image_list) if image_list is not None else root / IMAGE_LISTS[split]
        if not lst.is_file():
            raise InputFileError(lst, "image list not found", f"the NoW download has {IMAGE_LISTS[split]} at the top")
        for sub in (SCANS_DIR, SCAN_LANDMARKS_DIR):
            if not (root / sub).is_dir():
                raise InputFileError(root / sub, "folder not found", "is this the NoW dataset folder?")
        return NowDataset(root, lst)

    def images(self, challenge: str | None = None) -> list[NowImage]:
        """The listed images, optionally of one challenge only."""
        if challenge is not None and challenge not in CHALLENGES:
            raise InputFileError(
                self.image_list, f"unknown challenge '{challenge}'", f"use one of {', '.join(CHALLENGES)}"
            )
        imgs = read_image_list(self.image_list)
        return [im for im in imgs if challenge is None or im.challenge == challenge]

    def scan_path(self, subject: str) -> Path:
        return _single_file(self.root / SCANS_DIR / subject, "*.obj", "scan")

    def scan_landmarks_path(self, subject: str) -> Path:
        return _single_file(self.root / SCAN_LANDMARKS_DIR / subject, "*.pp", "scan landmark (.pp)")

    def image_path(self, image: NowImage) -> Path:
        return self.root / IMAGES_DIR / image.subject / image.challenge / image.filename

    def check(self, images: list[NowImage]) -> None:
        """Fail with one message naming every missing scan, landmark file or listed image.

        Listed images are checked when the dataset has its ``iphone_pictures`` folder (the scorer
        itself does not read images).
        """
        problems: list[str] = []
        for subject in sorted({im.subject for im in images}):
            for getter in (self.scan_path, self.scan_landmarks_path):
                try:
                    getter(subject)
                except InputFileError as exc:
                    problems.append(str(exc))
        if (self.root / IMAGES_DIR).is_dir():
            for im in images:
                p = self.image_path(im)
                if not p.is_file():
                    problems.append(f"{p}: image listed on line {im.line_no} of {self.image_list.name} does not exist")
        if problems:
            shown = problems[:20]
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise InputFileError(
                self.image_list,
                f"{len(problems)} file(s) named by the image list are missing:\n  " + "\n  ".join(shown) + more,
            )


def _single_file(folder: Path, pattern: str, what: str) -> Path:
    if not folder.is_dir():
        raise InputFileError(folder, f"{what} folder not found")
    found = sorted(folder.glob(pattern))
    if not found:
        raise InputFileError(folder, f"no {what} file ({pattern}) in the folder")
    return found[0]


@dataclass(frozen=True)
class PredictionFiles:
    """The files of one prediction (``None`` where missing)."""

    mesh: Path | None
    landmarks: Path | None

    @property
    def complete(self) -> bool:
        return self.mesh is not None and self.landmarks is not None


def find_prediction(predictions: str | Path, image: NowImage) -> PredictionFiles:
    """The mesh and landmark files of ``image`` in a predictions folder.

    Raises:
        InputFileError: the image has two mesh files (``.obj`` and ``.ply``) or two landmark files
            (``.npy`` and ``.txt``); the message names both.
    """
    folder = Path(predictions) / image.subject / image.challenge
    mesh = _one_of(folder, image.stem, (".obj", ".ply"), "mesh")
    lmk = _one_of(folder, image.stem, (".npy", ".txt"), "landmark")
    return PredictionFiles(mesh, lmk)


def _one_of(folder: Path, stem: str, suffixes: tuple[str, ...], what: str) -> Path | None:
    found = [folder / f"{stem}{s}" for s in suffixes if (folder / f"{stem}{s}").is_file()]
    if len(found) > 1:
        raise InputFileError(
            found[0],
            f"{len(found)} {what} files for one image: {' and '.join(str(p) for p in found)}",
            "keep exactly one; which to score is ambiguous",
        )
    return found[0] if found else None


def prediction_paths(
    predictions: str | Path, image: NowImage | str, mesh_format: str = "obj", landmark_format: str = "npy"
) -> tuple[Path, Path]:
    """Where the mesh and landmarks of ``image`` go in a predictions folder."""
    img = image if isinstance(image, NowImage) else NowImage.parse(image)
    if mesh_format not in ("obj",):
        raise ValueError("predictions are written as 'obj' (colourless)")
    if landmark_format not in ("npy", "txt"):
        raise ValueError("landmark_format must be 'npy' or 'txt'")
    folder = Path(predictions) / img.subject / img.challenge
    return folder / f"{img.stem}.{mesh_format}", folder / f"{img.stem}.{landmark_format}"


def write_prediction(
    predictions: str | Path,
    image: NowImage | str,
    vertices: np.ndarray,
    faces: np.ndarray,
    landmarks: np.ndarray,
    landmark_format: str = "npy",
) -> tuple[Path, Path]:
    """Write one prediction in the NoW submission layout.

    Args:
        predictions: the predictions folder.
        image: the image (a :class:`NowImage` or its image-list entry ``subject/challenge/IMG.jpg``).
        vertices: ``(V, 3)`` neutral-expression mesh vertices (any unit for the non-metrical
            protocol; declare the unit for the metrical one).
        faces: ``(F, 3)`` triangles, 0-based.
        landmarks: ``(7, 3)`` the NoW landmarks in the same frame (right eye outer, right eye
            inner, left eye inner, left eye outer, nose bottom, right mouth corner, left mouth
            corner).
        landmark_format: ``"npy"`` or ``"txt"``.

    Returns:
        The mesh and landmark paths written.
    """
    mesh_path, lmk_path = prediction_paths(predictions, image, "obj", landmark_format)
    write_obj(mesh_path, vertices, faces)
    write_landmarks(lmk_path, landmarks)
    return mesh_path, lmk_path
