"""ROC analysis: AUC, ROC curve points, Youden cut-off, DeLong confidence interval and paired test.

Conventions shared by every function here:

* ``y`` is the binary outcome, 0/1 (int or float) or bool, positive = 1. Map other labels
  (``"Poor"``/``"Good"``) with :func:`rtresponse.evaluation.metrics.binary_outcome` first.
* ``score`` is any finite real number where *higher means more likely positive* (a probability,
  a decision value, a marker). There is no automatic direction flip (pROC's ``direction="auto"``):
  a score that works backwards has an AUC below 0.5, as it should when comparing models.
* A case is called positive at threshold ``t`` when ``score >= t``.

The AUC is the Mann-Whitney probability that a random positive scores above a random negative,
ties counted half, computed from midranks in O(n log n). DeLong's variance (DeLong, DeLong &
Clarke-Pearson 1988) is computed with the midrank algorithm of Sun & Xu (2014, IEEE Signal
Processing Letters 21:1389), which gives the same structural components as the O(m n) original.
Numbers are checked against pROC (Robin et al. 2011) on its ``aSAH`` data in the test suite.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from ..errors import InputError

__all__ = ["auc", "roc_curve_points", "youden_cutoff", "delong_auc_ci", "delong_test"]


# --------------------------------------------------------------------------- validation helpers
# (private, shared with the other evaluation modules)

def _label(values, default: str) -> str:
    """A name for error messages: a pandas Series' name when it has one, else ``default``."""
    name = getattr(values, "name", None)
    return str(name) if name is not None else default


def _positions(mask: np.ndarray, limit: int = 5) -> str:
    where = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in where[:limit])
    return shown + (", ..." if where.size > limit else "")


def _outcome(y, *, require_both: bool = True) -> np.ndarray:
    """Validate a binary outcome; return it as a bool array (True = positive)."""
    column = _label(y, "y")
    values = np.asarray(y)
    if values.ndim != 1:
        raise InputError(f"outcome must be one-dimensional, got shape {values.shape}", column=column)
    if values.size == 0:
        raise InputError("outcome is empty", column=column)
    if values.dtype.kind == "b":
        out = values.astype(bool)
    else:
        if values.dtype.kind not in "iuf":
            try:
                values = values.astype(float)
            except (TypeError, ValueError):
                raise InputError(
                    "outcome must be 0/1 or bool; map other labels with "
                    "binary_outcome(values, positive=...)", column=column) from None
        bad = ~np.isin(values, (0, 1))
        if bad.any():
            found = sorted({repr(v) for v in values[bad].tolist()})[:5]
            raise InputError(
                f"outcome must be 0/1 or bool; found {', '.join(found)} at positions {_positions(bad)} "
                "(missing values are not allowed; map other labels with binary_outcome)", column=column)
        out = values == 1
    if require_both:
        n_pos = int(out.sum())
        if n_pos == 0 or n_pos == out.size:
            which = "positive (1)" if n_pos else "negative (0)"
            raise InputError(
                f"outcome has a single class (all {out.size} cases are {which}): "
                "discrimination statistics need both positives and negatives", column=column)
    return out


def _scores(score, n: int, default: str) -> np.ndarray:
    """Validate a score vector of length ``n``; return it as float64."""
    column = _label(score, default)
    values = np.asarray(score)
    if values.ndim != 1:
        raise InputError(f"scores must be one-dimensional, got shape {values.shape}", column=column)
    if values.dtype.kind == "b":
        values = values.astype(float)
    try:
        values = values.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError("scores must be numbers", column=column) from None
    if values.size != n:
        raise InputError(f"length mismatch: {values.size} scores for {n} outcomes", column=column)
    bad = ~np.isfinite(values)
    if bad.any():
        raise InputError(f"{int(bad.sum())} score(s) are missing or not finite (positions {_positions(bad)})",
                         column=column)
    return values


def _alpha(alpha) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return alpha


def _two_sided_p(z: float) -> float:
    """Two-sided normal p-value, accurate in the tails (erfc, not 1 - cdf)."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def _z_and_p(estimate: float, se: float) -> tuple[float, float]:
    """Wald z and two-sided p. With a zero standard error: z = 0, p = 1 when the estimate is
    exactly 0 (no difference at all), otherwise z = +/-inf, p = 0 (a difference with no spread)."""
    if se > 0:
        z = estimate / se
        return z, _two_sided_p(z)
    if estimate == 0:
        return 0.0, 1.0
    return math.copysign(math.inf, estimate), 0.0


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given the mean of the ranks they span (scipy's ``rankdata`` 'average')."""
    order = np.argsort(values, kind="mergesort")
    _, inverse, counts = np.unique(values[order], return_inverse=True, return_counts=True)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))  # 0-based rank of each tie group's first member
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = (first + (counts + 1) / 2.0)[inverse]
    return ranks


# --------------------------------------------------------------------------- public functions

def auc(y, score) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counted half.

    Computed from midranks (the Mann-Whitney U statistic divided by ``m * n``), so it is exact and
    O(n log n). A perfectly separating score gives 1.0, a perfectly reversed one 0.0.
    """
    positive = _outcome(y)
    values = _scores(score, positive.size, "score")
    m = int(positive.sum())
    n = positive.size - m
    ranks = _midranks(values)
    return float((ranks[positive].sum() - m * (m + 1) / 2.0) / (m * n))


def roc_curve_points(y, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC curve: ``(fpr, tpr, thresholds)``, one point per distinct score plus the origin.

    ``thresholds`` is decreasing: ``+inf`` first (nobody called positive: fpr = tpr = 0), then each
    distinct score; point ``i`` calls a case positive when ``score >= thresholds[i]``; the last point
    is (1, 1). No intermediate points are dropped (it equals scikit-learn's
    ``roc_curve(y, score, drop_intermediate=False)``). The trapezoidal area under these points
    equals :func:`auc`.
    """
    positive = _outcome(y)
    values = _scores(score, positive.size, "score")
    order = np.argsort(-values, kind="mergesort")
    sorted_values = values[order]
    tp = np.cumsum(positive[order])
    fp = np.cumsum(~positive[order])
    last_of_group = np.r_[np.diff(sorted_values) != 0, True]
    tp, fp = tp[last_of_group], fp[last_of_group]
    m, n = tp[-1], fp[-1]
    fpr = np.r_[0.0, fp / n]
    tpr = np.r_[0.0, tp / m]
    thresholds = np.r_[np.inf, sorted_values[last_of_group]]
    return fpr, tpr, thresholds


def youden_cutoff(y, score) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity - 1 (positive when ``score >= cutoff``).

    The cut-off is always one of the observed scores, so that applying it to these data reproduces
    the optimum (``classification_metrics(y, score, youden_cutoff(y, score))``). J is compared exactly
    (from integer counts). **Tie rule:** when several thresholds reach the same maximal J, the
    *highest* one is returned, i.e. the one calling the fewest cases positive (the most specific).
    The same rule applies when no threshold beats chance (max J <= 0, e.g. a reversed score).
    """
    positive = _outcome(y)
    values = _scores(score, positive.size, "score")
    fpr, tpr, thresholds = roc_curve_points(positive, values)
    m = int(positive.sum())
    n = positive.size - m
    # exact integer numerator of J * m * n, skipping the +inf point
    tp = np.rint(tpr[1:] * m).astype(np.int64)
    fp = np.rint(fpr[1:] * n).astype(np.int64)
    j = tp * n - fp * m
    best = int(np.flatnonzero(j == j.max())[0])  # thresholds are decreasing: first = highest
    return float(thresholds[1:][best])


def _delong(positive: np.ndarray, scores: np.ndarray):
    """AUCs and DeLong structural components of ``k`` scores (``scores`` is k x N).

    Sun & Xu (2014): with midranks ``tx`` within positives, ``ty`` within negatives and ``tz`` over
    all cases, ``V10_i = (tz_i - tx_i) / n`` for each positive and ``V01_j = 1 - (tz_j - ty_j) / m``
    for each negative; the AUC is the mean of either.
    """
    m = int(positive.sum())
    n = positive.size - m
    if m < 2 or n < 2:
        raise InputError(f"DeLong's variance needs at least 2 positives and 2 negatives "
                         f"(got {m} positives, {n} negatives)")
    k = scores.shape[0]
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    aucs = np.empty(k)
    for r in range(k):
        pos, neg = scores[r, positive], scores[r, ~positive]
        tz = _midranks(np.concatenate((pos, neg)))
        tx, ty = _midranks(pos), _midranks(neg)
        v10[r] = (tz[:m] - tx) / n
        v01[r] = 1.0 - (tz[m:] - ty) / m
        aucs[r] = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    return aucs, v10, v01


def delong_auc_ci(y, score, alpha: float = 0.05) -> tuple[float, float, float]:
    """AUC with its DeLong (1988) ``1 - alpha`` confidence interval: ``(auc, low, high)``.

    ``var(AUC) = var(V10) / m + var(V01) / n`` (sample variances of the structural components over
    the m positives and n negatives); the interval is ``auc -/+ z_{1-alpha/2} * sqrt(var)``, clipped
    to [0, 1] as pROC's ``ci.auc(method="delong")`` does. Needs at least 2 cases of each class.
    """
    alpha = _alpha(alpha)
    positive = _outcome(y)
    values = _scores(score, positive.size, "score")
    aucs, v10, v01 = _delong(positive, values[None, :])
    variance = v10[0].var(ddof=1) / v10.shape[1] + v01[0].var(ddof=1) / v01.shape[1]
    half = NormalDist().inv_cdf(1.0 - alpha / 2.0) * math.sqrt(max(variance, 0.0))
    value = float(aucs[0])
    return value, max(0.0, value - half), min(1.0, value + half)


def delong_test(y, score_a, score_b) -> tuple[float, float]:
    """DeLong's paired test of two correlated AUCs on the same cases: ``(z, p)``, two-sided.

    ``z = (AUC_a - AUC_b) / SE(AUC_a - AUC_b)`` — positive when ``score_a`` discriminates better,
    the sign convention of pROC's ``roc.test(roc_a, roc_b, method="delong")``. The variance of the
    difference is computed from the per-case differences of the structural components (DeLong's
    ``L S L'`` with ``L = (1, -1)``), so two scores that rank every case identically (the same
    score, or a monotone transform of it) have a difference of exactly 0 with variance exactly 0:
    this is reported as ``z = 0, p = 1``. A non-zero difference with zero variance (possible only
    in degenerate, perfectly separated data) gives ``z = +/-inf, p = 0``.
    """
    positive = _outcome(y)
    a = _scores(score_a, positive.size, "score_a")
    b = _scores(score_b, positive.size, "score_b")
    aucs, v10, v01 = _delong(positive, np.vstack((a, b)))
    d10 = v10[0] - v10[1]
    d01 = v01[0] - v01[1]
    difference = float(d10.mean())  # == aucs[0] - aucs[1], without the cancellation of two sums
    if np.all(d10 == 0) and np.all(d01 == 0):
        return 0.0, 1.0
    variance = d10.var(ddof=1) / d10.size + d01.var(ddof=1) / d01.size
    return _z_and_p(difference, math.sqrt(max(variance, 0.0)))
