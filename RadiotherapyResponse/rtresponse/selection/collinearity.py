"""Removing redundant features: Spearman collinearity filtering (paper 000, after Li et al.).

For every pair of features with |Spearman rho| > threshold (0.8 in paper 000), the feature of the
pair with the higher mean absolute correlation to all other features is dropped.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted

from ._checks import check_fraction, validate


def spearman_abs(X: np.ndarray) -> np.ndarray:
    """|Spearman rho| between the columns of ``X`` (average ranks for ties); 0 where undefined.

    A constant column has no defined correlation; it counts as uncorrelated (0) with every other
    column. The diagonal is 1 (0 for constant columns).
    """
    X = np.asarray(X, dtype=np.float64)
    ranks = rankdata(X, axis=0)
    ranks -= ranks.mean(axis=0)
    norms = np.sqrt((ranks ** 2).sum(axis=0))
    varying = norms > 0
    unit = np.zeros_like(ranks)
    unit[:, varying] = ranks[:, varying] / norms[varying]
    rho = np.abs(unit.T @ unit)
    return np.clip(rho, 0.0, 1.0)


class CollinearityFilter(SelectorMixin, BaseEstimator):
    """Drops one feature of every pair with |Spearman rho| > ``threshold`` (default 0.8).

    Order and tie rules (deterministic):

    1. Pairs are handled from the most to the least correlated (|rho| descending; equal |rho| in
       column order of the pair, (i, j) with i < j, lexicographically). This is the same as
       repeatedly taking the most correlated pair still present, until no pair above the threshold
       is left.
    2. For the pair at hand, each feature's mean |rho| to all other features *still kept* is compared
       (the partner included, so it counts the same for both); the feature with the higher mean is
       dropped. On a tie (within 1e-12) the later column is dropped, the earlier kept.
    3. A pair whose feature was already dropped is skipped; the means are updated after every drop.

    Constant features have no correlation with anything (counted as 0): they are never dropped
    here (the rankers put them last).

    Attributes
    ----------
    support_:
        Boolean mask of the kept features.
    dropped_:
        List of ``(dropped, kept, rho)`` column indices and |rho| in the order of removal, to audit.
    """

    def __init__(self, threshold: float = 0.8):
        self.threshold = threshold

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    def fit(self, X, y=None):
        who = type(self).__name__
        threshold = check_fraction(self.threshold, "threshold", who)
        X, _ = validate(self, X, needs_y=False)
        rho = spearman_abs(X)
        n = rho.shape[0]
        np.fill_diagonal(rho, 0.0)
        rows, cols = np.triu_indices(n, k=1)
        above = rho[rows, cols] > threshold
        rows, cols = rows[above], cols[above]
        order = np.lexsort((cols, rows, -rho[rows, cols]))  # |rho| descending, then (i, j)
        kept = np.ones(n, dtype=bool)
        sums = rho.sum(axis=1)  # sum of |rho| to the kept features (all, at first)
        dropped = []
        for i, j in zip(rows[order], cols[order]):
            if not (kept[i] and kept[j]):
                continue
            others = max(int(kept.sum()) - 1, 1)
            mean_i, mean_j = sums[i] / others, sums[j] / others
            drop, keep = (i, j) if mean_i > mean_j + 1e-12 else (j, i)
            kept[drop] = False
            sums -= rho[:, drop]
            dropped.append((int(drop), int(keep), float(rho[i, j])))
        self.support_ = kept
        self.dropped_ = dropped
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_
