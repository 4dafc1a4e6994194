"""FaceRenderer on a small hand-made face model (a tessellated hemisphere with fake bases)."""

from __future__ import annotations

import math

import pytest
import torch

from focus.coeffs import CoeffLayout
from focus.facemodel.model import FaceModel
from focus.render.renderer import FaceRenderer, RenderOutput, RenderSettings, render_mesh
from focus.render.shading import vertex_normals

RADIUS = 80.0


def hemisphere_model(n_rings: int = 10, n_lon: int = 24, seed: int = 0) -> FaceModel:
    """Front half of a sphere (radius 80 mm, facing +z), counter-clockwise seen from outside, with
    small random std-scaled bases (4 identity, 3 expression, 2 albedo modes)."""
    g = torch.Generator().manual_seed(seed)
    verts = [[0.0, 0.0, RADIUS]]
    for i in range(1, n_rings + 1):
        th = 0.5 * math.pi * i / n_rings
        for j in range(n_lon):
            ph = 2 * math.pi * j / n_lon
            verts.append(
                [RADIUS * math.sin(th) * math.cos(ph), RADIUS * math.sin(th) * math.sin(ph), RADIUS * math.cos(th)]
            )
    v = torch.tensor(verts)
    ring = lambda i, j: 1 + (i - 1) * n_lon + (j % n_lon)  # noqa: E731
    tris = [[0, ring(1, j), ring(1, j + 1)] for j in range(n_lon)]
    for i in range(1, n_rings):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            tris += [[a, c, b], [b, c, d]]
    t = torch.tensor(tris)
    fn = torch.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]], dim=-1)
    flip = (fn * v[t].mean(1)).sum(-1) < 0
    t[flip] = t[flip][:, [0, 2, 1]]
    V = v.shape[0]
    radial = v / v.norm(dim=-1, keepdim=True)
    id_basis = torch.cat([5.0 * radial[None], 2.0 * torch.randn(3, 1, 3, generator=g) * v[None, :, :1] / RADIUS])
    exp_basis = 3.0 * torch.sin(v[None, :, :1] / 20.0 + torch.randn(3, 1, 3, generator=g))
    albedo_basis = 0.05 * torch.randn(2, 1, 3, generator=g).expand(2, V, 3).clone()
    lm = torch.randperm(V, generator=g)[:68]
    return FaceModel(
        mean_shape=v,
        id_basis=id_basis,
        exp_basis=exp_basis,
        mean_albedo=torch.full((V, 3), 0.6),
        albedo_basis=albedo_basis,
        triangles=t,
        landmarks68=lm,
        now_landmarks7=lm[:7],
        name="test hemisphere",
    ).validate()


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return hemisphere_model()


def _coeffs(layout: CoeffLayout, batch: int, seed: int = 0, scale: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, layout.dim, generator=g)


def test_output_shapes_and_coverage(model: FaceModel) -> None:
    r = FaceRenderer(model, RenderSettings(image_size=64, backend="torch"))
    out = r(r.layout.zeros(2).id.new_zeros(2, r.layout.dim))
    assert isinstance(out, RenderOutput)
    assert out.image.shape == (2, 3, 64, 64) and out.mask.shape == (2, 1, 64, 64)
    assert out.landmarks.shape == (2, 68, 2)
    assert out.vertices_world.shape == out.screen.shape == out.normals.shape == (2, model.num_vertices, 3)
    # frontal hemisphere: a disk of the (polygonal) silhouette's projected area
    f = r.camera.focal
    r_px = f * RADIUS / math.sqrt(r.camera.distance**2 - RADIUS**2)
    n = 24
    area = 0.5 * n * math.sin(2 * math.pi / n) * r_px**2
    assert float(out.mask[0].sum()) == pytest.approx(area, rel=0.03)
    # centred: the mask's centroid is the image centre
    rows, cols = torch.nonzero(out.mask[0, 0], as_tuple=True)
    assert float(rows.float().mean() + 0.5) == pytest.approx(32.0, abs=0.3)
    assert float(cols.float().mean() + 0.5) == pytest.approx(32.0, abs=0.3)
    # zero coefficients: uniform ambient light on a uniform albedo, black background
    lit = 0.6 * 0.8 * math.sqrt(math.pi) / 2
    img = out.image[0].permute(1, 2, 0)
    torch.testing.assert_close(img[out.mask[0, 0] > 0], torch.full_like(img[out.mask[0, 0] > 0], lit))
    assert float(img[out.mask[0, 0] == 0].abs().max()) == 0.0


def test_gradients_reach_every_coefficient_part(model: FaceModel) -> None:
    r = FaceRenderer(model, RenderSettings(image_size=48, backend="torch"))
    x = _coeffs(r.layout, 2).requires_grad_(True)
    out = r(x)
    (out.image.mean() + 1e-3 * out.landmarks.mean()).backward()
    parts = r.layout.split(x.grad)
    for name, g in parts.as_dict().items():
        assert bool(torch.isfinite(g).all()), name
        assert float(g.abs().sum()) > 0, f"no gradient reaches {name}"


def test_coeffs_and_tensor_inputs_agree(model: FaceModel) -> None:
    r = FaceRenderer(model, RenderSettings(image_size=32, backend="torch"))
    x = _coeffs(r.layout, 3, seed=1)
    a = r(x)
    b = r(r.layout.split(x))
    assert torch.equal(a.image, b.image) and torch.equal(a.landmarks, b.landmarks)
    with pytest.raises(ValueError, match="entries"):
        r(x[:, :-1])


def test_landmarks_are_projected_vertices(model: FaceModel) -> None:
    r = FaceRenderer(model, RenderSettings(image_size=64, backend="torch"))
    x = _coeffs(r.layout, 2, seed=2)
    out = r(x)
    torch.testing.assert_close(out.landmarks, out.screen[:, model.landmarks68, :2])
    cam = r.camera
    torch.testing.assert_close(out.screen, cam.to_screen(cam.world_to_camera(out.vertices_world)))


def test_float64_and_buffers(model: FaceModel) -> None:
    r = FaceRenderer(model, RenderSettings(image_size=32, backend="torch")).double()
    assert r.shape_basis.dtype == torch.float64
    assert len(r.state_dict()) == 0  # the model is not saved with networks that hold a renderer
    x = _coeffs(r.layout, 1, seed=3).double()
    out = r(x)
    assert out.image.dtype == torch.float64
    # visibility does not depend on light and albedo: exact gradients there
    c = r.layout.split(x)

    proj = torch.randn(4, 3 * 32 * 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def fn(sh: torch.Tensor, alb: torch.Tensor) -> torch.Tensor:  # a few random projections of the image
        return proj @ r(r.layout.join(type(c)(c.id, c.exp, alb, c.angles, c.trans, sh))).image.reshape(-1)

    assert torch.autograd.gradcheck(
        fn, (c.sh.clone().requires_grad_(True), c.albedo.clone().requires_grad_(True)), fast_mode=True
    )


def test_render_vertices_and_attribute_interpolation(model: FaceModel) -> None:
    r = FaceRenderer(model, RenderSettings(image_size=40, backend="torch"))
    x = _coeffs(r.layout, 2, seed=4)
    v_world = r.vertices_world(x)
    albedo = torch.full_like(v_world, 0.5)
    sh = torch.zeros(2, 27)
    out = r.render_vertices(v_world, albedo, sh)
    assert out.landmarks.shape == (2, 68, 2)
    # extra geometry: only the first 30 triangles, no landmarks
    sub = r.render_vertices(v_world, albedo, sh, triangles=model.triangles[:30])
    assert sub.landmarks.shape == (2, 0, 2)
    assert 0 < float(sub.mask.sum()) < float(out.mask.sum())
    # model-frame coordinates interpolated at the pixels (for painting textures)
    model_xyz = r.shape(*[t for t in (r.layout.split(x).id, r.layout.split(x).exp)])
    painted = r.interpolate_attributes(model_xyz, out.fragments)
    assert painted.shape == (2, 3, 40, 40)
    covered = out.mask[:, 0] > 0
    assert float(painted[:, 2][covered].min()) > 0  # the front of the hemisphere
    assert float(painted[:, :, :, :][~covered.unsqueeze(1).expand_as(painted)].abs().max()) == 0.0


def test_render_mesh_lower_level_matches_renderer(model: FaceModel) -> None:
    r = FaceRenderer(model, RenderSettings(image_size=32, backend="torch"))
    x = _coeffs(r.layout, 1, seed=5)
    out = r(x)
    low = render_mesh(
        out.vertices_world,
        model.triangles,
        out.albedo,
        r.layout.split(x).sh,
        r.camera,
        backend="torch",
        landmark_ids=model.landmarks68,
    )
    torch.testing.assert_close(low.image, out.image)
    torch.testing.assert_close(low.normals, vertex_normals(out.vertices_world, model.triangles))


def test_silhouette_gradients_switch(model: FaceModel) -> None:
    hard = FaceRenderer(model, RenderSettings(image_size=48, backend="torch"))
    soft = FaceRenderer(model, RenderSettings(image_size=48, backend="torch", silhouette_gradients=True))
    x = _coeffs(hard.layout, 2, seed=6)
    out_h, out_s = hard(x), soft(x)
    assert not out_h.mask.requires_grad
    diff = (out_h.mask - out_s.mask).abs()[:, 0]
    assert float(diff.max()) > 0.05  # the outline is softened ...
    interior = torch.nn.functional.max_pool2d(-out_h.mask, 3, 1, 1)[:, 0] == -1  # ... the inside is not
    assert float(diff[interior].max()) == 0.0
    assert abs(float(out_s.mask.sum() - out_h.mask.sum())) < 0.05 * float(out_h.mask.sum())
    xs = x.clone().requires_grad_(True)
    soft(xs).mask.sum().backward()
    trans_grad = soft.layout.split(xs.grad).trans
    assert bool((trans_grad[:, 2] > 0).all())  # moving the face closer grows the silhouette
