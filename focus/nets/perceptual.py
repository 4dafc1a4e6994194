"""The frozen face-recognition ("perceptual") network used by the losses (docs/method.md, section 2).

:class:`PerceptualNet` wraps any backbone that satisfies :class:`FaceFeatureBackbone` (an
:class:`focus.nets.iresnet.IResNet` loaded from insightface's ArcFace weights at paper scale, or
the small identity network the pipeline trains itself offline) and exposes

* :meth:`PerceptualNet.embed` -- ``phi_deep``: L2-normalised deep embedding ``(B, D)``;
* :meth:`PerceptualNet.early_features` -- ``phi_sh``: the feature map after the first residual
  stage ``(B, C, h, w)``;
* :meth:`PerceptualNet.crop` -- the 5-point-aligned crop in [-1, 1] at the backbone's input size.

The wrapper freezes the backbone (``requires_grad=False``) and keeps it in eval mode even when a
parent module calls ``.train()``; gradients still flow to its *input*.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch.nn.functional as F
from torch import Tensor, nn

from focus.nets.face_align import align_faces


@runtime_checkable
class FaceFeatureBackbone(Protocol):
    """What :class:`PerceptualNet` needs of a face-recognition network.

    Attributes:
        input_size: side ``S`` of the square aligned crop it takes, ``(B, 3, S, S)`` in [-1, 1].
    """

    input_size: int

    def early_features(self, x: Tensor) -> Tensor:
        """``(B, 3, S, S)`` -> feature map after the first residual stage ``(B, C, h, w)``."""
        ...

    def embedding(self, x: Tensor) -> Tensor:
        """``(B, 3, S, S)`` -> deep embedding ``(B, D)`` (need not be normalised)."""
        ...


class PerceptualNet(nn.Module):
    """Frozen ``phi_deep`` / ``phi_sh`` on aligned crops; see the module docstring."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        if not isinstance(backbone, FaceFeatureBackbone):
            raise TypeError(
                f"{type(backbone).__name__} lacks input_size / early_features / embedding "
                "(see focus.nets.perceptual.FaceFeatureBackbone)"
            )
        self.backbone = backbone
        self.backbone.requires_grad_(False)
        super().train(False)

    @classmethod
    def from_arcface(cls, path, arch: str = "iresnet50") -> PerceptualNet:
        """Paper scale: insightface arcface_torch weights (``backbone.pth``) via :func:`load_arcface`."""
        from focus.nets.iresnet import load_arcface

        return cls(load_arcface(path, arch))

    @property
    def input_size(self) -> int:
        return int(self.backbone.input_size)

    def train(self, mode: bool = True) -> PerceptualNet:
        """Always stays in eval mode (BatchNorm statistics and dropout are frozen)."""
        return super().train(False)

    def crop(self, image: Tensor, landmarks68: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [0, 1] + ``(B, 68, 2)`` px -> aligned ``(B, 3, S, S)`` in [-1, 1]."""
        return align_faces(image, landmarks68, self.input_size)

    def embed(self, crop: Tensor) -> Tensor:
        """``phi_deep``: aligned crops ``(B, 3, S, S)`` in [-1, 1] -> unit vectors ``(B, D)``."""
        return F.normalize(self.backbone.embedding(crop), dim=-1)

    def early_features(self, crop: Tensor) -> Tensor:
        """``phi_sh``: aligned crops ``(B, 3, S, S)`` in [-1, 1] -> ``(B, C, h, w)``."""
        return self.backbone.early_features(crop)

    def forward(self, crop: Tensor) -> Tensor:
        return self.embed(crop)
