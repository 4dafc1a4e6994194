"""5-point alignment of a face image to the training crop (Deep3DFaceRecon-style).

The five points: :func:`focus.geometry.similarity.five_points` (Deep3DFaceRecon's choice, from the
iBUG-68 landmarks, 0-based): right eye centre (mean of corners 36 and 39), left eye centre (mean of
42 and 45), nose tip (30), right mouth corner (48), left mouth corner (54). "Right" is the subject's
right (image left when frontal).

The crop template
-----------------
Deep3DFaceRecon aligns so that a face appears in the 224 x 224 crop as its morphable model renders
at the default camera (focal 1015 px, face 1000 mm away): its ``align_img`` rescales by
``102 / s`` where ``s`` is the weak-perspective scale of the detected points against the model's
3D points (model in decimetres, so 102 px per unit ~ 1015 / 10), and centres the crop on the
model origin. This project defines the template the same way for its own model and camera:
:func:`template_from_model` takes the five points of the **mean face, frontal, at the default
camera, at the crop size**. A face drawn from the model at zero pose therefore lands on the
template exactly, and any image (synthetic or a real photograph) aligned to it is framed as the
renderer frames the model (the face fills the crop as at paper scale).

Two estimators (``method``):

* ``"similarity"`` (default): least-squares 2D similarity (rotation, uniform scale, translation;
  :func:`focus.geometry.similarity.umeyama`) from the image's five points to the template's
  2D points. Removes in-plane rotation.
* ``"pos"``: Deep3DFaceRecon's own estimator: an affine camera fitted to the template's **3D**
  points gives scale (mean norm of its two rows) and the image position of the model origin;
  the crop is that scale and translation, no rotation. Less sensitive to yaw (eye distance
  shrinks with yaw, the 3D fit accounts for it).

All transforms are ``(3, 3)`` matrices acting on homogeneous image-frame points (pixels, ``x``
right, ``y`` down, the top-left corner of the top-left pixel at ``(0, 0)``; see
:mod:`focus.render.camera`), mapping **source image -> crop**.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.transform import downscale_local_mean, warp
from scipy.ndimage import gaussian_filter

from focus.geometry.similarity import FIVE_POINT_NAMES, five_points, homogeneous_matrix, umeyama

ALIGN_METHODS = ("similarity", "pos")


@dataclass(frozen=True)
class AlignmentTemplate:
    """Where the five points of a face go in the crop.

    Attributes:
        crop_size: side of the square crop, pixels.
        points2d: ``(5, 2)`` template points in crop pixels (image frame).
        points3d: ``(5, 3)`` the same points on the model's mean face, model frame, mm.
        scale: crop pixels per mm at the face (focal / distance), for ``"pos"``.
    """

    crop_size: int
    points2d: np.ndarray
    points3d: np.ndarray
    scale: float

    def resized(self, crop_size: int) -> "AlignmentTemplate":
        """The same framing at another crop size."""
        k = crop_size / self.crop_size
        return AlignmentTemplate(crop_size, self.points2d * k, self.points3d, self.scale * k)

    def to_dict(self) -> dict:
        return {"crop_size": self.crop_size, "points2d": self.points2d.tolist(), "points3d": self.points3d.tolist(), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "AlignmentTemplate":
        return cls(int(d["crop_size"]), np.asarray(d["points2d"], float), np.asarray(d["points3d"], float), float(d["scale"]))


def template_from_model(model, crop_size: int, distance: float = 1000.0, focal_at_224: float = 1015.0) -> AlignmentTemplate:
    """The template of :mod:`focus.data.alignment`: the mean face's five points, frontal, projected
    with the default camera (:meth:`focus.render.camera.Camera.for_image_size`) at ``crop_size``.

    ``model`` is a :class:`focus.facemodel.FaceModel`.
    """
    from focus.render.camera import Camera

    cam = Camera.for_image_size(crop_size, distance=distance, focal_at_224=focal_at_224)
    lm3 = model.mean_shape.detach().cpu().double().numpy()[model.landmarks68.cpu().numpy()]
    x, y, z = lm3[:, 0], -lm3[:, 1], distance - lm3[:, 2]  # model (= world at zero pose) -> camera frame
    uv = np.stack([cam.focal * x / z + cam.width / 2, cam.focal * y / z + cam.height / 2], axis=-1)
    # the 2D points as an image's landmarks give them (eye centres averaged after projection)
    return AlignmentTemplate(int(crop_size), five_points(uv), five_points(lm3), cam.focal / distance)


def estimate_alignment(lm68: np.ndarray, template: AlignmentTemplate, method: str = "similarity") -> np.ndarray:
    """``(3, 3)`` image -> crop transform from ``(68, 2)`` landmarks (pixels of the source image).

    Raises ``ValueError`` for degenerate points (e.g. all landmarks equal).
    """
    return alignment_from_five_points(five_points(lm68), template, method)


def alignment_from_five_points(src: np.ndarray, template: AlignmentTemplate, method: str = "similarity") -> np.ndarray:
    """``(3, 3)`` image -> crop transform from the five points ``(5, 2)`` (pixels of the source image).

    Raises ``ValueError`` for degenerate points (e.g. all points equal).
    """
    src = np.asarray(src, dtype=np.float64)
    if method == "similarity":
        matrix = homogeneous_matrix(*umeyama(src, template.points2d))
        if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:2, :2])) < 1e-12:
            raise ValueError("degenerate five points: cannot estimate a similarity transform")
        return matrix
    if method == "pos":
        return _pos_alignment(src, template)
    raise ValueError(f"unknown alignment method {method!r}; known: {ALIGN_METHODS}")


def _pos_alignment(src: np.ndarray, template: AlignmentTemplate) -> np.ndarray:
    """Deep3DFaceRecon's POS: affine camera from the template's 3D points to ``src`` (5, 2)."""
    X = template.points3d
    n = X.shape[0]
    A = np.zeros((2 * n, 8))
    A[0::2, 0:3] = X
    A[0::2, 3] = 1
    A[1::2, 4:7] = X
    A[1::2, 7] = 1
    b = src.reshape(-1)
    k, *_ = np.linalg.lstsq(A, b, rcond=None)
    r1, r2 = k[0:3], k[4:7]
    s = (np.linalg.norm(r1) + np.linalg.norm(r2)) / 2  # source pixels per mm
    if not np.isfinite(s) or s < 1e-9:
        raise ValueError("degenerate five points: cannot estimate the scale")
    t = np.array([k[3], k[7]])  # source-image position of the model origin
    z = template.scale / s
    c = template.crop_size / 2
    return np.array([[z, 0, c - z * t[0]], [0, z, c - z * t[1]], [0, 0, 1.0]])


def transform_points(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a ``(3, 3)`` transform to ``(..., 2)`` points."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ M[:2, :2].T + M[:2, 2]


def warp_to_crop(image: np.ndarray, M: np.ndarray, crop_size: int, order: int = 1, mode: str = "reflect",
                 cval: float = 0.0, antialias: bool = True) -> np.ndarray:
    """Resample ``image`` ``(H, W)`` or ``(H, W, C)`` (float) into the ``crop_size`` square crop.

    ``M`` maps source image-frame points to crop points. When the crop shrinks the face, the
    source is first reduced by an integer block mean and then lightly blurred (anti-aliasing),
    so large photographs do not alias. ``mode`` as in :func:`skimage.transform.warp`.
    """
    img = np.asarray(image, dtype=np.float32)
    M = np.asarray(M, dtype=np.float64)
    zoom = float(np.sqrt(abs(np.linalg.det(M[:2, :2]))))  # crop pixels per source pixel
    if antialias and zoom < 1.0:
        f = int(np.floor(1.0 / zoom))
        if f >= 2:
            factors = (f, f) + ((1,) if img.ndim == 3 else ())
            h, w = (img.shape[0] // f) * f, (img.shape[1] // f) * f
            if h >= f and w >= f:
                img = downscale_local_mean(img[:h, :w], factors).astype(np.float32)
                M = M @ np.diag([f, f, 1.0])  # reduced pixel corner p' = p / f
                zoom *= f
        sigma = max(0.0, (1.0 / zoom - 1.0) / 2.0)
        if sigma > 0.05:
            img = gaussian_filter(img, sigma=(sigma, sigma) + ((0,) if img.ndim == 3 else ()), mode="nearest")
    # skimage's frame puts pixel centres at integers; ours at +0.5.
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
    unshift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]])
    inverse = unshift @ np.linalg.inv(M) @ shift  # crop (skimage frame) -> source (skimage frame)
    out_shape = (crop_size, crop_size) + img.shape[2:]
    return warp(img, inverse, output_shape=out_shape, order=order, mode=mode, cval=cval, preserve_range=True).astype(np.float32)
