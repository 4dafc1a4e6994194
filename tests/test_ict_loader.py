"""ICT-FaceKit Light loader on the shared subset (../shared/ict-facekit/FaceXModel)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from focus.errors import InputFileError
from focus.facemodel.loaders import detect_format, load_any
from focus.facemodel.loaders._common import crop_mesh
from focus.facemodel.loaders.ict import (
    ICT_REGIONS,
    load_ict,
    orthogonalize_modes,
    read_obj_triangles,
    read_obj_vertices,
)
from focus.facemodel.model import NOW_LANDMARKS_FROM_IBUG68, FaceModel

NARROW = ICT_REGIONS["narrow_face"]


def albedo_function(p: np.ndarray) -> np.ndarray:
    """A smooth RGB albedo of position (source units: decimetres)."""
    return np.stack([0.5 + 0.3 * np.sin(8 * p[:, 0]), 0.5 + 0.3 * np.cos(6 * p[:, 1]), 0.4 + 0.2 * p[:, 2]], axis=1)


@functools.cache
def albedo_source(folder: str) -> FaceModel:
    """A small albedo model: ICT's narrow face (from the raw OBJ), in decimetres, rotated and shifted."""
    neutral = Path(folder) / "generic_neutral_mesh.obj"
    v = read_obj_vertices(neutral)
    tri, _ = crop_mesh(np.arange(NARROW), read_obj_triangles(neutral, len(v)), len(v))
    lm = np.asarray(json.loads((Path(folder) / "vertex_indices.json").read_text())["idx_to_landmark_verts"])
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    src_v = (v[:NARROW] / 10.0) @ rot.T + [0.2, -0.1, 0.5]  # cm -> dm, another frame
    alb = albedo_function(v[:NARROW] / 10.0)
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return FaceModel(
        mean_shape=f32(src_v),
        id_basis=torch.zeros(1, NARROW, 3),
        exp_basis=torch.zeros(1, NARROW, 3),
        mean_albedo=f32(alb),
        albedo_basis=f32(np.stack([0.1 * alb, -0.05 * alb])),
        triangles=torch.from_numpy(tri),
        landmarks68=torch.from_numpy(lm.astype(np.int64)),
        now_landmarks7=torch.from_numpy(lm[list(NOW_LANDMARKS_FROM_IBUG68)].astype(np.int64)),
        albedo_std=torch.tensor([0.1, 0.05]),
        name="ICT narrow face test source",
    ).validate("<test>")


@functools.cache
def ict_model(folder: str, **kw) -> FaceModel:
    return load_ict(folder, albedo_source=albedo_source(folder), **kw)


def vertex_normals(v: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    fn = torch.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]], dim=1)
    n = torch.zeros_like(v).index_add_(0, tri.reshape(-1), fn.repeat_interleave(3, 0))
    return n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)


def test_ict_sizes_units_and_landmarks(ict_dir: Path) -> None:
    m = ict_model(str(ict_dir))
    assert m.num_vertices == ICT_REGIONS["face"] == 9409
    assert m.n_id == 10 and m.n_exp == 10 and m.n_albedo == 2  # the subset: 10 identities, 10 expressions
    assert int(m.triangles.max()) < 9409 and m.num_triangles > 18000
    lm = m.mean_shape[m.landmarks68]
    iod = float((lm[36] - lm[45]).norm())
    assert 85.0 < iod < 105.0, iod  # cm -> mm
    assert bool((m.landmarks68 < NARROW).all())  # inside the kept region, and the photometric one
    assert bool(m.regions["face"][m.landmarks68].all()) and int(m.regions["face"].sum()) == NARROW
    assert torch.equal(m.now_landmarks7, m.landmarks68[list(NOW_LANDMARKS_FROM_IBUG68)])
    # frame: subject's right eye (iBUG 36) at -x, brows above the mouth, nose tip in front
    assert lm[36, 0] < 0 < lm[45, 0] and lm[19, 1] > lm[57, 1] and lm[30, 2] > lm[36, 2] + 15
    assert float(m.mean_shape.mean(0).abs().max()) < 1e-3  # recentred


def test_ict_faces_plus_z_and_ccw(ict_dir: Path) -> None:
    m = ict_model(str(ict_dir))
    n = vertex_normals(m.mean_shape.double(), m.triangles)
    nose, chin, forehead = m.landmarks68[30], m.landmarks68[8], m.landmarks68[27]
    assert float(n[nose, 2]) > 0.5 and float(n[forehead, 2]) > 0.8 and float(n[chin, 2]) > 0.3
    # outward normals on the cheek contour point away from the centre
    assert float(n[m.landmarks68[2], 0]) < 0 < float(n[m.landmarks68[14], 0])


def test_ict_identity_reorthogonalised(ict_dir: Path) -> None:
    m = ict_model(str(ict_dir))
    dirs = (m.id_basis / m.id_std[:, None, None]).reshape(m.n_id, -1).double()
    assert torch.allclose(dirs @ dirs.T, torch.eye(m.n_id, dtype=torch.float64), atol=1e-5)
    assert bool((m.id_std[:-1] >= m.id_std[1:]).all()) and float(m.id_std[-1]) > 0
    # same distribution as the raw cropped modes: equal Gram matrices D^T D on random probes
    neutral = read_obj_vertices(ict_dir / "generic_neutral_mesh.obj")
    raw = np.stack([(read_obj_vertices(ict_dir / f"identity{i:03d}.obj") - neutral)[:9409] * 10 for i in range(10)])
    d = torch.from_numpy(raw.reshape(10, -1))
    b = m.id_basis.reshape(m.n_id, -1).double()
    probe = torch.randn(d.shape[1], 4, dtype=torch.float64)
    assert torch.allclose((b @ probe).pow(2).sum(0), (d @ probe).pow(2).sum(0), rtol=1e-4)


def test_ict_expressions_are_blendshapes(ict_dir: Path) -> None:
    m = ict_model(str(ict_dir))
    names = json.loads((ict_dir / "vertex_indices.json").read_text())["expressions"]
    present = [n for n in names if (ict_dir / f"{n}.obj").is_file()]
    neutral = read_obj_vertices(ict_dir / "generic_neutral_mesh.obj")
    k = present.index("jawOpen")
    want = (read_obj_vertices(ict_dir / "jawOpen.obj") - neutral)[:9409] * 10
    assert torch.allclose(m.exp_basis[k], torch.tensor(want, dtype=torch.float32), atol=1e-4)
    assert float(m.exp_basis[k, m.landmarks68[8], 1]) < -5  # the chin drops
    assert torch.equal(m.exp_std, torch.ones(m.n_exp))


def test_ict_albedo_transferred(ict_dir: Path) -> None:
    m = ict_model(str(ict_dir))
    src = albedo_source(str(ict_dir))
    neutral = read_obj_vertices(ict_dir / "generic_neutral_mesh.obj")
    want = albedo_function(neutral[:NARROW] / 10.0)
    assert np.allclose(m.mean_albedo[:NARROW].numpy(), want, atol=1e-4)
    assert np.allclose(m.albedo_basis[1, :NARROW].numpy(), -0.05 * want, atol=1e-4)
    assert torch.allclose(m.albedo_std, src.albedo_std)
    assert bool(torch.isfinite(m.mean_albedo).all()) and "ICT narrow face test source" in m.name


def test_ict_narrow_region_and_options(ict_dir: Path) -> None:
    m = load_any(
        ict_dir,
        region="narrow_face",
        n_id=4,
        n_exp=3,
        n_albedo=1,
        orthogonalize_expressions=True,
        albedo_source=albedo_source(str(ict_dir)),
    )
    assert detect_format(ict_dir) == "ict" and detect_format(ict_dir.parent) == "ict"
    assert m.num_vertices == NARROW and (m.n_id, m.n_exp, m.n_albedo) == (4, 3, 1)
    dirs = (m.exp_basis / m.exp_std[:, None, None]).reshape(3, -1).double()
    assert torch.allclose(dirs @ dirs.T, torch.eye(3, dtype=torch.float64), atol=1e-5)


def test_orthogonalize_modes_small() -> None:
    rng = np.random.default_rng(0)
    modes = rng.normal(size=(4, 30, 3))
    out, s = orthogonalize_modes(modes)
    assert out.shape == (4, 30, 3) and np.all(np.diff(s) <= 0)
    gram_in = modes.reshape(4, -1).T @ modes.reshape(4, -1)
    gram_out = out.reshape(4, -1).T @ out.reshape(4, -1)
    assert np.allclose(gram_in, gram_out)
    dup, s2 = orthogonalize_modes(np.concatenate([modes, modes[:1]]))  # rank 4: the zero mode is dropped
    assert dup.shape[0] == 4


def write_obj(path: Path, verts: np.ndarray, faces: list[list[int]]) -> None:
    lines = (
        [f"v {x:g} {y:g} {z:g}" for x, y, z in verts]
        + ["vt 0 0"]
        + ["f " + " ".join(f"{i}/1" for i in f) for f in faces]
    )
    path.write_text("\n".join(lines) + "\n")


def test_obj_reader_quads_and_errors(tmp_path: Path) -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], dtype=float)
    p = tmp_path / "m.obj"
    write_obj(p, v, [[1, 2, 3, 4], [2, 5, 3]])
    assert np.allclose(read_obj_vertices(p), v)
    assert read_obj_triangles(p, 5).tolist() == [[1, 4, 2], [0, 1, 2], [0, 2, 3]]
    write_obj(p, v, [[1, 2, 9]])
    with pytest.raises(InputFileError, match="outside"):
        read_obj_triangles(p, 5)
    p.write_text("v 1 2 x\n")
    with pytest.raises(InputFileError, match=str(p)):
        read_obj_vertices(p)


def test_ict_errors_name_the_file(tmp_path: Path, ict_dir: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        load_ict(tmp_path / "nothing", albedo_source=albedo_source(str(ict_dir)))
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    with pytest.raises(InputFileError, match="generic_neutral_mesh.obj"):
        load_ict(folder, albedo_source=albedo_source(str(ict_dir)))
    # a tiny fake checkout: too few vertices for the face region
    v = np.zeros((10, 3))
    write_obj(folder / "generic_neutral_mesh.obj", v, [[1, 2, 3]])
    with pytest.raises(InputFileError, match="9409"):
        load_ict(folder, albedo_source=albedo_source(str(ict_dir)))


def test_ict_identity_with_wrong_vertex_count(tmp_path: Path, ict_dir: Path) -> None:
    """A truncated identity OBJ is reported by name (the real neutral mesh is linked, not copied)."""
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    for name in ("generic_neutral_mesh.obj", "vertex_indices.json"):
        (folder / name).symlink_to(ict_dir / name)
    (folder / "identity000.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(InputFileError) as exc:
        load_ict(folder, albedo_source=albedo_source(str(ict_dir)))
    assert "identity000.obj" in str(exc.value) and "vertices" in str(exc.value)


def test_ict_without_albedo_source_uses_the_embedded_model(ict_dir: Path) -> None:
    """``albedo_source=None`` falls back to ``focus.facemodel.embedded``, or says how to proceed."""
    import importlib.util

    from focus.errors import FocusError

    if importlib.util.find_spec("focus.facemodel.embedded") is not None:
        pytest.skip("embedded model present: covered by the slow test below")
    with pytest.raises(FocusError, match="albedo_source"):
        load_ict(ict_dir, n_id=2, n_exp=1)


@pytest.mark.slow
def test_ict_with_embedded_albedo(ict_dir: Path) -> None:
    pytest.importorskip("focus.facemodel.embedded")
    m = load_ict(ict_dir, n_id=2, n_exp=1)
    assert m.n_albedo > 0 and bool(torch.isfinite(m.mean_albedo).all())
    assert 0.0 <= float(m.mean_albedo[m.regions["face"]].mean()) <= 1.0
