"""Pseudo masks ``z(p)`` of the initialised encoder, stored losslessly as PNG (docs/method.md 3.2).

For every training image the initialised encoder predicts the face, the render is compared with
the image, and ``z(p) = m_r(p) [||I(p) - R(p)||_2 < 3 sigma]`` (:func:`focus.losses.robust_inlier_mask`)
is written as an 8-bit PNG (255 = face / inlier, 0 = outlier or background) at the training
crop size, named like the image's mask (``<stem>.png``, see :func:`focus.data.dataset.mask_name`).
The crops are the un-augmented aligned crops of :class:`focus.data.FaceImageFolder`;
:class:`PseudoMaskDataset` serves those crops together with their pseudo masks for the U-Net
pre-training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from focus.data.dataset import mask_name, read_mask
from focus.errors import InputFileError
from focus.io_utils import atomic_path
from focus.losses import ROBUST_SIGMA, ROBUST_THRESHOLD, robust_inlier_mask
from focus.train.steps import frozen_render


def write_mask_png(path: str | Path, mask: np.ndarray) -> None:
    """Write a ``(H, W)`` mask in [0, 1] as an 8-bit grey PNG (atomic; 0/1 masks round-trip exactly)."""
    arr = np.clip(np.round(np.asarray(mask, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(arr, mode="L").save(tmp, format="PNG")


@torch.no_grad()
def compute_pseudo_masks(
    encoder, renderer, images: torch.Tensor, sigma: float = ROBUST_SIGMA, threshold: float = ROBUST_THRESHOLD
) -> torch.Tensor:
    """``z(p)`` ``(B, 1, S, S)`` in {0, 1} for ``(B, 3, S, S)`` images (encoder in eval mode)."""
    out = frozen_render(encoder, renderer, images)
    return robust_inlier_mask(images, out.image, out.mask, sigma, threshold)


@torch.no_grad()
def write_pseudo_masks(
    encoder,
    renderer,
    dataset: Dataset,
    indices: Sequence[int],
    out_dir: str | Path,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    sigma: float = ROBUST_SIGMA,
    threshold: float = ROBUST_THRESHOLD,
    progress: bool = True,
) -> dict[str, float]:
    """Compute and store the pseudo masks of ``dataset[indices]`` (un-augmented crops) in ``out_dir``.

    The encoder is put in eval mode (and left so). Returns a summary: image count and the mean
    inlier share inside the rendered face.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder.eval()
    inside, covered = 0.0, 0.0
    idx = list(indices)
    for start in tqdm(range(0, len(idx), batch_size), desc="pseudo masks", unit="batch", disable=not progress):
        items = [dataset[i] for i in idx[start : start + batch_size]]
        images = torch.stack([it["image"] for it in items]).to(device)
        out = frozen_render(encoder, renderer, images)
        z = robust_inlier_mask(images, out.image, out.mask, sigma, threshold)
        inside += float(z.sum())
        covered += float(out.mask.sum())
        for it, zi in zip(items, z.cpu()):
            write_mask_png(out_dir / mask_name(it["name"]), zi[0].numpy())
    return {"images": len(idx), "inlier_share_in_face": inside / max(covered, 1.0)}


class PseudoMaskDataset(Dataset):
    """``base[i]`` (un-augmented crops) plus ``"pseudo_mask"`` ``(1, S, S)`` in {0, 1} from ``mask_dir``."""

    def __init__(self, base: Dataset, mask_dir: str | Path) -> None:
        self.base = base
        self.mask_dir = Path(mask_dir)
        if not self.mask_dir.is_dir():
            raise InputFileError(self.mask_dir, "pseudo-mask folder not found", "run the pretrain_seg stage")

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:  # the crops are un-augmented: nothing to do
        pass

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[i])
        path = self.mask_dir / mask_name(item["name"])
        m = read_mask(path)
        if m.shape != tuple(item["image"].shape[-2:]):
            raise InputFileError(
                path,
                f"pseudo mask is {m.shape} but the crop is {tuple(item['image'].shape[-2:])}",
                "re-run the pretrain_seg stage",
            )
        item["pseudo_mask"] = torch.from_numpy((m >= 0.5).astype(np.float32))[None]
        return item


__all__ = ["PseudoMaskDataset", "compute_pseudo_masks", "write_mask_png", "write_pseudo_masks"]
