"""Principal component analysis of a sampled population (numpy SVD), std-scaled like a 3DMM."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PCAModel:
    """``mean`` ``(D,)``; ``basis`` ``(K, D)`` = unit principal directions x their std; ``std`` ``(K,)``;
    ``total_variance`` the summed variance of all components (kept or not).

    A sample is ``mean + c @ basis`` with ``c ~ N(0, I)``. Directions are mutually orthogonal,
    ``std`` is non-increasing, and the sign of each direction is fixed (its largest-magnitude
    entry is positive) so that the result is deterministic.
    """

    mean: np.ndarray
    basis: np.ndarray
    std: np.ndarray
    total_variance: float

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        """``(K,)`` share of the population's total variance each kept component explains."""
        return self.std**2 / max(self.total_variance, 1e-30)


def fit_pca(samples: np.ndarray, n_components: int) -> PCAModel:
    """PCA of ``samples`` ``(N, D)`` keeping ``n_components`` (at most ``N - 1``).

    Component ``k`` has direction ``Vt_k`` and ``std_k = S_k / sqrt(N - 1)`` where
    ``X - mean = U S Vt`` is the SVD of the centred data. With ``D >> N`` (meshes), the SVD is
    taken through the small ``N x N`` Gram matrix (``eigh``), in float64.
    """
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.shape[0]
    if n < 2:
        raise ValueError("PCA needs at least two samples")
    if not 1 <= n_components <= n - 1:
        raise ValueError(f"n_components must be in [1, {n - 1}] for {n} samples, got {n_components}")
    mean = samples.mean(axis=0)
    centred = samples - mean
    gram = centred @ centred.T
    evals, evecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1]
    evals = np.clip(evals[order], 0.0, None)
    evecs = evecs[:, order]
    total = float(evals.sum() / (n - 1))
    s = np.sqrt(evals[:n_components])
    if s[-1] <= 1e-9 * max(s[0], 1e-300):
        raise ValueError(f"the population spans fewer than {n_components} dimensions")
    vt = (evecs[:, :n_components].T @ centred) / s[:, None]
    # deterministic signs: the largest-magnitude entry of each direction is positive
    idx = np.argmax(np.abs(vt), axis=1)
    signs = np.sign(vt[np.arange(vt.shape[0]), idx])
    signs[signs == 0] = 1.0
    vt = vt * signs[:, None]
    std = s / np.sqrt(n - 1)
    return PCAModel(mean=mean, basis=vt * std[:, None], std=std, total_variance=total)
