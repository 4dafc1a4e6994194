"""5-point similarity alignment onto the ArcFace template (docs/method.md, section 2).

Frames: landmarks and template points are continuous **image-frame** pixel coordinates
``(u, v)`` of :mod:`focus.render.camera` (``(0, 0)`` the top-left corner of the top-left pixel,
pixel ``(i, j)`` centred at ``(j + 0.5, i + 0.5)``).

The ArcFace template (38.29, 51.70) (73.53, 51.50) (56.03, 71.74) (41.55, 92.37) (70.73, 92.20)
is given for 112 x 112 crops in OpenCV's convention (pixel centres at integers, as used with
``cv2.warpAffine``); in the project's frame it is ``template + 0.5``, and for a crop of side
``S`` it is ``(template + 0.5) * S / 112`` (see :func:`arcface_template`). This reproduces the
crops insightface's own alignment makes, exactly, at 112 px.

The transform is estimated without gradient (least squares over rotations, uniform scales and
translations: :func:`focus.geometry.similarity.umeyama`); the warp is differentiable
with respect to the image (bilinear ``grid_sample``, zero padding, ``align_corners=False`` whose
normalised coordinates ``-1 / +1`` are the outer edges of the border pixels, i.e. image-frame
``0`` and ``W``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from focus.geometry.similarity import affine_matrix, five_points, umeyama


def detector_five_points(landmarks68: Tensor) -> Tensor:
    """The five points of ``(..., 68, 2)`` landmarks as a face detector marks them (eye centres =
    mean of the six eye points: :func:`focus.geometry.similarity.five_points` with ``eyes="ring"``),
    the convention of the ArcFace template and of MTCNN's points."""
    return five_points(landmarks68, eyes="ring")


#: ArcFace 5-point template for 112 x 112 crops (OpenCV pixel convention): left eye, right eye
#: (as seen in the image), nose tip, left mouth corner, right mouth corner.
ARCFACE_TEMPLATE_112: tuple[tuple[float, float], ...] = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)
ARCFACE_SIZE = 112


def arcface_template(size: int = ARCFACE_SIZE, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The 5 template points ``(5, 2)`` for a ``size`` x ``size`` crop, project image frame (px)."""
    t = torch.tensor(ARCFACE_TEMPLATE_112, dtype=torch.float64)
    return ((t + 0.5) * (size / ARCFACE_SIZE)).to(dtype=dtype, device=device)


@torch.no_grad()
def estimate_similarity(src: Tensor, dst: Tensor) -> Tensor:
    """Least-squares similarity ``x -> s R x + t`` (no reflection) mapping ``src`` onto ``dst``.

    Args:
        src: ``(B, N, 2)`` points, N >= 2, not all equal.
        dst: ``(B, N, 2)`` or ``(N, 2)`` target points.

    Returns ``(B, 2, 3)`` matrices ``[s R | t]`` (dtype of ``src``), computed in float64 and
    without gradient: :func:`focus.geometry.similarity.umeyama`.
    """
    if dst.ndim == 2:
        dst = dst.expand(src.shape[0], -1, -1)
    if src.ndim != 3 or src.shape[-1] != 2 or dst.shape != src.shape:
        raise ValueError(f"need src (B, N, 2) and dst of the same shape, got {tuple(src.shape)}, {tuple(dst.shape)}")
    s, rot, t = umeyama(src, dst)
    return affine_matrix(s, rot, t).to(src.dtype)


def _invert_affine(m: Tensor) -> Tensor:
    """``(B, 2, 3)`` -> the inverse affine map ``(B, 2, 3)``."""
    lin_inv = torch.linalg.inv(m[:, :, :2])
    return torch.cat([lin_inv, -(lin_inv @ m[:, :, 2:])], dim=-1)


def warp_affine(image: Tensor, matrix: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Resample ``image`` into a crop: crop pixel ``q`` takes the image value at ``matrix^-1 q``.

    Args:
        image: ``(B, C, H, W)``, any channels.
        matrix: ``(B, 2, 3)`` affine map from image-frame pixels to crop-frame pixels (both with
            pixel centres at +0.5), e.g. from :func:`estimate_similarity`; treated as constant.
        size: crop side ``S`` or ``(H_out, W_out)``.

    Returns ``(B, C, H_out, W_out)``, bilinear, zero outside the image, differentiable with
    respect to ``image``.
    """
    h_out, w_out = (size, size) if isinstance(size, int) else size
    h_in, w_in = image.shape[-2:]
    m = matrix.detach().double()
    inv = _invert_affine(m)  # crop px -> image px
    # normalised (align_corners=False) <-> pixel frame: n = 2 p / L - 1, p = (n + 1) L / 2
    to_pix = torch.tensor(
        [[w_out / 2, 0, w_out / 2], [0, h_out / 2, h_out / 2], [0, 0, 1]], dtype=m.dtype, device=m.device
    )
    to_norm = torch.tensor([[2 / w_in, 0, -1], [0, 2 / h_in, -1]], dtype=m.dtype, device=m.device)
    inv3 = torch.cat([inv, torch.tensor([[[0, 0, 1]]], dtype=m.dtype, device=m.device).expand(len(inv), 1, 3)], dim=1)
    theta = to_norm @ inv3 @ to_pix  # (B, 2, 3): crop normalised -> image normalised
    grid = F.affine_grid(theta.to(image.dtype), [image.shape[0], image.shape[1], h_out, w_out], align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def align_faces(image: Tensor, landmarks68: Tensor, size: int = ARCFACE_SIZE) -> Tensor:
    """ArcFace-style crops: ``(B, 3, H, W)`` RGB in [0, 1] + ``(B, 68, 2)`` px -> ``(B, 3, S, S)`` in [-1, 1].

    The similarity mapping the 5 points of ``landmarks68`` onto :func:`arcface_template` ``(size)``
    is estimated without gradient; the crop is differentiable with respect to ``image``. Pixels
    outside the image are black (-1 after the mapping ``2 x - 1``).
    """
    if image.ndim != 4 or landmarks68.shape[0] != image.shape[0]:
        raise ValueError(
            f"need image (B, C, H, W) and landmarks (B, 68, 2), got {tuple(image.shape)}, {tuple(landmarks68.shape)}"
        )
    src = detector_five_points(landmarks68.detach())
    matrix = estimate_similarity(src, arcface_template(size, dtype=src.dtype, device=src.device))
    return warp_affine(image, matrix, size) * 2.0 - 1.0
