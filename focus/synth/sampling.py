"""Distributions of the synthetic faces' coefficients: identity, expression, albedo, pose, light.

Coefficients follow :mod:`focus.coeffs` (identity, expression and albedo in units of the bases'
standard deviations; angles ``(pitch, yaw, roll)`` in radians; translation in mm added to the
default camera distance; 27 SH coefficients added to the default ambient light, colour-major, in
the basis of :mod:`focus.render.shading`).

Lighting: a soft ambient term plus one dominant directional light from the front hemisphere
(mostly from above), projected onto the 9 SH bands, with a slight colour cast and a little random
band-2 energy. :func:`sh_directional` gives the SH coefficients of a directional light in this
project's basis (signs as in Deep3DFaceRecon's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from focus.config import nonnegative, param, probability
from focus.render.shading import SH_CONSTANTS

#: Deep3DFaceRecon's band-2 factor is about 2.8x the Lambertian one; a directional light's band-2
#: part is damped so the lobe stays close to a clamped cosine.
BAND2_DAMPING = 0.3


@dataclass(frozen=True)
class SamplingSettings:
    """How faces are drawn (``params.yaml``: ``synth.sampling``).

    Attributes:
        id_scale, albedo_scale: std of the identity / albedo coefficients (1 = the model's prior).
        exp_prob: probability that a face has a non-neutral expression (train set).
        exp_scale: std of an active expression weight (absolute value when ``exp_nonnegative``).
        exp_active: share of the expression components active in an expressive face.
        exp_nonnegative: blendshape-like bases (weights in [0, 1]) need non-negative weights
            (components marked signed, see :func:`signed_expressions`, keep their sign).
        yaw_max_deg, pitch_max_deg, roll_max_deg: uniform pose ranges (+-).
        trans_xy_mm, trans_z_mm: uniform translation ranges (+-), mm.
        light_min, light_max: intensity range of the directional light.
        light_max_angle_deg: largest angle between the light and the camera axis.
        ambient_min, ambient_max: factor on the default ambient light.
        light_colour_jitter: relative std of the per-channel light colour.
        band2_std: std of extra random band-2 SH coefficients.
    """

    id_scale: float = nonnegative(1.0)
    albedo_scale: float = nonnegative(1.0)
    exp_prob: float = probability(0.7)
    exp_scale: float = nonnegative(0.5)
    exp_active: float = probability(0.15)
    exp_nonnegative: bool = True
    yaw_max_deg: float = param(45.0, ge=0, le=90)
    pitch_max_deg: float = param(15.0, ge=0, le=90)
    roll_max_deg: float = param(10.0, ge=0, le=180)
    trans_xy_mm: float = nonnegative(12.0)
    trans_z_mm: float = nonnegative(60.0)
    light_min: float = nonnegative(0.1)
    light_max: float = nonnegative(0.7)
    light_max_angle_deg: float = param(70.0, ge=0, le=180)
    ambient_min: float = nonnegative(0.65)
    ambient_max: float = nonnegative(1.1)
    light_colour_jitter: float = nonnegative(0.06)
    band2_std: float = nonnegative(0.02)


@dataclass(frozen=True)
class FaceDraw:
    """One face's coefficients (numpy, float64) and its dominant light direction.

    ``id``, ``exp``, ``albedo``: ``(K,)``; ``angles``: ``(3,)`` radians; ``trans``: ``(3,)`` mm;
    ``sh``: ``(27,)``; ``light_dir``: ``(3,)`` unit vector towards the light, world frame.
    """

    id: np.ndarray
    exp: np.ndarray
    albedo: np.ndarray
    angles: np.ndarray
    trans: np.ndarray
    sh: np.ndarray
    light_dir: np.ndarray


def sh_directional(direction: np.ndarray) -> np.ndarray:
    """``(9,)`` SH coefficients of a unit-intensity directional light from ``direction``.

    In the basis of :func:`focus.render.shading.sh_basis` the irradiance is then a smooth lobe
    ``sum_k a_k c_k^2 P_k(n . l)`` peaking at normals facing the light.
    """
    x, y, z = np.asarray(direction, np.float64) / max(float(np.linalg.norm(direction)), 1e-12)
    c0, c1, c2 = SH_CONSTANTS
    return np.array(
        [
            c0,
            -c1 * y,
            c1 * z,
            -c1 * x,
            c2 * x * y,
            -c2 * y * z,
            c2 / (2 * math.sqrt(3.0)) * (3 * z * z - 1),
            -c2 * x * z,
            c2 / 2 * (x * x - y * y),
        ]
    )


def sample_light(rng: np.random.Generator, s: SamplingSettings, ambient: float) -> tuple[np.ndarray, np.ndarray]:
    """``(27,)`` SH coefficients (added to the default ambient) and the light direction."""
    max_a = math.radians(s.light_max_angle_deg)
    theta = math.acos(1 - rng.random() * (1 - math.cos(max_a)))  # uniform on the spherical cap
    phi = rng.uniform(0, 2 * math.pi)
    d = np.array([math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)])
    if d[1] < 0 and rng.random() < 0.6:  # lights mostly come from above
        d[1] = -d[1]
    intensity = rng.uniform(s.light_min, s.light_max)
    colour = 1 + rng.normal(0, s.light_colour_jitter, 3)
    amb = ambient * (rng.uniform(s.ambient_min, s.ambient_max) - 1)  # change of the ambient term
    c0 = SH_CONSTANTS[0]
    sh = np.zeros((3, 9))
    lobe = sh_directional(d)
    lobe[4:] *= BAND2_DAMPING
    for ch in range(3):
        sh[ch] = intensity * colour[ch] * lobe
        sh[ch, 0] += amb * colour[ch] - 0.5 * intensity * colour[ch] * c0  # keep the mean level
        sh[ch, 4:] += rng.normal(0, s.band2_std, 5)
    return sh.reshape(-1), d


def sample_face(
    rng: np.random.Generator,
    n_id: int,
    n_exp: int,
    n_albedo: int,
    s: SamplingSettings,
    ambient: float = 0.8,
    neutral: bool | None = None,
    yaw_max_deg: float | None = None,
    pitch_max_deg: float | None = None,
    roll_max_deg: float | None = None,
    signed_exp: np.ndarray | None = None,
) -> FaceDraw:
    """Draw one face. ``neutral=True`` forces expression zero, ``False`` forces an expression,
    ``None`` draws it with ``s.exp_prob``. Pose limits default to the settings'.
    ``signed_exp`` ``(K_exp,)`` marks components whose negative weights are meaningful (e.g.
    left-minus-right modes) when ``s.exp_nonnegative``."""
    fid = rng.normal(0, 1, n_id) * s.id_scale
    alb = rng.normal(0, 1, n_albedo) * s.albedo_scale
    exp = np.zeros(n_exp)
    expressive = (rng.random() < s.exp_prob) if neutral is None else not neutral
    if expressive and n_exp:
        active = rng.random(n_exp) < s.exp_active
        if not active.any():
            active[rng.integers(n_exp)] = True
        w = rng.normal(0, s.exp_scale, n_exp)
        if s.exp_nonnegative:
            signed = np.zeros(n_exp, bool) if signed_exp is None else np.asarray(signed_exp, bool)
            w = np.where(signed, np.clip(w, -1, 1), np.clip(np.abs(w), 0, 1))
        exp = np.where(active, w, 0.0)
    ym = s.yaw_max_deg if yaw_max_deg is None else yaw_max_deg
    pm = s.pitch_max_deg if pitch_max_deg is None else pitch_max_deg
    rm = s.roll_max_deg if roll_max_deg is None else roll_max_deg
    angles = np.radians([rng.uniform(-pm, pm), rng.uniform(-ym, ym), rng.uniform(-rm, rm)])
    trans = np.array(
        [
            rng.uniform(-s.trans_xy_mm, s.trans_xy_mm),
            rng.uniform(-s.trans_xy_mm, s.trans_xy_mm),
            rng.uniform(-s.trans_z_mm, s.trans_z_mm),
        ]
    )
    sh, d = sample_light(rng, s, ambient)
    return FaceDraw(fid, exp, alb, angles, trans, sh, d)


def signed_expressions(model) -> np.ndarray:
    """``(K_exp,)`` bool: expression components whose weight may be negative.

    For the embedded model these are its antisymmetric (left minus right) and sideways modes
    (names with ``asym`` or ``shift``); for other models none are known (all ``False``).
    """
    n = model.n_exp
    if str(model.name).startswith("focus-embedded"):
        try:
            from focus.facemodel.expressions import expression_names

            names = list(expression_names())[:n]
            if len(names) == n:
                return np.array([("asym" in nm) or ("shift" in nm) for nm in names])
        except ImportError:  # pragma: no cover - the embedded model ships with the package
            pass
    return np.zeros(n, bool)
