"""A trained checkpoint run on a face-image folder, through the same alignment as training.

:func:`load_eval_model` rebuilds the networks of a training checkpoint (``models/focus.pt``,
``models/focus_init.pt``, ``checkpoints/em/round_XX.pt``; :func:`focus.train.pipeline.load_trained`)
with the face model and the renderer they were trained with. :func:`open_folder` opens a
face-image folder (:class:`focus.data.FaceImageFolder`, no augmentation) with the training's
5-point template (:func:`focus.data.template_from_model` at the checkpoint's render size) and
``data`` settings, so every image is cropped exactly as a training image is. :func:`predict_folder`
runs encoder, renderer and a segmentation on every crop.

Segmentations (``segmentations`` argument; each is a face (inlier) probability ``M`` in [0, 1],
``(N, 1, S, S)``, over the whole crop; the effective visible-face estimate is ``m_r M``):

* ``"unet"`` -- the checkpoint's U-Net ``S(R, I)`` (FOCUS);
* ``"pseudo"`` -- the robust outlier process' hard label ``z(p)`` (:func:`focus.losses.robust_inlier_mask`),
  the pseudo masks of the U-Net pre-training when the encoder is the initialised one;
* ``"none"`` -- no segmentation (every rendered pixel is face): the plain model-based autoencoder.

Arrays are numpy on the CPU: crops, renders and masks are crop pixels (image frame of
:mod:`focus.render.camera`); neutral meshes are the model frame, mm (identity only, expression zero).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from focus.data import DataSettings, FaceImageFolder, template_from_model
from focus.data.alignment import AlignmentTemplate
from focus.devices import resolve_device as _resolve_device
from focus.errors import InputFileError
from focus.facemodel.model import FaceModel, load_face_model
from focus.nets.encoder import ReconstructionEncoder
from focus.nets.unet import SegmentationUNet
from focus.render.renderer import FaceRenderer, RenderSettings

SEGMENTATIONS: tuple[str, ...] = ("unet", "pseudo", "none")


@dataclass
class EvalModel:
    """A checkpoint's networks with the face model and renderer they were trained with.

    Attributes:
        encoder: the reconstruction encoder (eval mode).
        unet: the segmentation U-Net, ``None`` for an encoder-only checkpoint (``init``).
        face_model: the 3DMM (on ``device``).
        renderer: renders at the training crop size with the training camera.
        template: the 5-point crop template at that size.
        data: alignment settings (the training's ``data`` group; augmentation is never applied).
        checkpoint: the file the networks came from.
        device: where they run.
    """

    encoder: ReconstructionEncoder
    unet: SegmentationUNet | None
    face_model: FaceModel
    renderer: FaceRenderer
    template: AlignmentTemplate
    data: DataSettings
    checkpoint: Path
    device: torch.device

    @property
    def crop_size(self) -> int:
        return int(self.renderer.settings.image_size)


def resolve_device(device: str = "cpu") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given (CUDA checked)."""
    return _resolve_device(device, "eval.device", "set eval.device: cpu")


def load_eval_model(checkpoint: str | Path, facemodel: str | Path | FaceModel, data: DataSettings = DataSettings(),
                    device: str | torch.device = "cpu", render_backend: str | None = None) -> EvalModel:
    """Load a training checkpoint for evaluation.

    Args:
        checkpoint: a networks file written by the training stages.
        facemodel: the face model file (or model) the checkpoint was trained with.
        data: the training's ``data`` settings (alignment method, border); ``crop_size`` is
            taken from the checkpoint's render settings.
        device: where to run.
        render_backend: override the checkpoint's rasterizer backend (``None``: keep it).

    Raises:
        InputFileError: missing or foreign checkpoint, or a face model that does not fit it.
    """
    from focus.train.pipeline import load_trained

    path = Path(checkpoint)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found", "run the training stages (dvc repro em)")
    dev = resolve_device(device) if isinstance(device, str) else device
    encoder, unet, ckpt = load_trained(path, dev)
    fm = facemodel if isinstance(facemodel, FaceModel) else load_face_model(facemodel)
    layout = tuple(int(x) for x in ckpt["layout"])
    if (fm.n_id, fm.n_exp, fm.n_albedo) != layout:
        raise InputFileError(path, f"expects (id, exp, albedo) = {layout} coefficients but the face model "
                             f"{fm.name!r} has {(fm.n_id, fm.n_exp, fm.n_albedo)}", "evaluate with the training's face model")
    from focus.config import from_dict

    rs = from_dict(RenderSettings, ckpt.get("render_settings") or {}, f"{path}:render_settings")
    if render_backend is not None:
        rs = replace(rs, backend=render_backend)
    fm = fm.to(dev)
    renderer = FaceRenderer(fm, rs).to(dev)
    template = template_from_model(fm, rs.image_size, rs.distance, rs.focal_at_224)
    data = replace(data, crop_size=rs.image_size)
    return EvalModel(encoder, unet, fm, renderer, template, data, path, dev)


def open_folder(root: str | Path, model: EvalModel, images: str = "images", landmarks: str = "landmarks.csv"
                ) -> FaceImageFolder:
    """A face-image folder cropped like the training images of ``model`` (no augmentation).

    ``images`` is the image folder inside ``root`` (the NoW layout keeps its pictures under
    ``NoW_Dataset/final_release_version/iphone_pictures``); ``landmarks`` may be a path outside
    ``root`` (absolute, or relative to the working directory when it does not exist in ``root``).
    """
    root = Path(root)
    lm = Path(landmarks)
    if not lm.is_absolute() and not (root / lm).exists() and lm.exists():
        lm = lm.resolve()
    return FaceImageFolder(root, model.template, model.data, augment=False, images=images, landmarks=str(lm))


@dataclass
class Predictions:
    """The model's answers on a folder (numpy, CPU; ``N`` images, crop size ``S``).

    Attributes:
        names: image names (as in the folder's landmark CSV).
        coeffs: ``id``, ``exp``, ``albedo``, ``angles``, ``trans``, ``sh``: ``(N, K)`` each.
        neutral: ``(N, V, 3)`` predicted neutral shapes (expression zero), model frame, mm.
        transforms: ``(N, 3, 3)`` source image -> crop.
        images, renders: ``(N, 3, S, S)`` crops and renders (``None`` unless kept).
        coverage: ``(N, 1, S, S)`` rendered-face coverage ``m_r`` (``None`` unless kept).
        seg: per segmentation name, ``(N, 1, S, S)`` face probability ``M`` (kept ones only).
        masks, face_masks: ``(N, 1, S, S)`` true visible-face masks and true face regions when
            the folder has them (and images are kept), else ``None``.
    """

    names: tuple[str, ...]
    coeffs: dict[str, np.ndarray]
    neutral: np.ndarray
    transforms: np.ndarray
    images: np.ndarray | None = None
    renders: np.ndarray | None = None
    coverage: np.ndarray | None = None
    seg: dict[str, np.ndarray] | None = None
    masks: np.ndarray | None = None
    face_masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)


@torch.no_grad()
def predict_batch(model: EvalModel, images: torch.Tensor, segmentations: Sequence[str] = ("unet",)) -> dict:
    """Encoder, renderer and segmentations on crops ``(B, 3, S, S)`` in [0, 1] (on ``model.device``).

    Returns a dict of tensors: ``coeffs`` (a :class:`focus.coeffs.Coeffs`), ``render``
    ``(B, 3, S, S)``, ``coverage`` ``(B, 1, S, S)``, ``neutral`` ``(B, V, 3)`` and ``seg`` (per
    name ``(B, 1, S, S)``).
    """
    from focus.losses import robust_inlier_mask

    for name in segmentations:
        if name not in SEGMENTATIONS:
            raise ValueError(f"unknown segmentation {name!r}; known: {SEGMENTATIONS}")
        if name == "unet" and model.unet is None:
            raise InputFileError(model.checkpoint, "has no U-Net", "use segmentation 'pseudo' or 'none' for encoder-only checkpoints")
    x = images.to(model.device, torch.float32)
    coeffs = model.renderer.split(model.encoder(x))
    out = model.renderer(coeffs)
    seg = {}
    for name in segmentations:
        if name == "unet":
            seg[name] = model.unet(out.image, x)
        elif name == "pseudo":
            seg[name] = robust_inlier_mask(x, out.image, out.mask)
        else:
            seg[name] = torch.ones_like(out.mask)
    neutral = model.renderer.shape(coeffs.id, torch.zeros_like(coeffs.exp))
    return {"coeffs": coeffs, "render": out.image, "coverage": out.mask, "neutral": neutral, "seg": seg}


@dataclass
class Crops:
    """Aligned crops of a folder's images with what the folder knows about them (numpy, CPU).

    Attributes:
        names: image names (as in the folder's landmark CSV).
        images: ``(N, 3, S, S)`` float32 crops in [0, 1].
        transforms: ``(N, 3, 3)`` source image -> crop.
        masks, face_masks: ``(N, 1, S, S)`` true visible-face masks / true face regions, or ``None``.
    """

    names: tuple[str, ...]
    images: np.ndarray
    transforms: np.ndarray
    masks: np.ndarray | None = None
    face_masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def crop_size(self) -> int:
        return int(self.images.shape[-1])


def load_crops(folder: FaceImageFolder, indices: Sequence[int] | None = None, progress: bool = False) -> Crops:
    """Read and align the images of ``folder`` (or ``indices``) once (several models can then run on them)."""
    idx = list(range(len(folder))) if indices is None else list(indices)
    if not idx:
        raise InputFileError(folder.root, "no images to evaluate")
    items = [folder[i] for i in tqdm(idx, desc=f"crops {folder.root.name}", unit="img", disable=not progress, leave=False)]
    stack = lambda key: np.stack([it[key].numpy() for it in items]) if key in items[0] else None  # noqa: E731
    return Crops(tuple(it["name"] for it in items), stack("image"), stack("transform"), stack("mask"), stack("face_mask"))


def predict_crops(model: EvalModel, crops: Crops, segmentations: Sequence[str] = ("unet",), batch_size: int = 32,
                  keep_images: bool = True, progress: bool = False) -> Predictions:
    """Run ``model`` on aligned crops, in batches (``keep_images=False``: coefficients, neutral
    shapes and transforms only, for large real sets)."""
    if crops.crop_size != model.crop_size:
        raise ValueError(f"crops are {crops.crop_size} px but {model.checkpoint} works at {model.crop_size} px")
    model.encoder.eval()
    if model.unet is not None:
        model.unet.eval()
    segs = tuple(segmentations) if keep_images else ()
    parts: dict[str, list] = {k: [] for k in ("neutral", "renders", "coverage")}
    coeff_parts: dict[str, list] = {}
    seg_parts: dict[str, list] = {name: [] for name in segs}
    for s in tqdm(range(0, len(crops), batch_size), desc=f"predict {model.checkpoint.name}", unit="batch",
                  disable=not progress, leave=False):
        res = predict_batch(model, torch.from_numpy(crops.images[s:s + batch_size]), segs)
        parts["neutral"].append(res["neutral"].float().cpu().numpy())
        for k, v in res["coeffs"].as_dict().items():
            coeff_parts.setdefault(k, []).append(v.float().cpu().numpy())
        if keep_images:
            parts["renders"].append(res["render"].float().cpu().numpy())
            parts["coverage"].append(res["coverage"].float().cpu().numpy())
            for name in segs:
                seg_parts[name].append(res["seg"][name].float().cpu().numpy())
    return Predictions(
        names=crops.names,
        coeffs={k: np.concatenate(v) for k, v in coeff_parts.items()},
        neutral=np.concatenate(parts["neutral"]),
        transforms=crops.transforms,
        images=crops.images if keep_images else None,
        renders=np.concatenate(parts["renders"]) if keep_images else None,
        coverage=np.concatenate(parts["coverage"]) if keep_images else None,
        seg={k: np.concatenate(v) for k, v in seg_parts.items()} if keep_images else None,
        masks=crops.masks if keep_images else None,
        face_masks=crops.face_masks if keep_images else None,
    )


def predict_folder(model: EvalModel, folder: FaceImageFolder, segmentations: Sequence[str] = ("unet",),
                   batch_size: int = 32, keep_images: bool = True, progress: bool = False,
                   indices: Sequence[int] | None = None) -> Predictions:
    """:func:`load_crops` then :func:`predict_crops`."""
    return predict_crops(model, load_crops(folder, indices, progress), segmentations, batch_size, keep_images, progress)


def now_landmark_points(model: FaceModel | EvalModel, neutral: np.ndarray) -> np.ndarray:
    """The 7 NoW landmarks ``(N, 7, 3)`` of neutral meshes ``(N, V, 3)`` (the model's NoW vertices)."""
    fm = model.face_model if isinstance(model, EvalModel) else model
    ids = fm.now_landmarks7.cpu().numpy().astype(np.int64)
    return np.asarray(neutral)[:, ids]


__all__ = ["Crops", "EvalModel", "Predictions", "load_crops", "predict_crops", "SEGMENTATIONS", "load_eval_model", "now_landmark_points", "open_folder",
           "predict_batch", "predict_folder", "resolve_device"]
