"""Training the offline identity network with the ArcFace loss on synthetic identities.

One step: a batch of aligned ``uint8`` crops -> light photometric augmentation (brightness,
contrast, colour gain, resolution loss, pixel noise) -> :class:`focus.nets.iresnet.IResNet`
embedding -> :class:`focus.idnet.margin.ArcMarginHead` logits (the margin is ramped up from 0
over the first ``margin_warmup_epochs``, which helps a network trained from scratch to start
separating classes) -> cross-entropy, plus ``aux_weight`` times the mean squared error of a
linear regression of the crop's leading identity and albedo coefficients from the embedding.

The auxiliary term is this project's addition to ArcFace: with a few views per synthetic identity,
class centres alone can be memorised, whereas the regression supervises directions shared by all
identities (docs/method.md 2; held-out verification in ``reports/idnet/``). AdamW with a linear warm-up and
cosine decay of the learning rate. A step whose loss is not finite is skipped (no update) and
counted.

**Resuming.** After every epoch the full training state (network, head, optimiser, epoch, step,
history) is written atomically to ``resume_path``, tagged with a fingerprint of everything that
determines the run; a later call with the same fingerprint continues after the last finished
epoch and ends in the same weights as an uninterrupted run (the batch order and augmentation of
epoch ``e`` are drawn from a generator seeded by ``(seed, e)``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from focus.config import nonnegative, param, positive, probability
from focus.errors import InputFileError
from focus.idnet.data import IdentitySet, from_uint8
from focus.idnet.margin import ArcMarginHead, arc_margin_logits
from focus.idnet.network import IdentityNetSettings, build_identity_net
from focus.io_utils import atomic_path
from focus.nets.checkpoint import RefusedFileError, load_torch_file
from focus.nets.iresnet import IResNet


@dataclass(frozen=True)
class IdNetAugmentSettings:
    """Photometric augmentation of training crops (``params.yaml``: ``idnet.train.augment``).

    Attributes:
        brightness: max additive offset (crops are in [-1, 1]).
        contrast: max relative contrast change.
        colour: max relative per-channel gain change.
        lowres_prob: probability of down- and up-sampling a crop (blur of a smaller face).
        lowres_min: smallest down-sampling factor.
        noise: max std of additive Gaussian pixel noise.
        flip_prob: probability of a horizontal flip (the mirrored face counts as the same
            identity, as in ArcFace's training; the population is nearly symmetric).
    """

    brightness: float = nonnegative(0.15)
    contrast: float = nonnegative(0.25)
    colour: float = nonnegative(0.1)
    lowres_prob: float = probability(0.3)
    lowres_min: float = param(0.5, gt=0, le=1)
    noise: float = nonnegative(0.04)
    flip_prob: float = probability(0.0)


@dataclass(frozen=True)
class IdNetTrainSettings:
    """Optimisation (``params.yaml``: ``idnet.train``).

    Attributes:
        epochs: passes over the training crops.
        batch_size: crops per step.
        lr: peak AdamW learning rate (of the network; the head uses the same).
        weight_decay: AdamW decoupled weight decay.
        warmup_steps: linear learning-rate warm-up.
        margin: ArcFace additive angular margin ``m`` (radians).
        scale: ArcFace logit scale ``s``.
        margin_warmup_epochs: epochs over which ``m`` ramps linearly from 0.
        aux_weight: weight of the auxiliary loss that regresses the crop's identity and albedo
            coefficients linearly from the embedding (0: plain ArcFace). Every image then also
            supervises directions shared by all identities, which generalises to unseen
            identities far better than class centres learnt from a few views each.
            Needs ``data.targets``. A flipped crop's targets would be those of the mirrored
            face, so flipped crops are left out of this loss.
        grad_clip: max gradient norm (0: no clipping).
        threads: torch CPU threads (0: leave torch's default).
        augment: photometric augmentation.
    """

    epochs: int = param(8, ge=1)
    batch_size: int = param(128, ge=2)
    lr: float = positive(3e-3)
    weight_decay: float = nonnegative(5e-4)
    warmup_steps: int = param(50, ge=0)
    margin: float = nonnegative(0.2)
    scale: float = positive(16.0)
    margin_warmup_epochs: float = nonnegative(2.0)
    aux_weight: float = nonnegative(20.0)
    grad_clip: float = nonnegative(5.0)
    threads: int = param(1, ge=0)
    augment: IdNetAugmentSettings = field(default_factory=IdNetAugmentSettings)


@dataclass
class TrainResult:
    """What :func:`train_identity_net` returns besides the network.

    Attributes:
        history: per epoch ``{"epoch", "loss", "accuracy", "margin", "lr", "seconds", "skipped"}``
            (accuracy: share of crops whose nearest class centre is their own, without margin).
        skipped_steps: steps skipped because the loss was not finite.
        steps: optimiser steps done.
        seconds: training wall time of this call (resumed epochs not included).
        resumed_from_epoch: epochs loaded from the resume file (0: fresh start).
        epochs_done: epochs finished so far (``< epochs`` when stopped by ``max_epochs``).
    """

    history: list[dict] = field(default_factory=list)
    skipped_steps: int = 0
    steps: int = 0
    seconds: float = 0.0
    resumed_from_epoch: int = 0
    epochs_done: int = 0


def augment(x: Tensor, s: IdNetAugmentSettings, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Augment ``(B, 3, S, S)`` crops in [-1, 1]: returns new crops and the ``(B,)`` bool flip flags."""
    B = x.shape[0]

    def u(*shape) -> Tensor:
        return torch.rand(*shape, generator=gen) * 2.0 - 1.0

    c = 1.0 + s.contrast * u(B, 1, 1, 1)
    g = 1.0 + s.colour * u(B, 3, 1, 1)
    b = s.brightness * u(B, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    y = (x - mean) * c * g + mean + b
    if s.lowres_prob > 0:
        pick = torch.rand(B, generator=gen) < s.lowres_prob
        if bool(pick.any()):
            S = x.shape[-1]
            f = s.lowres_min + (1.0 - s.lowres_min) * float(torch.rand(1, generator=gen))
            small = F.interpolate(
                y[pick], size=max(4, int(round(S * f))), mode="bilinear", antialias=True, align_corners=False
            )
            y = y.clone()
            y[pick] = F.interpolate(small, size=S, mode="bilinear", align_corners=False)
    flip = torch.zeros(B, dtype=torch.bool)
    if s.flip_prob > 0:
        flip = torch.rand(B, generator=gen) < s.flip_prob
        y = torch.where(flip[:, None, None, None], y.flip(-1), y)
    if s.noise > 0:
        sigma = s.noise * torch.rand(B, 1, 1, 1, generator=gen)
        y = y + sigma * torch.randn(y.shape, generator=gen)
    return y.clamp(-1.0, 1.0), flip


def learning_rate(step: int, total: int, s: IdNetTrainSettings) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to 1 % of ``lr`` at ``total``."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    p = min(1.0, (step - s.warmup_steps) / max(1, total - s.warmup_steps))
    return s.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * p)))


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-able parts (settings, seed, data description)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save_resume(
    path: Path, key: str, net: IResNet, head: ArcMarginHead, opt: torch.optim.Optimizer, epoch: int, result: TrainResult
) -> None:
    state = {
        "fingerprint": key,
        "epoch": epoch,
        "net": net.state_dict(),
        "head": head.state_dict(),
        "opt": opt.state_dict(),
        "history": result.history,
        "skipped": result.skipped_steps,
        "steps": result.steps,
    }
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def _load_resume(path: Path | None, key: str) -> dict | None:
    if path is None or not path.is_file():
        return None
    try:
        state = load_torch_file(path, "identity-network resume state", "delete it to start afresh")
    except RefusedFileError:  # pickled Python objects: refused, not run, not overwritten
        raise
    except InputFileError:  # a corrupt resume file is ignored (start afresh)
        return None
    return state if isinstance(state, dict) and state.get("fingerprint") == key else None


def train_identity_net(
    data: IdentitySet,
    net_settings: IdentityNetSettings,
    s: IdNetTrainSettings,
    seed: int = 0,
    resume_path: str | Path | None = None,
    data_key: str = "",
    progress: bool = True,
    max_epochs: int | None = None,
) -> tuple[IResNet, TrainResult]:
    """Train an identity network on ``data`` (classes = its labels) with the ArcFace loss.

    Args:
        data: aligned crops ``(N, 3, S, S)`` uint8 with ``S = net_settings.crop_size`` and labels.
        net_settings, s: architecture and optimisation.
        seed: seeds the initial weights, the batch order and the augmentation.
        resume_path: resume file (see the module docstring); ``None`` disables resuming.
        data_key: a description of the data for the resume fingerprint (e.g. a fingerprint of
            the data settings and face model).
        progress: show a tqdm bar per epoch.
        max_epochs: stop after this many epochs in this call (time-sliced training; a later call
            with the same ``resume_path`` continues). ``None``: train to ``s.epochs``.

    Returns the trained network (eval mode) and a :class:`TrainResult`.
    """
    S = net_settings.crop_size
    if data.crops.ndim != 4 or tuple(data.crops.shape[1:]) != (3, S, S) or data.crops.dtype != torch.uint8:
        raise ValueError(f"need uint8 crops (N, 3, {S}, {S}), got {tuple(data.crops.shape)} {data.crops.dtype}")
    n, n_cls = len(data.labels), data.num_identities
    steps_per_epoch = max(1, n // s.batch_size)  # the last incomplete batch is dropped (BatchNorm)
    total = steps_per_epoch * s.epochs
    key = fingerprint(asdict(net_settings), asdict(s), seed, n, n_cls, data_key)
    resume_path = Path(resume_path) if resume_path is not None else None

    torch.manual_seed(seed)
    net = build_identity_net(net_settings)
    head = ArcMarginHead(net_settings.embedding_dim, n_cls, margin=s.margin, scale=s.scale)
    use_aux = s.aux_weight > 0
    if use_aux and data.targets is None:
        raise ValueError("aux_weight > 0 needs regression targets in the identity set")
    n_targets = int(data.targets.shape[1]) if use_aux else 0
    aux = torch.nn.Linear(net_settings.embedding_dim, max(1, n_targets))
    head.register_module("aux", aux)  # saved and resumed with the head
    params = [p for p in list(net.parameters()) + list(head.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    result = TrainResult()
    start_epoch = 0
    state = _load_resume(resume_path, key)
    if state is not None:
        net.load_state_dict(state["net"])
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        start_epoch = int(state["epoch"])
        result.history = list(state["history"])
        result.skipped_steps = int(state["skipped"])
        result.steps = int(state["steps"])
        result.resumed_from_epoch = start_epoch

    t_start = time.perf_counter()
    labels = data.labels.long()
    end_epoch = s.epochs if max_epochs is None else min(s.epochs, start_epoch + int(max_epochs))
    for epoch in range(start_epoch, end_epoch):
        t0 = time.perf_counter()
        net.train()
        head.train()
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=gen)
        tot_loss, tot_correct, tot_seen, skipped = 0.0, 0, 0, 0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"idnet epoch {epoch + 1}/{s.epochs}",
            disable=not progress,
            leave=False,
            unit="step",
        )
        for i in bar:
            idx = order[i * s.batch_size : (i + 1) * s.batch_size]
            x, flipped = augment(from_uint8(data.crops[idx]), s.augment, gen)
            y = labels[idx]
            step = result.steps
            m = s.margin * min(1.0, (step + 1) / max(1.0, s.margin_warmup_epochs * steps_per_epoch))
            for grp in opt.param_groups:
                grp["lr"] = learning_rate(step, total, s)
            emb = net(x)
            cos = head.cosine(emb)
            loss = F.cross_entropy(arc_margin_logits(cos, y, m, head.scale), y)
            if use_aux and not bool(flipped.all()):
                keep = ~flipped
                loss = loss + s.aux_weight * F.mse_loss(aux(emb[keep]), data.targets[idx][keep])
            opt.zero_grad(set_to_none=True)
            if not bool(torch.isfinite(loss)):
                skipped += 1
                result.steps += 1
                continue
            loss.backward()
            if s.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
            opt.step()
            result.steps += 1
            tot_loss += float(loss.detach()) * len(idx)
            tot_correct += int((cos.detach().argmax(1) == y).sum())
            tot_seen += len(idx)
            bar.set_postfix(loss=f"{tot_loss / max(1, tot_seen):.3f}", acc=f"{tot_correct / max(1, tot_seen):.2f}")
        result.skipped_steps += skipped
        result.history.append(
            {
                "epoch": epoch + 1,
                "loss": tot_loss / max(1, tot_seen),
                "accuracy": tot_correct / max(1, tot_seen),
                "margin": m,
                "lr": opt.param_groups[0]["lr"],
                "seconds": time.perf_counter() - t0,
                "skipped": skipped,
            }
        )
        if resume_path is not None:
            _save_resume(resume_path, key, net, head, opt, epoch + 1, result)
    result.seconds = time.perf_counter() - t_start
    result.epochs_done = max(start_epoch, end_epoch)
    return net.eval(), result
