"""The 7 NoW landmarks of a prediction: ``<IMG>.npy`` (a ``(7, 3)`` array) or ``<IMG>.txt``
(7 lines ``x y z``, single spaces, as the official reader splits on one space).

Landmarks are in the prediction mesh's frame and unit, in the NoW order (right eye outer, right
eye inner, left eye inner, left eye outer, nose bottom, right mouth corner, left mouth corner).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from focus.errors import InputFileError
from focus.io_utils import atomic_path, write_text_atomic

#: Larger landmark files are refused before reading (7 points need a few hundred bytes).
MAX_LANDMARK_FILE_BYTES = 1 << 20


def read_landmarks(path: str | Path, num_points: int = 7) -> np.ndarray:
    """Predicted landmarks ``(num_points, 3)`` float64 from ``.npy`` or ``.txt`` (``x y z`` per line).

    A ``.npy`` is never unpickled; its header is checked before any data is read.

    Raises:
        InputFileError: missing, empty or oversized file, unknown extension, unreadable
            content, wrong shape or non-finite values (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "landmark file not found")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".txt"):
        raise InputFileError(path, f"unsupported landmark format '{suffix}'", "use .npy or .txt")
    size = path.stat().st_size
    if size == 0:
        raise InputFileError(path, "landmark file is empty (0 bytes)", f"write the {num_points} landmarks again")
    if size > MAX_LANDMARK_FILE_BYTES:
        raise InputFileError(path, f"landmark file is {size} bytes, too large for {num_points} points")
    arr = _read_npy(path, num_points) if suffix == ".npy" else _read_txt(path, num_points)
    if arr.dtype.kind not in "fiu":
        raise InputFileError(path, f"landmarks must be numbers, got dtype {arr.dtype}")
    if arr.shape == (num_points * 3,):
        arr = arr.reshape(num_points, 3)
    if arr.shape != (num_points, 3):
        raise InputFileError(
            path,
            f"landmarks have shape {arr.shape}, expected ({num_points}, 3)",
            "the 7 NoW landmarks, one 'x y z' row each",
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputFileError(path, "landmarks contain NaN or infinite values")
    return arr


def _read_npy(path: Path, num_points: int) -> np.ndarray:
    fmt = np.lib.format
    try:
        with path.open("rb") as fh:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = fmt.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:  # numpy parses the header with ast/tokenize: many error types
        raise InputFileError(
            path, f"not a valid .npy array file ({exc})", "save the landmarks with numpy.save"
        ) from None
    if dtype.hasobject or dtype.kind not in "fiu":
        raise InputFileError(path, f"landmarks must be numbers, got dtype {dtype}")
    if tuple(shape) not in ((num_points, 3), (num_points * 3,)):
        raise InputFileError(
            path,
            f"landmarks have shape {tuple(shape)}, expected ({num_points}, 3)",
            "the 7 NoW landmarks, one 'x y z' row each",
        )
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (ValueError, OSError, EOFError) as exc:
        raise InputFileError(path, f"cannot read landmarks ({exc})") from None


def _read_txt(path: Path, num_points: int) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise InputFileError(path, f"cannot read landmarks as UTF-8 text ({exc})") from None
    rows = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not rows or len({len(r) for r in rows}) != 1:
        raise InputFileError(path, f"expected {num_points} lines of 3 numbers 'x y z'", "write it with write_landmarks")
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError as exc:
        raise InputFileError(path, f"landmarks must be numbers ({exc})") from None


def write_landmarks(path: str | Path, landmarks: np.ndarray) -> None:
    """Write ``(7, 3)`` landmarks as ``.npy`` or ``.txt`` (chosen by the extension)."""
    path = Path(path)
    arr = landmarks.detach().cpu().numpy() if hasattr(landmarks, "detach") else np.asarray(landmarks)
    if arr.shape != (7, 3) or not np.isfinite(arr).all():
        raise ValueError(f"need finite (7, 3) landmarks, got shape {arr.shape}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with atomic_path(path) as tmp:
            np.save(tmp, arr.astype(np.float64 if arr.dtype != np.float32 else np.float32))
    elif suffix == ".txt":
        text = "\n".join(" ".join(repr(float(c)) for c in row) for row in arr) + "\n"
        write_text_atomic(path, text)
    else:
        raise ValueError(f"landmark file must end in .npy or .txt, got {path.name}")
