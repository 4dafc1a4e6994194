"""Face model + coefficients -> shaded image, coverage mask and landmarks (the decoder).

Pipeline of :class:`FaceRenderer` (frames in :mod:`focus.render.camera`)::

    coeffs -> shape (model frame, mm) = mean + id/exp bases
           -> world frame: R(pitch, yaw, roll) v + trans          (pose_vertices)
           -> camera frame -> screen (u, v, z_cam)                (Camera)
           -> rasterize (visibility, no gradient) + perspective-correct barycentrics
           -> vertex normals (world frame) -> SH irradiance -> vertex colour = albedo x irradiance
           -> image = interpolated vertex colours over a black background

:func:`render_mesh` is the lower-level entry point for any posed mesh (scans, extra geometry);
:meth:`FaceRenderer.interpolate_attributes` interpolates arbitrary per-vertex attributes with the
fragments of a render (e.g. model-frame coordinates for painting synthetic textures).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from focus.coeffs import CoeffLayout, Coeffs
from focus.config import check_fields, param, positive
from focus.facemodel.model import FaceModel
from focus.render.camera import Camera, pose_vertices
from focus.render.rasterizer import Fragments, antialias, interpolate, rasterize, triangle_edge_neighbors
from focus.render.shading import sh_irradiance_channels_first, vertex_normals

#: The image sizes the networks take, px: the U-Net halves the image ``depth`` times (4 by default)
#: and the ResNet encoder 5 times; larger sizes than the maximum are a typo, not a plan.
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 4096
BACKENDS = ("auto", "torch", "nvdiffrast")


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

    image_size: int = param(224, ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE)
    backend: str = param("auto", choices=BACKENDS)
    silhouette_gradients: bool = False
    ambient: float = param(0.8, ge=0)
    distance: float = positive(1000.0)
    focal_at_224: float = positive(1015.0)

    def __post_init__(self) -> None:
        check_fields(self)

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


def render_mesh(
    vertices_world: Tensor,
    triangles: Tensor,
    albedo: Tensor,
    sh: Tensor,
    camera: Camera,
    backend: str = "auto",
    ambient: float = 0.8,
    silhouette_gradients: bool = False,
    landmark_ids: Tensor | None = None,
    edge_neighbors: Tensor | None = None,
) -> RenderOutput:
    """Render posed meshes with per-vertex albedo under SH light.

    Args:
        vertices_world: ``(B, V, 3)`` world frame, mm.
        triangles: ``(F, 3)`` int64, counter-clockwise seen from outside.
        albedo: ``(B, V, 3)`` RGB albedo per vertex.
        sh: ``(B, 27)`` SH coefficients (see :mod:`focus.render.shading`), added to ``ambient``.
        camera: the :class:`Camera` (image size, focal, distance, near plane).
        backend: rasterizer backend (``"auto"``, ``"torch"``, ``"nvdiffrast"``).
        silhouette_gradients: apply :func:`focus.render.rasterizer.antialias` to image and mask.
        landmark_ids: ``(L,)`` vertex ids whose projections go to ``landmarks`` (``(B, 0, 2)``
            if ``None``).
        edge_neighbors: optional precomputed ``triangle_edge_neighbors(triangles)`` (speeds up
            silhouette gradients on the torch backend).
    """
    B, V, _ = vertices_world.shape
    if albedo.shape != (B, V, 3):
        raise ValueError(f"albedo must be (B={B}, V={V}, 3), got {tuple(albedo.shape)}")
    v_cam = camera.world_to_camera(vertices_world)
    screen = camera.to_screen(v_cam)
    fragments = rasterize(screen, triangles, camera.image_size, backend=backend, near=camera.near)
    normals = vertex_normals(vertices_world, triangles)
    # channel-first (B, 3, V) internally: one matrix product for the light, fast gathers
    albedo_cf = albedo.transpose(1, 2)
    colors_cf = albedo_cf * sh_irradiance_channels_first(normals, sh, ambient).to(albedo.dtype)
    colors = colors_cf.transpose(1, 2)  # (B, V, 3) view
    img = interpolate(colors, fragments, channels_first=True)  # (B, 3, H, W)
    mask = fragments.mask.unsqueeze(1).to(img.dtype)
    if silhouette_gradients:
        both = antialias(torch.cat([img, mask], dim=1).permute(0, 2, 3, 1), fragments, edge_neighbors=edge_neighbors)
        img, mask = both[..., :3].permute(0, 3, 1, 2).contiguous(), both[..., 3:].permute(0, 3, 1, 2).contiguous()
    if landmark_ids is None:
        landmarks = screen.new_zeros(B, 0, 2)
    else:
        landmarks = screen[:, landmark_ids.long(), :2]
    return RenderOutput(
        image=img,
        mask=mask,
        landmarks=landmarks,
        vertices_world=vertices_world,
        screen=screen,
        normals=normals,
        albedo=albedo,
        vertex_colors=colors,
        fragments=fragments,
    )


class FaceRenderer(torch.nn.Module):
    """The differentiable decoder: ``FaceRenderer(model, settings)(coeffs) -> RenderOutput``.

    The model's tensors are registered as (non-persistent) buffers, so ``.to(device)`` /
    ``.double()`` move them and checkpoints of networks that hold a renderer stay small.
    """

    def __init__(self, model: FaceModel, settings: RenderSettings = RenderSettings()) -> None:
        super().__init__()
        self.settings = settings
        self.camera = settings.camera()
        self.layout = CoeffLayout.for_model(model)
        self.model_name = model.name
        V = model.num_vertices
        self.num_vertices = V
        # (K_id + K_exp, V * 3) and (K_alb, V * 3): one matrix product per forward
        shape_basis = torch.cat([model.id_basis, model.exp_basis], dim=0).reshape(-1, V * 3)
        self.register_buffer("mean_shape", model.mean_shape.reshape(1, V * 3).clone(), persistent=False)
        self.register_buffer("shape_basis", shape_basis.contiguous(), persistent=False)
        # albedo stored channel-first ((3, V) per mode) so the shading works on (B, 3, V) tensors
        self.register_buffer("mean_albedo", model.mean_albedo.t().reshape(1, 3 * V).clone(), persistent=False)
        self.register_buffer(
            "albedo_basis", model.albedo_basis.transpose(1, 2).reshape(-1, 3 * V).contiguous(), persistent=False
        )
        self.register_buffer("triangles", model.triangles.long().clone(), persistent=False)
        self.register_buffer("landmarks68", model.landmarks68.long().clone(), persistent=False)
        nb = triangle_edge_neighbors(self.triangles) if settings.silhouette_gradients else None
        self.register_buffer("edge_neighbors", nb, persistent=False)

    # ------------------------------------------------------------------ pieces
    def split(self, coeffs: Coeffs | Tensor) -> Coeffs:
        """``(B, dim)`` tensor or :class:`Coeffs` -> :class:`Coeffs` (sizes checked)."""
        c = self.layout.split(coeffs) if isinstance(coeffs, Tensor) else coeffs
        expect = dict(zip(("id", "exp", "albedo", "angles", "trans", "sh"), self.layout.sizes))
        for name, val in c.as_dict().items():
            if val.ndim != 2 or val.shape[1] != expect[name]:
                raise ValueError(f"coefficient part {name!r} must be (B, {expect[name]}), got {tuple(val.shape)}")
        return c

    def shape(self, id_coeffs: Tensor, exp_coeffs: Tensor) -> Tensor:
        """``(B, V, 3)`` model-frame vertices (mm) from ``(B, K_id)`` and ``(B, K_exp)``."""
        w = torch.cat([id_coeffs, exp_coeffs], dim=1).to(self.shape_basis.dtype)
        return torch.addmm(self.mean_shape, w, self.shape_basis).view(-1, self.num_vertices, 3)

    def albedo(self, albedo_coeffs: Tensor) -> Tensor:
        """``(B, V, 3)`` per-vertex albedo from ``(B, K_alb)`` (a transposed view of ``(B, 3, V)``)."""
        w = albedo_coeffs.to(self.albedo_basis.dtype)
        return torch.addmm(self.mean_albedo, w, self.albedo_basis).view(-1, 3, self.num_vertices).transpose(1, 2)

    def vertices_world(self, coeffs: Coeffs | Tensor) -> Tensor:
        """``(B, V, 3)`` posed vertices, world frame, mm."""
        c = self.split(coeffs)
        return pose_vertices(self.shape(c.id, c.exp), c.angles, c.trans)

    # ------------------------------------------------------------------ rendering
    def forward(self, coeffs: Coeffs | Tensor) -> RenderOutput:
        c = self.split(coeffs)
        v_world = pose_vertices(
            self.shape(c.id, c.exp), c.angles.to(self.shape_basis.dtype), c.trans.to(self.shape_basis.dtype)
        )
        return self.render_vertices(v_world, self.albedo(c.albedo), c.sh, landmark_ids=self.landmarks68)

    def render_vertices(
        self,
        vertices_world: Tensor,
        albedo: Tensor,
        sh: Tensor,
        triangles: Tensor | None = None,
        landmark_ids: Tensor | None = None,
    ) -> RenderOutput:
        """Render given posed vertices ``(B, V, 3)`` (world frame, mm) with per-vertex albedo
        ``(B, V, 3)`` and SH ``(B, 27)``, using this renderer's camera and settings.

        ``triangles`` defaults to the face model's; pass others to render scans or extra geometry
        (``landmark_ids`` then defaults to none).
        """
        edge_neighbors = None
        if triangles is None:
            triangles = self.triangles
            edge_neighbors = self.edge_neighbors
            if landmark_ids is None and vertices_world.shape[1] == self.num_vertices:
                landmark_ids = self.landmarks68
        s = self.settings
        return render_mesh(
            vertices_world,
            triangles,
            albedo,
            sh.to(albedo.dtype),
            self.camera,
            backend=s.backend,
            ambient=s.ambient,
            silhouette_gradients=s.silhouette_gradients,
            landmark_ids=landmark_ids,
            edge_neighbors=edge_neighbors,
        )

    @staticmethod
    def interpolate_attributes(attrs: Tensor, fragments: Fragments) -> Tensor:
        """Interpolate per-vertex attributes ``(B, V, C)`` -> ``(B, C, H, W)`` (0 on background).

        Differentiable w.r.t. ``attrs`` and the screen positions of the render.
        """
        return interpolate(attrs, fragments, channels_first=True)
