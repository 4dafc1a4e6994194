"""The reconstruction encoder: image -> 3DMM coefficient vector (the face autoencoder's encoder).

A torchvision ResNet (``resnet18`` by default on CPU, ``resnet50`` at paper scale) whose final
fully connected layer is replaced by a **zero-initialised** linear head with
:attr:`focus.coeffs.CoeffLayout.dim` outputs, so the first prediction is the all-zero vector:
the mean face, frontal, at the default distance, under the default ambient light (see
:mod:`focus.coeffs`). Input: ``(B, 3, H, W)`` RGB in [0, 1], any size the ResNet accepts
(paper: 224; the global average pool makes the head size-independent); no ImageNet
normalisation (docs/method.md, section 2). Weights start random (``weights=None``, nothing is
downloaded) unless ``pretrained_path`` names a torchvision ImageNet state dict file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from focus.coeffs import N_ANGLES, N_TRANS, CoeffLayout, Coeffs
from focus.config import check_fields, param
from focus.nets.checkpoint import load_state_dict_strict, read_state_dict
from focus.render.camera import euler_to_matrix

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


@dataclass(frozen=True)
class EncoderSettings:
    """How the reconstruction encoder is built (``params.yaml`` group of the training stage).

    Attributes:
        arch: torchvision ResNet name, one of :data:`ARCHS` (paper scale: ``"resnet50"``).
        pretrained_path: optional torchvision ImageNet state dict (e.g. ``resnet50-0676ba61.pth``)
            to initialise the backbone from; ``None`` (or ``""``) starts from random weights.
        pivot_mm: model-frame point (mm) the head's rotation turns about. The renderer rotates
            about the model origin, which lies far behind the face (the embedded model: ~110 mm
            behind the nose tip), so a yaw of 0.5 rad also slides the face ~50 mm sideways and
            the encoder would have to predict that slide as translation to match the aligned
            crop; the embedded default trained that way fits a yawed face with a fifth of its yaw
            plus identity and expression (predicted / true yaw std 0.2). With a pivot in the face
            the head predicts the pivot's translation and the encoder converts it to the
            renderer's convention (``t = t_pivot + c - R(angles) c``, in float32). ``(0, 0, 0)``:
            the origin (the paper's parameterisation). Model-specific: for another face model
            pick a point about 20 mm behind its nose tip (docs/method.md, section 2).
    """

    arch: str = param("resnet18", choices=ARCHS)
    pretrained_path: str | None = None
    pivot_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        check_fields(self)


class ReconstructionEncoder(nn.Module):
    """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, layout.dim)`` coefficient vector.

    Attributes:
        layout: the :class:`CoeffLayout` of the output.
        backbone: the torchvision ResNet; ``backbone.fc`` is the zero-initialised head.
    """

    def __init__(self, layout: CoeffLayout, settings: EncoderSettings = EncoderSettings()) -> None:
        super().__init__()
        self.layout = layout
        self.settings = settings
        backbone = getattr(torchvision.models, settings.arch)(weights=None)
        if settings.pretrained_path:
            path = Path(settings.pretrained_path)
            state = read_state_dict(path, f"torchvision {settings.arch}")
            load_state_dict_strict(
                backbone,
                state,
                path,
                f"torchvision {settings.arch}",
                hint=f"expected the ImageNet state dict of torchvision.models.{settings.arch}; "
                "check encoder.arch or the file",
            )
        head = nn.Linear(backbone.fc.in_features, layout.dim)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        backbone.fc = head
        self.backbone = backbone

    def forward(self, image: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> ``(B, layout.dim)``."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"encoder input must be (B, 3, H, W) RGB, got {tuple(image.shape)}")
        out = self.backbone(image)
        if any(self.settings.pivot_mm):
            out = self._about_pivot(out)
        return out

    def _about_pivot(self, out: Tensor) -> Tensor:
        """Head output with the pivot's translation ``(B, dim)`` -> the renderer's (origin) convention."""
        out = out.float()  # under bf16 autocast the head's output is bf16: 90 mm would lose ~0.4 mm
        start = self.layout.n_id + self.layout.n_exp + self.layout.n_albedo
        angles = out[:, start : start + N_ANGLES]
        trans = out[:, start + N_ANGLES : start + N_ANGLES + N_TRANS]
        c = out.new_tensor(self.settings.pivot_mm)
        rotated = (euler_to_matrix(angles) @ c[:, None]).squeeze(-1)  # (B, 3)
        return torch.cat([out[:, : start + N_ANGLES], trans + c - rotated, out[:, start + N_ANGLES + N_TRANS :]], 1)

    def predict(self, image: Tensor) -> Coeffs:
        """``(B, 3, H, W)`` -> named :class:`Coeffs` (views of the forward output)."""
        return self.layout.split(self(image))


def build_encoder(layout: CoeffLayout, settings: EncoderSettings = EncoderSettings()) -> ReconstructionEncoder:
    """The encoder for ``layout`` (e.g. ``CoeffLayout.for_model(face_model)``) built from ``settings``."""
    return ReconstructionEncoder(layout, settings)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


__all__ = ["ARCHS", "EncoderSettings", "ReconstructionEncoder", "build_encoder", "count_parameters"]
