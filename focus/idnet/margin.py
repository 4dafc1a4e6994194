"""ArcFace's additive angular margin head (Deng et al., CVPR 2019), used only for training.

For an embedding ``x`` and class centres ``W_j`` (one per training identity) the head computes
the cosine ``cos(theta_j) = <x / |x|, W_j / |W_j|>`` and the logits::

    logit_j = s * cos(theta_j + m)   for the true class j = y
    logit_j = s * cos(theta_j)       for every other class

which a softmax cross-entropy turns into the ArcFace loss. ``cos(theta + m)`` is evaluated as
``cos(theta) cos(m) - sin(theta) sin(m)`` with ``sin(theta) = sqrt(1 - cos(theta)^2)`` (smooth
away from ``cos = +-1``). Where ``theta + m`` would pass ``pi`` (``cos(theta) < cos(pi - m)``),
``cos(theta + m)`` stops decreasing with ``theta``; as in insightface's reference implementation
the target logit is then replaced by the linear continuation ``cos(theta) - m sin(m)``, which
keeps it monotonic.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ``cos(theta)`` is clamped into ``[-1 + eps, 1 - eps]`` so that ``sin(theta)`` has a gradient.
COS_EPS = 1e-6


def arc_margin_logits(cosine: Tensor, labels: Tensor, margin: float, scale: float) -> Tensor:
    """Additive-angular-margin logits from cosines.

    Args:
        cosine: ``(B, C)`` cosines between normalised embeddings and class centres.
        labels: ``(B,)`` int64 true class of each row, in ``[0, C)``.
        margin: additive angle ``m`` (radians), ``0 <= m < pi / 2``.
        scale: ``s`` > 0.

    Returns ``(B, C)`` logits ``s * cos(theta + m)`` at the true class, ``s * cos(theta)`` elsewhere.
    """
    if cosine.ndim != 2 or labels.shape != cosine.shape[:1]:
        raise ValueError(f"need cosine (B, C) and labels (B,), got {tuple(cosine.shape)}, {tuple(labels.shape)}")
    if not 0.0 <= margin < math.pi / 2:
        raise ValueError(f"margin must be in [0, pi/2), got {margin}")
    cos = cosine.clamp(-1.0 + COS_EPS, 1.0 - COS_EPS)
    cos_t = cos.gather(1, labels[:, None].long())  # (B, 1)
    sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp_min(0.0))
    phi = cos_t * math.cos(margin) - sin_t * math.sin(margin)
    phi = torch.where(cos_t > math.cos(math.pi - margin), phi, cos_t - margin * math.sin(margin))
    out = cos.scatter(1, labels[:, None].long(), phi)
    return out * scale


class ArcMarginHead(nn.Module):
    """Class centres ``W (C, D)`` and :func:`arc_margin_logits`; see the module docstring.

    Args:
        num_features: embedding size ``D``.
        num_classes: number of training identities ``C``.
        margin: additive angle ``m`` (radians; ArcFace uses 0.5).
        scale: logit scale ``s`` (ArcFace uses 64 for ~85k classes; ~30 suits hundreds).
    """

    def __init__(self, num_features: int, num_classes: int, margin: float = 0.5, scale: float = 30.0) -> None:
        super().__init__()
        self.margin = float(margin)
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.randn(num_classes, num_features) * 0.01)

    def cosine(self, embedding: Tensor) -> Tensor:
        """``(B, D)`` embeddings (any norm) -> ``(B, C)`` cosines to the class centres."""
        return F.normalize(embedding, dim=-1) @ F.normalize(self.weight, dim=-1).t()

    def forward(self, embedding: Tensor, labels: Tensor, margin: float | None = None) -> Tensor:
        """``(B, D)`` embeddings + ``(B,)`` labels -> ``(B, C)`` logits (``margin`` overrides ``m``,
        e.g. during a margin warm-up)."""
        m = self.margin if margin is None else float(margin)
        return arc_margin_logits(self.cosine(embedding), labels, m, self.scale)
