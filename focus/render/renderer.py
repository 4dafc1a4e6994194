"""Face model + coefficients -> shaded image, coverage mask and landmarks (the decoder).

STUB: the public API below is fixed; the implementation is being written.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from focus.coeffs import Coeffs, CoeffLayout
from focus.facemodel.model import FaceModel
from focus.render.camera import Camera
from focus.render.rasterizer import Fragments


@dataclass(frozen=True)
class RenderSettings:
    """How faces are rendered (built from ``params.yaml``'s ``render`` group).

    Attributes:
        image_size: square output size in pixels.
        backend: ``"auto"`` (nvdiffrast on CUDA when installed, else torch), ``"torch"`` or
            ``"nvdiffrast"``.
        silhouette_gradients: soft coverage / antialiasing gradients at the silhouette (off by
            default, as in the anchors).
        ambient: default ambient light added to each colour's constant SH coefficient.
        distance: default camera distance, mm.
        focal_at_224: focal length in pixels at 224 x 224 (scaled with ``image_size``).
    """

    image_size: int = 224
    backend: str = "auto"
    silhouette_gradients: bool = False
    ambient: float = 0.8
    distance: float = 1000.0
    focal_at_224: float = 1015.0

    def camera(self) -> Camera:
        return Camera.for_image_size(self.image_size, distance=self.distance, focal_at_224=self.focal_at_224)


@dataclass(frozen=True)
class RenderOutput:
    """Everything one forward pass of the decoder produces.

    Attributes:
        image: ``(B, 3, H, W)`` shaded face over a black background, RGB (not clamped).
        mask: ``(B, 1, H, W)`` float coverage ``m_r`` (1 where a face triangle covers the pixel;
            no gradient unless silhouette gradients are on).
        landmarks: ``(B, 68, 2)`` projected model landmarks, pixels (image frame).
        vertices_world: ``(B, V, 3)`` posed vertices, world frame, mm.
        screen: ``(B, V, 3)`` ``(u, v, z_cam)`` per vertex.
        normals: ``(B, V, 3)`` unit vertex normals, world frame.
        albedo: ``(B, V, 3)`` per-vertex albedo.
        vertex_colors: ``(B, V, 3)`` albedo x SH irradiance.
        fragments: the rasterizer's :class:`Fragments` (for interpolating further attributes).
    """

    image: Tensor
    mask: Tensor
    landmarks: Tensor
    vertices_world: Tensor
    screen: Tensor
    normals: Tensor
    albedo: Tensor
    vertex_colors: Tensor
    fragments: Fragments


class FaceRenderer(torch.nn.Module):
    """The differentiable decoder: ``FaceRenderer(model, settings)(coeffs) -> RenderOutput``."""

    def __init__(self, model: FaceModel, settings: RenderSettings = RenderSettings()) -> None:
        super().__init__()
        raise NotImplementedError

    def forward(self, coeffs: Coeffs | Tensor) -> RenderOutput:
        raise NotImplementedError
