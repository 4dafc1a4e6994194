"""5-point ArcFace alignment: similarity estimate vs scikit-image, warp conventions, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.transform import SimilarityTransform

from focus.nets.face_align import (
    ARCFACE_TEMPLATE_112,
    align_faces,
    arcface_template,
    detector_five_points,
    estimate_similarity,
    warp_affine,
)


def _skimage_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    if hasattr(SimilarityTransform, "from_estimate"):
        tform = SimilarityTransform.from_estimate(src, dst)
    else:  # scikit-image < 0.26
        tform = SimilarityTransform()
        assert tform.estimate(src, dst)
    return np.asarray(tform.params)[:2]


def _apply(m: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    return pts @ m[..., :2].transpose(-1, -2) + m[..., 2][..., None, :]


def _landmarks_from_five(p5: torch.Tensor) -> torch.Tensor:
    """(B, 5, 2) -> (B, 68, 2) whose detector_five_points() are exactly p5 (other points arbitrary)."""
    b = p5.shape[0]
    lm = torch.rand(b, 68, 2, dtype=p5.dtype) * 50
    eye_l = torch.randn(b, 6, 2, dtype=p5.dtype)
    eye_r = torch.randn(b, 6, 2, dtype=p5.dtype)
    lm[:, 36:42] = p5[:, None, 0] + eye_l - eye_l.mean(dim=1, keepdim=True)  # the six eye points average to p5
    lm[:, 42:48] = p5[:, None, 1] + eye_r - eye_r.mean(dim=1, keepdim=True)
    lm[:, 30], lm[:, 48], lm[:, 54] = p5[:, 2], p5[:, 3], p5[:, 4]
    return lm


def _random_similarity(b: int, gen: torch.Generator) -> torch.Tensor:
    ang = (torch.rand(b, generator=gen, dtype=torch.float64) - 0.5) * math.radians(50)
    scale = 0.8 + 0.8 * torch.rand(b, generator=gen, dtype=torch.float64)
    t = 20 + 40 * torch.rand(b, 2, generator=gen, dtype=torch.float64)
    c, s = torch.cos(ang) * scale, torch.sin(ang) * scale
    return torch.stack([torch.stack([c, -s, t[:, 0]], -1), torch.stack([s, c, t[:, 1]], -1)], 1)


def test_five_points_selection():
    lm = torch.arange(68 * 2, dtype=torch.float64).reshape(1, 68, 2)
    p5 = detector_five_points(lm)
    # eye centres as detectors mark them (the ArcFace template's): the mean of the six eye points
    assert torch.allclose(p5[0, 0], lm[0, 36:42].mean(0))
    assert torch.allclose(p5[0, 1], lm[0, 42:48].mean(0))
    assert torch.equal(p5[0, 2:], lm[0, [30, 48, 54]])


def test_template_scaling():
    t112 = arcface_template(112, dtype=torch.float64)
    assert torch.allclose(t112, torch.tensor(ARCFACE_TEMPLATE_112, dtype=torch.float64) + 0.5)
    assert torch.allclose(arcface_template(56, dtype=torch.float64), t112 / 2)


def test_similarity_matches_skimage():
    gen = torch.Generator().manual_seed(1)
    b = 6
    tmpl = arcface_template(112, dtype=torch.float64)
    # noisy points (not an exact similarity): the least-squares solutions must agree
    true_inv = _random_similarity(b, gen)
    src = _apply(true_inv, tmpl.expand(b, 5, 2)) + torch.randn(b, 5, 2, generator=gen, dtype=torch.float64) * 2.0
    m = estimate_similarity(src, tmpl)
    for i in range(b):
        ref = _skimage_similarity(src[i].numpy(), tmpl.numpy())
        np.testing.assert_allclose(m[i].numpy(), ref, atol=1e-9, rtol=1e-9)


def test_similarity_has_no_gradient():
    src = torch.rand(2, 5, 2, dtype=torch.float64, requires_grad=True) * 100
    m = estimate_similarity(src, arcface_template(112, dtype=torch.float64))
    assert not m.requires_grad


@pytest.mark.parametrize("crop", [112, 56])
def test_warp_maps_landmarks_onto_template(crop: int):
    """Gaussian blobs drawn at the 5 source points land on the template points (blob centroids)."""
    gen = torch.Generator().manual_seed(2)
    b, size, sigma = 3, 160, 2.5
    tmpl = arcface_template(crop, dtype=torch.float64)
    # a face 1.1-1.5 x the crop's scale, rotated and shifted inside a 160 px image
    fwd = _random_similarity(b, gen)
    fwd[:, :, :2] *= (size / crop) * 0.75
    fwd[:, :, 2] = size / 2 - (_apply(fwd, tmpl.mean(0, keepdim=True).expand(b, 1, 2)) - fwd[:, None, :, 2])[:, 0]
    p5 = _apply(fwd, tmpl.expand(b, 5, 2))  # source points in the image
    lm = _landmarks_from_five(p5)
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float64) + 0.5, torch.arange(size, dtype=torch.float64) + 0.5, indexing="ij"
    )
    blobs = torch.exp(-((xs - p5[..., 0, None, None]) ** 2 + (ys - p5[..., 1, None, None]) ** 2) / (2 * sigma**2))
    m = estimate_similarity(detector_five_points(lm), tmpl)
    out = warp_affine(blobs, m, crop)  # (B, 5, crop, crop)
    cy, cx = torch.meshgrid(
        torch.arange(crop, dtype=torch.float64) + 0.5, torch.arange(crop, dtype=torch.float64) + 0.5, indexing="ij"
    )
    wsum = out.sum(dim=(-1, -2))
    centroid = torch.stack([(out * cx).sum(dim=(-1, -2)) / wsum, (out * cy).sum(dim=(-1, -2)) / wsum], -1)
    err = (centroid - tmpl).norm(dim=-1)
    assert err.max() < 0.05, err  # align_corners=True instead of False shows as 0.1-0.2 px


def test_align_faces_range_and_identity_crop():
    """At 112 px, landmarks already on the template give the image back (mapped to [-1, 1])."""
    tmpl = arcface_template(112, dtype=torch.float64)
    lm = _landmarks_from_five(tmpl[None])
    img = torch.rand(1, 3, 112, 112, dtype=torch.float64)
    crop = align_faces(img, lm, 112)
    assert crop.shape == (1, 3, 112, 112)
    assert torch.allclose(crop, img * 2 - 1, atol=1e-9)
    # outside the image is black (-1)
    big = align_faces(img, _landmarks_from_five(tmpl[None] * 2), 112)  # face twice as large
    assert torch.allclose(big[..., -3:, -3:], torch.full_like(big[..., -3:, -3:], -1.0))
    # crop centre (0.5, 0.5) <- image point (1, 1): the corner shared by the four top-left pixels
    assert torch.allclose(big[..., 0, 0], img[..., :2, :2].mean(dim=(-1, -2)) * 2 - 1, atol=1e-9)


def test_warp_gradcheck():
    gen = torch.Generator().manual_seed(3)
    img = torch.rand(1, 2, 9, 9, dtype=torch.float64, generator=gen, requires_grad=True)
    m = torch.tensor([[[0.8, -0.3, 1.2], [0.3, 0.8, 0.4]]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: warp_affine(x, m, 7), (img,))
