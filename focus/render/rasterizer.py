"""Deferred rasterization: a visibility pass, then differentiable barycentric interpolation.

Interface (shared by every backend)
-----------------------------------
``rasterize(screen, triangles, image_size) -> Fragments``

* ``screen``: ``(B, V, 3)`` per-vertex ``(u, v, z)``: image coordinates in pixels (image frame of
  :mod:`focus.render.camera`: row 0 at the top, pixel centres at ``+0.5``) and camera depth in mm
  (positive in front of the camera).
* ``triangles``: ``(F, 3)`` int64 vertex ids, shared by the batch.
* Visibility: for every pixel centre, the nearest (smallest perspective-correct depth) triangle
  that covers it. Back-facing triangles (clockwise in the image, i.e. seen from behind, given
  counter-clockwise-from-outside model triangles) and triangles with a vertex closer than the
  camera's ``near`` are discarded. The choice of triangle carries no gradient.
* Interpolation: barycentrics are recomputed from ``screen`` for the chosen triangle, so gradients
  flow to vertex positions; they are made perspective-correct with the vertices' depths.

Backends: ``"torch"`` (any device, default on CPU) and ``"nvdiffrast"`` (CUDA, optional extra).
They differ only in the visibility pass (which triangle, if any, covers each pixel centre);
:func:`fragments_from_triangle_ids` and :func:`interpolate` are shared, so both give the same
interpolated values for the same triangle ids.

Rules of the torch visibility pass (the reference the tests check against)
---------------------------------------------------------------------------
* Vertex positions are snapped to a grid of ``1 / 2**SUBPIXEL_BITS`` pixel (like a GPU), and edge
  functions are evaluated exactly on that grid, so a pixel centre on an edge shared by two
  triangles is never covered by both or by neither.
* **Fill rule** (top-left rule): a front-facing triangle ``(a, b, c)`` is counter-clockwise on
  the screen (its signed image-frame area ``cross(b - a, c - a)`` is negative since ``v`` points
  down). A pixel centre exactly on its edge ``p -> q`` belongs to it iff the edge runs downwards
  (``q.v > p.v``: a left edge) or is horizontal running left (``q.v == p.v`` and ``q.u < p.u``: a top
  edge). The two triangles sharing an edge run along it in opposite directions, so exactly one
  owns the centre.
* Depth test: smallest perspective-correct depth (float32); exact depth ties go to the smaller
  triangle id.
* Culled: back-facing or degenerate (zero snapped area) triangles; triangles with a vertex at
  depth ``< near`` (mm) or with a non-finite coordinate; triangles with a vertex farther than
  ``GUARD_BAND_PX`` pixels from the image origin (keeps snapped coordinates exact in float32 and
  edge functions exact in float64; such vertices only occur just in front of the camera plane).
* Barycentrics (shared by all backends) use the unsnapped coordinates and are clamped to the
  triangle, so a centre covered only thanks to snapping does not extrapolate.

Silhouette gradients (optional): :func:`antialias` blends colours across silhouette edges in
proportion to where the edge crosses the segment between two neighbouring pixel centres (the
scheme of nvdiffrast's analytic antialiasing, simplified), which makes the image and a soft
coverage mask differentiable with respect to the silhouette position. On the nvdiffrast backend
nvdiffrast's own ``antialias`` is used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from focus.render.grad import contiguous_grad

SUBPIXEL_BITS = 8
_SUB = float(1 << SUBPIXEL_BITS)
_HALF = _SUB / 2.0
#: vertices farther than this from the image origin (pixels) cull their triangle (see module doc).
GUARD_BAND_PX = float(1 << 14)
#: default near plane (mm) when none is given.
DEFAULT_NEAR = 10.0
#: the torch backend processes at most this many (triangle, pixel) candidate pairs at once.
MAX_CANDIDATES = 1 << 20

BACKENDS = ("auto", "torch", "nvdiffrast")


@dataclass(frozen=True)
class Fragments:
    """Result of the visibility pass for a batch of images.

    Attributes:
        tri_id: ``(B, H, W)`` int64 index into ``triangles`` of the visible triangle, ``-1`` where
            no triangle covers the pixel centre.
        bary: ``(B, H, W, 3)`` perspective-correct barycentric coordinates of the pixel centre in
            that triangle (zeros on background); differentiable w.r.t. ``screen``.
        depth: ``(B, H, W)`` camera depth (mm) at the pixel, perspective-correct; 0 on background.
        screen: ``(B, V, 3)`` the ``screen`` tensor the fragments were made from (kept for
            interpolation).
        triangles: ``(F, 3)`` the triangles.
        pix_index: ``(P,)`` int64 flat indices into ``B * H * W`` of the covered pixels (row-major
            ``(b, row, col)``); compact form used by :func:`interpolate`.
        pix_vertex_ids: ``(3, P)`` int64 flat indices into ``B * V`` (``b * V + vertex``) of the
            covering triangle's corners (corner-major).
        pix_bary: ``(3, P)`` the barycentrics of the covered pixels (corner-major, differentiable).
        backend: the backend that made the visibility pass (``"torch"`` or ``"nvdiffrast"``).
        backend_state: backend data needed by :func:`antialias` (nvdiffrast: the raw ``rast``
            output, clip-space positions and int32 triangles); ``None`` for torch.
        near: the near plane (mm) the visibility pass used.
    """

    tri_id: Tensor
    bary: Tensor
    depth: Tensor
    screen: Tensor
    triangles: Tensor
    pix_index: Tensor | None = None
    pix_vertex_ids: Tensor | None = None
    pix_bary: Tensor | None = None
    backend: str = "torch"
    backend_state: Any = None
    near: float = DEFAULT_NEAR

    @property
    def mask(self) -> Tensor:
        """``(B, H, W)`` bool coverage (no gradient)."""
        return self.tri_id >= 0

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.tri_id.shape[1]), int(self.tri_id.shape[2])


# ---------------------------------------------------------------------------------------------
# Input checks and backend choice
# ---------------------------------------------------------------------------------------------
def _check_inputs(screen: Tensor, triangles: Tensor, image_size: tuple[int, int]) -> None:
    if screen.ndim != 3 or screen.shape[-1] != 3:
        raise ValueError(f"screen must be (B, V, 3) (u, v, z) per vertex, got shape {tuple(screen.shape)}")
    if not screen.is_floating_point():
        raise ValueError(f"screen must be a floating-point tensor, got {screen.dtype}")
    if triangles.ndim != 2 or triangles.shape[-1] != 3:
        raise ValueError(f"triangles must be (F, 3) vertex ids, got shape {tuple(triangles.shape)}")
    if triangles.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"triangles must be an integer tensor, got {triangles.dtype}")
    if triangles.device != screen.device:
        raise ValueError(f"triangles are on {triangles.device} but screen is on {screen.device}")
    if len(tuple(image_size)) != 2 or min(int(s) for s in image_size) <= 0:
        raise ValueError(f"image_size must be (H, W) with positive sizes, got {image_size}")
    if triangles.numel() and (int(triangles.min()) < 0 or int(triangles.max()) >= screen.shape[1]):
        raise ValueError(f"triangle vertex ids out of range [0, {screen.shape[1]})")


def resolve_backend(backend: str, device: torch.device) -> str:
    """Name of the backend that ``backend`` means on ``device``.

    ``"auto"``: nvdiffrast on a CUDA device when :mod:`nvdiffrast.torch` imports, else torch.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown rasterizer backend {backend!r}; choose one of {BACKENDS}")
    if backend != "auto":
        return backend
    if torch.device(device).type == "cuda":
        from focus.render import nvdiffrast_backend

        if nvdiffrast_backend.is_available():
            return "nvdiffrast"
    return "torch"


# ---------------------------------------------------------------------------------------------
# Visibility pass, pure PyTorch
# ---------------------------------------------------------------------------------------------
def _snapped_corners(screen: Tensor, triangles: Tensor) -> list[Tensor]:
    """Triangle corners with ``u, v`` snapped to the sub-pixel grid; no gradient.

    Returns 9 float32 columns ``[u0, v0, z0, u1, v1, z1, u2, v2, z2]``, each ``(F * B,)`` with
    entry ``f * B + b`` for triangle ``f`` of image ``b``; ``u, v`` are integers in sub-pixel
    units (exact in float32 inside the guard band), ``z`` the depths (mm).
    """
    s = screen.detach()
    if s.dtype != torch.float32:
        s = s.float()
    per_vertex = s.permute(2, 1, 0).contiguous()  # (3, V, B): one row of B values per vertex
    uv = torch.round(per_vertex[:2] * _SUB)
    comps = (uv[0], uv[1], per_vertex[2])
    tri = triangles.long()
    return [comps[c].index_select(0, tri[:, k]).view(-1) for k in range(3) for c in range(3)]


def _keep_and_bbox(cols: list[Tensor], near: float, image_size: tuple[int, int]):
    """Culling (except facing) and pixel bounding boxes of snapped corners (see :func:`_snapped_corners`).

    Returns ``(keep, first_u, first_v, n_u, n_v, span)``, each ``(T,)``: the keep flags, the first
    pixel column / row whose centre is in the box, the numbers of such columns / rows, and the
    largest box side in sub-pixel units.
    """
    H, W = image_size
    u0, v0, z0, u1, v1, z1, u2, v2, z2 = cols
    lo_u = torch.minimum(torch.minimum(u0, u1), u2)
    hi_u = torch.maximum(torch.maximum(u0, u1), u2)
    lo_v = torch.minimum(torch.minimum(v0, v1), v2)
    hi_v = torch.maximum(torch.maximum(v0, v1), v2)
    lo_z = torch.minimum(torch.minimum(z0, z1), z2)
    hi_z = torch.maximum(torch.maximum(z0, z1), z2)
    lim = GUARD_BAND_PX * _SUB
    keep = (lo_z >= near) & (hi_z < float("inf")) & (lo_u >= -lim) & (lo_v >= -lim) & (hi_u <= lim) & (hi_v <= lim)
    first_u = torch.ceil((lo_u - _HALF) * (1.0 / _SUB)).clamp_(min=0)
    first_v = torch.ceil((lo_v - _HALF) * (1.0 / _SUB)).clamp_(min=0)
    n_u = (torch.floor((hi_u - _HALF) * (1.0 / _SUB)).clamp_(max=W - 1) - first_u + 1).clamp_(min=0)
    n_v = (torch.floor((hi_v - _HALF) * (1.0 / _SUB)).clamp_(max=H - 1) - first_v + 1).clamp_(min=0)
    span = torch.maximum(hi_u - lo_u, hi_v - lo_v)
    return keep, first_u, first_v, n_u, n_v, span


def front_facing(screen: Tensor, triangles: Tensor, near: float = DEFAULT_NEAR) -> Tensor:
    """``(B, F)`` bool: the triangles the rasterizer keeps (front-facing with a non-zero snapped
    area, beyond ``near``, finite, inside the guard band). Both backends discard exactly the others."""
    B, F = screen.shape[0], triangles.shape[0]
    cols = _snapped_corners(screen, triangles)
    keep = _keep_and_bbox(cols, near, (1, 1))[0]
    u0, v0, _, u1, v1, _, u2, v2, _ = (c.double() for c in cols)
    # minus the image-frame cross product: positive for counter-clockwise on screen (front)
    area2 = (v1 - v0) * (u2 - u0) - (u1 - u0) * (v2 - v0)
    return (keep & (area2 > 0)).view(F, B).t().contiguous()


def _edge_functions(cols: list[Tensor], pu: Tensor, pv: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Edge functions ``(w0, w1, w2)``, each ``(n,)``, of candidate pixel centres.

    ``cols`` are the candidates' snapped corners ``[u0, v0, z0, u1, ...]``; ``pu, pv`` the pixel
    centres in sub-pixel units. ``w_k`` belongs to the edge opposite corner ``k``,
    ``a = corner k+1 -> b = corner k+2``; with corners relative to the centre it is
    ``a.v * b.u - a.u * b.v``: positive inside a front-facing triangle, ``w_k / sum(w)`` the
    screen-space barycentric of corner ``k``. Exact in ``dtype`` (float32 when every relative
    coordinate is at most 2**11, else float64).
    """
    du0, dv0 = (cols[0] - pu).to(dtype), (cols[1] - pv).to(dtype)
    du1, dv1 = (cols[3] - pu).to(dtype), (cols[4] - pv).to(dtype)
    du2, dv2 = (cols[6] - pu).to(dtype), (cols[7] - pv).to(dtype)
    return dv1 * du2 - du1 * dv2, dv2 * du0 - du2 * dv0, dv0 * du1 - du0 * dv1


def _owns_ties(cols: list[Tensor], w: Tensor) -> Tensor:
    """``(n,)`` bool: false where a pixel centre lies exactly on an edge the triangle does not own
    (top-left rule: it owns edges ``a -> b`` with ``b.v > a.v``, or ``b.v == a.v`` and ``b.u < a.u``).

    ``cols``: the snapped corner columns; ``w``: ``(n, 3)`` edge functions.
    """
    u = torch.stack([cols[0], cols[3], cols[6]], 1)
    v = torch.stack([cols[1], cols[4], cols[7]], 1)
    d_u = u[:, [2, 0, 1]] - u[:, [1, 2, 0]]
    d_v = v[:, [2, 0, 1]] - v[:, [1, 2, 0]]
    own = (d_v > 0) | ((d_v == 0) & (d_u < 0))
    return ~((w == 0) & ~own).any(1)


def _scan_candidates(
    cols_all: list[Tensor],
    base_all: Tensor,
    fid_all: Tensor,
    counts: Tensor,
    W: int,
    zbuf: Tensor,
    dtype: torch.dtype,
    max_candidates: int,
) -> None:
    """Expand triangles into (triangle, pixel) candidates, test coverage, and z-buffer them.

    Args:
        cols_all: 12 float32 columns ``(T,)``: snapped corners ``[u0, v0, z0, u1, ..., z2]``, first
            pixel column, first pixel row, number of columns of the box.
        base_all: ``(T,)`` int64 ``b * H * W`` of each triangle's image.
        fid_all: ``(T,)`` int64 triangle ids.
        counts: ``(T,)`` int64 candidates (pixel centres in the box) per triangle.
        zbuf: flat ``(B * H * W,)`` int64 keys, updated in place.
    """
    dev = counts.device
    csum = torch.cumsum(counts, 0)
    total = int(csum[-1]) if counts.numel() else 0
    bounds = [0]
    if total > max_candidates:
        cuts = torch.searchsorted(csum, torch.arange(max_candidates, total, max_candidates, device=dev))
        bounds += sorted(set(min(int(c) + 1, counts.numel()) for c in cuts.tolist()))
    if bounds[-1] != counts.numel():
        bounds.append(counts.numel())
    for s0, s1 in zip(bounds[:-1], bounds[1:]):
        if s1 <= s0:
            continue
        cnt = counts[s0:s1]
        n = int(cnt.sum())
        if n == s1 - s0:  # one pixel centre per box (most triangles of a dense mesh): no expansion
            tid = torch.arange(s0, s1, device=dev)
            cols = [c[s0:s1] for c in cols_all]
            px, py = cols[9], cols[10]
        else:
            tid = torch.repeat_interleave(torch.arange(s0, s1, device=dev), cnt, output_size=n)
            cols = [c.index_select(0, tid) for c in cols_all]
            start = (torch.cumsum(cnt, 0) - cnt).to(torch.float32)
            local = torch.arange(n, device=dev, dtype=torch.float32) - start.index_select(0, tid - s0)
            nx = cols[11]
            r = torch.floor((local + 0.5) / nx)
            px = cols[9] + (local - r * nx)
            py = cols[10] + r
        w0, w1, w2 = _edge_functions(cols, px * _SUB + _HALF, py * _SUB + _HALF, dtype)
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & ((w0 + w1 + w2) > 0)
        idx = torch.nonzero(inside).squeeze(1)
        if idx.numel() == 0:
            continue
        w = torch.stack([w0.index_select(0, idx), w1.index_select(0, idx), w2.index_select(0, idx)], dim=1)
        tie = torch.nonzero((w == 0).any(1)).squeeze(1)
        if tie.numel():  # rare: pixel centre exactly on an edge or vertex
            good = torch.ones(idx.numel(), dtype=torch.bool, device=dev)
            good[tie] = _owns_ties(
                [c.index_select(0, idx.index_select(0, tie)).double() for c in cols[:9]], w.index_select(0, tie)
            )
            keep = torch.nonzero(good).squeeze(1)
            idx, w = idx.index_select(0, keep), w.index_select(0, keep)
        wf = w.to(torch.float32)
        z = torch.stack([cols[2].index_select(0, idx), cols[5].index_select(0, idx), cols[8].index_select(0, idx)], 1)
        depth = wf.sum(1) / (wf / z).sum(1)  # perspective-correct, float32
        t_in = tid.index_select(0, idx)
        pix = base_all.index_select(0, t_in) + py.index_select(0, idx).long() * W + px.index_select(0, idx).long()
        key = (depth.view(torch.int32).long() << 32) | fid_all.index_select(0, t_in)
        zbuf.scatter_reduce_(0, pix, key, reduce="amin", include_self=True)


def _visible_triangles_torch(
    screen: Tensor, triangles: Tensor, image_size: tuple[int, int], near: float, max_candidates: int = MAX_CANDIDATES
) -> Tensor:
    """``(B, H, W)`` int64 id of the nearest kept triangle covering each pixel centre, ``-1`` if none.

    Vectorised: every kept triangle's bounding box is expanded into (triangle, pixel) candidate
    pairs (``repeat_interleave``), edge functions are evaluated exactly at the pixel centres
    (float32 for triangles spanning at most 8 pixels, float64 otherwise), back faces fail the
    inside test (all edge functions >= 0 and a positive area), and the nearest inside candidate
    per pixel wins a z-buffer implemented as ``scatter_reduce('amin')`` on an int64 key
    ``float32 depth bits << 32 | triangle id`` (depth > 0, so its bits order like the depths).
    Data are kept as 1D columns: gathers of single values are much faster on the CPU than
    gathers of short rows.
    """
    B = screen.shape[0]
    F = triangles.shape[0]
    H, W = int(image_size[0]), int(image_size[1])
    dev = screen.device
    empty_key = torch.iinfo(torch.int64).max
    zbuf = torch.full((B * H * W,), empty_key, dtype=torch.int64, device=dev)
    if F == 0 or B == 0:
        return torch.full((B, H, W), -1, dtype=torch.int64, device=dev)
    with torch.no_grad():
        cols = _snapped_corners(screen, triangles)  # 9 x (F * B,)
        keep, first_u, first_v, n_u, n_v, span = _keep_and_bbox(cols, near, (H, W))
        counts = (n_u * n_v).long() * keep
        table = cols + [first_u, first_v, n_u]
        small = span <= 2048.0  # every relative coordinate <= 2**11 sub-pixels: float32 is exact
        groups = (
            (small & (counts == 1), torch.float32),  # one candidate each: no expansion needed
            (small & (counts > 1), torch.float32),
            (~small & (counts > 0), torch.float64),
        )
        for group, exact in groups:
            sel = torch.nonzero(group).squeeze(1)
            if sel.numel() == 0:
                continue
            f = torch.div(sel, B, rounding_mode="floor")
            _scan_candidates(
                [c.index_select(0, sel) for c in table],
                (sel - f * B) * (H * W),
                f,
                counts.index_select(0, sel),
                W,
                zbuf,
                exact,
                max_candidates,
            )
    tri_id = torch.where(zbuf == empty_key, torch.full_like(zbuf, -1), zbuf & 0xFFFFFFFF)
    return tri_id.view(B, H, W)


# ---------------------------------------------------------------------------------------------
# Shared: fragments (barycentrics with gradients) from triangle ids, and interpolation
# ---------------------------------------------------------------------------------------------
def pixel_centers(pix_index: Tensor, image_size: tuple[int, int], dtype: torch.dtype) -> Tensor:
    """``(P, 2)`` image coordinates ``(u, v)`` of the centres of flat pixel indices ``(b, row, col)``."""
    H, W = int(image_size[0]), int(image_size[1])
    col = pix_index % W
    row = torch.div(pix_index, W, rounding_mode="floor") % H
    return torch.stack([col, row], dim=1).to(dtype) + 0.5


def _gather_channels(values: Tensor, index: Tensor) -> Tensor:
    """``values`` ``(C, N)``, ``index`` ``(P,)`` -> ``(C, P)`` = ``values[:, index]`` as one flat 1D gather
    (its backward is a flat ``index_add``, much faster on the CPU than gathers of small rows)."""
    C, N = values.shape
    flat = index[None, :] + (torch.arange(C, device=index.device) * N)[:, None]
    return contiguous_grad(values.reshape(-1).index_select(0, flat.reshape(-1)).view(C, -1))


def _scatter_channels(values: Tensor, index: Tensor, size: int) -> Tensor:
    """``values`` ``(C, P)`` -> ``(C, size)`` zeros with ``out[:, index] = values`` (flat 1D copy)."""
    C = values.shape[0]
    flat = index[None, :] + (torch.arange(C, device=index.device) * size)[:, None]
    return values.new_zeros(C * size).index_copy(0, flat.reshape(-1), values.reshape(-1)).view(C, size)


def _barycentrics_cm(u: Tensor, v: Tensor, z: Tensor, pu: Tensor, pv: Tensor) -> tuple[Tensor, Tensor]:
    """Corner-major perspective-correct barycentrics: ``u, v, z`` ``(3, P)`` corner coordinates,
    ``pu, pv`` ``(P,)`` points -> ``(bary (3, P), depth (P,))`` (see :func:`perspective_barycentrics`)."""
    e1u, e1v = u[1] - u[0], v[1] - v[0]
    e2u, e2v = u[2] - u[0], v[2] - v[0]
    qu, qv = pu - u[0], pv - v[0]
    area = e1u * e2v - e1v * e2u
    inv_area = 1.0 / torch.where(area == 0, torch.ones_like(area), area)
    l1 = (qu * e2v - qv * e2u) * inv_area
    l2 = (e1u * qv - e1v * qu) * inv_area
    # Clamped to the triangle: a covered centre can lie (by the 1/512 px vertex snapping of the
    # visibility pass) just outside the unsnapped triangle, which for slivers would extrapolate far.
    wz = torch.stack([1.0 - l1 - l2, l1, l2]).clamp(0.0, 1.0) / z
    inv_depth = wz.sum(0)
    return wz / inv_depth, 1.0 / inv_depth


def perspective_barycentrics(corners: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
    """Perspective-correct barycentrics and depth of image points in triangles (differentiable).

    Args:
        corners: ``(P, 3, 3)`` the triangles' corners ``(u, v, z)``: pixels and camera depth (mm).
        points: ``(P, 2)`` image points ``(u, v)``, pixels.

    Returns:
        ``(bary (P, 3), depth (P,))``: with screen-space barycentrics ``l`` (from 2D edge
        functions) the perspective-correct ones are ``b_k = (l_k / z_k) / sum_j (l_j / z_j)`` and
        the depth is ``1 / sum_j (l_j / z_j)``. ``l`` is clamped to ``[0, 1]`` (points outside a
        triangle get the nearest barycentrics, with no gradient through the clamped ones).
    """
    c = corners.permute(2, 1, 0)  # (3 components, 3 corners, P)
    bary, depth = _barycentrics_cm(c[0], c[1], c[2], points[:, 0], points[:, 1])
    return bary.t(), depth


def fragments_from_triangle_ids(
    screen: Tensor,
    triangles: Tensor,
    tri_id: Tensor,
    backend: str = "torch",
    backend_state: Any = None,
    near: float = DEFAULT_NEAR,
) -> Fragments:
    """Fragments for given per-pixel triangle ids: barycentrics and depth recomputed from ``screen``.

    This is the differentiable half of rasterization shared by all backends: gradients flow from
    ``bary`` / ``depth`` (and from :func:`interpolate`) to ``screen``; ``tri_id`` is a constant.

    Args:
        screen: ``(B, V, 3)`` ``(u, v, z)`` per vertex (pixels, mm).
        triangles: ``(F, 3)`` int64 vertex ids.
        tri_id: ``(B, H, W)`` int64 triangle per pixel, ``-1`` for background.
    """
    B, V, _ = screen.shape
    H, W = int(tri_id.shape[1]), int(tri_id.shape[2])
    flat = tri_id.reshape(-1)
    pix = torch.nonzero(flat >= 0).squeeze(1)
    b = torch.div(pix, H * W, rounding_mode="floor")
    vids = _gather_channels(triangles.long().t(), flat.index_select(0, pix)) + b * V  # (3 corners, P)
    comps = screen.permute(2, 0, 1).reshape(3, B * V)  # rows u, v, z
    u, v, z = _gather_channels(comps, vids.reshape(-1)).view(3, 3, -1)  # each (3 corners, P)
    centres = pixel_centers(pix, (H, W), screen.dtype)
    bary_c, depth_c = _barycentrics_cm(u, v, z, centres[:, 0], centres[:, 1])
    bary = _scatter_channels(bary_c, pix, B * H * W).view(3, B, H, W).permute(1, 2, 3, 0)
    depth = _scatter_channels(depth_c[None], pix, B * H * W).view(B, H, W)
    return Fragments(
        tri_id=tri_id,
        bary=bary,
        depth=depth,
        screen=screen,
        triangles=triangles,
        pix_index=pix,
        pix_vertex_ids=vids,
        pix_bary=bary_c,
        backend=backend,
        backend_state=backend_state,
        near=near,
    )


def _interpolate_cm(attrs_cm: Tensor, fragments: Fragments) -> Tensor:
    """``(C, B * V)`` channel-major attributes -> ``(C, B * H * W)`` interpolated (0 on background)."""
    tri_id = fragments.tri_id
    B, H, W = tri_id.shape
    V = fragments.screen.shape[1]
    pix, vids, bary = fragments.pix_index, fragments.pix_vertex_ids, fragments.pix_bary
    if pix is None or vids is None or bary is None:  # fragments made by hand: derive the compact form
        flat = tri_id.reshape(-1)
        pix = torch.nonzero(flat >= 0).squeeze(1)
        b = torch.div(pix, H * W, rounding_mode="floor")
        vids = (fragments.triangles.long().index_select(0, flat.index_select(0, pix)) + (b * V)[:, None]).t()
        bary = fragments.bary.reshape(-1, 3).index_select(0, pix).t()
    bary = bary.to(attrs_cm.dtype)
    g = _gather_channels(attrs_cm, vids.reshape(-1)).view(attrs_cm.shape[0], 3, -1)  # (C, 3 corners, P)
    out = g[:, 0] * bary[0] + g[:, 1] * bary[1] + g[:, 2] * bary[2]
    return _scatter_channels(out, pix, B * H * W)


def interpolate(attrs: Tensor, fragments: Fragments, channels_first: bool = False) -> Tensor:
    """Interpolate per-vertex attributes at the pixel centres: ``(B, V, C)`` -> ``(B, H, W, C)``
    (or ``(B, C, H, W)`` with ``channels_first``).

    Uses the fragments' perspective-correct barycentrics, so gradients reach both ``attrs`` and the
    ``screen`` positions the fragments were made from. Background pixels are 0.
    """
    B, H, W = fragments.tri_id.shape
    V = fragments.screen.shape[1]
    if attrs.ndim != 3 or attrs.shape[0] != B or attrs.shape[1] != V:
        raise ValueError(f"attrs must be (B={B}, V={V}, C), got {tuple(attrs.shape)}")
    C = attrs.shape[2]
    out = _interpolate_cm(attrs.permute(2, 0, 1).reshape(C, B * V), fragments).view(C, B, H, W)
    return (out.permute(1, 0, 2, 3) if channels_first else out.permute(1, 2, 3, 0)).contiguous()


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def rasterize(
    screen: Tensor, triangles: Tensor, image_size: tuple[int, int], backend: str = "torch", near: float = DEFAULT_NEAR
) -> Fragments:
    """Visibility pass + differentiable barycentrics (see the module docstring for the rules).

    Args:
        screen: ``(B, V, 3)`` ``(u, v, z)`` per vertex: image coordinates (pixels, row 0 at the
            top, pixel centres at ``+0.5``) and camera depth (mm).
        triangles: ``(F, 3)`` int64 vertex ids, counter-clockwise seen from outside.
        image_size: ``(H, W)``.
        backend: ``"torch"``, ``"nvdiffrast"`` (CUDA tensors, needs the ``gpu`` extra) or ``"auto"``
            (nvdiffrast on CUDA when importable, else torch).
        near: triangles with a vertex at camera depth below this (mm) are discarded.

    Returns:
        :class:`Fragments`; ``bary``, ``depth`` and :func:`interpolate` are differentiable w.r.t.
        ``screen``.
    """
    hw = (int(image_size[0]), int(image_size[1]))
    _check_inputs(screen, triangles, hw)
    which = resolve_backend(backend, screen.device)
    if which == "nvdiffrast" and screen.device.type != "cuda":
        raise ValueError(
            f"the nvdiffrast backend needs CUDA tensors, got screen on {screen.device}; use backend='torch' or 'auto'"
        )
    if which == "nvdiffrast":
        from focus.render import nvdiffrast_backend

        try:
            tri_id, state = nvdiffrast_backend.visible_triangles(screen, triangles, hw, near)
        except Exception as exc:  # noqa: BLE001 - the plugin build or the CUDA call failed
            if backend != "auto":
                raise
            warnings.warn(
                f"nvdiffrast failed ({exc.__class__.__name__}: {exc}); falling back to the torch rasterizer",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            return fragments_from_triangle_ids(
                screen, triangles, tri_id, backend="nvdiffrast", backend_state=state, near=near
            )
    tri_id = _visible_triangles_torch(screen, triangles, hw, near)
    return fragments_from_triangle_ids(screen, triangles, tri_id, backend="torch", near=near)


# ---------------------------------------------------------------------------------------------
# Silhouette gradients
# ---------------------------------------------------------------------------------------------
def triangle_edge_neighbors(triangles: Tensor) -> Tensor:
    """``(F, 3)`` int64: the triangle across edge ``k`` (corners ``k+1 -> k+2``), ``-1`` if none.

    Edges shared by more than two triangles (non-manifold) count as having no neighbour.
    """
    tri = triangles.long()
    F = tri.shape[0]
    if F == 0:
        return tri.new_zeros(0, 3)
    a = tri[:, [1, 2, 0]].reshape(-1)
    b = tri[:, [2, 0, 1]].reshape(-1)
    n = int(tri.max()) + 1
    key = torch.minimum(a, b) * n + torch.maximum(a, b)
    ks, order = torch.sort(key, stable=True)
    _, inv, counts = torch.unique_consecutive(ks, return_inverse=True, return_counts=True)
    start = torch.cumsum(counts, 0) - counts
    pos = torch.arange(ks.numel(), device=tri.device) - start[inv]
    pair = counts[inv] == 2
    partner = torch.where(
        pos == 0, torch.arange(ks.numel(), device=tri.device) + 1, torch.arange(ks.numel(), device=tri.device) - 1
    )
    nb = torch.full((3 * F,), -1, dtype=torch.int64, device=tri.device)
    nb[order[pair]] = torch.div(order[partner[pair]], 3, rounding_mode="floor")
    return nb.view(F, 3)


def _linear_barycentrics(corners_uv: Tensor, points: Tensor) -> Tensor:
    """``(P, 3, 2)`` triangle corners, ``(P, 2)`` points -> ``(P, 3)`` screen-space barycentrics."""
    s0 = corners_uv[:, 0]
    e1 = corners_uv[:, 1] - s0
    e2 = corners_uv[:, 2] - s0
    q = points - s0
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    area = torch.where(area == 0, torch.ones_like(area), area)
    l1 = (q[:, 0] * e2[:, 1] - q[:, 1] * e2[:, 0]) / area
    l2 = (e1[:, 0] * q[:, 1] - e1[:, 1] * q[:, 0]) / area
    return torch.stack([1.0 - l1 - l2, l1, l2], dim=1)


def antialias(color: Tensor, fragments: Fragments, edge_neighbors: Tensor | None = None) -> Tensor:
    """Blend colours across silhouette edges so the image depends smoothly on silhouette position.

    Args:
        color: ``(B, H, W, C)`` an image rendered with ``fragments`` (e.g. interpolated colours
            concatenated with the coverage mask, which then becomes a soft coverage).
        fragments: the fragments ``color`` was made from.
        edge_neighbors: optional precomputed :func:`triangle_edge_neighbors` of the triangles.

    Returns:
        ``(B, H, W, C)``. On the nvdiffrast backend this is ``nvdiffrast.torch.antialias``. On the
        torch backend: for every pair of horizontally or vertically adjacent pixel centres
        ``p -> q`` where ``p`` is covered by triangle ``t`` and the segment leaves ``t`` first
        through a silhouette edge (``t`` front-facing, the triangle across the edge missing or
        culled) that is steeper than 45 degrees for horizontal pairs (flatter for vertical ones),
        with ``q`` background or behind ``t``'s plane: let ``alpha`` in ``[0, 1]`` be where the
        edge crosses the segment (from ``p``). If ``alpha > 1/2`` the foreground reaches into
        ``q``'s half-pixel and ``q`` becomes ``q + (alpha - 1/2)(c_p - c_q)``; otherwise ``p``
        becomes ``p + (1/2 - alpha)(c_q - c_p)``. For a straight edge this is the exact box-filter
        coverage along the pair's axis, so a coverage channel sums to the silhouette's area and
        its gradient w.r.t. vertex positions approximates the area's. ``alpha`` is a function of
        the vertex positions (the choice of pairs is not), so gradients reach ``screen``.
    """
    if fragments.backend == "nvdiffrast" and fragments.backend_state is not None:
        from focus.render import nvdiffrast_backend

        return nvdiffrast_backend.antialias(color, fragments.backend_state)
    return _antialias_torch(color, fragments, edge_neighbors)


def _antialias_torch(color: Tensor, fragments: Fragments, edge_neighbors: Tensor | None) -> Tensor:
    tri_id = fragments.tri_id
    B, H, W = tri_id.shape
    C = color.shape[-1]
    if tuple(color.shape[:3]) != (B, H, W):
        raise ValueError(f"color must be (B={B}, H={H}, W={W}, C), got {tuple(color.shape)}")
    screen = fragments.screen
    V = screen.shape[1]
    tri = fragments.triangles.long()
    F = tri.shape[0]
    dev = color.device
    nb = triangle_edge_neighbors(tri) if edge_neighbors is None else edge_neighbors.to(dev).long()
    with torch.no_grad():
        keep = front_facing(screen, tri, fragments.near)  # (B, F)
        nb_keep = keep[:, nb.clamp(min=0).view(-1)].view(B, F, 3) & (nb >= 0)[None]
        sil3 = keep[:, :, None] & ~nb_keep  # (B, F, 3)
        sil = sil3.reshape(-1)  # (B * F * 3,)
        has_sil = torch.cat([sil3.any(-1).reshape(-1), sil3.new_zeros(1)])  # (B * F + 1,), last: none
        flat_t = tri_id.reshape(-1)
        inv_depth = torch.where(
            flat_t >= 0,
            1.0 / fragments.depth.detach().reshape(-1).clamp(min=1e-30),
            torch.zeros((), dtype=screen.dtype, device=dev),
        )
        grid = torch.arange(B * H * W, device=dev).view(B, H, W)
    cf = color.reshape(B * H * W, C)
    out = cf
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        with torch.no_grad():
            ys = slice(max(0, -dy), H - max(0, dy))
            xs = slice(max(0, -dx), W - max(0, dx))
            yq = slice(max(0, dy), H + min(0, dy))
            xq = slice(max(0, dx), W + min(0, dx))
            p = grid[:, ys, xs].reshape(-1)
            q = grid[:, yq, xq].reshape(-1)
            tp = flat_t[p]
            tq = flat_t[q]
            # only triangles with a silhouette edge can start a silhouette crossing
            bp = torch.div(p, H * W, rounding_mode="floor")
            sil_p = has_sil[torch.where(tp >= 0, bp * F + tp, torch.full_like(tp, B * F))]
            cand = torch.nonzero(sil_p & (tp != tq)).squeeze(1)
            if cand.numel() == 0:
                continue
            p, q, t, tq = p[cand], q[cand], tp[cand], tq[cand]
            b = torch.div(p, H * W, rounding_mode="floor")
            vids = tri.index_select(0, t) + (b * V)[:, None]
        corners = screen.reshape(B * V, 3).index_select(0, vids.reshape(-1)).view(-1, 3, 3)
        lp = _linear_barycentrics(corners[..., :2], pixel_centers(p, (H, W), screen.dtype))
        lq = _linear_barycentrics(corners[..., :2], pixel_centers(q, (H, W), screen.dtype))
        with torch.no_grad():
            leaving = lq < 0
            alpha_d = torch.where(leaving, lp / (lp - lq).clamp(min=1e-30), torch.full_like(lp, float("inf")))
            k = alpha_d.argmin(1)
            a_uv = corners[torch.arange(k.numel(), device=dev), (k + 1) % 3, :2]
            b_uv = corners[torch.arange(k.numel(), device=dev), (k + 2) % 3, :2]
            du, dv = (b_uv - a_uv).abs().unbind(-1)
            steep = (dv >= du) if dx != 0 else (du > dv)
            is_sil = sil[(b * F + t) * 3 + k]
            inv_zt = (lq / corners[..., 2]).sum(1)  # 1 / depth of t's plane at q (extrapolated)
            behind = (tq < 0) | (inv_depth[q] < inv_zt)
            ok = torch.nonzero(
                torch.isfinite(alpha_d.gather(1, k[:, None]).squeeze(1)) & steep & is_sil & behind
            ).squeeze(1)
        if ok.numel() == 0:
            continue
        k = k[ok]
        lpk = lp[ok].gather(1, k[:, None]).squeeze(1)
        lqk = lq[ok].gather(1, k[:, None]).squeeze(1)
        alpha = (lpk / (lpk - lqk)).clamp(0.0, 1.0)
        p, q = p[ok], q[ok]
        cp = cf.index_select(0, p)
        cq = cf.index_select(0, q)
        wq = (alpha - 0.5).clamp(min=0.0).to(color.dtype)[:, None]
        wp = (0.5 - alpha).clamp(min=0.0).to(color.dtype)[:, None]
        out = out.index_add(0, q, wq * (cp - cq)).index_add(0, p, wp * (cq - cp))
    return out.view(B, H, W, C)
