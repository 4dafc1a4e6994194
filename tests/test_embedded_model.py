"""The embedded default face model: determinism, statistics, anatomy, landmarks, regions, CLI."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT

from focus.config import group
from focus.facemodel.embedded import (
    N_EXPRESSIONS,
    EmbeddedModelSettings,
    generate_face_model,
    template_mesh,
    template_uv,
)
from focus.facemodel.expressions import expression_names, lowdin_orthogonalise
from focus.facemodel.face_shape import ANATOMY
from focus.facemodel.model import NOW_LANDMARKS_FROM_IBUG68, load_face_model, save_face_model
from focus.facemodel.pca import fit_pca
from focus.facemodel.regions import REGION_NAMES
from focus.facemodel.template_mesh import vertex_normals

SMALL = EmbeddedModelSettings(
    resolution=45, population_size=60, albedo_population_size=50, n_id=20, n_albedo=15, n_exp=12
)


@pytest.fixture(scope="module")
def small():
    return generate_face_model(SMALL)


@pytest.fixture(scope="module")
def default():
    return generate_face_model(EmbeddedModelSettings())


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ------------------------------------------------------------------ determinism and shapes
def test_same_seed_gives_identical_arrays(small):
    again = generate_face_model(SMALL)
    for name in (
        "mean_shape",
        "id_basis",
        "exp_basis",
        "mean_albedo",
        "albedo_basis",
        "triangles",
        "landmarks68",
        "now_landmarks7",
        "id_std",
        "albedo_std",
        "exp_std",
    ):
        assert torch.equal(getattr(small, name), getattr(again, name)), name
    assert small.regions.keys() == again.regions.keys()
    assert all(torch.equal(small.regions[k], again.regions[k]) for k in small.regions)


def test_different_seed_gives_different_statistics(small):
    other = generate_face_model(replace(SMALL, seed=1))
    assert not torch.allclose(small.mean_shape, other.mean_shape)
    assert not torch.allclose(small.id_basis, other.id_basis)
    assert not torch.allclose(small.mean_albedo, other.mean_albedo)
    # the topology and the anatomy-defined parts do not depend on the seed
    assert torch.equal(small.triangles, other.triangles)
    assert torch.equal(small.regions["lips"], other.regions["lips"])


def test_shapes_and_validation(small):
    V = small.num_vertices
    assert small.id_basis.shape == (20, V, 3)
    assert small.exp_basis.shape == (12, V, 3)
    assert small.albedo_basis.shape == (15, V, 3)
    assert small.mean_albedo.shape == (V, 3)
    assert small.triangles.dtype == torch.int64 and small.triangles.shape[1] == 3
    assert small.id_std.shape == (20,) and small.albedo_std.shape == (15,)
    assert torch.equal(small.exp_std, torch.ones(12))
    assert set(REGION_NAMES) <= set(small.regions)
    assert all(m.dtype == torch.bool and m.shape == (V,) for m in small.regions.values())
    small.validate("small")
    # every vertex is used by a triangle, no degenerate triangle
    assert torch.unique(small.triangles).numel() == V
    v = _np(small.mean_shape).astype(np.float64)
    f = _np(small.triangles)
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert area.min() > 1e-3


def test_default_resolution_vertex_count_and_speed(default):
    assert 4000 <= default.num_vertices <= 6000
    assert default.n_id == 80 and default.n_albedo == 80 and default.n_exp == N_EXPRESSIONS
    # density is a parameter: the top of the allowed range stays within about 15k vertices
    assert template_mesh(125).num_vertices <= 15500


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="n_id"):
        EmbeddedModelSettings(population_size=50, n_id=50)
    with pytest.raises(ValueError, match="n_exp"):
        EmbeddedModelSettings(n_exp=N_EXPRESSIONS + 1)
    with pytest.raises(ValueError, match="resolution"):
        EmbeddedModelSettings(resolution=10)


def test_params_yaml_group_builds_settings():
    s = group(EmbeddedModelSettings, "facemodel", PROJECT_ROOT / "params.yaml")
    assert isinstance(s, EmbeddedModelSettings)
    assert s.n_exp <= N_EXPRESSIONS


# ------------------------------------------------------------------ statistics
def test_fit_pca_matches_numpy_svd_reference():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(25, 40)) @ np.diag(np.linspace(3.0, 0.1, 40))
    p = fit_pca(X, 10)
    _, s, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    np.testing.assert_allclose(p.std, s[:10] / np.sqrt(24), rtol=1e-10)
    unit = p.basis / p.std[:, None]
    np.testing.assert_allclose(np.abs(np.sum(unit * vt[:10], axis=1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(p.mean, X.mean(0))


@pytest.mark.parametrize("part", ["id", "albedo"])
def test_pca_bases_have_decreasing_std_and_orthogonal_directions(small, part):
    basis = _np(getattr(small, f"{part}_basis")).astype(np.float64).reshape(-1, small.num_vertices * 3)
    std = _np(getattr(small, f"{part}_std")).astype(np.float64)
    assert np.all(np.diff(std) <= 1e-6 * std[0])
    assert std[-1] > 0
    np.testing.assert_allclose(np.linalg.norm(basis, axis=1), std, rtol=1e-4)
    unit = basis / std[:, None]
    np.testing.assert_allclose(unit @ unit.T, np.eye(len(std)), atol=1e-4)


def test_identity_variation_is_plausible(default):
    # per-vertex RMS displacement of the first mode: millimetres, not micrometres or metres
    rms = float(default.id_basis[0].pow(2).sum(-1).mean().sqrt())
    assert 1.0 < rms < 15.0
    # a face 3 std away is still a face of adult size
    v = _np(default.shape(3.0 * torch.eye(default.n_id)[:1]))[0]
    assert 150.0 < v[:, 1].max() - v[:, 1].min() < 260.0


def test_albedo_is_skin_like(default):
    a = _np(default.mean_albedo)
    skin = _np(default.regions["skin"])
    mean = a[skin].mean(0)
    assert mean[0] > mean[1] > mean[2]  # skin is red > green > blue
    assert 0.3 < mean.mean() < 0.8
    lips, eyes = _np(default.regions["lips"]), _np(default.regions["eyes"])
    assert a[lips, 0].mean() / a[lips, 1].mean() > mean[0] / mean[1]  # lips redder
    assert a[eyes].mean() < a[skin].mean()  # eye openings darker
    # the first albedo mode is mostly a change of lightness (light to dark skin)
    first = _np(default.albedo_basis[0])
    assert abs(first.mean()) > 0.5 * np.abs(first).mean()


# ------------------------------------------------------------------ geometry and anatomy
def test_realistic_dimensions_in_mm(default):
    v = _np(default.mean_shape)
    lm = _np(default.landmarks68)
    outer = np.linalg.norm(v[lm[36]] - v[lm[45]])
    inner = np.linalg.norm(v[lm[39]] - v[lm[42]])
    assert 80.0 < outer < 100.0
    assert 26.0 < inner < 40.0
    height = v[:, 1].max() - v[:, 1].min()
    assert 180.0 < height < 210.0
    mouth = np.linalg.norm(v[lm[48]] - v[lm[54]])
    assert 40.0 < mouth < 60.0
    nose_to_chin = v[lm[33], 1] - v[lm[8], 1]
    assert 60.0 < nose_to_chin < 85.0
    # nose projects 20-45 mm in front of the eye corners
    assert 20.0 < v[lm[30], 2] - v[lm[[36, 45]], 2].mean() < 55.0


def test_landmark_semantics(default):
    v = _np(default.mean_shape)
    lm = _np(default.landmarks68)
    p = v[lm]
    # left/right pairs mirror each other about x = 0 (right side = -x)
    pairs = [
        (0, 16),
        (4, 12),
        (17, 26),
        (21, 22),
        (31, 35),
        (36, 45),
        (39, 42),
        (37, 44),
        (41, 46),
        (48, 54),
        (50, 52),
        (59, 55),
        (60, 64),
    ]
    for r, l in pairs:
        assert p[r, 0] < 0 < p[l, 0], (r, l)
        assert abs(p[r, 0] + p[l, 0]) < 2.0, (r, l)
        assert abs(p[r, 1] - p[l, 1]) < 2.0, (r, l)
    for k in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66):
        assert abs(p[k, 0]) < 1.0, k
    # eye corners level with each other, below the brows and above the nose tip
    eyes_y = p[36:48, 1]
    assert p[17:27, 1].min() > eyes_y.mean()
    assert eyes_y.min() > p[30, 1]
    # nose bridge goes down to the tip; the tip is the most protruding point of the central face
    assert np.all(np.diff(p[27:31, 1]) < 0)
    central = (np.abs(v[:, 0]) < 40) & (v[:, 1] > -90)
    assert abs(v[lm[30], 2] - v[central, 2].max()) < 1.0
    # mouth below the nose, chin lowest
    assert p[33, 1] > p[51, 1] > p[62, 1] >= p[66, 1] > p[57, 1] > p[8, 1]
    assert p[8, 1] == pytest.approx(p[:, 1].min())
    # upper eyelid above lower eyelid
    assert p[37, 1] > p[41, 1] and p[44, 1] > p[46, 1]
    # NoW landmarks are the iBUG ones
    assert torch.equal(default.now_landmarks7, default.landmarks68[list(NOW_LANDMARKS_FROM_IBUG68)])


def test_landmarks_follow_canonical_anatomy(small):
    uv = template_uv(SMALL)
    lm = _np(small.landmarks68)
    ex, ey = ANATOMY["eye_centre"]
    right_eye = uv[lm[36:42]].mean(0)
    assert right_eye == pytest.approx((-ex, ey), abs=3.0)
    assert uv[lm[62]] == pytest.approx(ANATOMY["mouth"], abs=1.5)
    assert uv.shape == (small.num_vertices, 2) and uv.dtype == np.float32


def test_face_normals_point_out_of_the_face(default):
    v = _np(default.mean_shape).astype(np.float64)
    n = vertex_normals(v, _np(default.triangles))
    face = _np(default.regions["face"])
    assert np.mean(n[face, 2] > 0) > 0.95
    # the renderer's normals agree
    from focus.render.shading import vertex_normals as torch_normals

    nt = _np(torch_normals(default.mean_shape[None].double(), default.triangles)[0])
    np.testing.assert_allclose(nt, n, atol=1e-6)


def test_triangles_counter_clockwise_seen_from_the_front(default):
    v = _np(default.mean_shape).astype(np.float64)
    f = _np(default.triangles)
    c = v[f].mean(1)
    frontal = (np.abs(c[:, 0]) < 35) & (c[:, 1] > -70) & (c[:, 1] < 80)
    a, b, d = v[f[frontal, 0], :2], v[f[frontal, 1], :2], v[f[frontal, 2], :2]
    signed = (b[:, 0] - a[:, 0]) * (d[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (d[:, 0] - a[:, 0])
    assert np.mean(signed > 0) > 0.97


def test_mesh_is_mirror_symmetric(small):
    t = template_mesh(SMALL.resolution)
    uv = template_uv(SMALL)
    np.testing.assert_allclose(uv[t.mirror, 0], -uv[:, 0], atol=1e-4)
    np.testing.assert_allclose(uv[t.mirror, 1], uv[:, 1], atol=1e-4)
    assert np.array_equal(t.mirror[t.mirror], np.arange(t.num_vertices))


# ------------------------------------------------------------------ expressions and the mouth slit
def test_expression_basis_orthogonal_and_blendshape_scaled(default):
    B = _np(default.exp_basis).astype(np.float64).reshape(default.n_exp, -1)
    G = B @ B.T
    off = G - np.diag(np.diag(G))
    assert np.abs(off).max() < 1e-4 * np.diag(G).max()
    peak = np.abs(_np(default.exp_basis)).max(axis=(1, 2))
    assert np.all(peak > 1.0) and np.all(peak < 30.0)  # weight 1 = a full expression, in mm
    assert len(expression_names()) == N_EXPRESSIONS and expression_names()[0] == "jaw_open"


def test_only_jaw_open_opens_the_mouth(default):
    t = template_mesh(EmbeddedModelSettings().resolution)
    upper = np.flatnonzero(t.lip_side > 0)
    lower = t.twin[upper]
    v0 = _np(default.mean_shape)
    np.testing.assert_array_equal(v0[upper], v0[lower])  # closed in the neutral face
    E = _np(default.exp_basis)
    gap = E[:, lower] - E[:, upper]
    assert np.abs(gap[1:]).max() < 1e-4
    lm = _np(default.landmarks68)
    opened = _np(default.shape(torch.zeros(1, default.n_id), torch.eye(default.n_exp)[:1]))[0]
    assert opened[lm[62], 1] - opened[lm[66], 1] > 10.0
    # identity never opens the slit either
    I = _np(default.id_basis)
    assert np.abs(I[:, upper] - I[:, lower]).max() < 1e-4


def test_lowdin_orthogonalisation_against_reference():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(5, 30, 3))
    O, cos = lowdin_orthogonalise(F)
    flat, ref = O.reshape(5, -1), F.reshape(5, -1)
    G = flat @ flat.T
    np.testing.assert_allclose(G - np.diag(np.diag(G)), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), np.linalg.norm(ref, axis=1))
    # already orthogonal input is returned unchanged
    q, _ = np.linalg.qr(rng.normal(size=(90, 4)))
    O2, cos2 = lowdin_orthogonalise((q.T * 3.0).reshape(4, 30, 3))
    np.testing.assert_allclose(O2.reshape(4, -1), q.T * 3.0, atol=1e-9)
    np.testing.assert_allclose(cos2, 1.0)
    # Löwdin is the closest orthonormal set: no better than the input's own QR basis is impossible
    un = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    on = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    qr, _ = np.linalg.qr(un.T)
    assert np.sum((on - un) ** 2) <= np.sum((qr.T * np.sign(np.sum(qr.T * un, 1))[:, None] - un) ** 2) + 1e-9
    with pytest.raises(ValueError, match="dependent"):
        lowdin_orthogonalise(np.stack([F[0], 2.0 * F[0]]))


# ------------------------------------------------------------------ regions
def test_regions_are_consistent(default):
    R = {k: _np(v) for k, v in default.regions.items()}
    v = _np(default.mean_shape)
    lm = _np(default.landmarks68)
    assert not np.any(R["skin"] & ~R["face"])
    for part in ("eyes", "brows", "lips", "nostrils"):
        assert R[part].sum() > 0 and not np.any(R[part] & R["skin"]), part
    assert np.array_equal(R["eyes"], R["eye_left"] | R["eye_right"])
    assert np.all(v[R["eye_left"], 0] > 0) and np.all(v[R["eye_right"], 0] < 0)
    assert np.array_equal(R["lips"], R["upper_lip"] | R["lower_lip"])
    # region centroids sit where the landmarks say the features are
    assert v[R["eye_right"], :2].mean(0) == pytest.approx(v[lm[36:42], :2].mean(0), abs=3.0)
    assert v[R["lips"], 1].mean() == pytest.approx(v[lm[48:60], 1].mean(), abs=3.0)
    assert v[R["brow_left"], 1].mean() == pytest.approx(v[lm[22:27], 1].mean(), abs=4.0)
    assert v[R["beard"], 1].mean() < v[lm[33], 1]
    assert v[R["forehead"], 1].min() > v[lm[27], 1]
    assert R["face"].mean() > 0.6


# ------------------------------------------------------------------ files and CLI
def test_save_load_round_trip(small, tmp_path):
    path = tmp_path / "m.npz"
    save_face_model(small, path)
    back = load_face_model(path)
    for name in (
        "mean_shape",
        "id_basis",
        "exp_basis",
        "mean_albedo",
        "albedo_basis",
        "triangles",
        "landmarks68",
        "now_landmarks7",
        "id_std",
        "exp_std",
        "albedo_std",
    ):
        assert torch.equal(getattr(back, name), getattr(small, name)), name
    assert back.regions.keys() == small.regions.keys()
    assert all(torch.equal(back.regions[k], small.regions[k]) for k in small.regions)
    assert back.name == small.name


@pytest.mark.parametrize("sub", ["generate", "preview"])
def test_cli_help(sub, capsys):
    from focus.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["model", sub, "--help"])
    assert exc.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_cli_generate_writes_a_loadable_model(tmp_path, capsys):
    from focus.cli import main

    out = tmp_path / "gen.npz"
    rc = main(
        [
            "model",
            "generate",
            "--out",
            str(out),
            "--params",
            str(tmp_path / "absent.yaml"),
            "--resolution",
            "31",
            "--population-size",
            "30",
            "--albedo-population-size",
            "30",
            "--n-id",
            "8",
            "--n-albedo",
            "6",
            "--n-exp",
            "5",
            "--seed",
            "4",
        ]
    )
    assert rc == 0
    m = load_face_model(out)
    assert (m.n_id, m.n_exp, m.n_albedo) == (8, 5, 6)
    assert "seed 4" in m.name


def test_cli_generate_reports_bad_settings(tmp_path, capsys):
    from focus.cli import main

    rc = main(
        [
            "model",
            "generate",
            "--out",
            str(tmp_path / "x.npz"),
            "--params",
            str(tmp_path / "absent.yaml"),
            "--population-size",
            "20",
            "--n-id",
            "40",
        ]
    )
    assert rc == 1
    assert "n_id" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
