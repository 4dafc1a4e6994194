"""Vertex normals and Lambertian spherical-harmonics (SH) shading, as in Deep3DFaceRecon.

Frame: normals and SH are evaluated in the **world frame** of :mod:`focus.render.camera`
(``+x`` image right, ``+y`` up, ``+z`` towards the camera). This is the frame Deep3DFaceRecon
calls camera space (rotated but not yet flipped into the OpenCV camera), so SH coefficients mean
the same as theirs.

SH irradiance (3 bands, 9 coefficients per colour channel, 27 in all)::

    E_c(n) = sum_k (gamma[c, k] + ambient * [k == 0]) * Y_k(n)

with ``gamma`` the ``(B, 27)`` coefficients read colour-major (``gamma.view(B, 3, 9)``: 9 for R,
then G, then B) and the basis pre-multiplied by the Lambertian band factors
``a = (pi, 2 pi / sqrt(3), 2 pi / sqrt(8))`` and the SH constants
``c = (1 / sqrt(4 pi), sqrt(3) / sqrt(4 pi), 3 sqrt(5) / sqrt(12 pi))``::

    Y_0 = a0 c0                      Y_4 =  a2 c2 x y
    Y_1 = -a1 c1 y                   Y_5 = -a2 c2 y z
    Y_2 =  a1 c1 z                   Y_6 =  a2 c2 / (2 sqrt 3) (3 z^2 - 1)
    Y_3 = -a1 c1 x                   Y_7 = -a2 c2 x z
                                     Y_8 =  a2 c2 / 2 (x^2 - y^2)

(signs and order as in Deep3DFaceRecon). With all coefficients zero the irradiance is the
constant ``ambient * a0 * c0`` (about 0.709 for the default ambient 0.8): a uniformly lit face.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from focus.render.grad import contiguous_grad

SH_BAND_FACTORS = (math.pi, 2.0 * math.pi / math.sqrt(3.0), 2.0 * math.pi / math.sqrt(8.0))
SH_CONSTANTS = (
    1.0 / math.sqrt(4.0 * math.pi),
    math.sqrt(3.0) / math.sqrt(4.0 * math.pi),
    3.0 * math.sqrt(5.0) / math.sqrt(12.0 * math.pi),
)
N_SH_PER_CHANNEL = 9
DEFAULT_AMBIENT = 0.8


def _face_normal_components(vertices: Tensor, triangles: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Components ``(nx, ny, nz)``, each ``(F, B)``, of ``(v1 - v0) x (v2 - v0)``.

    Works on one contiguous ``(V, B)`` table per coordinate: gathers of short contiguous rows and
    arithmetic on contiguous tensors are much faster on the CPU than on ``(..., 3)`` layouts.
    """
    tri = triangles.long()
    px, py, pz = vertices.permute(2, 1, 0).contiguous()  # (V, B) each
    x0, x1, x2 = (px.index_select(0, tri[:, k]) for k in range(3))
    y0, y1, y2 = (py.index_select(0, tri[:, k]) for k in range(3))
    z0, z1, z2 = (pz.index_select(0, tri[:, k]) for k in range(3))
    ax, ay, az = x1 - x0, y1 - y0, z1 - z0
    bx, by, bz = x2 - x0, y2 - y0, z2 - z0
    return ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx


def face_normals(vertices: Tensor, triangles: Tensor) -> Tensor:
    """Unnormalised face normals ``(B, F, 3)``: ``(v1 - v0) x (v2 - v0)``, length = twice the area.

    Args:
        vertices: ``(B, V, 3)`` in any right-handed frame (normals come out in the same frame).
        triangles: ``(F, 3)`` int64, counter-clockwise seen from outside (normals point outwards).
    """
    return torch.stack(_face_normal_components(vertices, triangles), dim=-1).transpose(0, 1)


def vertex_normals(vertices: Tensor, triangles: Tensor, eps: float = 1e-12) -> Tensor:
    """Unit area-weighted vertex normals ``(B, V, 3)`` (sum of adjacent unnormalised face normals).

    Vertices in no triangle get a zero normal. (The result is a transposed view of a
    ``(V, B, 3)`` tensor.)
    """
    V = vertices.shape[1]
    tri = triangles.long()
    acc = []
    for n in _face_normal_components(vertices, triangles):
        a = n.new_zeros(V, n.shape[1])
        for k in range(3):
            a = a.index_add(0, tri[:, k], n)
        acc.append(contiguous_grad(a))
    inv_len = torch.rsqrt((acc[0] * acc[0] + acc[1] * acc[1] + acc[2] * acc[2]).clamp(min=eps * eps))
    return torch.stack([a * inv_len for a in acc], dim=-1).transpose(0, 1)


def _sh_terms(x: Tensor, y: Tensor, z: Tensor) -> list[Tensor]:
    """The 9 basis functions (Lambertian factors folded in) of normal components ``x, y, z``."""
    a0, a1, a2 = SH_BAND_FACTORS
    c0, c1, c2 = SH_CONSTANTS
    k1 = a1 * c1
    k2 = a2 * c2
    return [
        torch.full_like(x, a0 * c0),
        -k1 * y,
        k1 * z,
        -k1 * x,
        k2 * x * y,
        -k2 * y * z,
        (0.5 * k2 / math.sqrt(3.0)) * (3.0 * z * z - 1.0),
        -k2 * x * z,
        (0.5 * k2) * (x * x - y * y),
    ]


def sh_basis(normals: Tensor) -> Tensor:
    """``(..., 3)`` unit normals -> ``(..., 9)`` SH basis with the Lambertian factors folded in."""
    return torch.stack(_sh_terms(*normals.unbind(-1)), dim=-1)


def _gamma(sh: Tensor, batch: int, ambient: float) -> Tensor:
    if sh.shape != (batch, 3 * N_SH_PER_CHANNEL):
        raise ValueError(f"sh must be (B={batch}, 27) SH coefficients, got {tuple(sh.shape)}")
    gamma = sh.view(batch, 3, N_SH_PER_CHANNEL)
    if ambient:
        offset = torch.zeros(3, N_SH_PER_CHANNEL, dtype=sh.dtype, device=sh.device)
        offset[:, 0] = ambient
        gamma = gamma + offset
    return gamma


def sh_irradiance_channels_first(normals: Tensor, sh: Tensor, ambient: float = DEFAULT_AMBIENT) -> Tensor:
    """Like :func:`sh_irradiance` but returns ``(B, 3, V)`` (one matrix product per image)."""
    B = normals.shape[0]
    gamma = _gamma(sh, B, ambient)
    basis = torch.stack(_sh_terms(*normals.unbind(-1)), dim=1)  # (B, 9, V)
    return torch.bmm(gamma, basis.to(gamma.dtype))


def sh_irradiance(normals: Tensor, sh: Tensor, ambient: float = DEFAULT_AMBIENT) -> Tensor:
    """Lambertian irradiance per vertex and colour ``(B, V, 3)``.

    Args:
        normals: ``(B, V, 3)`` unit normals, world frame.
        sh: ``(B, 27)`` coefficients, colour-major (``view(B, 3, 9)``).
        ambient: added to each colour's constant coefficient.
    """
    return sh_irradiance_channels_first(normals, sh, ambient).transpose(1, 2)


def shade(albedo: Tensor, normals: Tensor, sh: Tensor, ambient: float = DEFAULT_AMBIENT) -> Tensor:
    """Per-vertex colour ``(B, V, 3)`` = albedo x SH irradiance (not clamped)."""
    return albedo * sh_irradiance(normals, sh, ambient)
