"""Reclassification statistics for a new risk model against an old one: NRI and IDI (Pencina 2008).

Both functions take the outcome and the two models' predicted probabilities for the *same* cases
and follow R's PredictABEL ``reclassification()``, which calls Hmisc ``improveProb()``; the test
suite checks them against PredictABEL's published output on ``mtcars``.

References: Pencina MJ, D'Agostino RB Sr, D'Agostino RB Jr, Vasan RS. Evaluating the added
predictive ability of a new marker: from area under the ROC curve to reclassification and beyond.
Stat Med 2008;27:157-172. Pencina MJ, D'Agostino RB Sr, Steyerberg EW. Extensions of net
reclassification improvement calculations. Stat Med 2011;30:11-21 (continuous NRI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Optional, Tuple

import numpy as np

from ..errors import InputError
from .roc import _alpha, _label, _outcome, _positions, _scores, _z_and_p

__all__ = ["NRIResult", "IDIResult", "nri", "idi", "risk_categories"]

SE_METHODS = ("pencina2008", "hmisc")


@dataclass(frozen=True)
class NRIResult:
    """Net reclassification improvement and its parts.

    ``estimate = events + nonevents`` where ``events = P(up | event) - P(down | event)`` and
    ``nonevents = P(down | non-event) - P(up | non-event)``; "up" means a higher category
    (categorical NRI) or a higher probability (continuous NRI) under the new model.
    ``ci_low``/``ci_high`` are the Wald ``1 - alpha`` interval and ``p`` the two-sided p-value of
    ``z = estimate / se``; ``se_events``/``se_nonevents`` are the components' standard errors.
    """

    estimate: float
    ci_low: float
    ci_high: float
    p: float
    se: float
    z: float
    events: float
    nonevents: float
    se_events: float
    se_nonevents: float
    n_events: int
    n_nonevents: int
    up_events: int
    down_events: int
    up_nonevents: int
    down_nonevents: int
    cutoffs: Optional[Tuple[float, ...]]  # None for the continuous NRI
    se_method: str
    alpha: float

    @property
    def kind(self) -> str:
        return "continuous" if self.cutoffs is None else "categorical"


@dataclass(frozen=True)
class IDIResult:
    """Integrated discrimination improvement and its parts.

    ``estimate = slope_new - slope_old``, where a discrimination slope (Yates) is the mean predicted
    risk of events minus that of non-events. Equivalently ``estimate = improvement_events +
    improvement_nonevents`` with ``improvement_events`` the mean rise of events' risk (Hmisc's
    ``improveSens``) and ``improvement_nonevents`` the mean fall of non-events' risk (``improveSpec``).
    """

    estimate: float
    ci_low: float
    ci_high: float
    p: float
    se: float
    z: float
    slope_old: float
    slope_new: float
    improvement_events: float
    improvement_nonevents: float
    n_events: int
    n_nonevents: int
    alpha: float


def _probabilities(values, n: int, default: str) -> np.ndarray:
    out = _scores(values, n, default)
    bad = (out < 0) | (out > 1)
    if bad.any():
        raise InputError(f"{int(bad.sum())} predicted risk(s) lie outside [0, 1] (positions {_positions(bad)}); "
                         "NRI and IDI compare predicted probabilities", column=_label(values, default))
    return out


def _cutoffs(cutoffs) -> Tuple[float, ...]:
    values = np.asarray(cutoffs, dtype=float)
    if values.ndim != 1 or values.size < 2:
        raise InputError(f"cutoffs must list at least 2 risk cut points (e.g. [0, 0.2, 0.4, 1]), got {cutoffs!r}")
    if not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
        raise InputError(f"cutoffs must be finite and strictly increasing, got {cutoffs!r}")
    return tuple(float(v) for v in values)


def risk_categories(p, cutoffs) -> np.ndarray:
    """Category index (0-based) of each risk, with PredictABEL's boundaries.

    PredictABEL cuts with R's ``cut(p, breaks=cutoffs, include.lowest=TRUE, right=FALSE)``: the
    categories are ``[c0, c1), [c1, c2), ..., [c_{k-1}, c_k]`` — closed on the left, the last one
    closed on both sides. So with cutoffs (0, 0.2, 0.4, 1) a risk of exactly 0.2 is in the middle
    category and a risk of exactly 1 in the top one. Risks outside ``[c0, c_k]`` are an error
    (R would turn them into NA and drop those cases silently).
    """
    edges = _cutoffs(cutoffs)
    values = np.asarray(p, dtype=float)
    outside = ~((values >= edges[0]) & (values <= edges[-1]))
    if outside.any():
        raise InputError(f"{int(outside.sum())} risk(s) fall outside the cutoffs' range "
                         f"[{edges[0]}, {edges[-1]}] (positions {_positions(outside)})")
    index = np.searchsorted(edges, values, side="right") - 1
    return np.minimum(index, len(edges) - 2)


def nri(y, p_old, p_new, cutoffs=None, *, alpha: float = 0.05, se_method: str = "pencina2008") -> NRIResult:
    """Net reclassification improvement of ``p_new`` over ``p_old``.

    With ``cutoffs`` (e.g. ``[0, 0.2, 0.4, 1]``) this is the categorical NRI: a case moves up or down
    when its risk category (see :func:`risk_categories` for the boundaries) changes. With
    ``cutoffs=None`` it is the continuous ("category-free") NRI: any increase or decrease of the
    predicted risk counts.

    Standard error (``se_method``):

    * ``"pencina2008"`` (default) — Pencina et al. 2008, eq. for the NRI's z-test:
      ``se^2 = (p_up,ev + p_down,ev) / n_ev + (p_up,ne + p_down,ne) / n_ne``. This is the variance
      *under the null hypothesis* (McNemar-type). It is what Hmisc ``improveProb()`` originally
      computed, hence what PredictABEL's ``reclassification()`` (which calls ``improveProb()``)
      printed, and what most published NRIs quote; we default to it so that our numbers can be
      compared with that literature, and because it is the right variance for the test of
      NRI = 0 (the reported ``p``).
    * ``"hmisc"`` — later Hmisc ``improveProb()`` versions: the variance of a difference of two
      proportions without the null assumption,
      ``se_ev^2 = (n_up + n_down) / n_ev^2 - (n_up - n_down)^2 / n_ev^3`` (same for non-events).
      It is never larger than the Pencina 2008 value and is the better basis for a confidence
      interval when the NRI is far from 0; PredictABEL run with a current Hmisc prints this one.

    The point estimates do not depend on ``se_method``.

    The interval is ``estimate -/+ z_{1-alpha/2} * se`` (not clipped), ``p`` two-sided. A zero
    standard error (nobody reclassified) gives ``z = 0, p = 1`` when the estimate is 0.
    """
    if se_method not in SE_METHODS:
        raise InputError(f"se_method must be one of {SE_METHODS}, got {se_method!r}")
    alpha = _alpha(alpha)
    event = _outcome(y)
    old = _probabilities(p_old, event.size, "p_old")
    new = _probabilities(p_new, event.size, "p_new")
    edges = None
    if cutoffs is not None:
        edges = _cutoffs(cutoffs)
        old = risk_categories(old, edges).astype(float)
        new = risk_categories(new, edges).astype(float)
    change = new - old
    n_ev = int(event.sum())
    n_ne = event.size - n_ev
    up_ev = int(np.sum(change[event] > 0))
    down_ev = int(np.sum(change[event] < 0))
    up_ne = int(np.sum(change[~event] > 0))
    down_ne = int(np.sum(change[~event] < 0))

    nri_ev = (up_ev - down_ev) / n_ev
    nri_ne = (down_ne - up_ne) / n_ne
    if se_method == "pencina2008":
        var_ev = (up_ev + down_ev) / n_ev ** 2
        var_ne = (up_ne + down_ne) / n_ne ** 2
    else:
        var_ev = (up_ev + down_ev) / n_ev ** 2 - (up_ev - down_ev) ** 2 / n_ev ** 3
        var_ne = (up_ne + down_ne) / n_ne ** 2 - (up_ne - down_ne) ** 2 / n_ne ** 3
    var_ev, var_ne = max(var_ev, 0.0), max(var_ne, 0.0)
    estimate = nri_ev + nri_ne
    se = math.sqrt(var_ev + var_ne)
    z, p = _z_and_p(estimate, se)
    half = NormalDist().inv_cdf(1.0 - alpha / 2.0) * se
    return NRIResult(
        estimate=float(estimate), ci_low=float(estimate - half), ci_high=float(estimate + half),
        p=float(p), se=float(se), z=float(z), events=float(nri_ev), nonevents=float(nri_ne),
        se_events=math.sqrt(var_ev), se_nonevents=math.sqrt(var_ne), n_events=n_ev, n_nonevents=n_ne,
        up_events=up_ev, down_events=down_ev, up_nonevents=up_ne, down_nonevents=down_ne,
        cutoffs=edges, se_method=se_method, alpha=alpha)


def idi(y, p_old, p_new, *, alpha: float = 0.05) -> IDIResult:
    """Integrated discrimination improvement of ``p_new`` over ``p_old`` (Pencina 2008).

    ``IDI = mean(d | event) - mean(d | non-event)`` with ``d = p_new - p_old``, i.e. the gain in
    discrimination slope. Its standard error is Pencina 2008's (and Hmisc's, unchanged since):
    ``se^2 = var(d | event) / n_ev + var(d | non-event) / n_ne`` with sample variances (ddof 1),
    so at least 2 events and 2 non-events are needed. Interval ``IDI -/+ z_{1-alpha/2} * se``,
    two-sided ``p``; a zero standard error gives ``z = 0, p = 1`` when the IDI is 0.
    """
    alpha = _alpha(alpha)
    event = _outcome(y)
    old = _probabilities(p_old, event.size, "p_old")
    new = _probabilities(p_new, event.size, "p_new")
    n_ev = int(event.sum())
    n_ne = event.size - n_ev
    if n_ev < 2 or n_ne < 2:
        raise InputError(f"the IDI's standard error needs at least 2 events and 2 non-events "
                         f"(got {n_ev} events, {n_ne} non-events)")
    change = new - old
    d_ev, d_ne = change[event], change[~event]
    estimate = float(d_ev.mean() - d_ne.mean())
    se = math.sqrt(d_ev.var(ddof=1) / n_ev + d_ne.var(ddof=1) / n_ne)
    z, p = _z_and_p(estimate, se)
    half = NormalDist().inv_cdf(1.0 - alpha / 2.0) * se
    return IDIResult(
        estimate=estimate, ci_low=estimate - half, ci_high=estimate + half, p=float(p), se=se, z=float(z),
        slope_old=float(old[event].mean() - old[~event].mean()),
        slope_new=float(new[event].mean() - new[~event].mean()),
        improvement_events=float(d_ev.mean()), improvement_nonevents=float(-d_ne.mean()),
        n_events=n_ev, n_nonevents=n_ne, alpha=alpha)
