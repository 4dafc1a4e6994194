"""Training settings: one frozen dataclass per ``params.yaml`` group (``train``, ``init``,
``pretrain_seg``, ``em``).

Defaults here are the project's **CPU default** at 64 px (what ``dvc repro`` runs on a CPU); the
published schedule lives in ``configs/paper.yaml`` (docs/method.md 4). Where a CPU default departs
from docs/method.md, the attribute's docstring says why.

Loss-weight scaling at 64 px (why ``lm`` and ``reg`` differ from docs/method.md). The published
weights are tuned for 224 px. ``L_lm`` is a squared *pixel* error: at 64 px the same angular
misfit is ``64/224 = 0.29`` as many pixels, so ``L_lm`` is ``(224/64)^2 = 12.25`` times smaller
and carries ~12x less force; ``L_reg`` divides by the image side ``S``, so at 64 px it is
``224/64 = 3.5`` times larger. The 64 px defaults multiply ``w_lm`` by 12.25 (5e-4 -> 6.125e-3)
and divide ``w_reg`` by 3.5 (0.1 -> 0.0286), which makes every term pull exactly as at paper
scale. Everything else (robust, pixel, identity, area, segmentation terms) is a mean over pixels
and does not depend on the image size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from focus.config import ParamValueError, check_fields, param, positive
from focus.losses import InitLossWeights, ReconstructionLossWeights, SegmentationLossWeights
from focus.nets.encoder import EncoderSettings
from focus.nets.unet import UNetSettings
from focus.precision import PRECISIONS
from focus.render.renderer import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

OPTIMIZERS = ("adam", "adadelta", "sgd")
IDENTITY_KINDS = ("none", "focus", "arcface")
#: Masks of the EM's reconstruction phases (:attr:`EMSettings.masks`).
EM_MASKS = ("unet", "pseudo")

#: ``(224 / 64)^2``: how much weaker ``L_lm`` is at 64 px than at 224 px (see module docstring).
LM_SCALE_64 = (224.0 / 64.0) ** 2
#: ``224 / 64``: how much stronger ``L_reg`` is at 64 px than at 224 px.
REG_SCALE_64 = 224.0 / 64.0


def scaled_lm_weight(paper_weight: float, image_size: int) -> float:
    """``w_lm`` that pulls at ``image_size`` as ``paper_weight`` does at 224 px."""
    return paper_weight * (224.0 / image_size) ** 2


def scaled_reg_weight(paper_weight: float, image_size: int) -> float:
    """``w_reg`` that pulls at ``image_size`` as ``paper_weight`` does at 224 px."""
    return paper_weight * image_size / 224.0


@dataclass(frozen=True)
class OptimSettings:
    """One optimiser with a step-decay learning rate ``lr * decay ** (step // decay_every)``,
    ramped up linearly over the first ``warmup`` steps.

    Attributes:
        name: ``"adam"``, ``"adadelta"`` (the paper's) or ``"sgd"``.
        lr: initial learning rate.
        decay: multiplicative decay per ``decay_every`` steps of *this network* (1 = constant).
        decay_every: steps between decays.
        betas: Adam's betas; ``rho``: Adadelta's decay; ``momentum``: SGD's.
        weight_decay: L2 penalty (0 in the paper).
        grad_clip: clip the gradient's global norm to this (0 = off).
        warmup: steps of linear learning-rate warm-up (0 = off). Adam's first steps move every
            weight by about ``lr`` whatever its gradient, so a zero-initialised head jumps all its
            outputs at once (identity, expression, pose); the warm-up keeps that first jump small.
    """

    name: str = param("adam", choices=OPTIMIZERS)
    lr: float = positive(1e-3)
    decay: float = positive(1.0)
    decay_every: int = param(1000, ge=1)
    betas: tuple[float, float] = param((0.9, 0.999), ge=0, lt=1)
    rho: float = param(0.9, ge=0, le=1)
    momentum: float = param(0.9, ge=0)
    weight_decay: float = param(0.0, ge=0)
    grad_clip: float = param(0.0, ge=0)
    warmup: int = param(0, ge=0)

    def __post_init__(self) -> None:
        check_fields(self)

    def lr_at(self, step: int) -> float:
        """Learning rate after ``step`` optimiser steps of this network."""
        ramp = min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else 1.0
        return self.lr * ramp * self.decay ** (step // self.decay_every)


@dataclass(frozen=True)
class TrainSettings:
    """Shared training settings (``params.yaml`` group ``train``).

    Attributes:
        data: the training face-image folder (:class:`focus.data.FaceImageFolder` layout).
        val_count: the last ``val_count`` images of ``data`` are held out for validation (never
            trained on); they need true masks (``masks/``) and ``truth`` for every metric.
        val_data: optional separate validation folder; when set, ``val_count`` is ignored and
            all of ``data`` is used for training.
        image_size: training crop side, px; ``None`` takes ``render.image_size`` (the two must agree:
            the renderer draws at ``render.image_size``).
        facemodel: the face model file (the ``facemodel`` stage's output).
        batch_size: images per step **per process** (DDP multiplies it by the world size).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"`` (CUDA when available).
        workers: DataLoader worker processes (0 = load in the main process).
        num_threads: ``torch.set_num_threads``; 0 leaves torch's default, -1 ("auto") takes
            ``os.cpu_count()`` shared among the processes (:func:`focus.devices.resolve_threads`;
            never the current load, so a run's numbers do not depend on what else the machine
            does). Results depend on it: it is part of what a run is. On a busy machine fewer
            threads avoid contention.
        augment: the paper's shift / scale / rotation / flip augmentation on training crops.
        encoder, unet: network shapes. CPU default U-Net: base width 8 (8-16-32-64-128; cheaper
            per step than 16, so more steps fit the budget) and **no dropout**: the
            phases are a few hundred steps (nothing to regularise against), and dropout before
            BatchNorm shifts the activations' variance between train and eval mode, which matters
            because the U-Net is used in eval mode by the other phases and the validation.
        identity: the frozen face-recognition network: ``"focus"`` (the project's own offline
            identity network, a checkpoint from the ``idnet`` stage), ``"arcface"`` (insightface
            ``backbone.pth``, paper scale) or ``"none"`` (``L_id``, ``L_presv``, ``L_dist`` left out).
        identity_path: the checkpoint for ``identity`` (``""`` with ``"none"``).
        identity_arch: iResNet name for ``"arcface"`` weights.
        checkpoint_every: also write a resumable checkpoint every this many steps (0 = only at
            the end of each phase).
        max_nonfinite: stop after this many non-finite losses in a row (each is skipped).
        log_every: log metrics to dvclive every this many steps.
        seed: base seed (data order, augmentation, network initialisation).
        val_batch_size: batch size of validation and pseudo-mask inference.
        progress: show tqdm progress bars.
        precision: ``"float32"`` everywhere, or ``"bf16"``: bfloat16 autocast around the networks
            (encoder, U-Net, identity network) in the training steps, while the renderer and the
            losses stay float32 (:mod:`focus.precision`). ``"bf16"`` is for CUDA (about 2x the
            convolution throughput); the CPU default keeps float32.
        channels_last: the CNNs' weights and inputs in channels-last memory layout (faster
            convolutions on a GPU with tensor cores; the values are unchanged).
        pin_memory: page-locked host memory for the batches, so the host-to-device copy runs
            asynchronously (``non_blocking``); ``None``: on when the device is CUDA.
        prefetch_factor: batches each DataLoader worker loads ahead (with ``workers > 0``).
    """

    data: str = "data/synth/train"
    val_count: int = param(48, ge=0)
    val_data: str = ""
    image_size: int | None = param(None, ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE)
    facemodel: str = "models/facemodel.npz"
    batch_size: int = param(16, ge=1)
    device: str = "cpu"
    workers: int = param(0, ge=0)
    num_threads: int = param(-1, ge=-1)
    augment: bool = True
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    unet: UNetSettings = field(default_factory=lambda: UNetSettings(base_width=8, depth=4, dropout=0.0))
    identity: str = param("focus", choices=IDENTITY_KINDS)
    identity_path: str = "models/idnet.pt"
    identity_arch: str = "iresnet50"
    checkpoint_every: int = param(200, ge=0)
    max_nonfinite: int = param(20, ge=1)
    log_every: int = param(1, ge=0)
    seed: int = param(0, ge=0)
    val_batch_size: int = param(32, ge=1)
    progress: bool = True
    precision: str = param("float32", choices=PRECISIONS)
    channels_last: bool = False
    pin_memory: bool | None = None
    prefetch_factor: int = param(2, ge=1)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class InitSettings:
    """Unsupervised initialisation of the encoder with ``L_init`` (``params.yaml`` group ``init``).

    CPU default: Adam at lr 1e-3 instead of the paper's Adadelta at lr 0.1 for 300k steps.
    Adadelta's effective step size grows slowly from zero (its accumulators start empty), which
    suits 300k iterations but leaves a ResNet-18 far from converged after the few hundred steps a
    CPU budget allows; Adam reaches a usable fit in that budget. The paper configuration stays
    available (``configs/paper.yaml``: ``name: adadelta, lr: 0.1, decay: 0.99, decay_every: 5000``).

    CPU default: the robust likelihood's inlier threshold is **annealed** from
    ``threshold_start`` sigmas down to the published ``weights.threshold`` (3 sigma) over the first
    ``threshold_anneal_steps`` steps (geometric interpolation), then stays there. Why: the
    outlier process gives no gradient to outlier pixels, so the fit can only improve the pixels
    that already match. For the mean face on the synthetic training crops only a small share of the
    rendered face lies within 3 sigma of the image, mostly the darker shaded parts, and a fixed
    3 sigma gate keeps the fit in that dark local optimum for the few hundred steps a CPU allows
    (docs/method.md 3.1). A wider gate at the start lets albedo and light find the face first;
    the final steps and the pseudo masks use exactly the published 3 sigma. Set
    ``threshold_start`` equal to ``weights.threshold`` (as ``configs/paper.yaml`` does) for the
    published fixed gate.

    Attributes:
        steps: optimiser steps (paper: 300k).
        optim: the encoder's optimiser.
        weights: loss weights; the 64 px default scales ``lm`` and ``reg`` (module docstring).
        threshold_start: inlier threshold (in sigmas) at step 0.
        threshold_anneal_steps: steps over which it reaches ``weights.threshold`` (0: no annealing).
    """

    steps: int = param(1500, ge=1)
    optim: OptimSettings = field(
        default_factory=lambda: OptimSettings(name="adam", lr=1e-3, decay=0.5, decay_every=750)
    )
    weights: InitLossWeights = field(
        default_factory=lambda: InitLossWeights(lm=scaled_lm_weight(5e-4, 64), reg=scaled_reg_weight(0.1, 64))
    )
    threshold_start: float = positive(8.0)
    threshold_anneal_steps: int = param(400, ge=0)

    def __post_init__(self) -> None:
        check_fields(self)

    def threshold_at(self, step: int) -> float:
        """Inlier threshold (sigmas) at encoder step ``step``: geometric from ``threshold_start``
        to ``weights.threshold`` over ``threshold_anneal_steps``, then constant."""
        end = self.weights.threshold
        if self.threshold_anneal_steps <= 0 or step >= self.threshold_anneal_steps:
            return end
        t = step / self.threshold_anneal_steps
        return float(self.threshold_start * (end / self.threshold_start) ** t)


@dataclass(frozen=True)
class PretrainSegSettings:
    """Pseudo masks and U-Net pre-training with plain BCE (``params.yaml`` group ``pretrain_seg``).

    The pseudo masks are computed once on the un-augmented training crops and stored as PNG; the
    U-Net is pre-trained on exactly those crops (no augmentation), with the render recomputed by
    the frozen initialised encoder, so input and target stay consistent.

    Attributes:
        steps: U-Net optimiser steps (paper: 30k).
        optim: the U-Net's optimiser (paper: Adadelta lr 0.03).
    """

    steps: int = param(400, ge=1)
    optim: OptimSettings = field(default_factory=lambda: OptimSettings(name="adam", lr=1e-3))

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class EMSettings:
    """EM rounds (``params.yaml`` group ``em``): per round a segmentation phase (encoder frozen)
    then a reconstruction phase (U-Net frozen).

    Attributes:
        rounds: number of EM rounds (the released paper model: ~6.7 rounds of 30k steps).
        seg_steps: segmentation (U-Net) steps per round (paper: ~5k).
        rec_steps: reconstruction (encoder) steps per round (paper: ~25k).
        encoder_optim: the encoder's optimiser in EM (paper: Adadelta lr 0.0438, x0.99 per 5k).
        unet_optim: the U-Net's optimiser in EM (paper: Adadelta lr 0.06 * 0.0438, x0.95 per 5k).
        rec_weights: ``L_E`` weights (64 px default scales ``lm`` and ``reg``).
        seg_weights: ``L_S`` weights. CPU default ``bin = 1.0``, ``area = 1.5`` (docs/method.md: 10, 0.5).
            Per face pixel ``L_nbr`` vs ``L_area`` keep a pixel as face when its neighbourhood
            residual ``n(p)`` is below ``w_area H W / (w_nbr N_face)``; the published weights set
            that bound below the residual a CPU-budget initialisation leaves on the visible face,
            and the published binary weight makes the mask run away to a trivial state ("no face"
            or "all face"). Why these values: docs/method.md 3.4 (chosen with
            ``bench/train_sweep.py bench/sweeps/em_synergy.yaml`` on the validation split).
        freeze_batchnorm: fine-tune both networks with their BatchNorm statistics frozen (eval-mode
            BatchNorm, weights trained) in the EM phases. CPU default ``True``: with batches of
            16 and phases of a few hundred steps, train-mode statistics of a network whose weights
            move quickly differ from its running statistics, so the U-Net trained in one phase
            behaved differently (in eval mode) in the next, and the EM rounds oscillated
            (docs/method.md 4). The paper (batch 12, 5k-25k steps per phase) trains them in train mode
            (``false``).
        grad_through_unet: the reconstruction phase computes ``M = S(R, I)`` from the current
            render with gradients reaching the encoder through the U-Net's input (as in the
            authors' code); ``False`` detaches ``M``.
        masks: the face masks ``M`` of the reconstruction phases. ``"unet"`` (default, FOCUS): the
            EM, ``M = S(R, I)`` of the U-Net, which each round's segmentation phase trains.
            ``"pseudo"`` (the ablation "pseudo masks frozen instead of EM"): the fixed pseudo masks
            ``z(p)`` of the initialised encoder (the ``pretrain_seg`` stage's masks, computed by a
            frozen copy of the encoder the EM starts from, on the same augmented crops the encoder
            is trained on, with the same sigma and 3-sigma threshold), no segmentation phases
            (``seg_steps`` unused, ``grad_through_unet`` moot: ``z`` carries no gradient); the
            U-Net in the checkpoints stays the pre-trained one (BCE on the pseudo masks).
    """

    rounds: int = param(4, ge=1)
    seg_steps: int = param(120, ge=0)
    rec_steps: int = param(250, ge=0)
    encoder_optim: OptimSettings = field(default_factory=lambda: OptimSettings(name="adam", lr=2e-4))
    unet_optim: OptimSettings = field(default_factory=lambda: OptimSettings(name="adam", lr=3e-4))
    rec_weights: ReconstructionLossWeights = field(
        default_factory=lambda: ReconstructionLossWeights(lm=scaled_lm_weight(5e-4, 64), reg=scaled_reg_weight(0.1, 64))
    )
    seg_weights: SegmentationLossWeights = field(default_factory=lambda: SegmentationLossWeights(bin=1.0, area=1.5))
    freeze_batchnorm: bool = True
    grad_through_unet: bool = True
    masks: str = param("unet", choices=EM_MASKS)

    def __post_init__(self) -> None:
        check_fields(self)


def check_groups(groups: dict[str, Any]) -> None:
    """Checks across ``params.yaml`` groups (run by :func:`focus.config.check_params`).

    The training image size (``train.image_size``, else ``render.image_size``) must survive the
    U-Net's ``train.unet.depth`` halvings: at least ``2 ** depth`` pixels.
    """
    train, render = groups.get("train"), groups.get("render")
    if train is None:
        return
    key, size = ("train.image_size", train.image_size)
    if size is None and render is not None:
        key, size = ("render.image_size", render.image_size)
    least = 2**train.unet.depth
    if size is not None and size < least:
        raise ParamValueError(
            key,
            size,
            f"an integer >= {least} (2 ** train.unet.depth: the U-Net halves the image {train.unet.depth} times)",
            related=("train.unet.depth",),
        )


def settings_dict(obj: Any) -> dict[str, Any]:
    """A frozen settings dataclass as plain JSON-able data (tuples become lists)."""

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    return conv(asdict(obj))


__all__ = [
    "EMSettings",
    "EM_MASKS",
    "IDENTITY_KINDS",
    "check_groups",
    "InitSettings",
    "LM_SCALE_64",
    "OPTIMIZERS",
    "OptimSettings",
    "PretrainSegSettings",
    "REG_SCALE_64",
    "TrainSettings",
    "scaled_lm_weight",
    "scaled_reg_weight",
    "settings_dict",
]
