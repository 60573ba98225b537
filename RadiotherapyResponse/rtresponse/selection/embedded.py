"""Model-based rankers: L1 (lasso) logistic regression and logistic-regression RFE (paper 001).

Both z-score the features (on the data given to ``fit``) so coefficients compare across features.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np

from ..errors import InputError
from ._checks import check_k, check_positive
from .base import RankingSelector, single_blas_thread


def _sklearn_at_least(version: str) -> bool:
    import sklearn
    from sklearn.utils.fixes import parse_version

    return parse_version(sklearn.__version__).release >= parse_version(version).release


_SKLEARN_18 = _sklearn_at_least("1.8")


def _standardise(X: np.ndarray) -> np.ndarray:
    return (X - X.mean(axis=0)) / X.std(axis=0)  # constant columns never get here (see base)


def _l1_logistic(C: float, n_classes: int, random_state, max_iter: int):
    from sklearn.linear_model import LogisticRegression

    solver = "liblinear" if n_classes == 2 else "saga"  # liblinear is binary only
    # scikit-learn 1.8 deprecated ``penalty``: the L1 penalty is ``l1_ratio=1``; before 1.8 that
    # argument was ignored unless penalty="elasticnet", so ask for penalty="l1" there.
    penalty = {"l1_ratio": 1.0} if _SKLEARN_18 else {"penalty": "l1"}
    return LogisticRegression(C=C, solver=solver, max_iter=max_iter, tol=1e-6, random_state=random_state,
                              **penalty)


def _magnitude(model) -> np.ndarray:
    return np.abs(model.coef_).max(axis=0)


class LassoSelector(RankingSelector):
    """Top ``k`` features of an L1-penalised (lasso) logistic regression, by ``|coefficient|``.

    The penalty strength ``C`` is given, or (``C=None``, default) chosen by stratified ``cv``-fold
    cross-validation over ``Cs`` (an int means ``Cs`` values log-spaced over 1e-4..1e4, as
    ``LogisticRegressionCV``) maximising the mean held-out log-likelihood; equal scores go to the
    smaller ``C`` (the sparser model). Folds are shuffled with ``random_state``.

    Ranking: features with a non-zero coefficient at ``C`` first, by ``|coef|`` (the largest across
    classes for more than two classes). The lasso usually zeroes most features, and ``k`` of them
    are kept regardless, so the zeroed ones are ranked by when they enter the lasso path as the
    penalty is relaxed (``C`` doubled up to 12 times): earlier entry first, then larger ``|coef|``
    at entry; features that never enter come last in column order.

    Attributes: ``scores_`` (``|coef|`` at ``C_``), ``C_``, ``entry_`` (path step at which each
    feature entered: 0 = non-zero at ``C_``, inf = never), ``ranking_``, ``support_``.
    """

    _PATH_STEPS = 12

    def __init__(self, k=10, C=None, Cs=10, cv: int = 5, random_state=0, max_iter: int = 1000):
        self.k = k
        self.C = C
        self.Cs = Cs
        self.cv = cv
        self.random_state = random_state
        self.max_iter = max_iter

    def _rank(self, X, y):
        who = type(self).__name__
        max_iter = check_positive(self.max_iter, "max_iter", who, integer=True)
        Z = _standardise(X)
        classes = np.unique(y)
        with single_blas_thread():
            C = self._choose_C(Z, y, classes, max_iter) if self.C is None else check_positive(self.C, "C", who)
        self.C_ = C
        with warnings.catch_warnings(), single_blas_thread():
            warnings.filterwarnings("ignore", message=".*converge.*")
            fitted = _l1_logistic(C, classes.size, self.random_state, max_iter).fit(Z, y)
            scores = _magnitude(fitted)
            self.n_iter_ = int(np.max(fitted.n_iter_))
            entry = np.where(scores > 0, 0.0, np.inf)
            at_entry = scores.copy()
            for step in range(1, self._PATH_STEPS + 1):
                waiting = np.isinf(entry)
                if not waiting.any():
                    break
                relaxed = _magnitude(_l1_logistic(C * 2.0 ** step, classes.size, self.random_state,
                                                  max_iter).fit(Z, y))
                new = waiting & (relaxed > 0)
                entry[new] = step
                at_entry[new] = relaxed[new]
        order = np.lexsort((np.arange(X.shape[1]), -at_entry, entry))
        return {"scores": scores, "order": order, "entry": entry}

    def _choose_C(self, Z, y, classes, max_iter) -> float:
        from sklearn.metrics import log_loss
        from sklearn.model_selection import StratifiedKFold

        who = type(self).__name__
        if isinstance(self.Cs, Integral) and not isinstance(self.Cs, bool):
            if self.Cs < 1:
                raise InputError(f"{who}: Cs must be at least 1, got {self.Cs}")
            grid = np.logspace(-4, 4, int(self.Cs))
        else:
            try:
                grid = np.sort(np.asarray(self.Cs, dtype=float).ravel())
            except (TypeError, ValueError):
                raise InputError(f"{who}: Cs must be a number of values or a list of positive C, "
                                 f"got {self.Cs!r}") from None
            if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
                raise InputError(f"{who}: Cs must hold positive, finite values; got {self.Cs!r}")
        if grid.size == 1:
            return float(grid[0])
        cv = check_positive(self.cv, "cv", who, integer=True)
        smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
        folds = min(cv, smallest)
        if folds < 2:
            raise InputError(f"{who}: choosing C by cross-validation needs at least 2 samples of every outcome "
                             f"class (smallest class has {smallest}); give C explicitly")
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
        scores = np.zeros(grid.size)
        for train, test in splitter.split(Z, y):
            if np.unique(y[train]).size < classes.size:
                continue
            for g, C in enumerate(grid):
                model = _l1_logistic(float(C), classes.size, self.random_state, max_iter).fit(Z[train], y[train])
                scores[g] -= log_loss(y[test], model.predict_proba(Z[test]), labels=model.classes_)
        best = np.flatnonzero(scores >= scores.max() - 1e-12 * max(1.0, abs(scores.max())))[0]
        return float(grid[best])


class RFESelector(RankingSelector):
    """Recursive feature elimination with logistic regression down to ``k`` features (default 20).

    As in paper 001 (cervical cancer, 1890 MR features to 20): an L2 logistic regression (``C``)
    is fitted on the z-scored features, the ``step`` features (a count, or a fraction of those left)
    with the smallest ``|coef|`` are removed, and so on until ``k`` remain (scikit-learn's ``RFE``).
    ``step=1`` is the exact procedure; larger steps are faster on thousands of features.

    Ranking: the ``k`` survivors by ``|coef|`` in the final model, then the others from the last
    eliminated to the first (ties within one elimination step in column order).

    Attributes: ``scores_`` (``|coef|`` in the final model, 0 for eliminated features),
    ``ranking_``, ``support_``.
    """

    def __init__(self, k=20, step=1, C: float = 1.0, max_iter: int = 1000):
        self.k = k
        self.step = step
        self.C = C
        self.max_iter = max_iter

    def _rank(self, X, y):
        from sklearn.feature_selection import RFE
        from sklearn.linear_model import LogisticRegression

        who = type(self).__name__
        C = check_positive(self.C, "C", who)
        max_iter = check_positive(self.max_iter, "max_iter", who, integer=True)
        step = self.step
        if isinstance(step, bool) or not isinstance(step, Real) or not (
                (isinstance(step, Integral) and step >= 1) or (0 < step < 1)):
            raise InputError(f"{who}: step must be a whole number >= 1 or a fraction in (0, 1), got {step!r}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # k > features: warned once already by the base
            k = min(check_k(self, X.shape[1]), X.shape[1])
        Z = _standardise(X)
        with single_blas_thread():
            rfe = RFE(LogisticRegression(C=C, max_iter=max_iter), n_features_to_select=k, step=step).fit(Z, y)
        self.n_iter_ = int(np.max(rfe.estimator_.n_iter_))
        scores = np.zeros(X.shape[1])
        scores[rfe.support_] = np.abs(rfe.estimator_.coef_).max(axis=0)
        order = np.lexsort((np.arange(X.shape[1]), -scores, rfe.ranking_))
        return {"scores": scores, "order": order}
