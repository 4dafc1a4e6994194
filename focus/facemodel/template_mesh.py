"""The embedded model's mesh topology: a symmetric (azimuth, elevation) grid with a mouth slit.

The template is a regular grid over two angles seen from the head centre (the model-frame
origin): azimuth ``theta`` (about ``+y``, 0 straight ahead along ``+z``, positive towards the
subject's left ``+x``) and elevation ``phi`` (positive up). Every shape of the embedded model
(mean, population samples, expressions) is a map from these angles to 3D points, so vertex ``i``
always means the same anatomical point (dense correspondence by construction).

* Columns are symmetric about ``theta = 0`` (an odd number, so a column lies on the midline);
  they are denser in the middle of the face (a cubic spacing law).
* Rows are denser between the brows and the chin; their elevations are constant across the
  central columns so that the mouth row is a straight line there. Towards the sides the lowest
  and highest rows bend up and down to follow the jaw and the temples.
* The **mouth slit**: the row of the mouth line is duplicated strictly between the two mouth
  corner columns. The original vertices belong to the upper lip (``lip_side = +1``), the copies to
  the lower lip (``lip_side = -1``); in the neutral shape the two copies coincide, so the mesh is
  closed, and an open-jaw expression opens the mouth without stretching triangles across it.
* Triangles are counter-clockwise seen from the front (``+z``): rows go up (``+y``), columns go
  towards ``+x``. Each grid quad is split along a diagonal that mirrors across the midline, so the
  triangulation is mirror-symmetric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from focus.geometry.normals import vertex_normals as _vertex_normals

#: Half-range of the azimuth: the mesh reaches just in front of the ears.
THETA_MAX = np.radians(80.0)
#: Centre-to-edge column spacing ratio is ``1 + 3 * COLUMN_WARP`` (denser in the middle).
COLUMN_WARP = 0.45


@dataclass(frozen=True)
class TemplateMesh:
    """Topology and parametric coordinates of the embedded model's mesh.

    Attributes:
        theta: ``(V,)`` azimuth of each vertex, radians.
        phi: ``(V,)`` elevation of each vertex, radians.
        row: ``(V,)`` grid row (0 = bottom).
        col: ``(V,)`` grid column (0 = subject's right, ``-x``).
        lip_side: ``(V,)`` int8: ``+1`` upper-lip copy of a slit vertex, ``-1`` lower-lip copy,
            ``0`` elsewhere.
        twin: ``(V,)`` int64: for slit vertices the id of the other copy, else the vertex itself.
        mirror: ``(V,)`` int64: id of the mirror-image vertex (``x -> -x``).
        triangles: ``(F, 3)`` int64, counter-clockwise seen from ``+z``.
        mouth_row: grid row of the mouth line (the slit).
        mouth_corner_cols: the two grid columns of the mouth corners (right, left).
        n_rows, n_cols: grid size.
    """

    theta: np.ndarray
    phi: np.ndarray
    row: np.ndarray
    col: np.ndarray
    lip_side: np.ndarray
    twin: np.ndarray
    mirror: np.ndarray
    triangles: np.ndarray
    mouth_row: int
    mouth_corner_cols: tuple[int, int]
    n_rows: int
    n_cols: int

    @property
    def num_vertices(self) -> int:
        return int(self.theta.shape[0])

    def grid_index(self, row: int, col: int, lower: bool = False) -> int:
        """Vertex id at grid ``(row, col)``; ``lower=True`` picks the lower-lip copy on the slit."""
        vid = row * self.n_cols + col
        if lower and self.twin[vid] != vid:
            return int(self.twin[vid])
        return int(vid)


def _column_angles(n_cols: int) -> np.ndarray:
    s = np.linspace(-1.0, 1.0, n_cols)
    s[n_cols // 2] = 0.0
    return THETA_MAX * (s + COLUMN_WARP * s**3) / (1.0 + COLUMN_WARP)


def _density_spaced(lo: float, hi: float, n: int, density: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``n`` values from ``lo`` to ``hi`` (both included) spaced inversely to ``density``."""
    fine = np.linspace(lo, hi, 4001)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (density(fine[1:]) + density(fine[:-1])) * np.diff(fine))])
    return np.interp(np.linspace(0.0, cum[-1], n), cum, fine)


def _row_density(phi: np.ndarray) -> np.ndarray:
    # denser from the chin (-50 deg) to the brows (+25 deg)
    return 1.0 + 0.9 * np.exp(-0.5 * ((phi - np.radians(-10.0)) / np.radians(24.0)) ** 2)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def build_template_mesh(
    resolution: int,
    phi_mouth: float,
    phi_bottom: float = np.radians(-62.0),
    phi_top: float = np.radians(52.0),
    phi_bottom_side: float = np.radians(-36.0),
    phi_top_side: float = np.radians(40.0),
    mouth_corner_theta: float = np.radians(16.0),
) -> TemplateMesh:
    """The grid: ``resolution`` columns (made odd), about ``resolution`` rows.

    Args:
        resolution: number of columns; rows are ``round(0.96 * resolution)``.
        phi_mouth: elevation of the mouth line (radians) in the central columns.
        phi_bottom, phi_top: elevation of the lowest/highest row on the midline.
        phi_bottom_side, phi_top_side: the same at the lateral edge (``|theta| = THETA_MAX``).
        mouth_corner_theta: azimuth of the mouth corners; the nearest columns become the corners.
    """
    if resolution < 21:
        raise ValueError(f"resolution must be at least 21 columns, got {resolution}")
    n_cols = resolution if resolution % 2 == 1 else resolution + 1
    n_rows = max(21, int(round(0.96 * n_cols)))
    theta_c = _column_angles(n_cols)

    # rows on the midline: split at the mouth row so that it is exact
    span = phi_top - phi_bottom
    n_below = int(round((n_rows - 1) * _frac_below(phi_bottom, phi_mouth, phi_top)))
    n_below = min(max(n_below, 4), n_rows - 5)
    below = _density_spaced(phi_bottom, phi_mouth, n_below + 1, _row_density)
    above = _density_spaced(phi_mouth, phi_top, n_rows - n_below, _row_density)
    phi_mid = np.concatenate([below[:-1], above])
    assert phi_mid.shape[0] == n_rows and span > 0

    # lateral bending of the bottom and top rows, keeping the mouth row fixed
    w_bot = _smoothstep((np.abs(theta_c) - np.radians(22.0)) / (THETA_MAX - np.radians(22.0)))
    w_top = (np.abs(theta_c) / THETA_MAX) ** 1.7
    bot = phi_bottom + (phi_bottom_side - phi_bottom) * w_bot
    top = phi_top + (phi_top_side - phi_top) * w_top
    lam_b = (bot - phi_mouth) / (phi_bottom - phi_mouth)
    lam_t = (top - phi_mouth) / (phi_top - phi_mouth)
    rel = phi_mid[:, None] - phi_mouth
    phi_grid = phi_mouth + np.where(rel < 0, rel * lam_b[None, :], rel * lam_t[None, :])
    theta_grid = np.broadcast_to(theta_c[None, :], phi_grid.shape)

    mouth_row = n_below
    c_mid = n_cols // 2
    c_left = int(np.argmin(np.abs(theta_c - mouth_corner_theta)))
    c_left = max(c_left, c_mid + 2)
    c_right = n_cols - 1 - c_left

    n_grid = n_rows * n_cols
    slit_cols = np.arange(c_right + 1, c_left)
    n_slit = slit_cols.shape[0]
    V = n_grid + n_slit
    theta = np.concatenate([theta_grid.ravel(), theta_grid[mouth_row, slit_cols]])
    phi = np.concatenate([phi_grid.ravel(), phi_grid[mouth_row, slit_cols]])
    rows = np.concatenate([np.repeat(np.arange(n_rows), n_cols), np.full(n_slit, mouth_row)])
    cols = np.concatenate([np.tile(np.arange(n_cols), n_rows), slit_cols])
    lip_side = np.zeros(V, dtype=np.int8)
    twin = np.arange(V, dtype=np.int64)
    upper_ids = mouth_row * n_cols + slit_cols
    lower_ids = n_grid + np.arange(n_slit)
    lip_side[upper_ids] = 1
    lip_side[lower_ids] = -1
    twin[upper_ids] = lower_ids
    twin[lower_ids] = upper_ids

    # vertex id lookup for the two rows adjacent to the slit
    idx = np.arange(n_grid).reshape(n_rows, n_cols)
    idx_for_lower_quads = idx.copy()  # used by quads *below* the mouth row
    idx_for_lower_quads[mouth_row, slit_cols] = lower_ids

    tris = []
    for i in range(n_rows - 1):
        ref = idx_for_lower_quads if i == mouth_row - 1 else idx
        a = ref[i, :-1]
        b = ref[i, 1:]
        c = ref[i + 1, 1:]
        d = ref[i + 1, :-1]
        left_half = np.arange(n_cols - 1) >= c_mid  # quad lies at x >= 0
        # mirror-symmetric diagonals: a-c on the right half, b-d on the left half
        t1 = np.where(left_half[:, None], np.stack([a, b, d], 1), np.stack([a, b, c], 1))
        t2 = np.where(left_half[:, None], np.stack([b, c, d], 1), np.stack([a, c, d], 1))
        tris.append(t1)
        tris.append(t2)
    triangles = np.concatenate(tris, 0).astype(np.int64)

    mirror_grid = idx[:, ::-1].ravel()
    mirror = np.concatenate([mirror_grid, np.zeros(n_slit, dtype=np.int64)])
    # slit copies mirror onto slit copies of the mirrored column
    col_to_lower = {int(c): int(l) for c, l in zip(slit_cols, lower_ids)}
    for c, l in zip(slit_cols, lower_ids):
        mirror[l] = col_to_lower[int(n_cols - 1 - c)]
    arrays = dict(
        theta=theta.astype(np.float64),
        phi=phi.astype(np.float64),
        row=rows.astype(np.int64),
        col=cols.astype(np.int64),
        lip_side=lip_side,
        twin=twin,
        mirror=mirror.astype(np.int64),
        triangles=triangles,
    )
    for a in arrays.values():
        a.flags.writeable = False  # templates are cached and shared: read-only
    return TemplateMesh(
        **arrays,
        mouth_row=int(mouth_row),
        mouth_corner_cols=(int(c_right), int(c_left)),
        n_rows=int(n_rows),
        n_cols=int(n_cols),
    )


def _frac_below(lo: float, mid: float, hi: float) -> float:
    fine = np.linspace(lo, hi, 2001)
    dens = _row_density(fine)
    cum = np.cumsum(dens)
    return float(np.interp(mid, fine, cum) / cum[-1])


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals ``(V, 3)``, float64, of a mesh (CCW triangles face out):
    :func:`focus.geometry.normals.vertex_normals` on the vertices in float64."""
    return _vertex_normals(np.asarray(vertices, dtype=np.float64), triangles)
