"""Face and vertex normals of triangle meshes (numpy, float64).

Triangles ``(a, b, c)`` are counter-clockwise seen from outside (right-hand rule), so normals
point outwards. The differentiable, batched torch version used by the renderer is
:func:`focus.render.shading.vertex_normals` (same definition: area-weighted sum of the adjacent
face normals).
"""

from __future__ import annotations

import numpy as np


def face_normals(vertices: np.ndarray, faces: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Normals ``(F, 3)`` of the triangles: ``(b - a) x (c - a)``.

    Args:
        vertices: ``(V, 3)`` vertex positions.
        faces: ``(F, 3)`` int vertex ids, 0-based.
        normalize: unit length (zero for degenerate triangles); otherwise the length is twice
            the triangle's area.
    """
    v = np.asarray(vertices)
    f = np.asarray(faces)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    if not normalize:
        return n
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)``: the sum of the adjacent unnormalised face
    normals, normalised (vertices in no triangle get a zero normal).

    Args:
        vertices: ``(V, 3)`` vertex positions (the result has their dtype).
        faces: ``(F, 3)`` int vertex ids, 0-based.
    """
    v = np.asarray(vertices)
    f = np.asarray(faces)
    fn = face_normals(v, f, normalize=False)
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
