"""The common shape of every ranking selector: score features, keep the top ``k``.

Every ranker is a scikit-learn ``SelectorMixin`` transformer, so any ranker and any classifier make a
``Pipeline``. After ``fit``:

``scores_``
    The method's score per input feature (higher is better); NaN for features that are constant
    in the training data.
``ranking_``
    Rank of each input feature, 1 = best, a permutation of ``1..n_features``. Ties in the score go
    to the feature that comes first in ``X``; constant features rank last.
``support_``
    Boolean mask of the ``k`` kept features (the ``k`` with ranks ``1..k``).

Constant features (the same value in every training sample) carry no information: they are never
shown to the method (so they cannot upset a standardisation, a distance or a correlation) and rank
below every other feature. If ``k`` exceeds the number of features, all are kept with a warning.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted

from ._checks import check_k, validate


def single_blas_thread():
    """Context limiting BLAS to one thread: the iterative solvers here (L-BFGS, liblinear) run
    thousands of tiny BLAS calls, which multi-threaded OpenBLAS slows down many times over."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(limits=1, user_api="blas")


def order_by_scores(scores: np.ndarray) -> np.ndarray:
    """Feature indices best first: descending score, NaN last, ties to the lower index."""
    scores = np.asarray(scores, float)
    key = np.where(np.isnan(scores), np.inf, -scores)
    return np.argsort(key, kind="stable")


def ranks_from_order(order: np.ndarray) -> np.ndarray:
    ranking = np.empty(order.size, dtype=np.int64)
    ranking[order] = np.arange(1, order.size + 1)
    return ranking


class RankingSelector(SelectorMixin, BaseEstimator):
    """Base class: subclasses implement ``_rank(X, y) -> dict`` on the non-constant columns.

    ``_rank`` returns ``{"scores": array, ...}``; an optional ``"order"`` (indices best first)
    overrides the descending-score order; any other per-feature arrays become fitted attributes
    (``name_``), padded with NaN for the constant features.
    """

    _needs_y = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self._needs_y
        return tags

    def fit(self, X, y=None):
        X, y = validate(self, X, y, needs_y=self._needs_y)
        n_features = X.shape[1]
        k = check_k(self, n_features)
        constant = np.ptp(X, axis=0) == 0
        varying = np.flatnonzero(~constant)
        result = self._rank(X[:, varying], y) if varying.size else {"scores": np.empty(0)}
        order = result.pop("order", None)
        scores = result.pop("scores")
        if order is None:
            order = order_by_scores(scores)
        full_order = np.concatenate([varying[np.asarray(order, dtype=np.int64)], np.flatnonzero(constant)])
        self.scores_ = self._pad(scores, varying, n_features)
        for name, values in result.items():
            setattr(self, f"{name}_", self._pad(values, varying, n_features))
        self.ranking_ = ranks_from_order(full_order)
        self.support_ = self.ranking_ <= k
        return self

    @staticmethod
    def _pad(values, varying, n_features):
        full = np.full(n_features, np.nan)
        full[varying] = values
        return full

    def _rank(self, X: np.ndarray, y: np.ndarray) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


class NoSelection(SelectorMixin, BaseEstimator):
    """Keeps every feature: the "none" choice of the selector registry, as a real transformer.

    It still validates ``X`` (numeric, finite) and records ``feature_names_in_``, so a pipeline
    without ranking behaves like one with a ranker.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    def fit(self, X, y=None):
        X, _ = validate(self, X, needs_y=False)
        self.support_ = np.ones(X.shape[1], dtype=bool)
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_
