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
They differ only in the visibility pass; :func:`interpolate` is shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


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
    """

    tri_id: Tensor
    bary: Tensor
    depth: Tensor
    screen: Tensor
    triangles: Tensor

    @property
    def mask(self) -> Tensor:
        """``(B, H, W)`` bool coverage (no gradient)."""
        return self.tri_id >= 0
