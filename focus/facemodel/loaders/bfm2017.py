"""Basel Face Model 2017 (``model2017-1_bfm_nomouth.h5``, statismo/scalismo HDF5) -> :class:`FaceModel`.

Layout as h5py sees it (row-major; MATLAB/R readers show the transposes):

=======================================  =================  ==================================
dataset                                  shape              meaning
=======================================  =================  ==================================
``shape/model/mean``                     ``(3N,)``          mean shape, mm, ``x0 y0 z0 x1 ...``
``shape/model/pcaBasis``                 ``(3N, K)``        orthonormal columns
``shape/model/pcaVariance``              ``(K,)``           variances (std = sqrt)
``expression/model/...``                 same, K = 100      expression deformation model
``color/model/...``                      same, K = 199      RGB in [0, 1]
``shape/representer/cells``              ``(3, F)``         triangles, **0-based**
``shape/representer/points``             ``(3, N)``         reference mesh (not needed)
``metadata/landmarks/json`` or ``text``  string             named 3D landmarks (optional)
=======================================  =================  ==================================

N = 53,149 for the ``bfm_nomouth`` mask (the ``face12`` files have the same layout). Bases are
std-scaled here: ``pcaBasis[:, k] * sqrt(pcaVariance[k])``. The expression model is a model of
deformations whose mean is, in scalismo-faces, added to the shape mean; so does this loader
(``add_expression_mean=True``).

Axes: the Basel frame is already the project's model frame (``+x`` the subject's left: the left
ear is at ``x ~ +82 mm``; ``+y`` up; ``+z`` out of the face: the nose tip is at ``z ~ 132 mm``;
origin near the centre of the head), in mm. The triangle winding is checked with
:func:`orient_outward`.

**Landmarks.** The file has no iBUG-68 vertex ids. They come from ``landmarks68`` (68 0-based
vertex ids: list or ``.txt``/``.npy``/``.json`` file), or are transferred from
``landmark_source`` (any :class:`FaceModel` with 68 landmarks, e.g. the converted BFM front
model): the source's mean shape is aligned to this one by a similarity estimated from the named
Basel landmarks in ``metadata/landmarks`` that have an iBUG counterpart (eye and mouth corners,
nose tip, subnasale, chin, lip midpoints; :data:`BASEL_TO_IBUG68`), and each source landmark
takes the nearest vertex here. The 7 NoW landmarks are the nearest vertices to the named Basel
points (eye corners, ``center.nose.attachement_to_philtrum``, lip corners) when the file has
them, else the iBUG points of the 68. Regions ``face`` and ``skin``: every vertex (the file has
no masks).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from focus.errors import InputFileError
from focus.facemodel.loaders._common import (
    DEFAULT_N_ALBEDO,
    DEFAULT_N_EXP,
    DEFAULT_N_ID,
    as_float,
    check_count,
    check_shape,
    columns_to_basis,
    finish_model,
    now_from_ibug68,
    read_vertex_ids,
    require_file,
    zero_based_ids,
)
from focus.facemodel.model import MAX_MODEL_BYTES, FaceModel

BFM2017_NUM_VERTICES = 53149

#: Named Basel landmarks with an iBUG-68 counterpart (0-based iBUG index). "right" and "left" are
#: the subject's, as in iBUG (point 36 is the subject's right eye, outer corner).
BASEL_TO_IBUG68: dict[str, int] = {
    "center.chin.tip": 8,
    "center.nose.tip": 30,
    "center.nose.attachement_to_philtrum": 33,
    "right.eye.corner_outer": 36,
    "right.eye.corner_inner": 39,
    "left.eye.corner_inner": 42,
    "left.eye.corner_outer": 45,
    "right.lips.corner": 48,
    "center.lips.upper.outer": 51,
    "left.lips.corner": 54,
    "center.lips.lower.outer": 57,
    "center.lips.upper.inner": 62,
    "center.lips.lower.inner": 66,
}

#: Basel landmark names of the 7 NoW points, in NoW order.
BASEL_NOW_NAMES: tuple[str, ...] = (
    "right.eye.corner_outer",
    "right.eye.corner_inner",
    "left.eye.corner_inner",
    "left.eye.corner_outer",
    "center.nose.attachement_to_philtrum",
    "right.lips.corner",
    "left.lips.corner",
)

_FIX = "is this a Basel Face Model 2017/2019 .h5 file? (statismo layout: shape|color|expression/model/...)"


def _dataset(path: Path, f, name: str) -> np.ndarray:  # noqa: ANN001 - h5py.File
    import h5py

    if name not in f or not isinstance(f[name], h5py.Dataset):
        raise InputFileError(path, f"missing dataset {name!r}", _FIX)
    ds = f[name]
    nbytes = float(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize
    if nbytes > MAX_MODEL_BYTES:
        raise InputFileError(path, f"dataset {name!r} of shape {ds.shape} is larger than any face model", _FIX)
    return ds


def _pca_group(
    path: Path, f, group: str, n3: int | None, n_keep: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    """``mean (3N,)``, first ``K`` columns of ``pcaBasis (3N, K)``, ``pcaVariance (K,)`` of ``group``."""
    mean_ds = _dataset(path, f, f"{group}/model/mean")
    basis_ds = _dataset(path, f, f"{group}/model/pcaBasis")
    var_ds = _dataset(path, f, f"{group}/model/pcaVariance")
    if n3 is None:
        n3 = check_shape(path, f"{group}/model/mean", mean_ds, (None,)).shape[0]
    check_shape(path, f"{group}/model/mean", mean_ds, (n3,))
    check_shape(path, f"{group}/model/pcaBasis", basis_ds, (n3, None))
    k_all = basis_ds.shape[1]
    check_shape(path, f"{group}/model/pcaVariance", var_ds, (k_all,))
    k = check_count(path, group, k_all, n_keep)
    mean = as_float(path, f"{group}/model/mean", mean_ds[()])
    basis = as_float(path, f"{group}/model/pcaBasis", basis_ds[:, :k] if k else np.zeros((n3, 0)))
    var = as_float(path, f"{group}/model/pcaVariance", var_ds[:k] if k else np.zeros(0))
    if (var < 0).any():
        raise InputFileError(path, f"{group}/model/pcaVariance has negative variances", _FIX)
    return mean, basis, var


def read_named_landmarks(path: Path, f) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Named 3D landmarks of ``metadata/landmarks/json`` or ``.../text`` (mm); empty if absent.

    Accepted: JSON ``{"name": [x, y, z]}`` or ``[{"id": name, "coordinates": [x, y, z]}, ...]``;
    text lines ``name ... x y z`` (the last three numbers of a line are the position).
    """
    out: dict[str, np.ndarray] = {}
    for key in ("metadata/landmarks/json", "metadata/landmarks/text"):
        if key not in f:
            continue
        raw = f[key][()]
        if isinstance(raw, np.ndarray):
            raw = raw.reshape(-1)[0] if raw.size else b""
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, np.bytes_)) else str(raw)
        try:
            parsed = json.loads(text) if key.endswith("json") else None
        except json.JSONDecodeError as exc:
            raise InputFileError(path, f"{key} is not valid JSON ({exc})", _FIX) from exc
        if isinstance(parsed, dict):
            items = list(parsed.items())
        elif isinstance(parsed, list):
            items = [
                (d.get("id", d.get("name")), d.get("coordinates", d.get("point")))
                for d in parsed
                if isinstance(d, dict)
            ]
        else:
            items = []
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 4:
                    items.append((parts[0], parts[-3:]))
        for name, xyz in items:
            try:
                pos = np.asarray(xyz, dtype=np.float64).reshape(3)
            except (TypeError, ValueError):
                continue
            if name and np.isfinite(pos).all():
                out[str(name)] = pos
        if out:
            break
    return out


def load_bfm2017(
    path: str | Path,
    *,
    landmarks68: Sequence[int] | str | Path | None = None,
    now_landmarks7: Sequence[int] | str | Path | None = None,
    landmark_source: FaceModel | None = None,
    add_expression_mean: bool = True,
    n_id: int | None = DEFAULT_N_ID,
    n_exp: int | None = DEFAULT_N_EXP,
    n_albedo: int | None = DEFAULT_N_ALBEDO,
    recenter: bool = True,
) -> FaceModel:
    """Read a Basel Face Model 2017 ``.h5`` file (see the module docstring).

    Args:
        path: e.g. ``model2017-1_bfm_nomouth.h5``.
        landmarks68: 68 0-based vertex ids (iBUG order), list or file.
        now_landmarks7: 7 0-based vertex ids in NoW order (default: from the named landmarks).
        landmark_source: a model with landmarks to transfer them from when ``landmarks68`` is
            not given (needs the file's named landmarks for the alignment).
        add_expression_mean: add ``expression/model/mean`` to the mean shape (scalismo-faces).
        n_id, n_exp, n_albedo: keep the first components (``None``: all).
        recenter: subtract the centroid of the mean shape.
    """
    import h5py

    path = require_file(
        Path(path),
        "Basel Face Model 2017 file",
        "download model2017-1_bfm_nomouth.h5 from https://faces.dmi.unibas.ch/bfm/bfm2017.html",
    )
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(path, f"not a readable HDF5 file ({exc})", "check that the download is complete") from exc
    with f:
        s_mean, s_basis, s_var = _pca_group(path, f, "shape", None, n_id)
        n3 = s_mean.size
        if n3 == 0 or n3 % 3:
            raise InputFileError(path, f"shape/model/mean has {n3} values, not a positive multiple of 3", _FIX)
        nv = n3 // 3
        e_mean, e_basis, e_var = _pca_group(path, f, "expression", n3, n_exp)
        c_mean, c_basis, c_var = _pca_group(path, f, "color", n3, n_albedo)
        cells_ds = _dataset(path, f, "shape/representer/cells")
        cells = check_shape(path, "shape/representer/cells", np.asarray(cells_ds[()]), (3, None))
        triangles = zero_based_ids(path, "shape/representer/cells", np.ascontiguousarray(cells.T), nv)
        named = read_named_landmarks(path, f)

    mean_shape = s_mean.reshape(nv, 3)
    named_ids = {}
    if named:
        from scipy.spatial import cKDTree

        names = sorted(named)
        _, idx = cKDTree(mean_shape).query(np.stack([named[n] for n in names]))
        named_ids = dict(zip(names, np.asarray(idx, dtype=np.int64)))
    if add_expression_mean:
        mean_shape = mean_shape + e_mean.reshape(nv, 3)

    if landmarks68 is not None:
        ids, src = read_vertex_ids(landmarks68, "landmark ids")
        lm68 = zero_based_ids(
            src or path, "landmark ids", check_shape(src or path, "landmark ids", ids.reshape(-1), (68,)), nv
        )
    elif landmark_source is not None:
        from focus.facemodel.loaders.albedo_transfer import transfer_landmarks

        pairs = {BASEL_TO_IBUG68[n]: int(i) for n, i in named_ids.items() if n in BASEL_TO_IBUG68}
        if len(pairs) < 4:
            raise InputFileError(
                path,
                f"only {len(pairs)} named landmarks with an iBUG counterpart in metadata/landmarks; "
                "need >= 4 to align the landmark source",
                "pass landmarks68 (68 0-based vertex ids) instead",
            )
        lm68 = transfer_landmarks(landmark_source, s_mean.reshape(nv, 3), pairs)
    else:
        raise InputFileError(
            path,
            "Basel Face Model 2017 has no 68-landmark vertex ids and none were supplied",
            "pass landmarks68 / --landmarks with 68 0-based vertex ids (iBUG order), or "
            "landmark_source / --landmark-source with a converted model to transfer them from",
        )
    if now_landmarks7 is not None:
        ids, src = read_vertex_ids(now_landmarks7, "NoW landmark ids")
        now = zero_based_ids(
            src or path, "NoW landmark ids", check_shape(src or path, "NoW landmark ids", ids.reshape(-1), (7,)), nv
        )
    elif all(n in named_ids for n in BASEL_NOW_NAMES):
        now = np.asarray([named_ids[n] for n in BASEL_NOW_NAMES], dtype=np.int64)
    else:
        now = now_from_ibug68(lm68)

    id_std, exp_std, alb_std = np.sqrt(s_var), np.sqrt(e_var), np.sqrt(c_var)
    return finish_model(
        path,
        mean_shape=mean_shape,
        id_basis=columns_to_basis(s_basis) * id_std[:, None, None],
        exp_basis=columns_to_basis(e_basis) * exp_std[:, None, None],
        mean_albedo=c_mean.reshape(nv, 3),
        albedo_basis=columns_to_basis(c_basis) * alb_std[:, None, None],
        triangles=triangles,
        landmarks68=lm68,
        now_landmarks7=now,
        regions={"face": np.ones(nv, dtype=bool), "skin": np.ones(nv, dtype=bool)},
        id_std=id_std,
        exp_std=exp_std,
        albedo_std=alb_std,
        name=f"Basel Face Model 2017 ({path.name}): {nv} vertices, {s_basis.shape[1]} identity / "
        f"{e_basis.shape[1]} expression / {c_basis.shape[1]} albedo components",
        recenter=recenter,
    )
