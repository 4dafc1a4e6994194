"""NoW-like "scans": a subject's true neutral shape, remeshed finer, with fine geometric detail the
model cannot represent, over a larger region than the model's mesh.

Steps (all deterministic from the generator):

1. **Extend** the mesh beyond its outer border: rings of new vertices continue the surface
   outwards, turning gradually away from the viewer (as a head curves back towards the ears,
   over the top and under the chin). ``extend_mm`` is how far.
2. **Remesh finer**: ``subdivisions`` rounds of midpoint subdivision (each splits every triangle
   into four; the original vertices keep their ids).
3. **Fine detail**: every vertex moves along its normal by a sum of random 3D sinusoids with
   periods of a few millimetres (skin folds, pores at scan resolution) of total std
   ``detail_mm``.
4. **Frame**: optionally a random rigid motion, as real scans are not in the model's frame (the
   scorer aligns with the 7 landmarks anyway).

The 7 NoW landmarks are the displaced positions of the model's NoW landmark vertices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focus.config import nonnegative, param, positive
from focus.geometry.normals import vertex_normals


@dataclass(frozen=True)
class ScanSettings:
    """How NoW-like scans are made (``params.yaml``: ``synth.now.scan``).

    Attributes:
        subdivisions: rounds of 1-to-4 midpoint subdivision.
        extend_mm: how far the surface is continued beyond the model mesh's outer border.
        extend_rings: rings of vertices in the extension.
        extend_turn_deg: total turn of the extension away from the viewer.
        detail_mm: std of the fine normal displacement.
        detail_min_period_mm, detail_max_period_mm: range of the detail's wavelengths.
        detail_waves: number of random sinusoids.
        random_pose: move the scan by a random rigid motion (rotation up to ``max_rotation_deg``,
            translation up to ``max_translation_mm``).
    """

    subdivisions: int = param(1, ge=0, le=4)
    extend_mm: float = nonnegative(20.0)
    extend_rings: int = param(4, ge=0)
    extend_turn_deg: float = nonnegative(50.0)
    detail_mm: float = nonnegative(0.25)
    detail_min_period_mm: float = positive(2.0)
    detail_max_period_mm: float = positive(12.0)
    detail_waves: int = param(48, ge=0)
    random_pose: bool = True
    max_rotation_deg: float = nonnegative(10.0)
    max_translation_mm: float = nonnegative(50.0)


def boundary_loops(f: np.ndarray) -> list[np.ndarray]:
    """Closed loops of boundary vertices, each ordered along the boundary edges' direction (as
    they appear in their one triangle), longest (by vertex count) first."""
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = np.sort(e, axis=1)
    _, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    bnd = e[counts[inv.reshape(-1)] == 1]
    nxt = {int(a): int(b) for a, b in bnd}
    loops, seen = [], set()
    for start in list(nxt):
        if start in seen:
            continue
        loop, cur = [], start
        while cur not in seen and cur in nxt:
            seen.add(cur)
            loop.append(cur)
            cur = nxt[cur]
        if cur == start and len(loop) >= 3:
            loops.append(np.array(loop))
    return sorted(loops, key=len, reverse=True)


def extend_border(
    v: np.ndarray, f: np.ndarray, distance: float, rings: int, turn_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Continue the mesh beyond its longest boundary loop by ``rings`` rings (``distance`` mm)."""
    loops = boundary_loops(f)
    if not loops or rings <= 0 or distance <= 0:
        return v, f
    loop = loops[0]
    n = len(loop)
    normals = vertex_normals(v, f)[loop]
    p = v[loop]
    tangent = np.roll(p, -1, axis=0) - np.roll(p, 1, axis=0)
    out = np.cross(tangent, normals)
    # outwards = away from the mesh: compare with the direction from the mesh centroid
    # (per vertex, via the neighbours inside the mesh)
    inside = _inner_neighbour_mean(v, f, loop)
    sign = np.sign(((p - inside) * out).sum(1))
    sign[sign == 0] = 1
    out = out * sign[:, None]
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    for _ in range(3):  # smooth the directions along the loop
        out = (np.roll(out, 1, axis=0) + 2 * out + np.roll(out, -1, axis=0)) / 4
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    step = distance / rings
    turn = np.radians(turn_deg) / rings
    verts = [v]
    faces = [f]
    prev_ids = loop
    cur = p.copy()
    nid = len(v)
    for r in range(1, rings + 1):
        ang = turn * (r - 0.5)
        d = out * np.cos(ang) - normals * np.sin(ang)
        cur = cur + step * d
        ids = np.arange(nid, nid + n)
        nid += n
        verts.append(cur.copy())
        a, b = prev_ids, np.roll(prev_ids, -1)
        a2, b2 = ids, np.roll(ids, -1)
        # boundary edge a -> b belongs to an existing triangle; new triangles use b -> a
        faces.append(np.stack([b, a, a2], 1))
        faces.append(np.stack([b, a2, b2], 1))
        prev_ids = ids
    return np.concatenate(verts), np.concatenate(faces)


def _inner_neighbour_mean(v: np.ndarray, f: np.ndarray, loop: np.ndarray) -> np.ndarray:
    on_loop = np.zeros(len(v), bool)
    on_loop[loop] = True
    acc = np.zeros((len(v), 3))
    cnt = np.zeros(len(v))
    for i in range(3):
        for j in range(3):
            if i != j:
                a, b = f[:, i], f[:, j]
                np.add.at(acc, a, v[b])
                np.add.at(cnt, a, 1)
    mean = acc / np.maximum(cnt, 1)[:, None]
    return mean[loop]


def fine_detail(rng: np.random.Generator, v: np.ndarray, f: np.ndarray, s: ScanSettings) -> np.ndarray:
    """Displace vertices along their normals by random 3D sinusoids (total std ``detail_mm``)."""
    if s.detail_mm <= 0 or s.detail_waves <= 0:
        return v
    k = s.detail_waves
    dirs = rng.normal(size=(k, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    periods = np.exp(rng.uniform(np.log(s.detail_min_period_mm), np.log(s.detail_max_period_mm), k))
    phase = rng.uniform(0, 2 * np.pi, k)
    amp = periods / periods.sum()  # longer waves a little stronger
    h = (np.sin(v @ (dirs * (2 * np.pi / periods)[:, None]).T + phase) * amp).sum(1)
    h = h / max(float(h.std()), 1e-12) * s.detail_mm
    return v + vertex_normals(v, f) * h[:, None]


def random_rigid(rng: np.random.Generator, s: ScanSettings) -> tuple[np.ndarray, np.ndarray]:
    """A random rotation ``(3, 3)`` (axis uniform, angle up to the limit) and translation ``(3,)``."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    a = np.radians(rng.uniform(0, s.max_rotation_deg))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    R = np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K
    t = rng.uniform(-s.max_translation_mm, s.max_translation_mm, 3)
    return R, t


def make_scan(
    rng: np.random.Generator,
    vertices: np.ndarray,
    triangles: np.ndarray,
    now_ids: np.ndarray,
    s: ScanSettings = ScanSettings(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A NoW-like scan of a neutral face.

    Args:
        vertices: ``(V, 3)`` the true neutral shape (model frame, mm).
        triangles: ``(F, 3)`` the model's triangles.
        now_ids: ``(7,)`` vertex ids of the NoW landmarks.

    Returns:
        ``(scan_vertices (V', 3), scan_faces (F', 3), scan_landmarks (7, 3))``, mm.
    """
    from trimesh.remesh import subdivide

    v = np.asarray(vertices, np.float64)
    f = np.asarray(triangles, np.int64)
    v, f = extend_border(v, f, s.extend_mm, s.extend_rings, s.extend_turn_deg)
    for _ in range(max(0, s.subdivisions)):
        v, f = subdivide(v, f)  # keeps the ids of existing vertices
    v = fine_detail(rng, v, f, s)
    lmk = v[np.asarray(now_ids, np.int64)]
    if s.random_pose:
        R, t = random_rigid(rng, s)
        v = v @ R.T + t
        lmk = lmk @ R.T + t
    return v, f, lmk
