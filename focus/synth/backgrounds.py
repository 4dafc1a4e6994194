"""Backgrounds: crops of freely licensed photographs shipped inside installed packages, and
procedural textures.

Photographs (no download; each file's licence is stated in ``skimage/data/_fetchers.py`` or is a
US-government work): scikit-image's ``brick``, ``grass``, ``gravel`` (CC0Textures, CC0),
``coffee``, ``chelsea``, ``horse``, ``cell``, ``retina`` (CC0), ``rocket``, ``hubble_deep_field``,
``text``, ``clock_motion`` (public domain), ``coins``, ``ihc`` (no known copyright restrictions);
matplotlib's elevation samples ``jacksboro_fault_dem`` (USGS) and ``topobathy`` rendered as
shaded relief. Images that show a human face (``astronaut``, ``camera``, matplotlib's
``grace_hopper``) are left out on purpose: a face in the background would be a second face.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from focus.config import nonnegative, probability
from focus.synth.textures import fbm, palette_map, pattern, random_colour, resize_to

SKIMAGE_PHOTOS: tuple[str, ...] = (
    "brick.png",
    "grass.png",
    "gravel.png",
    "coffee.png",
    "chelsea.png",
    "horse.png",
    "cell.png",
    "retina.jpg",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "text.png",
    "clock_motion.png",
    "coins.png",
    "ihc.png",
)
MATPLOTLIB_DEMS: tuple[str, ...] = ("jacksboro_fault_dem.npz", "topobathy.npz")
#: longest side photographs are reduced to when the pool is loaded (crops are resized again)
POOL_MAX_SIDE = 384


@dataclass(frozen=True)
class BackgroundSettings:
    """Background mix (``params.yaml``: ``synth.backgrounds``).

    Attributes:
        photo_prob: share of photograph crops (the rest is procedural).
        plain_prob: share of plain, softly lit studio backdrops (among procedural ones).
        blur_max_px: maximum defocus blur (Gaussian sigma) at 224 px, scaled with the image.
    """

    photo_prob: float = probability(0.55)
    plain_prob: float = probability(0.2)
    blur_max_px: float = nonnegative(3.0)


@lru_cache(maxsize=1)
def photo_pool() -> tuple[np.ndarray, ...]:
    """The photographs as ``(h, w, 3)`` float32 RGB in [0, 1], loaded once per process."""
    import skimage
    import skimage.io

    root = Path(skimage.__file__).parent / "data"
    out = []
    for name in SKIMAGE_PHOTOS:
        path = root / name
        if not path.exists():
            continue
        img = skimage.io.imread(path).astype(np.float32) / 255.0
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        if img.shape[-1] == 4:  # RGBA over white
            img = img[..., :3] * img[..., 3:] + (1 - img[..., 3:])
        s = POOL_MAX_SIDE / max(img.shape[:2])
        if s < 1:
            img = resize_to(img, (max(8, round(img.shape[0] * s)), max(8, round(img.shape[1] * s))))
        out.append(np.ascontiguousarray(img))
    out.extend(_dem_reliefs())
    return tuple(out)


def _dem_reliefs() -> list[np.ndarray]:
    import matplotlib
    from matplotlib.colors import LightSource

    root = Path(matplotlib.get_data_path()) / "sample_data"
    out = []
    for name, key, cmap in (
        ("jacksboro_fault_dem.npz", "elevation", "gist_earth"),
        ("topobathy.npz", "topo", "terrain"),
    ):
        path = root / name
        if not path.exists():
            continue
        with np.load(path) as z:
            dem = np.asarray(z[key], np.float64)
        ls = LightSource(azdeg=315, altdeg=45)
        rgb = ls.shade(dem, cmap=matplotlib.colormaps[cmap], blend_mode="soft", vert_exag=2)[..., :3]
        out.append(np.ascontiguousarray(rgb.astype(np.float32)))
    return out


def photo_crop(
    rng: np.random.Generator, size: tuple[int, int], pool: tuple[np.ndarray, ...] | None = None, min_frac: float = 0.25
) -> np.ndarray:
    """A random crop of a random photograph resized to ``size`` ``(H, W)``, randomly flipped."""
    pool = pool if pool is not None else photo_pool()
    img = pool[rng.integers(len(pool))]
    h, w = img.shape[:2]
    H, W = size
    side = rng.uniform(min_frac, 1.0) * min(h, w)
    ch, cw = (side, side * W / H) if W <= H else (side * H / W, side)
    ch, cw = int(max(4, min(h, ch))), int(max(4, min(w, cw)))
    y0 = rng.integers(0, h - ch + 1)
    x0 = rng.integers(0, w - cw + 1)
    crop = img[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return resize_to(np.ascontiguousarray(crop), (H, W))


def procedural_background(rng: np.random.Generator, size: tuple[int, int], plain_prob: float = 0.2) -> np.ndarray:
    """A procedural backdrop ``(H, W, 3)``: plain studio wall, coloured noise, pattern or blobs."""
    H, W = size
    if rng.random() < plain_prob:
        base = random_colour(rng, sat=(0.0, 0.35), val=(0.35, 0.95))
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        vign = 1 - 0.35 * rng.random() * (((xx - cx) ** 2 + (yy - cy) ** 2) / (H * H + W * W))
        return np.clip(base * vign[..., None], 0, 1).astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        n = fbm(rng, (H, W), cells=rng.uniform(2, 8), octaves=4)
        cols = np.stack([random_colour(rng) for _ in range(int(rng.integers(2, 5)))])
        return palette_map(n, cols)
    if kind == 1:
        return pattern(rng, (H, W), scale_px=max(H, W) / rng.uniform(3, 14))
    # blobs: out-of-focus coloured discs over a base colour (bokeh-like)
    img = np.broadcast_to(random_colour(rng, val=(0.1, 0.7)), (H, W, 3)).copy()
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    for _ in range(int(rng.integers(6, 20))):
        cx, cy = rng.uniform(-0.1, 1.1) * W, rng.uniform(-0.1, 1.1) * H
        r = rng.uniform(0.03, 0.25) * max(H, W)
        a = np.clip(1 - np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / r, 0, 1) ** 0.5 * rng.uniform(0.3, 0.8)
        img = img * (1 - a[..., None]) + random_colour(rng) * a[..., None]
    return img.astype(np.float32)


def sample_background(
    rng: np.random.Generator,
    size: tuple[int, int],
    settings: BackgroundSettings = BackgroundSettings(),
    image_size_for_blur: int | None = None,
) -> np.ndarray:
    """One background ``(H, W, 3)`` float32 in [0, 1]: photo or procedural, colour-jittered, maybe
    defocused. ``image_size_for_blur`` is the side the blur scale refers to (default ``W``)."""
    H, W = size
    if rng.random() < settings.photo_prob:
        img = photo_crop(rng, size)
        if rng.random() < 0.3:  # tint greyscale-looking photos
            img = img * (0.6 + 0.4 * random_colour(rng, sat=(0.1, 0.5), val=(0.8, 1.0)))
    else:
        img = procedural_background(rng, size, settings.plain_prob)
    gain = rng.uniform(0.55, 1.15) * rng.uniform(0.9, 1.1, size=3)
    img = img * gain.astype(np.float32)
    ref = image_size_for_blur or W
    sigma = rng.uniform(0, settings.blur_max_px) * ref / 224.0
    if sigma > 0.3:
        img = gaussian_filter(img, sigma=(sigma, sigma, 0), mode="reflect")
    return np.clip(img, 0, 1).astype(np.float32)
