"""Evaluating the identity network on held-out synthetic identities.

* :func:`verification_metrics`: every pair of held-out crops is a genuine (same identity) or an
  impostor (different identities) pair, scored by the cosine similarity of the embeddings; ROC
  AUC and TAR at a FAR (see :mod:`focus.idnet.verification`).
* :func:`factor_sensitivity`: what the reconstruction's identity loss needs is an embedding that
  moves more when the *identity* (shape and albedo coefficients) changes than when a nuisance
  (pose, expression, light, or "details": painted appearance, background, head context,
  occluders, camera effects and landmark noise) changes. For held-out
  identities a base view is re-rendered with exactly one factor replaced by that of another random
  view (or with another identity under the same nuisances), and the cosine similarity to the base
  view is averaged per factor. ``auc_vs_identity`` per factor is the probability that a view with
  that factor changed stays closer to the base than a view of another identity does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from focus.config import param
from focus.idnet.data import FACTORS, CropMaker, from_uint8, swap_factor
from focus.idnet.verification import pair_scores, roc_auc, roc_curve, tar_at_far
from focus.io_utils import atomic_path


@dataclass(frozen=True)
class IdNetEvalSettings:
    """Verification report (``params.yaml``: ``idnet.eval``).

    Attributes:
        far: false-accept rate at which the true-accept rate is reported.
        min_impostor_pairs: the evaluation refuses fewer impostor pairs than this (TAR at a FAR
            of 1e-3 needs many more than 1,000 to be meaningful).
        sensitivity_identities: held-out identities used by :func:`factor_sensitivity`.
    """

    far: float = param(1e-3, gt=0, lt=1)
    min_impostor_pairs: int = param(10_000, ge=1)
    sensitivity_identities: int = param(64, ge=2)


@torch.no_grad()
def embed_crops(net: nn.Module, crops: Tensor, batch_size: int = 256) -> np.ndarray:
    """``uint8`` crops ``(N, 3, S, S)`` -> L2-normalised embeddings ``(N, D)`` (float64 numpy).

    ``net`` is an :class:`focus.nets.iresnet.IResNet` or a :class:`focus.nets.perceptual.PerceptualNet`
    (anything with ``embedding`` or ``embed``); it is used in eval mode.
    """
    was_training = net.training
    net.eval()
    fn = net.embed if hasattr(net, "embed") else net.embedding
    out = [fn(from_uint8(crops[i : i + batch_size])) for i in range(0, len(crops), batch_size)]
    net.train(was_training)
    e = torch.cat(out).double()
    return torch.nn.functional.normalize(e, dim=-1).numpy()


def verification_metrics(
    embeddings: np.ndarray, labels: np.ndarray, s: IdNetEvalSettings = IdNetEvalSettings()
) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """ROC AUC and TAR at ``s.far`` over all pairs; returns ``(metrics, (far, tar) curve)``."""
    genuine, impostor = pair_scores(embeddings, labels)
    if len(impostor) < s.min_impostor_pairs:
        raise ValueError(
            f"only {len(impostor)} impostor pairs (< {s.min_impostor_pairs}): use more held-out "
            "identities or views for a meaningful TAR at the given FAR"
        )
    tar, thr = tar_at_far(genuine, impostor, s.far)
    far_c, tar_c, _ = roc_curve(genuine, impostor)
    metrics = {
        "roc_auc": roc_auc(genuine, impostor),
        "tar_at_far": tar,
        "far": s.far,
        "threshold": thr,
        "genuine_pairs": int(len(genuine)),
        "impostor_pairs": int(len(impostor)),
        "genuine_mean": float(genuine.mean()),
        "impostor_mean": float(impostor.mean()),
    }
    return metrics, (far_c, tar_c)


@torch.no_grad()
def factor_sensitivity(net: nn.Module, maker: CropMaker, rng: np.random.Generator, n: int) -> dict:
    """Mean cosine similarity to a base view when one factor changes (see the module docstring).

    Returns ``{"similarity": {factor: mean}, "auc_vs_identity": {factor: auc}, "margin": m}`` where
    the factors are ``identity`` and the keys of :data:`focus.idnet.data.FACTORS`, and ``m`` is the
    smallest nuisance similarity minus the identity similarity (> 0: every nuisance moves the
    embedding less than a change of identity does, on average).
    """
    ids, other_ids = maker.identities(rng, n), maker.identities(rng, n)
    base, other = maker.nuisances(rng, n), maker.nuisances(rng, n)

    def emb(identities, nuisances) -> np.ndarray:
        return embed_crops(net, maker.crops(identities, nuisances))

    e0 = emb(ids, base)
    sims = {"identity": (e0 * emb(other_ids, base)).sum(1)}
    for factor in FACTORS:
        sims[factor] = (e0 * emb(ids, swap_factor(base, other, factor))).sum(1)
    sims["all_nuisances"] = (e0 * emb(ids, other)).sum(1)
    nuisance = [k for k in sims if k != "identity"]
    mean = {k: float(v.mean()) for k, v in sims.items()}
    return {
        "similarity": mean,
        "auc_vs_identity": {k: roc_auc(sims[k], sims["identity"]) for k in nuisance},
        "margin": min(mean[k] for k in FACTORS) - mean["identity"],
        "identities": int(n),
    }


def plot_roc(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    far: float,
    title: str = "Identity network: verification on held-out synthetic identities",
) -> None:
    """Write a ROC plot (TAR against log FAR) of named ``(far, tar)`` curves to ``path`` (atomic PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (f, t) in curves.items():
        keep = f > 0
        ax.plot(f[keep], t[keep], label=name)
    ax.axvline(far, color="grey", ls="--", lw=0.8, label=f"FAR = {far:g}")
    ax.set_xscale("log")
    lo = min(float(f[f > 0].min()) for f, _ in curves.values())
    ax.set_xlim(max(lo, 1e-6), 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (impostor pairs)")
    ax.set_ylabel("true accept rate (genuine pairs)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
