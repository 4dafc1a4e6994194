"""One least-squares similarity fit (Umeyama, 1991) and the five alignment points of 68 landmarks.

:func:`umeyama` is the package's only similarity estimator. It fits ``dst ~ s R src + t`` (``R``
a rotation, or an orthogonal matrix when ``reflection=True``; ``s`` a uniform scale, or 1 when
``scale=False``) by weighted least squares, for 2D or 3D points, batched, and is written once for
both numpy arrays and torch tensors (the array type of the input is the array type of the
result; computation in float64). The NoW scorer (numpy, reflection allowed as the official
MATLAB-style ``procrustes``), the ArcFace crops (torch, 2D), the training shape metric (torch,
weighted 3D), the image-to-crop alignment (numpy, 2D) and the albedo/landmark transfer between
face models (numpy, 3D) all call it.

Why not :class:`skimage.transform.SimilarityTransform`: it computes the same Umeyama solution
(the tests check that the two agree), but has no weights, no reflection option, no batch and no
torch tensors, and the torch callers run on the GPU inside training. Keeping one implementation
that covers every caller is the point of this module.

Solution (``x`` centred src, ``y`` centred dst, ``w`` normalised weights):
``Sigma = sum_i w_i y_i x_i^T``, ``U D V^T = svd(Sigma)``, ``S = diag(1, ..., 1, det(U V^T))``
(``S = I`` with ``reflection=True``), ``R = U S V^T``, ``s = tr(D S) / sum_i w_i |x_i|^2``,
``t = mean_w(dst) - s R mean_w(src)``. Gradients (torch) flow through the SVD; they are not
defined for degenerate configurations (repeated singular values), so callers that only need the
transform estimate it without gradient.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

Array = TypeVar("Array")  # numpy.ndarray or torch.Tensor

#: Variance floor: points with no spread give scale 0 (not NaN).
_TINY = 1e-30


def _backend(a: Any) -> Any:
    """The namespace of ``a``: :mod:`torch` for tensors, :mod:`numpy` otherwise."""
    if type(a).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _float64(xp: Any, a: Any, like: Any = None) -> Any:
    if xp is np:
        return np.asarray(a, dtype=np.float64)
    import torch

    device = like.device if like is not None else None
    return torch.as_tensor(a, dtype=torch.float64, device=device)


def umeyama(
    src: Array,
    dst: Array,
    weights: Array | None = None,
    *,
    scale: bool = True,
    reflection: bool = False,
) -> tuple[Array, Array, Array]:
    """Weighted least-squares similarity mapping ``src`` onto ``dst`` (module docstring).

    Args:
        src: ``(..., N, D)`` points to move (any frame and unit; D = 2 or 3).
        dst: ``(..., N, D)`` target points (broadcast against ``src``, e.g. one ``(N, D)`` template
            for a batch).
        weights: ``(N,)`` or ``(..., N)`` non-negative weights (``None``: all 1); only their ratios
            matter.
        scale: fit the scale (otherwise ``s = 1``).
        reflection: allow an improper ``R`` (``det R = -1``) when it fits better (MATLAB's
            ``procrustes(..., 'reflection', 'best')``); otherwise ``R`` is a rotation.

    Returns:
        ``(s (...,), R (..., D, D), t (..., D))`` float64, numpy or torch like ``src``, with
        ``dst ~ s * src @ R^T + t``. Points with no spread give ``s = 0`` (callers that need a
        valid transform check for it).
    """
    xp = _backend(src)
    x = _float64(xp, src)
    y = _float64(xp, dst, like=x)
    if x.shape[-1] != y.shape[-1] or x.shape[-2] != y.shape[-2]:
        raise ValueError(f"src and dst must have the same (N, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    n, d = x.shape[-2], x.shape[-1]
    w = xp.ones(n, dtype=x.dtype) if xp is np else xp.ones(n, dtype=x.dtype, device=x.device)
    if weights is not None:
        w = _float64(xp, weights, like=x)
    w = w / w.sum(axis=-1, keepdims=True)
    w = w[..., :, None]  # (..., N, 1)
    mu_x = (w * x).sum(axis=-2, keepdims=True)
    mu_y = (w * y).sum(axis=-2, keepdims=True)
    xc, yc = x - mu_x, y - mu_y
    cov = (w * yc).swapaxes(-1, -2) @ xc  # (..., D, D) = sum w y x^T
    u, sv, vt = xp.linalg.svd(cov)
    if reflection:
        s_diag = xp.ones_like(sv)
    else:
        sign = xp.sign(xp.linalg.det(u @ vt))
        sign = xp.where(sign == 0, xp.ones_like(sign), sign)
        last = xp.arange(d) == d - 1
        if xp is not np:
            last = last.to(sv.device)
        s_diag = xp.where(last, sign[..., None], xp.ones_like(sv))
    rotation = (u * s_diag[..., None, :]) @ vt
    if scale:
        var_x = (w * xc * xc).sum(axis=(-2, -1))
        var_x = xp.where(var_x > _TINY, var_x, xp.full_like(var_x, _TINY))
        s = (sv * s_diag).sum(axis=-1) / var_x
    else:
        s = xp.ones_like(sv[..., 0])
    translation = mu_y[..., 0, :] - s[..., None] * (rotation @ mu_x[..., 0, :, None])[..., 0]
    return s, rotation, translation


def affine_matrix(s: Array, rotation: Array, translation: Array) -> Array:
    """``[s R | t]`` ``(..., D, D + 1)`` from :func:`umeyama`'s output (same array type)."""
    xp = _backend(rotation)
    lin = s[..., None, None] * rotation
    cat = np.concatenate if xp is np else xp.cat
    return cat([lin, translation[..., :, None]], -1)


def homogeneous_matrix(s: Array, rotation: Array, translation: Array) -> Array:
    """``[[s R, t], [0, 1]]`` ``(..., D + 1, D + 1)`` from :func:`umeyama`'s output (same array type)."""
    xp = _backend(rotation)
    aff = affine_matrix(s, rotation, translation)
    d = rotation.shape[-1]
    row = xp.zeros(aff.shape[:-2] + (1, d + 1), dtype=aff.dtype)
    if xp is not np:
        row = row.to(aff.device)
    row[..., 0, d] = 1.0
    cat = np.concatenate if xp is np else xp.cat
    return cat([aff, row], -2)


def apply_similarity(s: Array, rotation: Array, translation: Array, points: Array) -> Array:
    """``s * points @ R^T + t`` for ``points (..., P, D)`` (float64, array type of ``points``)."""
    xp = _backend(points)
    p = _float64(xp, points)
    return s[..., None, None] * (p @ rotation.swapaxes(-1, -2)) + translation[..., None, :]


# ------------------------------------------------------------------------------ five points
#: Names of the five alignment points, in order. "Right"/"left" are the subject's (image left /
#: image right in a frontal photo).
FIVE_POINT_NAMES: tuple[str, ...] = (
    "right eye centre",
    "left eye centre",
    "nose tip",
    "right mouth corner",
    "left mouth corner",
)


#: How an eye centre is taken from the 68 landmarks: ``"corners"`` the mean of the eye's two
#: corners (36, 39 and 42, 45; Deep3DFaceRecon's ``extract_5p``, the crop template of
#: :mod:`focus.data.alignment`), ``"ring"`` the mean of all six eye points (36-41 and 42-47: the
#: eye centre as face detectors such as MTCNN and RetinaFace mark it, and as the ArcFace template
#: expects it).
EYE_CENTRES: tuple[str, ...] = ("corners", "ring")


def five_points(landmarks68: Array, eyes: str = "corners") -> Array:
    """iBUG-68 landmarks ``(..., 68, D)`` -> the five alignment points ``(..., 5, D)``.

    Right eye centre, left eye centre (taken as ``eyes`` says, :data:`EYE_CENTRES`), nose tip 30,
    mouth corners 48 and 54 (0-based ids). The two conventions differ by a fraction of a pixel
    to a pixel: a set of five points must be compared with points of the same convention. Any
    frame (pixels, mm). numpy input gives float64 numpy; a torch tensor gives a tensor of its own
    dtype and device (differentiable).
    """
    if eyes not in EYE_CENTRES:
        raise ValueError(f"eyes must be one of {EYE_CENTRES}, got {eyes!r}")
    xp = _backend(landmarks68)
    lm = np.asarray(landmarks68, dtype=np.float64) if xp is np else landmarks68
    if lm.ndim < 2 or lm.shape[-2] != 68:
        raise ValueError(f"landmarks must be (..., 68, D), got {tuple(lm.shape)}")
    if eyes == "corners":
        right, left = (lm[..., 36, :] + lm[..., 39, :]) / 2, (lm[..., 42, :] + lm[..., 45, :]) / 2
    else:
        right, left = lm[..., 36:42, :].mean(-2), lm[..., 42:48, :].mean(-2)
    pts = [
        right,
        left,
        lm[..., 30, :],
        lm[..., 48, :],
        lm[..., 54, :],
    ]
    return xp.stack(pts, axis=-2) if xp is np else xp.stack(pts, dim=-2)


__all__ = [
    "EYE_CENTRES",
    "FIVE_POINT_NAMES",
    "affine_matrix",
    "apply_similarity",
    "five_points",
    "homogeneous_matrix",
    "umeyama",
]
