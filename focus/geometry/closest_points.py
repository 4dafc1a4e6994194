"""Exact closest points on a triangle mesh (unsigned point-to-surface distance).

Three layers:

* :func:`closest_points_on_triangles` — the closest point of each query point on one triangle
  each (vectorised over pairs; Ericson's Voronoi-region method, *Real-Time Collision
  Detection* 5.1.5), with the feature it lies on: face interior, an edge or a vertex.
* :class:`TriangleMeshIndex` — the closest point of each query point on a whole mesh. Candidate
  triangles come from a ``scipy.spatial.cKDTree`` over *samples*: the centroids of the triangles
  (triangles much larger than the median are first split into similar sub-triangles, for the
  search only), each sample standing for a part of its triangle within radius ``rho`` of it.
  The closest point at distance ``d`` lies in a part whose sample is within ``d + rho``, so with
  ``d`` the best distance among the ``k`` nearest samples' triangles, the exact answer is among
  the triangles of the samples within ``reach = d + rho``. If the ``k``-th nearest sample is
  already beyond ``reach`` nothing else can be closer; otherwise all samples within ``reach``
  are fetched (a dual-tree search, ``sparse_distance_matrix``) and checked. The result is exact,
  not an approximation.
* :class:`TrackedClosestPoints` — the same for a fixed set of points that moves a little between
  queries (iterative alignment): candidate lists are kept and only re-searched for points that
  moved more than a margin.

Feature codes (``part``), as in the official NoW scorer's AABB tree: ``0`` face interior,
``1`` edge ab, ``2`` edge bc, ``3`` edge ca, ``4`` vertex a, ``5`` vertex b, ``6`` vertex c.
Triangles thinner than about 1e-6 of their size are handled as the union of their edges (they
are that, up to 1e-6 of their size).

All coordinates are in the caller's unit (mm for NoW); arrays are float64 numpy.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from focus.geometry.normals import face_normals

#: Feature codes of the closest point on triangle ``(a, b, c)``.
PART_FACE, PART_AB, PART_BC, PART_CA, PART_A, PART_B, PART_C = range(7)

#: Query points per KD-tree batch, and (point, triangle) pairs per batch of the vectorised
#: distance code (small enough to stay in cache).
_CHUNK_POINTS = 65536
_CHUNK_PAIRS = 16384

#: A triangle with ``|ab x ac|^2 <= _THIN * max(|ab|^2, |ac|^2)^2`` (thinner than about 1e-6 of
#: its size) is handled as its three edges: there the interior formula loses precision.
_THIN = 1e-12

#: Radius quantiles that group the points of a dual-tree search (the top 2% use ball queries).
_RADIUS_QUANTILES = (0.25, 0.5, 0.75, 0.9, 0.98)


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
        sample_radius: the largest part of a triangle one search sample may stand for. Default:
            1.5 times the median distance from a triangle's centroid to its farthest vertex;
            triangles larger than that are split (for the search only), so that a few huge
            triangles do not loosen the bound for all queries.
        max_splits: a triangle is split into at most ``max_splits**2`` pieces.
        workers: threads for the KD-tree queries (``-1``: all cores).
    """

    def __init__(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        sample_radius: float | None = None,
        max_splits: int = 32,
        workers: int = -1,
    ) -> None:
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
        self.workers = workers
        tri = v[f]  # (F, 3, 3)
        self._a = np.ascontiguousarray(tri[:, 0])
        self._b = np.ascontiguousarray(tri[:, 1])
        self._c = np.ascontiguousarray(tri[:, 2])
        centroid = tri.mean(axis=1)
        radius = np.linalg.norm(tri - centroid[:, None, :], axis=2).max(axis=1)
        if sample_radius is None:
            sample_radius = 1.5 * float(np.median(radius))
        sample_radius = max(float(sample_radius), 1e-12 * max(1.0, float(np.abs(v).max())))
        splits = np.clip(np.ceil(radius / sample_radius), 1, max_splits).astype(np.int64)
        points = [centroid[splits == 1]]
        parents = [np.nonzero(splits == 1)[0]]
        for n in np.unique(splits[splits > 1]):
            ids = np.nonzero(splits == n)[0]
            coef = _subtriangle_centroid_coefficients(int(n))  # (n*n, 2)
            ab = self._b[ids] - self._a[ids]
            ac = self._c[ids] - self._a[ids]
            pts = self._a[ids, None, :] + coef[None, :, 0:1] * ab[:, None, :] + coef[None, :, 1:2] * ac[:, None, :]
            points.append(pts.reshape(-1, 3))
            parents.append(np.repeat(ids, len(coef)))
        self.sample_points = np.concatenate(points, axis=0)
        self.sample_parent = np.concatenate(parents, axis=0)
        #: Upper bound on the distance from a sample to any point of the part it stands for
        #: (sub-triangles of a triangle split ``n`` times are similar to it, scaled by ``1/n``).
        self.rho = float((radius / splits).max()) * (1.0 + 1e-9) + 1e-12
        ab = self._b - self._a
        ac = self._c - self._a
        self._table = np.ascontiguousarray(
            np.concatenate(
                [self._a, ab, ac, _dot(ab, ab)[:, None], _dot(ac, ac)[:, None], _dot(ab, ac)[:, None]],
                axis=1,
            )
        )
        nrm = np.cross(ab, ac)
        scale = np.maximum(_dot(ab, ab), _dot(ac, ac))
        self._degenerate = ~(_dot(nrm, nrm) > _THIN * scale * scale)
        self._degenerate_any = bool(self._degenerate.any())
        self._tree = cKDTree(self.sample_points)
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

    def query(self, points: np.ndarray, k: int = 4) -> ClosestPoints:
        """Exact closest points on the mesh of ``(N, 3)`` query points.

        ``k`` is the number of nearest search samples tried first; it changes the speed only.
        """
        pts = _check_points(points)
        n = len(pts)
        face = np.empty(n, dtype=np.int64)
        for start in range(0, n, _CHUNK_POINTS):
            sl = slice(start, min(n, start + _CHUNK_POINTS))
            face[sl] = self.candidate_faces(pts[sl], 0.0, k)[0]
        return self.closest_on_faces(pts, face)

    def closest_on_faces(self, points: np.ndarray, face: np.ndarray) -> ClosestPoints:
        """Closest points of ``(N, 3)`` points on the given faces ``(N,)`` (exact formula)."""
        d2, q, part = closest_points_on_triangles(points, self._a[face], self._b[face], self._c[face])
        return ClosestPoints(np.sqrt(d2), q, face, part)

    def pair_sqdist(self, points: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Squared distances of ``points[i]`` ``(M, 3)`` to triangles ``faces[i]`` ``(M,)``.

        Fast formula (2 dot products per pair), used to rank candidates; the winner's distance
        is recomputed with :func:`closest_points_on_triangles`.
        """
        p = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        f = np.asarray(faces).reshape(-1)
        sq = np.empty(len(f))
        for start in range(0, len(f), _CHUNK_PAIRS):
            sl = slice(start, start + _CHUNK_PAIRS)
            sq[sl] = _fast_sqdist(p[sl], np.take(self._table, f[sl], axis=0))
        if self._degenerate_any:
            bad = self._degenerate[f]
            if bad.any():
                ids = f[bad]
                sq[bad] = closest_points_on_triangles(p[bad], self._a[ids], self._b[ids], self._c[ids])[0]
        return sq

    def candidate_faces(
        self, pts: np.ndarray, margin: float, k: int = 4
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The closest face of each point and every face within ``margin`` of the best distance.

        Args:
            pts: ``(m, 3)`` query points.
            margin: extra distance ``>= 0``: faces with ``dist <= best + margin`` are listed.
            k: nearest samples tried first (speed only).

        Returns:
            ``(best_face (m,), best_sqdist (m,), owner (P,), face (P,), sqdist (P,))``: the
            closest face and its squared distance (fast formula), and the ``P`` listed (point,
            face) pairs with their squared distances, in no particular order (a face may appear
            twice for a point).
        """
        m = len(pts)
        rows = np.arange(m)
        ns = len(self.sample_points)
        k = int(min(max(k, 1), ns))
        sd, si = self._tree.query(pts, k=k, workers=self.workers)
        sd = sd.reshape(m, k)
        cand = self.sample_parent[si.reshape(m, k)]
        sq = self.pair_sqdist(np.repeat(pts, k, axis=0), cand).reshape(m, k)
        j = np.argmin(sq, axis=1)
        best_sq = sq[rows, j]
        best = cand[rows, j]
        # Every face within best + margin has a sample within reach (module docstring). Points
        # whose k-th nearest sample is closer than that get all samples in reach.
        reach = np.sqrt(best_sq) + margin + self.rho
        pend_mask = (sd[:, -1] < reach) & (k < ns)
        pending = np.nonzero(pend_mask)[0]
        owner2 = np.zeros(0, dtype=np.int64)
        if len(pending):
            owner2, samples = self._samples_within(pts[pending], reach[pending])
            owner2 = pending[owner2]
            f2 = self.sample_parent[samples]
            sq2 = self.pair_sqdist(pts[owner2], f2)
            # The ball of each point holds the sample that found its current best face.
            seg_min = np.full(m, np.inf)
            np.minimum.at(seg_min, owner2, sq2)
            win = sq2 <= seg_min[owner2]
            best_sq[pending] = seg_min[pending]
            best[owner2[win]] = f2[win]
        if margin <= 0.0:
            return best, best_sq, rows, best, best_sq
        # List every face within best + margin: from the k nearest for settled points, from the
        # balls for the others (all faces that close have a sample within reach).
        limit = np.sqrt(best_sq) + margin
        limit2 = limit * limit * (1.0 + 1e-12) + 1e-300
        keep = (sq <= limit2[:, None]) & ~pend_mask[:, None]
        owner = np.repeat(rows, keep.sum(axis=1))
        face = cand[keep]
        pair_sq = sq[keep]
        if len(owner2):
            kk = sq2 <= limit2[owner2]
            owner = np.concatenate([owner, owner2[kk]])
            face = np.concatenate([face, f2[kk]])
            pair_sq = np.concatenate([pair_sq, sq2[kk]])
        return best, best_sq, owner, face, pair_sq

    def _samples_within(self, pts: np.ndarray, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All ``(point, sample)`` pairs with ``|point - sample| <= radius[point]``.

        Points are grouped by radius (quantiles); each group is answered by a dual-tree search
        (``sparse_distance_matrix``: arrays, no Python object per pair) up to the group's
        largest radius and filtered; the few points with the largest radii use ball queries.
        """
        owners, samples = [], []
        lo = -np.inf
        if len(pts) >= 256:
            for cut in np.quantile(radius, _RADIUS_QUANTILES):
                group = np.nonzero((radius > lo) & (radius <= cut))[0]
                lo = cut
                if not len(group):
                    continue
                qtree = cKDTree(pts[group], balanced_tree=False, compact_nodes=False)
                pairs = qtree.sparse_distance_matrix(self._tree, float(cut), output_type="ndarray")
                i = pairs["i"]
                ok = pairs["v"] <= radius[group][i]
                owners.append(group[i[ok]])
                samples.append(pairs["j"][ok].astype(np.int64, copy=False))
        rest = np.nonzero(radius > lo)[0]
        if len(rest):
            lists = self._tree.query_ball_point(pts[rest], radius[rest], workers=self.workers, return_sorted=False)
            lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
            owners.append(np.repeat(rest, lengths))
            samples.append(np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=int(lengths.sum())))
        return np.concatenate(owners).astype(np.int64, copy=False), np.concatenate(samples)


class TrackedClosestPoints:
    """Exact closest points of a fixed set of points that move a little between queries.

    Made for iterative alignment: the query points are the same scan vertices every time, moved
    by a small update. For each point ``p`` it keeps a reference position ``r``, the distance
    ``d(r)`` and the *active* faces: every face ``f`` with ``dist(r, f) <= d(r) + 2 margin``,
    with ``dist(r, f)``. Distances to a face change by at most ``m = |p - r|`` when the point
    moves, so while ``m <= margin`` the closest face of ``p`` is an active face with
    ``dist(r, f) <= d(r) + 2 m`` (any other face is farther than ``d(r) + m``, while the old
    closest face is within ``d(r) + m``); only those are evaluated. Points that moved farther than
    ``margin`` are searched again. Results are exact, like :meth:`TriangleMeshIndex.query`.

    Args:
        index: the mesh.
        margin: how far (mesh units) a point may move before it is searched again.
        k: nearest samples tried first in a search (speed only).
    """

    def __init__(self, index: TriangleMeshIndex, margin: float, k: int = 4) -> None:
        if margin <= 0:
            raise ValueError("margin must be positive")
        self.index = index
        self.margin = float(margin)
        self.k = int(k)
        self._ref: np.ndarray | None = None  # (N, 3) reference positions
        self._dref: np.ndarray | None = None  # (N,) distance at the reference
        self._owner: np.ndarray | None = None  # (P,) point of each active pair
        self._faces: np.ndarray | None = None  # (P,) face of each active pair
        self._sqref: np.ndarray | None = None  # (P,) squared distance at the reference
        self.searched = 0  # number of point searches done (diagnostics)

    def query(self, points: np.ndarray) -> ClosestPoints:
        pts = _check_points(points)
        n = len(pts)
        if self._ref is None or len(self._ref) != n:
            self._search_into_state(pts, None)
        diff = pts - self._ref
        motion = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        moved = np.nonzero(motion > self.margin)[0]
        if len(moved):
            self._search_into_state(pts, moved)
            motion[moved] = 0.0
        assert self._dref is not None and self._owner is not None
        assert self._faces is not None and self._sqref is not None
        lim = self._dref + 2.0 * motion
        lim2 = lim * lim * (1.0 + 1e-9) + 1e-300
        mask = self._sqref <= lim2[self._owner]
        owner = self._owner[mask]
        faces = self._faces[mask]
        sq = self.index.pair_sqdist(pts[owner], faces)
        # Every point keeps at least its reference's closest face.
        seg_min = np.full(n, np.inf)
        np.minimum.at(seg_min, owner, sq)
        win = sq <= seg_min[owner]
        best = np.empty(n, dtype=np.int64)
        best[owner[win]] = faces[win]
        return self.index.closest_on_faces(pts, best)

    # ------------------------------------------------------------------ internals
    def _search(self, pts: np.ndarray):
        bests, owners, faces, sqs = [], [], [], []
        for start in range(0, len(pts), _CHUNK_POINTS):
            chunk = pts[start : start + _CHUNK_POINTS]
            _, best_sq, owner, face, sq = self.index.candidate_faces(chunk, 2.0 * self.margin, self.k)
            bests.append(best_sq)
            owners.append(owner + start)
            faces.append(face)
            sqs.append(sq)
        return (np.sqrt(np.concatenate(bests)), np.concatenate(owners), np.concatenate(faces), np.concatenate(sqs))

    def _search_into_state(self, pts: np.ndarray, ids: np.ndarray | None) -> None:
        """Search all points (``ids=None``) or the points ``ids`` again at their positions."""
        if ids is None:
            self._dref, self._owner, self._faces, self._sqref = self._search(pts)
            self._ref = pts.copy()
            self.searched += len(pts)
            return
        assert self._ref is not None and self._dref is not None and self._owner is not None
        assert self._faces is not None and self._sqref is not None
        dref, owner, faces, sqref = self._search(pts[ids])
        keep = np.ones(len(pts), dtype=bool)
        keep[ids] = False
        sel = keep[self._owner]
        self._owner = np.concatenate([self._owner[sel], ids[owner]])
        self._faces = np.concatenate([self._faces[sel], faces])
        self._sqref = np.concatenate([self._sqref[sel], sqref])
        self._dref[ids] = dref
        self._ref[ids] = pts[ids]
        self.searched += len(ids)


def _check_points(points: np.ndarray) -> np.ndarray:
    pts = np.ascontiguousarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"need (N, 3) query points, got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("query points contain NaN or infinity")
    return pts


def _fast_sqdist(p: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Squared point-triangle distances from 2 dot products per pair (ranking only).

    ``table`` rows are ``a (3), ab (3), ac (3), |ab|^2, |ac|^2, ab.ac`` of each pair's triangle.
    Same Voronoi regions as :func:`closest_points_on_triangles` (the first matching region of
    Ericson's order wins; ``np.where`` cascades are applied in reverse order for that).
    """
    a, ab, ac = table[:, 0:3], table[:, 3:6], table[:, 6:9]
    aa, cc, bc = table[:, 9], table[:, 10], table[:, 11]
    ap = p - a
    d1 = ap[:, 0] * ab[:, 0] + ap[:, 1] * ab[:, 1] + ap[:, 2] * ab[:, 2]
    d2 = ap[:, 0] * ac[:, 0] + ap[:, 1] * ac[:, 1] + ap[:, 2] * ac[:, 2]
    pp = ap[:, 0] * ap[:, 0] + ap[:, 1] * ap[:, 1] + ap[:, 2] * ap[:, 2]
    d3 = d1 - aa
    d4 = d2 - bc
    d5 = d1 - bc
    d6 = d2 - cc
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4
    with np.errstate(divide="ignore", invalid="ignore"):
        den = va + vb + vc
        v = vb / den
        w = vc / den
        e43 = d4 - d3
        e56 = d5 - d6
        m = (va <= 0) & (e43 >= 0) & (e56 >= 0)  # edge bc
        t = e43 / (e43 + e56)
        v = np.where(m, 1.0 - t, v)
        w = np.where(m, t, w)
        m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)  # edge ca
        t = d2 / (d2 - d6)
        v = np.where(m, 0.0, v)
        w = np.where(m, t, w)
        m = (d6 >= 0) & (d5 <= d6)  # vertex c
        v = np.where(m, 0.0, v)
        w = np.where(m, 1.0, w)
        m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)  # edge ab
        t = d1 / (d1 - d3)
        v = np.where(m, t, v)
        w = np.where(m, 0.0, w)
        m = (d3 >= 0) & (d4 <= d3)  # vertex b
        v = np.where(m, 1.0, v)
        w = np.where(m, 0.0, w)
        m = (d1 <= 0) & (d2 <= 0)  # vertex a
        v = np.where(m, 0.0, v)
        w = np.where(m, 0.0, w)
    sq = pp - 2.0 * (v * d1 + w * d2) + v * v * aa + 2.0 * v * w * bc + w * w * cc
    return np.where(np.isfinite(sq), np.maximum(sq, 0.0), np.inf)


def _subtriangle_centroid_coefficients(n: int) -> np.ndarray:
    """``(n*n, 2)`` coefficients ``(s, t)``: centroid ``a + s (b - a) + t (c - a)`` of each of the
    ``n**2`` similar sub-triangles of a triangle split ``n`` times along each edge."""
    coef = []
    for i in range(n):
        for j in range(n - i):
            coef.append(((3 * i + 1) / (3 * n), (3 * j + 1) / (3 * n)))  # upright
            if i + j <= n - 2:
                coef.append(((3 * i + 2) / (3 * n), (3 * j + 2) / (3 * n)))  # upside down
    return np.asarray(coef, dtype=np.float64)


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
