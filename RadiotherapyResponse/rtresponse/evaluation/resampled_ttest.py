"""Corrected resampled paired t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004).

Comparing two models over the same J resamples, the naive paired t-test ignores that the
resamples overlap; the correction inflates the variance by ``n_test / n_train``:

    t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)),   df = J - 1

where d_j is the difference in performance on resample j. For the 0.632+ bootstrap the training
and test sizes vary per draw; as in Tanaka et al. their averages are used (about 63.2 % / 36.8 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class TTestResult:
    mean_difference: float
    t: float
    df: int
    p: float
    one_tailed: bool


def corrected_resampled_ttest(scores_a, scores_b, n_train: float, n_test: float,
                              one_tailed: bool = False) -> TTestResult:
    """Is model A better than (two-sided: different from) model B over the same resamples?

    ``scores_a`` / ``scores_b``: per-resample performance (e.g. ``BootstrapResult.per_bootstrap``)
    on the *same* resamples. ``one_tailed`` tests A > B (the head-and-neck paper's choice).
    """
    from scipy.stats import t as student_t

    a = np.asarray(scores_a, dtype=float)
    b = np.asarray(scores_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise InputError(f"the two models need scores on the same resamples (got {a.shape} and {b.shape})")
    if a.size < 2:
        raise InputError("at least two resamples are needed")
    if n_train <= 0 or n_test <= 0:
        raise InputError("n_train and n_test must be positive")
    difference = a - b
    mean = float(difference.mean())
    variance = float(difference.var(ddof=1))
    df = a.size - 1
    if variance == 0:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        t = mean / math.sqrt((1 / a.size + n_test / n_train) * variance)
    p = float(student_t.sf(t, df)) if one_tailed else float(2 * student_t.sf(abs(t), df))
    return TTestResult(mean_difference=mean, t=float(t), df=df, p=p, one_tailed=one_tailed)


def bootstrap_sizes(indices) -> tuple[float, float]:
    """Average (n_train, n_test) of bootstrap draws: distinct in-bag patients and out-of-bag patients."""
    indices = np.asarray(indices)
    n = indices.shape[1]
    in_bag = np.array([np.unique(row).size for row in indices], dtype=float)
    return float(in_bag.mean()), float((n - in_bag).mean())
