"""MeshLab PickedPoints (``.pp``) files: the NoW scan landmarks.

A NoW ``scans_lmks_onlypp/<subject>/*.pp`` file is MeshLab's XML::

    <!DOCTYPE PickedPoints>
    <PickedPoints>
     <DocumentData>
      <DateTime time="..." date="..."/>
      <User name="..."/>
      <DataFileName name="..."/>
      <templateName name=""/>
     </DocumentData>
     <point x="..." y="..." z="..." active="1" name="1"/>     <- lines 9 to 15: the 7 landmarks
     ...
    </PickedPoints>

The official scorer reads lines 9 to 15 and the ``x=``, ``y=``, ``z=`` attributes in them. This
reader parses the XML instead (any attribute order, any whitespace or line layout) and takes the
first 7 ``<point>`` elements in document order, which on a well-formed file are exactly those
lines. Points are in the scan's unit (mm for NoW), in the NoW landmark order (right eye outer,
right eye inner, left eye inner, left eye outer, nose bottom, right mouth corner, left mouth
corner).
"""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from focus.errors import InputFileError
from focus.io_utils import write_text_atomic

NUM_NOW_LANDMARKS = 7


def read_pp(path: str | Path, num_points: int = NUM_NOW_LANDMARKS) -> np.ndarray:
    """The first ``num_points`` picked points of a MeshLab ``.pp`` file, ``(num_points, 3)`` float64.

    Raises:
        InputFileError: the file is missing, not XML, has fewer than ``num_points`` points, or a
            point lacks a numeric, finite ``x``, ``y`` or ``z``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "landmark file not found")
    try:
        root = ET.fromstring(path.read_bytes())
    except ET.ParseError as exc:
        raise InputFileError(path, f"not a valid MeshLab PickedPoints XML file ({exc})") from exc
    points = [el for el in root.iter() if _local(el.tag).lower() == "point"]
    if len(points) < num_points:
        raise InputFileError(
            path,
            f"has {len(points)} <point> entries, need {num_points} (the NoW landmarks: right eye "
            "outer, right eye inner, left eye inner, left eye outer, nose bottom, right mouth "
            "corner, left mouth corner)",
        )
    if len(points) > num_points:
        warnings.warn(
            f"{path}: has {len(points)} points; using the first {num_points} like the official scorer",
            stacklevel=2,
        )
    out = np.empty((num_points, 3), dtype=np.float64)
    for i, el in enumerate(points[:num_points]):
        attrs = {k.strip().lower(): v for k, v in el.attrib.items()}
        for j, axis in enumerate("xyz"):
            if axis not in attrs:
                raise InputFileError(path, f"point {i + 1} has no '{axis}' attribute")
            try:
                value = float(attrs[axis].strip())
            except ValueError:
                raise InputFileError(path, f"point {i + 1}: {axis}={attrs[axis]!r} is not a number") from None
            if not math.isfinite(value):
                raise InputFileError(path, f"point {i + 1}: {axis}={attrs[axis]!r} is not finite")
            out[i, j] = value
    return out


def write_pp(path: str | Path, points: np.ndarray, data_file_name: str = "") -> None:
    """Write points as a MeshLab ``.pp`` file in the standard layout (points from line 9 on).

    Coordinates are written with ``repr`` precision, so :func:`read_pp` returns them exactly.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"need (N, 3) points, got shape {pts.shape}")
    name = data_file_name.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    lines = [
        "<!DOCTYPE PickedPoints>",
        "<PickedPoints>",
        " <DocumentData>",
        '  <DateTime time="00:00:00" date="2000-01-01"/>',
        '  <User name="focus"/>',
        f'  <DataFileName name="{name}"/>',
        '  <templateName name=""/>',
        " </DocumentData>",
    ]
    for i, (x, y, z) in enumerate(pts):
        lines.append(f' <point x="{float(x)!r}" y="{float(y)!r}" z="{float(z)!r}" active="1" name="{i + 1}"/>')
    lines.append("</PickedPoints>")
    write_text_atomic(path, "\n".join(lines) + "\n")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
