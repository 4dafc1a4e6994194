"""Exact closest points on a triangle mesh (unsigned point-to-surface distance).

* :func:`closest_points_on_triangles` — the closest point of each query point on one triangle
  each (vectorised over pairs; Ericson's Voronoi-region method, *Real-Time Collision
  Detection* 5.1.5), with the feature it lies on: face interior, an edge or a vertex.
* :class:`TriangleMeshIndex` — the closest point of each query point on a whole mesh. The
  closest triangle comes from libigl's AABB tree (``igl.AABB.squared_distance``, exact in
  float64: branch and bound on exact point-triangle distances); the closest point, its distance
  and its feature are then computed with :func:`closest_points_on_triangles` on that triangle.
* :func:`brute_force_closest_points` — the same by checking every triangle (tests, small meshes).

Feature codes (``part``), as in the official NoW scorer's AABB tree: ``0`` face interior,
``1`` edge ab, ``2`` edge bc, ``3`` edge ca, ``4`` vertex a, ``5`` vertex b, ``6`` vertex c.
Triangles thinner than about 1e-6 of their size are handled as the union of their edges (they
are that, up to 1e-6 of their size).

All coordinates are in the caller's unit (mm for NoW); arrays are float64 numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focus.geometry.normals import face_normals

#: Feature codes of the closest point on triangle ``(a, b, c)``.
PART_FACE, PART_AB, PART_BC, PART_CA, PART_A, PART_B, PART_C = range(7)

#: A triangle with ``|ab x ac|^2 <= _THIN * max(|ab|^2, |ac|^2)^2`` (thinner than about 1e-6 of
#: its size) is handled as its three edges: there the interior formula loses precision.
_THIN = 1e-12


@dataclass(frozen=True)
class ClosestPoints:
    """Closest points of ``N`` query points on a mesh.

    Attributes:
        distance: ``(N,)`` unsigned Euclidean distance to the surface.
        point: ``(N, 3)`` closest point on the surface.
        face: ``(N,)`` int64 index of the triangle the closest point lies on.
        part: ``(N,)`` int8 feature code of the closest point on that triangle (see module doc).
    """

    distance: np.ndarray
    point: np.ndarray
    face: np.ndarray
    part: np.ndarray


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return x[..., 0] * y[..., 0] + x[..., 1] * y[..., 1] + x[..., 2] * y[..., 2]


def closest_points_on_segments(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest point of ``p`` on segment ``[a, b]`` (all ``(..., 3)``) and its parameter ``t``.

    A zero-length segment gives ``t = 0`` (the point ``a``).
    """
    ab = b - a
    ll = _dot(ab, ab)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ll > 0.0, _dot(p - a, ab) / np.where(ll > 0.0, ll, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    return a + t[..., None] * ab, t


def closest_points_on_triangles(
    p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest point of each ``p[i]`` on the triangle ``(a[i], b[i], c[i])``.

    Args:
        p, a, b, c: ``(M, 3)`` float64 arrays (broadcastable).

    Returns:
        ``(sqdist (M,), closest (M, 3), part (M,) int8)``. Degenerate (zero-area) triangles are
        treated as the union of their three edges, which is what they are.
    """
    p, a, b, c = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (p, a, b, c)))
    ab = b - a
    ac = c - a
    ap = p - a
    d1 = _dot(ab, ap)
    d2 = _dot(ac, ap)
    bp = p - b
    d3 = _dot(ab, bp)
    d4 = _dot(ac, bp)
    cp = p - c
    d5 = _dot(ab, cp)
    d6 = _dot(ac, cp)
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4

    in_a = (d1 <= 0.0) & (d2 <= 0.0)
    in_b = (d3 >= 0.0) & (d4 <= d3)
    in_ab = (vc <= 0.0) & (d1 >= 0.0) & (d3 <= 0.0)
    in_c = (d6 >= 0.0) & (d5 <= d6)
    in_ac = (vb <= 0.0) & (d2 >= 0.0) & (d6 <= 0.0)
    in_bc = (va <= 0.0) & ((d4 - d3) >= 0.0) & ((d5 - d6) >= 0.0)
    conds = [in_a, in_b, in_ab, in_c, in_ac, in_bc]

    with np.errstate(divide="ignore", invalid="ignore"):
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        denom = 1.0 / (va + vb + vc)
        v_in = vb * denom
        w_in = vc * denom
    zero = np.zeros_like(d1)
    one = np.ones_like(d1)
    # Barycentric weights of b and c in each region (first matching region wins, as in Ericson).
    v = np.select(conds, [zero, one, t_ab, zero, zero, 1.0 - t_bc], default=v_in)
    w = np.select(conds, [zero, zero, zero, one, t_ac, t_bc], default=w_in)
    part = np.select(
        conds,
        [PART_A, PART_B, PART_AB, PART_C, PART_CA, PART_BC],
        default=PART_FACE,
    ).astype(np.int8)
    closest = a + v[..., None] * ab + w[..., None] * ac

    # Degenerate triangles: the closest point on the union of the three edges.
    n = np.cross(ab, ac)
    nn = _dot(n, n)
    scale = np.maximum(_dot(ab, ab), _dot(ac, ac))
    degenerate = ~(nn > _THIN * scale * scale) | ~np.isfinite(closest).all(axis=-1)
    if degenerate.any():
        idx = np.nonzero(degenerate)
        pd, ad, bd, cd = p[idx], a[idx], b[idx], c[idx]
        best_q = None
        best_d = None
        best_part = None
        for s0, s1, edge_part, part0, part1 in (
            (ad, bd, PART_AB, PART_A, PART_B),
            (bd, cd, PART_BC, PART_B, PART_C),
            (cd, ad, PART_CA, PART_C, PART_A),
        ):
            q, t = closest_points_on_segments(pd, s0, s1)
            dq = _dot(pd - q, pd - q)
            prt = np.where(t <= 0.0, part0, np.where(t >= 1.0, part1, edge_part)).astype(np.int8)
            if best_d is None:
                best_q, best_d, best_part = q, dq, prt
            else:
                better = dq < best_d
                best_q = np.where(better[:, None], q, best_q)
                best_d = np.where(better, dq, best_d)
                best_part = np.where(better, prt, best_part)
        closest = closest.copy()
        closest[idx] = best_q
        part[idx] = best_part
    diff = p - closest
    return _dot(diff, diff), closest, part


class TriangleMeshIndex:
    """Exact closest-point queries on a fixed triangle mesh (see the module docstring).

    Args:
        vertices: ``(V, 3)`` float vertex positions.
        faces: ``(F, 3)`` int vertex ids, 0-based, ``F >= 1``.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        import igl

        v = np.ascontiguousarray(vertices, dtype=np.float64)
        f = np.ascontiguousarray(faces, dtype=np.int64)
        if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise ValueError(f"need (V, 3) vertices and (F>=1, 3) faces, got {v.shape} and {f.shape}")
        if f.min() < 0 or f.max() >= len(v):
            raise ValueError("face vertex ids out of range")
        if not np.isfinite(v).all():
            raise ValueError("vertices contain NaN or infinity")
        self.vertices = v
        self.faces = f
        tri = v[f]  # (F, 3, 3)
        self._a = np.ascontiguousarray(tri[:, 0])
        self._b = np.ascontiguousarray(tri[:, 1])
        self._c = np.ascontiguousarray(tri[:, 2])
        self._tree = igl.AABB()
        self._tree.init(v, f)
        self._normals: np.ndarray | None = None

    @property
    def num_faces(self) -> int:
        return int(len(self.faces))

    @property
    def normals(self) -> np.ndarray:
        """``(F, 3)`` unit face normals (zero for degenerate faces)."""
        if self._normals is None:
            self._normals = face_normals(self.vertices, self.faces)
        return self._normals

    def query(self, points: np.ndarray) -> ClosestPoints:
        """Exact closest points on the mesh of ``(N, 3)`` query points."""
        pts = _check_points(points)
        _, face, _ = self._tree.squared_distance(self.vertices, self.faces, pts)
        return self.closest_on_faces(pts, np.asarray(face, dtype=np.int64))

    def closest_on_faces(self, points: np.ndarray, face: np.ndarray) -> ClosestPoints:
        """Closest points of ``(N, 3)`` points on the given faces ``(N,)`` (exact formula)."""
        d2, q, part = closest_points_on_triangles(points, self._a[face], self._b[face], self._c[face])
        return ClosestPoints(np.sqrt(d2), q, face, part)


def _check_points(points: np.ndarray) -> np.ndarray:
    pts = np.ascontiguousarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"need (N, 3) query points, got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("query points contain NaN or infinity")
    return pts


def brute_force_closest_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> ClosestPoints:
    """Closest points by checking every triangle (``O(N F)``; for tests and small meshes)."""
    pts = np.asarray(points, dtype=np.float64)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = len(pts)
    best = np.full(n, np.inf)
    q = np.zeros((n, 3))
    fi = np.zeros(n, dtype=np.int64)
    pa = np.zeros(n, dtype=np.int8)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    for i in range(n):
        d2, cq, cp = closest_points_on_triangles(pts[i][None, :], a, b, c)
        j = int(np.argmin(d2))
        best[i], q[i], fi[i], pa[i] = d2[j], cq[j], j, cp[j]
    return ClosestPoints(np.sqrt(best), q, fi, pa)
