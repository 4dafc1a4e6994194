"""The offline identity network: a small iResNet, its settings and its checkpoint file.

The pipeline trains this network itself (stage ``idnet``) when no ArcFace weights are given; it
satisfies :class:`focus.nets.perceptual.FaceFeatureBackbone` (``early_features`` after ``layer1``,
``embedding``), so :class:`focus.nets.perceptual.PerceptualNet` wraps it exactly like ArcFace.

Checkpoint format (``models/idnet.pt``, written atomically; readable with ``weights_only=True``)::

    {"format": "focus-idnet", "version": 1,
     "iresnet": {IResNetSettings fields},       # the architecture
     "state_dict": {name: tensor},              # the backbone only (no margin head)
     "meta": {...}}                             # free-form: training summary, metrics
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from focus.config import param
from focus.errors import InputFileError
from focus.io_utils import atomic_path
from focus.nets.checkpoint import load_state_dict_strict, load_torch_file
from focus.nets.iresnet import IResNet, IResNetSettings
from focus.nets.perceptual import PerceptualNet
from focus.nets.trained import IDNET_FORMAT, describe_contents

FORMAT_NAME = IDNET_FORMAT
FORMAT_VERSION = 1


@dataclass(frozen=True)
class IdentityNetSettings:
    """Shape of the offline identity network (``params.yaml``: ``idnet.net``).

    Attributes:
        crop_size: side of the aligned input crop, px. 56 suits the 64 px CPU pipeline: with the
            ArcFace template at 56 px the eye distance is ~17.6 px, about what a face has in a
            64 px image at the default camera, so crops are neither up- nor heavily down-sampled.
            Use 112 with 224 px images.
        layers: residual blocks per stage (an ``iresnet18`` has ``(2, 2, 2, 2)``).
        base_width: channels of the stem and ``layer1`` (doubling per stage).
        embedding_dim: size of the embedding.
        dropout: dropout before the embedding layer during training.
    """

    crop_size: int = param(56, ge=16)
    layers: tuple[int, int, int, int] = param((1, 1, 1, 1), ge=1)
    base_width: int = param(16, ge=1)
    embedding_dim: int = param(128, ge=1)
    dropout: float = param(0.0, ge=0, lt=1)

    def iresnet(self) -> IResNetSettings:
        return IResNetSettings(
            arch="custom",
            layers=tuple(int(n) for n in self.layers),
            base_width=int(self.base_width),
            input_size=int(self.crop_size),
            num_features=int(self.embedding_dim),
            dropout=float(self.dropout),
        )


def build_identity_net(settings: IdentityNetSettings = IdentityNetSettings()) -> IResNet:
    """A randomly initialised identity network (call ``torch.manual_seed`` first for a fixed draw)."""
    return IResNet(settings.iresnet())


def save_identity_net(net: IResNet, path: str | Path, meta: dict | None = None) -> None:
    """Write the backbone's weights and architecture to ``path`` (atomically)."""
    settings = asdict(net.settings)
    settings["layers"] = list(net.settings.stage_blocks())
    blob = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "iresnet": settings,
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as fh:
        torch.save(blob, fh)  # a file object: no random temporary name inside the zip (reproducible bytes)


def load_identity_backbone(path: str | Path) -> IResNet:
    """The :class:`IResNet` stored by :func:`save_identity_net`, in eval mode (CPU, float32).

    Raises :class:`InputFileError` naming ``path`` if the file is missing, not such a checkpoint,
    or its weights do not fit its architecture.
    """
    path = Path(path)
    fix = "run `dvc repro idnet` to train it, or give ArcFace weights instead"
    if not path.is_file():
        raise InputFileError(path, "identity network checkpoint not found", fix)
    blob = load_torch_file(path, "identity network checkpoint", fix)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT_NAME:
        raise InputFileError(path, f"not a {FORMAT_NAME} checkpoint: it is {describe_contents(blob)}", fix)
    if int(blob.get("version", -1)) > FORMAT_VERSION:
        raise InputFileError(
            path,
            f"checkpoint version {blob.get('version')} is newer than this code ({FORMAT_VERSION})",
            "update focus or retrain the network",
        )
    try:
        cfg = dict(blob["iresnet"])
        cfg["layers"] = tuple(int(n) for n in cfg["layers"])
        settings = IResNetSettings(**cfg)
        net = IResNet(settings)
    except Exception as exc:  # noqa: BLE001 - malformed architecture entry
        raise InputFileError(path, f"bad architecture entry ({exc.__class__.__name__}: {exc})", fix) from exc
    load_state_dict_strict(net, blob["state_dict"], path, "the identity network", hint=fix)
    return net.eval()


def load_identity_net(path: str | Path) -> PerceptualNet:
    """The frozen perceptual network (``phi_deep``, ``phi_sh``) from an identity-net checkpoint."""
    return PerceptualNet(load_identity_backbone(path))


def checkpoint_meta(path: str | Path) -> dict:
    """The ``meta`` entry of an identity-net checkpoint (training summary)."""
    blob = load_torch_file(path, "identity network checkpoint")
    return dict(blob.get("meta", {})) if isinstance(blob, dict) else {}
