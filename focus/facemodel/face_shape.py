"""Parametric face geometry of the embedded model: anatomy parameters -> mesh vertices.

A face is built in three layers, all evaluated on the :class:`TemplateMesh` grid so that every
face has the same vertices in correspondence:

1. **Base head** (:func:`base_surface`): a superquadric seen from the head centre along each
   vertex's (azimuth, elevation) ray, with separate vertical exponents above and below the
   centre (a rounded forehead; a boxy lower face whose surface turns under the chin and jaw),
   then a lower-face taper (the jaw) and narrower temples. Its points with the *mean* parameters
   give every vertex its **canonical frontal coordinates** ``(X, Y)`` (mm), in which all features
   below are placed.
2. **Relief** (:func:`relief`): anatomical features added along ``+z`` as smooth bumps and
   grooves (Gaussian, sigmoid and ridge profiles) in canonical coordinates: brow ridge, eye
   sockets, eyeballs and lids, nose (dorsum, tip, alae, nostrils), philtrum, lips with a mouth
   groove, chin, cheekbones, nasolabial folds, temples.
3. **Layout warp** (:func:`layout_warp`): smooth in-plane displacements that move whole features
   (eye height and spacing, nose length, mouth height and width, chin height) relative to the
   face, so that a population varies its proportions, not just its relief.

Model frame (:mod:`focus.facemodel.model`): mm, origin at the head centre (about the ear-canal
level: 27 mm below the eye line, about 88 mm behind the nasion and 110 mm behind the nose tip),
``+x`` subject's left, ``+y`` up, ``+z`` out of the face. Anatomical positions of the mean face
are in :data:`ANATOMY` (the population mean differs from them by a few mm).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# --------------------------------------------------------------------------- mean anatomy (mm)
#: Canonical frontal positions ``(X, Y)`` of anatomical points of the mean face (right side has
#: ``X < 0``; the left side mirrors it).
ANATOMY: dict[str, tuple[float, float]] = {
    "eye_centre": (31.0, 27.0),
    "eye_outer": (45.5, 27.0),
    "eye_inner": (16.5, 27.0),
    "brow_centre": (30.0, 40.0),
    "nasion": (0.0, 31.0),
    "nose_tip": (0.0, -12.0),
    "subnasale": (0.0, -22.0),
    "ala": (15.5, -17.0),
    "nostril": (6.5, -19.5),
    "mouth": (0.0, -45.0),
    "mouth_corner": (25.0, -45.0),
    "upper_lip_top": (0.0, -37.0),
    "lower_lip_bottom": (0.0, -55.0),
    "chin": (0.0, -78.0),
    "menton": (0.0, -93.0),
    "cheekbone": (47.0, 5.0),
    "gonion": (52.0, -62.0),
    "forehead_top": (0.0, 100.0),
}


@dataclass(frozen=True)
class FaceShapeParams:
    """Anatomy parameters of one face (defaults: the mean face). Lengths in mm, factors ~1.

    The base head: superquadric half-axes and exponents, lower-face taper. Relief: amplitude
    and size factors of each feature (1 = mean). Layout: feature displacements in mm.
    """

    scale: float = 1.0
    # base head
    half_width: float = 74.0
    depth: float = 84.0
    height_up: float = 140.0
    height_down: float = 102.0
    exp_horizontal: float = 2.3
    exp_up: float = 3.2
    exp_down: float = 4.0
    jaw_ratio: float = 0.74
    jaw_level: float = -62.0
    forehead_slope: float = 1.0
    # relief factors
    brow_ridge: float = 1.0
    eye_socket: float = 1.0
    eye_bulge: float = 1.0
    eye_open: float = 1.0
    canthal_tilt: float = 0.0
    nose_projection: float = 1.0
    nose_width: float = 1.0
    nose_bridge: float = 1.0
    nose_hump: float = 0.0
    nose_tip_size: float = 1.0
    alar_width: float = 1.0
    nostril_depth: float = 1.0
    upper_lip: float = 1.0
    lower_lip: float = 1.0
    lip_protrusion: float = 1.0
    mouth_groove: float = 1.0
    philtrum: float = 1.0
    chin_projection: float = 1.0
    chin_width: float = 1.0
    labiomental: float = 1.0
    cheekbone: float = 1.0
    cheek_fullness: float = 1.0
    nasolabial: float = 1.0
    temple_hollow: float = 1.0
    frontal_boss: float = 1.0
    # layout (mm)
    eye_height: float = 0.0
    eye_spacing: float = 0.0
    nose_length: float = 0.0
    mouth_height: float = 0.0
    mouth_width: float = 0.0
    chin_height: float = 0.0
    brow_height: float = 0.0


MEAN_FACE = FaceShapeParams()
#: Half the width of the palpebral fissure, mm (outer to inner corner = 29 mm).
EYE_HALF_WIDTH = 14.5


# --------------------------------------------------------------------------- profiles
def gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * (x / sigma) ** 2)


def gauss2(X: np.ndarray, Y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((X - cx) / sx) ** 2 + ((Y - cy) / sy) ** 2))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def window(x: np.ndarray, lo: float, hi: float, soft: float) -> np.ndarray:
    """~1 for ``lo < x < hi``, smooth sigmoid fall-off of width ``soft`` outside."""
    return sigmoid((x - lo) / soft) * sigmoid((hi - x) / soft)


def segment_distance(
    X: np.ndarray, Y: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distance of points to the segment ``p0 -> p1`` and the clamped position ``t`` along it."""
    px, py = p1[0] - p0[0], p1[1] - p0[1]
    L2 = px * px + py * py
    t = np.clip(((X - p0[0]) * px + (Y - p0[1]) * py) / L2, 0.0, 1.0)
    dx = X - (p0[0] + t * px)
    dy = Y - (p0[1] + t * py)
    return np.sqrt(dx * dx + dy * dy), t


# --------------------------------------------------------------------------- layer 1: base head
def directions(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit rays ``(V, 3)`` from the head centre for azimuth ``theta`` and elevation ``phi``."""
    cp = np.cos(phi)
    return np.stack([cp * np.sin(theta), np.sin(phi), cp * np.cos(theta)], axis=-1)


def base_surface(theta: np.ndarray, phi: np.ndarray, p: FaceShapeParams = MEAN_FACE) -> np.ndarray:
    """Base head points ``(V, 3)``, model frame, mm (before relief and layout warp)."""
    d = directions(theta, phi)
    dx, dy, dz = np.abs(d[:, 0]), d[:, 1], np.abs(d[:, 2])
    ph = p.exp_horizontal
    horiz = ((dx / p.half_width) ** ph + (dz / p.depth) ** ph) ** (1.0 / ph)
    b = np.where(dy >= 0, p.height_up, p.height_down)
    q = np.where(dy >= 0, p.exp_up, p.exp_down)
    F = (horiz**q + np.abs(dy / b) ** q) ** (1.0 / q)
    pts = d / F[:, None]
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    # lower-face taper: the jaw is narrower than the cheekbones
    t = smoothstep((-2.0 - y) / (-2.0 - p.jaw_level))
    x = x * (1.0 - (1.0 - p.jaw_ratio) * t)
    # temples and forehead are narrower than the cheekbones
    x = x * (1.0 - 0.12 * smoothstep((y - 15.0) / 70.0))
    # forehead slopes back above the brows
    z = z - 0.0009 * p.forehead_slope * np.clip(y - 35.0, 0.0, None) ** 2
    return np.stack([x, y, z], axis=-1) * p.scale


# --------------------------------------------------------------------------- layer 2: relief
def eye_curves(A: np.ndarray, Y: np.ndarray, p: FaceShapeParams = MEAN_FACE):
    """Palpebral fissure of the eye on side ``A = |X|``.

    Returns ``(u, tilt, upper_margin, lower_margin, in_fissure)``: ``u`` is -1 at the inner and +1
    at the outer corner, the margins are the ``Y`` of the lid margins above ``A`` and
    ``in_fissure`` a soft (0..1) indicator of the eye opening.
    """
    ex, ey = ANATOMY["eye_centre"]
    u = (A - ex) / EYE_HALF_WIDTH
    tilt = 1.5 * p.canthal_tilt * u
    half_open = 4.6 * p.eye_open * np.sqrt(np.clip(1.0 - u**2, 0.0, 1.0))
    upper_margin = ey + tilt + half_open + 0.6 * (1 - u**2)
    lower_margin = ey + tilt - 0.75 * half_open
    in_fissure = (
        sigmoid((upper_margin - Y) / 0.45) * sigmoid((Y - lower_margin) / 0.45) * sigmoid((1.0 - np.abs(u)) / 0.04)
    )
    return u, tilt, upper_margin, lower_margin, in_fissure


def lip_edges(X: np.ndarray, p: FaceShapeParams = MEAN_FACE):
    """``(taper, top_edge, bottom_edge)`` of the red lips above canonical ``X``.

    ``taper`` is 1 at the midline and 0 beyond the mouth corners; the edges are the ``Y`` of the
    upper lip's vermilion border (with the Cupid's bow) and of the lower lip's lower border.
    """
    ym = ANATOMY["mouth"][1]
    mw = ANATOMY["mouth_corner"][0]
    taper = np.sqrt(np.clip(1.0 - (X / mw) ** 2, 0.0, 1.0))
    top_edge = ym + 8.0 * p.upper_lip * taper**0.7 - 1.0 * gauss(np.abs(X) - 5.0, 3.0) * taper
    bot_edge = ym - 10.0 * p.lower_lip * taper**0.8
    return taper, top_edge, bot_edge


def brow_hair_curve(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(centre_y, half_thickness)`` of the eyebrow (hair) band above ``A = |X|`` (mean face)."""
    t = np.clip((A - 14.0) / 38.0, 0.0, 1.0)  # 0 medial end, 1 lateral end
    centre = 37.0 + 6.5 * np.sin(np.pi * np.clip(0.15 + 0.8 * t, 0, 1)) - 2.0 * t
    half = 3.6 - 1.8 * t
    return centre, half


def relief(X: np.ndarray, Y: np.ndarray, p: FaceShapeParams = MEAN_FACE) -> np.ndarray:
    """Height ``(V,)`` (mm, along ``+z``) of the facial features at canonical ``(X, Y)``."""
    A = np.abs(X)
    h = np.zeros_like(X)

    # --- forehead and brows
    h += 2.0 * p.frontal_boss * gauss2(A, Y, 24.0, 72.0, 16.0, 16.0)
    # brow ridge: two arches over the orbits, strongest medially, plus the glabella between
    ub = (A - 29.0) / 22.0
    brow_y = 37.5 + 3.0 * np.sqrt(np.clip(1.0 - ub**2, 0.0, 1.0))
    brow_amp = 5.5 * (1.0 - 0.45 * smoothstep((A - 18.0) / 30.0))
    h += p.brow_ridge * brow_amp * gauss(Y - brow_y, 4.5) * window(A, 4.0, 52.0, 5.0)
    h += 3.0 * p.brow_ridge * gauss2(X, Y, 0.0, 38.5, 8.0, 6.0)  # glabella
    h -= 3.5 * p.temple_hollow * gauss2(A, Y, 60.0, 42.0, 9.0, 16.0)

    # --- eyes: socket deep under the brow (sharp upper edge), eyeball, lids, fissure
    ex, ey = ANATOMY["eye_centre"]
    gx = gauss(A - ex, 13.5)
    rim_y = 33.5 + 2.5 * np.sqrt(np.clip(1.0 - ((A - ex) / 17.0) ** 2, 0.0, 1.0))  # upper orbital rim
    socket_y = np.where(Y < ey - 1.0, gauss(Y - (ey - 1.0), 8.0), sigmoid((rim_y - Y) / 2.2))
    h -= 8.0 * p.eye_socket * gx * socket_y
    h += 7.5 * p.eye_bulge * gauss2(A, Y, ex, ey, 9.5, 6.0)
    h -= 2.5 * gauss2(A, Y, ex + 1.0, 13.0, 12.0, 4.5)  # infraorbital hollow
    u, tilt, upper_margin, lower_margin, in_fissure = eye_curves(A, Y, p)
    h -= 2.0 * in_fissure
    h += 1.1 * gauss(Y - upper_margin - 1.0, 0.9) * window(u, -1.0, 1.0, 0.08)  # upper lid margin
    crease = ey + tilt + 7.5 * np.sqrt(np.clip(1.0 - (u / 1.15) ** 2, 0.0, 1.0))
    h -= 1.0 * gauss(Y - crease, 1.1) * window(u, -1.05, 1.05, 0.1)
    h += 0.7 * gauss(Y - lower_margin + 2.0, 1.4) * window(u, -0.9, 0.9, 0.1)  # lower lid

    # --- nose
    yn, yt, ys = ANATOMY["nasion"][1], ANATOMY["nose_tip"][1], ANATOMY["subnasale"][1]
    s = np.clip((yn - Y) / (yn - yt), 0.0, None)  # 0 at nasion, 1 at the tip
    proj = 23.0 * p.nose_projection
    root = 3.5 * p.nose_bridge
    sc = np.clip(s, 0.0, 1.0)
    dorsum = root + (proj - root) * sc**1.3 + 2.0 * p.nose_hump * np.sin(np.pi * sc) ** 2
    dorsum = np.where(Y > yn, root * gauss(Y - yn, 6.0), dorsum)
    # underside: from the tip down to the subnasale (columella), then the lip
    under = np.clip((yt - Y) / (yt - ys), 0.0, 1.0)
    base_h = 3.0 * p.nose_projection
    dorsum = np.where(Y < yt, proj - (proj - base_h) * smoothstep(under) ** 0.8, dorsum)
    dorsum = np.where(Y < ys, base_h * gauss(Y - ys, 2.0), dorsum)
    width = p.nose_width * (4.4 + 2.8 * np.clip(s, 0.0, 1.1) ** 1.5)
    h += dorsum * np.exp(-0.5 * np.abs(X / width) ** 2.2)
    h += 3.0 * p.nose_tip_size * gauss2(X, Y, 0.0, yt + 0.5, 6.5 * p.nose_width, 4.5)
    ax_, ay = ANATOMY["ala"]
    alx = ax_ * p.alar_width
    h += 7.0 * gauss2(A, Y, alx - 0.5, ay + 0.5, 4.6, 4.2)
    ring = np.sqrt(((A - alx + 1.0) / 1.1) ** 2 + (Y - ay) ** 2)
    h -= 2.0 * gauss(ring - 6.0, 1.1) * sigmoid((Y - ay + 5.0) / 1.0) * sigmoid((A - 8.0) / 1.0)  # alar crease
    nx, ny = ANATOMY["nostril"]
    h -= 5.0 * p.nostril_depth * gauss2(A, Y, nx * p.alar_width, ny, 2.7, 1.6)

    # --- mouth
    ym = ANATOMY["mouth"][1]
    mw = ANATOMY["mouth_corner"][0]
    h += 8.0 * p.lip_protrusion * gauss2(X, Y, 0.0, ym + 2.0, 21.0, 20.0)  # dental arch
    h -= 1.0 * p.philtrum * gauss(X, 2.6) * window(Y, ym + 9.0, ys - 1.5, 1.0)
    h += 0.5 * p.philtrum * gauss(A - 5.0, 1.6) * window(Y, ym + 8.0, ys - 1.5, 1.0)
    taper, top_edge, bot_edge = lip_edges(X, p)
    upper_side = sigmoid((Y - ym) / 0.5)
    # upper vermilion: fullest just below its border (Cupid's bow), rolling into the mouth line
    h += 3.2 * p.upper_lip * gauss(Y - (top_edge - 2.4 * p.upper_lip), 2.6 * p.upper_lip) * taper**1.2 * upper_side
    h += 0.5 * gauss(Y - top_edge, 0.8) * taper  # white roll at the vermilion border
    low_c = ym - 4.5 * p.lower_lip
    low_prof = np.where(Y > low_c, gauss(Y - low_c, 3.0 * p.lower_lip), gauss(Y - low_c, 2.4 * p.lower_lip))
    h += 4.5 * p.lower_lip * low_prof * taper**1.3 * (1.0 - upper_side)
    h -= 2.2 * p.mouth_groove * gauss(Y - ym, 1.0) * window(A, -mw, mw - 1.0, 2.0)
    h -= 1.5 * gauss2(A, Y, mw + 0.5, ym, 4.0, 4.5)  # corners
    # chin and labiomental fold
    h -= 3.0 * p.labiomental * gauss2(X, Y, 0.0, -63.0, 13.0, 3.2)
    h += 12.0 * p.chin_projection * gauss2(X, Y, 0.0, -79.0, 14.0 * p.chin_width, 9.0)

    # --- cheeks
    cx, cy = ANATOMY["cheekbone"]
    h += 2.5 * p.cheekbone * gauss2(A, Y, cx + 3.0, cy - 3.0, 12.0, 10.0)
    h += 2.5 * p.cheek_fullness * gauss2(A, Y, 36.0, -24.0, 13.0, 14.0)
    dist, t = segment_distance(A, Y, (19.0, -13.0), (30.0, -49.0))
    h -= 1.4 * p.nasolabial * gauss(dist, 2.2) * window(t, 0.02, 0.98, 0.05)
    return h


# --------------------------------------------------------------------------- layer 3: layout warp
def layout_warp(X: np.ndarray, Y: np.ndarray, p: FaceShapeParams = MEAN_FACE) -> np.ndarray:
    """In-plane displacement ``(V, 2)`` (mm) that moves features relative to the face."""
    A = np.abs(X)
    sgn = np.sign(X)
    ex, ey = ANATOMY["eye_centre"]
    w_eye = gauss2(A, Y, ex, ey, 16.0, 13.0)
    w_brow = gauss2(A, Y, ex, 40.0, 20.0, 10.0)
    w_nose_low = gauss2(X, Y, 0.0, -17.0, 16.0, 9.0)
    w_mouth = gauss2(X, Y, 0.0, -47.0, 26.0, 14.0)
    w_mouth_corner = gauss2(A, Y, 25.0, -45.0, 10.0, 8.0)
    w_chin = gauss2(X, Y, 0.0, -85.0, 30.0, 16.0)
    dx = p.eye_spacing * sgn * w_eye + p.mouth_width * sgn * w_mouth_corner
    dy = (
        p.eye_height * w_eye
        + p.brow_height * w_brow
        - p.nose_length * w_nose_low
        + p.mouth_height * w_mouth
        + p.chin_height * w_chin
    )
    return np.stack([dx, dy], axis=-1)


def face_vertices(
    theta: np.ndarray,
    phi: np.ndarray,
    canonical_xy: np.ndarray,
    p: FaceShapeParams = MEAN_FACE,
    extra_relief: np.ndarray | None = None,
) -> np.ndarray:
    """Vertices ``(V, 3)`` (model frame, mm) of the face with anatomy ``p``.

    ``canonical_xy`` ``(V, 2)`` are the frontal coordinates of the mean base head at the same
    rays (see :func:`canonical_coordinates`); ``extra_relief`` ``(V,)`` (mm) is added to the
    relief (e.g. :func:`random_bumps`).
    """
    pts = base_surface(theta, phi, p).copy()
    X, Y = canonical_xy[:, 0], canonical_xy[:, 1]
    h = relief(X, Y, p)
    if extra_relief is not None:
        h = h + extra_relief
    # relief fades out towards the sides of the head where +z is tangential
    lateral = 1.0 - smoothstep((np.abs(X) - 58.0) / 14.0)
    pts[:, 2] += p.scale * h * lateral
    pts[:, :2] += p.scale * layout_warp(X, Y, p)
    return pts


def canonical_coordinates(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``(V, 2)`` frontal coordinates ``(X, Y)`` (mm) of the mean base head along each ray."""
    return base_surface(theta, phi, MEAN_FACE)[:, :2]


def param_names() -> list[str]:
    return [f.name for f in fields(FaceShapeParams)]


# --------------------------------------------------------------------------- population
def sample_face_shape_params(rng: np.random.Generator) -> FaceShapeParams:
    """One plausible adult face: anatomy parameters drawn from a population distribution.

    A few latent traits act on many parameters at once (so the population has correlated,
    nonlinear variation, as real faces do): ``m`` (0..1, facial masculinity: size, brow ridge,
    jaw, chin, nose, thinner lips), ``w`` (soft-tissue fullness: cheeks, jaw, temples), ``age``
    (0..1: nasolabial folds, thinner lips, hollower eyes), two ancestry-like axes ``a1`` (eye
    socket depth, nasal bridge height, canthal tilt, cheekbones) and ``a2`` (nose width, lip
    fullness, lip protrusion); every parameter also has its own independent spread.
    """
    m = rng.beta(0.6, 0.6)
    w = rng.normal()
    age = rng.uniform()
    a1, a2 = rng.normal(size=2)

    def z() -> float:
        return float(rng.normal())

    def lognorm(sd: float, *shift: float) -> float:
        return float(np.exp(sd * z() + sum(shift)))

    return FaceShapeParams(
        scale=float(np.clip(0.965 + 0.05 * m + 0.025 * z(), 0.88, 1.12)),
        half_width=74.0 * lognorm(0.035, 0.02 * w + 0.02 * a1),
        depth=84.0 * lognorm(0.035, -0.015 * a1),
        height_up=140.0 * lognorm(0.035),
        height_down=102.0 * lognorm(0.035, 0.02 * m),
        exp_horizontal=float(np.clip(2.3 + 0.15 * z() - 0.05 * a1, 2.0, 2.8)),
        exp_up=float(np.clip(3.2 + 0.3 * z(), 2.5, 4.0)),
        exp_down=float(np.clip(4.0 + 0.4 * z() + 0.2 * m, 3.0, 5.0)),
        jaw_ratio=float(np.clip(0.72 + 0.05 * m + 0.025 * w + 0.025 * z(), 0.62, 0.88)),
        jaw_level=-62.0 + 4.0 * z(),
        forehead_slope=lognorm(0.35, 0.3 * (m - 0.5)),
        brow_ridge=lognorm(0.22, 0.45 * (m - 0.5) + 0.08 * a1),
        eye_socket=lognorm(0.18, 0.15 * age + 0.12 * a1 - 0.1 * w),
        eye_bulge=lognorm(0.12),
        eye_open=lognorm(0.1, -0.06 * a1 - 0.05 * age),
        canthal_tilt=0.5 * z() - 0.5 * a1,
        nose_projection=lognorm(0.1, 0.08 * (m - 0.5) + 0.07 * a1),
        nose_width=lognorm(0.08, 0.07 * a2 + 0.05 * (m - 0.5)),
        nose_bridge=lognorm(0.22, 0.2 * a1),
        nose_hump=float(np.clip(0.5 * z() + 0.3 * m, -0.6, 1.5)),
        nose_tip_size=lognorm(0.2, 0.05 * a2),
        alar_width=lognorm(0.06, 0.06 * a2 + 0.03 * m),
        nostril_depth=lognorm(0.18),
        upper_lip=lognorm(0.13, 0.1 * a2 - 0.08 * (m - 0.5) - 0.1 * age),
        lower_lip=lognorm(0.13, 0.1 * a2 - 0.06 * (m - 0.5) - 0.08 * age),
        lip_protrusion=lognorm(0.14, 0.1 * a2),
        mouth_groove=lognorm(0.2),
        philtrum=lognorm(0.3),
        chin_projection=lognorm(0.2, 0.12 * (m - 0.5)),
        chin_width=lognorm(0.12, 0.12 * (m - 0.5)),
        labiomental=lognorm(0.3),
        cheekbone=lognorm(0.25, 0.12 * a1),
        cheek_fullness=lognorm(0.25, 0.3 * w - 0.15 * age),
        nasolabial=lognorm(0.25, 0.8 * (age - 0.5) + 0.1 * w),
        temple_hollow=lognorm(0.3, -0.2 * w + 0.2 * age),
        frontal_boss=lognorm(0.3, -0.3 * (m - 0.5)),
        eye_height=2.0 * z(),
        eye_spacing=1.6 * z() + 0.5 * a2,
        nose_length=2.2 * z() + 1.5 * (m - 0.5),
        mouth_height=1.8 * z(),
        mouth_width=1.6 * z() + 0.6 * (m - 0.5),
        chin_height=2.5 * z() + 2.0 * (m - 0.5),
        brow_height=1.2 * z() - 0.8 * (m - 0.5),
    )


def random_bumps(rng: np.random.Generator, X: np.ndarray, Y: np.ndarray, n: int = 14) -> np.ndarray:
    """Individual idiosyncrasies: ``(V,)`` z-offsets (mm), a sum of ``n`` random smooth bumps.

    Half of them come in mirror pairs (faces are nearly symmetric), the rest are one-sided.
    Their amplitudes are small (sd 0.8 mm); they give the population PCA its long tail.
    """
    h = np.zeros_like(X)
    for k in range(n):
        cx = rng.uniform(-58.0, 58.0)
        cy = rng.uniform(-88.0, 85.0)
        sx, sy = rng.uniform(7.0, 22.0, size=2)
        amp = 0.8 * rng.normal()
        h += amp * gauss2(X, Y, cx, cy, sx, sy)
        if k % 2 == 0:
            h += amp * gauss2(X, Y, -cx, cy, sx, sy)
    return h
