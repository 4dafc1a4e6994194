"""The rest of the person behind the face: hair, ears, neck and clothes.

The morphable model covers only the front of the face; a photograph shows the head around it.
This layer is drawn **between the background and the face**, so it never covers the face and
is not part of either ground-truth mask (it is background for the face model, like the real
hair and neck around a real face). Positions come from the projected landmarks, sizes from the
eye distance, colours from the face (skin) and its appearance (hair).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focus.config import probability
from focus.synth.occluders import (
    Layer,
    OccluderContext,
    _shade,
    coverage,
    grid,
    hair_texture,
    local,
    sd_capsule,
    sd_polygon,
    sd_superellipse,
)
from focus.synth.textures import PointNoise, pattern, smoothstep


@dataclass(frozen=True)
class ContextSettings:
    """Probabilities of the head context (``params.yaml``: ``synth.context``).

    Attributes:
        prob: share of images with a head around the face (else the bare face on the background).
        long_hair_prob: share of long hair (down to the shoulders, over the ears).
        bald_prob: share without hair mass.
        ears_prob: share with visible ears (when not covered by long hair).
    """

    prob: float = probability(0.85)
    long_hair_prob: float = probability(0.35)
    bald_prob: float = probability(0.1)
    ears_prob: float = probability(0.8)


def _over(rgb: np.ndarray, alpha: np.ndarray, col: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a3 = a[..., None]
    return col * a3 + rgb * (1 - a3), 1 - (1 - alpha) * (1 - a)


def head_context(rng: np.random.Generator, ctx: OccluderContext, yaw: float, s: ContextSettings) -> Layer | None:
    """Draw hair mass, ears, neck and clothes for one face (``None`` when not drawn)."""
    if rng.random() >= s.prob:
        return None
    X, Y = grid(ctx.size)
    d, u, v = ctx.frame
    lm = ctx.lm
    rgb = np.zeros(ctx.size + (3,), np.float32)
    alpha = np.zeros(ctx.size, np.float32)
    skin = np.clip(ctx.skin, 0.02, 1)
    chin = lm[8]
    jaw_w = float(np.linalg.norm(lm[16] - lm[0]))
    face_c = (lm[0] + lm[16]) / 2
    ang_v = float(np.arctan2(v[1], v[0]))
    # clothes: wide shoulders well below the chin
    sh_c = chin + v * rng.uniform(1.5, 2.1) * d
    sd_cl = sd_superellipse(X, Y, sh_c + v * 1.5 * d, 1.6 * d * rng.uniform(1.2, 1.6), 1.8 * d, ang_v - np.pi / 2, 4.0)
    cl = coverage(sd_cl)
    cloth = pattern(rng, ctx.size, scale_px=rng.uniform(0.15, 0.6) * d)
    rgb, alpha = _over(rgb, alpha, cloth * _shade(ctx, X, Y, sh_c, d)[..., None], cl)
    # neck, shadowed under the chin
    neck_w = 0.45 * jaw_w * rng.uniform(0.85, 1.1)
    n0 = chin - v * 0.6 * d
    n1 = chin + v * 2.5 * d
    sd_neck = sd_capsule(X, Y, n0, n1, neck_w, neck_w * 1.1)
    nk = coverage(sd_neck)
    t = (X - chin[0]) * v[0] + (Y - chin[1]) * v[1]
    neck_shade = (0.55 + 0.3 * smoothstep(0.0, 0.6 * d, t)) * _shade(ctx, X, Y, chin, d)
    rgb, alpha = _over(rgb, alpha, skin * neck_shade[..., None], nk)
    hair_col = np.clip(ctx.hair, 0.01, 1)
    long_hair = rng.random() < s.long_hair_prob
    bald = rng.random() < s.bald_prob
    # ears (hidden on the far side of a turned head)
    if rng.random() < s.ears_prob and not long_hair:
        for side, p in ((-1, lm[0]), (1, lm[16])):
            if side * yaw < -0.35:  # this ear is turned away
                continue
            c = p + u * side * 0.12 * d - v * 0.15 * d
            sd_ear = sd_superellipse(X, Y, c, 0.45 * d, 0.22 * d, ang_v, 2.2)
            ear = coverage(sd_ear)
            xl, yl = local(X, Y, c, ang_v)
            inner = 0.75 + 0.25 * smoothstep(0.0, 0.1 * d, -sd_ear)
            rgb, alpha = _over(rgb, alpha, skin * (inner * _shade(ctx, X, Y, c, d) * 0.92)[..., None], ear)
    if not bald:
        brow_c = lm[17:27].mean(0)
        top_c = brow_c - v * rng.uniform(0.35, 0.55) * d
        half_w = 0.5 * jaw_w * rng.uniform(1.05, 1.2) + 0.05 * d
        sd_top = sd_superellipse(X, Y, top_c, rng.uniform(0.95, 1.2) * d, half_w, ang_v, rng.uniform(2.0, 2.6))
        sd_h = sd_top
        if long_hair:
            length = rng.uniform(1.8, 3.2) * d
            for side in (-1, 1):
                a = face_c + u * side * half_w * 0.85 - v * 0.6 * d
                b = a + v * length + u * side * 0.2 * d
                sd_h = np.minimum(sd_h, sd_capsule(X, Y, a, b, 0.4 * d, 0.55 * d))
        tex = hair_texture(rng, X, Y, d, ang_v + rng.uniform(-0.3, 0.3))
        t_top = (X - top_c[0]) * v[0] + (Y - top_c[1]) * v[1]
        sheen = 1 + 0.5 * np.exp(-(((t_top + 0.45 * d) / (0.18 * d)) ** 2))
        hc = hair_col * ((0.5 + 1.0 * tex) * sheen * _shade(ctx, X, Y, top_c, d))[..., None] + 0.02
        edge = PointNoise(rng, period=0.25 * d + 2.0, extent=1.5 * max(ctx.size), anisotropy=6.0, angle=ang_v)(
            np.stack([X, Y], -1)
        )
        ha = coverage(sd_h + 0.06 * d * (edge - 0.5), soft=1.0)
        rgb, alpha = _over(rgb, alpha, np.clip(hc, 0, 1), ha)
    return Layer("context", np.clip(rgb / np.maximum(alpha, 1e-6)[..., None], 0, 1), alpha)


def mouth_cavity(ctx: OccluderContext) -> Layer | None:
    """The inside of the mouth (dark, with upper teeth), drawn behind the face: it shows only
    where the model's mouth slit opens. ``None`` when the inner lips are closed."""
    lm = ctx.lm
    inner = lm[60:68]
    opening = float(np.linalg.norm(inner[2] - inner[6]))
    if opening < 0.5:
        return None
    X, Y = grid(ctx.size)
    c = inner.mean(0)
    poly = c + (inner - c) * 1.25  # a little beyond the lips: the slit edge lies under them
    sd = sd_polygon(X, Y, poly)
    a = coverage(sd)
    if a.max() == 0:
        return None
    d, u, v = ctx.frame
    t = (X - c[0]) * v[0] + (Y - c[1]) * v[1]
    up = float((inner[2] - c) @ v)  # negative: the upper lip is above the centre
    teeth = smoothstep(up + 0.35 * opening, up + 0.2 * opening, t)
    col = (
        np.array([0.22, 0.06, 0.06], np.float32)[None, None] * (1 - teeth[..., None])
        + np.array([0.85, 0.82, 0.72], np.float32)[None, None] * teeth[..., None]
    )
    return Layer("mouth", (col * ctx.gain * 0.8).astype(np.float32), a)
