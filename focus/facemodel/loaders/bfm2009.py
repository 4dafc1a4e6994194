"""Basel Face Model 2009 (``01_MorphableModel.mat``) + Guo et al.'s expressions -> :class:`FaceModel`.

Files, as a Deep3DFaceRecon ``BFM/`` folder has them (all looked up beside the ``.mat`` unless
passed explicitly):

``01_MorphableModel.mat`` (from the Basel website)
    ``shapeMU (3N, 1)`` mean shape in **micrometres**, ``x0 y0 z0 x1 ...``; ``shapePC (3N, 199)``
    orthonormal components; ``shapeEV (199, 1)`` their standard deviations (used as stds, as
    Deep3DFaceRecon's ``transferBFM09`` does); ``texMU``/``texPC``/``texEV`` likewise for RGB
    0..255; ``tl (F, 3)`` **1-based** triangles. N = 53,490.
``Exp_Pca.bin`` (Guo et al., via Deep3DFaceRecon)
    little-endian binary: ``int32 n`` (79), then ``3*M`` float32 (the expression mean, unused),
    then ``n * 3*M`` float32: component ``k`` is the contiguous block ``k``, each block
    per-vertex interleaved ``x0 y0 z0 x1 ...`` (Deep3DFaceRecon reads it as
    ``reshape([n, -1]).T`` then ``reshape([-1, 3, n])``). M = 53,215 vertices. Components are
    unit-scaled; multiplied by ``std_exp.txt`` they are in the same unit as ``shapeMU``
    (micrometres; Deep3DFaceRecon divides both by 1e5 to get decimetres).
``std_exp.txt``
    ``n`` standard deviations, whitespace separated.
``BFM_exp_idx.mat``
    ``trimIndex (M, 1)``: 1-based ids of the M expression vertices among the N BFM vertices.
``BFM_front_idx.mat`` and ``facemodel_info.mat`` (optional, Deep3DFaceRecon)
    ``idx (35709, 1)``: 1-based ids of the front-model vertices among the M expression
    vertices; ``keypoints (1, 68)``, ``frontmask2_idx``, ``skinmask``: the front model's 68
    landmarks, photometric region and skin mask (1-based / 0-1 over the 35,709 front vertices).

**Landmarks.** BFM 2009 itself has no iBUG-68 landmarks. They come, in this order, from
``landmarks68`` (68 **0-based** vertex ids in BFM 2009's own 53,490-vertex numbering: a list,
or a ``.txt``/``.npy``/``.json`` file), or else from Deep3DFaceRecon's ``BFM_front_idx.mat`` +
``facemodel_info.mat`` (front keypoints mapped through ``idx`` and ``trimIndex``; exact, same
topology). Without either the loader stops and says what to supply. (Deep3DFaceRecon's
``similarity_Lm3D_all.mat`` holds 3D landmark *positions* of a normalised mean face, not vertex
ids, so it is not used.) The 7 NoW landmarks: ``now_landmarks7`` if given, else the published
front-model NoW vertices mapped through the same chain when the landmarks came from it, else the
iBUG points 36, 39, 42, 45, 33, 48, 54 of ``landmarks68``.

**Vertices kept** (``crop``): ``"expression"`` (default) the M = 53,215 vertices the expression
basis covers, in ``trimIndex`` order; ``"front"`` Deep3DFaceRecon's 35,709 front vertices, in
the front model's order (needs ``BFM_front_idx.mat``); ``"none"`` all N vertices, the 275
without expression data getting zero expression displacement. Triangles touching a dropped
vertex are dropped.

**Regions**: ``face``/``skin`` from ``facemodel_info.mat`` (front mask / skin mask) when the
Deep3DFaceRecon files are there, else every kept vertex.

Axes are the project's (``x`` subject's left, ``y`` up, ``z`` out of the face; Deep3DFaceRecon
uses them unchanged), units become mm (/1000), texture /255; triangle winding is checked with
:func:`orient_outward`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from focus.errors import InputFileError
from focus.facemodel.loaders._common import (
    DEFAULT_N_ALBEDO, DEFAULT_N_EXP, DEFAULT_N_ID, as_float, as_vector, check_count, check_shape,
    columns_to_basis, crop_mesh, finish_model, mask_from_ids, now_from_ibug68, one_based_ids, read_mat,
    read_vertex_ids, remap_ids, require_file, zero_based_ids,
)
from focus.facemodel.loaders.bfm_front import FRONT_NOW_LANDMARKS7, FRONT_NUM_VERTICES
from focus.facemodel.model import FaceModel

BFM2009_NUM_VERTICES = 53490
EXP_NUM_VERTICES = 53215
UM_TO_MM = 1e-3
CROPS = ("expression", "front", "none")

_DEEP3D_FIX = ("get it from Deep3DFaceRecon's BFM folder (see its README: Exp_Pca.bin from Guo et al.'s "
               "3DFace repository, the rest ships with Deep3DFaceRecon) or pass its path explicitly")


def read_exp_pca(path: str | Path, num_vertices: int, n_keep: int | None = None) -> tuple[int, np.ndarray]:
    """Read Guo et al.'s ``Exp_Pca.bin`` (layout in the module docstring).

    Args:
        path: the binary file.
        num_vertices: M, the vertices it covers (``len(trimIndex)``; the file does not say).
        n_keep: read only the first components (``None``: all).

    Returns:
        ``n`` (components in the file) and the first ``min(n, n_keep)`` components
        ``(K, M, 3)`` float64, unit-scaled, unit of ``shapeMU`` (micrometres) per unit coefficient
        before multiplying by ``std_exp.txt``.
    """
    path = require_file(path, "expression basis Exp_Pca.bin", _DEEP3D_FIX)
    size = path.stat().st_size
    if size < 4:
        raise InputFileError(path, f"truncated: {size} bytes, not even the int32 component count", "download it again")
    n = int(np.fromfile(path, dtype="<i4", count=1)[0])
    if not 1 <= n <= 100_000:
        raise InputFileError(path, f"header says {n} components, which is implausible",
                             "not Guo et al.'s Exp_Pca.bin (a little-endian int32 count comes first)")
    block = 3 * num_vertices
    expected = 4 + 4 * block * (1 + n)
    if size < expected:
        raise InputFileError(path, f"truncated: {size} bytes, expected {expected} for {n} components of "
                             f"{num_vertices} vertices (int32 + float32 mean + components)", "download it again")
    if size > expected:
        raise InputFileError(path, f"{size} bytes, more than the {expected} expected for {n} components of "
                             f"{num_vertices} vertices", "the vertex map (BFM_exp_idx.mat) does not belong to this file")
    k = n if n_keep is None else max(0, min(n, int(n_keep)))
    data = np.fromfile(path, dtype="<f4", count=block * k, offset=4 + 4 * block)
    comps = as_float(path, "expression components", data).reshape(k, num_vertices, 3)
    return n, comps


def read_std_exp(path: str | Path, n: int) -> np.ndarray:
    """``std_exp.txt``: ``n`` standard deviations of the expression components."""
    path = require_file(path, "expression std file std_exp.txt", _DEEP3D_FIX)
    try:
        std = np.loadtxt(path, dtype=np.float64, ndmin=1).reshape(-1)
    except ValueError as exc:
        raise InputFileError(path, f"not a list of numbers ({exc})", _DEEP3D_FIX) from exc
    if std.size != n:
        raise InputFileError(path, f"has {std.size} values but Exp_Pca.bin has {n} components", _DEEP3D_FIX)
    std = as_float(path, "std_exp", std)
    if (std < 0).any():
        raise InputFileError(path, "has negative standard deviations")
    return std


def _resolve(explicit: str | Path | None, folder: Path, default: str) -> Path:
    return Path(explicit) if explicit is not None else folder / default


def load_bfm2009(
    path: str | Path,
    *,
    exp_pca: str | Path | None = None,
    std_exp: str | Path | None = None,
    exp_idx: str | Path | None = None,
    front_idx: str | Path | None = None,
    facemodel_info: str | Path | None = None,
    landmarks68: Sequence[int] | str | Path | None = None,
    now_landmarks7: Sequence[int] | str | Path | None = None,
    crop: str = "expression",
    n_id: int | None = DEFAULT_N_ID,
    n_exp: int | None = DEFAULT_N_EXP,
    n_albedo: int | None = DEFAULT_N_ALBEDO,
    recenter: bool = True,
) -> FaceModel:
    """Read BFM 2009 with Guo et al.'s expression basis (see the module docstring for files).

    Args:
        path: ``01_MorphableModel.mat`` or the folder holding it and the side files.
        exp_pca, std_exp, exp_idx, front_idx, facemodel_info: side files (default: beside
            ``path`` as ``Exp_Pca.bin``, ``std_exp.txt``, ``BFM_exp_idx.mat``,
            ``BFM_front_idx.mat``, ``facemodel_info.mat``; the last two are optional unless
            ``crop="front"`` or no ``landmarks68`` is given).
        landmarks68: 68 0-based BFM 2009 vertex ids (list or file), overriding the Deep3DFaceRecon
            files.
        now_landmarks7: 7 0-based BFM 2009 vertex ids in NoW order (default: see module doc).
        crop: ``"expression"``, ``"front"`` or ``"none"`` (see module doc).
        n_id, n_exp, n_albedo: keep the first components (``None``: all).
        recenter: subtract the centroid of the kept mean-shape vertices.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "01_MorphableModel.mat"
    path = require_file(path, "Basel Face Model 2009 file 01_MorphableModel.mat",
                        "download it from https://faces.dmi.unibas.ch/bfm/ (registration needed)")
    if crop not in CROPS:
        raise InputFileError(path, f"unknown crop {crop!r}", f"use one of {CROPS}")
    folder = path.parent

    m = read_mat(path, ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV", "tl"))
    flat_mu = as_vector(path, "shapeMU", m["shapeMU"])
    if flat_mu.size == 0 or flat_mu.size % 3:
        raise InputFileError(path, f"'shapeMU' has {flat_mu.size} values, not a positive multiple of 3")
    n3 = flat_mu.size
    nv = n3 // 3
    shape_pc = check_shape(path, "shapePC", m["shapePC"], (n3, None))
    shape_ev = as_vector(path, "shapeEV", m["shapeEV"], shape_pc.shape[1])
    tex_pc = check_shape(path, "texPC", m["texPC"], (n3, None))
    tex_ev = as_vector(path, "texEV", m["texEV"], tex_pc.shape[1])
    k_id = check_count(path, "identity", shape_pc.shape[1], n_id)
    k_alb = check_count(path, "albedo", tex_pc.shape[1], n_albedo)
    id_std = as_float(path, "shapeEV", shape_ev[:k_id]) * UM_TO_MM
    alb_std = as_float(path, "texEV", tex_ev[:k_alb]) / 255.0
    mean_full = as_float(path, "shapeMU", flat_mu).reshape(nv, 3) * UM_TO_MM
    id_full = columns_to_basis(as_float(path, "shapePC", shape_pc[:, :k_id])) * id_std[:, None, None]
    alb_mean_full = as_float(path, "texMU", as_vector(path, "texMU", m["texMU"], n3)).reshape(nv, 3) / 255.0
    alb_full = columns_to_basis(as_float(path, "texPC", tex_pc[:, :k_alb])) * alb_std[:, None, None]
    tl = one_based_ids(path, "tl", check_shape(path, "tl", m["tl"], (None, 3)), nv)
    del m, shape_pc, tex_pc

    # --- expression basis on its vertex subset
    exp_idx_path = require_file(_resolve(exp_idx, folder, "BFM_exp_idx.mat"), "expression vertex map BFM_exp_idx.mat", _DEEP3D_FIX)
    trim = one_based_ids(exp_idx_path, "trimIndex", as_vector(exp_idx_path, "trimIndex", read_mat(exp_idx_path, ("trimIndex",))["trimIndex"]), nv)
    if np.unique(trim).size != trim.size:
        raise InputFileError(exp_idx_path, "'trimIndex' lists a vertex twice")
    exp_pca_path = _resolve(exp_pca, folder, "Exp_Pca.bin")
    n_exp_file, comps = read_exp_pca(exp_pca_path, trim.size, n_exp if n_exp is not None else None)
    k_exp = comps.shape[0]
    exp_std_all = read_std_exp(_resolve(std_exp, folder, "std_exp.txt"), n_exp_file)
    exp_std = exp_std_all[:k_exp] * UM_TO_MM
    exp_full = np.zeros((k_exp, nv, 3), dtype=np.float64)
    exp_full[:, trim] = comps * exp_std[:, None, None]
    del comps

    # --- Deep3DFaceRecon's front-model chain (optional)
    front_idx_path = _resolve(front_idx, folder, "BFM_front_idx.mat")
    info_path = _resolve(facemodel_info, folder, "facemodel_info.mat")
    front_to_full = None
    if front_idx is not None or crop == "front" or front_idx_path.is_file():
        require_file(front_idx_path, "front-model vertex map BFM_front_idx.mat", _DEEP3D_FIX)
        front = one_based_ids(front_idx_path, "idx", as_vector(front_idx_path, "idx", read_mat(front_idx_path, ("idx",))["idx"]), trim.size)
        front_to_full = trim[front]
    info = None
    if front_to_full is not None and (facemodel_info is not None or info_path.is_file()):
        require_file(info_path, "Deep3DFaceRecon facemodel_info.mat", _DEEP3D_FIX)
        raw = read_mat(info_path, ("keypoints",), ("frontmask2_idx", "skinmask"))
        nf = front_to_full.size
        info = {"keypoints": one_based_ids(info_path, "keypoints", as_vector(info_path, "keypoints", raw["keypoints"], 68), nf)}
        if "frontmask2_idx" in raw:
            info["face"] = one_based_ids(info_path, "frontmask2_idx", as_vector(info_path, "frontmask2_idx", raw["frontmask2_idx"]), nf)
        if "skinmask" in raw:
            info["skin"] = np.nonzero(as_float(info_path, "skinmask", as_vector(info_path, "skinmask", raw["skinmask"], nf)) > 0.5)[0]

    # --- crop
    keep = {"expression": trim, "front": front_to_full, "none": np.arange(nv)}[crop]
    triangles, old_to_new = crop_mesh(keep, tl, nv)
    if triangles.size == 0:
        raise InputFileError(path, f"no triangle lies inside the {crop!r} crop", "check BFM_exp_idx.mat / BFM_front_idx.mat")
    nk = keep.size

    # --- landmarks
    if landmarks68 is not None:
        ids, src = read_vertex_ids(landmarks68, "landmark ids")
        ids = zero_based_ids(src or path, "landmark ids", check_shape(src or path, "landmark ids", ids.reshape(-1), (68,)), nv)
        lm68 = remap_ids(src or path, "landmark", ids, old_to_new)
        now = now_from_ibug68(lm68)
    elif info is not None:
        lm68 = remap_ids(info_path, "keypoint", front_to_full[info["keypoints"]], old_to_new)
        if front_to_full.size == FRONT_NUM_VERTICES:
            now = remap_ids(info_path, "NoW landmark", front_to_full[list(FRONT_NOW_LANDMARKS7)], old_to_new)
        else:
            now = now_from_ibug68(lm68)
    else:
        raise InputFileError(
            path, "BFM 2009 has no 68-landmark vertex ids and none were supplied",
            "put Deep3DFaceRecon's BFM_front_idx.mat and facemodel_info.mat beside it, or pass "
            "landmarks68 / --landmarks with 68 0-based BFM 2009 vertex ids (iBUG order)")
    if now_landmarks7 is not None:
        ids, src = read_vertex_ids(now_landmarks7, "NoW landmark ids")
        ids = zero_based_ids(src or path, "NoW landmark ids", check_shape(src or path, "NoW landmark ids", ids.reshape(-1), (7,)), nv)
        now = remap_ids(src or path, "NoW landmark", ids, old_to_new)

    regions = {"face": np.ones(nk, dtype=bool), "skin": np.ones(nk, dtype=bool)}
    if info is not None:
        for key in ("face", "skin"):
            if key in info:
                regions[key] = mask_from_ids(old_to_new[front_to_full[info[key]]], nk)

    lm_src = "given ids" if landmarks68 is not None else ("Deep3DFaceRecon keypoints" if info is not None else "?")
    return finish_model(
        path,
        mean_shape=mean_full[keep], id_basis=id_full[:, keep], exp_basis=exp_full[:, keep],
        mean_albedo=alb_mean_full[keep], albedo_basis=alb_full[:, keep],
        triangles=triangles, landmarks68=lm68, now_landmarks7=now, regions=regions,
        id_std=id_std, exp_std=exp_std, albedo_std=alb_std,
        name=f"Basel Face Model 2009 ({path.name}) + Guo et al. expressions ({exp_pca_path.name}), crop {crop!r}: "
             f"{nk} vertices, {k_id} identity / {k_exp} expression / {k_alb} albedo components, landmarks from {lm_src}",
        recenter=recenter,
    )
