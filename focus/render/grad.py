"""Autograd helpers shared by the rasterizer and the shading."""

from __future__ import annotations

import torch
from torch import Tensor


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous (CPU gathers / scatters and
    elementwise kernels on strided gradients are many times slower)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: D102
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        return grad.contiguous()


def contiguous_grad(x: Tensor) -> Tensor:
    """``x`` unchanged in the forward pass; its gradient is made contiguous in the backward pass."""
    return _ContiguousGrad.apply(x) if x.requires_grad else x


__all__ = ["contiguous_grad"]
