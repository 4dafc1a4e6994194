"""Deep3DFaceRecon's front-face BFM (``BFM_model_front.mat``) -> :class:`FaceModel`.

The file (built by Deep3DFaceRecon's ``util/load_mats.py`` from BFM 2009 and Guo et al.'s
expression basis) holds, as MATLAB variables:

=================  ==============  ===========================================================
key                shape           meaning
=================  ==============  ===========================================================
``meanshape``      ``(1, 3N)``     mean shape, **decimetres**, ``x0 y0 z0 x1 ...``
``idBase``         ``(3N, 80)``    identity basis, std-scaled, dm (rows interleaved like above)
``exBase``         ``(3N, 64)``    expression basis, std-scaled, dm
``meantex``        ``(1, 3N)``     mean texture, RGB 0..255
``texBase``        ``(3N, 80)``    texture basis, std-scaled, 0..255 units
``tri``            ``(F, 3)``      triangles, **1-based**
``keypoints``      ``(1, 68)``     iBUG-68 landmark vertices, 1-based
``frontmask2_idx`` ``(M, 1)``      vertices of the photometric-loss region, 1-based (optional)
``skinmask``       ``(1, N)``      0/1 skin vertices (optional)
``point_buf``,     -               vertex->triangle table and front triangles: not needed
``tri_mask2``
=================  ==============  ===========================================================

N = 35,709. Axes are Deep3DFaceRecon's: ``x`` image right (the subject's left), ``y`` up,
``z`` towards the camera, i.e. already the project's model frame, so only units change
(dm -> mm: x100; texture /255). The triangle winding is checked with :func:`orient_outward`
(the face's vector area must point to ``+z``) and flipped if needed.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    finish_model,
    mask_from_ids,
    now_from_ibug68,
    one_based_ids,
    read_mat,
    read_vertex_ids,
    require_file,
    zero_based_ids,
)
from focus.facemodel.model import FaceModel

#: Vertices of the real ``BFM_model_front.mat``.
FRONT_NUM_VERTICES = 35709

#: The 7 NoW landmark vertices of the real front model (0-based), in NoW order (see
#: :data:`focus.facemodel.model.NOW_LANDMARKS_FROM_IBUG68`).
FRONT_NOW_LANDMARKS7: tuple[int, ...] = (2215, 5828, 10455, 14066, 8204, 5522, 10795)

DM_TO_MM = 100.0

_REQUIRED = ("meanshape", "idBase", "exBase", "meantex", "texBase", "tri", "keypoints")
_OPTIONAL = ("frontmask2_idx", "skinmask")


def load_bfm_front(
    path: str | Path,
    *,
    n_id: int | None = DEFAULT_N_ID,
    n_exp: int | None = DEFAULT_N_EXP,
    n_albedo: int | None = DEFAULT_N_ALBEDO,
    now_landmarks7: Sequence[int] | str | Path | None = None,
    recenter: bool = True,
) -> FaceModel:
    """Read Deep3DFaceRecon's ``BFM_model_front.mat``.

    Args:
        path: the ``.mat`` file (or the folder holding ``BFM_model_front.mat``).
        n_id, n_exp, n_albedo: keep the first components (``None``: all the file has).
        now_landmarks7: 7 NoW vertex ids (0-based, NoW order). Default: the published ids
            :data:`FRONT_NOW_LANDMARKS7` for the 35,709-vertex model, otherwise (e.g. a smaller
            file in the same format) the iBUG points 36, 39, 42, 45, 33, 48, 54 of ``keypoints``.
        recenter: subtract the centroid of the mean shape, as Deep3DFaceRecon does
            (``ParametricFaceModel(recenter=True)``), so the camera distance refers to it.

    Returns:
        The model in mm, model frame; regions ``face`` (``frontmask2_idx``, the photometric-loss
        region) and ``skin`` (``skinmask``), each all vertices when the key is absent.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "BFM_model_front.mat"
    path = require_file(
        path,
        "Deep3DFaceRecon front model (BFM_model_front.mat)",
        "build it with Deep3DFaceRecon's util/load_mats.py (transferBFM09) from BFM 2009",
    )
    m = read_mat(path, _REQUIRED, _OPTIONAL)

    flat_mean = as_vector(path, "meanshape", m["meanshape"])
    if flat_mean.size == 0 or flat_mean.size % 3:
        raise InputFileError(
            path,
            f"'meanshape' has {flat_mean.size} values, not a positive multiple of 3",
            "is this the right file? it may come from another release or tool",
        )
    n3 = flat_mean.size
    nv = n3 // 3
    mean_shape = as_float(path, "meanshape", flat_mean).reshape(nv, 3) * DM_TO_MM

    id_mat = check_shape(path, "idBase", m["idBase"], (n3, None))
    ex_mat = check_shape(path, "exBase", m["exBase"], (n3, None))
    tex_mat = check_shape(path, "texBase", m["texBase"], (n3, None))
    k_id = check_count(path, "identity", id_mat.shape[1], n_id)
    k_exp = check_count(path, "expression", ex_mat.shape[1], n_exp)
    k_alb = check_count(path, "albedo", tex_mat.shape[1], n_albedo)
    id_basis = columns_to_basis(as_float(path, "idBase", id_mat[:, :k_id])) * DM_TO_MM
    exp_basis = columns_to_basis(as_float(path, "exBase", ex_mat[:, :k_exp])) * DM_TO_MM
    albedo_basis = columns_to_basis(as_float(path, "texBase", tex_mat[:, :k_alb])) / 255.0
    mean_albedo = as_float(path, "meantex", as_vector(path, "meantex", m["meantex"], n3)).reshape(nv, 3) / 255.0

    tri = one_based_ids(path, "tri", check_shape(path, "tri", m["tri"], (None, 3)), nv)
    keypoints = one_based_ids(path, "keypoints", as_vector(path, "keypoints", m["keypoints"], 68), nv)

    if now_landmarks7 is not None:
        ids, src = read_vertex_ids(now_landmarks7, "NoW landmark ids")
        now = zero_based_ids(
            src or path, "NoW landmark ids", check_shape(src or path, "NoW landmark ids", ids.reshape(-1), (7,)), nv
        )
    elif nv == FRONT_NUM_VERTICES:
        now = np.asarray(FRONT_NOW_LANDMARKS7, dtype=np.int64)
    else:
        now = now_from_ibug68(keypoints)

    regions = {"face": np.ones(nv, dtype=bool), "skin": np.ones(nv, dtype=bool)}
    if "frontmask2_idx" in m:
        regions["face"] = mask_from_ids(
            one_based_ids(path, "frontmask2_idx", as_vector(path, "frontmask2_idx", m["frontmask2_idx"]), nv), nv
        )
    if "skinmask" in m:
        regions["skin"] = as_float(path, "skinmask", as_vector(path, "skinmask", m["skinmask"], nv)) > 0.5

    return finish_model(
        path,
        mean_shape=mean_shape,
        id_basis=id_basis,
        exp_basis=exp_basis,
        mean_albedo=mean_albedo,
        albedo_basis=albedo_basis,
        triangles=tri,
        landmarks68=keypoints,
        now_landmarks7=now,
        regions=regions,
        id_std=None,
        exp_std=None,
        albedo_std=None,
        name=f"Deep3DFaceRecon BFM front model ({path.name}): {nv} vertices, "
        f"{k_id} identity / {k_exp} expression / {k_alb} albedo components",
        recenter=recenter,
    )
