"""Vertex normals and spherical-harmonics shading (Deep3DFaceRecon normalisation)."""

from __future__ import annotations

import math

import pytest
import torch

from focus.render.shading import face_normals, sh_basis, sh_irradiance, shade, vertex_normals


def _uv_sphere(n_lat: int = 8, n_lon: int = 12, radius: float = 2.0):
    """Closed UV sphere, triangles counter-clockwise seen from outside."""
    verts = [[0.0, radius, 0.0]]
    for i in range(1, n_lat):
        th = math.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * math.pi * j / n_lon
            verts.append(
                [radius * math.sin(th) * math.sin(ph), radius * math.cos(th), radius * math.sin(th) * math.cos(ph)]
            )
    verts.append([0.0, -radius, 0.0])
    tris = []
    ring = lambda i, j: 1 + (i - 1) * n_lon + (j % n_lon)  # noqa: E731
    for j in range(n_lon):
        tris.append([0, ring(1, j), ring(1, j + 1)])
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            tris += [[a, c, b], [b, c, d]]
    last = len(verts) - 1
    for j in range(n_lon):
        tris.append([last, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)])
    return torch.tensor(verts, dtype=torch.float64)[None], torch.tensor(tris)


def test_sphere_normals_point_outwards() -> None:
    v, tri = _uv_sphere()
    n = vertex_normals(v, tri)
    radial = v / v.norm(dim=-1, keepdim=True)
    assert float((n * radial).sum(-1).min()) > 0.98
    torch.testing.assert_close(n.norm(dim=-1), torch.ones(1, v.shape[1], dtype=torch.float64))
    fn = face_normals(v, tri)
    centroids = v[0][tri].mean(1)
    assert bool(((fn[0] * centroids).sum(-1) > 0).all())


def test_vertex_normals_are_area_weighted() -> None:
    # vertex 0 is shared by a large triangle in the z = 0 plane and a small one tilted towards +x
    v = torch.tensor(
        [[[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 1.0]]], dtype=torch.float64
    )
    tri = torch.tensor([[0, 1, 2], [0, 3, 4]])
    fn = face_normals(v, tri)[0]
    expected = (fn[0] + fn[1]) / (fn[0] + fn[1]).norm()
    torch.testing.assert_close(vertex_normals(v, tri)[0, 0], expected)
    torch.testing.assert_close(fn[0], torch.tensor([0.0, 0.0, 100.0], dtype=torch.float64))  # 2 x area
    # a vertex in no triangle gets a zero normal (no NaN)
    v2 = torch.cat([v, torch.zeros(1, 1, 3, dtype=torch.float64)], 1)
    assert torch.equal(vertex_normals(v2, tri)[0, -1], torch.zeros(3, dtype=torch.float64))


def _reference_basis(n: torch.Tensor) -> torch.Tensor:
    """The spec's table, entry by entry: ``a_band * c_band * polynomial`` with Deep3DFaceRecon's
    band factors ``a`` and constants ``c`` (not the textbook Lambertian ones) and signs."""
    x, y, z = n.unbind(-1)
    a = {0: math.pi, 1: 2 * math.pi / math.sqrt(3.0), 2: 2 * math.pi / math.sqrt(8.0)}
    c = {
        0: 1 / math.sqrt(4 * math.pi),
        1: math.sqrt(3.0) / math.sqrt(4 * math.pi),
        2: 3 * math.sqrt(5.0) / math.sqrt(12 * math.pi),
    }
    table = [
        (0, torch.ones_like(x)),
        (1, -y),
        (1, z),
        (1, -x),
        (2, x * y),
        (2, -y * z),
        (2, (3 * z**2 - 1) / (2 * math.sqrt(3.0))),
        (2, -x * z),
        (2, (x**2 - y**2) / 2),
    ]
    return torch.stack([a[band] * c[band] * poly for band, poly in table], -1)


def test_sh_basis_matches_the_spec_table() -> None:
    n = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    torch.testing.assert_close(sh_basis(n), _reference_basis(n))
    assert float(sh_basis(n)[0, 0]) == pytest.approx(math.sqrt(math.pi) / 2)


def test_zero_coefficients_give_uniform_ambient_light() -> None:
    n = torch.nn.functional.normalize(torch.randn(2, 30, 3), dim=-1)
    irr = sh_irradiance(n, torch.zeros(2, 27), ambient=0.8)
    expected = 0.8 * math.pi / math.sqrt(4 * math.pi)
    torch.testing.assert_close(irr, torch.full_like(irr, expected))
    albedo = torch.rand(2, 30, 3)
    torch.testing.assert_close(shade(albedo, n, torch.zeros(2, 27)), albedo * expected)


def test_sh_layout_is_colour_major_and_frame_is_world() -> None:
    """Coefficient 2 of a colour (band 1, z) brightens normals facing the camera (+z, world frame)."""
    n = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
    sh = torch.zeros(1, 27)
    sh[0, 9 + 2] = 0.5  # green channel, z term
    irr = sh_irradiance(n, sh, ambient=0.0)
    assert float(irr[0, 0, 1]) > 0 > float(irr[0, 1, 1])
    assert float(irr[0, 2, 1]) == pytest.approx(0.0, abs=1e-7)
    assert torch.equal(irr[..., 0], torch.zeros(1, 3)) and torch.equal(irr[..., 2], torch.zeros(1, 3))
    sh = torch.zeros(1, 27)
    sh[0, 1] = 0.5  # red channel, -y term: light from below
    assert float(sh_irradiance(n, sh, ambient=0.0)[0, 2, 0]) < 0


def test_gradcheck_shading_and_normals() -> None:
    v, tri = _uv_sphere(4, 6)
    v = (v + 0.05 * torch.randn_like(v)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: vertex_normals(x, tri), (v,))
    n = torch.nn.functional.normalize(torch.randn(2, 5, 3, dtype=torch.float64), dim=-1).requires_grad_(True)
    sh = torch.randn(2, 27, dtype=torch.float64, requires_grad=True)
    albedo = torch.rand(2, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: shade(a, b, c, ambient=0.8), (albedo, n, sh))


def test_bad_sh_shape() -> None:
    with pytest.raises(ValueError, match="27"):
        sh_irradiance(torch.zeros(1, 4, 3), torch.zeros(1, 9))
