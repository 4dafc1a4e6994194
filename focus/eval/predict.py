"""A trained checkpoint run on a face-image folder, through the same alignment as training.

:func:`load_eval_model` rebuilds the networks of a training checkpoint (``models/focus.pt``,
``models/focus_init.pt``, ``checkpoints/em/round_XX.pt``) with the face model and the renderer
they were trained with (:func:`focus.predictor.load_model`). :func:`open_folder` opens a
face-image folder (:class:`focus.data.FaceImageFolder`, no augmentation) with the training's
5-point template (:func:`focus.data.template_from_model` at the checkpoint's render size) and
``data`` settings, so every image is cropped exactly as a training image is. :func:`predict_folder`
runs encoder, renderer and a segmentation on every crop, through the same forward pass as
training and validation (:class:`focus.predictor.Predictor`: the U-Net sees the render clamped
to [0, 1]).

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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from focus.data import DataSettings, FaceImageFolder
from focus.devices import resolve_device as _resolve_device
from focus.errors import InputFileError
from focus.facemodel.model import FaceModel
from focus.predictor import SEGMENTATIONS, FocusModel, load_model


def resolve_device(device: str = "cpu") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given (CUDA checked)."""
    return _resolve_device(device, "eval.device", "set eval.device: cpu")


def load_eval_model(
    checkpoint: str | Path,
    facemodel: str | Path | FaceModel,
    data: DataSettings = DataSettings(),
    device: str | torch.device = "cpu",
    render_backend: str | None = None,
) -> FocusModel:
    """Load a training checkpoint for evaluation (:func:`focus.predictor.load_model`).

    Args:
        checkpoint: a networks file written by the training stages.
        facemodel: the face model file (or model) the checkpoint was trained with.
        data: the training's ``data`` settings (alignment method, border); ``crop_size`` is
            taken from the checkpoint's render settings.
        device: where to run (``eval.device``).
        render_backend: override the checkpoint's rasterizer backend (``None``: keep it).

    Raises:
        InputFileError: missing, refused or foreign checkpoint, or a face model that does not fit it.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found", "run the training stages (dvc repro em)")
    dev = resolve_device(device) if isinstance(device, str) else device
    return load_model(path, facemodel, data, dev, render_backend)


def open_folder(
    root: str | Path, model: FocusModel, images: str = "images", landmarks: str = "landmarks.csv"
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
def predict_batch(model: FocusModel, images: torch.Tensor, segmentations: Sequence[str] = ("unet",)) -> dict:
    """The one forward pass (:meth:`focus.predictor.FocusModel.predict`) on crops ``(B, 3, S, S)`` in [0, 1].

    Returns a dict of tensors: ``coeffs`` (a :class:`focus.coeffs.Coeffs`), ``render``
    ``(B, 3, S, S)`` (unclamped), ``coverage`` ``(B, 1, S, S)``, ``neutral`` ``(B, V, 3)`` and
    ``seg`` (per name ``(B, 1, S, S)``; the U-Net sees the render clamped to [0, 1], as in training).
    """
    for name in segmentations:
        if name not in SEGMENTATIONS:
            raise ValueError(f"unknown segmentation {name!r}; known: {SEGMENTATIONS}")
    p = model.predict(images, segmentations)
    return {"coeffs": p.coeffs, "render": p.render.image, "coverage": p.render.mask, "neutral": p.neutral, "seg": p.seg}


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
    items = [
        folder[i] for i in tqdm(idx, desc=f"crops {folder.root.name}", unit="img", disable=not progress, leave=False)
    ]
    stack = lambda key: np.stack([it[key].numpy() for it in items]) if key in items[0] else None  # noqa: E731
    return Crops(
        tuple(it["name"] for it in items), stack("image"), stack("transform"), stack("mask"), stack("face_mask")
    )


def predict_crops(
    model: FocusModel,
    crops: Crops,
    segmentations: Sequence[str] = ("unet",),
    batch_size: int = 32,
    keep_images: bool = True,
    progress: bool = False,
) -> Predictions:
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
    for s in tqdm(
        range(0, len(crops), batch_size),
        desc=f"predict {model.checkpoint.name}",
        unit="batch",
        disable=not progress,
        leave=False,
    ):
        res = predict_batch(model, torch.from_numpy(crops.images[s : s + batch_size]), segs)
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


def predict_folder(
    model: FocusModel,
    folder: FaceImageFolder,
    segmentations: Sequence[str] = ("unet",),
    batch_size: int = 32,
    keep_images: bool = True,
    progress: bool = False,
    indices: Sequence[int] | None = None,
) -> Predictions:
    """:func:`load_crops` then :func:`predict_crops`."""
    return predict_crops(model, load_crops(folder, indices, progress), segmentations, batch_size, keep_images, progress)


def now_landmark_points(model: FaceModel | FocusModel, neutral: np.ndarray) -> np.ndarray:
    """The 7 NoW landmarks ``(N, 7, 3)`` of neutral meshes ``(N, V, 3)`` (the model's NoW vertices)."""
    fm = model.face_model if isinstance(model, FocusModel) else model
    ids = fm.now_landmarks7.cpu().numpy().astype(np.int64)
    return np.asarray(neutral)[:, ids]


__all__ = [
    "Crops",
    "FocusModel",
    "Predictions",
    "load_crops",
    "predict_crops",
    "SEGMENTATIONS",
    "load_eval_model",
    "now_landmark_points",
    "open_folder",
    "predict_batch",
    "predict_folder",
    "resolve_device",
]
