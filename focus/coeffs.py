"""The coefficient vector the encoder regresses, and its named parts.

Layout (in this order): identity ``K_id``, expression ``K_exp``, albedo ``K_alb``, rotation as 3
Euler angles (pitch, yaw, roll; radians; see :func:`focus.render.camera.euler_to_matrix`),
translation (3, mm, camera frame offset added to the default camera distance), spherical-harmonics
lighting (27 = 9 bands x RGB, added to the default ambient light). With the paper's model sizes
(80, 64, 80) this is 257 values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

N_ANGLES = 3
N_TRANS = 3
N_SH = 27


@dataclass(frozen=True)
class Coeffs:
    """Named views of a batch of coefficient vectors; every field is ``(B, K)``."""

    id: Tensor
    exp: Tensor
    albedo: Tensor
    angles: Tensor
    trans: Tensor
    sh: Tensor

    @property
    def batch_size(self) -> int:
        return int(self.id.shape[0])

    def as_dict(self) -> dict[str, Tensor]:
        return {
            "id": self.id,
            "exp": self.exp,
            "albedo": self.albedo,
            "angles": self.angles,
            "trans": self.trans,
            "sh": self.sh,
        }


@dataclass(frozen=True)
class CoeffLayout:
    """Sizes of the parts of the coefficient vector."""

    n_id: int
    n_exp: int
    n_albedo: int

    @classmethod
    def for_model(cls, model) -> CoeffLayout:  # model: focus.facemodel.FaceModel
        return cls(model.n_id, model.n_exp, model.n_albedo)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.n_id, self.n_exp, self.n_albedo, N_ANGLES, N_TRANS, N_SH)

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    def split(self, x: Tensor) -> Coeffs:
        """``(B, dim)`` -> :class:`Coeffs` (views, no copy)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"coefficient vector has {x.shape[-1]} entries, layout {self.sizes} needs {self.dim}")
        return Coeffs(*torch.split(x, self.sizes, dim=-1))

    def join(self, c: Coeffs) -> Tensor:
        """:class:`Coeffs` -> ``(B, dim)``."""
        return torch.cat([c.id, c.exp, c.albedo, c.angles, c.trans, c.sh], dim=-1)

    def zeros(self, batch: int, device=None, dtype=torch.float32) -> Coeffs:
        """The mean face, frontal, at the default distance, under the default ambient light."""
        return self.split(torch.zeros(batch, self.dim, device=device, dtype=dtype))
