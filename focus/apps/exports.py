"""What ``focus reconstruct`` writes for one face: meshes, masks, overlay and coefficients.

Frames and units (see :mod:`focus.render.camera`):

* ``posed.obj``: the reconstructed face as seen, **world frame**, mm (``R v + t``; the camera sits
  at ``(0, 0, distance)`` looking along ``-z``); vertex colours = albedo x SH shading.
* ``neutral.obj``: identity only (expression zero), **model frame**, mm, no pose, minus the misfit
  prior when one is used (docs/method.md 5); vertex colours = albedo (unlit).
* ``now/{posed,neutral}.obj`` + ``.npy``: the same meshes without colours plus their 7 NoW
  landmarks ``(7, 3)`` (:mod:`focus.geometry.mesh_io`, :mod:`focus.now.landmark_io`: the NoW
  challenge's submission format).
* Images: the aligned crop and the render in the crop (``crop.png``, ``render.png``), the outlier
  mask in the crop (``outlier_crop.png``) and pasted back into the photo at its full size
  (``outlier.png``), the visible (inlier) face ``m_r M`` pasted back (``face_mask.png``; with
  ``outlier.png`` it adds up to the rendered face region), and ``overlay.png``: the render blended
  over the photo (outliers tinted red, projected model landmarks in green, the detector's five
  points in yellow).

Image <-> crop: a ``(3, 3)`` matrix ``M`` maps image-frame points of the photo to crop points
(:mod:`focus.data.alignment`); :func:`paste_back` resamples crop content into the photo with the
inverse of ``M`` (:func:`skimage.transform.warp`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.transform import warp

from focus.geometry.mesh_io import write_obj
from focus.io_utils import atomic_path, write_text_atomic
from focus.now.landmark_io import write_landmarks

#: skimage's frame puts pixel centres at integers, the project's at +0.5.
_SHIFT = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
_UNSHIFT = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])

OUTLIER_TINT = np.array([1.0, 0.15, 0.1], dtype=np.float32)


# ---------------------------------------------------------------------------- meshes
def format_colored_obj(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, header: str = "") -> str:
    """OBJ text with per-vertex colours: ``v x y z r g b`` (colours in [0, 1]) then ``f a b c`` (1-based).

    Most viewers (MeshLab, Blender's importer, trimesh) read the colours; the NoW scorer does not,
    which is why :func:`write_face_meshes` also writes colourless variants.
    """
    v = np.asarray(vertices, dtype=np.float64)
    c = np.clip(np.asarray(colors, dtype=np.float64), 0.0, 1.0)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or c.shape != v.shape or not np.isfinite(v).all() or not np.isfinite(c).all():
        raise ValueError(f"need finite (V, 3) vertices and colours, got {v.shape} and {c.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0 or f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"need (F, 3) triangles indexing {len(v)} vertices")
    lines = [f"# {ln}" for ln in header.splitlines()] if header else []
    vc = np.concatenate([v, c], axis=1)
    lines += [f"v {x:.6f} {y:.6f} {z:.6f} {r:.5f} {g:.5f} {b:.5f}" for x, y, z, r, g, b in vc.tolist()]
    lines += [f"f {a} {b} {cc}" for a, b, cc in (f + 1).tolist()]
    return "\n".join(lines) + "\n"


def write_colored_obj(
    path: str | Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, header: str = ""
) -> None:
    """Write :func:`format_colored_obj` atomically."""
    write_text_atomic(path, format_colored_obj(vertices, faces, colors, header))


def write_face_meshes(
    folder: str | Path,
    triangles: np.ndarray,
    now_landmarks7: np.ndarray,
    posed: np.ndarray,
    posed_colors: np.ndarray,
    neutral: np.ndarray,
    neutral_colors: np.ndarray,
    header: str = "",
) -> dict[str, str]:
    """Write ``posed.obj``, ``neutral.obj`` (coloured) and ``now/{posed,neutral}.{obj,npy}``.

    Args:
        triangles: ``(F, 3)`` 0-based; ``now_landmarks7``: ``(7,)`` vertex ids.
        posed, neutral: ``(V, 3)`` mm (world frame, model frame); colours ``(V, 3)`` in [0, 1].

    Returns the written files relative to ``folder`` by role.
    """
    folder = Path(folder)
    ids = np.asarray(now_landmarks7, dtype=np.int64)
    files = {}
    for role, verts, cols, frame in (
        ("posed", posed, posed_colors, "world frame"),
        ("neutral", neutral, neutral_colors, "model frame, expression zero"),
    ):
        write_colored_obj(
            folder / f"{role}.obj",
            verts,
            triangles,
            cols,
            f"{header}\n{role} mesh, {frame}, millimetres; vertex colours r g b in [0, 1]".strip(),
        )
        write_obj(folder / "now" / f"{role}.obj", verts, triangles)
        write_landmarks(folder / "now" / f"{role}.npy", np.asarray(verts, np.float64)[ids])
        files[role] = f"{role}.obj"
        files[f"{role}_now"] = f"now/{role}.obj"
        files[f"{role}_now_landmarks"] = f"now/{role}.npy"
    return files


# ---------------------------------------------------------------------------- images
def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write ``(H, W)`` or ``(H, W, 3)`` float in [0, 1] (or uint8) as an 8-bit PNG, atomically."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr.astype(np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def transform_points(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a ``(3, 3)`` affine matrix to ``(..., 2)`` points."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ M[:2, :2].T + M[:2, 2]


def paste_back(crop: np.ndarray, M: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    """Resample crop content into an image of ``shape = (H, W)``: the inverse of cropping with ``M``.

    Args:
        crop: ``(S, S)`` or ``(S, S, C)`` float, in the crop frame that ``M`` maps onto.
        M: ``(3, 3)`` image -> crop (image-frame pixels on both sides).
        shape: ``(H, W)`` of the image.
        order: interpolation order of :func:`skimage.transform.warp` (1 = bilinear).

    Returns ``(H, W)`` or ``(H, W, C)`` float32: image pixel ``p`` takes the crop's value at
    ``M p`` (zero where that falls outside the crop). Only the crop's bounding box in the image is
    resampled, so pasting a small crop into a huge photo is cheap.
    """
    crop = np.asarray(crop, dtype=np.float32)
    S_h, S_w = crop.shape[:2]
    H, W = int(shape[0]), int(shape[1])
    out = np.zeros((H, W) + crop.shape[2:], dtype=np.float32)
    inv = np.linalg.inv(np.asarray(M, dtype=np.float64))
    corners = transform_points(inv, np.array([[0, 0], [S_w, 0], [0, S_h], [S_w, S_h]], dtype=np.float64))
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if x1 <= x0 or y1 <= y0:
        return out
    local_to_image = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    inverse_map = _UNSHIFT @ np.asarray(M, dtype=np.float64) @ local_to_image @ _SHIFT
    part = warp(
        crop,
        inverse_map,
        output_shape=(y1 - y0, x1 - x0) + crop.shape[2:],
        order=order,
        mode="constant",
        cval=0.0,
        preserve_range=True,
    )
    out[y0:y1, x0:x1] = part.astype(np.float32)
    return out


def downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """``(image no larger than max_side, sx, sy)`` (area-filtered; ``sx = W' / W``)."""
    h, w = image.shape[:2]
    k = max_side / max(h, w)
    if k >= 1.0:
        return image, 1.0, 1.0
    ws, hs = max(1, round(w * k)), max(1, round(h * k))
    u8 = np.clip(np.asarray(image, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    small = np.asarray(Image.fromarray(u8).resize((ws, hs), Image.BILINEAR), dtype=np.float32) / 255.0
    return small, ws / w, hs / h


def compose_overlay(
    photo: np.ndarray,
    M_view: np.ndarray,
    render: np.ndarray,
    coverage: np.ndarray,
    outlier: np.ndarray,
    model_landmarks: np.ndarray | None = None,
    detector_points: np.ndarray | None = None,
    alpha: float = 0.65,
) -> np.ndarray:
    """The render blended over ``photo`` (``(H, W, 3)`` in [0, 1]); returns ``(H, W, 3)`` uint8.

    Args:
        M_view: ``(3, 3)`` photo pixels -> view-crop pixels (the crop ``render`` is drawn in).
        render, coverage, outlier: ``(V, V, 3)``, ``(V, V)``, ``(V, V)`` in the view crop.
        model_landmarks, detector_points: ``(N, 2)`` photo pixels, drawn as green / yellow dots.
        alpha: opacity of the render over the face.
    """
    stack = np.concatenate([render, coverage[..., None], outlier[..., None]], axis=-1)
    pasted = paste_back(stack, M_view, photo.shape[:2])
    r, cov, outl = pasted[..., :3], pasted[..., 3:4], pasted[..., 4:5]
    out = photo * (1.0 - alpha * cov) + np.clip(r, 0, 1) * alpha * cov
    tint = 0.6 * np.clip(outl, 0, 1)
    out = out * (1.0 - tint) + OUTLIER_TINT * tint
    img = Image.fromarray(np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    rad = max(1.0, max(photo.shape[:2]) / 400.0)
    for pts, color in ((model_landmarks, (40, 255, 60)), (detector_points, (255, 230, 0))):
        if pts is None:
            continue
        for x, y in np.asarray(pts, np.float64):
            d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=color)
    return np.asarray(img)


__all__ = [
    "compose_overlay",
    "downscaled",
    "format_colored_obj",
    "paste_back",
    "save_png",
    "transform_points",
    "write_colored_obj",
    "write_face_meshes",
]
