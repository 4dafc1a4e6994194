"""What a file handed to a face-model command really is, from its first bytes (for error messages).

Users mix up files: a network checkpoint passed where a face model belongs, a Basel ``.h5`` given to
``focus model preview``. :func:`sniff` names the kind from the file's signature (never by loading
it: nothing is unpickled or decompressed beyond the zip directory), so the error can say what the
file is and what to do instead.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

#: Kinds :func:`sniff` returns, with the words used in messages.
KINDS: dict[str, str] = {
    "npz": "a numpy .npz archive",
    "torch": "a PyTorch checkpoint (network weights, e.g. a FOCUS model or an identity network), not a face model",
    "zip": "a zip archive that is neither a face model nor a PyTorch checkpoint",
    "hdf5": "an HDF5 file (a Basel Face Model 2017/2019 .h5 or a MATLAB v7.3 .mat)",
    "mat": "a MATLAB .mat file (e.g. BFM 2009 or Deep3DFaceRecon's BFM_model_front.mat)",
    "pickle": "a Python pickle (e.g. an old PyTorch checkpoint), which is never loaded",
    "ict": "an ICT-FaceKit FaceXModel folder",
    "folder": "a folder",
    "image": "an image",
    "mesh": "a mesh file (OBJ/PLY)",
    "empty": "an empty file",
    "unknown": "a file of unknown kind",
}

#: Kinds that ``focus model convert`` reads.
CONVERTIBLE = ("hdf5", "mat", "ict")

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"MATLAB", "mat"),
    (b"\x89PNG", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"ply", "mesh"),
    (b"\x80", "pickle"),
)


def sniff(path: str | Path) -> str:
    """One of :data:`KINDS` for ``path`` (``"unknown"`` when unsure; never raises for a readable path)."""
    path = Path(path)
    if path.is_dir():
        neutral = "generic_neutral_mesh.obj"
        return "ict" if (path / neutral).is_file() or (path / "FaceXModel" / neutral).is_file() else "folder"
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return "unknown"
    if not head:
        return "empty"
    if head.startswith(b"PK"):
        return _zip_kind(path)
    if len(head) >= 128 and head[:116].startswith(b"MATLAB"):
        return "mat"
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if path.suffix.lower() == ".obj" and (b"\nv " in head or head.startswith(b"v ")):
        return "mesh"
    return "unknown"


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()[:10_000]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "unknown"
    if any(n.endswith("data.pkl") or n.endswith(".data/version") for n in names):
        return "torch"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def describe(path: str | Path) -> str:
    """Words for what ``path`` is (see :data:`KINDS`)."""
    return KINDS[sniff(path)]


def convert_hint(src: str | Path) -> str:
    """The command that turns ``src`` into the project's format."""
    return f"convert it first: focus model convert {src} --out MODEL.npz"
