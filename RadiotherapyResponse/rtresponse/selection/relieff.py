"""ReliefF feature weights (Kononenko 1994; Robnik-Sikonja & Kononenko 2003; as in skrebate/MATLAB).

Every feature is min-max scaled to [0, 1] on the training data, so ``diff(f, a, b) = |a_f - b_f|``
and the distance between samples is the Manhattan distance over all features. Each sample ``i`` in
turn (all of them; no random sampling, so the result is deterministic) finds its ``k`` nearest hits
(same class) and its ``k`` nearest misses *from each other class*; the weight of feature ``f``
accumulates::

    W_f = (1/n) sum_i [ - mean_{h in hits(i)} diff(f, i, h)
                        + sum_{C != y_i} P(C) / (1 - P(y_i)) mean_{m in misses_C(i)} diff(f, i, m) ]

with class priors ``P`` from the training data (for two classes the prior factor is 1). A class
with fewer than ``k`` other samples contributes all of them. Neighbours at equal distance are
taken in sample order. Features are all treated as continuous (binary ones give the same
0/1 diff as a categorical feature would).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from ._checks import check_positive
from .base import RankingSelector


def relieff_weights(X: np.ndarray, y: np.ndarray, n_neighbors: int = 10) -> np.ndarray:
    """ReliefF weights of the columns of ``X`` (non-constant columns expected)."""
    X = np.asarray(X, dtype=np.float64)
    low, span = X.min(axis=0), np.ptp(X, axis=0)
    span = np.where(span > 0, span, 1.0)
    Z = (X - low) / span
    n = Z.shape[0]
    classes, codes = np.unique(y, return_inverse=True)
    prior = np.bincount(codes, minlength=classes.size) / n
    distance = cdist(Z, Z, metric="cityblock")
    weights = np.zeros(Z.shape[1])
    for i in range(n):
        order = np.argsort(distance[i], kind="stable")
        order = order[order != i]
        own = codes[i]
        for c in range(classes.size):
            members = order[codes[order] == c][:n_neighbors]
            if members.size == 0:
                continue
            diff = np.abs(Z[members] - Z[i]).mean(axis=0)
            if c == own:
                weights -= diff
            else:
                weights += prior[c] / (1.0 - prior[own]) * diff
    return weights / n


class ReliefFSelector(RankingSelector):
    """Top ``k`` features by ReliefF weight (see module docs); ``n_neighbors`` hits/misses (default 10).

    Attributes: ``scores_`` (ReliefF weights), ``ranking_``, ``support_``.
    """

    def __init__(self, k=10, n_neighbors: int = 10):
        self.k = k
        self.n_neighbors = n_neighbors

    def _rank(self, X, y):
        n_neighbors = check_positive(self.n_neighbors, "n_neighbors", type(self).__name__, integer=True)
        return {"scores": relieff_weights(X, y, n_neighbors)}
