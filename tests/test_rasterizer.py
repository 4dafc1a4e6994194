"""The pure PyTorch rasterizer against a slow, obviously-correct reference, plus interpolation."""

from __future__ import annotations

import pytest
import torch

from focus.render.rasterizer import (
    Fragments,
    _visible_triangles_torch,
    antialias,
    fragments_from_triangle_ids,
    front_facing,
    interpolate,
    rasterize,
    triangle_edge_neighbors,
)

SUB = 256.0  # 2 ** SUBPIXEL_BITS


# ------------------------------------------------------------------------------ reference
def _snap(x: float) -> float:
    return round(x * SUB) / SUB  # Python rounds halves to even, like torch.round


def reference_rasterize(screen: torch.Tensor, triangles: torch.Tensor, H: int, W: int, near: float = 10.0):
    """Loop over images, pixels and triangles in float64 (the documented rules, written plainly).

    Returns ``(tri_id (B, H, W), bary (B, H, W, 3), depth (B, H, W), ambiguous (B, H, W))`` where
    ``ambiguous`` marks pixels whose two nearest covering triangles are at (nearly) equal depth.
    Barycentrics and depth use the unsnapped coordinates (like the differentiable pass), clamped
    to [0, 1] (a centre covered by the snapped triangle may lie just outside the unsnapped one).
    """
    s = screen.double().tolist()
    tris = triangles.tolist()
    B = len(s)
    tri_id = torch.full((B, H, W), -1, dtype=torch.int64)
    bary = torch.zeros(B, H, W, 3, dtype=torch.float64)
    depth = torch.zeros(B, H, W, dtype=torch.float64)
    ambiguous = torch.zeros(B, H, W, dtype=torch.bool)
    for b in range(B):
        for i in range(H):
            for j in range(W):
                pu, pv = j + 0.5, i + 0.5
                hits = []
                for f, (i0, i1, i2) in enumerate(tris):
                    P = [(_snap(s[b][k][0]), _snap(s[b][k][1])) for k in (i0, i1, i2)]
                    Z = [s[b][k][2] for k in (i0, i1, i2)]
                    if min(Z) < near:
                        continue
                    # twice the area, positive when counter-clockwise on screen (v points down)
                    area = -((P[1][0] - P[0][0]) * (P[2][1] - P[0][1]) - (P[1][1] - P[0][1]) * (P[2][0] - P[0][0]))
                    if area <= 0:
                        continue
                    inside = True
                    lam = []
                    for k in range(3):
                        a, c = P[(k + 1) % 3], P[(k + 2) % 3]
                        du, dv = c[0] - a[0], c[1] - a[1]
                        w = -(du * (pv - a[1]) - dv * (pu - a[0]))
                        owns = dv > 0 or (dv == 0 and du < 0)
                        if w < 0 or (w == 0 and not owns):
                            inside = False
                            break
                        lam.append(w / area)
                    if not inside:
                        continue
                    dep = 1.0 / sum(l / z for l, z in zip(lam, Z))
                    hits.append((dep, f))
                if not hits:
                    continue
                hits.sort()
                f = hits[0][1]
                if len(hits) > 1 and hits[1][0] - hits[0][0] < 1e-4 * hits[0][0]:
                    ambiguous[b, i, j] = True
                # exact (unsnapped) perspective-correct barycentrics of the winner
                Q = [s[b][k] for k in tris[f]]
                area = (Q[1][0] - Q[0][0]) * (Q[2][1] - Q[0][1]) - (Q[1][1] - Q[0][1]) * (Q[2][0] - Q[0][0])
                l1 = ((pu - Q[0][0]) * (Q[2][1] - Q[0][1]) - (pv - Q[0][1]) * (Q[2][0] - Q[0][0])) / area
                l2 = ((Q[1][0] - Q[0][0]) * (pv - Q[0][1]) - (Q[1][1] - Q[0][1]) * (pu - Q[0][0])) / area
                lin = [min(max(l, 0.0), 1.0) for l in (1 - l1 - l2, l1, l2)]  # clamped to the triangle
                wz = [l / q[2] for l, q in zip(lin, Q)]
                tri_id[b, i, j] = f
                bary[b, i, j] = torch.tensor([w / sum(wz) for w in wz], dtype=torch.float64)
                depth[b, i, j] = 1.0 / sum(wz)
    return tri_id, bary, depth, ambiguous


def random_mesh(seed: int, B: int, V: int, F: int, H: int, W: int, spread: float = 1.3):
    g = torch.Generator().manual_seed(seed)
    uv = (torch.rand(B, V, 2, generator=g) * spread - (spread - 1) / 2) * torch.tensor([W, H])
    z = 20.0 + 30.0 * torch.rand(B, V, 1, generator=g)
    tri = torch.randint(0, V, (3 * F, 3), generator=g)
    tri = tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])][:F]
    return torch.cat([uv, z], -1), tri


def grid_mesh(n: int, step: float, origin: float, z: float = 50.0):
    """A flat ``n x n`` vertex grid (counter-clockwise on screen) whose vertices and edges hit pixel
    centres exactly: the fill rule must cover every centre exactly once."""
    ys, xs = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    uv = torch.stack([origin + step * xs, origin + step * ys], -1).reshape(-1, 2)
    screen = torch.cat([uv, torch.full((n * n, 1), z)], -1)[None]
    tris = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            tris += [[a, c, b], [b, c, d]]  # counter-clockwise on screen (v down)
    return screen, torch.tensor(tris)


# ------------------------------------------------------------------------------ visibility
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torch_rasterizer_matches_reference(seed: int) -> None:
    H, W = 14, 17
    screen, tri = random_mesh(seed, B=2, V=24, F=30, H=H, W=W)
    frags = rasterize(screen, tri, (H, W), backend="torch", near=25.0)  # near culls some triangles
    ref_id, ref_bary, ref_depth, amb = reference_rasterize(screen, tri, H, W, near=25.0)
    assert (ref_id >= 0).sum() > 50, "fixture should cover a good part of the image"
    same = (frags.tri_id == ref_id) | amb
    assert bool(same.all()), f"{int((~same).sum())} pixels differ from the reference"
    ok = (frags.tri_id == ref_id) & (ref_id >= 0)
    torch.testing.assert_close(frags.bary[ok].double(), ref_bary[ok], atol=2e-4, rtol=0)
    torch.testing.assert_close(frags.depth[ok].double(), ref_depth[ok], atol=0, rtol=1e-5)
    assert bool((frags.bary[~frags.mask] == 0).all()) and bool((frags.depth[~frags.mask] == 0).all())


def test_large_triangles_use_exact_float64_path() -> None:
    H, W = 24, 24
    screen, tri = random_mesh(5, B=1, V=8, F=6, H=H, W=W, spread=2.5)  # triangles spanning > 8 px
    frags = rasterize(screen, tri, (H, W))
    ref_id, _, _, amb = reference_rasterize(screen, tri, H, W)
    assert (ref_id >= 0).sum() > 100
    assert bool(((frags.tri_id == ref_id) | amb).all())


@pytest.mark.parametrize("step,origin", [(1.0, 0.5), (2.0, 0.5), (1.5, 1.5)])
def test_fill_rule_is_watertight_on_shared_edges(step: float, origin: float) -> None:
    """Vertices and edges on pixel centres: every centre inside the grid covered exactly once."""
    screen, tri = grid_mesh(6, step, origin)
    H = W = 12
    frags = rasterize(screen, tri, (H, W))
    ref_id, _, _, _ = reference_rasterize(screen, tri, H, W)
    assert bool((frags.tri_id == ref_id).all())
    lo, hi = origin, origin + 5 * step
    centres = torch.arange(W) + 0.5
    inside = (centres >= lo) & (centres < hi)  # top-left rule: left/top edges in, right/bottom out
    expected = inside[:, None] & inside[None, :]
    assert bool((frags.mask[0] == expected).all())


def test_backface_and_near_culling() -> None:
    H = W = 8
    # one big counter-clockwise (front) triangle and the same one clockwise (back), nearer
    uv = torch.tensor([[-4.0, -4.0], [-4.0, 20.0], [20.0, -4.0]])
    front = torch.cat([uv, torch.full((3, 1), 50.0)], -1)
    back = torch.cat([uv, torch.full((3, 1), 30.0)], -1)
    screen = torch.cat([front, back])[None]
    tri = torch.tensor([[0, 1, 2], [3, 5, 4]])
    assert bool(front_facing(screen, tri, near=10.0)[0, 0]) and not bool(front_facing(screen, tri, near=10.0)[0, 1])
    frags = rasterize(screen, tri, (H, W))
    covered = frags.tri_id[0][frags.mask[0]]
    assert covered.numel() > 20 and bool((covered == 0).all())
    # the front triangle is culled once a vertex is closer than `near` ...
    near_screen = screen.clone()
    near_screen[0, 0, 2] = 9.0
    assert not bool(rasterize(near_screen, tri, (H, W), near=10.0).mask.any())
    # ... and kept at exactly `near`
    near_screen[0, 0, 2] = 10.0
    assert bool(rasterize(near_screen, tri, (H, W), near=10.0).mask.any())


def test_nearest_triangle_wins() -> None:
    uv = torch.tensor([[-4.0, -4.0], [-4.0, 20.0], [20.0, -4.0]])
    far = torch.cat([uv, torch.full((3, 1), 60.0)], -1)
    near = torch.cat([uv + 0.3, torch.full((3, 1), 40.0)], -1)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]])
    frags = rasterize(torch.cat([far, near])[None], tri, (8, 8))
    assert bool((frags.tri_id[frags.mask] == 1).all())
    frags = rasterize(torch.cat([near, far])[None], tri, (8, 8))
    assert bool((frags.tri_id[frags.mask] == 0).all())


def test_chunking_gives_the_same_result() -> None:
    screen, tri = random_mesh(3, B=2, V=40, F=60, H=20, W=20, spread=1.5)
    full = _visible_triangles_torch(screen, tri, (20, 20), 10.0)
    chunked = _visible_triangles_torch(screen, tri, (20, 20), 10.0, max_candidates=37)
    assert bool((full == chunked).all()) and bool((full >= 0).any())


def test_perspective_correct_interpolation_reprojects_to_pixel_centres() -> None:
    """Interpolating camera-frame positions must give points that project onto the pixel centre."""
    g = torch.Generator().manual_seed(0)
    f, H, W = 40.0, 16, 16
    xyz = torch.tensor([[-30.0, -30.0, 60.0], [-30.0, 40.0, 200.0], [40.0, -30.0, 120.0]], dtype=torch.float64)
    xyz = xyz + torch.rand(3, 3, generator=g, dtype=torch.float64)
    uv = f * xyz[:, :2] / xyz[:, 2:] + torch.tensor([W / 2, H / 2], dtype=torch.float64)
    screen = torch.cat([uv, xyz[:, 2:]], -1)[None]
    tri = torch.tensor([[0, 1, 2]])
    if not bool(front_facing(screen, tri)[0, 0]):
        tri = tri[:, [0, 2, 1]]
    frags = rasterize(screen, tri, (H, W))
    assert int(frags.mask.sum()) > 30
    p = interpolate(xyz[None], frags)[frags.mask]  # (P, 3)
    reproj = f * p[:, :2] / p[:, 2:] + torch.tensor([W / 2, H / 2], dtype=torch.float64)
    rows, cols = torch.nonzero(frags.mask[0], as_tuple=True)
    centres = torch.stack([cols, rows], -1).double() + 0.5
    torch.testing.assert_close(reproj, centres, atol=1e-9, rtol=0)
    torch.testing.assert_close(p[:, 2], frags.depth[frags.mask], atol=1e-9, rtol=0)


def test_interpolate_gradcheck_on_fixed_fragments() -> None:
    screen, tri = random_mesh(4, B=2, V=10, F=12, H=6, W=7)
    screen = screen.double()
    tri_id = rasterize(screen, tri, (6, 7)).tri_id
    assert int((tri_id >= 0).sum()) > 5
    attrs = torch.rand(2, 10, 2, dtype=torch.float64)

    def fn(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return interpolate(a, fragments_from_triangle_ids(s, tri, tri_id))

    assert torch.autograd.gradcheck(fn, (screen.requires_grad_(True), attrs.requires_grad_(True)))


def test_interpolate_without_compact_fields_matches() -> None:
    screen, tri = random_mesh(6, B=2, V=20, F=25, H=10, W=12)
    frags = rasterize(screen, tri, (10, 12))
    bare = Fragments(tri_id=frags.tri_id, bary=frags.bary, depth=frags.depth, screen=frags.screen, triangles=tri)
    attrs = torch.rand(2, 20, 4)
    torch.testing.assert_close(interpolate(attrs, bare), interpolate(attrs, frags))


def test_bad_inputs_give_clear_errors() -> None:
    screen, tri = random_mesh(0, B=1, V=5, F=3, H=4, W=4)
    with pytest.raises(ValueError, match=r"screen must be \(B, V, 3\)"):
        rasterize(screen[..., :2], tri, (4, 4))
    with pytest.raises(ValueError, match="out of range"):
        rasterize(screen, tri + 10, (4, 4))
    with pytest.raises(ValueError, match="unknown rasterizer backend"):
        rasterize(screen, tri, (4, 4), backend="opengl")


# ------------------------------------------------------------------------------ silhouettes
def test_edge_neighbors_of_a_quad() -> None:
    tri = torch.tensor([[0, 1, 2], [2, 1, 3]])
    nb = triangle_edge_neighbors(tri)
    # edge opposite corner 0 of triangle 0 is (1, 2), shared with triangle 1 (its edge opposite corner 2)
    assert nb.tolist() == [[1, -1, -1], [-1, -1, 0]]


def _triangle_screen(scale: torch.Tensor) -> torch.Tensor:
    centre = torch.tensor([16.3, 15.7], dtype=torch.float64)
    base = torch.tensor([[-9.0, -7.0], [-6.0, 10.0], [11.0, -2.0]], dtype=torch.float64)
    uv = centre + scale * base
    return torch.cat([uv, torch.full((3, 1), 50.0, dtype=torch.float64)], -1)[None]


def test_soft_coverage_matches_area_and_its_gradient() -> None:
    """The antialiased coverage of one triangle sums to its area and follows its area's gradient."""
    tri = torch.tensor([[0, 1, 2]])
    scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    screen = _triangle_screen(scale)
    frags = rasterize(screen, tri, (32, 32))
    assert bool(front_facing(screen, tri)[0, 0])
    soft = antialias(frags.mask.unsqueeze(-1).double(), frags)
    area = 0.5 * abs(
        float(
            torch.linalg.det(
                torch.stack([screen[0, 1, :2] - screen[0, 0, :2], screen[0, 2, :2] - screen[0, 0, :2]]).detach()
            )
        )
    )
    hard_err = abs(float(frags.mask.sum()) - area)
    soft_err = abs(float(soft.sum().detach()) - area)
    assert soft_err < 0.02 * area and soft_err <= hard_err + 1e-9
    (grad,) = torch.autograd.grad(soft.sum(), scale)
    assert abs(float(grad) - 2.0 * area) < 0.05 * 2.0 * area  # d(area)/d(scale) = 2 area at scale 1


def test_antialias_changes_only_the_outline() -> None:
    screen, tri = grid_mesh(6, 2.0, 1.3)  # covers [1.3, 11.3)^2: centres 1.5 .. 10.5
    frags = rasterize(screen, tri, (12, 12))
    img = torch.rand(1, 12, 12, 3)
    out = antialias(img, frags)
    interior = torch.zeros(12, 12, dtype=torch.bool)
    interior[2:11, 2:11] = True
    torch.testing.assert_close(out[0][interior], img[0][interior])
    assert not torch.equal(out, img)  # the outline changes


# ------------------------------------------------------------------------------ nvdiffrast plumbing
class _FakeNvdiffrast:
    """A slow CPU stand-in for ``nvdiffrast.torch`` written from its documented behaviour: pixel
    (row i, col j) has its centre at ``ndc = (2 (j + 0.5) / W - 1, 2 (i + 0.5) / H - 1)``; both
    sides of every triangle are drawn; depth test on ``z / w`` (interpolated linearly on screen)
    inside ``[-1, 1]``; output ``(u, v, z/w, triangle_id + 1)``, 0 = background."""

    def rasterize(self, ctx, pos, tri, resolution, ranges=None, grad_db=True):
        assert pos.dtype == torch.float32 and tri.dtype == torch.int32 and pos.is_contiguous()
        H, W = resolution
        assert H % 8 == 0 and W % 8 == 0
        p = pos.double()
        ndc = p[..., :3] / p[..., 3:]
        out = torch.zeros(pos.shape[0], H, W, 4)
        t = tri.long().tolist()
        for b in range(pos.shape[0]):
            q = ndc[b].tolist()
            for i in range(H):
                for j in range(W):
                    x, y = 2 * (j + 0.5) / W - 1, 2 * (i + 0.5) / H - 1
                    best = None
                    for f, (a, bb, c) in enumerate(t):
                        A, B, C = q[a], q[bb], q[c]
                        area = (B[0] - A[0]) * (C[1] - A[1]) - (B[1] - A[1]) * (C[0] - A[0])
                        if area == 0:
                            continue
                        l1 = ((x - A[0]) * (C[1] - A[1]) - (y - A[1]) * (C[0] - A[0])) / area
                        l2 = ((B[0] - A[0]) * (y - A[1]) - (B[1] - A[1]) * (x - A[0])) / area
                        if min(l1, l2, 1 - l1 - l2) < 0:
                            continue
                        zz = (1 - l1 - l2) * A[2] + l1 * B[2] + l2 * C[2]
                        if -1 <= zz <= 1 and (best is None or zz < best[0]):
                            best = (zz, f, l1, l2)
                    if best:
                        out[b, i, j] = torch.tensor([best[2], best[3], best[0], best[1] + 1.0])
        return out, torch.zeros(pos.shape[0], H, W, 0)


def test_nvdiffrast_plumbing_with_a_fake_module(monkeypatch) -> None:
    """Clip-space mapping (row 0 on top, padding to multiples of 8), unshared culled geometry and
    triangle-id decoding, checked against the torch backend with a stand-in for nvdiffrast."""
    from focus.render import nvdiffrast_backend as nb

    monkeypatch.setattr(nb, "_dr", lambda: _FakeNvdiffrast())
    monkeypatch.setattr(nb, "_context", lambda index: None)
    H, W = 11, 13  # padded to 16 x 16 and cropped back
    screen, tri = random_mesh(7, B=2, V=16, F=20, H=H, W=W)
    tri_id, state = nb.visible_triangles(screen, tri, (H, W), near=25.0)
    assert state["padded_hw"] == (16, 16) and tri_id.shape == (2, H, W)
    ref = rasterize(screen, tri, (H, W), backend="torch", near=25.0)
    assert int(ref.mask.sum()) > 40
    assert float((tri_id == ref.tri_id).float().mean()) > 0.98  # up to ties (no snapping in the fake)
