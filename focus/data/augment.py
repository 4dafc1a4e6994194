"""The paper's training augmentation: shift, scale, rotation and horizontal flip (docs/method.md, 4).

Paper scale (224 x 224 crop): shift +-10 px, scale 1 +- 0.1, rotation +-10 degrees, horizontal
flip with landmark index mirroring. Each is drawn uniformly; shifts are given at 224 px and scaled
with the crop. The augmentation is one ``(3, 3)`` crop -> crop transform (image frame, pixels)
composed with the alignment before the single resampling, so an image is interpolated once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focus.config import nonnegative, param, probability

#: iBUG-68 index of each landmark's mirror image (0-based): after a horizontal flip, landmark
#: ``k`` of the flipped face is landmark ``IBUG68_MIRROR[k]`` of the original, moved.
IBUG68_MIRROR: tuple[int, ...] = (
    *range(16, -1, -1),  # jaw 0..16
    *range(26, 21, -1),  # right brow 17..21 <- left brow 26..22
    *range(21, 16, -1),  # left brow 22..26 <- right brow 21..17
    27, 28, 29, 30,  # nose bridge
    35, 34, 33, 32, 31,  # nose bottom
    45, 44, 43, 42, 47, 46,  # right eye 36..41 <- left eye
    39, 38, 37, 36, 41, 40,  # left eye 42..47 <- right eye
    54, 53, 52, 51, 50, 49, 48,  # outer upper lip 48..54
    59, 58, 57, 56, 55,  # outer lower lip 55..59
    64, 63, 62, 61, 60,  # inner upper lip 60..64
    67, 66, 65,  # inner lower lip 65..67
)


@dataclass(frozen=True)
class AugmentSettings:
    """Training augmentation (``params.yaml``: ``data.augment``).

    Attributes:
        enabled: off for evaluation.
        shift_px_at_224: maximum shift per axis in pixels at a 224 px crop (scaled with the crop).
        scale: the zoom factor is drawn from ``[1 - scale, 1 + scale]``.
        rotation_deg: the in-plane rotation is drawn from ``[-rotation_deg, rotation_deg]``.
        flip_prob: probability of a horizontal flip (landmark indices mirrored).
    """

    enabled: bool = True
    shift_px_at_224: float = nonnegative(10.0)
    scale: float = param(0.1, ge=0, lt=1)
    rotation_deg: float = param(10.0, ge=0, le=180)
    flip_prob: float = probability(0.5)


@dataclass(frozen=True)
class Augmentation:
    """One drawn augmentation: ``matrix`` ``(3, 3)`` crop -> crop, and whether it flips."""

    matrix: np.ndarray
    flip: bool


def identity_augmentation() -> Augmentation:
    return Augmentation(np.eye(3), False)


def sample_augmentation(rng: np.random.Generator, settings: AugmentSettings, crop_size: int) -> Augmentation:
    """Draw one augmentation for a ``crop_size`` crop (rotation and zoom about the crop centre)."""
    if not settings.enabled:
        return identity_augmentation()
    shift_max = settings.shift_px_at_224 * crop_size / 224.0
    tx, ty = rng.uniform(-shift_max, shift_max, size=2)
    zoom = rng.uniform(1.0 - settings.scale, 1.0 + settings.scale)
    angle = np.deg2rad(rng.uniform(-settings.rotation_deg, settings.rotation_deg))
    flip = bool(rng.random() < settings.flip_prob)
    return Augmentation(augmentation_matrix(crop_size, tx, ty, zoom, angle, flip), flip)


def augmentation_matrix(crop_size: int, tx: float, ty: float, zoom: float, angle: float, flip: bool) -> np.ndarray:
    """``flip o shift o (rotate and zoom about the centre)`` as a ``(3, 3)`` crop -> crop matrix.

    ``angle`` in radians, positive turns the image content anticlockwise on screen.
    """
    c = crop_size / 2.0
    ca, sa = np.cos(angle), np.sin(angle)
    # y points down, so an on-screen anticlockwise turn is (x, y) -> (x cos + y sin, -x sin + y cos).
    rz = np.array([[zoom * ca, zoom * sa, 0], [-zoom * sa, zoom * ca, 0], [0, 0, 1.0]])
    to_c = np.array([[1, 0, c], [0, 1, c], [0, 0, 1.0]])
    from_c = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1.0]])
    m = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1.0]]) @ to_c @ rz @ from_c
    if flip:
        m = np.array([[-1, 0, crop_size], [0, 1, 0], [0, 0, 1.0]]) @ m  # x -> S - x (pixel-corner frame)
    return m


def mirror_landmarks(lm68: np.ndarray) -> np.ndarray:
    """Re-index ``(..., 68, D)`` landmarks after a horizontal flip (positions already flipped)."""
    return np.asarray(lm68)[..., list(IBUG68_MIRROR), :]
