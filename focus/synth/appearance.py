"""Appearance the morphable model cannot represent, painted per pixel (numpy).

The renderer gives, for every face pixel, the **model-frame position of the deformed but
unposed face** (identity + expression, mm). Every detail is painted in that frame's ``x, y``
plane ("face plane"), anchored to the iBUG-68 landmark vertices of the same deformed shape, so it
moves with identity, expression (eyes close with a blink, the mouth opens with the jaw) and pose,
and is independent of the image resolution:

* eyes: sclera, iris (radial streaks, limbal ring), pupil, catchlight, lid shadow, upper and
  lower lashes; the eye opening is the smooth closed curve through the six eye landmarks;
* eyebrows: a tapered band along the brow landmarks with hair texture;
* lips: vermilion colour with soft border and vertical lines, mouth interior and teeth when open;
* stubble or beard (styles: stubble, short, full, goatee, moustache);
* freckles and moles; make-up (blush, eye shadow, eyeliner, lipstick);
* fine skin texture (multiplicative multi-scale noise) and a specular sheen.

All functions take flat arrays of the face pixels only (``N`` of them) and return the new albedo
``(N, 3)`` and an additive specular term ``(N, 3)``; the image colour is
``albedo' * irradiance + specular``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focus.config import nonnegative, probability
from focus.synth.textures import PointNoise, smoothstep

RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))
BEARD_STYLES = ("stubble", "short", "full", "goatee", "moustache")

HAIR_COLOURS = np.array(
    [
        [0.05, 0.04, 0.035],
        [0.12, 0.08, 0.05],
        [0.25, 0.16, 0.09],
        [0.42, 0.3, 0.18],
        [0.65, 0.52, 0.32],
        [0.5, 0.22, 0.1],
        [0.55, 0.55, 0.55],
        [0.82, 0.8, 0.78],
    ],
    np.float32,
)
HAIR_WEIGHTS = np.array([0.3, 0.25, 0.15, 0.1, 0.07, 0.05, 0.05, 0.03])
IRIS_COLOURS = np.array(
    [
        [0.22, 0.12, 0.06],
        [0.13, 0.07, 0.04],
        [0.4, 0.3, 0.14],
        [0.28, 0.38, 0.2],
        [0.3, 0.45, 0.62],
        [0.42, 0.46, 0.5],
    ],
    np.float32,
)
IRIS_WEIGHTS = np.array([0.35, 0.25, 0.1, 0.1, 0.12, 0.08])
SHADOW_COLOURS = np.array(
    [[0.35, 0.22, 0.15], [0.4, 0.25, 0.45], [0.2, 0.3, 0.55], [0.6, 0.5, 0.3], [0.15, 0.15, 0.15]], np.float32
)
LIPSTICK_COLOURS = np.array(
    [[0.7, 0.08, 0.1], [0.8, 0.3, 0.4], [0.45, 0.08, 0.2], [0.7, 0.45, 0.4], [0.55, 0.12, 0.08]], np.float32
)


@dataclass(frozen=True)
class AppearanceSettings:
    """Probabilities of the painted details (``params.yaml``: ``synth.appearance``)."""

    brows_prob: float = probability(0.97)
    beard_prob: float = probability(0.35)
    freckles_prob: float = probability(0.2)
    moles_prob: float = probability(0.3)
    makeup_prob: float = probability(0.25)
    lipstick_prob: float = probability(0.5)
    skin_texture: float = nonnegative(1.0)  # multiplier of the texture amplitude (0 disables)
    specular_prob: float = probability(0.7)


@dataclass(frozen=True)
class AppearanceParams:
    """One face's drawn appearance (everything :func:`paint_face` needs besides the geometry)."""

    seed: int
    hair_colour: np.ndarray
    brows: bool
    brow_thickness: float
    brow_opacity: float
    iris_colour: np.ndarray
    gaze: np.ndarray
    sclera_tone: float
    beard: str | None
    beard_opacity: float
    beard_length: float
    freckles: int
    moles: int
    blush: float
    eye_shadow: float
    shadow_colour: np.ndarray
    eyeliner: bool
    lipstick: float
    lipstick_colour: np.ndarray
    texture_amp: float
    specular: float
    shininess: float

    def summary(self) -> dict:
        """Short description for the per-image metadata."""
        return {
            "beard": self.beard or "",
            "freckles": self.freckles > 0,
            "makeup": bool(self.blush or self.eye_shadow or self.lipstick),
            "brows": self.brows,
        }


def sample_appearance(
    rng: np.random.Generator, settings: AppearanceSettings, female_like: bool | None = None
) -> AppearanceParams:
    """Draw one face's appearance. Beards and make-up are made mutually exclusive."""
    hair = HAIR_COLOURS[rng.choice(len(HAIR_COLOURS), p=HAIR_WEIGHTS / HAIR_WEIGHTS.sum())] * rng.uniform(0.8, 1.2)
    iris = IRIS_COLOURS[rng.choice(len(IRIS_COLOURS), p=IRIS_WEIGHTS / IRIS_WEIGHTS.sum())] * rng.uniform(0.8, 1.2)
    beard = None
    makeup = False
    u = rng.random()
    if u < settings.beard_prob:
        beard = BEARD_STYLES[rng.choice(len(BEARD_STYLES), p=[0.35, 0.25, 0.2, 0.1, 0.1])]
    elif u < settings.beard_prob + settings.makeup_prob:
        makeup = True
    opac = {
        "stubble": (0.2, 0.4),
        "short": (0.5, 0.75),
        "full": (0.75, 0.95),
        "goatee": (0.6, 0.9),
        "moustache": (0.6, 0.9),
    }
    lip_u = rng.random()
    return AppearanceParams(
        seed=int(rng.integers(2**31)),
        hair_colour=np.clip(hair, 0, 1).astype(np.float32),
        brows=bool(rng.random() < settings.brows_prob),
        brow_thickness=float(rng.uniform(0.75, 1.35)),
        brow_opacity=float(rng.uniform(0.55, 0.95)),
        iris_colour=np.clip(iris, 0, 1).astype(np.float32),
        gaze=rng.uniform(-1, 1, size=2).astype(np.float32) * np.array([1.0, 0.5], np.float32),
        sclera_tone=float(rng.uniform(0.85, 1.0)),
        beard=beard,
        beard_opacity=float(rng.uniform(*opac[beard])) if beard else 0.0,
        beard_length=float(rng.uniform(0, 15)) if beard in ("full", "short", "goatee") else 0.0,
        freckles=int(rng.integers(30, 160)) if rng.random() < settings.freckles_prob else 0,
        moles=int(rng.integers(1, 4)) if rng.random() < settings.moles_prob else 0,
        blush=float(rng.uniform(0.12, 0.35)) if makeup and rng.random() < 0.7 else 0.0,
        eye_shadow=float(rng.uniform(0.25, 0.6)) if makeup and rng.random() < 0.7 else 0.0,
        shadow_colour=SHADOW_COLOURS[rng.integers(len(SHADOW_COLOURS))],
        eyeliner=bool(makeup and rng.random() < 0.6),
        lipstick=float(rng.uniform(0.45, 0.9)) if makeup and lip_u < settings.lipstick_prob else 0.0,
        lipstick_colour=LIPSTICK_COLOURS[rng.integers(len(LIPSTICK_COLOURS))],
        texture_amp=float(rng.uniform(0.5, 1.2) * settings.skin_texture),
        specular=float(rng.uniform(0.04, 0.18)) if rng.random() < settings.specular_prob else 0.0,
        shininess=float(rng.uniform(8, 30)),
    )


# ---------------------------------------------------------------------- geometry helpers
def _catmull_rom(p: np.ndarray, samples_per_segment: int, closed: bool) -> np.ndarray:
    """Centripetal-free (uniform) Catmull-Rom spline through ``(K, 2)`` points."""
    p = np.asarray(p, np.float32)
    if closed:
        ext = np.vstack([p[-1:], p, p[:2]])
        nseg = len(p)
    else:
        ext = np.vstack([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
        nseg = len(p) - 1
    t = (np.arange(samples_per_segment, dtype=np.float32) / samples_per_segment)[:, None]
    t2, t3 = t * t, t * t * t
    out = []
    for i in range(nseg):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        out.append(
            0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t3)
        )
    if not closed:
        out.append(p[-1:])
    return np.vstack(out).astype(np.float32)


def smooth_closed_curve(points: np.ndarray, samples: int = 24) -> np.ndarray:
    """Closed Catmull-Rom curve through ``(K, 2)`` points -> about ``samples`` points."""
    return _catmull_rom(points, max(1, samples // len(points)), closed=True)


def smooth_open_curve(points: np.ndarray, samples: int = 12) -> np.ndarray:
    """Open Catmull-Rom curve through ``(K, 2)`` points -> about ``samples`` points."""
    return _catmull_rom(points, max(1, (samples - 1) // max(len(points) - 1, 1)), closed=False)


def segment_distance(q: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance from ``(N, 2)`` points to each of ``(S, 2)`` segments ``a -> b``.

    Returns ``(N, S)`` distances, ``(N, S)`` segment parameters in [0, 1] and ``(N, S)`` the
    2D cross product sign (positive left of the segment direction).
    """
    ab = b - a
    l2 = np.maximum((ab**2).sum(-1), 1e-12)
    aq = q[:, None, :] - a[None]
    t = np.clip((aq * ab[None]).sum(-1) / l2, 0, 1)
    d = aq - t[..., None] * ab[None]
    cross = ab[None, :, 0] * aq[..., 1] - ab[None, :, 1] * aq[..., 0]
    return np.sqrt((d**2).sum(-1)), t, cross


def polygon_sdf(q: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance ``(N,)`` from points to a closed polygon ``(K, 2)`` (negative inside)."""
    a, b = poly, np.roll(poly, -1, axis=0)
    dist, _, _ = segment_distance(q, a, b)
    dmin = dist.min(axis=1)
    # even-odd crossing test
    yi, yj = a[:, 1][None], b[:, 1][None]
    xi, xj = a[:, 0][None], b[:, 0][None]
    qy, qx = q[:, 1:2], q[:, 0:1]
    cond = (yi > qy) != (yj > qy)
    xint = xi + (qy - yi) * (xj - xi) / np.where(np.abs(yj - yi) < 1e-12, 1e-12, yj - yi)
    inside = (cond & (qx < xint)).sum(axis=1) % 2 == 1
    return np.where(inside, -dmin, dmin).astype(np.float32)


def polyline_coords(q: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest-point coordinates of ``(N, 2)`` points on an open polyline ``(K, 2)``.

    Returns the distance ``(N,)``, the arc-length fraction ``s`` in [0, 1] of the nearest point
    and the signed side (positive left of the polyline's direction).
    """
    a, b = line[:-1], line[1:]
    dist, t, cross = segment_distance(q, a, b)
    k = dist.argmin(axis=1)
    n = np.arange(len(q))
    seg = np.linalg.norm(b - a, axis=1)
    cum = np.concatenate([[0], np.cumsum(seg)])
    s = (cum[k] + t[n, k] * seg[k]) / max(cum[-1], 1e-9)
    return dist[n, k], s.astype(np.float32), np.sign(cross[n, k]).astype(np.float32)


def _bbox_select(q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.flatnonzero((q[:, 0] >= lo[0]) & (q[:, 0] <= hi[0]) & (q[:, 1] >= lo[1]) & (q[:, 1] <= hi[1]))


def _lerp(base: np.ndarray, colour: np.ndarray, w: np.ndarray) -> np.ndarray:
    return base * (1 - w[:, None]) + colour * w[:, None]


# ---------------------------------------------------------------------- the painter
@dataclass(frozen=True)
class FacePixels:
    """The face pixels of one image, flattened (``N`` covered pixels).

    Attributes:
        q: ``(N, 2)`` face-plane position (model frame ``x, y`` of the deformed, unposed face), mm.
        albedo: ``(N, 3)`` model albedo.
        normal: ``(N, 3)`` unit normals, world frame (the camera looks along world ``-z``).
        lm3d: ``(68, 3)`` landmark vertices of the deformed face, model frame, mm.
    """

    q: np.ndarray
    albedo: np.ndarray
    normal: np.ndarray
    lm3d: np.ndarray


def paint_face(px: FacePixels, p: AppearanceParams, light_dir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint every detail; returns ``(albedo (N, 3), specular (N, 3))``.

    ``light_dir``: unit direction towards the dominant light, world frame (for the sheen).
    """
    rng = np.random.default_rng(p.seed)
    q = px.q.astype(np.float32)
    lm = px.lm3d[:, :2].astype(np.float32)
    alb = np.clip(px.albedo.astype(np.float32), 0.0, 1.0)
    spec = np.zeros_like(alb)
    iod = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    iod = iod if iod > 1e-3 else 60.0
    skin = np.median(alb, axis=0) if len(alb) else np.array([0.7, 0.5, 0.4], np.float32)

    alb = _skin_texture(rng, q, alb, p, iod)
    if p.freckles or p.moles:
        alb = _freckles(rng, q, alb, lm, p, iod)
    if p.blush:
        alb = _blush(q, alb, lm, p, iod)
    if p.beard:
        alb = _beard(rng, q, alb, lm, p, iod)
    if p.eye_shadow:
        alb = _eye_shadow(q, alb, lm, p, iod)
    if p.brows:
        alb = _brows(rng, q, alb, lm, p, iod)
    alb, spec = _lips(rng, q, alb, spec, lm, p, iod, skin)
    for idx in (RIGHT_EYE, LEFT_EYE):
        alb, spec = _eye(rng, q, alb, spec, lm[list(idx)], p, iod)
    if p.specular:
        n = px.normal.astype(np.float32)
        h = np.asarray(light_dir, np.float32) + np.array([0, 0, 1], np.float32)
        h = h / max(float(np.linalg.norm(h)), 1e-6)
        nh = np.clip(n @ h, 0, 1)
        spec = spec + (p.specular * nh**p.shininess)[:, None] * np.ones(3, np.float32)
    return np.clip(alb, 0, 1), spec


def _skin_texture(rng, q, alb, p: AppearanceParams, iod):
    if p.texture_amp <= 0:
        return alb
    fine = PointNoise(rng, period=1.6)(q) - 0.5
    mid = PointNoise(rng, period=6.0)(q) - 0.5
    blotch = PointNoise(rng, period=18.0)(q) - 0.5
    lum = 1 + p.texture_amp * (0.12 * fine + 0.1 * mid)
    red = p.texture_amp * 0.08 * blotch  # uneven redness
    out = alb * lum[:, None]
    out[:, 0] += red * 0.6 * out[:, 0]
    out[:, 1] -= red * 0.3 * out[:, 1]
    return out


def _freckles(rng, q, alb, lm, p: AppearanceParams, iod):
    centre = (lm[30] + lm[27]) / 2
    centres, radii, strength = [], [], []
    if p.freckles:
        c = centre + rng.normal(0, 1, (p.freckles, 2)) * np.array([0.45, 0.22]) * iod
        centres.append(c)
        radii.append(rng.uniform(0.006, 0.02, p.freckles) * iod)
        strength.append(rng.uniform(0.25, 0.6, p.freckles))
    if p.moles:
        lo, hi = lm.min(0), lm.max(0)
        c = lo + rng.random((p.moles, 2)) * (hi - lo)
        centres.append(c)
        radii.append(rng.uniform(0.012, 0.03, p.moles) * iod)
        strength.append(rng.uniform(0.6, 0.9, p.moles))
    C = np.concatenate(centres).astype(np.float32)
    R = np.concatenate(radii).astype(np.float32)
    S = np.concatenate(strength).astype(np.float32)
    sel = _bbox_select(q, C.min(0) - R.max() * 2, C.max(0) + R.max() * 2)
    if len(sel) == 0:
        return alb
    d = np.sqrt(((q[sel, None, :] - C[None]) ** 2).sum(-1)) / R[None]
    w = (S[None] * smoothstep(1.0, 0.6, d)).max(axis=1)
    dark = alb[sel] * np.array([0.62, 0.45, 0.35], np.float32)
    out = alb.copy()
    out[sel] = _lerp(alb[sel], dark, w)
    return out


def _blush(q, alb, lm, p: AppearanceParams, iod):
    out = alb
    colour = np.array([0.85, 0.35, 0.4], np.float32)
    for jaw, nose in ((2, 31), (14, 35)):
        c = 0.55 * lm[jaw] + 0.45 * lm[nose] + np.array([0, 0.08 * iod])
        d2 = ((q - c) ** 2).sum(-1) / (0.22 * iod) ** 2
        w = p.blush * np.exp(-d2)
        out = out * (1 - w[:, None]) + (out * colour * 1.3) * w[:, None]
    return out


def _eye_shadow(q, alb, lm, p: AppearanceParams, iod):
    out = alb.copy()
    for eye, brow in ((RIGHT_EYE, RIGHT_BROW), (LEFT_EYE, LEFT_BROW)):
        e = lm[list(eye)]
        upper = smooth_open_curve(e[[0, 1, 2, 3]], 10)
        lo = e.min(0) - np.array([0.1, 0.05]) * iod
        hi = np.array([e[:, 0].max() + 0.1 * iod, lm[list(brow)][:, 1].max()])
        sel = _bbox_select(q, lo, hi)
        if len(sel) == 0:
            continue
        dist, _, _ = polyline_coords(q[sel], upper)
        above = q[sel, 1] > (e[1, 1] + e[2, 1]) / 2 - 0.02 * iod
        w = p.eye_shadow * np.exp(-dist / (0.1 * iod)) * above
        out[sel] = _lerp(out[sel], p.shadow_colour, w)
    return out


def _brows(rng, q, alb, lm, p: AppearanceParams, iod):
    out = alb.copy()
    noise = PointNoise(rng, period=5.0, anisotropy=8.0, angle=rng.uniform(-0.3, 0.3))
    for brow, outer_first in ((RIGHT_BROW, True), (LEFT_BROW, False)):
        pts = lm[list(brow)]
        if not outer_first:
            pts = pts[::-1]  # always from the tail (outer end) to the head (inner end)
        line = smooth_open_curve(pts, 13)
        lo = line.min(0) - np.array([0.08, 0.2]) * iod
        hi = line.max(0) + np.array([0.08, 0.06]) * iod
        sel = _bbox_select(q, lo, hi)
        if len(sel) == 0:
            continue
        qs = q[sel]
        dist, s, _ = polyline_coords(qs, line)
        # thickness tapers from the head (s = 1) to the tail (s = 0)
        thick = p.brow_thickness * iod * (0.05 + 0.09 * s**0.7)
        # offset across the brow: positive = downwards (model -y); the landmarks run along the upper edge
        y_line = _curve_y_at(line, qs[:, 0])
        off = y_line - qs[:, 1] + 0.25 * thick
        inside = smoothstep(-0.08 * iod * 0.3, 0.0, off) * smoothstep(thick, thick * 0.7, off)
        ends = smoothstep(-0.02, 0.05, s) * smoothstep(1.04, 0.97, s)
        hair = 0.55 + 0.45 * noise(qs)
        w = np.clip(p.brow_opacity * inside * ends * hair, 0, 1)
        out[sel] = _lerp(out[sel], p.hair_colour, w)
    return out


def _curve_y_at(line: np.ndarray, x: np.ndarray) -> np.ndarray:
    order = np.argsort(line[:, 0])
    return np.interp(x, line[order, 0], line[order, 1]).astype(np.float32)


def _beard(rng, q, alb, lm, p: AppearanceParams, iod):
    jaw = lm[0:17]
    centre = lm[30]
    nose_b, lip_top = lm[33], lm[51]
    mr, ml = lm[48], lm[54]
    style = p.beard
    # lower boundary: the jaw contour pushed outwards/down by the beard length
    L = p.beard_length
    dirs = jaw - centre
    dirs = dirs / np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-6)
    low = jaw + dirs * L * np.linspace(0, 1, 17)[:, None] * np.linspace(1, 0, 17)[:, None] * 4
    mid_y = (nose_b[1] + lip_top[1]) / 2
    if style in ("goatee", "moustache"):
        half = 0.55 * np.linalg.norm(ml - mr) + 0.06 * iod
        cx = (mr[0] + ml[0]) / 2
        if style == "moustache":
            poly = np.array(
                [
                    [cx - half, lip_top[1] - 0.01 * iod],
                    [cx - half * 0.8, mid_y + 0.02 * iod],
                    [cx, nose_b[1] - 0.02 * iod],
                    [cx + half * 0.8, mid_y + 0.02 * iod],
                    [cx + half, lip_top[1] - 0.01 * iod],
                    [cx, lip_top[1] + 0.005 * iod],
                ]
            )
        else:
            chin = low[6:11]
            poly = np.vstack(
                [
                    [[cx - half, mid_y]],
                    [[mr[0] - 0.05 * iod, mr[1]]],
                    chin,
                    [[ml[0] + 0.05 * iod, ml[1]]],
                    [[cx + half, mid_y]],
                    [[cx, nose_b[1] - 0.02 * iod]],
                ]
            )
    else:
        # a narrow sideburn down from the top of the jaw contour, then the cheek line running
        # diagonally down towards the mouth, then the moustache under the nose
        side_w = 0.13 * iod
        lift = (0.1 if style == "stubble" else 0.0) * iod
        cheek_r = jaw[3] + (mr - jaw[3]) * 0.3 + np.array([0.0, 0.1 * iod + lift])
        cheek_l = jaw[13] + (ml - jaw[13]) * 0.3 + np.array([0.0, 0.1 * iod + lift])
        burn_r = jaw[1] + np.array([side_w, 0.0])
        burn_l = jaw[15] - np.array([side_w, 0.0])
        poly = np.vstack(
            [
                low[1:16],
                [burn_l],
                [cheek_l],
                [[ml[0] + 0.04 * iod, mid_y]],
                [[nose_b[0], nose_b[1] - 0.03 * iod]],
                [[mr[0] - 0.04 * iod, mid_y]],
                [cheek_r],
                [burn_r],
            ]
        )
    lo, hi = poly.min(0) - 0.1 * iod, poly.max(0) + 0.1 * iod
    sel = _bbox_select(q, lo, hi)
    if len(sel) == 0:
        return alb
    qs = q[sel]
    sdf = polygon_sdf(qs, poly.astype(np.float32))
    soft = 0.06 * iod if style == "stubble" else 0.04 * iod
    w = smoothstep(soft, -soft, sdf)
    lips = polygon_sdf(qs, lm[list(OUTER_LIPS)])
    w = w * smoothstep(0.0, 0.025 * iod, lips)
    fine = PointNoise(
        rng, period=1.0 if style == "stubble" else 4.0, anisotropy=2.5 if style == "stubble" else 8.0, angle=np.pi / 2
    )(qs)
    coarse = PointNoise(rng, period=8.0)(qs)
    tex = (0.35 + 0.65 * fine) * (0.75 + 0.5 * coarse)
    w = np.clip(p.beard_opacity * w * tex, 0, 1)
    colour = p.hair_colour * (1.0 if style != "stubble" else 0.7)
    out = alb.copy()
    out[sel] = _lerp(alb[sel], colour, w)
    return out


def _lips(rng, q, alb, spec, lm, p: AppearanceParams, iod, skin):
    outer = smooth_closed_curve(lm[list(OUTER_LIPS)], 36)
    inner_pts = lm[list(INNER_LIPS)]
    lo, hi = outer.min(0) - 0.05 * iod, outer.max(0) + 0.05 * iod
    sel = _bbox_select(q, lo, hi)
    if len(sel) == 0:
        return alb, spec
    qs = q[sel]
    sdf = polygon_sdf(qs, outer)
    border = 0.012 * iod
    w = smoothstep(border, -border, sdf)
    lip_colour = np.clip(skin * np.array([1.02, 0.62, 0.62], np.float32) * rng.uniform(0.8, 1.0), 0, 1)
    lines = 1 - 0.1 * (np.sin(2 * np.pi * qs[:, 0] / (0.02 * iod)) > 0.3) * PointNoise(rng, period=2.0)(qs)
    col = lip_colour[None] * lines[:, None]
    if p.lipstick:
        col = _lerp(col, p.lipstick_colour, np.full(len(qs), p.lipstick, np.float32))
    out_a = alb.copy()
    out_a[sel] = _lerp(alb[sel], col, w)
    out_s = spec.copy()
    # highlight on the lower lip
    lower_c = lm[57] * 0.6 + lm[66] * 0.4
    d2 = ((qs - lower_c) ** 2).sum(-1) / (0.06 * iod) ** 2
    out_s[sel] += (0.12 * (1 + p.lipstick) * np.exp(-d2) * w)[:, None]
    # mouth opening: dark interior and teeth
    opening = np.linalg.norm(inner_pts[2] - inner_pts[6])  # 62 <-> 66
    width = np.linalg.norm(inner_pts[0] - inner_pts[4])
    if opening > 0.02 * iod and width > 1e-3:
        inner = smooth_closed_curve(inner_pts, 16)
        isdf = polygon_sdf(qs, inner)
        wi = smoothstep(0.004 * iod, -0.004 * iod, isdf)
        upper_y = _curve_y_at(smooth_open_curve(inner_pts[[0, 1, 2, 3, 4]], 9), qs[:, 0])
        teeth = smoothstep(0.3 * opening, 0.15 * opening, upper_y - qs[:, 1]) * smoothstep(
            0.5 * width, 0.3 * width, np.abs(qs[:, 0] - (inner_pts[0, 0] + inner_pts[4, 0]) / 2)
        )
        interior = _lerp(
            np.tile(np.array([[0.2, 0.06, 0.06]], np.float32), (len(qs), 1)),
            np.array([0.85, 0.82, 0.72], np.float32),
            teeth,
        )
        out_a[sel] = _lerp(out_a[sel], interior, wi)
        out_s[sel] *= (1 - wi)[:, None]
    return out_a, out_s


def _eye(rng, q, alb, spec, e: np.ndarray, p: AppearanceParams, iod):
    """One eye from its six landmarks ``e`` (outer corner, two upper, inner corner, two lower)."""
    width = float(np.linalg.norm(e[3] - e[0]))
    if width < 1e-3:
        return alb, spec
    height = float((np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])) / 2)
    contour = smooth_closed_curve(e, 24)
    lo, hi = contour.min(0) - 0.15 * width, contour.max(0) + 0.15 * width
    sel = _bbox_select(q, lo, hi)
    if len(sel) == 0:
        return alb, spec
    qs = q[sel]
    a_out, s_out = alb.copy(), spec.copy()
    col = alb[sel].copy()
    sp = spec[sel].copy()
    lash_w = 0.035 * width * (1.8 if p.eyeliner else 1.0)
    upper = smooth_open_curve(e[[0, 1, 2, 3]], 10)
    lower = smooth_open_curve(e[[3, 4, 5, 0]], 10)
    if height > 0.08 * width:
        sdf = polygon_sdf(qs, contour)
        inside = smoothstep(0.01 * width, -0.02 * width, sdf)
        centre = e.mean(0)
        axis = (e[3] - e[0]) / width
        perp = np.array([-axis[1], axis[0]])
        ic = centre + axis * p.gaze[0] * 0.14 * width + perp * p.gaze[1] * 0.08 * width
        r_i = 0.22 * width
        d = np.linalg.norm(qs - ic, axis=1) / r_i
        # sclera, pinker towards the corners, shadowed under the upper lid
        along = np.abs((qs - centre) @ axis) / (width / 2)
        sclera = np.array([0.93, 0.9, 0.86], np.float32) * p.sclera_tone
        sclera = _lerp(
            np.tile(sclera, (len(qs), 1)), np.array([0.85, 0.55, 0.52], np.float32), 0.35 * np.clip(along, 0, 1) ** 3
        )
        ang = np.arctan2(*(qs - ic).T[::-1])
        streak = 0.75 + 0.5 * np.abs(np.sin(ang * rng.integers(9, 17) + rng.uniform(0, 6)))
        iris = p.iris_colour[None] * (streak * (1 - 0.5 * smoothstep(0.75, 1.0, d)))[:, None]
        iris = _lerp(iris, np.array([0.015, 0.012, 0.012], np.float32), smoothstep(0.45, 0.38, d))
        eye_col = _lerp(sclera, iris, smoothstep(1.02, 0.95, d))
        du, _, _ = polyline_coords(qs, upper)
        lid_shadow = 1 - 0.45 * smoothstep(0.3 * height, 0.0, du)
        eye_col = eye_col * lid_shadow[:, None]
        col = _lerp(col, eye_col, inside)
        catch = ic + np.array([-0.35, 0.35]) * r_i
        cd = np.linalg.norm(qs - catch, axis=1) / (0.12 * r_i + 1e-6)
        sp = sp + (0.5 * smoothstep(1.0, 0.4, cd) * inside)[:, None]
    # lashes: a dark line along the upper lid (thicker) and the lower lid
    du, su, _ = polyline_coords(qs, upper)
    dl, sl, _ = polyline_coords(qs, lower)
    lash_col = np.array([0.03, 0.025, 0.025], np.float32)
    wu = 0.9 * smoothstep(lash_w, 0.4 * lash_w, du) * smoothstep(0.0, 0.15, su) * smoothstep(1.0, 0.8, su)
    wl = 0.45 * smoothstep(0.5 * lash_w, 0.15 * lash_w, dl) * smoothstep(0.1, 0.35, sl) * smoothstep(1.0, 0.85, sl)
    col = _lerp(col, lash_col, np.maximum(wu, wl))
    sp = sp * (1 - np.maximum(wu, wl))[:, None]
    a_out[sel] = col
    s_out[sel] = sp
    return a_out, s_out
