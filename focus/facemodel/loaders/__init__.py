"""Loaders: every supported face-model format -> the one in-memory :class:`FaceModel`.

=============  =========================================================  ============================
format         what the user points at                                    loader
=============  =========================================================  ============================
``focus``      the project's own ``.npz``                                 :func:`load_face_model`
``bfm2009``    ``01_MorphableModel.mat`` (+ Deep3DFaceRecon side files)   :func:`load_bfm2009`
``bfm_front``  Deep3DFaceRecon's ``BFM_model_front.mat``                   :func:`load_bfm_front`
``bfm2017``    ``model2017-1_bfm_nomouth.h5`` (statismo HDF5)              :func:`load_bfm2017`
``ict``        an ICT-FaceKit ``FaceXModel/`` folder                       :func:`load_ict`
=============  =========================================================  ============================

All give millimetres in the model frame of :mod:`focus.render.camera`, std-scaled bases, 0-based
counter-clockwise triangles, 68 + 7 landmark ids, ``face``/``skin`` regions, and by default the
first 80 identity / 64 expression / 80 albedo components.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from focus.errors import InputFileError
from focus.facemodel.loaders._common import DEFAULT_N_ALBEDO, DEFAULT_N_EXP, DEFAULT_N_ID
from focus.facemodel.loaders.albedo_transfer import transfer_albedo, transfer_landmarks
from focus.facemodel.loaders.bfm2009 import load_bfm2009
from focus.facemodel.loaders.bfm2017 import load_bfm2017
from focus.facemodel.loaders.bfm_front import load_bfm_front
from focus.facemodel.loaders.ict import load_ict
from focus.facemodel.model import FaceModel, load_face_model

#: Format names accepted by :func:`load_any` (``format=``) and ``focus model convert --format``.
FORMATS: tuple[str, ...] = ("focus", "bfm2009", "bfm_front", "bfm2017", "ict")

__all__ = [
    "FORMATS",
    "detect_format",
    "load_any",
    "load_bfm2009",
    "load_bfm2017",
    "load_bfm_front",
    "load_ict",
    "transfer_albedo",
    "transfer_landmarks",
]

_HELP = "name the format explicitly (formats: " + ", ".join(FORMATS) + ")"


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its name, suffix or (for ``.mat``) its variable names."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "face model file or folder not found")
    if path.is_dir():
        for name, fmt in (
            ("generic_neutral_mesh.obj", "ict"),
            ("FaceXModel/generic_neutral_mesh.obj", "ict"),
            ("BFM_model_front.mat", "bfm_front"),
            ("01_MorphableModel.mat", "bfm2009"),
        ):
            if (path / name).is_file():
                return fmt
        raise InputFileError(path, "no known face model in this folder", _HELP)
    suffix = path.suffix.lower()
    if path.name == "generic_neutral_mesh.obj":
        return "ict"
    if suffix == ".npz":
        return "focus"
    if suffix in (".h5", ".hdf5"):
        return "bfm2017"
    if suffix == ".mat":
        names = _mat_variables(path)
        if {"meanshape", "idBase"} <= names:
            return "bfm_front"
        if {"shapeMU", "shapePC"} <= names:
            return "bfm2009"
        raise InputFileError(
            path, f"a .mat file with neither BFM 2009 nor Deep3DFaceRecon variables (found {sorted(names)[:10]})", _HELP
        )
    from focus.facemodel.file_kind import describe

    raise InputFileError(
        path, f"cannot tell the face model format from the name {path.name!r}: this is {describe(path)}", _HELP
    )


def _mat_variables(path: Path) -> set[str]:
    import scipy.io

    try:
        return {name for name, _, _ in scipy.io.whosmat(str(path))}
    except NotImplementedError:  # v7.3 (HDF5)
        import h5py

        try:
            with h5py.File(path, "r") as f:
                return set(f.keys())
        except OSError as exc:
            raise InputFileError(path, f"not a readable .mat file ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - any reader failure means a corrupt file
        raise InputFileError(path, f"not a readable .mat file ({exc.__class__.__name__}: {exc})") from exc


def load_any(
    path: str | Path,
    *,
    format: str | None = None,  # noqa: A002 - the user-facing word
    n_id: int | None = DEFAULT_N_ID,
    n_exp: int | None = DEFAULT_N_EXP,
    n_albedo: int | None = DEFAULT_N_ALBEDO,
    **options: Any,
) -> FaceModel:
    """Load a face model of any supported format (detected from ``path`` unless ``format`` is given).

    Args:
        path: a file or folder (see the module table).
        format: one of :data:`FORMATS` to skip detection.
        n_id, n_exp, n_albedo: keep the first components (``None``: all); applied to ``.npz`` too.
        **options: passed to the format's loader (e.g. ``landmarks68=``, ``crop=`` for BFM 2009,
            ``region=``/``albedo_source=`` for ICT, ``recenter=``). Options a loader does not
            take are an error naming them.
    """
    for what, n in (("identity", n_id), ("expression", n_exp), ("albedo", n_albedo)):
        if n is not None and n < 0:
            raise InputFileError(path, f"asked for {n} {what} components", "use a count >= 0")
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise InputFileError(path, f"unknown face model format {fmt!r}", _HELP)
    if fmt == "focus":
        if options:
            raise InputFileError(path, f"options {sorted(options)} do not apply to the project's own format")
        return load_face_model(path).truncate(n_id, n_exp, n_albedo)
    loader = {"bfm2009": load_bfm2009, "bfm_front": load_bfm_front, "bfm2017": load_bfm2017, "ict": load_ict}[fmt]
    import inspect

    accepted = set(inspect.signature(loader).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InputFileError(
            path, f"options {unknown} do not apply to format {fmt!r}", f"it takes: {sorted(accepted - {'path'})}"
        )
    return loader(path, n_id=n_id, n_exp=n_exp, n_albedo=n_albedo, **options)
