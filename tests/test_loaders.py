"""Face-model loaders on small files written here in each real format (keys, dtypes, 1-based ids, units)."""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from focus.errors import InputFileError
from focus.facemodel.loaders import FORMATS, detect_format, load_any, load_bfm2009, load_bfm2017, load_bfm_front
from focus.facemodel.loaders._common import vector_area
from focus.facemodel.loaders.albedo_transfer import (
    barycentric,
    closest_surface_points,
    transfer_albedo,
    transfer_landmarks,
)
from focus.facemodel.model import NOW_LANDMARKS_FROM_IBUG68, FaceModel, load_face_model

NX, NY = 12, 10  # grid of the synthetic face patch
NV = NX * NY


# ---------------------------------------------------------------------- synthetic face patch
def face_patch() -> tuple[np.ndarray, np.ndarray]:
    """A spherical cap looking along +z (mm) and its triangles, CCW seen from +z (0-based)."""
    x, y = np.meshgrid(np.linspace(-60, 60, NX), np.linspace(-70, 70, NY))
    z = np.sqrt(150.0**2 - x**2 - y**2) - 60.0
    verts = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    tris = []
    for i in range(NY - 1):
        for j in range(NX - 1):
            a, b, c, d = i * NX + j, i * NX + j + 1, (i + 1) * NX + j + 1, (i + 1) * NX + j
            tris += [(a, b, c), (a, c, d)]
    return verts, np.asarray(tris, dtype=np.int64)


def landmark_ids(rng: np.random.Generator, n: int = NV) -> np.ndarray:
    return rng.choice(n, size=68, replace=False).astype(np.int64)


def flat(v: np.ndarray) -> np.ndarray:
    """(N, 3) -> (3N,) interleaved x0 y0 z0 x1 ..."""
    return np.ascontiguousarray(v).reshape(-1)


def basis_cols(b: np.ndarray) -> np.ndarray:
    """(K, N, 3) -> (3N, K) with interleaved rows."""
    return np.ascontiguousarray(b.reshape(b.shape[0], -1).T)


def winding_is_outward(model: FaceModel) -> bool:
    return vector_area(model.mean_shape.double().numpy(), model.triangles.numpy())[2] > 0


def err_text(exc: pytest.ExceptionInfo) -> str:
    return str(exc.value)


# ---------------------------------------------------------------------- Deep3DFaceRecon front model
def write_front(path: Path, rng: np.random.Generator, *, cw: bool = True, **override) -> dict:
    verts, tris = face_patch()
    kid, kexp, ktex = 6, 5, 4
    d = {
        "meanshape": (flat(verts) / 100.0)[None, :],  # dm, (1, 3N)
        "idBase": rng.normal(size=(3 * NV, kid)) * 0.01,
        "exBase": rng.normal(size=(3 * NV, kexp)) * 0.01,
        "meantex": rng.uniform(0, 255, size=(1, 3 * NV)),
        "texBase": rng.normal(size=(3 * NV, ktex)) * 10,
        "tri": (tris[:, [0, 2, 1]] if cw else tris).astype(np.float64) + 1,
        "point_buf": np.ones((NV, 8)),
        "keypoints": (landmark_ids(rng) + 1)[None, :].astype(np.float64),
        "frontmask2_idx": (np.arange(10, 60) + 1)[:, None].astype(np.float64),
        "skinmask": (np.arange(NV) % 3 == 0).astype(np.float64)[None, :],
        "tri_mask2": tris[:20].astype(np.float64) + 1,
    }
    d.update(override)
    d = {k: v for k, v in d.items() if v is not None}
    scipy.io.savemat(path, d)
    return d


def test_front_units_indices_scaling_and_winding(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    p = tmp_path / "BFM_model_front.mat"
    d = write_front(p, rng, cw=True)
    m = load_bfm_front(p, recenter=False)
    verts, tris = face_patch()
    assert m.num_vertices == NV and m.n_id == 6 and m.n_exp == 5 and m.n_albedo == 4
    # units: decimetres -> mm (a known vertex), texture 0..255 -> [0, 1]
    assert torch.allclose(m.mean_shape[7], torch.tensor(verts[7], dtype=torch.float32), atol=1e-4)
    assert torch.allclose(m.mean_albedo[3], torch.tensor(d["meantex"][0, 9:12] / 255, dtype=torch.float32))
    # bases already std-scaled: columns reshaped per vertex, scaled to mm
    assert torch.allclose(m.id_basis[2, 5], torch.tensor(d["idBase"][15:18, 2] * 100, dtype=torch.float32))
    assert torch.allclose(m.exp_basis[4, 9], torch.tensor(d["exBase"][27:30, 4] * 100, dtype=torch.float32))
    assert torch.allclose(m.albedo_basis[1, 0], torch.tensor(d["texBase"][0:3, 1] / 255, dtype=torch.float32))
    # 1-based -> 0-based, and the clockwise file is flipped to CCW seen from +z
    assert torch.equal(m.landmarks68, torch.from_numpy(d["keypoints"][0].astype(np.int64) - 1))
    assert winding_is_outward(m)
    assert {tuple(sorted(t)) for t in m.triangles.tolist()} == {tuple(sorted(t)) for t in tris.tolist()}
    assert torch.equal(m.triangles, torch.from_numpy(tris))  # flipping the flipped file gives the original
    # small file: NoW 7 from the keypoints; regions from frontmask2_idx / skinmask
    assert torch.equal(m.now_landmarks7, m.landmarks68[list(NOW_LANDMARKS_FROM_IBUG68)])
    assert m.regions["face"].sum() == 50 and bool(m.regions["face"][10]) and not bool(m.regions["face"][9])
    assert torch.equal(m.regions["skin"], torch.from_numpy(np.arange(NV) % 3 == 0))


def test_front_ccw_file_kept_and_recentred(tmp_path: Path) -> None:
    p = tmp_path / "BFM_model_front.mat"
    write_front(p, np.random.default_rng(1), cw=False)
    m = load_bfm_front(p, n_id=3, n_exp=2, n_albedo=1)
    _, tris = face_patch()
    assert torch.equal(m.triangles, torch.from_numpy(tris))
    assert m.n_id == 3 and m.n_exp == 2 and m.n_albedo == 1
    assert m.mean_shape.mean(0).abs().max() < 1e-3


@pytest.mark.parametrize(
    "override, needle",
    [
        ({"idBase": None}, "idBase"),  # missing key
        ({"idBase": np.zeros((3 * NV + 3, 4))}, "shape"),  # wrong shape
        ({"tri": face_patch()[1].astype(np.float64)}, "0-based"),  # 0-based where 1-based expected
        ({"tri": face_patch()[1].astype(np.float64) + 2}, "outside"),  # index beyond N
        ({"keypoints": np.arange(1, 60)[None, :].astype(np.float64)}, "keypoints"),
        ({"meanshape": np.full((1, 3 * NV), np.nan)}, "NaN"),
    ],
)
def test_front_errors_name_the_file(tmp_path: Path, override: dict, needle: str) -> None:
    p = tmp_path / "BFM_model_front.mat"
    write_front(p, np.random.default_rng(2), **override)
    with pytest.raises(InputFileError) as exc:
        load_bfm_front(p)
    assert str(p) in err_text(exc) and needle in err_text(exc)


def test_front_missing_and_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        load_bfm_front(tmp_path / "nope.mat")
    bad = tmp_path / "BFM_model_front.mat"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(InputFileError, match=str(bad)):
        load_bfm_front(bad)


# ---------------------------------------------------------------------- BFM 2009 + Exp_Pca.bin
K09, KEXP09 = 7, 5
DROPPED = np.array([0, NX - 1, NV - 1])  # vertices the expression basis does not cover


def write_exp_pca(path: Path, comps: np.ndarray, mean: np.ndarray) -> None:
    """Guo et al.'s layout: int32 n, 3M float32 mean, then n blocks of 3M float32 (xyz interleaved)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<i", comps.shape[0]))
        f.write(mean.astype("<f4").tobytes())
        f.write(comps.reshape(comps.shape[0], -1).astype("<f4").tobytes())


def write_bfm09(folder: Path, rng: np.random.Generator, *, deep3d: bool = True, **override) -> dict:
    verts, tris = face_patch()
    pc = np.linalg.qr(rng.normal(size=(3 * NV, K09)))[0]
    tpc = np.linalg.qr(rng.normal(size=(3 * NV, K09)))[0]
    mat = {
        "shapeMU": (flat(verts) * 1000.0)[:, None].astype(np.float32),  # micrometres, (3N, 1)
        "shapePC": pc.astype(np.float32),
        "shapeEV": np.linspace(9e4, 1e4, K09)[:, None],
        "texMU": rng.uniform(0, 255, size=(3 * NV, 1)).astype(np.float32),
        "texPC": tpc.astype(np.float32),
        "texEV": np.linspace(500, 100, K09)[:, None],
        "tl": tris[:, [0, 2, 1]].astype(np.float64) + 1,  # 1-based; clockwise seen from +z
        "segbin": np.zeros((NV, 4)),
    }
    mat.update({k: v for k, v in override.items() if k in mat or k == "extra"})
    scipy.io.savemat(folder / "01_MorphableModel.mat", {k: v for k, v in mat.items() if v is not None})
    trim = np.setdiff1d(np.arange(NV), DROPPED)  # sorted, like the real trimIndex
    scipy.io.savemat(folder / "BFM_exp_idx.mat", {"trimIndex": (trim + 1)[:, None].astype(np.float64)})
    m = trim.size
    comps = rng.normal(size=(KEXP09, m, 3)).astype(np.float32)
    write_exp_pca(folder / "Exp_Pca.bin", comps, rng.normal(size=3 * m))
    std = np.linspace(3e3, 5e2, KEXP09)
    np.savetxt(folder / "std_exp.txt", std)
    out = {"mat": mat, "trim": trim, "comps": comps, "std": std, "tris": tris, "verts": verts}
    if deep3d:
        front = np.arange(5, m - 5)  # 0-based ids into the expression subset
        kp = rng.choice(front.size, size=68, replace=False)
        scipy.io.savemat(folder / "BFM_front_idx.mat", {"idx": (front + 1)[:, None].astype(np.float64)})
        scipy.io.savemat(
            folder / "facemodel_info.mat",
            {
                "keypoints": (kp + 1)[None, :].astype(np.float64),
                "frontmask2_idx": (np.arange(0, 40) + 1)[:, None].astype(np.float64),
                "skinmask": (np.arange(front.size) % 2).astype(np.float64)[None, :],
                "tri": np.ones((3, 3)),
                "point_buf": np.ones((3, 3)),
                "tri_mask2": np.ones((3, 3)),
            },
        )
        out.update(front=front, keypoints=kp)
    return out


def test_bfm2009_units_scaling_expression_layout_and_landmarks(tmp_path: Path) -> None:
    d = write_bfm09(tmp_path, np.random.default_rng(3))
    m = load_bfm2009(tmp_path / "01_MorphableModel.mat", recenter=False, n_exp=4)
    trim, verts = d["trim"], d["verts"]
    assert m.num_vertices == trim.size and m.n_id == K09 and m.n_exp == 4 and m.n_albedo == K09
    # kept vertex j is BFM vertex trim[j]; micrometres -> mm
    j = 17
    assert torch.allclose(m.mean_shape[j], torch.tensor(verts[trim[j]], dtype=torch.float32), atol=1e-3)
    # identity: shapePC column scaled by shapeEV (a std), micrometres -> mm
    pc, ev = d["mat"]["shapePC"], d["mat"]["shapeEV"][:, 0]
    want = pc[3 * trim[j] : 3 * trim[j] + 3, 2] * ev[2] / 1000.0
    assert torch.allclose(m.id_basis[2, j], torch.tensor(want, dtype=torch.float32), rtol=1e-5, atol=1e-6)
    assert torch.allclose(m.id_std, torch.tensor(ev / 1000.0, dtype=torch.float32))
    # expression: block k of Exp_Pca.bin, vertex j of the subset, xyz interleaved; x std_exp, um -> mm
    want = d["comps"][3, j] * d["std"][3] / 1000.0
    assert torch.allclose(m.exp_basis[3, j], torch.tensor(want, dtype=torch.float32), rtol=1e-5)
    # texture 0..255 -> [0, 1], basis x texEV / 255
    tpc, tev = d["mat"]["texPC"], d["mat"]["texEV"][:, 0]
    assert torch.allclose(
        m.albedo_basis[1, j],
        torch.tensor(tpc[3 * trim[j] : 3 * trim[j] + 3, 1] * tev[1] / 255, dtype=torch.float32),
        atol=1e-6,
    )
    # triangles: touching a dropped vertex -> dropped; others renumbered; 1-based -> 0-based; CCW
    assert winding_is_outward(m)
    keep_tris = [t for t in d["tris"].tolist() if not set(t) & set(DROPPED.tolist())]
    got = {tuple(sorted(trim[t].tolist())) for t in m.triangles.numpy()}
    assert got == {tuple(sorted(t)) for t in keep_tris}
    # landmarks through Deep3DFaceRecon's chain: keypoint (front id) -> subset id -> kept id
    assert torch.equal(m.landmarks68, torch.from_numpy(d["front"][d["keypoints"]]))
    assert m.regions["face"].sum() == 40 and bool(m.regions["face"][d["front"][0]])


def test_bfm2009_crops(tmp_path: Path) -> None:
    d = write_bfm09(tmp_path, np.random.default_rng(4))
    full = load_bfm2009(tmp_path, crop="none", recenter=False)
    assert full.num_vertices == NV
    assert float(full.exp_basis[:, DROPPED].abs().max()) == 0.0  # no expression data there
    assert torch.equal(full.landmarks68, torch.from_numpy(d["trim"][d["front"][d["keypoints"]]]))
    front = load_bfm2009(tmp_path, crop="front", recenter=False)
    assert front.num_vertices == d["front"].size
    assert torch.equal(front.landmarks68, torch.from_numpy(d["keypoints"]))
    assert torch.allclose(front.mean_shape, full.mean_shape[d["trim"][d["front"]]])


def test_bfm2009_explicit_landmarks_without_deep3d_files(tmp_path: Path) -> None:
    d = write_bfm09(tmp_path, np.random.default_rng(5), deep3d=False)
    with pytest.raises(InputFileError) as exc:
        load_bfm2009(tmp_path / "01_MorphableModel.mat")
    assert "01_MorphableModel.mat" in err_text(exc) and "landmarks68" in err_text(exc)
    ids = np.random.default_rng(6).choice(d["trim"], size=68, replace=False)
    lm_file = tmp_path / "lm.txt"
    np.savetxt(lm_file, ids, fmt="%d")
    m = load_bfm2009(tmp_path / "01_MorphableModel.mat", landmarks68=lm_file)
    old_to_new = {int(v): i for i, v in enumerate(d["trim"])}
    assert m.landmarks68.tolist() == [old_to_new[int(i)] for i in ids]
    assert torch.equal(m.now_landmarks7, m.landmarks68[list(NOW_LANDMARKS_FROM_IBUG68)])
    assert bool(m.regions["face"].all())
    bad = ids.copy()
    bad[0] = DROPPED[1]  # a vertex the expression crop drops
    with pytest.raises(InputFileError, match="outside the kept region"):
        load_bfm2009(tmp_path / "01_MorphableModel.mat", landmarks68=bad)


def test_bfm2009_errors_name_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    write_bfm09(tmp_path, rng)
    mat = tmp_path / "01_MorphableModel.mat"
    # truncated binary
    exp = tmp_path / "Exp_Pca.bin"
    data = exp.read_bytes()
    exp.write_bytes(data[:-10])
    with pytest.raises(InputFileError) as exc:
        load_bfm2009(mat)
    assert str(exp) in err_text(exc) and "truncated" in err_text(exc)
    exp.write_bytes(data[:2])
    with pytest.raises(InputFileError, match="truncated"):
        load_bfm2009(mat)
    exp.write_bytes(data + b"\0" * 12)
    with pytest.raises(InputFileError, match="more than"):
        load_bfm2009(mat)
    exp.write_bytes(data)
    # std_exp.txt with the wrong count
    std = tmp_path / "std_exp.txt"
    np.savetxt(std, np.ones(KEXP09 + 1))
    with pytest.raises(InputFileError) as exc:
        load_bfm2009(mat)
    assert str(std) in err_text(exc)
    np.savetxt(std, np.ones(KEXP09))
    # missing side file
    (tmp_path / "BFM_exp_idx.mat").rename(tmp_path / "moved.mat")
    with pytest.raises(InputFileError, match="BFM_exp_idx.mat.*not found"):
        load_bfm2009(mat)
    (tmp_path / "moved.mat").rename(tmp_path / "BFM_exp_idx.mat")
    # missing key, wrong shape, 0-based triangles
    for override, needle in (
        ({"tl": None}, "tl"),
        ({"shapePC": np.zeros((3 * NV - 3, K09), np.float32)}, "shapePC"),
        ({"tl": face_patch()[1].astype(np.float64)}, "0-based"),
    ):
        write_bfm09(tmp_path, rng, **override)
        with pytest.raises(InputFileError) as exc:
            load_bfm2009(mat)
        assert str(mat) in err_text(exc) and needle in err_text(exc)


# ---------------------------------------------------------------------- BFM 2017 (.h5)
BASEL_NOW = (
    "right.eye.corner_outer",
    "right.eye.corner_inner",
    "left.eye.corner_inner",
    "left.eye.corner_outer",
    "center.nose.attachement_to_philtrum",
    "right.lips.corner",
    "left.lips.corner",
)


def write_bfm2017(
    path: Path,
    rng: np.random.Generator,
    *,
    cells: np.ndarray | None = None,
    drop: str | None = None,
    landmarks: dict | None = None,
) -> dict:
    verts, tris = face_patch()
    out = {"verts": verts, "tris": tris}
    with h5py.File(path, "w") as f:
        for group, k in (("shape", 9), ("expression", 6), ("color", 8)):
            basis = np.linalg.qr(rng.normal(size=(3 * NV, k)))[0].astype(np.float32)  # orthonormal columns
            var = np.linspace(400.0, 4.0, k).astype(np.float32)
            mean = (
                flat(verts)
                if group == "shape"
                else rng.normal(size=3 * NV) * (0.5 if group == "expression" else 0.01)
                + (0.5 if group == "color" else 0)
            )
            for name, arr in (
                ("mean", mean.astype(np.float32)),
                ("pcaBasis", basis),
                ("pcaVariance", var),
                ("noiseVariance", np.float32(1.0)),
            ):
                if f"{group}/model/{name}" != drop:
                    f.create_dataset(f"{group}/model/{name}", data=arr)
            f.create_dataset(f"{group}/representer/points", data=verts.T.astype(np.float32))  # (3, N)
            out[group] = (mean, basis, var)
        c = tris.T.astype(np.int32) if cells is None else cells  # (3, F), 0-based
        if drop != "shape/representer/cells":
            f.create_dataset("shape/representer/cells", data=c)
        if landmarks is not None:
            f.create_dataset("metadata/landmarks/json", data=json.dumps(landmarks))
    return out


def test_bfm2017_layout_scaling_and_landmarks(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    verts, _ = face_patch()
    named = {name: verts[10 + 3 * i] + 0.1 for i, name in enumerate(BASEL_NOW)}
    named["center.nose.tip"] = verts[55]
    p = tmp_path / "model2017-1_bfm_nomouth.h5"
    d = write_bfm2017(p, rng, landmarks={k: v.tolist() for k, v in named.items()})
    lm = landmark_ids(rng)
    m = load_bfm2017(p, landmarks68=lm.tolist(), n_id=5, recenter=False, add_expression_mean=False)
    assert m.num_vertices == NV and m.n_id == 5 and m.n_exp == 6 and m.n_albedo == 8
    assert torch.allclose(m.mean_shape[33], torch.tensor(verts[33], dtype=torch.float32), atol=1e-4)  # mm already
    for attr, group, k in (("id_basis", "shape", 3), ("exp_basis", "expression", 5), ("albedo_basis", "color", 0)):
        _, basis, var = d[group]
        want = basis[:, k].reshape(NV, 3) * np.sqrt(var[k])  # column k times sqrt(variance)
        assert torch.allclose(getattr(m, attr)[k], torch.tensor(want, dtype=torch.float32), atol=1e-5)
    assert torch.allclose(m.exp_std, torch.tensor(np.sqrt(d["expression"][2]), dtype=torch.float32))
    assert torch.allclose(m.mean_albedo, torch.tensor(d["color"][0].reshape(NV, 3), dtype=torch.float32))
    assert winding_is_outward(m) and torch.equal(m.triangles, torch.from_numpy(d["tris"]))
    assert m.landmarks68.tolist() == lm.tolist()
    assert m.now_landmarks7.tolist() == [10 + 3 * i for i in range(7)]  # nearest vertices of the named points
    with_exp = load_bfm2017(p, landmarks68=lm, recenter=False)  # expression mean added by default
    assert torch.allclose(
        with_exp.mean_shape, torch.tensor(verts + d["expression"][0].reshape(NV, 3), dtype=torch.float32), atol=1e-4
    )


def test_bfm2017_landmark_transfer_from_source(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    verts, tris = face_patch()
    lm = landmark_ids(rng)
    # the Basel names of iBUG points 36, 39, 42, 45, 33, 48, 54 at those landmark vertices
    named = {name: verts[lm[i]] for name, i in zip(BASEL_NOW, NOW_LANDMARKS_FROM_IBUG68)}
    p = tmp_path / "bfm17.h5"
    write_bfm2017(p, rng, landmarks={k: v.tolist() for k, v in named.items()})
    # the source: the same patch in decimetres, shifted (a different model frame)
    src = small_model(verts / 100.0 + [0.3, -0.2, 1.0], tris, lm)
    m = load_bfm2017(p, landmark_source=src)
    assert m.landmarks68.tolist() == lm.tolist()
    with pytest.raises(InputFileError, match="landmarks68"):
        load_bfm2017(p)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"drop": "shape/model/pcaBasis"}, "shape/model/pcaBasis"),  # missing dataset
        ({"drop": "shape/representer/cells"}, "cells"),
        ({"cells": face_patch()[1].astype(np.int32)}, "(3, *)"),  # (F, 3): wrong orientation
        ({"cells": face_patch()[1].T.astype(np.int32) + 1}, "outside"),  # 1-based where 0-based expected
    ],
)
def test_bfm2017_errors_name_the_file(tmp_path: Path, kwargs: dict, needle: str) -> None:
    p = tmp_path / "model2017.h5"
    write_bfm2017(p, np.random.default_rng(10), **kwargs)
    with pytest.raises(InputFileError) as exc:
        load_bfm2017(p, landmarks68=np.arange(68))
    assert str(p) in err_text(exc) and needle in err_text(exc)


def test_bfm2017_not_hdf5(tmp_path: Path) -> None:
    p = tmp_path / "model.h5"
    p.write_bytes(b"not an hdf5 file")
    with pytest.raises(InputFileError, match="HDF5"):
        load_bfm2017(p, landmarks68=np.arange(68))


# ---------------------------------------------------------------------- albedo transfer
def small_model(
    verts: np.ndarray,
    tris: np.ndarray,
    lm: np.ndarray,
    albedo: np.ndarray | None = None,
    albedo_basis: np.ndarray | None = None,
) -> FaceModel:
    nv = len(verts)
    albedo = np.full((nv, 3), 0.5) if albedo is None else albedo
    albedo_basis = np.zeros((1, nv, 3)) if albedo_basis is None else albedo_basis
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return FaceModel(
        mean_shape=t(verts),
        id_basis=torch.zeros(1, nv, 3),
        exp_basis=torch.zeros(1, nv, 3),
        mean_albedo=t(albedo),
        albedo_basis=t(albedo_basis),
        triangles=torch.from_numpy(np.asarray(tris, dtype=np.int64)),
        landmarks68=torch.from_numpy(np.asarray(lm, dtype=np.int64)),
        now_landmarks7=torch.from_numpy(np.asarray(lm, dtype=np.int64)[list(NOW_LANDMARKS_FROM_IBUG68)]),
        name="small test source",
    ).validate("<test>")


def rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_barycentric_matches_construction() -> None:
    rng = np.random.default_rng(11)
    a, b, c = (rng.normal(size=(50, 3)) for _ in range(3))
    w = rng.dirichlet(np.ones(3), size=50)
    p = w[:, :1] * a + w[:, 1:2] * b + w[:, 2:] * c
    assert np.allclose(barycentric(p, a, b, c), w, atol=1e-9)


def test_closest_surface_points_against_brute_force() -> None:
    rng = np.random.default_rng(12)
    verts, tris = face_patch()
    pts = rng.uniform([-70, -80, 0], [70, 80, 120], size=(200, 3))
    face, bary, dist = closest_surface_points(verts, tris, pts)
    tri = verts[tris]  # brute force: dense samples of every triangle
    w = np.stack(np.meshgrid(np.linspace(0, 1, 41), np.linspace(0, 1, 41)), -1).reshape(-1, 2)
    w = np.concatenate([w, 1 - w.sum(1, keepdims=True)], 1)
    w = w[w[:, 2] >= -1e-12]
    samples = np.einsum("sk,fkc->fsc", w, tri).reshape(-1, 3)
    brute = np.sqrt(((pts[:, None, :] - samples[None]) ** 2).sum(-1)).min(1)
    assert np.all(dist <= brute + 1e-9) and np.all(dist >= brute - 3.0)  # samples 1/40 of a ~12 mm edge apart
    hit = np.einsum("pk,pkc->pc", bary, verts[tris[face]])
    assert np.allclose(np.linalg.norm(hit - pts, axis=1), dist, atol=1e-6)


def test_transfer_albedo_recovers_linear_albedo_under_similarity() -> None:
    rng = np.random.default_rng(13)
    verts, tris = face_patch()
    lm = landmark_ids(rng)
    lin = rng.normal(size=(3, 3)) * 0.01
    albedo = 0.5 + (verts - verts.mean(0)) @ lin  # affine in position: exact under barycentric interpolation
    basis = np.stack([albedo * 0.1, -albedo * 0.2])
    src = small_model(verts, tris, lm, albedo, basis)
    # target: the same surface in another frame (rotated, scaled to cm, shifted), sampled at random surface points
    r, s, t = rotation(rng), 0.1, np.array([5.0, -3.0, 2.0])
    face = rng.integers(0, len(tris), size=300)
    w = rng.dirichlet(np.ones(3), size=300)
    on_surface = np.einsum("pk,pkc->pc", w, verts[tris[face]])
    tgt_pts = np.concatenate([verts, on_surface]) @ r.T * s + t
    mean, bas = transfer_albedo(src, tgt_pts, lm, use_contour=True)
    src_pts = np.concatenate([verts, on_surface])
    want = 0.5 + (src_pts - verts.mean(0)) @ lin
    assert mean.shape == (len(tgt_pts), 3) and bas.shape == (2, len(tgt_pts), 3)
    assert np.allclose(mean.numpy(), want, atol=1e-4)
    assert np.allclose(bas[1].numpy(), -0.2 * want, atol=1e-4)


def test_transfer_landmarks_maps_vertices() -> None:
    rng = np.random.default_rng(14)
    verts, tris = face_patch()
    lm = landmark_ids(rng)
    src = small_model(verts * 0.01, tris, lm)
    tgt = verts @ rotation(rng).T + 20.0
    anchors = {i: int(lm[i]) for i in (30, 36, 45, 48, 54)}
    assert transfer_landmarks(src, tgt, anchors).tolist() == lm.tolist()


# ---------------------------------------------------------------------- dispatch and CLI
def test_detect_format_and_load_any(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    write_front(tmp_path / "BFM_model_front.mat", rng)
    (tmp_path / "bfm09").mkdir()
    write_bfm09(tmp_path / "bfm09", rng)
    assert detect_format(tmp_path / "bfm09") == "bfm2009"
    assert detect_format(tmp_path / "bfm09" / "01_MorphableModel.mat") == "bfm2009"
    assert load_any(tmp_path / "bfm09", n_exp=2).n_exp == 2
    assert detect_format(tmp_path / "BFM_model_front.mat") == "bfm_front"
    assert detect_format(tmp_path) == "bfm_front"
    write_bfm2017(tmp_path / "m.h5", rng)
    assert detect_format(tmp_path / "m.h5") == "bfm2017"
    m = load_any(tmp_path / "BFM_model_front.mat", n_id=2, n_exp=3, n_albedo=1)
    assert (m.n_id, m.n_exp, m.n_albedo) == (2, 3, 1)
    with pytest.raises(InputFileError, match="do not apply"):
        load_any(tmp_path / "BFM_model_front.mat", crop="front")
    with pytest.raises(InputFileError, match="format"):
        (tmp_path / "x.txt").write_text("hello")
        load_any(tmp_path / "x.txt")
    scipy.io.savemat(tmp_path / "other.mat", {"foo": np.ones(3)})
    with pytest.raises(InputFileError, match="other.mat"):
        detect_format(tmp_path / "other.mat")


def test_convert_cli_round_trip(tmp_path: Path) -> None:
    from focus.facemodel.convert_cli import _FORMATS, register_convert

    assert _FORMATS == FORMATS
    write_front(tmp_path / "BFM_model_front.mat", np.random.default_rng(16))
    parser = argparse.ArgumentParser(prog="focus")
    model_sub = parser.add_subparsers(dest="command").add_parser("model").add_subparsers(dest="model_command")
    register_convert(model_sub)
    out = tmp_path / "out" / "front.npz"
    args = parser.parse_args(
        ["model", "convert", str(tmp_path / "BFM_model_front.mat"), "--out", str(out), "--n-id", "4", "--n-exp", "3"]
    )
    assert args.func(args) == 0
    back = load_face_model(out)
    direct = load_bfm_front(tmp_path / "BFM_model_front.mat", n_id=4, n_exp=3)
    assert (back.n_id, back.n_exp, back.n_albedo) == (4, 3, 4)
    assert torch.allclose(back.mean_shape, direct.mean_shape) and torch.equal(back.triangles, direct.triangles)
    assert torch.equal(back.regions["face"], direct.regions["face"])
    again = load_any(out, n_id=2)
    assert again.n_id == 2 and again.n_exp == 3


def test_front_matlab_v73_file(tmp_path: Path) -> None:
    """MATLAB v7.3 (HDF5) .mat files are read through h5py, arrays transposed back."""
    rng = np.random.default_rng(17)
    ref_path = tmp_path / "v5" / "BFM_model_front.mat"
    ref_path.parent.mkdir()
    d = write_front(ref_path, rng)
    p = tmp_path / "BFM_model_front.mat"
    with h5py.File(p, "w", userblock_size=512) as f:
        for k, v in d.items():
            f.create_dataset(k, data=np.asarray(v).T)  # MATLAB writes column-major: HDF5 sees the transpose
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .".ljust(
        116
    )
    with open(p, "r+b") as f:
        f.write(header + b"\0" * 8 + b"\x00\x02" + b"IM")
    m, ref = load_bfm_front(p), load_bfm_front(ref_path)
    assert torch.allclose(m.mean_shape, ref.mean_shape) and torch.equal(m.triangles, ref.triangles)
    assert torch.equal(m.landmarks68, ref.landmarks68) and torch.allclose(m.id_basis, ref.id_basis)
    assert detect_format(p) == "bfm_front"


# ---------------------------------------------------------------------- CLI: what the file is, clamped counts
def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from focus.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("kind", ["mat", "h5"])
def test_preview_of_a_foreign_model_points_to_convert(tmp_path: Path, kind: str, capsys) -> None:
    src = tmp_path / ("BFM_model_front.mat" if kind == "mat" else "model2017.h5")
    (write_front if kind == "mat" else write_bfm2017)(src, np.random.default_rng(30))
    code, err = run_cli(["model", "preview", src, "--out", tmp_path / "sheets"], capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert str(src) in err and f"focus model convert {src} --out" in err
    assert not (tmp_path / "sheets").exists()


def test_convert_says_when_it_clamps_the_component_count(tmp_path: Path, capsys) -> None:
    src = tmp_path / "BFM_model_front.mat"
    write_front(src, np.random.default_rng(31))  # 6 identity, 5 expression, 4 albedo components
    out = tmp_path / "m.npz"
    code, err = run_cli(["model", "convert", src, "--out", out, "--n-id", "500", "--n-exp", "3"], capsys)
    assert code == 0 and load_face_model(out).n_id == 6
    assert "--n-id 500" in err and "kept all 6 identity components" in err
    assert "--n-exp" not in err  # 3 <= 5: nothing clamped
    assert "--n-albedo 80" in err and "kept all 4 albedo" in err  # the default asks for 80


def test_a_network_checkpoint_is_named_as_such(tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "idnet.pt"
    torch.save({"weight": torch.zeros(2)}, ckpt)
    code, err = run_cli(["model", "preview", ckpt, "--out", tmp_path / "sheets"], capsys)
    assert code == 1 and "PyTorch checkpoint" in err and str(ckpt) in err
    code, err = run_cli(["model", "convert", ckpt, "--out", tmp_path / "m.npz"], capsys)
    assert code == 1 and "PyTorch checkpoint" in err
    renamed = tmp_path / "idnet.npz"  # a checkpoint under a model's name is still named for what it is
    ckpt.rename(renamed)
    code, err = run_cli(["model", "preview", renamed, "--out", tmp_path / "sheets"], capsys)
    assert code == 1 and "PyTorch checkpoint" in err
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "sheets").exists()
