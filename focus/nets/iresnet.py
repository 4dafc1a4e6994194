"""An iResNet face-recognition network whose weights load from insightface's arcface_torch.

Architecture and parameter names follow ``recognition/arcface_torch/backbones/iresnet.py`` of
insightface, so its ``backbone.pth`` files (e.g. ArcFace iResNet-50 trained on MS1MV3) load with
:func:`load_arcface` key for key. Written independently from that description:

* stem: ``conv1`` (3x3, stride 1, no bias) -> ``bn1`` -> ``prelu``;
* ``layer1`` .. ``layer4``: stages of :class:`IBasicBlock` (``bn1 -> conv1 -> bn2 -> prelu ->
  conv2 (stride) -> bn3`` plus the identity or ``downsample`` = 1x1 conv + BN), the first block of
  every stage has stride 2; stage widths ``64, 128, 256, 512`` at ``base_width=64``;
* head: ``bn2`` -> flatten -> ``dropout`` -> ``fc`` -> ``features`` (BatchNorm1d), 512-d.

Input ``(B, 3, 112, 112)`` RGB in [-1, 1] (a crop made by :func:`focus.nets.face_align.align_faces`);
output the un-normalised 512-d embedding. :meth:`IResNet.early_features` stops after ``layer1``
(``(B, 64, 56, 56)`` at 112 px): the ``phi_sh`` map of the segmentation losses.

**Smaller networks for CPU training.** ``base_width`` scales every stage width (e.g. 16 gives
16-32-64-128), ``layers`` may be any four block counts (e.g. ``(1, 1, 1, 1)``), ``input_size``
may be any crop size (e.g. 56 or 64: the ``fc`` layer is sized for the final map, ``ceil(S/16)``
squared) and ``num_features`` any embedding size. Only the defaults
(``base_width=64, input_size=112, num_features=512``) match insightface's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from focus.config import param
from focus.nets.checkpoint import load_state_dict_strict, read_state_dict

#: Block counts of the four stages, as in arcface_torch.
IRESNET_LAYERS: dict[str, tuple[int, int, int, int]] = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
}

BN_EPS = 1e-5


@dataclass(frozen=True)
class IResNetSettings:
    """Shape of an iResNet.

    Attributes:
        arch: a key of :data:`IRESNET_LAYERS`, or ``"custom"`` with ``layers`` given.
        layers: block counts of the four stages (``None``: from ``arch``).
        base_width: width of the stem and of ``layer1`` (64 for insightface weights).
        input_size: side of the square input crop, px (112 for insightface weights).
        num_features: embedding size (512 for insightface weights).
        dropout: dropout before ``fc`` (training only; 0 in arcface_torch's released models).
    """

    arch: str = "iresnet50"
    layers: tuple[int, int, int, int] | None = param(None, ge=1)
    base_width: int = param(64, ge=1)
    input_size: int = param(112, ge=16)
    num_features: int = param(512, ge=1)
    dropout: float = param(0.0, ge=0, lt=1)

    def stage_blocks(self) -> tuple[int, int, int, int]:
        if self.layers is not None:
            if len(self.layers) != 4 or min(self.layers) < 1:
                raise ValueError(f"iResNet needs four positive block counts, got {self.layers}")
            return tuple(int(n) for n in self.layers)  # type: ignore[return-value]
        if self.arch not in IRESNET_LAYERS:
            raise ValueError(f"unknown iResNet arch {self.arch!r}; known: {sorted(IRESNET_LAYERS)} (or give layers)")
        return IRESNET_LAYERS[self.arch]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: ``x + bn3(conv2(prelu(bn2(conv1(bn1(x))))))``."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=BN_EPS)
        self.conv1 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(cout, eps=BN_EPS),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def _out_size(size: int) -> int:
    """Spatial side after the four stride-2 3x3 convolutions (padding 1)."""
    for _ in range(4):
        size = (size - 1) // 2 + 1
    return size


class IResNet(nn.Module):
    """iResNet with arcface_torch's module names; ``forward`` = :meth:`embedding`.

    Satisfies :class:`focus.nets.perceptual.FaceFeatureBackbone`.
    """

    def __init__(self, settings: IResNetSettings = IResNetSettings()) -> None:
        super().__init__()
        self.settings = settings
        self.input_size = int(settings.input_size)
        blocks = settings.stage_blocks()
        w = settings.base_width
        widths = (w, 2 * w, 4 * w, 8 * w)
        self.conv1 = _conv3x3(3, w)
        self.bn1 = nn.BatchNorm2d(w, eps=BN_EPS)
        self.prelu = nn.PReLU(w)
        cin = w
        for i, (n, cout) in enumerate(zip(blocks, widths), start=1):
            stage = [IBasicBlock(cin, cout, stride=2)] + [IBasicBlock(cout, cout) for _ in range(n - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            cin = cout
        self.bn2 = nn.BatchNorm2d(cin, eps=BN_EPS)
        self.dropout = nn.Dropout(p=settings.dropout)
        self.fc = nn.Linear(cin * _out_size(self.input_size) ** 2, settings.num_features)
        self.features = nn.BatchNorm1d(settings.num_features, eps=BN_EPS)
        # initialisation as in arcface_torch (matters only when training one from scratch)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.features.weight.requires_grad_(False)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(
                f"iResNet expects (B, 3, {self.input_size}, {self.input_size}) crops in [-1, 1], got {tuple(x.shape)}"
            )

    def early_features(self, x: Tensor) -> Tensor:
        """``(B, 3, S, S)`` in [-1, 1] -> feature map after ``layer1`` ``(B, base_width, S/2, S/2)``."""
        self._check(x)
        return self.layer1(self.prelu(self.bn1(self.conv1(x))))

    def embedding(self, x: Tensor) -> Tensor:
        """``(B, 3, S, S)`` in [-1, 1] -> ``(B, num_features)`` embedding (not normalised)."""
        x = self.early_features(x)
        x = self.layer4(self.layer3(self.layer2(x)))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.embedding(x)


def build_iresnet(settings: IResNetSettings = IResNetSettings()) -> IResNet:
    """A randomly initialised iResNet of the given shape."""
    return IResNet(settings)


def _guess_arch(state: dict[str, Tensor]) -> str | None:
    counts = []
    for i in range(1, 5):
        ids = {k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}
        counts.append(len(ids))
    for name, layers in IRESNET_LAYERS.items():
        if tuple(counts) == layers:
            return name
    return None


def load_arcface(path: str | Path, arch: str = "iresnet50") -> IResNet:
    """An insightface arcface_torch ``backbone.pth`` loaded strictly into an :class:`IResNet`.

    Args:
        path: the state dict file (e.g. ``ms1mv3_arcface_r50_fp16/backbone.pth``).
        arch: ``"iresnet18"``, ``"iresnet34"``, ``"iresnet50"`` or ``"iresnet100"``.

    Returns the network in eval mode (float32, CPU). Raises :class:`focus.errors.InputFileError`
    naming ``path`` if the file is missing, unreadable, or its keys / shapes do not match ``arch``
    (missing BatchNorm ``num_batches_tracked`` counters are tolerated).
    """
    path = Path(path)
    if arch not in IRESNET_LAYERS:
        raise ValueError(f"unknown ArcFace arch {arch!r}; known: {sorted(IRESNET_LAYERS)}")
    state = read_state_dict(path, f"ArcFace {arch}")
    net = IResNet(IResNetSettings(arch=arch))
    guess = _guess_arch(state)
    hint = (
        f"the file looks like {guess}: set the ArcFace arch to {guess!r}"
        if guess and guess != arch
        else f"expected an insightface arcface_torch {arch} backbone.pth"
    )
    load_state_dict_strict(net, state, path, f"ArcFace {arch}", hint=hint)
    return net.eval()
