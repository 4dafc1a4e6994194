"""The losses of FOCUS, one small function per term, and the per-phase combinations (docs/method.md, section 3).

Conventions: images ``I`` (target) and ``R`` (render on black) are ``(B, 3, H, W)`` RGB in [0, 1]
(``S = H = W`` in the formulas; ``H * W`` is used for ``S^2``); masks are ``(B, 1, H, W)``:
``m_r`` the render coverage (no gradient), ``M`` the U-Net output (1 = face / inlier), ``V = m_r M``
the effective face mask. Landmarks are ``(B, 68, 2)`` image-frame pixels. Every term is a scalar
tensor.

Phases and their default weights (the authors' latest public settings, all parameters):

* initialisation  ``L_init = 0.5 L_rob + 0.25 L_id + 5e-4 L_lm + 0.1 L_reg``  (:func:`init_loss`)
* U-Net pre-training  plain BCE against the pseudo masks ``z`` (:func:`bce_loss`, :func:`robust_inlier_mask`)
* reconstruction  ``L_E = 0.5 L_pix + 0.25 L_id + 0.1 L_reg + 5e-4 L_lm + 0.06 L_area``  (:func:`reconstruction_loss`)
* segmentation  ``L_S = 10 L_bin + 0.5 L_area + 0.25 L_presv + 3 L_dist + 15 L_nbr``  (:func:`segmentation_loss`)

Crops for the face-recognition network (``phi_deep``, ``phi_sh``): anything made from the target
(``I``, ``I V``) is aligned with the given landmarks ``l``, anything made from the render (``R``,
``R V``) with the projected model landmarks ``l_hat`` (docs/method.md, section 2); masking is applied
in the image frame before cropping, so masked pixels are black (-1) in the crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from focus.coeffs import Coeffs
from focus.config import nonnegative, param, positive

#: Pixel noise of the photometric likelihood (Egger et al.; docs/method.md 3.1).
ROBUST_SIGMA = 0.043
#: The constant outlier likelihood sits where the Gaussian is at this many sigmas.
ROBUST_THRESHOLD = 3.0
#: 0-based iBUG-68 indices weighted 20 in L_lm: nose points 28-30 and the inner mouth 60-67.
LANDMARK_HEAVY = (28, 29, 30, 60, 61, 62, 63, 64, 65, 66, 67)
LANDMARK_HEAVY_WEIGHT = 20.0


# ---------------------------------------------------------------------------- photometric terms
def _rgb_dist(a: Tensor, b: Tensor) -> Tensor:
    """``||a(p) - b(p)||_2`` over channels: ``(B, C, H, W)`` x 2 -> ``(B, 1, H, W)`` (gradient 0 at 0).

    Written as ``sqrt(sum of squares)`` with the square root taken only where the sum is positive
    (faster on the CPU than ``torch.linalg.vector_norm`` over the channel dimension of an NCHW
    tensor, and :func:`neighbour_loss` calls this ``window**2`` times per step); the value is the same and
    the gradient at a zero difference is 0, as ``vector_norm``'s subgradient.
    """
    sq = ((a - b) ** 2).sum(dim=1, keepdim=True)
    return torch.where(sq > 0, sq.clamp_min(1e-30).sqrt(), torch.zeros_like(sq))


def gaussian_log_likelihood(image: Tensor, render: Tensor, sigma: float = ROBUST_SIGMA) -> Tensor:
    """Per-pixel ``ll(p) = -||I - R||^2 / (2 sigma^2) + c`` ``(B, 1, H, W)``.

    ``c = -(C / 2) log(2 pi sigma^2)`` is the log-normaliser of the isotropic Gaussian over the
    ``C`` (= 3) colour channels.
    """
    c = -0.5 * image.shape[1] * math.log(2.0 * math.pi * sigma**2)
    return -((image - render) ** 2).sum(dim=1, keepdim=True) / (2.0 * sigma**2) + c


@torch.no_grad()
def robust_inlier_mask(
    image: Tensor, render: Tensor, render_mask: Tensor, sigma: float = ROBUST_SIGMA, threshold: float = ROBUST_THRESHOLD
) -> Tensor:
    """The outlier process' hard inlier label ``z(p) = m_r(p) [ll(p) > ll_outlier]`` ``(B, 1, H, W)``.

    ``ll_outlier`` is the Gaussian's log-likelihood at ``||I - R|| = threshold * sigma``, so
    ``z(p) = m_r(p) [||I(p) - R(p)||_2 < threshold * sigma]`` (strict). No gradient. With the
    initialised encoder these are the pseudo masks of the U-Net pre-training (docs/method.md 3.2).
    """
    inside = _rgb_dist(image, render) < threshold * sigma
    return render_mask * inside.to(render_mask.dtype)


def robust_loss(
    image: Tensor, render: Tensor, render_mask: Tensor, sigma: float = ROBUST_SIGMA, threshold: float = ROBUST_THRESHOLD
) -> Tensor:
    """``L_rob = -(1 / (B S^2)) sum_b sum_p z(p) ll(p)``, with ``z`` from :func:`robust_inlier_mask`.

    Negative by design (an inlier's ``ll`` is above the outlier level, which is positive for
    ``sigma = 0.043``). Gradient only through ``ll`` (``z`` is hard and constant).
    """
    z = robust_inlier_mask(image, render, render_mask, sigma, threshold)
    ll = gaussian_log_likelihood(image, render, sigma)
    b, _, h, w = image.shape
    return -(z * ll).sum() / (b * h * w)


def masked_pixel_loss(image: Tensor, render: Tensor, face_mask: Tensor) -> Tensor:
    """``L_pix = sum_{b,p} V(p) ||I(p) - R(p)||_2 / max(1, sum_{b,p} V(p))`` (L2 over RGB, not squared).

    ``face_mask`` is ``V = m_r M`` ``(B, 1, H, W)``.
    """
    return (face_mask * _rgb_dist(image, render)).sum() / face_mask.sum().clamp_min(1.0)


# ---------------------------------------------------------------------------- model terms
def identity_loss(emb_render: Tensor, emb_target: Tensor) -> Tensor:
    """``L_id = mean_b (1 - <phi_deep(R_b), phi_deep(I_b)>)`` for embeddings ``(B, D)``.

    The embeddings are (re-)normalised here, so un-normalised inputs give the cosine distance.
    """
    return (1.0 - (F.normalize(emb_render, dim=-1) * F.normalize(emb_target, dim=-1)).sum(dim=-1)).mean()


def landmark_weights(
    n: int = 68, dtype: torch.dtype = torch.float32, device=None, heavy: float = LANDMARK_HEAVY_WEIGHT
) -> Tensor:
    """Per-landmark weights ``w_k`` ``(68,)``: ``heavy`` (published: 20) at :data:`LANDMARK_HEAVY`, else 1."""
    w = torch.ones(n, dtype=dtype, device=device)
    w[list(LANDMARK_HEAVY)] = heavy
    return w


def landmark_loss(pred: Tensor, target: Tensor, heavy: float = LANDMARK_HEAVY_WEIGHT) -> Tensor:
    """``L_lm = mean_{b,k,xy} (w_k (l - l_hat))^2`` (weight applied before squaring).

    Args:
        pred: ``l_hat`` ``(B, 68, 2)`` projected model landmarks, px.
        target: ``l`` ``(B, 68, 2)`` given landmarks, px.
        heavy: ``w_k`` of the nose and inner-mouth points (:data:`LANDMARK_HEAVY`), 1 elsewhere.
    """
    w = landmark_weights(pred.shape[1], pred.dtype, pred.device, heavy)[None, :, None]
    return ((w * (target - pred)) ** 2).mean()


def regularization_loss(coeffs: Coeffs, image_size: int) -> Tensor:
    """``L_reg = (||alpha||^2 + ||beta||^2 + ||delta||^2) / (B S)``: identity, expression, albedo."""
    b = coeffs.id.shape[0]
    return ((coeffs.id**2).sum() + (coeffs.exp**2).sum() + (coeffs.albedo**2).sum()) / (b * image_size)


# ---------------------------------------------------------------------------- segmentation terms
def area_loss(render_mask: Tensor, seg_mask: Tensor) -> Tensor:
    """``L_area = mean_b [ sum_p m_r (1 - M) / max(1, sum_p m_r) ]``: face marked as outlier."""
    num = (render_mask * (1.0 - seg_mask)).sum(dim=(1, 2, 3))
    return (num / render_mask.sum(dim=(1, 2, 3)).clamp_min(1.0)).mean()


def binary_loss(face_mask: Tensor) -> Tensor:
    """``L_bin = 0.5 - mean_{b,p} |V(p) - 0.5|``: 0 for a binary ``V``, 0.5 for ``V = 0.5``."""
    return 0.5 - (face_mask - 0.5).abs().mean()


def feature_cosine_loss(feat_a: Tensor, feat_b: Tensor) -> Tensor:
    """``mean_{b,loc} [1 - cos_c(a, b)]``: cosine over channels at each location of ``(B, C, h, w)`` maps."""
    return (1.0 - F.cosine_similarity(feat_a, feat_b, dim=1, eps=1e-8)).mean()


def preserve_loss(feat_target: Tensor, feat_masked_target: Tensor) -> Tensor:
    """``L_presv = mean [1 - cos_c(phi_sh(I), phi_sh(I V))]`` from the two early feature maps."""
    return feature_cosine_loss(feat_target, feat_masked_target)


def distance_loss(feat_masked_render: Tensor, feat_masked_target: Tensor) -> Tensor:
    """``L_dist = mean [1 - cos_c(phi_sh(R V), phi_sh(I V))]`` from the two early feature maps."""
    return feature_cosine_loss(feat_masked_render, feat_masked_target)


def neighbour_loss(image: Tensor, render: Tensor, face_mask: Tensor, window: int = 5) -> Tensor:
    """``L_nbr = mean_{b,p} min_{d in window x window} ||V(p) R(p) - V(p+d) I(p+d)||_2``.

    Boundary handling (docs/method.md is silent): offsets ``d`` that leave the image are not
    candidates; the minimum runs over the neighbours inside the image (``d = 0`` always is).
    Vectorised over pixels with a padded copy of ``V I`` and one shifted view per offset.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"neighbour window must be odd and positive, got {window}")
    r = window // 2
    b, _, h, w = image.shape
    vr = face_mask * render
    vi = F.pad(face_mask * image, (r, r, r, r))
    valid = F.pad(torch.ones(1, 1, h, w, dtype=torch.bool, device=image.device), (r, r, r, r))
    dists = []
    for dy in range(window):
        for dx in range(window):
            d = _rgb_dist(vr, vi[:, :, dy : dy + h, dx : dx + w])
            dists.append(d.masked_fill(~valid[:, :, dy : dy + h, dx : dx + w], math.inf))
    return torch.cat(dists, dim=1).amin(dim=1).mean()


def bce_loss(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """``-mean [t log p + (1 - t) log(1 - p)]`` on the U-Net's sigmoid output ``p`` (clamped to ``[eps, 1-eps]``).

    The U-Net pre-training loss against the pseudo masks (docs/method.md 3.2): plain BCE on the
    probability, not BCE-with-logits on it.
    """
    p = pred.clamp(eps, 1.0 - eps)
    return -(target * torch.log(p) + (1.0 - target) * torch.log1p(-p)).mean()


# ---------------------------------------------------------------------------- phase weights
@dataclass(frozen=True)
class InitLossWeights:
    """Weights of ``L_init`` (docs/method.md 3.1) and the robust likelihood's constants; ``lm_heavy``
    is ``L_lm``'s ``w_k`` of the nose and inner-mouth points (published: 20)."""

    rob: float = nonnegative(0.5)
    id: float = nonnegative(0.25)
    lm: float = nonnegative(5e-4)
    reg: float = nonnegative(0.1)
    sigma: float = positive(ROBUST_SIGMA)
    threshold: float = positive(ROBUST_THRESHOLD)
    lm_heavy: float = nonnegative(LANDMARK_HEAVY_WEIGHT)


@dataclass(frozen=True)
class ReconstructionLossWeights:
    """Weights of ``L_E`` (docs/method.md 3.3); ``lm_heavy`` is ``L_lm``'s ``w_k`` of the heavy points."""

    pix: float = nonnegative(0.5)
    id: float = nonnegative(0.25)
    reg: float = nonnegative(0.1)
    lm: float = nonnegative(5e-4)
    area: float = nonnegative(0.06)
    lm_heavy: float = nonnegative(LANDMARK_HEAVY_WEIGHT)


@dataclass(frozen=True)
class SegmentationLossWeights:
    """Weights of ``L_S`` (docs/method.md 3.4) and the neighbour window."""

    bin: float = nonnegative(10.0)
    area: float = nonnegative(0.5)
    presv: float = nonnegative(0.25)
    dist: float = nonnegative(3.0)
    nbr: float = nonnegative(15.0)
    window: int = param(5, choices=(1, 3, 5, 7, 9, 11))


def _combine(terms: dict[str, Tensor], weights: dict[str, float], like: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    total = like.new_zeros(())
    for name, value in terms.items():
        total = total + weights[name] * value
    logged = {name: value.detach() for name, value in terms.items()}
    logged["total"] = total.detach()
    return total, logged


def _identity_term(perceptual, image: Tensor, render: Tensor, landmarks: Tensor, pred_landmarks: Tensor) -> Tensor:
    """``L_id`` with ``I`` cropped at ``l`` and ``R`` (on black) at ``l_hat``."""
    emb_i = perceptual.embed(perceptual.crop(image, landmarks))
    emb_r = perceptual.embed(perceptual.crop(render, pred_landmarks))
    return identity_loss(emb_r, emb_i)


def init_loss(
    image: Tensor,
    render: Tensor,
    render_mask: Tensor,
    landmarks: Tensor,
    pred_landmarks: Tensor,
    coeffs: Coeffs,
    perceptual=None,
    weights: InitLossWeights = InitLossWeights(),
) -> tuple[Tensor, dict[str, Tensor]]:
    """``L_init = w_rob L_rob + w_id L_id + w_lm L_lm + w_reg L_reg`` (docs/method.md 3.1).

    Args:
        image, render: ``(B, 3, H, W)`` target and render on black, [0, 1].
        render_mask: ``m_r`` ``(B, 1, H, W)``.
        landmarks, pred_landmarks: ``l`` and ``l_hat`` ``(B, 68, 2)`` px.
        coeffs: the predicted :class:`Coeffs`.
        perceptual: a :class:`focus.nets.perceptual.PerceptualNet`; ``None`` leaves ``L_id`` out
            (as does ``weights.id == 0``).

    Returns ``(total, terms)``: ``terms`` holds the unweighted terms and ``"total"``, detached.
    """
    terms = {
        "rob": robust_loss(image, render, render_mask, weights.sigma, weights.threshold),
        "lm": landmark_loss(pred_landmarks, landmarks, weights.lm_heavy),
        "reg": regularization_loss(coeffs, image.shape[-1]),
    }
    if perceptual is not None and weights.id != 0:
        terms["id"] = _identity_term(perceptual, image, render, landmarks, pred_landmarks)
    w = {"rob": weights.rob, "id": weights.id, "lm": weights.lm, "reg": weights.reg}
    return _combine(terms, w, image)


def reconstruction_loss(
    image: Tensor,
    render: Tensor,
    render_mask: Tensor,
    seg_mask: Tensor,
    landmarks: Tensor,
    pred_landmarks: Tensor,
    coeffs: Coeffs,
    perceptual=None,
    weights: ReconstructionLossWeights = ReconstructionLossWeights(),
) -> tuple[Tensor, dict[str, Tensor]]:
    """``L_E = w_pix L_pix + w_id L_id + w_reg L_reg + w_lm L_lm + w_area L_area`` (docs/method.md 3.3).

    ``seg_mask`` is the (frozen, eval-mode) U-Net's ``M`` for this render; whether gradients reach
    the encoder through it (the U-Net's input) is decided by the caller. ``V = m_r M``. Other
    arguments as in :func:`init_loss`.
    """
    face_mask = render_mask * seg_mask
    terms = {
        "pix": masked_pixel_loss(image, render, face_mask),
        "reg": regularization_loss(coeffs, image.shape[-1]),
        "lm": landmark_loss(pred_landmarks, landmarks, weights.lm_heavy),
        "area": area_loss(render_mask, seg_mask),
    }
    if perceptual is not None and weights.id != 0:
        terms["id"] = _identity_term(perceptual, image, render, landmarks, pred_landmarks)
    w = {"pix": weights.pix, "id": weights.id, "reg": weights.reg, "lm": weights.lm, "area": weights.area}
    return _combine(terms, w, image)


def segmentation_loss(
    image: Tensor,
    render: Tensor,
    render_mask: Tensor,
    seg_mask: Tensor,
    landmarks: Tensor,
    pred_landmarks: Tensor,
    perceptual=None,
    weights: SegmentationLossWeights = SegmentationLossWeights(),
) -> tuple[Tensor, dict[str, Tensor]]:
    """``L_S = w_bin L_bin + w_area L_area + w_presv L_presv + w_dist L_dist + w_nbr L_nbr`` (docs/method.md 3.4).

    ``seg_mask`` is the U-Net's ``M`` (the trained quantity); ``render`` and ``render_mask`` come
    from the frozen encoder. ``L_presv`` and ``L_dist`` need ``perceptual`` (``None`` leaves them
    out): ``phi_sh(I)`` and ``phi_sh(I V)`` on crops at ``l``, ``phi_sh(R V)`` on a crop at ``l_hat``.
    A term whose weight is 0 is not computed and not in ``terms`` (the ablations: ``nbr: 0``
    without ``L_nbr``; ``presv: 0, dist: 0`` without the perceptual terms).
    """
    face_mask = render_mask * seg_mask
    terms = {
        "bin": binary_loss(face_mask),
        "area": area_loss(render_mask, seg_mask),
    }
    if weights.nbr != 0:  # the ablation without L_nbr: not computed (window x window shifted copies)
        terms["nbr"] = neighbour_loss(image, render, face_mask, weights.window)
    if perceptual is not None and (weights.presv != 0 or weights.dist != 0):
        from focus.nets.face_align import arcface_template, detector_five_points, estimate_similarity, warp_affine

        size = perceptual.input_size
        tmpl = arcface_template(size, dtype=landmarks.dtype, device=landmarks.device)
        m_target = estimate_similarity(detector_five_points(landmarks.detach()), tmpl)
        m_render = estimate_similarity(detector_five_points(pred_landmarks.detach()), tmpl)
        # one warp for I and I V (same transform): stack along the batch
        crops = warp_affine(torch.cat([image, face_mask * image]), torch.cat([m_target, m_target]), size) * 2 - 1
        feats = perceptual.early_features(crops)
        f_i, f_iv = feats.chunk(2)
        f_rv = perceptual.early_features(warp_affine(face_mask * render, m_render, size) * 2 - 1)
        if weights.presv != 0:
            terms["presv"] = preserve_loss(f_i, f_iv)
        if weights.dist != 0:
            terms["dist"] = distance_loss(f_rv, f_iv)
    w = {"bin": weights.bin, "area": weights.area, "presv": weights.presv, "dist": weights.dist, "nbr": weights.nbr}
    return _combine(terms, w, image)
