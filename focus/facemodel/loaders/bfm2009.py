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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from focus.errors import InputFileError
from focus.facemodel.loaders._common import (
    DEFAULT_N_ALBEDO,
    DEFAULT_N_EXP,
    DEFAULT_N_ID,
    as_float,
    as_vector,
    check_count,
    check_shape,
    columns_to_basis,
    crop_mesh,
    finish_model,
    mask_from_ids,
    now_from_ibug68,
    one_based_ids,
    read_mat,
    read_vertex_ids,
    remap_ids,
    require_file,
    zero_based_ids,
)
from focus.facemodel.loaders.bfm_front import FRONT_NOW_LANDMARKS7, FRONT_NUM_VERTICES
from focus.facemodel.model import FaceModel

BFM2009_NUM_VERTICES = 53490
EXP_NUM_VERTICES = 53215
UM_TO_MM = 1e-3
CROPS = ("expression", "front", "none")

_DEEP3D_FIX = (
    "get it from Deep3DFaceRecon's BFM folder (see its README: Exp_Pca.bin from Guo et al.'s "
    "3DFace repository, the rest ships with Deep3DFaceRecon) or pass its path explicitly"
)


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
        raise InputFileError(
            path,
            f"header says {n} components, which is implausible",
            "not Guo et al.'s Exp_Pca.bin (a little-endian int32 count comes first)",
        )
    block = 3 * num_vertices
    expected = 4 + 4 * block * (1 + n)
    if size < expected:
        raise InputFileError(
            path,
            f"truncated: {size} bytes, expected {expected} for {n} components of "
            f"{num_vertices} vertices (int32 + float32 mean + components)",
            "download it again",
        )
    if size > expected:
        raise InputFileError(
            path,
            f"{size} bytes, more than the {expected} expected for {n} components of {num_vertices} vertices",
            "the vertex map (BFM_exp_idx.mat) does not belong to this file",
        )
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


@dataclass(frozen=True)
class Bfm2009Files:
    """The BFM 2009 file and its side files (module docstring), each explicit or beside ``mat``.

    ``front_idx_given`` / ``facemodel_info_given`` record whether those optional files were named
    explicitly (then they must exist) or only looked up beside ``mat`` (used if present).
    """

    mat: Path
    exp_pca: Path
    std_exp: Path
    exp_idx: Path
    front_idx: Path
    facemodel_info: Path
    front_idx_given: bool = False
    facemodel_info_given: bool = False

    @classmethod
    def beside(cls, mat: Path, **explicit: str | Path | None) -> Bfm2009Files:
        """Defaults ``Exp_Pca.bin``, ``std_exp.txt``, ``BFM_exp_idx.mat``, ``BFM_front_idx.mat``,
        ``facemodel_info.mat`` in ``mat``'s folder unless given in ``explicit`` (keyword = field)."""
        defaults = {
            "exp_pca": "Exp_Pca.bin",
            "std_exp": "std_exp.txt",
            "exp_idx": "BFM_exp_idx.mat",
            "front_idx": "BFM_front_idx.mat",
            "facemodel_info": "facemodel_info.mat",
        }
        paths = {k: Path(explicit[k]) if explicit.get(k) is not None else mat.parent / v for k, v in defaults.items()}
        return cls(
            mat=mat,
            **paths,
            front_idx_given=explicit.get("front_idx") is not None,
            facemodel_info_given=explicit.get("facemodel_info") is not None,
        )


@dataclass(frozen=True)
class _Bfm2009Core:
    """What ``01_MorphableModel.mat`` holds, in mm and [0, 1] RGB, on all N vertices."""

    mean: np.ndarray  # (N, 3) mm
    id_basis: np.ndarray  # (K_id, N, 3) std-scaled mm
    id_std: np.ndarray  # (K_id,)
    albedo_mean: np.ndarray  # (N, 3)
    albedo_basis: np.ndarray  # (K_alb, N, 3)
    albedo_std: np.ndarray  # (K_alb,)
    triangles: np.ndarray  # (F, 3) 0-based

    @property
    def num_vertices(self) -> int:
        return len(self.mean)


def _read_core(path: Path, n_id: int | None, n_albedo: int | None) -> _Bfm2009Core:
    """Shape/texture PCA and triangles of ``01_MorphableModel.mat`` (first ``n_id``/``n_albedo`` components)."""
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
    return _Bfm2009Core(
        mean=as_float(path, "shapeMU", flat_mu).reshape(nv, 3) * UM_TO_MM,
        id_basis=columns_to_basis(as_float(path, "shapePC", shape_pc[:, :k_id])) * id_std[:, None, None],
        id_std=id_std,
        albedo_mean=as_float(path, "texMU", as_vector(path, "texMU", m["texMU"], n3)).reshape(nv, 3) / 255.0,
        albedo_basis=columns_to_basis(as_float(path, "texPC", tex_pc[:, :k_alb])) * alb_std[:, None, None],
        albedo_std=alb_std,
        triangles=one_based_ids(path, "tl", check_shape(path, "tl", m["tl"], (None, 3)), nv),
    )


def _read_expressions(files: Bfm2009Files, nv: int, n_exp: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``trimIndex`` ``(M,)`` 0-based, the expression basis on all N vertices ``(K, N, 3)`` (mm,
    std-scaled; zero off the M vertices) and its stds ``(K,)`` mm."""
    exp_idx_path = require_file(files.exp_idx, "expression vertex map BFM_exp_idx.mat", _DEEP3D_FIX)
    raw = read_mat(exp_idx_path, ("trimIndex",))["trimIndex"]
    trim = one_based_ids(exp_idx_path, "trimIndex", as_vector(exp_idx_path, "trimIndex", raw), nv)
    if np.unique(trim).size != trim.size:
        raise InputFileError(exp_idx_path, "'trimIndex' lists a vertex twice")
    n_exp_file, comps = read_exp_pca(files.exp_pca, trim.size, n_exp if n_exp is not None else None)
    k_exp = comps.shape[0]
    exp_std = read_std_exp(files.std_exp, n_exp_file)[:k_exp] * UM_TO_MM
    exp_full = np.zeros((k_exp, nv, 3), dtype=np.float64)
    exp_full[:, trim] = comps * exp_std[:, None, None]
    return trim, exp_full, exp_std


def _read_front_chain(files: Bfm2009Files, trim: np.ndarray, crop: str) -> tuple[np.ndarray | None, dict | None]:
    """Deep3DFaceRecon's front-model chain (optional): front vertex -> BFM vertex ids ``(35709,)``
    and ``facemodel_info.mat``'s keypoints / face / skin as front-vertex ids (``None`` when absent)."""
    front_to_full = None
    if files.front_idx_given or crop == "front" or files.front_idx.is_file():
        path = require_file(files.front_idx, "front-model vertex map BFM_front_idx.mat", _DEEP3D_FIX)
        front = one_based_ids(path, "idx", as_vector(path, "idx", read_mat(path, ("idx",))["idx"]), trim.size)
        front_to_full = trim[front]
    if front_to_full is None or not (files.facemodel_info_given or files.facemodel_info.is_file()):
        return front_to_full, None
    path = require_file(files.facemodel_info, "Deep3DFaceRecon facemodel_info.mat", _DEEP3D_FIX)
    raw = read_mat(path, ("keypoints",), ("frontmask2_idx", "skinmask"))
    nf = front_to_full.size
    info = {"keypoints": one_based_ids(path, "keypoints", as_vector(path, "keypoints", raw["keypoints"], 68), nf)}
    if "frontmask2_idx" in raw:
        info["face"] = one_based_ids(
            path, "frontmask2_idx", as_vector(path, "frontmask2_idx", raw["frontmask2_idx"]), nf
        )
    if "skinmask" in raw:
        info["skin"] = np.nonzero(as_float(path, "skinmask", as_vector(path, "skinmask", raw["skinmask"], nf)) > 0.5)[0]
    return front_to_full, info


def _given_ids(
    spec: Sequence[int] | str | Path, what: str, count: int, path: Path, nv: int, old_to_new: np.ndarray
) -> np.ndarray:
    """``count`` 0-based BFM 2009 vertex ids from a list or file, mapped to the kept vertices."""
    ids, src = read_vertex_ids(spec, f"{what} ids")
    ids = zero_based_ids(
        src or path, f"{what} ids", check_shape(src or path, f"{what} ids", ids.reshape(-1), (count,)), nv
    )
    return remap_ids(src or path, what, ids, old_to_new)


def _landmarks(
    files: Bfm2009Files,
    landmarks68: Sequence[int] | str | Path | None,
    now_landmarks7: Sequence[int] | str | Path | None,
    front_to_full: np.ndarray | None,
    info: dict | None,
    nv: int,
    old_to_new: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The 68 and 7 landmark ids among the kept vertices (sources in the module docstring)."""
    if landmarks68 is not None:
        lm68 = _given_ids(landmarks68, "landmark", 68, files.mat, nv, old_to_new)
        now = now_from_ibug68(lm68)
    elif info is not None:
        lm68 = remap_ids(files.facemodel_info, "keypoint", front_to_full[info["keypoints"]], old_to_new)
        if front_to_full.size == FRONT_NUM_VERTICES:
            now = remap_ids(files.facemodel_info, "NoW landmark", front_to_full[list(FRONT_NOW_LANDMARKS7)], old_to_new)
        else:
            now = now_from_ibug68(lm68)
    else:
        raise InputFileError(
            files.mat,
            "BFM 2009 has no 68-landmark vertex ids and none were supplied",
            "put Deep3DFaceRecon's BFM_front_idx.mat and facemodel_info.mat beside it, or pass "
            "landmarks68 / --landmarks with 68 0-based BFM 2009 vertex ids (iBUG order)",
        )
    if now_landmarks7 is not None:
        now = _given_ids(now_landmarks7, "NoW landmark", 7, files.mat, nv, old_to_new)
    return lm68, now


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
            ``crop="front"`` or no ``landmarks68`` is given); see :class:`Bfm2009Files`.
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
    path = require_file(
        path,
        "Basel Face Model 2009 file 01_MorphableModel.mat",
        "download it from https://faces.dmi.unibas.ch/bfm/ (registration needed)",
    )
    if crop not in CROPS:
        raise InputFileError(path, f"unknown crop {crop!r}", f"use one of {CROPS}")
    files = Bfm2009Files.beside(
        path, exp_pca=exp_pca, std_exp=std_exp, exp_idx=exp_idx, front_idx=front_idx, facemodel_info=facemodel_info
    )
    core = _read_core(path, n_id, n_albedo)
    nv = core.num_vertices
    trim, exp_full, exp_std = _read_expressions(files, nv, n_exp)
    front_to_full, info = _read_front_chain(files, trim, crop)

    keep = {"expression": trim, "front": front_to_full, "none": np.arange(nv)}[crop]
    triangles, old_to_new = crop_mesh(keep, core.triangles, nv)
    if triangles.size == 0:
        raise InputFileError(
            path, f"no triangle lies inside the {crop!r} crop", "check BFM_exp_idx.mat / BFM_front_idx.mat"
        )
    nk = keep.size
    lm68, now = _landmarks(files, landmarks68, now_landmarks7, front_to_full, info, nv, old_to_new)

    regions = {"face": np.ones(nk, dtype=bool), "skin": np.ones(nk, dtype=bool)}
    if info is not None:
        for key in ("face", "skin"):
            if key in info:
                regions[key] = mask_from_ids(old_to_new[front_to_full[info[key]]], nk)

    k_id, k_exp, k_alb = len(core.id_std), len(exp_std), len(core.albedo_std)
    lm_src = "given ids" if landmarks68 is not None else ("Deep3DFaceRecon keypoints" if info is not None else "?")
    return finish_model(
        path,
        mean_shape=core.mean[keep],
        id_basis=core.id_basis[:, keep],
        exp_basis=exp_full[:, keep],
        mean_albedo=core.albedo_mean[keep],
        albedo_basis=core.albedo_basis[:, keep],
        triangles=triangles,
        landmarks68=lm68,
        now_landmarks7=now,
        regions=regions,
        id_std=core.id_std,
        exp_std=exp_std,
        albedo_std=core.albedo_std,
        name=f"Basel Face Model 2009 ({path.name}) + Guo et al. expressions ({files.exp_pca.name}), crop {crop!r}: "
        f"{nk} vertices, {k_id} identity / {k_exp} expression / {k_alb} albedo components, landmarks from {lm_src}",
        recenter=recenter,
    )
