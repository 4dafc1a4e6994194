"""One synthetic image: render the face, paint its details, put it on a background, add occluders,
apply the camera, and derive the ground truth (visible-face mask, face mask, landmarks).

Rendering and painting happen at ``supersample`` times the output size; the image and the masks
are then reduced by a block mean, which anti-aliases every edge. Ground truth at the output
resolution:

* ``face_mask``: at least half of the pixel is covered by the face mesh;
* ``mask`` (visible face): ``face_mask`` and the occluders' combined opacity over the pixel is
  below ``alpha_threshold`` (so a pixel marked visible shows the face, not an occluder);
* ``landmarks_true``: the model's landmark vertices projected (the renderer's landmarks);
  ``landmarks``: the same with detector-like noise (given under occluders too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from focus.config import nonnegative, param
from focus.synth.appearance import AppearanceParams, FacePixels, paint_face
from focus.synth.context import ContextSettings, head_context, mouth_cavity
from focus.synth.occluders import Layer, OccluderContext, draw_occluder
from focus.synth.sampling import FaceDraw


@dataclass(frozen=True)
class CameraEffects:
    """Image degradations after composition (``params.yaml``: ``synth.camera``).

    Attributes:
        blur_max_px_at_224: maximum Gaussian blur sigma at 224 px (scaled with the image).
        noise_max: maximum std of additive Gaussian sensor noise (image in [0, 1]).
        colour_jitter: relative std of per-channel gains (white balance).
        gamma_jitter: the tone curve exponent is drawn from ``1 +- gamma_jitter``.
    """

    blur_max_px_at_224: float = nonnegative(1.2)
    noise_max: float = nonnegative(0.015)
    colour_jitter: float = nonnegative(0.04)
    gamma_jitter: float = param(0.1, ge=0, lt=1)


@dataclass(frozen=True)
class LandmarkNoise:
    """Detector-like landmark noise, in units of the eye-centre distance (``synth.landmark_noise``).

    Attributes:
        point_std: per-point std of the inner (non-contour) landmarks.
        contour_factor: multiplier for the jaw contour (0..16), which detectors find worst.
        occluded_factor: multiplier for landmarks under an occluder.
        shift_std: std of one shift shared by all points of an image.
        scale_std: relative std of one scaling about the landmarks' centre.
    """

    point_std: float = nonnegative(0.02)
    contour_factor: float = nonnegative(2.0)
    occluded_factor: float = nonnegative(1.5)
    shift_std: float = nonnegative(0.01)
    scale_std: float = nonnegative(0.01)


@dataclass(frozen=True)
class FaceRender:
    """A rendered face at the drawing resolution, as flat arrays of its covered pixels.

    Attributes:
        size: ``(H, W)`` drawing resolution.
        pixels: ``(N,)`` flat indices of the covered pixels.
        q, albedo, irradiance, normal: ``(N, 2 | 3)`` per covered pixel (see
            :class:`focus.synth.appearance.FacePixels`); ``irradiance`` is the SH irradiance.
        lm2d: ``(68, 2)`` projected landmarks, pixels at the drawing resolution.
        lm3d: ``(68, 3)`` deformed, unposed landmark vertices, model frame, mm.
    """

    size: tuple[int, int]
    pixels: np.ndarray
    q: np.ndarray
    albedo: np.ndarray
    irradiance: np.ndarray
    normal: np.ndarray
    lm2d: np.ndarray
    lm3d: np.ndarray

    @property
    def cover(self) -> np.ndarray:
        m = np.zeros(self.size[0] * self.size[1], bool)
        m[self.pixels] = True
        return m.reshape(self.size)


def draws_to_coeffs(draws: list[FaceDraw], dtype=torch.float32) -> torch.Tensor:
    """Stack draws into the ``(B, dim)`` coefficient tensor of :mod:`focus.coeffs`."""
    rows = [np.concatenate([d.id, d.exp, d.albedo, d.angles, d.trans, d.sh]) for d in draws]
    return torch.tensor(np.stack(rows), dtype=dtype)


@torch.no_grad()
def render_faces(renderer, draws: list[FaceDraw]) -> list[FaceRender]:
    """Render a batch of draws with a :class:`focus.render.renderer.FaceRenderer` and pull out
    the per-pixel attributes the painter needs."""
    from focus.render.shading import sh_irradiance

    coeffs = renderer.split(draws_to_coeffs(draws))
    out = renderer(coeffs)
    shape = renderer.shape(coeffs.id, coeffs.exp)  # deformed, unposed (model frame)
    irr = sh_irradiance(out.normals, coeffs.sh, renderer.settings.ambient)
    attrs = torch.cat([shape, out.albedo, irr, out.normals], dim=-1)
    maps = renderer.interpolate_attributes(attrs, out.fragments)  # (B, 12, H, W)
    cover = out.fragments.mask  # (B, H, W)
    lm3d = shape[:, renderer.landmarks68]
    B, _, H, W = maps.shape
    res = []
    for b in range(B):
        pix = torch.nonzero(cover[b].reshape(-1)).squeeze(1)
        vals = maps[b].reshape(12, -1)[:, pix].T.numpy().astype(np.float32)
        n = vals[:, 9:12]
        n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-6)
        res.append(
            FaceRender(
                (H, W),
                pix.numpy(),
                vals[:, 0:2].copy(),
                vals[:, 3:6].copy(),
                vals[:, 6:9].copy(),
                n,
                out.landmarks[b].numpy().astype(np.float64),
                lm3d[b].numpy().astype(np.float64),
            )
        )
    return res


@dataclass
class Composite:
    """One finished synthetic image and its ground truth (output resolution).

    Attributes:
        image: ``(S, S, 3)`` uint8 RGB.
        mask: ``(S, S)`` bool, visible face.
        face_mask: ``(S, S)`` bool, face region (occluded or not).
        landmarks_true: ``(68, 2)`` projected landmark vertices, pixels.
        landmarks: ``(68, 2)`` with detector-like noise.
        occluders: kinds drawn, in drawing order.
        occluded_share: share of the face region that is occluded.
        appearance: short description of the painted details.
        occluder_alpha: ``(S, S)`` float32 combined occluder opacity per pixel (``mask`` is
            false wherever it reaches the threshold).
    """

    image: np.ndarray
    mask: np.ndarray
    face_mask: np.ndarray
    landmarks_true: np.ndarray
    landmarks: np.ndarray
    occluders: list[str] = field(default_factory=list)
    occluded_share: float = 0.0
    appearance: dict = field(default_factory=dict)
    occluder_alpha: np.ndarray | None = None


def block_mean(img: np.ndarray, k: int) -> np.ndarray:
    """Reduce ``(H, W[, C])`` by ``k`` with a block mean (``H``, ``W`` multiples of ``k``)."""
    if k == 1:
        return img.astype(np.float32)
    H, W = img.shape[:2]
    return img.reshape(H // k, k, W // k, k, *img.shape[2:]).mean(axis=(1, 3)).astype(np.float32)


def composite(
    face: FaceRender,
    appearance: AppearanceParams | None,
    light_dir: np.ndarray,
    background: np.ndarray,
    occluder_kinds: list[str],
    supersample: int,
    rngs: dict[str, np.random.Generator],
    camera: CameraEffects = CameraEffects(),
    noise: LandmarkNoise = LandmarkNoise(),
    alpha_threshold: float = 0.5,
    photos: tuple = (),
    context: ContextSettings | None = None,
    yaw: float = 0.0,
) -> Composite:
    """Compose one image. ``background`` is ``(H, W, 3)`` at the drawing resolution;
    ``rngs`` holds independent generators ``"context"``, ``"occluders"``, ``"camera"``,
    ``"landmarks"`` (so changing one part's settings leaves the others' draws alone).
    ``context`` draws the head around the face (behind it); ``yaw`` (radians) hides the far ear."""
    H, W = face.size
    k = supersample
    # face colour
    if appearance is not None:
        px = FacePixels(face.q, face.albedo, face.normal, face.lm3d)
        alb, spec = paint_face(px, appearance, light_dir)
    else:
        alb, spec = np.clip(face.albedo, 0, 1), np.zeros_like(face.albedo)
    colour = alb * np.maximum(face.irradiance, 0) + spec
    skin = np.median(colour, axis=0) if len(colour) else np.array([0.6, 0.45, 0.35])
    gain = float(np.clip(np.median(face.irradiance) / 0.75, 0.5, 1.4)) if len(colour) else 1.0
    ctx = OccluderContext(
        size=(H, W),
        lm=face.lm2d.astype(np.float32),
        skin=np.clip(skin, 0.02, 1).astype(np.float32),
        hair=(appearance.hair_colour if appearance is not None else np.array([0.1, 0.07, 0.05], np.float32)),
        gain=gain,
        light2d=np.array([light_dir[0], -light_dir[1]], np.float32),
        photos=photos,
    )
    img = background.astype(np.float32)
    behind = [head_context(rngs["context"], ctx, yaw, context) if context is not None else None, mouth_cavity(ctx)]
    for layer in behind:
        if layer is not None:
            a = layer.alpha[..., None]
            img = layer.rgb * a + img * (1 - a)
    img = img.reshape(-1, 3).copy()
    img[face.pixels] = colour
    img = img.reshape(H, W, 3)
    cover = face.cover.astype(np.float32)
    # occluders
    alpha_all = np.zeros((H, W), np.float32)
    kinds_done = []
    for kind in occluder_kinds:
        layer: Layer = draw_occluder(kind, rngs["occluders"], ctx)
        a = np.clip(layer.alpha, 0, 1)[..., None]
        img = layer.rgb * a + img * (1 - a)
        alpha_all = 1 - (1 - alpha_all) * (1 - a[..., 0])
        kinds_done.append(kind)
    # down to the output size
    S = (H // k, W // k)
    out = block_mean(img, k)
    cover_s = block_mean(cover, k)
    alpha_s = block_mean(alpha_all, k)
    face_mask = cover_s >= 0.5
    mask = face_mask & (alpha_s < alpha_threshold)
    # camera
    rng = rngs["camera"]
    sigma = rng.uniform(0, camera.blur_max_px_at_224) * S[1] / 224.0
    if sigma > 0.15:
        out = gaussian_filter(out, sigma=(sigma, sigma, 0), mode="nearest")
    out = np.clip(out, 0, 1) ** rng.uniform(1 - camera.gamma_jitter, 1 + camera.gamma_jitter)
    out = out * (1 + rng.normal(0, camera.colour_jitter, 3)).astype(np.float32)
    out = out + rng.normal(0, rng.uniform(0, camera.noise_max), out.shape).astype(np.float32)
    image = np.clip(np.round(np.clip(out, 0, 1) * 255), 0, 255).astype(np.uint8)
    # landmarks at the output resolution
    lm_true = face.lm2d / k
    lm = noisy_landmarks(rngs["landmarks"], lm_true, noise, alpha_s, alpha_threshold)
    occluded_share = float((face_mask & ~mask).sum() / max(int(face_mask.sum()), 1))
    return Composite(
        image,
        mask,
        face_mask,
        lm_true,
        lm,
        kinds_done,
        occluded_share,
        appearance.summary() if appearance is not None else {},
        alpha_s,
    )


def noisy_landmarks(
    rng: np.random.Generator,
    lm: np.ndarray,
    s: LandmarkNoise,
    occluder_alpha: np.ndarray | None = None,
    alpha_threshold: float = 0.5,
) -> np.ndarray:
    """Detector-like noise on ``(68, 2)`` landmarks (pixels): a shared shift and scaling, then
    per-point noise, larger on the jaw contour and under occluders."""
    iod = float(np.linalg.norm((lm[36] + lm[39]) / 2 - (lm[42] + lm[45]) / 2))
    iod = max(iod, 0.25 * float(np.linalg.norm(lm.max(0) - lm.min(0))), 1e-3)
    std = np.full(68, s.point_std)
    std[:17] *= s.contour_factor
    if occluder_alpha is not None:
        H, W = occluder_alpha.shape
        ij = np.clip(np.floor(lm[:, ::-1]).astype(int), 0, [H - 1, W - 1])
        under = occluder_alpha[ij[:, 0], ij[:, 1]] >= alpha_threshold
        std[under] *= s.occluded_factor
    centre = lm.mean(0)
    scale = 1 + rng.normal(0, s.scale_std)
    shift = rng.normal(0, s.shift_std, 2) * iod
    per = rng.normal(0, 1, (68, 2)) * std[:, None] * iod
    return centre + (lm - centre) * scale + shift + per
