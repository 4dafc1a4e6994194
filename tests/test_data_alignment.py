"""Five-point alignment, the crop template, warping conventions and the augmentation matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synth_helpers import tiny_model

from focus.coeffs import CoeffLayout
from focus.data.alignment import (
    AlignmentTemplate,
    estimate_alignment,
    five_points,
    template_from_model,
    transform_points,
    warp_to_crop,
)
from focus.data.augment import (
    IBUG68_MIRROR,
    AugmentSettings,
    augmentation_matrix,
    mirror_landmarks,
    sample_augmentation,
)
from focus.render.renderer import FaceRenderer, RenderSettings


def similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty], [0, 0, 1.0]])


def test_five_points() -> None:
    lm = np.arange(136, dtype=float).reshape(68, 2)
    p = five_points(lm)
    np.testing.assert_array_equal(p[0], (lm[36] + lm[39]) / 2)
    np.testing.assert_array_equal(p[1], (lm[42] + lm[45]) / 2)
    np.testing.assert_array_equal(p[2:], lm[[30, 48, 54]])
    assert five_points(np.zeros((3, 68, 3))).shape == (3, 5, 3)


@pytest.mark.parametrize("size", [32, 64])
def test_template_is_where_the_mean_face_renders(size: int) -> None:
    """The mean face, frontal, at the default camera lands exactly on the template."""
    m = tiny_model()
    t = template_from_model(m, size)
    with torch.no_grad():
        out = FaceRenderer(m, RenderSettings(image_size=size, backend="torch"))(CoeffLayout.for_model(m).zeros(1))
    np.testing.assert_allclose(five_points(out.landmarks[0].numpy()), t.points2d, atol=1e-3)
    assert t.scale == pytest.approx(1015.0 * size / 224 / 1000.0)
    np.testing.assert_allclose(t.resized(2 * size).points2d, 2 * t.points2d)
    t2 = AlignmentTemplate.from_dict(t.to_dict())
    np.testing.assert_allclose(t2.points2d, t.points2d)


@pytest.mark.parametrize("method", ["similarity", "pos"])
def test_alignment_inverts_a_known_transform(method: str) -> None:
    m = tiny_model()
    t = template_from_model(m, 64)
    lm3 = m.mean_shape.numpy().astype(np.float64)[m.landmarks68.numpy()]
    if method == "similarity":  # the mean face's perspective projection: five points = the template's
        lm_crop = lm3[:, :2] * np.array([1, -1]) * (t.scale * 1000.0 / (1000.0 - lm3[:, 2:])) + 32
    else:  # POS fits a weak-perspective camera: an orthographic view at the template's scale
        lm_crop = lm3[:, :2] * np.array([1, -1]) * t.scale + 32
    np.testing.assert_allclose(transform_points(estimate_alignment(lm_crop, t, method), lm_crop), lm_crop, atol=1e-6)
    angle = 0.3 if method == "similarity" else 0.0  # POS estimates no rotation
    S = similarity(2.7, angle, 40.0, -15.0)
    lm_img = transform_points(S, lm_crop)
    M = estimate_alignment(lm_img, t, method)
    np.testing.assert_allclose(transform_points(M, lm_img), lm_crop, atol=1e-6)


def test_degenerate_points_raise() -> None:
    t = template_from_model(tiny_model(), 32)
    with pytest.raises(ValueError, match="degenerate"):
        estimate_alignment(np.zeros((68, 2)), t, "similarity")
    with pytest.raises(ValueError, match="unknown alignment"):
        estimate_alignment(np.random.default_rng(0).uniform(0, 9, (68, 2)), t, "affine")


def test_warp_pixel_conventions() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((20, 20, 3)).astype(np.float32)
    np.testing.assert_allclose(warp_to_crop(img, np.eye(3), 20), img, atol=1e-6)
    # a shift by 3 px right, 2 px down: crop pixel (r, c) shows source (r - 2, c - 3)
    out = warp_to_crop(img, np.array([[1, 0, 3.0], [0, 1, 2.0], [0, 0, 1]]), 20, mode="constant")
    np.testing.assert_allclose(out[2:, 3:], img[:-2, :-3], atol=1e-6)
    # x -> 20 - x mirrors exactly (pixel-corner frame)
    flip = np.array([[-1, 0, 20.0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(warp_to_crop(img, flip, 20), img[:, ::-1], atol=1e-6)
    # halving a constant image with anti-aliasing keeps the constant
    big = np.full((64, 64), 0.25, np.float32)
    np.testing.assert_allclose(warp_to_crop(big, np.diag([0.25, 0.25, 1.0]), 16, mode="reflect"), 0.25, atol=1e-6)


def test_downscaling_is_antialiased() -> None:
    """A fine checkerboard shrunk 8x becomes its mean grey, not an aliasing pattern."""
    yy, xx = np.mgrid[0:256, 0:256]
    checker = ((yy + xx) % 2).astype(np.float32)
    out = warp_to_crop(checker, np.diag([1 / 8, 1 / 8, 1.0]), 32)
    assert np.abs(out - 0.5).max() < 0.05


def test_mirror_table_is_an_involution_on_ibug68() -> None:
    m = np.array(IBUG68_MIRROR)
    assert sorted(m) == list(range(68))
    np.testing.assert_array_equal(m[m], np.arange(68))
    pairs = {36: 45, 39: 42, 48: 54, 0: 16, 17: 26, 31: 35, 60: 64, 65: 67}
    for a, b in pairs.items():
        assert m[a] == b and m[b] == a
    for k in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66):
        assert m[k] == k


def test_flip_mirrors_a_symmetric_face_onto_itself() -> None:
    m = tiny_model()
    t = template_from_model(m, 64)
    lm = m.mean_shape.numpy()[m.landmarks68.numpy(), :2] * np.array([1, -1]) * t.scale + 32
    F = augmentation_matrix(64, 0, 0, 1, 0, flip=True)
    flipped = mirror_landmarks(transform_points(F, lm))
    np.testing.assert_allclose(flipped, lm, atol=1e-4)


def test_augmentation_ranges() -> None:
    rng = np.random.default_rng(0)
    s = AugmentSettings()
    for _ in range(200):
        a = sample_augmentation(rng, s, 224)
        A = a.matrix[:2, :2] * (np.array([[-1], [1]]) if a.flip else 1)
        zoom = np.sqrt(abs(np.linalg.det(A)))
        assert 0.9 - 1e-9 <= zoom <= 1.1 + 1e-9
        angle = np.degrees(np.arctan2(-A[1, 0], A[0, 0]))
        assert abs(angle) <= 10 + 1e-6
        centre = a.matrix @ np.array([112, 112, 1.0])
        shift = centre[:2] - (np.array([224 - 112, 112]) if a.flip else 112)
        assert np.all(np.abs(shift) <= 10 + 1e-6)
    off = sample_augmentation(rng, AugmentSettings(enabled=False), 64)
    assert not off.flip and np.array_equal(off.matrix, np.eye(3))
