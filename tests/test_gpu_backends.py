"""Backends agree on CUDA: the torch rasterizer on the GPU and nvdiffrast (run with ``-m gpu``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from focus.render import nvdiffrast_backend
from focus.render.rasterizer import antialias, interpolate, rasterize, resolve_backend
from focus.render.renderer import FaceRenderer, RenderSettings

pytestmark = pytest.mark.gpu

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
needs_nvdiffrast = pytest.mark.skipif(
    not (torch.cuda.is_available() and nvdiffrast_backend.is_available()),
    reason="needs CUDA and nvdiffrast (pip install -e '.[gpu]')",
)


def _hemisphere():
    from test_renderer import hemisphere_model  # same directory (pytest's rootdir-relative import)

    return hemisphere_model(n_rings=16, n_lon=40)


def _random_screen(seed: int, B: int, V: int, F: int, H: int, W: int, device: str):
    g = torch.Generator().manual_seed(seed)
    uv = (torch.rand(B, V, 2, generator=g) * 1.2 - 0.1) * torch.tensor([W, H])
    z = 20.0 + 30.0 * torch.rand(B, V, 1, generator=g)
    tri = torch.randint(0, V, (2 * F, 3), generator=g)
    tri = tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])][:F]
    return torch.cat([uv, z], -1).to(device), tri.to(device)


def _edge_distances(screen: torch.Tensor, tri: torch.Tensor, b: torch.Tensor, t: torch.Tensor, pts: torch.Tensor):
    """``(N,)`` signed distance (pixels, positive inside) from points to the nearest edge of
    triangles ``t`` of images ``b``."""
    c = screen[b[:, None], tri[t], :2].double()  # (N, 3, 2)
    a, e = c, c[:, [1, 2, 0]] - c
    q = pts[:, None, :].double() - a
    cross = e[..., 0] * q[..., 1] - e[..., 1] * q[..., 0]
    area = e[:, 0, 0] * (c[:, 2, 1] - c[:, 0, 1]) - e[:, 0, 1] * (c[:, 2, 0] - c[:, 0, 0])
    return (cross * torch.sign(area)[:, None] / e.norm(dim=-1)).amin(1)


def _depth_at(screen: torch.Tensor, tri: torch.Tensor, b: torch.Tensor, t: torch.Tensor, pts: torch.Tensor):
    """``(N,)`` camera depth of triangles ``t`` of images ``b`` at screen points ``pts``
    (``1/z`` is affine in screen space)."""
    c = screen[b[:, None], tri[t]].double()  # (N, 3, 3): u, v, z
    p0, p1, p2 = c[:, 0, :2], c[:, 1, :2], c[:, 2, :2]
    area = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    q = pts.double()
    l1 = ((q[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (q[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])) / area
    l2 = ((p1[:, 0] - p0[:, 0]) * (q[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (q[:, 0] - p0[:, 0])) / area
    inv_z = (1 - l1 - l2) / c[:, 0, 2] + l1 / c[:, 1, 2] + l2 / c[:, 2, 2]
    return 1.0 / inv_z


def _depth_gradient(screen: torch.Tensor, tri: torch.Tensor, b: torch.Tensor, t: torch.Tensor, pts: torch.Tensor):
    """``(N,)`` magnitude of the screen-space gradient of :func:`_depth_at` (mm per pixel), by central
    differences over half a pixel."""
    h = 0.25
    gx = _depth_at(screen, tri, b, t, pts + pts.new_tensor([h, 0.0])) - _depth_at(
        screen, tri, b, t, pts - pts.new_tensor([h, 0.0])
    )
    gy = _depth_at(screen, tri, b, t, pts + pts.new_tensor([0.0, h])) - _depth_at(
        screen, tri, b, t, pts - pts.new_tensor([0.0, h])
    )
    return torch.sqrt(gx**2 + gy**2) / (2 * h)


def _only_ties_differ(screen, tri, ids_a, ids_b, tol: float = 0.1, depth_rtol: float = 1e-3) -> bool:
    """Where the triangle ids differ, the pixel centre must lie within ``tol`` pixels of an edge
    of the triangle(s) involved (a tie of the fill rules / snapping grids, not a wrong choice), or
    both triangles must cover it at depths that a shift of the triangles by ``tol`` pixels can
    reorder, or that are equal to ``depth_rtol`` (a depth tie where random triangles intersect).

    nvdiffrast snaps vertices to a 1/16-pixel grid before rasterizing (its edge and depth tests see
    the snapped triangle), so where a triangle's depth changes steeply across the screen its depth
    at a pixel centre moves by up to ``|grad z| / 32``; such pixels count as ties."""
    b, i, j = torch.nonzero(ids_a != ids_b, as_tuple=True)
    if b.numel() == 0:
        return True
    pts = torch.stack([j, i], -1).double() + 0.5
    ta, tb = ids_a[b, i, j], ids_b[b, i, j]
    ok = torch.ones_like(ta, dtype=torch.bool)
    near = torch.zeros_like(ok)
    for t in (ta, tb):
        has = t >= 0
        d = torch.full(t.shape, float("inf"), dtype=torch.float64, device=t.device)
        d[has] = _edge_distances(screen, tri, b[has], t[has], pts[has])
        ok &= (~has) | (d > -tol)  # each chosen triangle (nearly) contains the centre
        near |= has & (d.abs() < tol)
    both = (ta >= 0) & (tb >= 0)
    depth_tie = torch.zeros_like(ok)
    if bool(both.any()):
        bb, p = b[both], pts[both]
        za, zb = _depth_at(screen, tri, bb, ta[both], p), _depth_at(screen, tri, bb, tb[both], p)
        slack = tol * (_depth_gradient(screen, tri, bb, ta[both], p) + _depth_gradient(screen, tri, bb, tb[both], p))
        depth_tie[both] = (za - zb).abs() <= torch.maximum(depth_rtol * torch.minimum(za, zb), slack)
    return bool((ok & (near | depth_tie)).all())


@needs_cuda
def test_torch_backend_on_cuda_matches_cpu() -> None:
    screen, tri = _random_screen(0, 2, 60, 80, 50, 60, "cpu")
    cpu = rasterize(screen, tri, (50, 60), backend="torch")
    gpu = rasterize(screen.cuda(), tri.cuda(), (50, 60), backend="torch")
    assert torch.equal(cpu.tri_id, gpu.tri_id.cpu())
    torch.testing.assert_close(cpu.bary, gpu.bary.cpu(), atol=1e-5, rtol=0)


@needs_nvdiffrast
@pytest.mark.parametrize("size", [(48, 64), (50, 61)])  # the second is not a multiple of 8
def test_nvdiffrast_matches_torch_on_random_meshes(size) -> None:
    H, W = size
    screen, tri = _random_screen(1, 3, 80, 120, H, W, "cuda")
    ref = rasterize(screen, tri, (H, W), backend="torch")
    nv = rasterize(screen, tri, (H, W), backend="nvdiffrast")
    assert nv.backend == "nvdiffrast"
    same = nv.tri_id == ref.tri_id
    assert float(same.float().mean()) > 0.95
    assert _only_ties_differ(screen, tri, ref.tri_id, nv.tri_id), "triangle ids differ on more than ties"
    torch.testing.assert_close(nv.bary[same], ref.bary[same], atol=1e-5, rtol=0)
    attrs = torch.rand(3, 80, 4, device="cuda")
    torch.testing.assert_close(interpolate(attrs, nv)[same], interpolate(attrs, ref)[same], atol=1e-5, rtol=0)


@needs_nvdiffrast
def test_nvdiffrast_culls_like_torch() -> None:
    uv = torch.tensor([[-4.0, -4.0], [-4.0, 20.0], [20.0, -4.0]])
    front = torch.cat([uv, torch.full((3, 1), 50.0)], -1)
    back = torch.cat([uv, torch.full((3, 1), 30.0)], -1)  # nearer, but clockwise on screen
    screen = torch.cat([front, back])[None].cuda()
    tri = torch.tensor([[0, 1, 2], [3, 5, 4]], device="cuda")
    nv = rasterize(screen, tri, (16, 16), backend="nvdiffrast")
    assert bool(nv.mask.any()) and bool((nv.tri_id[nv.mask] == 0).all())
    near = screen.clone()
    near[0, 0, 2] = 5.0
    assert not bool(rasterize(near, tri[:1], (16, 16), backend="nvdiffrast", near=10.0).mask.any())


@needs_nvdiffrast
def test_renderer_backends_agree_and_row_zero_is_top() -> None:
    model = _hemisphere()
    outs = {}
    for backend in ("torch", "nvdiffrast"):
        r = FaceRenderer(model, RenderSettings(image_size=128, backend=backend)).cuda()
        g = torch.Generator().manual_seed(0)
        x = 0.3 * torch.randn(2, r.layout.dim, generator=g)
        r.layout.split(x).trans[:, 1] += 20.0  # (a view) move the face up: world +y = image up
        x = x.cuda()
        outs[backend] = r(x)
    a, b = outs["torch"], outs["nvdiffrast"]
    assert _only_ties_differ(a.screen.detach(), model.triangles.cuda(), a.fragments.tri_id, b.fragments.tri_id)
    assert float((a.mask != b.mask).float().mean()) < 0.01  # coverage differs only on the outline
    assert float((a.image - b.image).abs().mean()) < 1e-3
    rows = torch.nonzero(b.mask[0, 0].sum(1) > 0).squeeze(1)
    assert float(rows.float().mean()) < 64  # moved up: the top half of the image


@needs_nvdiffrast
def test_nvdiffrast_antialias_gives_silhouette_gradients() -> None:
    model = _hemisphere()
    r = FaceRenderer(model, RenderSettings(image_size=64, backend="nvdiffrast", silhouette_gradients=True)).cuda()
    x = torch.zeros(1, r.layout.dim, device="cuda", requires_grad=True)
    out = r(x)
    out.mask.sum().backward()
    trans = r.layout.split(x.grad).trans
    assert float(trans[0, 2]) > 0  # closer face, bigger silhouette
    # the torch soft-coverage term points the same way
    torch_frags = dataclasses.replace(out.fragments, backend="torch", backend_state=None)
    soft = antialias(out.fragments.mask.unsqueeze(-1).float(), torch_frags)
    assert soft.shape == (1, 64, 64, 1)
    assert float((soft - out.mask.permute(0, 2, 3, 1).detach()).abs().max()) < 0.6


@needs_cuda
def test_auto_backend_choice() -> None:
    expected = "nvdiffrast" if nvdiffrast_backend.is_available() else "torch"
    assert resolve_backend("auto", torch.device("cuda")) == expected
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
