"""Albedo population of the embedded model: per-vertex skin colour maps, then PCA.

Each sampled face gets a skin tone on a light-to-dark curve (with random redness and
yellowness), and regional variation defined by the soft regions of
:mod:`focus.facemodel.regions`: redder, darker lips; a dark line where the lips meet; cheek and
nose-tip redness; darker skin around the eyes and a blurred eye in the eye opening (greyish sclera, a dark
iris looking straight ahead, a darker lash line; sharp eyes, gaze and lashes are painted later by
the synthetic-data generator); a darker eyebrow area (blurred brows); dark nostrils; an optional beard shadow;
and low-frequency blotches. Values are diffuse RGB albedo in [0, 1].
"""

from __future__ import annotations

import numpy as np

from focus.facemodel.face_shape import ANATOMY, gauss, gauss2, lip_edges

#: Skin-tone curve: RGB albedo at tone 0 (lightest) ... 1 (darkest), linearly interpolated.
SKIN_TONES = np.array(
    [
        [0.93, 0.77, 0.68],
        [0.86, 0.66, 0.55],
        [0.76, 0.56, 0.43],
        [0.63, 0.45, 0.32],
        [0.47, 0.32, 0.22],
        [0.32, 0.21, 0.15],
    ]
)


#: Iris colours (brown, dark brown, hazel, green-grey, blue-grey), RGB albedo.
IRIS_COLOURS = np.array(
    [[0.22, 0.14, 0.09], [0.12, 0.08, 0.06], [0.30, 0.24, 0.13], [0.26, 0.30, 0.26], [0.28, 0.33, 0.40]]
)


def skin_tone(t: float) -> np.ndarray:
    """``(3,)`` RGB of tone ``t`` in [0, 1] on :data:`SKIN_TONES`."""
    pos = np.clip(t, 0.0, 1.0) * (len(SKIN_TONES) - 1)
    return np.array([np.interp(pos, np.arange(len(SKIN_TONES)), SKIN_TONES[:, c]) for c in range(3)])


def sample_albedo(rng: np.random.Generator, canonical_xy: np.ndarray, soft: dict[str, np.ndarray]) -> np.ndarray:
    """One sampled albedo map ``(V, 3)`` in [0, 1].

    Args:
        rng: the random generator (consumed).
        canonical_xy: ``(V, 2)`` canonical frontal coordinates, mm.
        soft: soft regions from :func:`focus.facemodel.regions.soft_regions`.
    """
    X, Y = canonical_xy[:, 0], canonical_xy[:, 1]
    tone = rng.beta(1.1, 1.1)
    base = skin_tone(tone)
    base = base * np.exp(np.array([0.035, -0.01, -0.02]) * rng.normal() + np.array([0.01, 0.012, -0.04]) * rng.normal())
    V = X.shape[0]
    col = np.tile(base, (V, 1))
    light = 1.0 - 0.6 * tone  # visible strength of red tints on lighter skin

    # low-frequency blotches (luminance and a little hue)
    for _ in range(6):
        g = gauss2(X, Y, rng.uniform(-60, 60), rng.uniform(-90, 90), *rng.uniform(10.0, 35.0, size=2))
        col = col * (1.0 + g[:, None] * (0.04 * rng.normal() + np.array([0.012, 0.0, -0.012]) * rng.normal()))

    # redness of cheeks and nose tip
    blush = abs(rng.normal(0.6, 0.4)) * light
    red = np.array([0.06, -0.02, -0.01])
    col = col + blush * (soft["cheeks"][:, None] * red + 0.7 * soft["nose_tip"][:, None] * red)

    # around the eyes: darker, slightly purple; the eye opening greyish and dark
    circ = rng.uniform(0.03, 0.14)
    col = col * (1.0 - circ * soft["periorbital"][:, None] * np.array([1.0, 1.1, 0.9]))
    # a blurred eye: greyish sclera, a dark iris looking straight ahead, mixed with the skin
    sclera = np.array([0.62, 0.58, 0.56]) * rng.uniform(0.75, 1.1)
    iris_col = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.7, 1.2)
    eye_col = sclera * (1.0 - soft["iris"][:, None]) + iris_col * soft["iris"][:, None]
    mix = rng.uniform(0.6, 0.85) * soft["eyes"][:, None]
    col = col * (1.0 - mix) + eye_col * mix
    lash = rng.uniform(0.15, 0.4) * soft["lash_line"][:, None]  # blurred lashes on the upper lid margin
    col = col * (1.0 - lash)

    # eyebrow area: darker (blurred brows)
    brow_dark = rng.uniform(0.08, 0.35)
    col = col * (1.0 - brow_dark * soft["brows"][:, None] * np.array([1.0, 1.05, 1.08]))

    # lips: redder and darker; a dark line where they meet
    lips = np.maximum(soft["upper_lip"], soft["lower_lip"])[:, None]
    lip_tint = np.array([0.86, 0.60, 0.62]) * np.exp(0.06 * rng.normal(size=3)) * rng.uniform(0.85, 1.05)
    col = col * (1.0 - lips) + col * lip_tint * lips
    taper, _, _ = lip_edges(X)
    line = gauss(Y - ANATOMY["mouth"][1], 0.9) * np.clip(taper * 1.6, 0.0, 1.0)
    col = col * (1.0 - 0.45 * line[:, None])

    # nostrils
    col = col * (1.0 - 0.7 * soft["nostrils"][:, None])

    # beard shadow (bluish grey) on some faces
    if rng.uniform() < 0.4:
        b = rng.uniform(0.15, 1.0)
        col = col * (1.0 - b * soft["beard"][:, None] * np.array([0.30, 0.27, 0.20]))
    return np.clip(col, 0.02, 1.0)
