"""Semantic vertex regions of the embedded model (soft weights and boolean masks).

All regions are defined on the canonical frontal coordinates ``(X, Y)`` (mm) of the template (see
:mod:`focus.facemodel.face_shape`), so they follow the mesh's anatomy, and are shared by the
albedo population (soft weights) and the model's ``regions`` (boolean masks, weight > 0.5).
``left`` / ``right`` are the subject's (``+x`` is the subject's left).

Boolean regions stored in the model (``FaceModel.regions``):

* ``face``: the front face used by the photometric loss: everything except the outer rim
  (beyond the temples and cheeks, ``|X| > 64`` mm), the underside of the chin and jaw (vertices
  whose mean-shape normal points down) and the top strip of the forehead (``Y > 96`` mm).
* ``skin``: ``face`` without ``eyes``, ``brows``, ``lips`` and ``nostrils``.
* ``eyes`` (``eye_left``, ``eye_right``): the palpebral fissure, the almond between the lid margins
  where the eyeball shows (the model's surface there is smooth; sclera, iris and lashes are
  painted by the synthetic-data generator).
* ``brows`` (``brow_left``, ``brow_right``): the band of the eyebrow hair.
* ``lips`` (``upper_lip``, ``lower_lip``): the red vermilion of the lips; the mouth-slit copies
  belong to their own lip.
* ``nose``: the external nose from the nasion to the subnasale, alae included.
* ``nostrils``: the nostril openings on the underside of the nose.
* ``beard``: where a beard or stubble grows: upper lip (moustache), chin, jaw, lower cheeks and
  sideburns, without the lips and the nose.
* ``forehead``: above the brows.
* ``cheeks``: the cheeks between the nose, the eyes and the jaw.
"""

from __future__ import annotations

import numpy as np

from focus.facemodel.face_shape import (
    ANATOMY,
    MEAN_FACE,
    FaceShapeParams,
    brow_hair_curve,
    eye_curves,
    gauss,
    gauss2,
    lip_edges,
    sigmoid,
    smoothstep,
    window,
)

#: Names of the boolean regions :func:`region_masks` returns, in a fixed order.
REGION_NAMES: tuple[str, ...] = (
    "face",
    "skin",
    "eyes",
    "eye_left",
    "eye_right",
    "brows",
    "brow_left",
    "brow_right",
    "lips",
    "upper_lip",
    "lower_lip",
    "nose",
    "nostrils",
    "beard",
    "forehead",
    "cheeks",
)


def soft_regions(
    canonical_xy: np.ndarray, lip_side: np.ndarray, p: FaceShapeParams = MEAN_FACE
) -> dict[str, np.ndarray]:
    """Soft region weights ``(V,)`` in [0, 1] at canonical coordinates ``(V, 2)``.

    ``lip_side`` ``(V,)`` (+1 upper, -1 lower, 0 elsewhere) assigns the mouth-slit copies.
    Keys: ``eyes``, ``iris``, ``lash_line``, ``periorbital``, ``brows``, ``upper_lip``, ``lower_lip``, ``nose``,
    ``nose_tip``, ``nostrils``, ``beard``, ``moustache``, ``cheeks``, ``forehead``.
    """
    X, Y = canonical_xy[:, 0], canonical_xy[:, 1]
    A = np.abs(X)
    out: dict[str, np.ndarray] = {}

    _, _, upper_m, lower_m, fissure = eye_curves(A, Y, p)
    out["eyes"] = fissure
    r_iris = np.sqrt((A - ANATOMY["eye_centre"][0]) ** 2 + (Y - ANATOMY["eye_centre"][1] - 0.5) ** 2)
    out["iris"] = sigmoid((5.6 - r_iris) / 0.8) * fissure
    out["lash_line"] = gauss(Y - upper_m, 0.9) * window((A - ANATOMY["eye_centre"][0]) / 14.5, -1.05, 1.1, 0.08)
    ex, ey = ANATOMY["eye_centre"]
    out["periorbital"] = np.clip(gauss2(A, Y, ex, ey, 15.0, 9.0) - fissure, 0.0, 1.0)

    centre, half = brow_hair_curve(A)
    out["brows"] = sigmoid((half - np.abs(Y - centre)) / 0.6) * window(A, 13.0, 52.0, 1.0)

    ym = ANATOMY["mouth"][1]
    taper, top_edge, bot_edge = lip_edges(X, p)
    inside = (taper > 0).astype(float)
    upper = sigmoid((top_edge - Y) / 0.35) * sigmoid((Y - ym + 0.3) / 0.15) * inside
    lower = sigmoid((Y - bot_edge) / 0.5) * sigmoid((ym + 0.3 - Y) / 0.15) * inside
    upper = np.where(lip_side < 0, 0.0, np.where(lip_side > 0, 1.0, upper))
    lower = np.where(lip_side > 0, 0.0, np.where(lip_side < 0, 1.0, lower))
    out["upper_lip"] = upper
    out["lower_lip"] = lower

    yn, ys = ANATOMY["nasion"][1], ANATOMY["subnasale"][1]
    s = np.clip((yn - Y) / (yn - ANATOMY["nose_tip"][1]), 0.0, 1.1)
    half_w = 1.7 * (4.4 + 2.8 * s**1.5)
    dorsum = sigmoid((half_w - A) / 0.8) * window(Y, ys - 0.5, yn + 2.0, 0.8)
    ax_, ay = ANATOMY["ala"]
    ala = sigmoid((7.0 - np.sqrt(((A - ax_ + 0.5) / 1.1) ** 2 + (Y - ay) ** 2)) / 0.8)
    out["nose"] = np.maximum(dorsum, ala)
    out["nose_tip"] = gauss2(X, Y, 0.0, ANATOMY["nose_tip"][1], 6.0, 5.0)
    nx, ny = ANATOMY["nostril"]
    out["nostrils"] = gauss2(A, Y, nx, ny, 2.6, 1.5)

    beard_top = -21.0 + 14.0 * smoothstep((A - 8.0) / 30.0) + 40.0 * smoothstep((A - 42.0) / 22.0)
    lips_any = np.maximum(upper, lower)
    beard = sigmoid((beard_top - Y) / 1.5) * (1.0 - lips_any) * (1.0 - out["nose"])
    out["beard"] = np.clip(beard, 0.0, 1.0)
    out["moustache"] = out["beard"] * window(Y, ym + 1.0, ys, 1.0) * sigmoid((28.0 - A) / 2.0)
    out["cheeks"] = gauss2(A, Y, 40.0, -8.0, 12.0, 14.0) * (1.0 - out["nose"])
    brow_top = centre + half
    out["forehead"] = sigmoid((Y - np.where(A < 13.0, 40.0, brow_top) - 2.0) / 1.0)
    return out


def region_masks(
    canonical_xy: np.ndarray, lip_side: np.ndarray, vertex_normals: np.ndarray, p: FaceShapeParams = MEAN_FACE
) -> dict[str, np.ndarray]:
    """Boolean masks ``(V,)`` for :data:`REGION_NAMES` (see the module docstring).

    ``vertex_normals`` ``(V, 3)`` of the mean shape decide the underside of the chin.
    """
    X, Y = canonical_xy[:, 0], canonical_xy[:, 1]
    soft = soft_regions(canonical_xy, lip_side, p)
    left, right = X > 0, X < 0
    m: dict[str, np.ndarray] = {}
    underside = vertex_normals[:, 1] < -0.55
    m["face"] = (np.abs(X) <= 64.0) & ~underside & (Y <= 96.0)
    m["eyes"] = soft["eyes"] > 0.5
    m["eye_left"] = m["eyes"] & left
    m["eye_right"] = m["eyes"] & right
    m["brows"] = soft["brows"] > 0.5
    m["brow_left"] = m["brows"] & left
    m["brow_right"] = m["brows"] & right
    m["upper_lip"] = soft["upper_lip"] > 0.5
    m["lower_lip"] = soft["lower_lip"] > 0.5
    m["lips"] = m["upper_lip"] | m["lower_lip"]
    m["nose"] = soft["nose"] > 0.5
    m["nostrils"] = soft["nostrils"] > 0.5
    m["beard"] = (soft["beard"] > 0.5) & ~m["lips"]
    m["forehead"] = soft["forehead"] > 0.5
    m["cheeks"] = (soft["cheeks"] > 0.5) & ~m["nose"] & ~m["eyes"]
    m["skin"] = m["face"] & ~(m["eyes"] | m["brows"] | m["lips"] | m["nostrils"])
    return {k: m[k].astype(bool) for k in REGION_NAMES}
