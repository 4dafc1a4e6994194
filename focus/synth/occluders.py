"""Occluders drawn over the face, each an RGBA layer with its exact coverage (numpy, seeded).

Every occluder is placed from the face's projected landmarks (pixels at the drawing resolution),
so it follows pose and scale: sunglasses and glasses from the eye landmarks, scarves and face
masks on the lower face, skin-coloured hands reaching for a face part (the hard case: same
colour as the face), hair fringes from the forehead, handheld microphones and cups before the
mouth, pasted photograph pieces and textured random shapes.

Shapes are signed-distance fields on the pixel grid (pixel centres at ``+0.5``), turned into a
one-pixel anti-aliased coverage; the caller supersamples, so edges end up smooth. A layer's
``alpha`` is its opacity: glasses lenses are partly transparent, hair tips wispy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from focus.config import nonnegative, param, probability
from focus.synth.appearance import smooth_closed_curve
from focus.synth.textures import PointNoise, pattern, random_colour, smoothstep

#: drawing order (back to front) of each kind
LAYER_ORDER = {
    "hair": 0,
    "scarf": 1,
    "mask": 1,
    "glasses": 2,
    "sunglasses": 2,
    "object": 3,
    "shape": 3,
    "cup": 3,
    "microphone": 3,
    "hand": 4,
}


@dataclass(frozen=True)
class OccluderWeights:
    """Relative frequency of each occluder kind (0 disables one)."""

    sunglasses: float = nonnegative(1.0)
    glasses: float = nonnegative(0.6)
    scarf: float = nonnegative(1.0)
    mask: float = nonnegative(0.8)
    hand: float = nonnegative(1.5)
    hair: float = nonnegative(1.0)
    microphone: float = nonnegative(0.5)
    cup: float = nonnegative(0.5)
    object: float = nonnegative(0.8)
    shape: float = nonnegative(0.8)

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class OccluderSettings:
    """Occluders (``params.yaml``: ``synth.occluders``).

    Attributes:
        second_prob: probability that an occluded image gets a second occluder.
        alpha_threshold: a face pixel whose combined occluder opacity reaches this counts as
            occluded in the true visible-face mask (clear glasses lenses stay below it).
        weights: relative frequency of each kind.
    """

    second_prob: float = probability(0.25)
    alpha_threshold: float = param(0.5, gt=0, le=1)
    weights: OccluderWeights = field(default_factory=OccluderWeights)


@dataclass(frozen=True)
class OccluderContext:
    """What an occluder needs to know about the face it covers (drawing resolution).

    Attributes:
        size: ``(H, W)``.
        lm: ``(68, 2)`` projected true landmarks, pixels.
        skin: ``(3,)`` lit skin colour of this face (hands use it).
        hair: ``(3,)`` this person's hair colour (fringes use it).
        gain: overall light intensity on the face (occluders are lit alike).
        light2d: ``(2,)`` image-plane direction the light comes from (for shading gradients).
        photos: photographs for pasted objects (see :func:`focus.synth.backgrounds.photo_pool`).
    """

    size: tuple[int, int]
    lm: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    gain: float = 1.0
    light2d: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    photos: tuple = ()

    @property
    def eye_r(self) -> np.ndarray:
        return (self.lm[36] + self.lm[39]) / 2

    @property
    def eye_l(self) -> np.ndarray:
        return (self.lm[42] + self.lm[45]) / 2

    @property
    def frame(self) -> tuple[float, np.ndarray, np.ndarray]:
        """``(d, u, v)``: eye distance in pixels, unit vector right-eye -> left-eye, and ``v`` the
        face's "down" (perpendicular to ``u``, pointing to the chin)."""
        e = self.eye_l - self.eye_r
        d = float(np.linalg.norm(e))
        if d < 1e-3:
            d = 0.3 * float(np.linalg.norm(self.lm.max(0) - self.lm.min(0))) + 1e-3
            u = np.array([1.0, 0.0])
        else:
            u = e / d
        v = np.array([-u[1], u[0]])
        if (self.lm[8] - (self.eye_r + self.eye_l) / 2) @ v < 0:
            v = -v
        # a yawed face shows a shorter eye distance: use the face height as well
        h = float(abs((self.lm[8] - (self.eye_r + self.eye_l) / 2) @ v)) / 1.45
        return max(d, h), u, v


@dataclass(frozen=True)
class Layer:
    """An RGBA occluder: ``rgb`` ``(H, W, 3)``, ``alpha`` ``(H, W)`` in [0, 1], and its kind."""

    kind: str
    rgb: np.ndarray
    alpha: np.ndarray


# ---------------------------------------------------------------------- SDF primitives
def grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return xx + 0.5, yy + 0.5


def coverage(sdf: np.ndarray, soft: float = 0.7) -> np.ndarray:
    """Anti-aliased coverage of ``sdf < 0`` (pixels)."""
    return np.clip(0.5 - sdf / (2 * soft), 0, 1).astype(np.float32)


def local(X, Y, c, angle):
    """Pixel coordinates in a frame centred at ``c`` rotated by ``angle`` (radians)."""
    ca, sa = np.cos(angle), np.sin(angle)
    dx, dy = X - c[0], Y - c[1]
    return dx * ca + dy * sa, -dx * sa + dy * ca


def sd_superellipse(X, Y, c, a, b, angle, n=2.0):
    x, y = local(X, Y, c, angle)
    r = (np.abs(x / a) ** n + np.abs(y / b) ** n) ** (1.0 / n)
    return ((r - 1.0) * min(a, b)).astype(np.float32)


def sd_capsule(X, Y, p0, p1, r0, r1=None):
    r1 = r0 if r1 is None else r1
    p0, p1 = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
    ab = p1 - p0
    l2 = max(float(ab @ ab), 1e-9)
    t = np.clip(((X - p0[0]) * ab[0] + (Y - p0[1]) * ab[1]) / l2, 0, 1)
    dx, dy = X - (p0[0] + t * ab[0]), Y - (p0[1] + t * ab[1])
    return (np.sqrt(dx * dx + dy * dy) - (r0 + (r1 - r0) * t)).astype(np.float32)


def sd_polygon(X, Y, poly):
    """Signed distance (pixels, negative inside) to a polygon ``(K, 2)`` over the full pixel grid
    ``X, Y`` (from :func:`grid`): rasterised, then Euclidean distance transforms."""
    from scipy.ndimage import distance_transform_edt
    from skimage.draw import polygon2mask

    poly = np.asarray(poly, np.float64)
    inside = polygon2mask(X.shape, np.stack([poly[:, 1] - 0.5, poly[:, 0] - 0.5], -1))
    if not inside.any():
        return np.full(X.shape, 1e3, np.float32)
    d_in = distance_transform_edt(inside)
    d_out = distance_transform_edt(~inside)
    return np.where(inside, 0.5 - d_in, d_out - 0.5).astype(np.float32)


def _shade(ctx: OccluderContext, X, Y, centre, extent) -> np.ndarray:
    """Soft directional shading of a layer (brighter towards the light)."""
    l = ctx.light2d
    t = ((X - centre[0]) * l[0] + (Y - centre[1]) * l[1]) / max(extent, 1.0)
    return (ctx.gain * (0.9 + 0.25 * np.clip(t, -1, 1))).astype(np.float32)


def _bbox_of(alpha: np.ndarray, pad: int = 2):
    ys, xs = np.nonzero(alpha > 0)
    if len(ys) == 0:
        return None
    return max(ys.min() - pad, 0), ys.max() + pad + 1, max(xs.min() - pad, 0), xs.max() + pad + 1


# ---------------------------------------------------------------------- occluders
def glasses(rng: np.random.Generator, ctx: OccluderContext, sun: bool) -> Layer:
    """Glasses (clear lenses) or sunglasses (dark lenses) on the eyes."""
    X, Y = grid(ctx.size)
    d, u, v = ctx.frame
    ang = float(np.arctan2(u[1], u[0]))
    wr = float(np.linalg.norm(ctx.lm[39] - ctx.lm[36]))
    wl = float(np.linalg.norm(ctx.lm[45] - ctx.lm[42]))
    wmax = max(wr, wl, 0.3 * d)
    scale = rng.uniform(0.8, 1.05) if not sun else rng.uniform(0.9, 1.15)
    b = wmax * scale * rng.uniform(0.5, 0.72)
    n = rng.uniform(2.0, 4.5)
    t = d * (rng.uniform(0.03, 0.06) if sun else rng.uniform(0.015, 0.04))
    lift = rng.uniform(0.0, 0.12) * d
    cov_lens = np.zeros(ctx.size, np.float32)
    cov_frame = np.zeros(ctx.size, np.float32)
    lens_info = []
    for centre, w, side in ((ctx.eye_r, wr, -1), (ctx.eye_l, wl, 1)):
        a = max(w, 0.15 * d) * scale * 0.85
        c = centre + v * lift * 0.5 + u * side * 0.04 * w
        sd = sd_superellipse(X, Y, c, a, b, ang, n)
        cov_lens = np.maximum(cov_lens, coverage(sd))
        cov_frame = np.maximum(cov_frame, coverage(np.abs(sd + t / 2) - t / 2))
        lens_info.append((c, a))
    (cr, ar), (cl, al) = lens_info
    bridge = sd_capsule(X, Y, cr + u * ar * 0.95 - v * 0.3 * b, cl - u * al * 0.95 - v * 0.3 * b, t * 0.6)
    cov_frame = np.maximum(cov_frame, coverage(bridge))
    for c, a, side, ear in ((cr, ar, -1, ctx.lm[0]), (cl, al, 1, ctx.lm[16])):
        start = c + u * side * a * 0.95 - v * 0.25 * b
        end = ear - v * 0.15 * d
        if float(np.linalg.norm(end - start)) > 0.08 * d and (end - start) @ (u * side) > 0:
            cov_frame = np.maximum(cov_frame, coverage(sd_capsule(X, Y, start, end, t * 0.45)))
    frame_col = (
        random_colour(rng, sat=(0.0, 0.8), val=(0.03, 0.5))
        if rng.random() < 0.7
        else np.array([0.75, 0.72, 0.65], np.float32)
    )
    xl, yl = local(X, Y, (cr + cl) / 2, ang)
    shade = _shade(ctx, X, Y, (cr + cl) / 2, d)
    streak = smoothstep(0.25 * b, 0.0, np.abs(xl * 0.6 + yl - rng.uniform(-0.4, 0.4) * b))
    if sun:
        tint = random_colour(rng, sat=(0.0, 0.7), val=(0.02, 0.2))
        top_dark = 1.0 + 0.6 * np.clip(-yl / b, -1, 1)
        lens_rgb = np.clip(tint[None, None] * top_dark[..., None] + 0.25 * streak[..., None], 0, 1)
        lens_alpha = rng.uniform(0.88, 0.98)
    else:
        lens_rgb = np.clip(np.array([0.9, 0.95, 1.0], np.float32)[None, None] * (0.8 + 0.2 * streak[..., None]), 0, 1)
        lens_alpha = rng.uniform(0.05, 0.15) + 0.2 * streak
    alpha_lens = cov_lens * lens_alpha
    rgb = lens_rgb * (1 - cov_frame[..., None]) + frame_col * shade[..., None] * cov_frame[..., None]
    alpha = np.maximum(alpha_lens, cov_frame)
    return Layer("sunglasses" if sun else "glasses", np.clip(rgb, 0, 1).astype(np.float32), alpha.astype(np.float32))


def _face_curve(ctx, pts_s_t: list[tuple[float, float]], X, Y, origin, u, v):
    """Region below a curve given as ``(s, t)`` points in the face frame (``s`` along ``u``,
    ``t`` along ``v``, pixels from ``origin``); returns ``(t - t_curve(s))`` per pixel."""
    s = (X - origin[0]) * u[0] + (Y - origin[1]) * u[1]
    t = (X - origin[0]) * v[0] + (Y - origin[1]) * v[1]
    ss, tt = zip(*sorted(pts_s_t))
    return (t - np.interp(s, ss, tt)).astype(np.float32), s, t


def scarf(rng: np.random.Generator, ctx: OccluderContext) -> Layer:
    """A scarf over the lower face (from about the nose tip down), wider than the face."""
    X, Y = grid(ctx.size)
    d, u, v = ctx.frame
    lm = ctx.lm
    level = rng.uniform(0.0, 1.0)
    top = lm[29] + (lm[33] - lm[29]) * level
    side_r = lm[1] + (lm[3] - lm[1]) * level
    side_l = lm[15] + (lm[13] - lm[15]) * level

    def st(p):
        return float((p - top) @ u), float((p - top) @ v)

    pts = [
        st(side_r - u * 0.5 * d + v * 0.3 * d),
        st(side_r - u * 0.1 * d),
        (0.0, -0.04 * d),
        st(side_l + u * 0.1 * d),
        st(side_l + u * 0.5 * d + v * 0.3 * d),
    ]
    pts = [(s, t + rng.normal(0, 0.03) * d) for s, t in pts]
    pts += [(-10 * d, pts[0][1] + 3 * d), (10 * d, pts[-1][1] + 3 * d)]
    below, s, t = _face_curve(ctx, pts, X, Y, top, u, v)
    wave = 0.04 * d * np.sin(2 * np.pi * s / (rng.uniform(0.5, 1.2) * d) + rng.uniform(0, 6))
    cov = coverage(-(below - wave))
    fabric = pattern(rng, ctx.size, scale_px=rng.uniform(0.15, 0.5) * d)
    folds = 0.78 + 0.22 * np.sin(
        2 * np.pi * (t + 0.25 * s) / (rng.uniform(0.25, 0.6) * d)
        + PointNoise(rng, 0.5 * d, extent=1.5 * max(ctx.size))(np.stack([X, Y], -1)) * 3
    )
    edge = 1 - 0.3 * smoothstep(0.08 * d, 0.0, below - wave)
    shade = _shade(ctx, X, Y, top, d) * folds * edge
    rgb = np.clip(fabric * shade[..., None], 0, 1)
    return Layer("scarf", rgb.astype(np.float32), cov)


def face_mask(rng: np.random.Generator, ctx: OccluderContext) -> Layer:
    """A surgical or cloth face mask from the nose bridge to under the chin, with ear loops."""
    X, Y = grid(ctx.size)
    d, u, v = ctx.frame
    lm = ctx.lm
    top_c = lm[28] + (lm[29] - lm[28]) * rng.uniform(0, 1)
    top_r = lm[1] + (lm[29] - lm[1]) * 0.1
    top_l = lm[15] + (lm[29] - lm[15]) * 0.1
    mid_r, mid_l = lm[3] + (lm[33] - lm[3]) * 0.04, lm[13] + (lm[33] - lm[13]) * 0.04
    bot_r, bot_l = lm[6], lm[10]
    chin = lm[8] + v * 0.12 * d
    poly = smooth_closed_curve(np.array([top_r, top_c, top_l, mid_l, bot_l, chin, bot_r, mid_r]), 48)
    sd = sd_polygon(X, Y, poly)
    cov = coverage(sd)
    kind = rng.integers(4)
    if kind == 0:
        base = np.broadcast_to(np.array([0.55, 0.75, 0.85], np.float32) * rng.uniform(0.9, 1.1), ctx.size + (3,))
    elif kind == 1:
        base = np.broadcast_to(np.array([0.93, 0.93, 0.92], np.float32) * rng.uniform(0.9, 1.05), ctx.size + (3,))
    elif kind == 2:
        base = np.broadcast_to(random_colour(rng, val=(0.05, 0.6)), ctx.size + (3,))
    else:
        base = pattern(rng, ctx.size, scale_px=0.2 * d)
    centre = (top_c + chin) / 2
    s = (X - centre[0]) * u[0] + (Y - centre[1]) * u[1]
    t = (X - centre[0]) * v[0] + (Y - centre[1]) * v[1]
    half_w = float(np.linalg.norm(top_l - top_r)) / 2 + 1e-3
    height = float((chin - top_c) @ v) + 1e-3
    shade = _shade(ctx, X, Y, centre, d) * (1 - 0.35 * np.clip(np.abs(s) / half_w, 0, 1) ** 2)
    if kind in (0, 1):  # pleats
        ph = height / rng.uniform(4, 6)
        shade = shade * (1 - 0.18 * smoothstep(0.25 * ph, 0.0, np.abs(((t + height / 2) % ph) - ph / 2)))
    shade = shade * (1 - 0.25 * smoothstep(0.06 * d, 0.0, -sd))  # edge seam
    rgb = base * shade[..., None]
    loop_col = np.array([0.92, 0.92, 0.92], np.float32) if kind != 2 else base[0, 0]
    loops = np.zeros(ctx.size, np.float32)
    for a, b_ in (
        (top_r, lm[0]),
        (bot_r, lm[2] + (lm[0] - lm[2]) * 0.3),
        (top_l, lm[16]),
        (bot_l, lm[14] + (lm[16] - lm[14]) * 0.3),
    ):
        if float(np.linalg.norm(b_ - a)) > 0.05 * d:
            loops = np.maximum(loops, coverage(sd_capsule(X, Y, a, b_, 0.012 * d + 0.3)))
    loops = loops * (1 - cov)
    rgb = rgb * (1 - loops[..., None]) + loop_col * loops[..., None]
    return Layer("mask", np.clip(rgb, 0, 1).astype(np.float32), np.maximum(cov, loops))


HAND_TARGETS = ("mouth", "chin", "cheek_r", "cheek_l", "eye_r", "eye_l", "forehead", "nose")


def hand(rng: np.random.Generator, ctx: OccluderContext) -> Layer:
    """A skin-coloured hand (palm, four fingers, thumb, forearm) reaching over a face part."""
    X, Y = grid(ctx.size)
    d, u, v = ctx.frame
    lm = ctx.lm
    targets = {
        "mouth": lm[62],
        "chin": lm[8],
        "cheek_r": (lm[3] + lm[31]) / 2,
        "cheek_l": (lm[13] + lm[35]) / 2,
        "eye_r": ctx.eye_r,
        "eye_l": ctx.eye_l,
        "forehead": lm[17:27].mean(0) - v * 0.4 * d,
        "nose": lm[30],
    }
    name = HAND_TARGETS[rng.integers(len(HAND_TARGETS))]
    target = targets[name]
    palm_w = rng.uniform(1.1, 1.45) * d
    palm_h = palm_w * rng.uniform(0.9, 1.1)
    finger_len = palm_h * rng.uniform(0.75, 1.0)
    rf = palm_w * rng.uniform(0.1, 0.12)
    # the hand enters from below or from a side, fingers towards the target
    base_dir = -v
    if name in ("cheek_r", "eye_r"):
        base_dir = -v * 0.4 - u * 0.9 if rng.random() < 0.5 else -v
    elif name in ("cheek_l", "eye_l"):
        base_dir = -v * 0.4 + u * 0.9 if rng.random() < 0.5 else -v
    base_dir = base_dir / np.linalg.norm(base_dir)
    phi = np.arctan2(base_dir[1], base_dir[0]) + rng.uniform(-0.5, 0.5)
    fdir = np.array([np.cos(phi), np.sin(phi)])
    side = np.array([-fdir[1], fdir[0]])
    reach = rng.uniform(0.0, 0.9)
    palm_c = target - fdir * (palm_h * 0.5 + finger_len * reach)
    sd_parts = []
    sd_palm = sd_superellipse(X, Y, palm_c, palm_h / 2, palm_w / 2, float(phi), 3.0)
    sd_parts.append(sd_palm)
    spread = rng.uniform(0.0, 0.12)
    fingers = []
    for k, lf in enumerate((0.92, 1.0, 0.95, 0.78)):
        off = (k - 1.5) * palm_w * 0.25
        a = phi + spread * (k - 1.5)
        dirk = np.array([np.cos(a), np.sin(a)])
        p0 = palm_c + fdir * palm_h * 0.35 + side * off
        p1 = p0 + dirk * finger_len * lf
        sdf_k = sd_capsule(X, Y, p0, p1, rf, rf * 0.85)
        sd_parts.append(sdf_k)
        fingers.append((sdf_k, p1, dirk))
    tside = 1 if rng.random() < 0.5 else -1
    ta = phi + tside * rng.uniform(0.7, 1.3)
    tdir = np.array([np.cos(ta), np.sin(ta)])
    t0 = palm_c + side * tside * palm_w * 0.35 - fdir * palm_h * 0.15
    sd_thumb = sd_capsule(X, Y, t0, t0 + tdir * finger_len * 0.75, rf * 1.2, rf)
    sd_parts.append(sd_thumb)
    far = palm_c - fdir * 4 * max(ctx.size)
    sd_arm = sd_capsule(X, Y, palm_c - fdir * palm_h * 0.3, far, palm_w * 0.38, palm_w * 0.5)
    sd_parts.append(sd_arm)
    sd_all = np.minimum.reduce(sd_parts)
    cov = coverage(sd_all)
    skin = np.clip(
        ctx.skin * rng.uniform(0.85, 1.15) * np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.85, 1.0)]), 0.02, 1
    )
    shade = _shade(ctx, X, Y, palm_c, palm_w) * (0.72 + 0.28 * smoothstep(0.0, rf * 0.9, -sd_all))
    # outlines between fingers and of the thumb over the palm
    sep = np.minimum.reduce([np.abs(s_) for s_ in sd_parts[1:-1]])
    shade = shade * (1 - 0.3 * smoothstep(1.2, 0.0, sep) * (sd_all < -1.0))
    tex = 1 + 0.05 * (PointNoise(rng, 0.06 * d, extent=1.5 * max(ctx.size))(np.stack([X, Y], -1)) - 0.5)
    rgb = skin[None, None] * (shade * tex)[..., None]
    for sdf_k, tip, dirk in fingers:  # nails
        nc = tip - dirk * rf * 0.5
        nail = coverage(sd_superellipse(X, Y, nc, rf * 0.55, rf * 0.45, float(np.arctan2(dirk[1], dirk[0])), 2.0)) * (
            sdf_k < 0
        )
        rgb = rgb * (1 - 0.5 * nail[..., None]) + 0.5 * nail[..., None] * np.clip(skin * 1.25 + 0.1, 0, 1)
    return Layer("hand", np.clip(rgb, 0, 1).astype(np.float32), cov)


def hair_texture(rng: np.random.Generator, X: np.ndarray, Y: np.ndarray, d: float, angle: float) -> np.ndarray:
    """Strand-like texture in about [0, 1]: fine along-strand streaks (strands run along ``angle``,
    radians, image frame) over coarse locks."""
    pts = np.stack([X, Y], -1)
    ext = 1.5 * max(X.shape)
    fine = PointNoise(rng, period=0.3 * d + 2.0, extent=ext, anisotropy=10.0, angle=angle)(pts)
    locks = PointNoise(rng, period=0.6 * d + 2.0, extent=ext, anisotropy=3.0, angle=angle)(pts)
    return np.clip(0.6 * fine + 0.4 * locks, 0, 1)


def hair_fringe(rng: np.random.Generator, ctx: OccluderContext) -> Layer:
    """A fringe of hair over the forehead (down to the brows or the eyes), maybe side locks."""
    X, Y = grid(ctx.size)
    d, u, v = ctx.frame
    lm = ctx.lm
    brow_c = lm[17:27].mean(0)
    depth = rng.uniform(-0.45, 0.35) * d  # lower edge relative to the brows (+ = lower, towards the eyes)
    curtain = rng.uniform(-0.25, 0.45) * d
    jaw_w = float(np.linalg.norm(lm[16] - lm[0]))
    half = 0.5 * jaw_w * rng.uniform(1.05, 1.2) + 0.05 * d
    ss = np.linspace(-2.5 * d, 2.5 * d, 41)
    tt = depth + curtain * np.clip(np.abs(ss) / half, 0, 1.6) ** 2 + rng.normal(0, 0.02 * d, len(ss))
    long_sides = rng.random() < 0.45
    if long_sides:  # locks down the sides of the face
        inner = half * rng.uniform(0.75, 0.9)
        tt = np.where(
            np.abs(ss) > inner, tt + rng.uniform(1.0, 2.5) * d * smoothstep(inner, inner + 0.15 * d, np.abs(ss)), tt
        )
    below, s, t = _face_curve(ctx, list(zip(ss, tt)), X, Y, brow_c, u, v)
    strand_angle = float(np.arctan2(v[1], v[0])) + rng.uniform(-0.35, 0.35)
    tex = hair_texture(rng, X, Y, d, strand_angle)
    pts = np.stack([X, Y], -1)
    tips = PointNoise(rng, period=0.2 * d + 2.0, extent=1.5 * max(ctx.size), anisotropy=8.0, angle=strand_angle)(pts)
    edge_len = 0.1 * d
    # strands end at different lengths: the lower edge is perturbed along the strands
    lower = below + edge_len * 1.5 * (tips - 0.5)
    alpha = smoothstep(0.0, -edge_len, lower) * (0.8 + 0.2 * tex)
    # the fringe is as wide as the head (the sides fall outside the face)
    alpha = alpha * smoothstep(half + 0.1 * d, half - 0.05 * d, np.abs(s))
    alpha = np.where(t < -1.4 * d, alpha * smoothstep(-2.2 * d, -1.4 * d, t), alpha)  # top of the head
    shade = _shade(ctx, X, Y, brow_c, d) * (0.5 + 0.8 * tex)
    rgb = np.clip(ctx.hair[None, None] * shade[..., None] + 0.015, 0, 1)
    return Layer("hair", rgb.astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32))


def microphone(rng: np.random.Generator, ctx: OccluderContext) -> Layer:
    """A handheld microphone: grille ball before the mouth, dark handle to the image edge."""
    X, Y = grid(ctx.size)
    d, u, v = ctx.frame
    lm = ctx.lm
    R = rng.uniform(0.28, 0.42) * d
    c = lm[57] + v * rng.uniform(0.0, 0.45) * d + u * rng.uniform(-0.5, 0.5) * d
    a = np.arctan2(v[1], v[0]) + rng.uniform(-0.7, 0.7)
    hd = np.array([np.cos(a), np.sin(a)])
    far = c + hd * 4 * max(ctx.size)
    sd_handle = sd_capsule(X, Y, c + hd * R * 0.6, far, R * 0.42, R * 0.6)
    sd_head = np.sqrt((X - c[0]) ** 2 + (Y - c[1]) ** 2) - R
    cov_head = coverage(sd_head)
    cov_handle = coverage(sd_handle) * (1 - cov_head)
    xl, yl = local(X, Y, c, rng.uniform(0, np.pi))
    p = R / rng.uniform(3.5, 6)
    grille = np.maximum(
        smoothstep(0.3, 0.0, np.abs(np.sin(np.pi * xl / p))), smoothstep(0.3, 0.0, np.abs(np.sin(np.pi * yl / p)))
    )
    r = np.clip(np.sqrt((X - c[0]) ** 2 + (Y - c[1]) ** 2) / R, 0, 1)
    l2 = ctx.light2d
    lit = 0.55 + 0.45 * np.clip(1 - r**2, 0, 1) + 0.2 * np.clip(((X - c[0]) * l2[0] + (Y - c[1]) * l2[1]) / R, -1, 1)
    metal = rng.uniform(0.45, 0.75)
    head_rgb = np.clip(metal * lit * (1 - 0.45 * grille), 0, 1)[..., None] * np.ones(3, np.float32)
    s_h = (X - c[0]) * hd[1] - (Y - c[1]) * hd[0]
    handle_rgb = (0.06 + 0.12 * smoothstep(0.3 * R, 0.0, np.abs(s_h + 0.15 * R)))[..., None] * np.ones(3, np.float32)
    rgb = head_rgb * cov_head[..., None] + handle_rgb * cov_handle[..., None]
    alpha = np.maximum(cov_head, cov_handle)
    rgb = rgb / np.maximum(alpha, 1e-6)[..., None] * ctx.gain
    return Layer("microphone", np.clip(rgb, 0, 1).astype(np.float32), alpha.astype(np.float32))


def cup(rng: np.random.Generator, ctx: OccluderContext) -> Layer:
    """A mug held before the lower face: cylinder body with rim and handle."""
    X, Y = grid(ctx.size)
    d, u, v = ctx.frame
    lm = ctx.lm
    Wc = rng.uniform(0.7, 1.0) * d
    Hc = Wc * rng.uniform(1.0, 1.35)
    ang = float(np.arctan2(u[1], u[0])) + rng.uniform(-0.25, 0.25)
    uu = np.array([np.cos(ang), np.sin(ang)])
    vv = np.array([-uu[1], uu[0]])
    c = lm[57] + v * rng.uniform(0.2, 0.8) * d + u * rng.uniform(-0.5, 0.5) * d
    xl, yl = local(X, Y, c, ang)
    body = sd_superellipse(X, Y, c, Wc / 2, Hc / 2, ang, 8.0)
    rim_c = c - vv * Hc / 2
    rim = sd_superellipse(X, Y, rim_c, Wc / 2, Wc * 0.12, ang, 2.0)
    inner = sd_superellipse(X, Y, rim_c, Wc / 2 * 0.9, Wc * 0.1, ang, 2.0)
    hside = 1 if rng.random() < 0.5 else -1
    hc = c + uu * hside * Wc / 2
    ring = np.sqrt((X - hc[0]) ** 2 + (Y - hc[1]) ** 2)
    handle = np.maximum(np.abs(ring - 0.22 * Hc) - 0.06 * Hc, -(xl * hside - Wc / 2 + 0.02 * Wc))
    cov = np.maximum.reduce([coverage(body), coverage(rim), coverage(handle)])
    colour = (
        pattern(rng, ctx.size, scale_px=0.25 * Wc)
        if rng.random() < 0.4
        else np.broadcast_to(random_colour(rng), ctx.size + (3,))
    )
    cyl = (
        0.6
        + 0.4 * np.cos(np.clip(xl / (Wc / 2), -1, 1) * np.pi / 2)
        + 0.25 * smoothstep(0.08 * Wc, 0.0, np.abs(xl + 0.25 * Wc))
    )
    rgb = colour * (cyl * _shade(ctx, X, Y, c, d))[..., None]
    drink = np.array([0.25, 0.14, 0.08], np.float32) if rng.random() < 0.6 else np.array([0.85, 0.85, 0.85], np.float32)
    cin = coverage(inner)
    rgb = rgb * (1 - cin[..., None]) + drink * cin[..., None] * ctx.gain
    return Layer("cup", np.clip(rgb, 0, 1).astype(np.float32), cov.astype(np.float32))


def _random_blob(rng, X, Y, c, r, angle) -> np.ndarray:
    """SDF of a random star-shaped blob of mean radius ``r``."""
    x, y = local(X, Y, c, angle)
    th = np.arctan2(y, x)
    rad = np.ones_like(th)
    for k in range(1, 5):
        rad += rng.uniform(0, 0.2 / k) * np.sin(k * th + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(0.6, 1.0)
    rr = np.sqrt(x**2 + (y / aspect) ** 2)
    return (rr - r * rad).astype(np.float32)


def pasted_object(rng: np.random.Generator, ctx: OccluderContext) -> Layer:
    """A piece of a photograph with an irregular outline, pasted over part of the face."""
    from focus.synth.backgrounds import photo_crop

    X, Y = grid(ctx.size)
    d, u, v = ctx.frame
    c = ctx.lm[rng.integers(17, 68)] + rng.normal(0, 0.2, 2) * d
    r = rng.uniform(0.3, 0.65) * d
    sd = (
        _random_blob(rng, X, Y, c, r, rng.uniform(0, np.pi))
        if rng.random() < 0.6
        else sd_superellipse(X, Y, c, r, r * rng.uniform(0.5, 1.0), rng.uniform(0, np.pi), rng.uniform(2, 6))
    )
    cov = coverage(sd)
    photo = photo_crop(rng, ctx.size, ctx.photos or None, min_frac=0.15)
    rgb = photo * _shade(ctx, X, Y, c, d)[..., None]
    return Layer("object", np.clip(rgb, 0, 1).astype(np.float32), cov)


def textured_shape(rng: np.random.Generator, ctx: OccluderContext) -> Layer:
    """A random polygon, ellipse or rectangle filled with a procedural texture."""
    X, Y = grid(ctx.size)
    d, u, v = ctx.frame
    c = ctx.lm[rng.integers(17, 68)] + rng.normal(0, 0.2, 2) * d
    r = rng.uniform(0.25, 0.7) * d
    k = rng.integers(3)
    if k == 0:
        nv = int(rng.integers(3, 9))
        th = np.sort(rng.uniform(0, 2 * np.pi, nv))
        rad = r * rng.uniform(0.5, 1.2, nv)
        poly = c + np.stack([np.cos(th) * rad, np.sin(th) * rad], -1)
        sd = sd_polygon(X, Y, poly)
    elif k == 1:
        sd = sd_superellipse(X, Y, c, r, r * rng.uniform(0.3, 1.0), rng.uniform(0, np.pi), 2.0)
    else:
        sd = sd_superellipse(X, Y, c, r, r * rng.uniform(0.2, 1.0), rng.uniform(0, np.pi), 12.0)
    cov = coverage(sd)
    tex = pattern(rng, ctx.size, scale_px=rng.uniform(0.08, 0.4) * d)
    rgb = tex * (_shade(ctx, X, Y, c, r) * (0.8 + 0.2 * smoothstep(0, 0.2 * r, -sd)))[..., None]
    return Layer("shape", np.clip(rgb, 0, 1).astype(np.float32), cov)


DRAWERS = {
    "sunglasses": lambda rng, ctx: glasses(rng, ctx, sun=True),
    "glasses": lambda rng, ctx: glasses(rng, ctx, sun=False),
    "scarf": scarf,
    "mask": face_mask,
    "hand": hand,
    "hair": hair_fringe,
    "microphone": microphone,
    "cup": cup,
    "object": pasted_object,
    "shape": textured_shape,
}
OCCLUDER_KINDS: tuple[str, ...] = tuple(DRAWERS)


def draw_occluder(kind: str, rng: np.random.Generator, ctx: OccluderContext) -> Layer:
    """Draw one occluder of ``kind`` (see :data:`OCCLUDER_KINDS`)."""
    if kind not in DRAWERS:
        raise ValueError(f"unknown occluder kind {kind!r}; known: {OCCLUDER_KINDS}")
    return DRAWERS[kind](rng, ctx)


def sample_kinds(rng: np.random.Generator, settings: OccluderSettings, forced: str | None = None) -> list[str]:
    """The kinds of occluder for one occluded image (one, or two with ``second_prob``), in
    drawing order. ``forced`` fixes the first one (e.g. the AR subsets)."""
    w = settings.weights.as_dict()
    names = [k for k, x in w.items() if x > 0]
    p = np.array([w[k] for k in names], np.float64)
    if not names:
        return [forced] if forced else []
    p /= p.sum()
    kinds = [forced or names[rng.choice(len(names), p=p)]]
    if rng.random() < settings.second_prob:
        second = names[rng.choice(len(names), p=p)]
        if second != kinds[0] and {second, kinds[0]} not in ({"glasses", "sunglasses"}, {"scarf", "mask"}):
            kinds.append(second)
    return sorted(kinds, key=lambda k: LAYER_ORDER[k])
