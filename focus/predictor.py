"""The one FOCUS forward pass: encoder -> coefficients -> render -> U-Net -> mask.

Training (:mod:`focus.train.steps`), validation (:mod:`focus.train.validation`), evaluation
(:mod:`focus.eval.predict`), the misfit prior (:mod:`focus.eval.misfit_prior`), ``focus
reconstruct`` and its test-time adaptation (:mod:`focus.apps`) all run it through the functions
here, so the masks reported are the ones training optimised:

* :func:`encode_render` -- crops ``(B, 3, S, S)`` -> coefficients and the render;
* :func:`unet_input` / :func:`segment` -- ``M = S(clamp(R, 0, 1), I)``: the U-Net always sees
  the render clamped to [0, 1];
* :class:`Predictor` -- both, plus the other segmentations (the robust pseudo mask ``z(p)``,
  or none) and the neutral shape, as a :class:`Prediction`;
* :class:`FocusModel` / :func:`load_model` -- a training checkpoint's networks with the face
  model, renderer, crop template and alignment settings they were trained with.

Images and masks are crop pixels (image frame of :mod:`focus.render.camera`), colours in [0, 1];
meshes are the model frame, mm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from focus.coeffs import Coeffs
from focus.data import DataSettings, template_from_model
from focus.data.alignment import AlignmentTemplate
from focus.errors import InputFileError
from focus.facemodel.model import FaceModel, load_face_model
from focus.losses import ROBUST_SIGMA, ROBUST_THRESHOLD, robust_inlier_mask
from focus.nets.trained import networks_from_checkpoint, read_focus_checkpoint
from focus.render.renderer import FaceRenderer, RenderOutput, RenderSettings

#: Segmentations a :class:`Predictor` computes (each a face (inlier) probability ``M`` in [0, 1]):
#: ``"unet"`` the U-Net ``S(R, I)`` (FOCUS); ``"pseudo"`` the robust outlier process' hard label
#: ``z(p)`` (:func:`focus.losses.robust_inlier_mask`); ``"none"`` every pixel is face (the plain
#: model-based autoencoder).
SEGMENTATIONS: tuple[str, ...] = ("unet", "pseudo", "none")


def encode_render(
    encoder: Callable[[Tensor], Tensor], renderer: FaceRenderer, image: Tensor
) -> tuple[Coeffs, RenderOutput]:
    """Encode crops ``(B, 3, S, S)`` in [0, 1] and render the prediction at ``S`` px: ``(coeffs, render output)``."""
    coeffs = renderer.split(encoder(image))
    return coeffs, renderer(coeffs)


def unet_input(render: Tensor) -> Tensor:
    """The render as the U-Net sees it: ``(B, 3, S, S)`` clamped to [0, 1] (a new tensor).

    The renderer does not clamp (shading can leave [0, 1]; a badly predicted face can render far
    outside it, e.g. -14 under a negative light); such values would distort the U-Net's BatchNorm
    statistics. Gradients flow through the clamp where the render is inside [0, 1].
    """
    return render.clamp(0.0, 1.0)


def segment(unet: Callable[[Tensor, Tensor], Tensor], render: Tensor, image: Tensor) -> Tensor:
    """``M = S(clamp(R, 0, 1), I)``: face probability ``(B, 1, S, S)`` of render and image ``(B, 3, S, S)``."""
    return unet(unet_input(render), image)


@dataclass(frozen=True)
class Prediction:
    """One forward pass on a batch of ``B`` crops of ``S`` px.

    Attributes:
        coeffs: the predicted coefficients (``id``, ``exp``, ``albedo``, ``angles``, ``trans``, ``sh``).
        render: the renderer's output at ``S`` px (``image`` ``(B, 3, S, S)`` unclamped, coverage
            ``mask`` ``m_r`` ``(B, 1, S, S)``, ``landmarks`` ``(B, 68, 2)`` px, posed vertices, ...).
        seg: per asked segmentation name, the face probability ``M`` ``(B, 1, S, S)``.
        neutral: ``(B, V, 3)`` predicted neutral shape (identity only, expression zero), model frame, mm.
    """

    coeffs: Coeffs
    render: RenderOutput
    seg: dict[str, Tensor]
    neutral: Tensor


@dataclass(frozen=True)
class Predictor:
    """Encoder, U-Net (or ``None``: encoder-only) and the renderer they were trained with.

    Calling it does not change the networks' train / eval mode or gradient settings (callers
    decide: validation and evaluation put them in eval mode and run under ``torch.no_grad``).
    """

    encoder: nn.Module
    unet: nn.Module | None
    renderer: FaceRenderer

    @property
    def default_segmentation(self) -> str:
        """``"unet"`` when there is a U-Net, else ``"pseudo"``."""
        return "unet" if self.unet is not None else "pseudo"

    def __call__(
        self,
        image: Tensor,
        segmentations: Sequence[str] = ("unet",),
        sigma: float = ROBUST_SIGMA,
        threshold: float = ROBUST_THRESHOLD,
    ) -> Prediction:
        """Predict on crops ``(B, 3, S, S)`` in [0, 1] (on the networks' device).

        ``sigma`` and ``threshold`` are the robust outlier process' for ``"pseudo"``.

        Raises:
            ValueError: an unknown segmentation name, or ``"unet"`` without a U-Net.
        """
        for name in segmentations:
            if name not in SEGMENTATIONS:
                raise ValueError(f"unknown segmentation {name!r}; known: {SEGMENTATIONS}")
            if name == "unet" and self.unet is None:
                raise ValueError("an encoder-only model has no U-Net: use segmentation 'pseudo' or 'none'")
        coeffs, out = encode_render(self.encoder, self.renderer, image)
        seg: dict[str, Tensor] = {}
        for name in segmentations:
            if name == "unet":
                seg[name] = segment(self.unet, out.image, image)
            elif name == "pseudo":
                seg[name] = robust_inlier_mask(image, out.image, out.mask, sigma, threshold)
            else:
                seg[name] = torch.ones_like(out.mask)
        neutral = self.renderer.shape(coeffs.id, torch.zeros_like(coeffs.exp))
        return Prediction(coeffs, out, seg, neutral)


@dataclass
class FocusModel:
    """A training checkpoint's networks with everything needed to run them on face crops.

    Attributes:
        encoder, unet: the networks in eval mode (``unet`` ``None`` for an encoder-only checkpoint).
        face_model: the 3DMM the encoder was trained with (on ``device``).
        renderer: renders at the training crop size with the training camera.
        template: the 5-point crop template at that size.
        data: alignment method and border handling (the training's ``data`` settings; augmentation
            is never applied).
        checkpoint: the file the networks came from.
        device: where the networks run.
        facemodel_path: the face model's file (``None`` when given as a model).
        meta: the checkpoint's entries other than the networks (settings, recorded face model).
        misfit_prior: subtracted from the neutral shape before export (docs/method.md 5), or ``None``.
        misfit_prior_path: its file.
    """

    encoder: nn.Module
    unet: nn.Module | None
    face_model: FaceModel
    renderer: FaceRenderer
    template: AlignmentTemplate
    data: DataSettings
    checkpoint: Path
    device: torch.device
    facemodel_path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    misfit_prior: Any | None = None
    misfit_prior_path: Path | None = None
    _views: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def crop_size(self) -> int:
        return int(self.renderer.settings.image_size)

    @property
    def predictor(self) -> Predictor:
        return Predictor(self.encoder, self.unet, self.renderer)

    def predict(self, images: Tensor, segmentations: Sequence[str] = ("unet",)) -> Prediction:
        """:class:`Predictor` on crops ``(B, 3, S, S)`` in [0, 1] (moved to :attr:`device`, float32).

        Raises:
            InputFileError: ``"unet"`` asked of an encoder-only checkpoint (names the file).
        """
        if "unet" in segmentations and self.unet is None:
            raise InputFileError(
                self.checkpoint, "has no U-Net", "use segmentation 'pseudo' or 'none' for encoder-only checkpoints"
            )
        return self.predictor(images.to(self.device, torch.float32), segmentations)

    def view_renderer(self, size: int) -> FaceRenderer:
        """A renderer with the same framing at ``size`` px (the camera's focal scales with it)."""
        if size not in self._views:
            settings = replace(self.renderer.settings, image_size=int(size))
            self._views[size] = FaceRenderer(self.face_model, settings).to(self.device)
        return self._views[size]


def load_model(
    checkpoint: str | Path,
    facemodel: str | Path | FaceModel,
    data: DataSettings | None = None,
    device: str | torch.device = "cpu",
    render_backend: str | None = None,
    ckpt: dict[str, Any] | None = None,
) -> FocusModel:
    """Load a training checkpoint with the face model it was trained with.

    Args:
        checkpoint: a networks file written by the training stages.
        facemodel: the face model file (or model) the checkpoint was trained with.
        data: alignment settings (method, border; ``None``: the defaults); ``crop_size`` is taken
            from the checkpoint's render settings.
        device: where to run.
        render_backend: override the checkpoint's rasterizer backend (``None``: keep it).
        ckpt: the checkpoint's dict when already read (:func:`focus.nets.trained.read_focus_checkpoint`).

    Raises:
        InputFileError: missing, refused or foreign checkpoint, or a face model that does not fit it.
    """
    path = Path(checkpoint)
    data = DataSettings() if data is None else data
    device = torch.device(device)
    if ckpt is None:
        ckpt = read_focus_checkpoint(path)
    encoder, unet = networks_from_checkpoint(ckpt, path, device)
    fm = facemodel if isinstance(facemodel, FaceModel) else load_face_model(facemodel)
    layout = tuple(int(x) for x in ckpt["layout"])
    if (fm.n_id, fm.n_exp, fm.n_albedo) != layout:
        raise InputFileError(
            path,
            f"expects (id, exp, albedo) = {layout} coefficients but the face model "
            f"{fm.name!r} has {(fm.n_id, fm.n_exp, fm.n_albedo)}",
            "use the training's face model",
        )
    from focus.config import from_dict

    rs = from_dict(RenderSettings, ckpt.get("render_settings") or {}, f"{path}:render_settings")
    if render_backend is not None:
        rs = replace(rs, backend=render_backend)
    fm = fm.to(device)
    renderer = FaceRenderer(fm, rs).to(device)
    template = template_from_model(fm, rs.image_size, rs.distance, rs.focal_at_224)
    meta = {k: v for k, v in ckpt.items() if k != "nets"}
    fm_path = None if isinstance(facemodel, FaceModel) else Path(facemodel)
    return FocusModel(
        encoder, unet, fm, renderer, template, replace(data, crop_size=rs.image_size), path, device, fm_path, meta
    )


__all__ = [
    "SEGMENTATIONS",
    "FocusModel",
    "Prediction",
    "Predictor",
    "encode_render",
    "load_model",
    "segment",
    "unet_input",
]
