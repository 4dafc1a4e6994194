"""Give a model without albedo (ICT-FaceKit Light) the albedo of another model, by correspondence.

Method (:func:`transfer_albedo`):

1. Align the source model's mean shape to the target vertices with the least-squares similarity
   (rotation, uniform scale, translation; Umeyama: :func:`focus.geometry.similarity.umeyama`)
   that maps the source's landmark vertices onto the target's. By default only the 51 inner
   iBUG points (17..67: brows, eyes, nose, mouth) are used: the 17 jaw-contour points are not
   anatomically fixed and differ between models.
2. For each target vertex find the closest point on the aligned source *surface* (exact
   point-to-triangle search, :class:`focus.geometry.closest_points.TriangleMeshIndex`) and its
   barycentric coordinates in that triangle.
3. Interpolate the source's mean albedo and every albedo-basis column there. The result is
   linear in the source albedo, so the basis stays std-scaled with the source's stds.

Target vertices beyond the source's extent (ICT's neck, ears) get the colour of the nearest
source boundary point.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from focus.facemodel.model import FaceModel
from focus.geometry.similarity import homogeneous_matrix, umeyama

#: iBUG-68 points used for the alignment by default (brows, nose, eyes, mouth; no jaw contour).
INNER_IBUG68: tuple[int, ...] = tuple(range(17, 68))


def _np(a: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().cpu().numpy().astype(np.float64)
    return np.asarray(a, dtype=np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``(4, 4)`` homogeneous similarity mapping ``src (N, 3)`` onto ``dst (N, 3)`` (least squares).

    Raises:
        ValueError: fewer than 3 non-collinear point pairs.
    """
    src, dst = _np(src), _np(dst)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise ValueError(f"need matching (N>=3, 3) point sets, got {src.shape} and {dst.shape}")
    if np.linalg.matrix_rank(src - src.mean(axis=0)) < 2 or np.linalg.matrix_rank(dst - dst.mean(axis=0)) < 2:
        raise ValueError("similarity estimation failed: the points are collinear or coincide")
    return homogeneous_matrix(*umeyama(src, dst))


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``(4, 4)`` homogeneous transform to ``(N, 3)`` points."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def barycentric(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric coordinates ``(N, 3)`` of ``points`` (on or near their triangles), clipped >= 0, sum 1."""
    v0, v1, v2 = b - a, c - a, points - a
    d00 = np.einsum("ij,ij->i", v0, v0)
    d01 = np.einsum("ij,ij->i", v0, v1)
    d11 = np.einsum("ij,ij->i", v1, v1)
    d20 = np.einsum("ij,ij->i", v2, v0)
    d21 = np.einsum("ij,ij->i", v2, v1)
    den = d00 * d11 - d01 * d01
    ok = np.abs(den) > 1e-30
    safe = np.where(ok, den, 1.0)
    v = np.where(ok, (d11 * d20 - d01 * d21) / safe, 0.0)
    w = np.where(ok, (d00 * d21 - d01 * d20) / safe, 0.0)
    bary = np.clip(np.stack([1.0 - v - w, v, w], axis=1), 0.0, None)
    return bary / np.maximum(bary.sum(axis=1, keepdims=True), 1e-30)


def closest_surface_points(
    vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``points (P, 3)``: closest triangle ``(P,)``, barycentrics ``(P, 3)``, distance ``(P,)``."""
    from focus.geometry.closest_points import TriangleMeshIndex

    index = TriangleMeshIndex(_np(vertices), np.asarray(triangles, dtype=np.int64))
    hit = index.query(_np(points))
    tri = np.asarray(triangles, dtype=np.int64)[hit.face]
    v = index.vertices
    return hit.face, barycentric(hit.point, v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]), hit.distance


def transfer_albedo(
    source: FaceModel,
    target_vertices: np.ndarray | Tensor,
    target_landmarks68: np.ndarray | Tensor,
    *,
    use_contour: bool = False,
) -> tuple[Tensor, Tensor]:
    """Albedo for a target mesh from ``source``'s albedo model (method in the module docstring).

    Args:
        source: a model with albedo and 68 landmarks (any units; the similarity absorbs scale).
        target_vertices: ``(V, 3)`` target mean shape (mm, model frame).
        target_landmarks68: ``(68,)`` 0-based target vertex ids of the iBUG-68 landmarks.
        use_contour: also align with the 17 jaw-contour landmarks.

    Returns:
        ``mean_albedo (V, 3)`` and ``albedo_basis (K, V, 3)`` (K = ``source.n_albedo``), float32
        CPU tensors, in the source's albedo units ([0, 1] RGB) and std scaling.
    """
    tgt = _np(target_vertices)
    lm_t = np.asarray(_np(target_landmarks68), dtype=np.int64).reshape(-1)
    if tgt.ndim != 2 or tgt.shape[1] != 3 or lm_t.shape != (68,):
        raise ValueError(f"need (V, 3) target vertices and 68 landmark ids, got {tgt.shape} and {lm_t.shape}")
    src_v = _np(source.mean_shape)
    lm_s = source.landmarks68.detach().cpu().numpy().astype(np.int64)
    use = list(range(68)) if use_contour else list(INNER_IBUG68)
    matrix = similarity_transform(src_v[lm_s[use]], tgt[lm_t[use]])
    aligned = apply_transform(matrix, src_v)
    src_tri = source.triangles.detach().cpu().numpy()
    face, bary, _ = closest_surface_points(aligned, src_tri, tgt)
    corners = torch.from_numpy(src_tri[face])  # (V, 3) source vertex ids
    w = torch.from_numpy(bary).to(torch.float32)  # (V, 3)

    def interp(attr: Tensor) -> Tensor:  # (..., Vs, 3) -> (..., V, 3)
        attr = attr.detach().cpu().to(torch.float32)
        return (attr[..., corners, :] * w[:, :, None]).sum(dim=-2)

    return interp(source.mean_albedo).contiguous(), interp(source.albedo_basis).contiguous()


def transfer_landmarks(
    source: FaceModel,
    target_vertices: np.ndarray | Tensor,
    anchors: Mapping[int, int],
) -> np.ndarray:
    """The 68 landmark vertex ids of a target mesh, transferred from ``source``.

    Args:
        source: a model with 68 landmarks.
        target_vertices: ``(V, 3)`` target mean shape.
        anchors: iBUG index -> target vertex id for the points known on the target (>= 3,
            e.g. named Basel landmarks), used to align the source by a similarity.

    Returns:
        ``(68,)`` int64 ids: for each source landmark, the nearest target vertex after alignment
        (the anchors keep their given ids).
    """
    from scipy.spatial import cKDTree

    tgt = _np(target_vertices)
    lm_s = source.landmarks68.detach().cpu().numpy().astype(np.int64)
    ibug = sorted(anchors)
    matrix = similarity_transform(_np(source.mean_shape)[lm_s[ibug]], tgt[[anchors[i] for i in ibug]])
    pts = apply_transform(matrix, _np(source.mean_shape)[lm_s])
    _, ids = cKDTree(tgt).query(pts)
    ids = np.asarray(ids, dtype=np.int64)
    for i in ibug:
        ids[i] = anchors[i]
    return ids
