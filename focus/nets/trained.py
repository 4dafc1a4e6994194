"""The FOCUS checkpoint format: reading a training stage's networks back (safely).

Every networks file the training writes (``models/focus.pt``, ``models/focus_init.pt``,
``models/focus_pretrain_seg.pt``, ``checkpoints/em/round_XX.pt``, and the resumable ``last.pt``)
is a dict of tensors and plain data::

    {"format": "focus-train",
     "layout": [n_id, n_exp, n_albedo],           # coefficient layout of the face model
     "encoder_settings": {...}, "unet_settings": {...},
     "render_settings": {...}, "data_settings": {...},
     "facemodel": "models/facemodel.npz",          # the face model it was trained with
     "nets": {"encoder": state_dict, "unet": state_dict}}   # "unet" absent after init

It is read with ``torch.load(weights_only=True)`` (:func:`focus.nets.checkpoint.load_torch_file`):
a file holding pickled Python objects is refused before anything in it runs. A file of another
kind (an identity network, an ArcFace ``backbone.pth``) is named as such, with the option that
takes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from focus.config import from_dict
from focus.errors import InputFileError
from focus.nets.checkpoint import load_torch_file
from focus.nets.encoder import EncoderSettings, ReconstructionEncoder
from focus.nets.unet import SegmentationUNet, UNetSettings

#: ``format`` entry of every networks file of the training stages.
CHECKPOINT_FORMAT = "focus-train"
#: ``format`` entry of an identity network (:mod:`focus.idnet.network`).
IDNET_FORMAT = "focus-idnet"

_CHECKPOINT_FIX = "use models/focus.pt, models/focus_init.pt or checkpoints/em/round_XX.pt"


def describe_contents(data: Any) -> str:
    """What a loaded ``.pt`` file holds, in words, with the option that takes it (for error messages)."""
    if isinstance(data, dict):
        fmt = data.get("format")
        if fmt == CHECKPOINT_FORMAT:
            return "a FOCUS checkpoint (reconstruction networks; `focus reconstruct --model` takes it)"
        if fmt == IDNET_FORMAT:
            return (
                "an identity network (format focus-idnet; `focus reconstruct --adapt-identity FILE` and "
                "train.identity_path take it)"
            )
        if fmt is not None:
            return f"a file of format {str(fmt)[:60]!r}"
        inner = data.get("state_dict") if isinstance(data.get("state_dict"), dict) else data
        if inner and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in inner.items()):
            return (
                f"a bare state dict of {len(inner)} tensors, e.g. an ArcFace backbone.pth "
                "(`focus reconstruct --adapt-identity arcface:FILE` and train.identity: arcface take it)"
            )
        return f"a dict without a 'format' entry (keys {sorted(map(str, data))[:6]})"
    return f"a {type(data).__name__}"


def read_focus_checkpoint(path: str | Path) -> dict[str, Any]:
    """The dict of a FOCUS networks file (CPU tensors), checked to be one.

    Raises:
        InputFileError: missing, unreadable, refused (pickled Python objects), or another kind of
            file (the message says which, e.g. an identity network, and the option that takes it).
    """
    path = Path(path)
    ckpt = load_torch_file(path, "FOCUS checkpoint", _CHECKPOINT_FIX)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputFileError(path, f"not a FOCUS checkpoint: it is {describe_contents(ckpt)}", _CHECKPOINT_FIX)
    missing = [k for k in ("layout", "encoder_settings", "nets") if k not in ckpt]
    if missing or not isinstance(ckpt["nets"], dict) or "encoder" not in ckpt["nets"]:
        raise InputFileError(
            path, f"incomplete FOCUS checkpoint (missing {missing or ['nets.encoder']})", _CHECKPOINT_FIX
        )
    return ckpt


def networks_from_checkpoint(
    ckpt: dict[str, Any], path: str | Path, device: str | torch.device = "cpu"
) -> tuple[ReconstructionEncoder, SegmentationUNet | None]:
    """``(encoder, unet or None)`` rebuilt from a checkpoint dict (:func:`read_focus_checkpoint`), in
    eval mode on ``device``; ``path`` names the file in errors."""
    from focus.coeffs import CoeffLayout

    path = Path(path)
    try:
        layout = CoeffLayout(*(int(n) for n in ckpt["layout"]))
        enc = ReconstructionEncoder(layout, from_dict(EncoderSettings, ckpt["encoder_settings"], str(path)))
        enc.load_state_dict(ckpt["nets"]["encoder"])
        unet = None
        if "unet" in ckpt["nets"]:
            unet = SegmentationUNet(from_dict(UNetSettings, ckpt.get("unet_settings"), str(path)))
            unet.load_state_dict(ckpt["nets"]["unet"])
    except InputFileError:
        raise
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputFileError(
            path,
            f"the networks do not match their recorded settings ({exc.__class__.__name__}: {first})",
            _CHECKPOINT_FIX,
        ) from exc
    return enc.to(device).eval(), None if unet is None else unet.to(device).eval()


def load_trained(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[ReconstructionEncoder, SegmentationUNet | None, dict[str, Any]]:
    """``(encoder, unet or None, checkpoint dict)`` from a stage's networks file (eval mode, on ``device``)."""
    ckpt = read_focus_checkpoint(path)
    enc, unet = networks_from_checkpoint(ckpt, path, device)
    return enc, unet, ckpt


__all__ = [
    "CHECKPOINT_FORMAT",
    "IDNET_FORMAT",
    "describe_contents",
    "load_trained",
    "networks_from_checkpoint",
    "read_focus_checkpoint",
]
