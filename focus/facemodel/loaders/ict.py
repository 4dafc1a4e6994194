"""ICT-FaceKit Light (a checkout's ``FaceXModel/`` folder) -> :class:`FaceModel`.

Files: ``generic_neutral_mesh.obj`` (26,719 vertices, quads and some triangles, **cm**),
``identityNNN.obj`` (100 in a full checkout), one OBJ per expression (names listed in
``vertex_indices.json["expressions"]``, 53) and ``vertex_indices.json``. All OBJs share the
neutral mesh's topology; ``identityNNN.obj - neutral`` is one identity mode already scaled by its
std (weights ~ N(0, 1)), ``expression.obj - neutral`` one blendshape (weight 0..1).

Conversion:

* **Frame.** ICT's axes are the project's (checked on the data: the iBUG right-eye corners lie at
  ``x < 0``, i.e. ``+x`` is the subject's left; ``+y`` up; the nose tip is at ``z ~ 131 mm``, so
  ``+z`` is out of the face; the origin is near the centre of the head, like BFM 2017), so only
  units change: cm -> mm (x10). With ``recenter`` (default) the centroid of the kept mean shape
  is moved to the origin, so the face sits around the origin as Deep3DFaceRecon's recentred BFM
  does.
* **Region.** ``region="face"`` keeps vertices 0..9408 (face, ears, neck, forehead), ``"narrow_face"``
  keeps 0..6705 (front of the face). The rest (back of the head, mouth socket, teeth, eyes,
  lashes) is dropped, with every triangle touching it. Quads are split into two triangles
  ``(a, b, c), (a, c, d)`` (polygons fan-triangulated); the winding is checked with
  :func:`orient_outward`.
* **Identity.** The cropped modes are no longer orthogonal. They are re-orthogonalised by the SVD
  of the stacked cropped modes ``D (n_identity, 3V) = U S W^T``: the new modes are the rows of
  ``S W^T`` (orthonormal directions ``W`` scaled by the singular values), ``id_std = S``,
  decreasing. With coefficients ~ N(0, 1) this is exactly the same shape distribution as the
  original modes (covariance ``D^T D``) restricted to the region, in PCA order; the first
  ``n_id`` are kept. Each direction's sign makes its largest-magnitude entry positive.
* **Expressions** keep their blendshape meaning by default (``exp_basis[k] = OBJ_k - neutral``,
  ``exp_std = 1``, the JSON's order, as many as exist up to ``n_exp``): a coefficient of 1 is the
  full expression, coefficients live in ~[0, 1]. ``orthogonalize_expressions=True`` applies the
  identity's SVD treatment instead (PCA of the blendshapes; coefficients then have no per-shape
  meaning).
* **Landmarks.** ``vertex_indices.json["idx_to_landmark_verts"]``: 68 ids, iBUG order; they must
  lie in the kept region (they do for both regions: max id 6470); NoW 7 = iBUG 36, 39, 42, 45,
  33, 48, 54 of them.
* **Regions.** ``face`` (photometric region) = the narrow face 0..6705, the counterpart of
  Deep3DFaceRecon's front mask; ``skin`` = the same (the Light release has no skin segmentation).
* **Albedo.** The Light release has none: it is transferred with :func:`transfer_albedo` from
  ``albedo_source``. When that is ``None`` the project's embedded default model is used, imported
  lazily as ``focus.facemodel.embedded.generate_face_model(EmbeddedModelSettings())`` (that module
  must then not itself load ICT without an explicit ``albedo_source``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from focus.errors import FocusError, InputFileError
from focus.facemodel.loaders._common import (
    DEFAULT_N_ALBEDO,
    DEFAULT_N_EXP,
    DEFAULT_N_ID,
    check_count,
    crop_mesh,
    finish_model,
    now_from_ibug68,
    remap_ids,
    require_file,
)
from focus.facemodel.model import FaceModel

ICT_NUM_VERTICES = 26719
#: Vertices kept per region (ids ``0 .. n-1``).
ICT_REGIONS: dict[str, int] = {"face": 9409, "narrow_face": 6706}
CM_TO_MM = 10.0

_NEUTRAL = "generic_neutral_mesh.obj"
_INDICES = "vertex_indices.json"
_IDENTITY = re.compile(r"^identity(\d+)\.obj$")
_FIX = "point at the FaceXModel/ folder of an ICT-FaceKit checkout (https://github.com/ICT-VGL/ICT-FaceKit)"


# ---------------------------------------------------------------------- OBJ reading
def _lines(path: Path) -> list[bytes]:
    try:
        return path.read_bytes().splitlines()
    except OSError as exc:
        raise InputFileError(path, f"cannot read ({exc})") from exc


def read_obj_vertices(path: str | Path, lines: list[bytes] | None = None) -> np.ndarray:
    """``(V, 3)`` float64 positions of the ``v`` lines of an OBJ file (file units, order kept).

    Extra per-vertex values (``v x y z r g b`` or ``w``) are ignored.
    """
    path = Path(path)
    lines = _lines(path) if lines is None else lines
    vlines = [ln for ln in lines if ln.startswith(b"v ")]
    if not vlines:
        raise InputFileError(path, "no vertices ('v' lines): not an OBJ mesh", _FIX)
    try:
        tokens = b" ".join(vlines).split()
        if len(tokens) == 4 * len(vlines) and tokens.count(b"v") == len(vlines):  # fast path: "v x y z"
            tok = np.array(tokens, dtype=object).reshape(-1, 4)
            return np.array(tok[:, 1:].ravel().tolist(), dtype=np.float64).reshape(-1, 3)
        rows = [ln[2:].split() for ln in vlines]
        if min(len(r) for r in rows) < 3:
            raise ValueError("a vertex line has fewer than 3 coordinates")
        return np.array([[float(x) for x in r[:3]] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise InputFileError(path, f"malformed vertex line ({exc})", "the file is corrupt; download it again") from exc


def read_obj_triangles(path: str | Path, num_vertices: int, lines: list[bytes] | None = None) -> np.ndarray:
    """``(F, 3)`` int64 0-based triangles of an OBJ's ``f`` lines; polygons fan-triangulated.

    Face corners ``i``, ``i/t``, ``i//n``, ``i/t/n`` are accepted; negative (relative) ids are
    resolved. A quad ``a b c d`` gives ``(a, b, c), (a, c, d)``, keeping the OBJ's winding.
    """
    path = Path(path)
    lines = _lines(path) if lines is None else lines
    polys: dict[int, list[list[int]]] = {}
    try:
        for ln in lines:
            if ln.startswith(b"f "):
                ids = [int(tok.split(b"/", 1)[0]) for tok in ln[2:].split()]
                polys.setdefault(len(ids), []).append(ids)
    except ValueError as exc:
        raise InputFileError(path, f"malformed face line ({exc})", "the file is corrupt; download it again") from exc
    if any(not -num_vertices <= i <= num_vertices for rows in polys.values() for row in rows for i in row):
        raise InputFileError(
            path, f"face vertex ids outside [1, {num_vertices}]", "the file is corrupt; download it again"
        )
    if not polys or min(polys) < 3:
        raise InputFileError(path, "no faces, or a face with fewer than 3 corners", _FIX)
    tris = []
    for n, rows in sorted(polys.items()):
        arr = np.asarray(rows, dtype=np.int64)
        arr = np.where(arr < 0, arr + num_vertices, arr - 1)  # OBJ ids are 1-based, negatives relative
        for j in range(1, n - 1):
            tris.append(arr[:, [0, j, j + 1]])
    out = np.concatenate(tris, axis=0)
    if out.min() < 0 or out.max() >= num_vertices:
        raise InputFileError(
            path, f"face vertex ids outside [1, {num_vertices}]", "the file is corrupt; download it again"
        )
    return out


def read_ict_indices(path: Path, num_vertices: int) -> tuple[np.ndarray, list[str]]:
    """``vertex_indices.json``: the 68 landmark vertex ids ``(68,)`` int64 in ``[0, num_vertices)``
    and the expression OBJ names (``[]`` when the file lists none; names that are not plain file
    stems are refused)."""
    try:
        indices = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, OSError, UnicodeDecodeError, RecursionError) as exc:
        raise InputFileError(path, f"not readable JSON ({exc.__class__.__name__}: {str(exc)[:200]})", _FIX) from exc
    if not isinstance(indices, dict) or "idx_to_landmark_verts" not in indices:
        raise InputFileError(path, "missing 'idx_to_landmark_verts'", _FIX)
    lm = indices["idx_to_landmark_verts"]
    if not (isinstance(lm, list) and len(lm) == 68 and all(type(i) is int for i in lm)):
        raise InputFileError(path, "'idx_to_landmark_verts' must be a list of 68 integer vertex ids", _FIX)
    if min(lm) < 0 or max(lm) >= num_vertices:
        raise InputFileError(path, f"landmark ids outside [0, {num_vertices})", _FIX)
    names = indices.get("expressions")
    if names is None:
        names = []
    if not isinstance(names, list) or not all(_is_stem(n) for n in names):
        raise InputFileError(path, "'expressions' must be a list of OBJ file names without '.obj' or folders", _FIX)
    return np.asarray(lm, dtype=np.int64), names


def _is_stem(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in ("/", "\\", "\0", ":"))


# ---------------------------------------------------------------------- modes
def orthogonalize_modes(modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PCA of a set of std-scaled modes: ``(M, V, 3)`` -> directions ``* S`` ``(R, V, 3)`` and ``S (R,)``.

    ``modes`` stacked as ``D (M, 3V) = U S W^T`` (thin SVD); returns the rows of ``S W^T`` (zero
    singular values dropped) and ``S`` in decreasing order. ``sum_k a_k modes_k`` and
    ``sum_r b_r out_r`` with ``a, b ~ N(0, I)`` have the same distribution. Each direction's sign
    makes its largest-magnitude entry positive.
    """
    m, v, _ = modes.shape
    d = modes.reshape(m, v * 3)
    _, s, wt = np.linalg.svd(d, full_matrices=False)
    keep = s > s.max(initial=0.0) * 1e-9
    s, wt = s[keep], wt[keep]
    sign = np.sign(wt[np.arange(len(wt)), np.abs(wt).argmax(axis=1)])
    wt = wt * np.where(sign == 0, 1.0, sign)[:, None]
    return (s[:, None] * wt).reshape(-1, v, 3), s


def _identity_files(folder: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _IDENTITY.match(p.name))]
    return [p for _, p in sorted(found)]


def _read_displacements(files: Sequence[Path], neutral: np.ndarray, keep: int) -> np.ndarray:
    """``(M, keep, 3)`` float64: each file's vertices minus the neutral's, first ``keep`` vertices."""
    out = np.empty((len(files), keep, 3), dtype=np.float64)
    for i, p in enumerate(files):
        v = read_obj_vertices(p)
        if v.shape != neutral.shape:
            raise InputFileError(
                p,
                f"has {len(v)} vertices, the neutral mesh {len(neutral)}",
                "all FaceXModel OBJs must come from the same ICT-FaceKit version",
            )
        out[i] = v[:keep] - neutral[:keep]
    if not np.isfinite(out).all():
        bad = next(p for p, o in zip(files, out, strict=True) if not np.isfinite(o).all())
        raise InputFileError(bad, "contains NaN or infinite coordinates", "the file is corrupt; download it again")
    return out


def _read_expressions(
    folder: Path, names: Sequence[str], neutral: np.ndarray, keep: int, n_exp: int | None, orthogonalize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Expression basis ``(K, keep, 3)`` mm and stds ``(K,)``: blendshapes in ``names``' order (or the
    sorted OBJs that are neither neutral nor identity), or their PCA with ``orthogonalize``."""
    if not names:
        names = sorted(p.stem for p in folder.glob("*.obj") if p.name != _NEUTRAL and not _IDENTITY.match(p.name))
    exp_files = [folder / f"{n}.obj" for n in names if (folder / f"{n}.obj").is_file()]
    if orthogonalize:
        if exp_files:
            exp_basis, exp_std = orthogonalize_modes(_read_displacements(exp_files, neutral, keep) * CM_TO_MM)
        else:
            exp_basis, exp_std = np.zeros((0, keep, 3)), np.zeros(0)
        k_exp = check_count(folder, "expression", len(exp_std), n_exp)
        return exp_basis[:k_exp], exp_std[:k_exp]
    k_exp = check_count(folder, "expression", len(exp_files), n_exp)
    return _read_displacements(exp_files[:k_exp], neutral, keep) * CM_TO_MM, np.ones(k_exp)


# ---------------------------------------------------------------------- loader
def _resolve_folder(path: Path) -> Path:
    if path.is_file() and path.name == _NEUTRAL:
        return path.parent
    if path.is_dir() and not (path / _NEUTRAL).exists() and (path / "FaceXModel" / _NEUTRAL).exists():
        return path / "FaceXModel"
    return path


def load_ict(
    path: str | Path,
    *,
    region: str = "face",
    n_id: int | None = DEFAULT_N_ID,
    n_exp: int | None = DEFAULT_N_EXP,
    n_albedo: int | None = DEFAULT_N_ALBEDO,
    orthogonalize_expressions: bool = False,
    albedo_source: FaceModel | None = None,
    recenter: bool = True,
) -> FaceModel:
    """Read an ICT-FaceKit ``FaceXModel/`` folder (see the module docstring for the conversion).

    Args:
        path: the ``FaceXModel`` folder (or a checkout holding it, or its neutral OBJ).
        region: ``"face"`` (vertices 0..9408) or ``"narrow_face"`` (0..6705).
        n_id, n_exp, n_albedo: keep the first components (``None``: all available).
        orthogonalize_expressions: PCA the blendshapes instead of keeping them.
        albedo_source: model whose albedo is transferred; ``None``: the embedded default model
            (``focus.facemodel.embedded.generate_face_model(EmbeddedModelSettings())``).
        recenter: subtract the centroid of the kept mean shape.
    """
    folder = _resolve_folder(Path(path))
    if not folder.is_dir():
        raise InputFileError(folder, "ICT-FaceKit FaceXModel folder not found", _FIX)
    if region not in ICT_REGIONS:
        raise InputFileError(folder, f"unknown ICT region {region!r}", f"use one of {sorted(ICT_REGIONS)}")
    neutral_path = require_file(folder / _NEUTRAL, "ICT neutral mesh", _FIX)
    lines = _lines(neutral_path)
    neutral = read_obj_vertices(neutral_path, lines)
    nv = len(neutral)
    if not np.isfinite(neutral).all():
        raise InputFileError(
            neutral_path, "contains NaN or infinite coordinates", "the file is corrupt; download it again"
        )
    all_tris = read_obj_triangles(neutral_path, nv, lines)
    del lines
    nk = ICT_REGIONS[region]
    if nv < nk:
        raise InputFileError(
            neutral_path,
            f"has {nv} vertices, fewer than the {nk} of the {region!r} region",
            f"expected the {ICT_NUM_VERTICES}-vertex ICT-FaceKit mesh",
        )

    idx_path = require_file(folder / _INDICES, "ICT vertex_indices.json", _FIX)
    lm_raw, names = read_ict_indices(idx_path, nv)

    keep = np.arange(nk)
    triangles, old_to_new = crop_mesh(keep, all_tris, nv)
    lm68 = remap_ids(idx_path, "landmark", lm_raw, old_to_new)

    # identity: std-scaled modes in mm, re-orthogonalised on the kept region
    id_files = _identity_files(folder)
    if not id_files:
        raise InputFileError(folder, "no identityNNN.obj files", _FIX)
    id_modes, id_std = orthogonalize_modes(_read_displacements(id_files, neutral, nk) * CM_TO_MM)
    k_id = check_count(folder, "identity", len(id_std), n_id)
    id_basis, id_std = id_modes[:k_id], id_std[:k_id]

    exp_basis, exp_std = _read_expressions(folder, names, neutral, nk, n_exp, orthogonalize_expressions)
    k_exp = len(exp_std)

    mean_shape = neutral[:nk] * CM_TO_MM
    if albedo_source is None:
        try:
            from focus.facemodel.embedded import EmbeddedModelSettings, generate_face_model
        except ImportError as exc:
            raise FocusError(
                "ICT-FaceKit has no albedo and the embedded default model is not available "
                f"({exc}); pass albedo_source (e.g. a converted BFM model)"
            ) from exc
        albedo_source = generate_face_model(EmbeddedModelSettings())
    from focus.facemodel.loaders.albedo_transfer import transfer_albedo

    k_alb = check_count(folder, "albedo", albedo_source.n_albedo, n_albedo)
    albedo_source = albedo_source.truncate(n_albedo=k_alb)
    mean_albedo, albedo_basis = transfer_albedo(albedo_source, mean_shape, lm68)
    albedo_std = albedo_source.albedo_std

    face = np.arange(nk) < ICT_REGIONS["narrow_face"]
    return finish_model(
        folder,
        mean_shape=mean_shape,
        id_basis=id_basis,
        exp_basis=exp_basis,
        mean_albedo=mean_albedo,
        albedo_basis=albedo_basis,
        triangles=triangles,
        landmarks68=lm68,
        now_landmarks7=now_from_ibug68(lm68),
        regions={"face": face, "skin": face.copy()},
        id_std=id_std,
        exp_std=exp_std,
        albedo_std=albedo_std.detach().cpu().numpy() if isinstance(albedo_std, torch.Tensor) else albedo_std,
        name=f"ICT-FaceKit Light ({folder.name}, region {region!r}): {nk} vertices, {k_id} identity "
        f"(re-orthogonalised from {len(id_files)}) / {k_exp} expression "
        f"({'PCA' if orthogonalize_expressions else 'blendshapes'}) / {k_alb} albedo components "
        f"(transferred from {albedo_source.name})",
        recenter=recenter,
    )
