"""The landmark CSV of a face-image folder: reader (with validation) and writer.

Format (one header line, then one row per image)::

    name,x1,y1,x2,y2,...,x68,y68
    000001.png,12.25,30.5,...

* ``name``: the image file's path relative to the folder's image directory (``/`` separators;
  may contain sub-folders, e.g. the NoW layout's ``<subject>/<challenge>/<IMG>.jpg``).
* ``xK, yK``: iBUG-68 landmark ``K`` (1-based in the header, 0-based in arrays) in **pixels of
  the image as stored**, image frame of :mod:`focus.render.camera` (``x`` right, ``y`` down, the
  top-left corner of the top-left pixel at ``(0, 0)``, pixel centres at ``+0.5``). Floats.

Bad rows (wrong number of columns, a value that is not a number, NaN or infinite values, an empty
or duplicated name) are reported as :class:`LandmarkProblem` naming the file and the 1-based line
number; the caller decides whether they are fatal (see :func:`read_landmarks_csv`). A UTF-8
byte-order mark at the start (Excel's "CSV UTF-8") is allowed; other encodings are refused.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from focus.errors import InputFileError
from focus.io_utils import write_text_atomic

N_LANDMARKS = 68
HEADER: tuple[str, ...] = ("name",) + tuple(f"{a}{k}" for k in range(1, N_LANDMARKS + 1) for a in ("x", "y"))


@dataclass(frozen=True)
class LandmarkProblem:
    """One bad row (or bad file reference) of a landmark CSV."""

    path: Path
    line: int  # 1-based line number in the CSV (0 when not tied to a line)
    name: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        label = f" ({self.name})" if self.name else ""
        return f"{where}{label}: {self.problem}"


@dataclass(frozen=True)
class LandmarkTable:
    """The good rows of a landmark CSV.

    Attributes:
        path: the CSV file.
        names: image names, in file order.
        landmarks: ``(N, 68, 2)`` float64 pixels, image frame.
        lines: ``(N,)`` 1-based CSV line number of each row (for error messages).
        problems: every bad row that was dropped.
    """

    path: Path
    names: tuple[str, ...]
    landmarks: np.ndarray
    lines: tuple[int, ...]
    problems: tuple[LandmarkProblem, ...]

    def __len__(self) -> int:
        return len(self.names)


def read_landmarks_csv(path: str | Path, strict: bool = False) -> LandmarkTable:
    """Read and validate a landmark CSV.

    Args:
        path: the CSV file.
        strict: if true, the first bad row raises :class:`InputFileError` (naming the file and
            the line); otherwise bad rows are dropped and listed in ``problems``.

    Raises:
        InputFileError: the file is missing or unreadable, the header is wrong (always fatal), or
            ``strict`` and a row is bad.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "landmark CSV not found",
                             "give the folder's landmark file, header `name,x1,y1,...,x68,y68`")
    try:
        # streamed (memory grows with the rows kept, not twice the file); a byte-order mark (Excel's
        # "CSV UTF-8") is not part of the header
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = csv.reader(f)
            return _read_rows(path, rows, strict)
    except csv.Error as exc:  # e.g. an unclosed quote running past the csv module's field size limit
        raise InputFileError(path, f"line {rows.line_num}: not a readable CSV ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read the landmark CSV ({exc.__class__.__name__}: {exc})") from exc


def _read_rows(path: Path, rows, strict: bool) -> LandmarkTable:
    """The table from ``rows`` (a :func:`csv.reader`), see :func:`read_landmarks_csv`."""
    try:
        header = next(rows)
    except StopIteration:
        raise InputFileError(path, "the landmark CSV is empty",
                             "the first line must be `name,x1,y1,...,x68,y68`") from None
    header = [h.strip() for h in header]
    if tuple(header) != HEADER:
        raise InputFileError(
            path,
            f"line 1: bad header ({len(header)} columns, starting {header[:3]}); expected {len(HEADER)} columns "
            "`name,x1,y1,...,x68,y68`",
        )
    names: list[str] = []
    values: list[np.ndarray] = []
    lines: list[int] = []
    problems: list[LandmarkProblem] = []
    seen: dict[str, int] = {}

    def bad(line: int, name: str, problem: str) -> None:
        p = LandmarkProblem(path, line, name, problem)
        if strict:
            raise InputFileError(path, f"line {line}{f' ({name})' if name else ''}: {problem}")
        problems.append(p)

    for row in rows:
        line = rows.line_num
        if not row or all(not c.strip() for c in row):
            continue  # blank line
        name = row[0].strip()
        if len(row) != len(HEADER):
            bad(line, name, f"{len(row)} columns, expected {len(HEADER)} (name + 68 x,y pairs)")
            continue
        if not name:
            bad(line, name, "empty image name")
            continue
        try:
            vals = np.array([float(c) for c in row[1:]], dtype=np.float64)
        except ValueError:
            first = next(c for c in row[1:] if not _is_float(c))
            bad(line, name, f"not a number: {first!r}")
            continue
        if not np.isfinite(vals).all():
            k = int(np.flatnonzero(~np.isfinite(vals))[0])
            bad(line, name, f"NaN or infinite landmark value ({HEADER[k + 1]})")
            continue
        if name in seen:
            bad(line, name, f"duplicate image name (first on line {seen[name]})")
            continue
        seen[name] = line
        names.append(name)
        values.append(vals.reshape(N_LANDMARKS, 2))
        lines.append(line)
    lms = np.stack(values) if values else np.zeros((0, N_LANDMARKS, 2))
    return LandmarkTable(path, tuple(names), lms, tuple(lines), tuple(problems))


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def format_landmarks_csv(names: Sequence[str], landmarks: np.ndarray, decimals: int = 3) -> str:
    """The CSV text for ``names`` and ``(N, 68, 2)`` landmarks (pixels)."""
    lms = np.asarray(landmarks, dtype=np.float64)
    if lms.shape != (len(names), N_LANDMARKS, 2):
        raise ValueError(f"landmarks must be ({len(names)}, 68, 2), got {lms.shape}")
    if not np.isfinite(lms).all():
        raise ValueError("landmarks contain NaN or infinite values")
    out = [",".join(HEADER)]
    for name, lm in zip(names, lms, strict=True):
        if "," in name or "\n" in name or '"' in name:
            raise ValueError(f"image name {name!r} must not contain commas, quotes or newlines")
        out.append(name + "," + ",".join(f"{v:.{decimals}f}" for v in lm.reshape(-1)))
    return "\n".join(out) + "\n"


def write_landmarks_csv(path: str | Path, names: Sequence[str], landmarks: np.ndarray, decimals: int = 3) -> None:
    """Write a landmark CSV atomically (``decimals`` digits after the point)."""
    write_text_atomic(path, format_landmarks_csv(names, landmarks, decimals))
