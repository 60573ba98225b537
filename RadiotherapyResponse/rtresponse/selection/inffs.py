"""Infinite Feature Selection (Roffo, Melzi & Cristani, ICCV 2015), the unsupervised graph ranking.

Features are the nodes of a fully connected graph. The edge between features ``i`` and ``j`` is::

    a_ij = alpha * sigma_ij + (1 - alpha) * (1 - |rho_ij|)

where ``sigma_ij = max(std_i, std_j)`` min-max normalised to [0, 1] over the matrix (zero if all
standard deviations are equal) and ``rho_ij`` is Spearman's correlation (0 where undefined). Paths
of every length through the graph are summed with the geometric series
``S = sum_{l>=1} (r A)^l = (I - r A)^-1 - I``, ``r = 0.9 / spectral radius of A`` so it converges;
a feature's energy is its row sum of ``S``, and high energy ranks first (Roffo's reference
implementation, diagonal included).

The method ignores the outcome. It favours features with a large spread and little redundancy.
The spread term uses the raw standard deviations, as the reference implementation does, so it
depends on the features' units; on z-scored features (as paper 000 fed its deep features) it is
constant and only the redundancy term ranks.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_fraction
from .base import RankingSelector
from .collinearity import spearman_abs


def inffs_scores(X: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Inf-FS energy (row sums of ``(I - rA)^-1 - I``) of the columns of ``X``."""
    X = np.asarray(X, dtype=np.float64)
    p = X.shape[1]
    std = X.std(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(p)
    spread = np.maximum(std[:, None], std[None, :])
    low, high = spread.min(), spread.max()
    spread = (spread - low) / (high - low) if high > low else np.zeros_like(spread)
    graph = alpha * spread + (1.0 - alpha) * (1.0 - spearman_abs(X))
    radius = float(np.max(np.abs(np.linalg.eigvalsh(graph)))) if p else 0.0
    if radius <= 0:
        return np.zeros(p)
    r = 0.9 / radius
    # Row sums of (I - rA)^-1 are (I - rA)^-1 @ 1: one linear solve instead of an inverse.
    return np.linalg.solve(np.eye(p) - r * graph, np.ones(p)) - 1.0


class InfFSSelector(RankingSelector):
    """Top ``k`` features by Infinite Feature Selection energy (unsupervised; ``y`` is ignored).

    Parameters: ``k`` (default 10), ``alpha`` (default 0.5): weight of the spread term against
    the non-redundancy term. Attributes: ``scores_`` (energy), ``ranking_``, ``support_``.
    """

    _needs_y = False

    def __init__(self, k=10, alpha: float = 0.5):
        self.k = k
        self.alpha = alpha

    def _rank(self, X, y):
        alpha = check_fraction(self.alpha, "alpha", type(self).__name__)
        return {"scores": inffs_scores(X, alpha)}
