"""Test-time adaptation: the FOCUS EM, unsupervised, on the photos being reconstructed (docs/method.md 4).

The trained networks have seen the training domain only (for the CPU default: synthetic faces).
On other photos the fit is coarse and the U-Net, which compares the render with the photo, has
never seen such residuals. Test-time adaptation runs the same EM as training -- segmentation
steps (``L_S``, encoder frozen) alternating with reconstruction steps (``L_E``, U-Net frozen) --
on copies of the networks, on the aligned crops of one batch of faces, with no labels: the
landmarks come from the detector (the 5 alignment points when it gives no 68), the rest from
the photos themselves. The loaded model is left unchanged; every batch starts from it.

Both networks run with frozen BatchNorm statistics (eval mode, weights trained), as in the CPU
default's EM (``em.freeze_batchnorm``): a batch of a few photos gives no usable statistics.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor

from focus import losses as L
from focus.config import check_fields, param
from focus.nets.face_align import detector_five_points
from focus.predictor import encode_render, segment
from focus.train.settings import EMSettings, OptimSettings
from focus.train.trainer import build_optimizer

#: Weights of the five alignment points in the landmark term when the detector gives no 68:
#: eye centres, nose tip, mouth corners; the nose tip carries the heavy weight of ``L_lm``'s point 30.
FIVE_POINT_WEIGHTS = (1.0, 1.0, L.LANDMARK_HEAVY_WEIGHT, 1.0, 1.0)


#: A segmentation phase that leaves less than this share of the rendered face marked as face has
#: collapsed to the trivial "no face" mask (a few photos and a few dozen steps at a high learning
#: rate can do that); the U-Net is then restored to its state before the phase and not adapted
#: further (docs/method.md 3.5).
MIN_FACE_SHARE = 0.05


def face_share(seg: Tensor, render_mask: Tensor) -> float:
    """Share of the rendered face marked as face: ``sum(M m_r) / sum(m_r)`` over the batch (``(B, 1, S, S)`` each)."""
    return float((seg * render_mask).sum() / render_mask.sum().clamp_min(1e-8))


def default_adapt_em() -> EMSettings:
    """The CPU default's EM weights with the U-Net's learning rate raised to 1e-3 for the shorter
    rounds of the adaptation (docs/method.md 3.5)."""
    return EMSettings(unet_optim=OptimSettings(name="adam", lr=1e-3))


@dataclass(frozen=True)
class AdaptSettings:
    """Test-time adaptation (``focus reconstruct --adapt``).

    Attributes:
        rounds: EM rounds per batch of faces (0: no adaptation).
        seg_steps: U-Net steps per round (``L_S``, encoder frozen).
        rec_steps: encoder steps per round (``L_E``, U-Net frozen).
        em: loss weights and optimisers (the training's EM settings, ``em`` in ``params.yaml``;
            its ``rounds``, steps and learning-rate decay are not used here). Default:
            :func:`default_adapt_em`.

    Both networks train in eval mode (no dropout, frozen BatchNorm), so the adaptation draws no
    random numbers: the same faces give the same result.
    """

    rounds: int = param(0, ge=0)
    seg_steps: int = param(60, ge=0)
    rec_steps: int = param(60, ge=0)
    em: EMSettings = field(default_factory=default_adapt_em)

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def enabled(self) -> bool:
        return self.rounds > 0 and (self.seg_steps > 0 or self.rec_steps > 0)


def five_point_loss(pred68: Tensor, target5: Tensor) -> Tensor:
    """``mean_{b,k,xy} (w_k (p_k - p_hat_k))^2`` over the 5 alignment points.

    Args:
        pred68: projected model landmarks ``(B, 68, 2)``, crop pixels.
        target5: detected points ``(B, 5, 2)``, crop pixels (order of :func:`detector_five_points`).
    """
    w = torch.tensor(FIVE_POINT_WEIGHTS, dtype=pred68.dtype, device=pred68.device)[None, :, None]
    return ((w * (target5 - detector_five_points(pred68))) ** 2).mean()


def _targets(landmarks: Tensor | None, points5: Tensor, pred68: Tensor) -> Tensor:
    """68 landmarks whose :func:`detector_five_points` are the detector's: the given 68 when there are, else
    the model's own landmarks moved so that their eye centres, nose tip and mouth corners sit on the
    detected points (used for the perceptual crops of ``L_S`` and ``L_id`` only)."""
    if landmarks is not None:
        return landmarks
    out = pred68.detach().clone()
    p5 = detector_five_points(out)
    out[:, 36:42] += (points5[:, 0] - p5[:, 0])[:, None]
    out[:, 42:48] += (points5[:, 1] - p5[:, 1])[:, None]
    out[:, 30] = points5[:, 2]
    out[:, 48] = points5[:, 3]
    out[:, 54] = points5[:, 4]
    return out


def _freeze(net: torch.nn.Module, trainable: bool) -> None:
    net.eval()
    for p in net.parameters():
        p.requires_grad_(trainable)


def _step(opt: torch.optim.Optimizer, loss: Tensor, progress) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if progress is not None:
        progress(1)


def adapt_networks(
    encoder: torch.nn.Module,
    unet: torch.nn.Module,
    renderer,
    perceptual,
    images: Tensor,
    points5: Tensor,
    landmarks68: Tensor | None,
    settings: AdaptSettings,
    progress=None,
) -> tuple[torch.nn.Module, torch.nn.Module, list[dict[str, float]]]:
    """EM on one batch of aligned crops; returns adapted copies ``(encoder, unet, log)``.

    Args:
        encoder, unet: the trained networks (not modified).
        renderer: the :class:`focus.render.FaceRenderer` at the crop size.
        perceptual: the frozen face-recognition network, or ``None`` (then ``L_id``, ``L_presv``
            and ``L_dist`` are left out).
        images: crops ``(B, 3, S, S)`` in [0, 1].
        points5: the detector's 5 points in the crops ``(B, 5, 2)``, px.
        landmarks68: 68 landmarks in the crops ``(B, 68, 2)`` when every face has them, else ``None``
            (the landmark term then uses the 5 points).
        settings: :class:`AdaptSettings`.
        progress: optional callable ``(n_steps) -> None`` called after every step.

    Returns the copies (eval mode, no gradients) and one dict of loss terms per round and phase.
    A segmentation phase that collapses to the "no face" mask (:data:`MIN_FACE_SHARE`) is undone:
    the U-Net goes back to its state before the phase, is not adapted further, and the phase's log
    entry says ``collapsed: 1``.
    """
    enc = copy.deepcopy(encoder)
    seg_net = copy.deepcopy(unet)
    em = settings.em
    rec_w = em.rec_weights if landmarks68 is not None else _without_lm(em.rec_weights)
    opt_e = build_optimizer(enc.parameters(), em.encoder_optim)
    opt_u = build_optimizer(seg_net.parameters(), em.unet_optim)
    log: list[dict[str, float]] = []
    adapt_unet = True
    try:
        for r in range(settings.rounds):
            _freeze(enc, False)
            _freeze(seg_net, True)
            with torch.no_grad():
                out = encode_render(enc, renderer, images)[1]
            lms = _targets(landmarks68, points5, out.landmarks)
            terms = {}
            before = copy.deepcopy(seg_net.state_dict()) if adapt_unet else None
            for _ in range(settings.seg_steps if adapt_unet else 0):
                seg = segment(seg_net, out.image, images)
                loss, terms = L.segmentation_loss(
                    images, out.image, out.mask, seg, lms, out.landmarks, perceptual, em.seg_weights
                )
                _step(opt_u, loss, progress)
            collapsed = False
            if not adapt_unet:  # undone in an earlier round: the U-Net is no longer adapted
                if progress is not None:
                    progress(settings.seg_steps)  # the skipped steps
            elif settings.seg_steps > 0:
                with torch.no_grad():
                    collapsed = face_share(segment(seg_net, out.image, images), out.mask) < MIN_FACE_SHARE
                if collapsed:
                    seg_net.load_state_dict(before)
                    adapt_unet = False
            log.append(
                {
                    "round": r + 1,
                    "phase": "seg",
                    **{k: float(v) for k, v in terms.items()},
                    "collapsed": float(collapsed),
                }
            )
            _freeze(seg_net, False)
            _freeze(enc, True)
            for _ in range(settings.rec_steps):
                coeffs, out = encode_render(enc, renderer, images)
                lms = _targets(landmarks68, points5, out.landmarks)
                seg = (
                    segment(seg_net, out.image, images)
                    if em.grad_through_unet
                    else segment(seg_net, out.image.detach(), images).detach()
                )
                loss, terms = L.reconstruction_loss(
                    images, out.image, out.mask, seg, lms, out.landmarks, coeffs, perceptual, rec_w
                )
                if landmarks68 is None:  # the 68-point term was weighted 0: the 5 points instead
                    lm5 = five_point_loss(out.landmarks, points5)
                    loss = loss + em.rec_weights.lm * lm5
                    terms = {
                        **{k: v for k, v in terms.items() if k not in ("lm", "total")},
                        "lm5": lm5.detach(),
                        "total": loss.detach(),
                    }
                _step(opt_e, loss, progress)
            log.append({"round": r + 1, "phase": "rec", **{k: float(v) for k, v in terms.items()}})
    finally:
        _freeze(enc, False)
        _freeze(seg_net, False)
    return enc, seg_net, log


def _without_lm(w: L.ReconstructionLossWeights) -> L.ReconstructionLossWeights:
    from dataclasses import replace

    return replace(w, lm=0.0)


__all__ = [
    "AdaptSettings",
    "FIVE_POINT_WEIGHTS",
    "MIN_FACE_SHARE",
    "adapt_networks",
    "default_adapt_em",
    "face_share",
    "five_point_loss",
]
