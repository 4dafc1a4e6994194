"""Procedural textures on pixel grids and at arbitrary 2D points (numpy, seeded).

Every function takes a :class:`numpy.random.Generator` and draws all its randomness from it, so
a texture is a pure function of the generator state. Images are ``(H, W)`` or ``(H, W, 3)``
float32 arrays; colours are RGB in [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates, zoom


def lattice_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float, order: int = 3) -> np.ndarray:
    """Smooth value noise ``(H, W)`` in about [0, 1]: a random lattice with ``cells`` cells across
    the larger side, interpolated (cubic by default)."""
    H, W = shape
    cells = max(1.0, float(cells))
    step = max(H, W) / cells
    gh, gw = int(np.ceil(H / step)) + 4, int(np.ceil(W / step)) + 4
    grid = rng.random((gh, gw)).astype(np.float32)
    ys = (np.arange(H, dtype=np.float32) + 0.5) / step + 1.5
    xs = (np.arange(W, dtype=np.float32) + 0.5) / step + 1.5
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    out = map_coordinates(grid, [yy, xx], order=order, mode="reflect", prefilter=False)
    return out.astype(np.float32)


def fbm(
    rng: np.random.Generator, shape: tuple[int, int], cells: float = 4.0, octaves: int = 4, persistence: float = 0.5
) -> np.ndarray:
    """Fractal (multi-octave) value noise ``(H, W)`` normalised to [0, 1]."""
    total = np.zeros(shape, np.float32)
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        total += amp * lattice_noise(rng, shape, cells * 2**k)
        norm += amp
        amp *= persistence
    total /= norm
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


class PointNoise:
    """Value noise evaluable at arbitrary 2D points (e.g. millimetres on the face).

    A random lattice over the square ``[-extent, extent]^2`` (after rotation by ``angle``),
    sampled with spline interpolation of ``order`` (1: bilinear, cheap; 3: smoother). Along
    ``angle`` (radians) the lattice spacing is ``period``; across it ``period / anisotropy``
    (``anisotropy > 1`` gives streaks along ``angle``, e.g. hair strands).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        period: float,
        extent: float = 130.0,
        anisotropy: float = 1.0,
        angle: float = 0.0,
        order: int = 1,
    ) -> None:
        self.period = float(period)
        self.order = int(order)
        self.extent = float(extent)
        self.anisotropy = max(float(anisotropy), 1e-3)
        n_along = int(np.ceil(2 * extent / self.period)) + 4
        n_across = int(np.ceil(2 * extent * self.anisotropy / self.period)) + 4
        self.grid = rng.random((n_across, n_along)).astype(np.float32)
        c, s = np.cos(angle), np.sin(angle)
        self.rot = np.array([[c, s], [-s, c]], np.float32)

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        """``(..., 2)`` points -> ``(...)`` values in about [0, 1]."""
        p = np.asarray(pts, np.float32) @ self.rot.T  # (along, across)
        flat = p.reshape(-1, 2)
        q_along = (flat[:, 0] + self.extent) / self.period + 1.5
        q_across = (flat[:, 1] + self.extent) * self.anisotropy / self.period + 1.5
        vals = map_coordinates(self.grid, [q_across, q_along], order=self.order, mode="reflect", prefilter=False)
        return vals.reshape(p.shape[:-1]).astype(np.float32)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 (``x <= e0``) to 1 (``x >= e1``); ``e0 > e1`` reverses it."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def random_colour(
    rng: np.random.Generator, sat: tuple[float, float] = (0.2, 0.9), val: tuple[float, float] = (0.2, 0.95)
) -> np.ndarray:
    """A random RGB colour from a hue/saturation/value draw."""
    from matplotlib.colors import hsv_to_rgb

    return hsv_to_rgb(np.array([rng.random(), rng.uniform(*sat), rng.uniform(*val)])).astype(np.float32)


def palette_map(values: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Map ``(H, W)`` values in [0, 1] through a piecewise-linear palette ``(K, 3)`` -> ``(H, W, 3)``."""
    k = colours.shape[0]
    x = np.clip(values, 0, 1) * (k - 1)
    i = np.clip(np.floor(x).astype(int), 0, k - 2)
    f = (x - i)[..., None]
    return ((1 - f) * colours[i] + f * colours[i + 1]).astype(np.float32)


def pattern(rng: np.random.Generator, shape: tuple[int, int], scale_px: float, kind: str | None = None) -> np.ndarray:
    """A random coloured pattern ``(H, W, 3)`` (fabric, plastic, printed surfaces).

    ``kind`` one of ``"solid"``, ``"stripes"``, ``"checks"``, ``"tartan"``, ``"dots"``,
    ``"noise"``, ``"gradient"`` (``None`` draws one). ``scale_px`` is the pattern period.
    """
    kinds = ("solid", "stripes", "checks", "tartan", "dots", "noise", "gradient")
    kind = kind or kinds[rng.integers(len(kinds))]
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    a = rng.uniform(0, np.pi)
    u = xx * np.cos(a) + yy * np.sin(a)
    v = -xx * np.sin(a) + yy * np.cos(a)
    c1, c2, c3 = (random_colour(rng) for _ in range(3))
    period = max(2.0, scale_px * rng.uniform(0.6, 1.6))
    if kind == "solid":
        img = np.broadcast_to(c1, (H, W, 3)).copy()
    elif kind == "stripes":
        t = (np.sin(2 * np.pi * u / period) > rng.uniform(-0.5, 0.5)).astype(np.float32)[..., None]
        img = t * c1 + (1 - t) * c2
    elif kind == "checks":
        t = ((np.floor(u / period) + np.floor(v / period)) % 2)[..., None].astype(np.float32)
        img = t * c1 + (1 - t) * c2
    elif kind == "tartan":
        s1 = (np.sin(2 * np.pi * u / period) > 0.3).astype(np.float32)
        s2 = (np.sin(2 * np.pi * v / period) > 0.3).astype(np.float32)
        img = c1 * (1 - 0.5 * (s1 + s2))[..., None] + 0.5 * (s1[..., None] * c2 + s2[..., None] * c3)
    elif kind == "dots":
        du = (u % period) - period / 2
        dv = (v % period) - period / 2
        t = ((du**2 + dv**2) < (period * rng.uniform(0.15, 0.35)) ** 2).astype(np.float32)[..., None]
        img = t * c1 + (1 - t) * c2
    elif kind == "noise":
        n = fbm(rng, shape, cells=max(H, W) / period, octaves=3)
        img = palette_map(n, np.stack([c1, c2, c3]))
    else:  # gradient
        t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
        img = palette_map(t, np.stack([c1, c2]))
    return np.clip(img, 0, 1).astype(np.float32)


def resize_to(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize ``(h, w[, C])`` to ``shape`` (bilinear, with anti-aliasing when shrinking)."""
    from skimage.transform import resize

    return resize(
        img, shape + img.shape[2:], order=1, anti_aliasing=img.shape[0] > shape[0], preserve_range=True
    ).astype(np.float32)


def upsample(img: np.ndarray, factor: float) -> np.ndarray:
    """Bilinear zoom of ``(h, w[, C])`` by ``factor`` (spatial axes only)."""
    return zoom(img, (factor, factor) + (1,) * (img.ndim - 2), order=1).astype(np.float32)
