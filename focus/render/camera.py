"""Camera conventions: **the one place where every coordinate frame of the project is defined.**

Frames
------
* **Model frame** (:mod:`focus.facemodel.model`): mm, ``+x`` subject's left (image right when
  frontal), ``+y`` up, ``+z`` out of the face towards the viewer.
* **World frame**: the posed face, ``v_world = R @ v_model + t`` with ``R`` from
  :func:`euler_to_matrix` and ``t`` the predicted translation (mm). Same axes as the model frame.
* **Camera frame** (OpenCV convention): mm, ``+x`` right, ``+y`` **down**, ``+z`` forward (depth).
  The camera sits at ``(0, 0, distance)`` in the world frame looking along world ``-z``, so
  ``x_cam = x_world``, ``y_cam = -y_world``, ``z_cam = distance - z_world``.
* **Image frame**: continuous pixel coordinates ``(u, v)``, ``u`` to the right, ``v`` **down**,
  ``(0, 0)`` the top-left corner of the top-left pixel; pixel ``(row i, col j)`` covers
  ``[j, j+1) x [i, i+1)`` and its centre is ``(j + 0.5, i + 0.5)``. **Row 0 is the top of the image
  in every tensor the project exposes.** The principal point is the image centre ``(W/2, H/2)``.
  ``u = f * x_cam / z_cam + W/2``, ``v = f * y_cam / z_cam + H/2``.

Paper conventions (Deep3DFaceRecon / FOCUS): 224 x 224 image, focal 1015 px, face 1000 mm from
the camera (field of view about 12.6 degrees). :meth:`Camera.for_image_size` scales the focal
length with the image size so that the face fills the same fraction of the frame.

Euler angles are ``(pitch, yaw, roll)`` in radians about the model's x, y and z axes, composed as
``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (pitch applied first), each a right-hand-rule rotation.
Positive yaw turns the nose towards image right (the subject's left); positive pitch tilts the
nose down in the image; positive roll turns the face anticlockwise on screen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PAPER_IMAGE_SIZE = 224
PAPER_FOCAL = 1015.0
PAPER_DISTANCE_MM = 1000.0


@dataclass(frozen=True)
class Camera:
    """Pinhole camera with principal point at the image centre.

    Attributes:
        image_size: ``(H, W)`` in pixels.
        focal: focal length in pixels (same for x and y).
        distance: default distance of the model origin from the camera, mm.
        near: triangles with any vertex closer than this (mm, camera z) are discarded.
    """

    image_size: tuple[int, int] = (PAPER_IMAGE_SIZE, PAPER_IMAGE_SIZE)
    focal: float = PAPER_FOCAL
    distance: float = PAPER_DISTANCE_MM
    near: float = 10.0

    @classmethod
    def for_image_size(
        cls, size: int | tuple[int, int], distance: float = PAPER_DISTANCE_MM, focal_at_224: float = PAPER_FOCAL
    ) -> Camera:
        """Paper camera scaled to ``size`` pixels (focal scales with the image width)."""
        hw = (size, size) if isinstance(size, int) else tuple(size)
        return cls(image_size=hw, focal=focal_at_224 * hw[1] / PAPER_IMAGE_SIZE, distance=distance)

    @property
    def height(self) -> int:
        return int(self.image_size[0])

    @property
    def width(self) -> int:
        return int(self.image_size[1])

    def world_to_camera(self, v_world: Tensor) -> Tensor:
        """``(B, V, 3)`` world frame -> camera frame (OpenCV axes), mm."""
        x, y, z = v_world.unbind(-1)
        return torch.stack([x, -y, self.distance - z], dim=-1)

    def project(self, v_cam: Tensor) -> Tensor:
        """``(B, V, 3)`` camera frame -> ``(B, V, 2)`` image coordinates ``(u, v)`` in pixels."""
        z = v_cam[..., 2:3]
        uv = self.focal * v_cam[..., :2] / z
        centre = torch.tensor([self.width / 2.0, self.height / 2.0], dtype=v_cam.dtype, device=v_cam.device)
        return uv + centre

    def to_screen(self, v_cam: Tensor) -> Tensor:
        """``(B, V, 3)`` camera frame -> ``(B, V, 3)`` ``(u, v, z_cam)``: pixels and depth in mm."""
        return torch.cat([self.project(v_cam), v_cam[..., 2:3]], dim=-1)


def euler_to_matrix(angles: Tensor) -> Tensor:
    """Rotation matrices ``(B, 3, 3)`` from ``(B, 3)`` angles ``(pitch, yaw, roll)`` in radians.

    ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``; apply as ``v' = v @ R.transpose(-1, -2)``.
    """
    pitch, yaw, roll = angles.unbind(-1)
    one, zero = torch.ones_like(pitch), torch.zeros_like(pitch)
    cx, sx = torch.cos(pitch), torch.sin(pitch)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cz, sz = torch.cos(roll), torch.sin(roll)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def pose_vertices(v_model: Tensor, angles: Tensor, trans: Tensor) -> Tensor:
    """``(B, V, 3)`` model frame -> world frame: ``R(angles) v + trans`` (trans ``(B, 3)``, mm)."""
    rot = euler_to_matrix(angles)
    return v_model @ rot.transpose(-1, -2) + trans[:, None, :]
