"""Univariate statistical rankers of paper 000: chi-square (CHSQ) and Wilcoxon (WLCX)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..errors import InputError
from ._checks import check_positive
from .base import RankingSelector


def quantile_bins(X: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Integer bin codes ``0..B_f-1`` per column of ``X``, with no empty bin.

    A column with at most ``n_bins`` distinct values keeps them as categories; otherwise it is cut
    at its ``n_bins``-quantiles (equiprobable bins, as MATLAB's ``fscchi2`` bins continuous
    predictors), tied cut points merged.
    """
    X = np.asarray(X, dtype=np.float64)
    codes = np.empty(X.shape, dtype=np.int64)
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    for f in range(X.shape[1]):
        x = X[:, f]
        distinct = np.unique(x)
        if distinct.size <= n_bins:
            codes[:, f] = np.searchsorted(distinct, x)
            continue
        edges = np.unique(np.quantile(x, inner))
        raw = np.searchsorted(edges, x, side="right")
        codes[:, f] = np.unique(raw, return_inverse=True)[1]  # renumber occupied bins
    return codes


class Chi2Selector(RankingSelector):
    """Chi-square test of independence between each binned feature and the outcome; top ``k``.

    Each feature is cut into ``n_bins`` quantile bins (see :func:`quantile_bins`) and the Pearson
    chi-square statistic of its bins x classes contingency table is computed; features are ranked by
    p-value (score ``-log p``, MATLAB ``fscchi2``'s score), the statistic breaking ties between
    p-values that underflow. The statistic equals the sum, over a feature's one-hot bin indicators,
    of scikit-learn's ``chi2`` — the contingency-table form is used because ``chi2`` applied to the
    bin *numbers* would treat them as counts, which is not a test of independence.

    Attributes: ``scores_`` (-log p), ``chi2_`` (statistic), ``pvalues_``, ``ranking_``,
    ``support_``.
    """

    def __init__(self, k=10, n_bins: int = 10):
        self.k = k
        self.n_bins = n_bins

    def _rank(self, X, y):
        n_bins = check_positive(self.n_bins, "n_bins", type(self).__name__, integer=True)
        if n_bins < 2:
            raise InputError(f"{type(self).__name__}: n_bins must be at least 2, got {n_bins}")
        codes = quantile_bins(X, n_bins)
        classes, y_codes = np.unique(y, return_inverse=True)
        n_classes = classes.size
        statistic = np.empty(X.shape[1])
        dof = np.empty(X.shape[1])
        for f in range(X.shape[1]):
            n_f = int(codes[:, f].max()) + 1
            table = np.zeros((n_f, n_classes))
            np.add.at(table, (codes[:, f], y_codes), 1.0)
            expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
            statistic[f] = ((table - expected) ** 2 / expected).sum()
            dof[f] = (n_f - 1) * (n_classes - 1)
        log_p = stats.chi2.logsf(statistic, dof)
        scores = -log_p
        order = np.lexsort((np.arange(X.shape[1]), -statistic, log_p))
        return {"scores": scores, "order": order, "chi2": statistic, "pvalues": np.exp(log_p)}


class WilcoxonSelector(RankingSelector):
    """Wilcoxon rank-sum (Mann-Whitney U) test per feature; smallest p-value first; top ``k``.

    Two-sided, normal approximation with tie correction and no continuity correction — the
    standardised U statistic that MATLAB's ``rankfeatures(..., 'Criterion', 'wilcoxon')`` ranks by
    (``|z|``), identical to ``scipy.stats.mannwhitneyu(..., use_continuity=False,
    method="asymptotic")``. With more than two outcome classes the Kruskal-Wallis H test is used,
    which is the same test for two classes (``H = z**2``).

    Attributes: ``scores_`` (-log p), ``statistic_`` (H, i.e. z squared for two classes),
    ``pvalues_``, ``ranking_``, ``support_``.
    """

    def __init__(self, k=10):
        self.k = k

    def _rank(self, X, y):
        n = X.shape[0]
        classes, y_codes = np.unique(y, return_inverse=True)
        ranks = stats.rankdata(X, axis=0)
        counts = np.bincount(y_codes).astype(float)
        rank_sums = np.zeros((classes.size, X.shape[1]))
        np.add.at(rank_sums, y_codes, ranks)
        h = 12.0 / (n * (n + 1)) * (rank_sums ** 2 / counts[:, None]).sum(axis=0) - 3.0 * (n + 1)
        ties = np.array([_tie_sum(ranks[:, f]) for f in range(X.shape[1])])
        correction = 1.0 - ties / (n ** 3 - n)
        with np.errstate(invalid="ignore", divide="ignore"):
            h = np.where(correction > 0, h / correction, 0.0)
        h = np.maximum(h, 0.0)
        log_p = stats.chi2.logsf(h, classes.size - 1)
        return {"scores": -log_p, "order": np.lexsort((np.arange(X.shape[1]), -h)), "statistic": h,
                "pvalues": np.exp(log_p)}


def _tie_sum(ranks: np.ndarray) -> float:
    _, counts = np.unique(ranks, return_counts=True)
    return float((counts ** 3 - counts).sum())
