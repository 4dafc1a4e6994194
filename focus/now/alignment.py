"""The geometric steps of the NoW protocol: scan crop, landmark Procrustes, rigid refinement.

Conventions: all points are ``(N, 3)`` float64 in the scan's frame and unit (mm) unless noted.
A :class:`Similarity` maps a point ``x`` (a row vector) to ``scale * x @ rotation.T +
translation``, i.e. ``scale * R x + t`` for column vectors.

* :func:`crop_sphere` / :func:`crop_scan` — the official face crop: centre
  ``c = L5 + 0.3 (bridge - L5)`` with ``bridge = (L2 + L3) / 2``, radius
  ``r = 1.4 (|L1 - L4| + |bridge - L5|) / 2``; scan vertices with ``|v - c| <= r`` are kept.
* :func:`procrustes` — similarity Procrustes from the predicted to the scan landmarks. The
  official scorer uses a port of MATLAB's ``procrustes`` called with ``reflection='best'``, which
  returns an improper orthogonal matrix (a reflection) when that fits the 7 points better; the
  default here does the same (``allow_reflection=True``).
* :func:`refine_alignment` — scale, rotation and translation of the (Procrustes-aligned) predicted
  mesh minimising the sum of squared distances from the cropped scan vertices to the mesh
  surface; scale stays positive. The official scorer minimises the same objective with chumpy's
  dogleg solver; here it is minimised with Levenberg-Marquardt (``scipy.optimize.least_squares``,
  MINPACK) on the exact point-to-surface residuals: at every evaluation the closest points are
  recomputed exactly (:class:`focus.geometry.closest_points.TriangleMeshIndex`), and the residual
  of a scan vertex is differentiated along the direction from its closest point, which is the
  exact derivative of the distance (point-to-plane inside a face, point-to-edge/vertex elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from focus.geometry.closest_points import ClosestPoints, TriangleMeshIndex
from focus.geometry.similarity import apply_similarity, umeyama

#: The NoW landmark order (scan ``.pp`` files and predictions alike).
NOW_LANDMARK_NAMES: tuple[str, ...] = (
    "right_eye_outer",
    "right_eye_inner",
    "left_eye_inner",
    "left_eye_outer",
    "nose_bottom",
    "right_mouth_corner",
    "left_mouth_corner",
)

#: Factor from a prediction's unit to the scans' millimetres (metrical protocol).
UNIT_TO_MM: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


@dataclass(frozen=True)
class Similarity:
    """``x -> scale * x @ rotation.T + translation`` on row vectors ``(N, 3)``.

    ``rotation`` is orthogonal; its determinant is ``-1`` for a reflection (Procrustes only).
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(points, dtype=np.float64) @ self.rotation.T) + self.translation

    def then(self, other: Similarity) -> Similarity:
        """The transform ``other(self(x))``."""
        return Similarity(
            scale=other.scale * self.scale,
            rotation=other.rotation @ self.rotation,
            translation=other.scale * (other.rotation @ self.translation) + other.translation,
        )

    @staticmethod
    def identity() -> Similarity:
        return Similarity(1.0, np.eye(3), np.zeros(3))


# ---------------------------------------------------------------------------------------- crop
def crop_sphere(scan_landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre ``(3,)`` and radius of the official face crop from the 7 scan landmarks ``(7, 3)``."""
    lmk = np.asarray(scan_landmarks, dtype=np.float64)
    nose_bottom = lmk[4]
    bridge = 0.5 * (lmk[1] + lmk[2])
    centre = nose_bottom + 0.3 * (bridge - nose_bottom)
    outer_eye_dist = float(np.linalg.norm(lmk[0] - lmk[3]))
    nose_dist = float(np.linalg.norm(bridge - nose_bottom))
    return centre, 1.4 * (outer_eye_dist + nose_dist) / 2.0


def crop_scan(
    vertices: np.ndarray, faces: np.ndarray, scan_landmarks: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the scan vertices inside the crop sphere and the faces among them.

    Returns:
        ``(vertices (K, 3), faces (G, 3) re-indexed, kept_ids (K,))``, vertex order preserved.
    """
    v = np.asarray(vertices, dtype=np.float64)
    centre, radius = crop_sphere(scan_landmarks)
    keep = np.linalg.norm(v - centre, axis=1) <= radius
    ids = np.nonzero(keep)[0]
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    new_id = np.full(len(v), -1, dtype=np.int64)
    new_id[ids] = np.arange(len(ids))
    f_keep = f[keep[f].all(axis=1)] if len(f) else f
    return v[ids], new_id[f_keep], ids


# ---------------------------------------------------------------------------------- procrustes
def procrustes(
    target: np.ndarray,
    source: np.ndarray,
    scaling: bool = True,
    allow_reflection: bool = True,
) -> tuple[Similarity, float]:
    """Least-squares similarity mapping ``source`` points onto ``target`` points.

    Same result as MATLAB's ``procrustes(X=target, Y=source)`` (and its numpy port used by the
    official NoW scorer with ``reflection='best'``).

    Args:
        target: ``(n, 3)`` points to match (scan landmarks).
        source: ``(n, 3)`` points to move (predicted landmarks).
        scaling: fit the scale (otherwise 1).
        allow_reflection: ``True`` (official): the orthogonal part may be a reflection when that
            fits better; ``False``: a proper rotation is forced.

    Returns:
        ``(transform, d)`` with ``transform.apply(source) ~ target`` and ``d`` the residual sum of
        squares normalised by ``sum |target - mean|^2``.

    Raises:
        ValueError: if either point set has no spread (all points equal).
    """
    x = np.asarray(target, dtype=np.float64)
    y = np.asarray(source, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"need two (n, 3) point sets of the same shape, got {x.shape} and {y.shape}")
    norm_x2 = float(((x - x.mean(axis=0)) ** 2).sum())
    if not (norm_x2 > 0 and ((y - y.mean(axis=0)) ** 2).sum() > 0):
        raise ValueError("landmarks have no spread (all points coincide)")
    scale, rotation, translation = umeyama(y, x, scale=scaling, reflection=allow_reflection)
    d = float(((apply_similarity(scale, rotation, translation, y) - x) ** 2).sum()) / norm_x2
    return Similarity(float(scale), rotation, translation), d


# --------------------------------------------------------------------------------- refinement
@dataclass(frozen=True)
class RefinementSettings:
    """Settings of :func:`refine_alignment`.

    Attributes:
        fit_scale: optimise the scale (non-metrical protocol) or keep it (metrical).
        max_iterations: cost evaluations (Levenberg-Marquardt trial steps) per stage.
        rel_tolerance: stop when the cost decreases by less than this fraction (``ftol``).
        coarse_points: scan vertices (a fixed random subset) used by a first stage that gets
            close to the optimum cheaply; the second stage then uses all vertices and converges
            to the optimum of the full objective. 0 disables the first stage.
        seed: seed of the coarse subset.
    """

    fit_scale: bool = True
    max_iterations: int = 100
    rel_tolerance: float = 1e-8
    coarse_points: int = 5000
    seed: int = 0


@dataclass(frozen=True)
class RefinementResult:
    """Outcome of :func:`refine_alignment`.

    Attributes:
        transform: similarity to apply to the (already Procrustes-aligned) mesh vertices.
        closest: exact closest points of the scan vertices on the final mesh (scan frame, mm).
        cost: final sum of squared distances (mm^2).
        iterations: cost evaluations over both stages.
        converged: whether the last stage met a tolerance before ``max_iterations``.
        history: cost at each evaluation of the last stage (trial steps included).
    """

    transform: Similarity
    closest: ClosestPoints
    cost: float
    iterations: int
    converged: bool
    history: tuple[float, ...] = field(default=())


class _Problem:
    """The scan vertices against the mesh under a similarity ``x -> s R x + t`` (mesh frame in).

    Queries are answered in the mesh's own frame (the index is built once): a scan point ``p``
    is mapped to ``R^T (p - t) / s`` and distances are scaled back by ``s``.
    """

    def __init__(self, scan: np.ndarray, index: TriangleMeshIndex) -> None:
        self.scan = scan
        self.index = index

    def evaluate(self, tf: Similarity) -> tuple[float, ClosestPoints]:
        local = ((self.scan - tf.translation) @ tf.rotation) / tf.scale
        cp = self.index.query(local)
        dist = tf.scale * cp.distance
        point = tf.apply(cp.point)
        res = ClosestPoints(dist, point, cp.face, cp.part)
        return float(np.dot(dist, dist)), res


def _directions(scan: np.ndarray, cp: ClosestPoints, normals: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Unit vectors from each closest point to its scan point; the face normal where they meet."""
    diff = scan - cp.point
    d = cp.distance
    u = np.empty_like(diff)
    ok = d > 1e-12
    u[ok] = diff[ok] / d[ok, None]
    u[~ok] = normals[cp.face[~ok]] @ rotation.T
    return u


def _left_jacobian(omega: np.ndarray) -> np.ndarray:
    """``(3, 3)`` left Jacobian of SO(3) at rotation vector ``omega``: ``R(omega + d) ~
    exp(J d) R(omega)`` to first order in ``d``."""
    theta2 = float(omega @ omega)
    k = np.array([[0.0, -omega[2], omega[1]], [omega[2], 0.0, -omega[0]], [-omega[1], omega[0], 0.0]])
    if theta2 < 1e-12:
        return np.eye(3) + 0.5 * k + (k @ k) / 6.0
    theta = np.sqrt(theta2)
    return np.eye(3) + (1.0 - np.cos(theta)) / theta2 * k + (theta - np.sin(theta)) / (theta2 * theta) * (k @ k)


def _lm(
    problem: _Problem,
    start: Similarity,
    settings: RefinementSettings,
    rel_tolerance: float,
) -> tuple[Similarity, float, ClosestPoints, int, bool, list[float]]:
    """Levenberg-Marquardt (``scipy.optimize.least_squares``, MINPACK) on the exact distances.

    Parameters ``x = (log s, omega, t)`` (``log s`` only with ``fit_scale``) of the update
    ``y -> s R(omega) (y - c) + c + t`` applied after ``start``, ``c`` the scan centroid.
    """
    from scipy.optimize import least_squares

    scan = problem.scan
    centre = scan.mean(axis=0)
    fit_scale = settings.fit_scale
    history: list[float] = []
    cache: dict[bytes, tuple[Similarity, float, ClosestPoints]] = {}

    def transform(x: np.ndarray) -> Similarity:
        scale = float(np.exp(x[0])) if fit_scale else 1.0
        rot = Rotation.from_rotvec(x[-6:-3]).as_matrix()
        return start.then(Similarity(scale, rot, centre - scale * (rot @ centre) + x[-3:]))

    def evaluate(x: np.ndarray) -> tuple[Similarity, float, ClosestPoints]:
        key = x.tobytes()
        if key not in cache:
            if len(cache) > 4:
                cache.clear()
            tf = transform(x)
            cost, cp = problem.evaluate(tf)
            cache[key] = (tf, cost, cp)
        return cache[key]

    def residuals(x: np.ndarray) -> np.ndarray:
        _, cost, cp = evaluate(x)
        history.append(cost)
        return cp.distance

    def jacobian(x: np.ndarray) -> np.ndarray:
        tf, _, cp = evaluate(x)
        u = _directions(scan, cp, problem.index.normals, tf.rotation)
        # q moves with the mesh: dq/d(log s) = arm, dq/d(omega) = (J_l d) x arm, dq/dt = I,
        # with arm = q - c - t; and dr/dq = -u.
        arm = cp.point - centre - x[-3:]
        cols = [-np.cross(arm, u) @ _left_jacobian(x[-6:-3]), -u]
        if fit_scale:
            cols.insert(0, -np.einsum("ij,ij->i", u, arm)[:, None])
        return np.concatenate(cols, axis=1)

    x0 = np.zeros(7 if fit_scale else 6)
    result = least_squares(
        residuals,
        x0,
        jac=jacobian,
        method="lm",
        x_scale="jac",
        ftol=rel_tolerance,
        xtol=1e-12,
        gtol=1e-12,
        max_nfev=settings.max_iterations,
    )
    tf, cost, cp = evaluate(result.x)
    converged = result.status > 0
    return tf, cost, cp, int(result.nfev), converged, history


def refine_alignment(
    scan_points: np.ndarray,
    mesh_vertices: np.ndarray,
    mesh_faces: np.ndarray,
    settings: RefinementSettings = RefinementSettings(),
    index: TriangleMeshIndex | None = None,
) -> RefinementResult:
    """Similarity (or rigid, with ``fit_scale=False``) refinement of a mesh onto scan points.

    Args:
        scan_points: ``(N, 3)`` cropped scan vertices (mm).
        mesh_vertices: ``(V, 3)`` predicted mesh vertices, already Procrustes-aligned (mm).
        mesh_faces: ``(F, 3)`` int triangles of the predicted mesh.
        settings: see :class:`RefinementSettings`.
        index: a prebuilt :class:`TriangleMeshIndex` of ``(mesh_vertices, mesh_faces)``.

    Returns:
        The transform ``T`` (apply it to ``mesh_vertices``), the exact closest points of the scan
        vertices on ``T(mesh)`` and the final cost.
    """
    scan = np.ascontiguousarray(scan_points, dtype=np.float64)
    if index is None:
        index = TriangleMeshIndex(mesh_vertices, mesh_faces)
    tf = Similarity.identity()
    total_iterations = 0
    if 0 < settings.coarse_points < len(scan):
        rng = np.random.default_rng(settings.seed)
        subset = scan[np.sort(rng.choice(len(scan), settings.coarse_points, replace=False))]
        coarse = _Problem(subset, index)
        tf, _, _, its, _, _ = _lm(coarse, tf, settings, max(settings.rel_tolerance, 1e-7))
        total_iterations += its
    full = _Problem(scan, index)
    tf, cost, cp, its, converged, history = _lm(full, tf, settings, settings.rel_tolerance)
    total_iterations += its
    return RefinementResult(tf, cp, cost, total_iterations, converged, tuple(history))
