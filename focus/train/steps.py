"""The objective of one training step of each FOCUS phase, on one batch (docs/method.md, section 3).

Every function takes the networks explicitly and returns ``(loss, terms)`` where ``terms`` holds
the unweighted loss terms (and ``"total"``), detached, for logging. Which networks are trained
or frozen (``requires_grad``, train / eval mode) is the caller's business
(:mod:`focus.train.trainer`); these functions only decide where gradients may flow:

* :func:`init_objective` -- ``L_init`` of the encoder (robust likelihood, ``L_id``, ``L_lm``, ``L_reg``).
* the forward pass is :mod:`focus.predictor`'s (:func:`focus.predictor.encode_render`, and
  :func:`focus.predictor.segment`: the U-Net on the render clamped to [0, 1]), the same as every
  inference path uses.
* :func:`pretrain_seg_objective` -- BCE of the U-Net against the pseudo masks; the render comes
  from the frozen initialised encoder (no gradient).
* :func:`segmentation_objective` -- ``L_S`` of the U-Net; render from the frozen encoder (no gradient).
* :func:`reconstruction_objective` -- ``L_E`` of the encoder; ``M = S(R, I)`` from the current
  render, with gradients reaching the encoder through the U-Net's input when
  ``grad_through_unet`` (as in the authors' code), else ``M`` is detached.
* :func:`pseudo_reconstruction_objective` -- ``L_E`` with the fixed pseudo masks ``z(p)`` of the
  initialised encoder as ``M`` (the ablation without EM, ``em.masks: pseudo``).

Batches are dicts as :class:`focus.data.FaceImageFolder` yields them: ``image`` ``(B, 3, S, S)``
in [0, 1], ``landmarks`` ``(B, 68, 2)`` crop pixels; pre-training batches also hold
``pseudo_mask`` ``(B, 1, S, S)``.

Every objective takes ``precision`` (``"float32"`` or ``"bf16"``) and ``channels_last`` (the
``train`` settings of the same names): with ``"bf16"`` the networks (encoder, U-Net, identity
network) run under bfloat16 autocast and return float32, while the renderer and the losses run
with autocast off, in float32 (:mod:`focus.precision`). The defaults call the networks unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from focus import losses as L
from focus.precision import float32_region, network_call, perceptual_call
from focus.predictor import encode_render, segment
from focus.render.renderer import FaceRenderer, RenderOutput


def _encode_render(encoder: nn.Module, renderer: FaceRenderer, image: Tensor, precision: str, channels_last: bool):
    """:func:`focus.predictor.encode_render` with the encoder under ``precision`` and the renderer in float32."""
    with float32_region(image.device.type):
        return encode_render(network_call(encoder, precision, channels_last), renderer, image)


def _segment(unet: nn.Module, render: Tensor, image: Tensor, precision: str, channels_last: bool) -> Tensor:
    """:func:`focus.predictor.segment` with the U-Net under ``precision`` (mask returned as float32)."""
    with float32_region(image.device.type):
        return segment(network_call(unet, precision, channels_last), render, image)


def init_objective(
    encoder: nn.Module,
    renderer: FaceRenderer,
    perceptual: nn.Module | None,
    batch: dict,
    weights: L.InitLossWeights,
    precision: str = "float32",
    channels_last: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``L_init`` on one batch (docs/method.md 3.1)."""
    image, lms = batch["image"], batch["landmarks"]
    coeffs, out = _encode_render(encoder, renderer, image, precision, channels_last)
    per = perceptual_call(perceptual, precision, channels_last)
    with float32_region(image.device.type):
        return L.init_loss(image, out.image, out.mask, lms, out.landmarks, coeffs, per, weights)


@torch.no_grad()
def frozen_render(
    encoder: nn.Module, renderer: FaceRenderer, image: Tensor, precision: str = "float32", channels_last: bool = False
) -> RenderOutput:
    """Render of a frozen encoder's prediction, without gradient (segmentation phases)."""
    return _encode_render(encoder, renderer, image, precision, channels_last)[1]


def pretrain_seg_objective(
    unet: nn.Module,
    encoder: nn.Module,
    renderer: FaceRenderer,
    batch: dict,
    precision: str = "float32",
    channels_last: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Plain BCE of ``M = S(R, I)`` against the stored pseudo masks ``z`` (docs/method.md 3.2).

    The BCE runs over the whole image: outside the rendered face ``z = 0``, so the U-Net also
    learns to call the background an outlier (harmless: ``V = m_r M`` ignores it).
    """
    image = batch["image"]
    render = frozen_render(encoder, renderer, image, precision, channels_last).image
    seg = _segment(unet, render, image, precision, channels_last)
    with float32_region(image.device.type):
        loss = L.bce_loss(seg, batch["pseudo_mask"])
    return loss, {"bce": loss.detach(), "total": loss.detach()}


def segmentation_objective(
    unet: nn.Module,
    encoder: nn.Module,
    renderer: FaceRenderer,
    perceptual: nn.Module | None,
    batch: dict,
    weights: L.SegmentationLossWeights,
    precision: str = "float32",
    channels_last: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``L_S`` on one batch (docs/method.md 3.4); the encoder is frozen (its render carries no gradient)."""
    image, lms = batch["image"], batch["landmarks"]
    out = frozen_render(encoder, renderer, image, precision, channels_last)
    seg = _segment(unet, out.image, image, precision, channels_last)
    per = perceptual_call(perceptual, precision, channels_last)
    with float32_region(image.device.type):
        return L.segmentation_loss(image, out.image, out.mask, seg, lms, out.landmarks, per, weights)


def reconstruction_objective(
    encoder: nn.Module,
    unet: nn.Module,
    renderer: FaceRenderer,
    perceptual: nn.Module | None,
    batch: dict,
    weights: L.ReconstructionLossWeights,
    grad_through_unet: bool = True,
    precision: str = "float32",
    channels_last: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``L_E`` on one batch (docs/method.md 3.3); the U-Net is frozen by the caller (eval mode, no grad
    for its parameters). With ``grad_through_unet`` the mask is a differentiable function of the
    render, else it is computed from a detached render and carries no gradient."""
    image, lms = batch["image"], batch["landmarks"]
    coeffs, out = _encode_render(encoder, renderer, image, precision, channels_last)
    if grad_through_unet:
        seg = _segment(unet, out.image, image, precision, channels_last)
    else:
        with torch.no_grad():
            seg = _segment(unet, out.image.detach(), image, precision, channels_last)
    per = perceptual_call(perceptual, precision, channels_last)
    with float32_region(image.device.type):
        return L.reconstruction_loss(image, out.image, out.mask, seg, lms, out.landmarks, coeffs, per, weights)


def pseudo_reconstruction_objective(
    encoder: nn.Module,
    mask_encoder: nn.Module,
    renderer: FaceRenderer,
    perceptual: nn.Module | None,
    batch: dict,
    weights: L.ReconstructionLossWeights,
    sigma: float = L.ROBUST_SIGMA,
    threshold: float = L.ROBUST_THRESHOLD,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``L_E`` with the fixed pseudo masks instead of the U-Net (the ablation ``em.masks: pseudo``).

    ``M = z(p)`` of ``mask_encoder`` (a frozen copy of the initialised encoder, eval mode): the
    robust outlier process' label of its render on these crops (:func:`focus.losses.robust_inlier_mask`,
    as the stored pseudo masks), without gradient. Everything else as :func:`reconstruction_objective`.
    """
    image, lms = batch["image"], batch["landmarks"]
    first = frozen_render(mask_encoder, renderer, image)
    z = L.robust_inlier_mask(image, first.image, first.mask, sigma, threshold)
    coeffs, out = encode_render(encoder, renderer, image)
    return L.reconstruction_loss(image, out.image, out.mask, z, lms, out.landmarks, coeffs, perceptual, weights)


__all__ = [
    "frozen_render",
    "init_objective",
    "pretrain_seg_objective",
    "pseudo_reconstruction_objective",
    "reconstruction_objective",
    "segmentation_objective",
]
