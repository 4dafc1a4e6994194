"""The 68 iBUG landmark vertices of the embedded model (and the 7 NoW ones).

Inner landmarks (brows, nose, eyes, lips) are the vertices nearest to anatomical points given in
canonical frontal coordinates (see :mod:`focus.facemodel.face_shape`): the eye corners and lid
points lie on the palpebral fissure's margins, the lip points on the vermilion borders and on
the mouth slit (upper inner lip on the upper-lip copies, lower inner lip on the lower-lip
copies), the nose tip is the most protruding midline vertex. The jaw line (0-16) follows the
frontal silhouette of the mean face: 17 points equally spaced by arc length from the right side at
the height of the lower eyelids, round the chin, to the left side.

The right half (subject's right, ``x < 0``, image left in a frontal view) is chosen and the left
half is its mirror image through the template's vertex mirror map, so the landmarks are exactly
symmetric. iBUG order (0-based): jaw 0-16 (0 on the subject's right), right brow 17-21 (outer to
inner), left brow 22-26 (inner to outer), nose bridge 27-30 (top to tip), nose base 31-35 (right
to left, 33 = subnasale), right eye 36-41 (outer corner, upper lid x2, inner corner, lower lid
x2), left eye 42-47 (inner corner, upper lid x2, outer corner, lower lid x2), outer lips 48-59
(48 right corner, 51 upper centre, 54 left corner, 57 lower centre), inner lips 60-67 (60 right
corner, 62 upper centre, 64 left corner, 66 lower centre).
"""

from __future__ import annotations

import numpy as np

from focus.facemodel.face_shape import ANATOMY, EYE_HALF_WIDTH, brow_hair_curve, eye_curves, lip_edges
from focus.facemodel.model import NOW_LANDMARKS_FROM_IBUG68
from focus.facemodel.template_mesh import TemplateMesh


def _nearest(xy: np.ndarray, candidates: np.ndarray, target: tuple[float, float]) -> int:
    d = np.sum((xy[candidates] - np.asarray(target)) ** 2, axis=1)
    return int(candidates[int(np.argmin(d))])


def _jaw_contour_right(
    mean_shape: np.ndarray, normals: np.ndarray, candidates: np.ndarray, y_start: float
) -> np.ndarray:
    """9 vertex ids on the frontal silhouette from the right side (``y_start``) to the chin bottom."""
    centre = np.array([0.0, -10.0])
    xy = mean_shape[:, :2]
    rel = xy[candidates] - centre
    ang = np.degrees(np.arctan2(rel[:, 1], rel[:, 0])) % 360.0  # 180 = right side, 270 = down
    rad = np.linalg.norm(rel, axis=1)
    bins = np.arange(120.0, 270.5, 1.0)
    outline = []
    for a in bins:
        sel = np.abs(ang - a) < 1.5
        if np.any(sel):
            k = np.argmax(np.where(sel, rad, -1.0))
            outline.append(xy[candidates[k]])
    outline = np.asarray(outline)
    # start where the outline reaches y_start on the right side
    start = int(np.argmin(np.abs(outline[:, 1] - y_start) + 1e3 * (outline[:, 0] > -20)))
    outline = outline[start:]
    seg = np.linalg.norm(np.diff(outline, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    targets = np.linspace(0.0, arc[-1], 9)
    pts = np.stack([np.interp(targets, arc, outline[:, 0]), np.interp(targets, arc, outline[:, 1])], 1)
    ids = [_nearest(xy, candidates, tuple(p)) for p in pts[:8]]
    midline = candidates[np.abs(xy[candidates, 0]) < 1e-6]
    ids.append(int(midline[np.argmin(xy[midline, 1])]))  # chin bottom on the midline
    return np.asarray(ids, dtype=np.int64)


def ibug68_landmarks(
    template: TemplateMesh, canonical_xy: np.ndarray, mean_shape: np.ndarray, normals: np.ndarray
) -> np.ndarray:
    """``(68,)`` int64 vertex ids of the iBUG-68 landmarks (see the module docstring)."""
    X, Y = canonical_xy[:, 0], canonical_xy[:, 1]
    V = X.shape[0]
    all_ids = np.arange(V)
    regular = all_ids[template.lip_side == 0]
    midline = regular[np.abs(X[regular]) < 1e-6]
    upper_slit = all_ids[template.lip_side > 0]
    lower_slit = all_ids[template.lip_side < 0]
    lm = np.full(68, -1, dtype=np.int64)
    mirror = template.mirror

    def near(target, cand=regular) -> int:
        return _nearest(canonical_xy, cand, target)

    # jaw line from the frontal silhouette of the mean shape
    front = regular[(normals[regular, 2] > 0.25) & (np.abs(X[regular]) < 70.0)]
    right_jaw = _jaw_contour_right(mean_shape, normals, front, y_start=ANATOMY["eye_centre"][1] - 6.0)
    lm[0:9] = right_jaw
    lm[9:17] = mirror[right_jaw[:8][::-1]]

    # brows (right: outer -> inner), on the upper half of the hair band
    for k, a in zip(range(17, 22), (49.0, 41.0, 32.5, 24.0, 16.0)):
        c, half = brow_hair_curve(np.array([a]))
        lm[k] = near((-a, float(c[0] + 0.4 * half[0])))
    lm[22:27] = mirror[lm[17:22][::-1]]

    # nose bridge and tip
    yn, yt, ys = ANATOMY["nasion"][1], ANATOMY["nose_tip"][1], ANATOMY["subnasale"][1]
    lm[27] = _nearest(canonical_xy, midline, (0.0, yn))
    near_tip = midline[(Y[midline] > yt - 8.0) & (Y[midline] < yt + 8.0)]
    lm[30] = int(near_tip[np.argmax(mean_shape[near_tip, 2])])
    y_tip = Y[lm[30]]
    lm[28] = _nearest(canonical_xy, midline, (0.0, yn + (y_tip - yn) / 3.0))
    lm[29] = _nearest(canonical_xy, midline, (0.0, yn + 2.0 * (y_tip - yn) / 3.0))
    # nose base (right to left)
    lm[31] = near((-12.5, ys + 2.5))
    lm[32] = near((-6.5, ys + 0.5))
    lm[33] = _nearest(canonical_xy, midline, (0.0, ys))
    lm[34] = mirror[lm[32]]
    lm[35] = mirror[lm[31]]

    # right eye: outer corner, two upper-lid points, inner corner, two lower-lid points
    ex = ANATOMY["eye_centre"][0]
    pts = []
    for u_pos, lid in (
        (1.0, "corner"),
        (1.0 / 3.0, "upper"),
        (-1.0 / 3.0, "upper"),
        (-1.0, "corner"),
        (-1.0 / 3.0, "lower"),
        (1.0 / 3.0, "lower"),
    ):
        a = ex + u_pos * EYE_HALF_WIDTH
        _, tilt, up, lo, _ = eye_curves(np.array([a]), np.array([0.0]))
        y = {"corner": float(tilt[0] + ANATOMY["eye_centre"][1]), "upper": float(up[0]), "lower": float(lo[0])}[lid]
        pts.append((-a, y))
    lm[36:42] = [near(p) for p in pts]
    # left eye in iBUG order: inner, upper x2, outer, lower x2 = mirrors of 39, 38, 37, 36, 41, 40
    lm[42:48] = mirror[lm[[39, 38, 37, 36, 41, 40]]]

    # outer lips
    ym = ANATOMY["mouth"][1]
    c_right, c_left = template.mouth_corner_cols
    lm[48] = template.grid_index(template.mouth_row, c_right)
    lm[54] = template.grid_index(template.mouth_row, c_left)
    for k, x in ((49, -15.0), (50, -5.5), (51, 0.0)):
        _, top, _ = lip_edges(np.array([x]))
        lm[k] = near((x, float(top[0])))
    lm[52] = mirror[lm[50]]
    lm[53] = mirror[lm[49]]
    for k, x in ((59, -16.0), (58, -7.5), (57, 0.0)):
        _, _, bot = lip_edges(np.array([x]))
        lm[k] = near((x, float(bot[0])))
    lm[56] = mirror[lm[58]]
    lm[55] = mirror[lm[59]]

    # inner lips on the slit: corners one column inside the mouth corners
    lm[60] = template.grid_index(template.mouth_row, c_right + 1)
    lm[64] = template.grid_index(template.mouth_row, c_left - 1)
    lm[61] = _nearest(canonical_xy, upper_slit, (-8.0, ym))
    lm[62] = _nearest(canonical_xy, upper_slit, (0.0, ym))
    lm[63] = mirror[lm[61]]
    lm[67] = _nearest(canonical_xy, lower_slit, (-8.0, ym))
    lm[66] = _nearest(canonical_xy, lower_slit, (0.0, ym))
    lm[65] = mirror[lm[67]]
    if np.any(lm < 0):
        raise AssertionError(f"landmarks not assigned: {np.flatnonzero(lm < 0)}")
    return lm


def now_landmarks(landmarks68: np.ndarray) -> np.ndarray:
    """``(7,)`` NoW landmark vertex ids from the iBUG-68 ids."""
    return np.asarray(landmarks68)[list(NOW_LANDMARKS_FROM_IBUG68)].astype(np.int64)
