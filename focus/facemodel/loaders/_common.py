"""Helpers shared by the face-model loaders: checked reading, index conversion, mesh fixes.

Every helper that looks at user data takes the ``path`` of the file the data came from and raises
:class:`focus.errors.InputFileError` naming it, so no loader ever lets a numpy/torch shape error
escape. Arrays are numpy here; :func:`finish_model` converts to the torch :class:`FaceModel`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from focus.errors import InputFileError
from focus.facemodel.model import NOW_LANDMARKS_FROM_IBUG68, FaceModel

#: Components kept by default (identity, expression, albedo), as in Deep3DFaceRecon / FOCUS.
DEFAULT_N_ID = 80
DEFAULT_N_EXP = 64
DEFAULT_N_ALBEDO = 80


# ---------------------------------------------------------------------- files
def require_file(path: str | Path, what: str, fix: str | None = None) -> Path:
    """``path`` as a :class:`Path`; :class:`InputFileError` if it is not an existing file."""
    path = Path(path)
    if not path.is_file():
        problem = f"{what} not found" if not path.exists() else f"{what} expected here, but this is not a file"
        raise InputFileError(path, problem, fix)
    return path


def read_mat(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Read variables from a MATLAB ``.mat`` file (v4-v7 via scipy, v7.3/HDF5 via h5py).

    Returns the arrays with MATLAB's shapes (a v7.3 file's arrays are transposed back from
    HDF5's row-major view). Missing ``required`` variables raise :class:`InputFileError`; missing
    ``optional`` ones are simply absent from the result.
    """
    import scipy.io

    _check_mat_size(path)
    names = list(required) + list(optional)
    try:
        data = scipy.io.loadmat(str(path), variable_names=names)
        out = {k: np.asarray(data[k]) for k in names if k in data}
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        out = _read_mat_v73(path, names)
    except Exception as exc:  # noqa: BLE001 - any reader failure means a corrupt or foreign file
        raise InputFileError(
            path,
            f"not a readable MATLAB .mat file ({exc.__class__.__name__}: {exc})",
            "check that the download is complete",
        ) from exc
    missing = [k for k in required if k not in out]
    if missing:
        raise InputFileError(
            path,
            f"missing variable(s) {missing} (found {sorted(out) or 'none of the needed ones'})",
            "is this the right file? it may come from another release or tool",
        )
    return out


def _check_mat_size(path: Path) -> None:
    """Refuse a MATLAB v5 file whose data (compressed elements counted decompressed, in a stream)
    exceed :data:`focus.facemodel.model.MAX_MODEL_BYTES`, before scipy inflates it in memory.

    Anything that is not a well-formed v5 file is left to the reader's own error.
    """
    import struct
    import zlib

    from focus.facemodel import model

    limit = model.MAX_MODEL_BYTES
    total = 0
    with open(path, "rb") as fh:
        header = fh.read(128)
        if len(header) < 128 or header[126:128] not in (b"IM", b"MI"):
            return
        order = "<" if header[126:128] == b"IM" else ">"
        while (tag := fh.read(8)) and len(tag) == 8:
            mdtype, nbytes = struct.unpack(order + "II", tag)
            if mdtype != 15:  # miCOMPRESSED = 15; other elements are stored as they are
                total += nbytes
                fh.seek(nbytes + (-nbytes % 8), 1)
            else:
                inflate = zlib.decompressobj()
                remaining = nbytes
                try:
                    while remaining > 0 and total <= limit:
                        chunk = fh.read(min(remaining, 1 << 20))
                        if not chunk:
                            break
                        remaining -= len(chunk)
                        while chunk and total <= limit:
                            total += len(inflate.decompress(chunk, 1 << 24))
                            chunk = inflate.unconsumed_tail
                except zlib.error:
                    return
            if total > limit:
                raise InputFileError(
                    path, f"holds more than {limit} bytes of data, more than any face model", "is this the right file?"
                )


def _read_mat_v73(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            for k in names:
                if k in f and isinstance(f[k], h5py.Dataset):
                    out[k] = np.asarray(f[k][()]).T
    except OSError as exc:
        raise InputFileError(
            path, f"not a readable MATLAB .mat file ({exc})", "check that the download is complete"
        ) from exc
    return out


def read_vertex_ids(
    spec: str | Path | Sequence[int] | np.ndarray | torch.Tensor, what: str
) -> tuple[np.ndarray, Path | None]:
    """Integer ids from an in-memory sequence or a file (``.npy``, ``.json`` list, or text).

    Text files hold whitespace- or comma-separated integers (``#`` starts a comment). Returns the
    ids as int64 and the path they came from (``None`` for in-memory ids).
    """
    if isinstance(spec, (str, Path)):
        path = require_file(spec, f"{what} file")
        try:
            if path.suffix == ".npy":
                arr = np.load(path, allow_pickle=False)
            elif path.suffix == ".json":
                arr = np.asarray(json.loads(path.read_text(encoding="utf-8")))
            else:
                lines = [ln.split("#", 1)[0] for ln in path.read_text(encoding="utf-8").splitlines()]
                arr = np.asarray(" ".join(lines).replace(",", " ").split(), dtype=np.float64)
        except (ValueError, json.JSONDecodeError, OSError) as exc:
            raise InputFileError(
                path,
                f"cannot read {what} ({exc.__class__.__name__}: {exc})",
                "write one integer vertex id per entry (text, .npy or a JSON list)",
            ) from exc
        return as_int_ids(path, what, arr), path
    arr = spec.detach().cpu().numpy() if isinstance(spec, torch.Tensor) else np.asarray(spec)
    return as_int_ids("<argument>", what, arr), None


# ---------------------------------------------------------------------- checks
def check_shape(path: Path | str, name: str, arr: np.ndarray, shape: Sequence[int | None]) -> np.ndarray:
    """``arr`` if its shape matches ``shape`` (``None`` = any size), else :class:`InputFileError`.

    ``arr`` may be anything with ``ndim`` and ``shape`` (e.g. an unread ``h5py.Dataset``).
    """
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise InputFileError(
            path,
            f"{name!r} has shape {tuple(arr.shape)}, expected {want}",
            "is this the right file? it may come from another release or tool",
        )
    return arr


def as_vector(path: Path | str, name: str, arr: np.ndarray, size: int | None = None) -> np.ndarray:
    """A MATLAB row/column vector (or a plain 1-D array) as 1-D; :class:`InputFileError` otherwise."""
    arr = np.asarray(arr)
    is_vector = arr.ndim <= 1 or (arr.ndim == 2 and min(arr.shape) <= 1)
    if not is_vector or (size is not None and arr.size != size):
        check_shape(path, name, arr, (1, size))
    return arr.reshape(-1)


def as_float(path: Path | str, name: str, arr: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """``arr`` as a finite float array; :class:`InputFileError` for non-numbers or NaN/inf."""
    arr = np.asarray(arr)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputFileError(path, f"{name!r} is not numeric (dtype {arr.dtype})")
    out = arr.astype(dtype, copy=False)
    if not np.isfinite(out).all():
        raise InputFileError(
            path, f"{name!r} contains NaN or infinite values", "the file is corrupt; download it again"
        )
    return out


def as_int_ids(path: Path | str, name: str, arr: np.ndarray) -> np.ndarray:
    """Integer-valued ids (any numeric dtype) flattened to int64; error if not whole numbers."""
    arr = np.asarray(arr)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        f = as_float(path, name, arr)
        if not np.all(f == np.round(f)):
            raise InputFileError(path, f"{name!r} should hold integer vertex ids but has fractional values")
        arr = f
    return arr.astype(np.int64).reshape(arr.shape)


def one_based_ids(path: Path | str, name: str, arr: np.ndarray, count: int) -> np.ndarray:
    """Convert 1-based ids (MATLAB) in ``[1, count]`` to 0-based int64; clear error otherwise."""
    ids = as_int_ids(path, name, arr)
    if ids.size == 0:
        raise InputFileError(path, f"{name!r} is empty")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 1:
        hint = " (it looks 0-based, but this format stores 1-based MATLAB indices)" if lo == 0 else ""
        raise InputFileError(
            path,
            f"{name!r} has index {lo} outside [1, {count}]{hint}",
            "the file is corrupt or was written by another tool",
        )
    if hi > count:
        raise InputFileError(
            path, f"{name!r} has index {hi} outside [1, {count}]", "the file does not match the model's vertex count"
        )
    return ids - 1


def zero_based_ids(path: Path | str, name: str, arr: np.ndarray, count: int) -> np.ndarray:
    """Check 0-based ids lie in ``[0, count)``; return int64."""
    ids = as_int_ids(path, name, arr)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= count):
        raise InputFileError(
            path,
            f"{name!r} has ids in [{int(ids.min())}, {int(ids.max())}], outside [0, {count})",
            "vertex ids must be 0-based and refer to this model's vertices",
        )
    return ids


def check_count(path: Path | str, what: str, n: int, requested: int | None) -> int:
    """Number of components to keep: ``min(requested, n)``; reject negative requests."""
    if requested is None:
        return n
    if requested < 0:
        raise InputFileError(path, f"asked for {requested} {what} components", "use a count >= 0")
    return min(int(requested), n)


# ---------------------------------------------------------------------- layout
def interleaved_to_vertices(flat: np.ndarray) -> np.ndarray:
    """``(3N,)`` ``x0 y0 z0 x1 ...`` -> ``(N, 3)``."""
    return np.asarray(flat).reshape(-1, 3)


def columns_to_basis(mat: np.ndarray) -> np.ndarray:
    """``(3N, K)`` matrix with per-vertex interleaved rows -> ``(K, N, 3)`` basis."""
    mat = np.asarray(mat)
    return np.ascontiguousarray(mat.T.reshape(mat.shape[1], -1, 3))


# ---------------------------------------------------------------------- mesh fixes
def vector_area(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Sum of the area-weighted normals ``(3,)`` (right-hand rule on each triangle).

    For an open surface this is its projected area vector: for a face mesh whose triangles are
    counter-clockwise seen from outside it points out of the face (``+z`` in the model frame).
    """
    tri = vertices[triangles]
    return 0.5 * np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).sum(axis=0)


def orient_outward(
    vertices: np.ndarray, triangles: np.ndarray, front: Sequence[float] = (0.0, 0.0, 1.0)
) -> tuple[np.ndarray, bool]:
    """Triangles wound counter-clockwise seen from outside, and whether they were flipped.

    Assumes a consistently wound open face mesh looking along ``front``: if its vector area
    points away from ``front`` every triangle is flipped (columns 1 and 2 swapped).
    """
    if float(vector_area(vertices, triangles) @ np.asarray(front, dtype=np.float64)) < 0:
        return np.ascontiguousarray(triangles[:, [0, 2, 1]]), True
    return triangles, False


def crop_mesh(keep: np.ndarray, triangles: np.ndarray, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Restrict a mesh to the vertices ``keep`` (new vertex ``i`` = old vertex ``keep[i]``).

    Returns the triangles whose three corners are all kept, renumbered, and the map
    ``old_to_new`` ``(num_vertices,)`` with ``-1`` for dropped vertices.
    """
    old_to_new = np.full(num_vertices, -1, dtype=np.int64)
    old_to_new[keep] = np.arange(len(keep), dtype=np.int64)
    new = old_to_new[triangles]
    return np.ascontiguousarray(new[(new >= 0).all(axis=1)]), old_to_new


def remap_ids(path: Path | str, what: str, ids: np.ndarray, old_to_new: np.ndarray) -> np.ndarray:
    """Map vertex ids through ``old_to_new``; error if one was cropped away."""
    new = old_to_new[ids]
    if (new < 0).any():
        lost = ids[new < 0][:5].tolist()
        raise InputFileError(
            path,
            f"{what} vertex ids {lost} lie outside the kept region of the model",
            "choose a larger region or other landmark ids",
        )
    return new


def mask_from_ids(ids: np.ndarray, num_vertices: int) -> np.ndarray:
    mask = np.zeros(num_vertices, dtype=bool)
    mask[ids[ids >= 0]] = True
    return mask


def now_from_ibug68(landmarks68: np.ndarray) -> np.ndarray:
    """The 7 NoW landmark ids taken from iBUG-68 ids (:data:`NOW_LANDMARKS_FROM_IBUG68`)."""
    return np.asarray(landmarks68)[list(NOW_LANDMARKS_FROM_IBUG68)]


# ---------------------------------------------------------------------- assembly
def finish_model(
    path: Path | str,
    *,
    mean_shape: np.ndarray,
    id_basis: np.ndarray,
    exp_basis: np.ndarray,
    mean_albedo: np.ndarray | torch.Tensor,
    albedo_basis: np.ndarray | torch.Tensor,
    triangles: np.ndarray,
    landmarks68: np.ndarray,
    now_landmarks7: np.ndarray,
    regions: Mapping[str, np.ndarray],
    id_std: np.ndarray | None,
    exp_std: np.ndarray | None,
    albedo_std: np.ndarray | None,
    name: str,
    recenter: bool,
    orient: bool = True,
) -> FaceModel:
    """Assemble, orient, recentre and validate a :class:`FaceModel` (float32 / int64 / bool).

    ``recenter`` subtracts the centroid of the mean shape's vertices (as Deep3DFaceRecon does for
    its front model), so the face sits around the origin; ``orient`` makes the triangles
    counter-clockwise seen from ``+z`` (see :func:`orient_outward`). Missing stds become ones.
    """
    mean_shape = np.asarray(mean_shape, dtype=np.float64)
    tris = np.asarray(triangles, dtype=np.int64)
    if orient and tris.size and tris.min() >= 0 and tris.max() < len(mean_shape):
        tris, _ = orient_outward(mean_shape, tris)
    if recenter and len(mean_shape):
        mean_shape = mean_shape - mean_shape.mean(axis=0, keepdims=True)

    def f32(a: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(a, torch.Tensor):
            return a.detach().to(device="cpu", dtype=torch.float32).contiguous()
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32)))

    def i64(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.int64)))

    def std(s: np.ndarray | None, n: int) -> torch.Tensor:
        return torch.ones(n) if s is None else f32(np.asarray(s).reshape(-1)[:n])

    model = FaceModel(
        mean_shape=f32(mean_shape),
        id_basis=f32(id_basis),
        exp_basis=f32(exp_basis),
        mean_albedo=f32(mean_albedo),
        albedo_basis=f32(albedo_basis),
        triangles=i64(tris),
        landmarks68=i64(np.asarray(landmarks68).reshape(-1)),
        now_landmarks7=i64(np.asarray(now_landmarks7).reshape(-1)),
        regions={k: torch.from_numpy(np.ascontiguousarray(np.asarray(m, dtype=bool))) for k, m in regions.items()},
        id_std=std(id_std, int(np.shape(id_basis)[0])),
        exp_std=std(exp_std, int(np.shape(exp_basis)[0])),
        albedo_std=std(albedo_std, int(np.shape(albedo_basis)[0])),
        name=name,
    )
    return model.validate(path)
