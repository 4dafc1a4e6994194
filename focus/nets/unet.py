"""The outlier-segmentation U-Net ``S_theta(R, I) -> M`` (docs/method.md, section 2).

Input: the rendered face over a black background ``R`` and the target image ``I``, both
``(B, 3, H, W)`` RGB in [0, 1], concatenated in that order (6 channels). With
``UNetSettings.image_input = False`` (the "render only" ablation) the first layer takes the render
alone (3 channels) and the image is ignored. Output: ``(B, 1, H, W)``
face probability ``M = sigmoid(5 x)`` in (0, 1), **1 = face (inlier), 0 = outlier**.

Architecture (paper scale: ``base_width=64``, ``depth=4``): an encoder of ``depth + 1`` blocks
with widths ``base_width * 2**k`` (64-128-256-512-1024), each block two 3x3 conv + BatchNorm +
ReLU, 2x2 max-pooling between blocks, dropout (0.5) after the ``dropout_blocks`` deepest encoder
blocks; a decoder that up-samples by nearest neighbour, concatenates the skip connection and
applies the same two-conv block with the skip's width; a final 1x1 convolution to one channel.
Any ``H, W`` works: each up-sampling goes to the exact size of its skip connection, so sizes not
divisible by ``2**depth`` are fine. For 64 px images the CPU default ``base_width=8``,
``depth=4`` leaves a 4x4 bottleneck; use ``depth=3`` for images smaller than 32 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from focus.config import check_fields, param, positive


@dataclass(frozen=True)
class UNetSettings:
    """How the segmentation U-Net is built.

    Attributes:
        base_width: channels of the first block; block ``k`` has ``base_width * 2**k``
            (paper scale: 64; the CPU default uses 8).
        depth: number of 2x down-sampling steps (paper scale: 4).
        dropout: dropout probability at the deepest encoder blocks (paper: 0.5).
        dropout_blocks: how many of the deepest encoder blocks get dropout (paper: 2).
        sharpness: the output is ``sigmoid(sharpness * x)`` (paper: 5).
        image_input: the U-Net sees the target image beside the render (the paper's ``S(R, I)``,
            default). ``False`` is the "render only" ablation: a 3-channel input layer on the render
            alone, ``S(R)``; the image argument is checked for its shape and otherwise ignored (a
            render-only input layer rather than a zero image: no weights that only ever see zeros,
            and the network provably cannot use the image).
    """

    base_width: int = param(16, ge=1)
    depth: int = param(4, ge=1)
    dropout: float = param(0.5, ge=0, lt=1)
    dropout_blocks: int = param(2, ge=0)
    sharpness: float = positive(5.0)
    image_input: bool = True

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def paper(cls) -> UNetSettings:
        """The published size: widths 64-128-256-512-1024."""
        return cls(base_width=64, depth=4)


class DoubleConv(nn.Sequential):
    """(3x3 conv -> BatchNorm -> ReLU) x 2, optionally followed by dropout."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class SegmentationUNet(nn.Module):
    """``(render, image)`` -> face mask ``(B, 1, H, W)`` in (0, 1)."""

    def __init__(self, settings: UNetSettings = UNetSettings()) -> None:
        super().__init__()
        self.settings = settings
        #: 6 (render and image) or 3 (render only: ``settings.image_input`` false)
        self.in_channels = 6 if settings.image_input else 3
        widths = [settings.base_width * 2**k for k in range(settings.depth + 1)]
        n_enc = len(widths)
        self.down = nn.ModuleList()
        prev = self.in_channels
        for k, w in enumerate(widths):
            drop = settings.dropout if k >= n_enc - settings.dropout_blocks else 0.0
            self.down.append(DoubleConv(prev, w, drop))
            prev = w
        self.up = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(DoubleConv(prev + w, w))
            prev = w
        self.head = nn.Conv2d(prev, 1, kernel_size=1)

    def logits(self, render: Tensor, image: Tensor) -> Tensor:
        """Pre-sigmoid output ``x`` ``(B, 1, H, W)``; the mask is ``sigmoid(sharpness * x)``."""
        if render.shape != image.shape or render.ndim != 4 or render.shape[1] != 3:
            raise ValueError(
                f"U-Net needs render and image of equal shape (B, 3, H, W), got "
                f"{tuple(render.shape)} and {tuple(image.shape)}"
            )
        x = torch.cat([render, image], dim=1) if self.settings.image_input else render
        skips = []
        for k, block in enumerate(self.down):
            if k > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)

    def forward(self, render: Tensor, image: Tensor) -> Tensor:
        """``render`` (on black) and target ``image``, ``(B, 3, H, W)`` in [0, 1] -> ``M`` ``(B, 1, H, W)``."""
        return torch.sigmoid(self.settings.sharpness * self.logits(render, image))
