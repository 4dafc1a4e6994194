"""Mixed precision and memory layout of the networks in a training step.

FOCUS' step has two kinds of computation:

* the **networks** (reconstruction encoder, segmentation U-Net, identity / perceptual network):
  convolutions whose throughput on a GPU roughly doubles in bfloat16 and with the channels-last
  memory layout;
* the **image formation and the losses** (vertex transforms, rasterization, barycentric
  interpolation, shading, the robust likelihood, landmark and area terms): sums of many small
  differences (``log`` of Gaussians with sigma 0.043, pixel residuals, squared pixel distances)
  where bfloat16's 8-bit mantissa (relative resolution 2^-8 = 0.4 %) would lose the signal.

:func:`network_call` runs a network under :func:`torch.autocast` in bfloat16 (``precision ==
"bf16"``) and returns its outputs as float32; :func:`float32_region` turns autocast off for the
renderer and the losses, so they stay float32 even when a caller wraps the whole step in autocast.
With ``precision == "float32"`` and ``channels_last == False`` (the defaults) both are no-ops:
the network is called unchanged, so the step is bit-identical to a plain call.

Tensors: images ``(B, C, S, S)``; channels-last only changes the strides, never the values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

#: ``train.precision`` values: ``"float32"`` everywhere, or ``"bf16"`` autocast around the networks.
PRECISIONS: tuple[str, ...] = ("float32", "bf16")


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")


def network_autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of a network call: bfloat16 for ``"bf16"``, a null context for ``"float32"``."""
    _check(precision)
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def float32_region(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off (renderer interpolation / shading, losses): operations run in their inputs'
    dtype, float32 here. Changes nothing when autocast is not active."""
    return torch.autocast(device_type=device_type, enabled=False)


def to_float32(x: Any) -> Any:
    """Floating tensors in ``x`` (a tensor, or a tuple / list / dict of them) as float32."""
    if isinstance(x, Tensor):
        return x.float() if x.is_floating_point() and x.dtype != torch.float32 else x
    if isinstance(x, (tuple, list)):
        return type(x)(to_float32(v) for v in x)
    if isinstance(x, dict):
        return {k: to_float32(v) for k, v in x.items()}
    return x


def _channels_last(x: Any) -> Any:
    if isinstance(x, Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def network_call(
    net: Callable[..., Any], precision: str = "float32", channels_last: bool = False
) -> Callable[..., Any]:
    """``net`` called under ``precision`` with 4-D inputs in channels-last layout when asked.

    Returns ``net`` itself for ``("float32", False)``; otherwise a function that runs
    ``net(*args)`` under :func:`network_autocast` (device type from the first tensor argument)
    and returns the outputs as float32.
    """
    _check(precision)
    if precision == "float32" and not channels_last:
        return net

    def call(*args: Any, **kwargs: Any) -> Any:
        if channels_last:
            args = tuple(_channels_last(a) for a in args)
        device_type = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
        with network_autocast(device_type, precision):
            out = net(*args, **kwargs)
        return to_float32(out)

    return call


@dataclass(frozen=True)
class PerceptualCall:
    """A :class:`focus.nets.perceptual.PerceptualNet` whose network passes (``embed``,
    ``early_features``) run under ``precision``; ``crop`` (an affine warp with bilinear sampling)
    stays float32. Has the attributes the losses use (``input_size``, ``crop``, ``embed``,
    ``early_features``)."""

    net: nn.Module
    precision: str = "float32"
    channels_last: bool = False

    @property
    def input_size(self) -> int:
        return self.net.input_size

    def crop(self, image: Tensor, landmarks68: Tensor) -> Tensor:
        with float32_region(image.device.type):
            return self.net.crop(image, landmarks68)

    def embed(self, crop: Tensor) -> Tensor:
        return network_call(self.net.embed, self.precision, self.channels_last)(crop)

    def early_features(self, crop: Tensor) -> Tensor:
        return network_call(self.net.early_features, self.precision, self.channels_last)(crop)


def perceptual_call(net: nn.Module | None, precision: str = "float32", channels_last: bool = False) -> Any:
    """``net`` itself for ``("float32", False)`` or ``None``; else a :class:`PerceptualCall`."""
    _check(precision)
    if net is None or (precision == "float32" and not channels_last):
        return net
    return PerceptualCall(net, precision, channels_last)


def to_channels_last(net: nn.Module | None) -> nn.Module | None:
    """``net`` with its 4-D parameters and buffers in channels-last layout (in place, as
    :meth:`torch.nn.Module.to` does; values unchanged)."""
    return None if net is None else net.to(memory_format=torch.channels_last)


__all__ = [
    "PRECISIONS",
    "PerceptualCall",
    "float32_region",
    "network_autocast",
    "network_call",
    "perceptual_call",
    "to_channels_last",
    "to_float32",
]
