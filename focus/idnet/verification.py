"""Face-verification metrics on embeddings: pairs, ROC curve, ROC AUC and TAR at a given FAR.

Conventions: a pair is **accepted** as "same identity" when its score (cosine similarity) is
strictly greater than the threshold ``t``. ``FAR(t)`` is the fraction of impostor pairs (different
identities) accepted, ``TAR(t)`` the fraction of genuine pairs (same identity) accepted.

* :func:`roc_auc` is the Mann-Whitney statistic ``P(genuine > impostor) + P(tie) / 2`` computed
  from average ranks (no scikit-learn needed), equal to the area under the ROC curve.
* :func:`tar_at_far` picks the lowest threshold whose FAR does not exceed the target, i.e. the
  best TAR reachable at that FAR. With ``n`` impostor pairs FARs are multiples of ``1 / n``, so a
  target of 1e-3 needs well over 1000 impostor pairs to mean anything (the evaluation uses all
  pairs of the held-out embeddings, hundreds of thousands).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _as_scores(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"no {name} scores")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} scores contain NaN or infinite values")
    return a


def cosine_similarity_matrix(embeddings: np.ndarray) -> np.ndarray:
    """``(N, D)`` embeddings -> ``(N, N)`` cosine similarities (float64)."""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e @ e.T


def pair_scores(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of **all** unordered pairs ``i < j``: ``(genuine, impostor)`` 1-D arrays.

    Args:
        embeddings: ``(N, D)``.
        labels: ``(N,)`` identity of each embedding.
    """
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
    sim = cosine_similarity_matrix(embeddings)
    iu, ju = np.triu_indices(len(labels), k=1)
    same = labels[iu] == labels[ju]
    scores = sim[iu, ju]
    return scores[same], scores[~same]


def roc_auc(genuine, impostor) -> float:
    """Area under the ROC curve = ``P(g > i) + 0.5 P(g == i)`` over genuine/impostor score pairs."""
    g, i = _as_scores(genuine, "genuine"), _as_scores(impostor, "impostor")
    ranks = rankdata(np.concatenate([g, i]), method="average")
    n_g, n_i = len(g), len(i)
    u = ranks[:n_g].sum() - n_g * (n_g + 1) / 2.0
    return float(u / (n_g * n_i))


def tar_at_far(genuine, impostor, far: float) -> tuple[float, float]:
    """Best true-accept rate with false-accept rate ``<= far``: returns ``(tar, threshold)``.

    The threshold is the ``(k+1)``-th largest impostor score with ``k = floor(far * n_impostor)``:
    at most ``k`` impostor scores lie strictly above it, and any lower threshold would accept more.
    """
    g, i = _as_scores(genuine, "genuine"), _as_scores(impostor, "impostor")
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be in [0, 1], got {far}")
    k = int(np.floor(far * len(i) + 1e-9))
    if k >= len(i):
        return 1.0, float("-inf")
    t = float(-np.partition(-i, k)[k])  # (k+1)-th largest
    return float((g > t).mean()), t


def roc_curve(genuine, impostor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve over every distinct threshold: ``(far, tar, thresholds)``, FAR increasing.

    Starts at ``(0, 0)`` (threshold ``+inf``) and ends at ``(1, 1)``; point ``k`` accepts every
    score ``>= thresholds[k]`` (equivalently ``>`` the next lower distinct score).
    """
    g, i = _as_scores(genuine, "genuine"), _as_scores(impostor, "impostor")
    scores = np.concatenate([g, i])
    is_g = np.concatenate([np.ones(len(g)), np.zeros(len(i))])
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], is_g[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each distinct value
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    tar = np.r_[0.0, tp / len(g)]
    far = np.r_[0.0, fp / len(i)]
    return far, tar, np.r_[np.inf, s[last]]
