"""The in-memory morphable face model and the project's own file format.

Model frame (all loaders convert to it): right-handed, **millimetres**, origin at the centroid of
the mean shape's vertices (loaders recentre, as Deep3DFaceRecon does for its front model, so the
default 1 m camera distance means the same for every model), ``+x`` towards the subject's left
(image right in a frontal view), ``+y`` up, ``+z`` out of the face towards the viewer. A frontal
face therefore looks along ``+z`` at a camera placed on the ``+z`` axis (see :mod:`focus.render.camera`).

Bases are stored pre-multiplied by each component's standard deviation, so coefficients are
~N(0, 1) (expression weights are blendshape-like, also of order 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from focus.errors import InputFileError

#: iBUG-68 indices (0-based) of the 7 NoW landmarks: right eye outer, right eye inner, left eye
#: inner, left eye outer, nose bottom (subnasale), right mouth corner, left mouth corner.
NOW_LANDMARKS_FROM_IBUG68: tuple[int, ...] = (36, 39, 42, 45, 33, 48, 54)

FORMAT_NAME = "focus-facemodel"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FaceModel:
    """A linear 3D morphable model of shape, expression and albedo.

    Attributes:
        mean_shape: ``(V, 3)`` mean (neutral) shape, model frame, mm.
        id_basis: ``(K_id, V, 3)`` identity modes scaled by their std, mm.
        exp_basis: ``(K_exp, V, 3)`` expression modes (std- or blendshape-scaled), mm.
        mean_albedo: ``(V, 3)`` mean diffuse albedo, RGB in [0, 1].
        albedo_basis: ``(K_alb, V, 3)`` albedo modes scaled by their std, RGB units.
        triangles: ``(F, 3)`` int64 vertex ids, 0-based, counter-clockwise seen from outside
            (from ``+z`` for the front of the face).
        landmarks68: ``(68,)`` int64 vertex ids of the iBUG-68 landmarks (0-based).
        now_landmarks7: ``(7,)`` int64 vertex ids of the NoW landmarks (0-based), in the order
            of :data:`NOW_LANDMARKS_FROM_IBUG68`.
        regions: named boolean vertex masks ``(V,)``, e.g. ``"face"`` (front face used by the
            photometric loss) and ``"skin"``.
        id_std, exp_std, albedo_std: ``(K,)`` the std each basis column was scaled by (for
            reports; 1 where unknown).
        name: free-form description of where the model came from.
    """

    mean_shape: Tensor
    id_basis: Tensor
    exp_basis: Tensor
    mean_albedo: Tensor
    albedo_basis: Tensor
    triangles: Tensor
    landmarks68: Tensor
    now_landmarks7: Tensor
    regions: dict[str, Tensor] = field(default_factory=dict)
    id_std: Tensor | None = None
    exp_std: Tensor | None = None
    albedo_std: Tensor | None = None
    name: str = "unnamed"

    # ------------------------------------------------------------------ sizes
    @property
    def num_vertices(self) -> int:
        return int(self.mean_shape.shape[0])

    @property
    def num_triangles(self) -> int:
        return int(self.triangles.shape[0])

    @property
    def n_id(self) -> int:
        return int(self.id_basis.shape[0])

    @property
    def n_exp(self) -> int:
        return int(self.exp_basis.shape[0])

    @property
    def n_albedo(self) -> int:
        return int(self.albedo_basis.shape[0])

    @property
    def device(self) -> torch.device:
        return self.mean_shape.device

    # ------------------------------------------------------------------ evaluation
    def shape(self, id_coeffs: Tensor, exp_coeffs: Tensor | None = None) -> Tensor:
        """Vertices ``(B, V, 3)`` in mm, model frame, from ``(B, K_id)`` and ``(B, K_exp)``.

        ``exp_coeffs=None`` gives the neutral shape (expression zero).
        """
        v = self.mean_shape + torch.einsum("bk,kvc->bvc", id_coeffs, self.id_basis)
        if exp_coeffs is not None:
            v = v + torch.einsum("bk,kvc->bvc", exp_coeffs, self.exp_basis)
        return v

    def albedo(self, albedo_coeffs: Tensor) -> Tensor:
        """Per-vertex albedo ``(B, V, 3)``, RGB (not clamped), from ``(B, K_alb)``."""
        return self.mean_albedo + torch.einsum("bk,kvc->bvc", albedo_coeffs, self.albedo_basis)

    # ------------------------------------------------------------------ transforms
    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> FaceModel:
        """A copy on ``device`` with floating tensors cast to ``dtype`` (ids stay int64)."""

        def conv(t: Tensor | None) -> Tensor | None:
            if t is None:
                return None
            if t.is_floating_point():
                return t.to(device=device, dtype=dtype or t.dtype)
            return t.to(device=device)

        kw = {}
        for f in fields(self):
            val = getattr(self, f.name)
            if isinstance(val, Tensor):
                kw[f.name] = conv(val)
            elif f.name == "regions":
                kw[f.name] = {k: conv(v) for k, v in val.items()}
        return replace(self, **kw)

    def truncate(self, n_id: int | None = None, n_exp: int | None = None, n_albedo: int | None = None) -> FaceModel:
        """Keep only the first ``n`` components of each basis (``None`` keeps all)."""

        def cut(t: Tensor | None, n: int | None) -> Tensor | None:
            return t if (t is None or n is None) else t[:n]

        return replace(
            self,
            id_basis=cut(self.id_basis, n_id),
            exp_basis=cut(self.exp_basis, n_exp),
            albedo_basis=cut(self.albedo_basis, n_albedo),
            id_std=cut(self.id_std, n_id),
            exp_std=cut(self.exp_std, n_exp),
            albedo_std=cut(self.albedo_std, n_albedo),
        )

    def validate(self, source: str | Path = "<model>") -> FaceModel:
        """Check shapes, index ranges and finiteness; raise :class:`InputFileError` naming ``source``."""
        V = self.mean_shape.shape[0] if self.mean_shape.ndim == 2 else -1

        def need(cond: bool, problem: str) -> None:
            if not cond:
                raise InputFileError(source, problem)

        need(
            self.mean_shape.ndim == 2 and self.mean_shape.shape[1] == 3,
            f"mean shape must be (V, 3), got {tuple(self.mean_shape.shape)}",
        )
        for nm in ("id_basis", "exp_basis", "albedo_basis"):
            b = getattr(self, nm)
            need(b.ndim == 3 and b.shape[1:] == (V, 3), f"{nm} must be (K, {V}, 3), got {tuple(b.shape)}")
        need(
            tuple(self.mean_albedo.shape) == (V, 3),
            f"mean albedo must be ({V}, 3), got {tuple(self.mean_albedo.shape)}",
        )
        need(
            self.triangles.ndim == 2 and self.triangles.shape[1] == 3,
            f"triangles must be (F, 3), got {tuple(self.triangles.shape)}",
        )
        need(self.triangles.numel() > 0, "the model has no triangles")
        need(
            int(self.triangles.min()) >= 0 and int(self.triangles.max()) < V,
            f"triangle vertex ids out of range [0, {V})",
        )
        need(
            tuple(self.landmarks68.shape) == (68,), f"need 68 landmark vertex ids, got {tuple(self.landmarks68.shape)}"
        )
        need(
            tuple(self.now_landmarks7.shape) == (7,),
            f"need 7 NoW landmark vertex ids, got {tuple(self.now_landmarks7.shape)}",
        )
        for nm, ids in (("landmark", self.landmarks68), ("NoW landmark", self.now_landmarks7)):
            need(int(ids.min()) >= 0 and int(ids.max()) < V, f"{nm} vertex ids out of range [0, {V})")
        for key, mask in self.regions.items():
            need(
                tuple(mask.shape) == (V,) and mask.dtype == torch.bool,
                f"region {key!r} must be a bool mask of shape ({V},)",
            )
        for nm in ("triangles", "landmarks68", "now_landmarks7"):
            ids = getattr(self, nm)
            need(not ids.is_floating_point() and not ids.is_complex(), f"{nm} must hold integer ids, got {ids.dtype}")
        for nm, basis in (("id_std", self.id_basis), ("exp_std", self.exp_basis), ("albedo_std", self.albedo_basis)):
            std = getattr(self, nm)
            if std is not None:
                need(tuple(std.shape) == (basis.shape[0],), f"{nm} must be ({basis.shape[0]},), got {tuple(std.shape)}")
                need(bool(torch.isfinite(std).all()), f"{nm} contains NaN or infinite values")
        for nm in ("mean_shape", "id_basis", "exp_basis", "mean_albedo", "albedo_basis"):
            need(bool(torch.isfinite(getattr(self, nm)).all()), f"{nm} contains NaN or infinite values")
        return self


# ---------------------------------------------------------------------- own format
_ARRAY_FIELDS = (
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
)


def save_face_model(model: FaceModel, path: str | Path) -> None:
    """Write ``model`` in the project's own format: one compressed ``.npz`` (atomic)."""
    from focus.io_utils import atomic_path

    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION),
        "name": np.array(model.name),
    }
    for nm in _ARRAY_FIELDS:
        val = getattr(model, nm)
        if val is not None:
            t = val.detach().cpu()
            arrays[nm] = t.numpy().astype(np.float32 if t.is_floating_point() else np.int64)
    for key, mask in model.regions.items():
        arrays[f"region__{key}"] = mask.detach().cpu().numpy().astype(bool)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


#: Most uncompressed bytes a model file may hold (the largest real model, BFM 2009 with every
#: component in float32, is well under 1 GiB); larger files are refused before anything is read.
MAX_MODEL_BYTES = 4 << 30

_FLOAT_FIELDS = (
    "mean_shape",
    "id_basis",
    "exp_basis",
    "mean_albedo",
    "albedo_basis",
    "id_std",
    "exp_std",
    "albedo_std",
)
_INT_FIELDS = ("triangles", "landmarks68", "now_landmarks7")


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of an ``.npz`` from the zip directory and the ``.npy`` headers.

    Nothing but the headers is decompressed; object arrays, arrays larger than their stored
    bytes and archives over :data:`MAX_MODEL_BYTES` are refused (:class:`InputFileError`).
    """
    import zipfile

    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if total > MAX_MODEL_BYTES:
            raise InputFileError(path, f"holds {total} bytes of arrays, more than any face model ({MAX_MODEL_BYTES})")
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise InputFileError(path, f"member {info.filename[:80]!r} is not a numpy array")
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version in ((2, 0), (3, 0)):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            name = info.filename[: -len(".npy")]
            if dtype.hasobject:
                raise InputFileError(
                    path,
                    f"array {name!r} holds Python objects, which are never loaded",
                    "write plain numeric arrays (focus model convert does)",
                )
            if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > info.file_size:
                raise InputFileError(path, f"array {name!r} is truncated (its header promises more data than stored)")
            out[name] = (tuple(shape), dtype)
    return out


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (checked headers first; never unpickles)."""
    from focus.facemodel.file_kind import CONVERTIBLE, KINDS, convert_hint, sniff

    kind = sniff(path)
    if kind != "npz":
        fix = (
            convert_hint(path)
            if kind in CONVERTIBLE
            else "name a face model file (.npz, from `focus model generate` or `focus model convert`)"
        )
        raise InputFileError(path, f"not a face model in the project's format: this is {KINDS[kind]}", fix)
    try:
        headers = _npz_headers(path)
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in headers}
    except InputFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means a corrupt file
        raise InputFileError(
            path,
            f"not a readable .npz face model ({exc.__class__.__name__}: {str(exc)[:200]})",
            "write it again with `focus model generate` or `focus model convert`",
        ) from exc


def _text_entry(path: Path, data: dict[str, np.ndarray], key: str) -> str | None:
    if key not in data:
        return None
    arr = data[key]
    if arr.size != 1 or arr.dtype.kind not in "US":
        raise InputFileError(path, f"entry {key!r} should be one string, got dtype {arr.dtype} and shape {arr.shape}")
    value = arr.reshape(()).item()
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _tensor_entry(path: Path, name: str, arr: np.ndarray) -> Tensor:
    """A float32 / int64 / bool tensor from a stored array, refusing the wrong kind of number."""
    if name in _FLOAT_FIELDS:
        if arr.dtype.kind not in "fiu":
            raise InputFileError(path, f"{name!r} should hold real numbers, got dtype {arr.dtype}")
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if name in _INT_FIELDS:
        if arr.dtype.kind not in "iu":
            raise InputFileError(path, f"{name!r} should hold integer vertex ids, got dtype {arr.dtype}")
        if arr.size and (arr.max() > np.iinfo(np.int64).max):
            raise InputFileError(path, f"{name!r} holds vertex ids beyond int64")
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.int64))
    if arr.dtype != bool:  # regions
        raise InputFileError(path, f"region {name!r} should be a boolean vertex mask, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def load_face_model(path: str | Path) -> FaceModel:
    """Read a model written by :func:`save_face_model`; errors name the file.

    The file is untrusted: nothing is unpickled, sizes are checked against the stored bytes before
    any array is read, and every entry's dtype and shape is checked (:meth:`FaceModel.validate`).
    A model in another format (``.mat``, ``.h5``, an ICT folder) is refused with the
    ``focus model convert`` command that reads it.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(
            path, "face model file not found", "run `dvc repro facemodel` or name an existing model file"
        )
    data = _read_arrays(path)
    if _text_entry(path, data, "format") != FORMAT_NAME:
        raise InputFileError(path, f"not a {FORMAT_NAME} file (missing or wrong 'format' entry)")
    missing = [k for k in _ARRAY_FIELDS[:8] if k not in data]
    if missing:
        raise InputFileError(path, f"missing arrays {missing}; the file is truncated or from another tool")
    kw: dict = {nm: _tensor_entry(path, nm, data[nm]) for nm in _ARRAY_FIELDS if nm in data}
    kw["regions"] = {
        k[len("region__") :]: _tensor_entry(path, k[len("region__") :], data[k])
        for k in data
        if k.startswith("region__")
    }
    kw["name"] = _text_entry(path, data, "name") or path.stem
    return FaceModel(**kw).validate(path)
