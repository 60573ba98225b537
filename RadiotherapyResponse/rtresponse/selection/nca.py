"""Neighbourhood component analysis feature weights (Yang, Wang & Zuo 2012; MATLAB ``fscnca``).

Regularised NCA for classification learns one weight ``w_r`` per feature. With the weighted
Manhattan distance ``D_w(x_i, x_j) = sum_r w_r**2 |x_ir - x_jr|`` and the kernel
``k(z) = exp(-z / sigma)``, sample ``i`` picks ``j != i`` as its reference point with probability
``p_ij = k(D_w(x_i, x_j)) / sum_{l != i} k(D_w(x_i, x_l))``. The objective minimised is the
expected leave-one-out misclassification plus a ridge penalty::

    f(w) = (1/n) sum_i sum_{j != i} p_ij [y_i != y_j] + lambda sum_r w_r**2

(``fscnca``'s default ``'classiferror'`` loss), started from ``w = 1`` and minimised with L-BFGS
(scipy). Defaults follow ``fscnca``: ``lambda = 1/n``, kernel width ``sigma = 1``; features are
z-scored first (``fscnca``'s ``'Standardize', true``), so the weights compare across features.
The features with the largest ``|w|`` rank first.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ._checks import check_positive
from .base import RankingSelector, single_blas_thread

_CHUNK = 4_000_000  # elements (32 MB) of |x_i - x_j| held at once; larger sets are recomputed per step


def _blocks(X: np.ndarray):
    """``(slice, |x_i - x_j| block (n, n, c))`` over feature chunks."""
    n, p = X.shape
    step = max(1, _CHUNK // max(n * n, 1))
    for start in range(0, p, step):
        sl = slice(start, min(p, start + step))
        yield sl, np.abs(X[:, None, sl] - X[None, :, sl])


class _Objective:
    """f(w) and its gradient; caches the difference blocks when they fit in memory."""

    def __init__(self, X: np.ndarray, y_codes: np.ndarray, regularization: float, sigma: float):
        self.X = X
        self.n = X.shape[0]
        self.different = (y_codes[:, None] != y_codes[None, :]).astype(float)
        self.regularization = regularization
        self.sigma = sigma
        self.cache = list(_blocks(X)) if X.shape[0] ** 2 * X.shape[1] <= _CHUNK else None

    def blocks(self):
        return self.cache if self.cache is not None else _blocks(self.X)

    def __call__(self, w: np.ndarray):
        n, sigma = self.n, self.sigma
        w2 = w ** 2
        distance = np.zeros((n, n))
        for sl, d in self.blocks():
            distance += d @ w2[sl]
        logits = -distance / sigma
        np.fill_diagonal(logits, -np.inf)
        logits -= logits.max(axis=1, keepdims=True)
        kernel = np.exp(logits)
        p = kernel / kernel.sum(axis=1, keepdims=True)
        pl = p * self.different
        loss_i = pl.sum(axis=1)  # expected misclassification of sample i
        value = loss_i.mean() + self.regularization * w2.sum()
        inner = np.empty_like(w)
        for sl, d in self.blocks():
            a = np.einsum("ij,ijr->r", pl, d)                      # sum_i sum_j p_ij l_ij d_ijr
            b = np.einsum("i,ij,ijr->r", loss_i, p, d)             # sum_i L_i sum_j p_ij d_ijr
            inner[sl] = a - b
        gradient = -2.0 * w / sigma * inner / n + 2.0 * self.regularization * w
        return value, gradient


def nca_weights(X: np.ndarray, y: np.ndarray, *, regularization: float | None = None, sigma: float = 1.0,
                max_iter: int = 1000, tol: float = 1e-6) -> tuple[np.ndarray, object]:
    """Feature weights ``w`` of regularised NCA on ``X`` as given (not standardised here)."""
    X = np.asarray(X, dtype=np.float64)
    _, y_codes = np.unique(y, return_inverse=True)
    lam = 1.0 / X.shape[0] if regularization is None else float(regularization)
    objective = _Objective(X, y_codes, lam, float(sigma))
    with single_blas_thread():
        result = minimize(objective, np.ones(X.shape[1]), jac=True, method="L-BFGS-B",
                          options={"maxiter": int(max_iter), "gtol": tol, "ftol": 1e-12})
    return result.x, result


class NCASelector(RankingSelector):
    """Top ``k`` features by regularised NCA feature weight (MATLAB ``fscnca``; see module docs).

    Parameters
    ----------
    k:
        Features to keep (default 10), or ``"all"``.
    regularization:
        ``lambda``; None (default) means ``1 / n_samples``.
    sigma:
        Kernel width (default 1).
    max_iter, tol:
        L-BFGS iteration limit and gradient tolerance.

    Attributes: ``scores_`` (``|w|``), ``weights_`` (``w``), ``ranking_``, ``support_``,
    ``n_iter_``.
    """

    def __init__(self, k=10, regularization=None, sigma: float = 1.0, max_iter: int = 1000, tol: float = 1e-6):
        self.k = k
        self.regularization = regularization
        self.sigma = sigma
        self.max_iter = max_iter
        self.tol = tol

    def _rank(self, X, y):
        who = type(self).__name__
        if self.regularization is not None:
            from numbers import Real

            lam = self.regularization
            if isinstance(lam, bool) or not isinstance(lam, Real) or not np.isfinite(lam) or lam < 0:
                from ..errors import InputError

                raise InputError(f"{who}: regularization must be a number >= 0 or None, got {lam!r}")
        sigma = check_positive(self.sigma, "sigma", who)
        max_iter = check_positive(self.max_iter, "max_iter", who, integer=True)
        tol = check_positive(self.tol, "tol", who)
        Z = (X - X.mean(axis=0)) / X.std(axis=0)
        w, result = nca_weights(Z, y, regularization=self.regularization, sigma=sigma, max_iter=max_iter, tol=tol)
        self.n_iter_ = int(result.nit)
        return {"scores": np.abs(w), "weights": w}
