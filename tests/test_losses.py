"""Losses of FOCUS on hand-made inputs, against slow references, and gradchecks in float64."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from focus import losses as L
from focus.coeffs import CoeffLayout
from focus.nets.iresnet import IResNet, IResNetSettings
from focus.nets.perceptual import PerceptualNet

SIGMA = 0.043


def _grey(b: int, s: int, value: float = 0.5, dtype=torch.float64) -> torch.Tensor:
    return torch.full((b, 3, s, s), value, dtype=dtype)


def _tiny_perceptual(size: int = 32) -> PerceptualNet:
    torch.manual_seed(5)
    backbone = IResNet(
        IResNetSettings(arch="custom", layers=(1, 1, 1, 1), base_width=8, input_size=size, num_features=16)
    )
    return PerceptualNet(backbone)


def _landmarks(b: int, s: float, dtype=torch.float64) -> torch.Tensor:
    """Plausible 68 landmarks for a face filling an s x s image (only the 5 alignment points matter)."""
    lm = torch.rand(b, 68, 2, dtype=dtype) * s * 0.5 + s * 0.25
    lm[:, 36:42] = torch.tensor([0.35 * s, 0.42 * s], dtype=dtype)
    lm[:, 42:48] = torch.tensor([0.65 * s, 0.42 * s], dtype=dtype)
    lm[:, 30] = torch.tensor([0.5 * s, 0.58 * s], dtype=dtype)
    lm[:, 48] = torch.tensor([0.38 * s, 0.75 * s], dtype=dtype)
    lm[:, 54] = torch.tensor([0.62 * s, 0.75 * s], dtype=dtype)
    return lm


# ---------------------------------------------------------------------------- robust likelihood
@pytest.mark.parametrize("factor, inlier", [(0.999, True), (1.001, False)])
def test_robust_inlier_threshold(factor: float, inlier: bool):
    img = _grey(1, 4)
    ren = img.clone()
    # pixel (1, 2): colour difference of norm factor * 3 sigma along (1, 1, 1) / sqrt(3)
    ren[0, :, 1, 2] += factor * 3 * SIGMA / math.sqrt(3)
    m_r = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    z = L.robust_inlier_mask(img, ren, m_r)
    assert bool(z[0, 0, 1, 2]) is inlier
    assert int(z.sum()) == 15 + int(inlier)
    # outside the rendered face nothing is an inlier
    assert L.robust_inlier_mask(img, ren, torch.zeros_like(m_r)).sum() == 0


def test_robust_loss_value_and_sign():
    img = _grey(2, 3)
    ren = img + 0.01
    m_r = torch.ones(2, 1, 3, 3, dtype=torch.float64)
    m_r[1, 0, 0, 0] = 0.0
    c = -1.5 * math.log(2 * math.pi * SIGMA**2)
    ll = -3 * 0.01**2 / (2 * SIGMA**2) + c
    expected = -(17 * ll) / (2 * 9)
    assert torch.isclose(L.robust_loss(img, ren, m_r), torch.tensor(expected, dtype=torch.float64))
    assert L.robust_loss(img, ren, m_r) < 0  # negative by design
    # the outlier level: ll at 3 sigma equals c - 4.5
    ren3 = img.clone()
    ren3[:, 0] += 3 * SIGMA
    assert torch.allclose(L.gaussian_log_likelihood(img, ren3), torch.full((2, 1, 3, 3), c - 4.5, dtype=torch.float64))


# ---------------------------------------------------------------------------- photometric / model terms
def test_masked_pixel_loss_vs_loop():
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 5, 6, generator=gen, dtype=torch.float64)
    ren = torch.rand(2, 3, 5, 6, generator=gen, dtype=torch.float64)
    v = torch.rand(2, 1, 5, 6, generator=gen, dtype=torch.float64)
    num, den = 0.0, 0.0
    for b in range(2):
        for i in range(5):
            for j in range(6):
                d = math.sqrt(sum((img[b, c, i, j].item() - ren[b, c, i, j].item()) ** 2 for c in range(3)))
                num += v[b, 0, i, j].item() * d
                den += v[b, 0, i, j].item()
    assert math.isclose(L.masked_pixel_loss(img, ren, v).item(), num / max(1.0, den), rel_tol=1e-12)
    # tiny masks are normalised by 1, not by their sum
    small = v * 1e-3
    assert math.isclose(L.masked_pixel_loss(img, ren, small).item(), num * 1e-3, rel_tol=1e-12)


def test_landmark_weights_400x():
    pred = torch.zeros(1, 68, 2, dtype=torch.float64)
    t0, t29 = pred.clone(), pred.clone()
    t0[0, 0, 0] = 1.0
    t29[0, 29, 0] = 1.0
    l0, l29 = L.landmark_loss(pred, t0), L.landmark_loss(pred, t29)
    assert math.isclose(l0.item(), 1.0 / (68 * 2))
    assert math.isclose((l29 / l0).item(), 400.0)
    w = L.landmark_weights()
    assert w[[28, 29, 30]].tolist() == [20.0] * 3 and w[60:68].tolist() == [20.0] * 8
    assert w[27] == 1 and w[31] == 1 and w[59] == 1 and w.sum() == 57 + 11 * 20
    # the heavy weight is a parameter: 5 -> 25x, 1 -> all points alike
    assert math.isclose((L.landmark_loss(pred, t29, heavy=5.0) / l0).item(), 25.0)
    assert math.isclose(L.landmark_loss(pred, t29, heavy=1.0).item(), l0.item())
    assert L.landmark_weights(heavy=1.0).sum() == 68


def test_regularization_and_identity():
    layout = CoeffLayout(3, 2, 4)
    x = torch.zeros(2, layout.dim, dtype=torch.float64)
    c = layout.split(x)
    ids, exp, alb = c.id.clone().fill_(1.0), c.exp.clone().fill_(2.0), c.albedo.clone().fill_(0.5)
    coeffs = type(c)(ids, exp, alb, c.angles + 7, c.trans + 7, c.sh + 7)  # pose/light not regularised
    expected = (2 * 3 * 1 + 2 * 2 * 4 + 2 * 4 * 0.25) / (2 * 64)
    assert math.isclose(L.regularization_loss(coeffs, 64).item(), expected)
    e = F.normalize(torch.randn(4, 16, dtype=torch.float64), dim=-1)
    assert torch.isclose(L.identity_loss(e, e), torch.zeros((), dtype=torch.float64), atol=1e-12)
    assert torch.isclose(L.identity_loss(e, -e), torch.full((), 2.0, dtype=torch.float64))


# ---------------------------------------------------------------------------- segmentation terms
def test_area_loss():
    m_r = torch.zeros(2, 1, 4, 4)
    m_r[:, :, 1:3, 1:3] = 1
    assert L.area_loss(m_r, torch.ones_like(m_r)) == 0  # all-face mask
    assert L.area_loss(m_r, torch.zeros_like(m_r)) == 1
    seg = torch.ones_like(m_r)
    seg[0, 0, 1, 1] = 0  # one of 4 face pixels in image 0 marked outlier
    seg[1, 0, 0, 0] = 0  # outside the face: free
    assert math.isclose(L.area_loss(m_r, seg).item(), (0.25 + 0.0) / 2)
    assert L.area_loss(torch.zeros_like(m_r), torch.zeros_like(m_r)) == 0  # no face: normalised by 1


def test_binary_loss():
    v = (torch.rand(2, 1, 6, 6) > 0.5).float()
    assert L.binary_loss(v) == 0
    assert L.binary_loss(torch.full((2, 1, 6, 6), 0.5)) == 0.5
    assert math.isclose(L.binary_loss(torch.full((1, 1, 2, 2), 0.75)).item(), 0.25)


def _neighbour_reference(img, ren, v, window):
    b, _, h, w = img.shape
    r = window // 2
    total = 0.0
    for bi in range(b):
        for i in range(h):
            for j in range(w):
                best = math.inf
                for di in range(-r, r + 1):
                    for dj in range(-r, r + 1):
                        ii, jj = i + di, j + dj
                        if 0 <= ii < h and 0 <= jj < w:
                            d = (
                                (v[bi, :, i, j] * ren[bi, :, i, j] - v[bi, :, ii, jj] * img[bi, :, ii, jj])
                                .norm()
                                .item()
                            )
                            best = min(best, d)
                total += best
    return total / (b * h * w)


def test_neighbour_loss_vs_loop():
    gen = torch.Generator().manual_seed(1)
    img = torch.rand(2, 3, 6, 7, generator=gen, dtype=torch.float64)
    ren = torch.rand(2, 3, 6, 7, generator=gen, dtype=torch.float64)
    v = torch.rand(2, 1, 6, 7, generator=gen, dtype=torch.float64)
    for window in (3, 5):
        assert math.isclose(
            L.neighbour_loss(img, ren, v, window).item(), _neighbour_reference(img, ren, v, window), rel_tol=1e-12
        )


def test_neighbour_loss_tolerates_small_shifts():
    gen = torch.Generator().manual_seed(2)
    s = 20
    ren = torch.zeros(1, 3, s, s, dtype=torch.float64)
    ren[:, :, 4:16, 4:16] = torch.rand(1, 3, 12, 12, generator=gen, dtype=torch.float64) + 0.1  # texture, black border
    v = torch.ones(1, 1, s, s, dtype=torch.float64)
    assert L.neighbour_loss(ren, ren, v) == 0
    for shift in ((1, 0), (0, -1), (1, 1), (2, -2)):
        target = torch.roll(ren, shifts=shift, dims=(2, 3))
        assert L.neighbour_loss(target, ren, v) == 0, shift
    assert L.neighbour_loss(torch.roll(ren, shifts=(3, 0), dims=(2, 3)), ren, v) > 0.01  # beyond the 5x5 window
    # V = 0: nothing to compare
    target = torch.rand(1, 3, s, s, generator=gen, dtype=torch.float64)
    assert L.neighbour_loss(target, ren, torch.zeros_like(v)) == 0
    assert L.neighbour_loss(target, ren, v) > 0


def test_preserve_and_distance_losses():
    pn = _tiny_perceptual(32)
    gen = torch.Generator().manual_seed(3)
    img = torch.rand(2, 3, 40, 40, generator=gen)
    ren = torch.rand(2, 3, 40, 40, generator=gen)
    lm = _landmarks(2, 40, torch.float32)
    m_r = torch.ones(2, 1, 40, 40)
    zero = L.SegmentationLossWeights(bin=0, area=0, nbr=0)
    _, terms = L.segmentation_loss(img, ren, m_r, torch.ones_like(m_r), lm, lm, pn, zero)
    assert terms["presv"].abs() < 1e-6  # all-face mask: I V = I
    assert terms["dist"] > 0.01  # different render
    _, terms = L.segmentation_loss(img, img, m_r, torch.ones_like(m_r), lm, lm, pn, zero)
    assert terms["dist"].abs() < 1e-6  # render == target, same landmarks
    half = torch.ones_like(m_r)
    half[:, :, 20:] = 0
    _, terms = L.segmentation_loss(img, ren, m_r, half, lm, lm, pn, zero)
    assert terms["presv"] > 0.01  # masking away face content changes the features
    f = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    assert torch.isclose(L.preserve_loss(f, 2 * f), torch.zeros((), dtype=torch.float64), atol=1e-12)
    assert torch.isclose(L.distance_loss(f, -f), torch.full((), 2.0, dtype=torch.float64))


def test_bce_matches_torch():
    gen = torch.Generator().manual_seed(4)
    p = torch.rand(2, 1, 5, 5, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    t = (torch.rand(2, 1, 5, 5, generator=gen, dtype=torch.float64) > 0.5).double()
    assert torch.isclose(L.bce_loss(p, t), F.binary_cross_entropy(p, t), rtol=1e-12)
    soft = torch.rand(2, 1, 5, 5, generator=gen, dtype=torch.float64)
    assert torch.isclose(L.bce_loss(p, soft), F.binary_cross_entropy(p, soft), rtol=1e-12)
    # saturated outputs stay finite
    assert torch.isfinite(L.bce_loss(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])))


# ---------------------------------------------------------------------------- gradients
def test_gradcheck_smooth_losses():
    gen = torch.Generator().manual_seed(5)
    dt = torch.float64

    def r(*shape):
        return torch.rand(*shape, generator=gen, dtype=dt)

    img = r(2, 3, 4, 4)
    ren = (img + (r(2, 3, 4, 4) - 0.5) * 0.3).requires_grad_(True)  # inliers and outliers, none at 3 sigma
    m_r = (r(2, 1, 4, 4) > 0.3).double()
    assert 0 < L.robust_inlier_mask(img, ren, m_r).sum() < m_r.sum()
    gc = torch.autograd.gradcheck
    assert gc(lambda x: L.robust_loss(img, x, m_r), (ren,))
    seg = (r(2, 1, 4, 4) * 0.8 + 0.1).requires_grad_(True)
    assert gc(lambda x, s: L.masked_pixel_loss(img, x, m_r * s), (ren, seg))
    assert gc(lambda s: L.area_loss(m_r, s), (seg,))
    assert gc(lambda s: L.bce_loss(s, m_r), (seg,))
    assert gc(lambda s: L.binary_loss(m_r * s), (seg,))  # |V - 0.5| is smooth away from 0.5
    lm_target = r(2, 68, 2) * 50
    lm = (lm_target + r(2, 68, 2) * 3).requires_grad_(True)
    assert gc(lambda x: L.landmark_loss(x, lm_target), (lm,))
    layout = CoeffLayout(3, 2, 4)
    vec = r(2, layout.dim).requires_grad_(True)
    assert gc(lambda x: L.regularization_loss(layout.split(x), 16), (vec,))
    e1, e2 = r(3, 8).requires_grad_(True), r(3, 8)
    assert gc(lambda x: L.identity_loss(x, e2), (e1,))
    f1, f2 = r(2, 4, 3, 3).requires_grad_(True), r(2, 4, 3, 3)
    assert gc(lambda x: L.preserve_loss(f2, x), (f1,))
    assert gc(lambda x: L.distance_loss(x, f2), (f1,))


# ---------------------------------------------------------------------------- combinations
def test_default_weights_are_method_md():
    assert L.InitLossWeights() == L.InitLossWeights(rob=0.5, id=0.25, lm=5e-4, reg=0.1, sigma=0.043, threshold=3.0)
    assert L.ReconstructionLossWeights() == L.ReconstructionLossWeights(pix=0.5, id=0.25, reg=0.1, lm=5e-4, area=0.06)
    assert L.SegmentationLossWeights() == L.SegmentationLossWeights(
        bin=10, area=0.5, presv=0.25, dist=3, nbr=15, window=5
    )


def test_combined_losses_are_weighted_sums():
    pn = _tiny_perceptual(32)
    gen = torch.Generator().manual_seed(6)
    s = 40
    img = torch.rand(2, 3, s, s, generator=gen)
    ren = (img + 0.2 * torch.rand(2, 3, s, s, generator=gen)).requires_grad_(True)
    m_r = torch.zeros(2, 1, s, s)
    m_r[:, :, 8:32, 8:32] = 1
    seg = torch.rand(2, 1, s, s, generator=gen).requires_grad_(True)
    lm = _landmarks(2, s, torch.float32)
    lm_hat = (lm + torch.randn(2, 68, 2, generator=gen)).requires_grad_(True)
    layout = CoeffLayout(4, 3, 4)
    coeffs = layout.split(torch.randn(2, layout.dim, generator=gen))

    total, t = L.init_loss(img, ren, m_r, lm, lm_hat, coeffs, pn)
    assert set(t) == {"rob", "id", "lm", "reg", "total"}
    assert torch.isclose(total, 0.5 * t["rob"] + 0.25 * t["id"] + 5e-4 * t["lm"] + 0.1 * t["reg"])
    total.backward()
    assert ren.grad.abs().sum() > 0 and lm_hat.grad.abs().sum() > 0

    total, t = L.reconstruction_loss(img, ren, m_r, seg, lm, lm_hat, coeffs, pn)
    assert set(t) == {"pix", "id", "reg", "lm", "area", "total"}
    assert torch.isclose(total, 0.5 * t["pix"] + 0.25 * t["id"] + 0.1 * t["reg"] + 5e-4 * t["lm"] + 0.06 * t["area"])
    assert torch.isclose(t["pix"], L.masked_pixel_loss(img, ren, m_r * seg))

    seg.grad = None
    total, t = L.segmentation_loss(img, ren.detach(), m_r, seg, lm, lm_hat.detach(), pn)
    assert set(t) == {"bin", "area", "presv", "dist", "nbr", "total"}
    expected = 10 * t["bin"] + 0.5 * t["area"] + 0.25 * t["presv"] + 3 * t["dist"] + 15 * t["nbr"]
    assert torch.isclose(total, expected)
    total.backward()
    assert seg.grad.abs().sum() > 0

    # without a perceptual network the identity / feature terms are left out
    _, t = L.init_loss(img, ren, m_r, lm, lm_hat, coeffs, None)
    assert "id" not in t
    _, t = L.segmentation_loss(img, ren, m_r, seg, lm, lm_hat, None)
    assert "presv" not in t and "dist" not in t
