"""Model-comparison statistics (rtresponse.evaluation) against independent references.

Published values: pROC's unit tests on its aSAH data (AUC, DeLong CI and paired test) and
PredictABEL / Hmisc on R's mtcars (NRI, IDI); see Testing/Data/README.md. Internal consistency
checks use brute-force O(m n) implementations, scipy and scikit-learn as independent references.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import rank_auc
from rtresponse.errors import InputError
from rtresponse.evaluation import (auc, binary_outcome, classification_metrics, delong_auc_ci, delong_test, idi,
                                   nri, risk_categories, roc_curve_points, youden_cutoff)
from rtresponse.evaluation.roc import _midranks

DATA = Path(__file__).resolve().parent / "Data"


@pytest.fixture(scope="module")
def asah():
    frame = pd.read_csv(DATA / "aSAH.csv")
    return binary_outcome(frame["outcome"], positive="Poor"), frame


def _logistic_fit(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unpenalised logistic regression (with intercept) by Newton-Raphson/IRLS; fitted probabilities."""
    X = np.column_stack([np.ones(len(y)), X])
    beta = np.zeros(X.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-X @ beta))
        step = np.linalg.solve(X.T @ ((p * (1 - p))[:, None] * X), X.T @ (y - p))
        beta += step
        if np.max(np.abs(step)) < 1e-13:
            break
    else:
        raise AssertionError("IRLS did not converge")
    return 1.0 / (1.0 + np.exp(-X @ beta))


@pytest.fixture(scope="module")
def mtcars_models():
    cars = pd.read_csv(DATA / "mtcars.csv")
    y = cars["vs"].to_numpy()
    p1 = _logistic_fit(cars[["am", "gear"]].to_numpy(float), y)
    p2 = _logistic_fit(cars[["am", "gear", "wt"]].to_numpy(float), y)
    return y, p1, p2


def _delong_brute(y, scores):
    """DeLong 1988 structural components from the O(m n) kernel, for checking the midrank algorithm."""
    y = np.asarray(y, bool)
    aucs, v10s, v01s = [], [], []
    for s in scores:
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        aucs.append(psi.mean())
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
    v10, v01 = np.array(v10s), np.array(v01s)
    S = np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]
    return np.array(aucs), np.atleast_2d(S)


def _tied_data(seed=0, n=80):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.round(y * 0.8 + rng.normal(size=n), 1)  # rounding plants ties
    b = np.round(y * 0.3 + rng.normal(size=n), 1)
    return y, a, b


# ----------------------------------------------------------------------------- pROC aSAH

@pytest.mark.parametrize("marker, expected", [
    ("wfns", 0.823678861788618), ("s100b", 0.731368563685637), ("ndka", 0.611957994579946)])
def test_auc_matches_proc(asah, marker, expected):
    y, frame = asah
    assert auc(y, frame[marker]) == pytest.approx(expected, abs=1e-9)
    assert delong_auc_ci(y, frame[marker])[0] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("a, b, z, p", [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054)])
def test_delong_test_matches_proc(asah, a, b, z, p):
    y, frame = asah
    got_z, got_p = delong_test(y, frame[a], frame[b])
    assert got_z == pytest.approx(z, abs=1e-6)
    assert got_p == pytest.approx(p, abs=1e-6)
    # pROC's sign convention: positive when the first score has the larger AUC
    assert math.copysign(1, got_z) == math.copysign(1, auc(y, frame[a]) - auc(y, frame[b]))
    swapped_z, swapped_p = delong_test(y, frame[b], frame[a])
    assert swapped_z == pytest.approx(-got_z, abs=1e-12) and swapped_p == pytest.approx(got_p, abs=1e-12)


def test_delong_ci_matches_proc(asah):
    y, frame = asah
    value, low, high = delong_auc_ci(y, frame["ndka"])
    assert low == pytest.approx(0.501244999271703, abs=1e-6)
    assert high == pytest.approx(0.722670989888189, abs=1e-6)
    # a wider interval at a lower confidence level would be a bug
    _, low90, high90 = delong_auc_ci(y, frame["ndka"], alpha=0.10)
    assert low < low90 < value < high90 < high


def test_youden_matches_proc_best_s100b(asah):
    """pROC documents coords(roc(outcome, s100b), "best") as threshold 0.205 (a midpoint between
    observed values 0.19 and 0.22), specificity 0.8055556, sensitivity 0.6341463. Our cut-off is the
    observed value 0.22, which classifies every case the same way."""
    y, frame = asah
    cutoff = youden_cutoff(y, frame["s100b"])
    assert cutoff == pytest.approx(0.22)
    m = classification_metrics(y, frame["s100b"], cutoff)
    assert m["specificity"] == pytest.approx(0.8055556, abs=1e-7)
    assert m["sensitivity"] == pytest.approx(0.6341463, abs=1e-7)
    assert math.isnan(m["brier"])  # s100b is a marker (values above 1), not a probability


# ----------------------------------------------------------------------------- PredictABEL mtcars

def test_nri_idi_match_predictabel(mtcars_models):
    y, p1, p2 = mtcars_models
    categorical = nri(y, p1, p2, cutoffs=[0, 0.2, 0.4, 1])
    continuous = nri(y, p1, p2)
    result = idi(y, p1, p2)
    assert categorical.estimate == pytest.approx(0.753968, abs=1e-6)
    assert continuous.estimate == pytest.approx(1.412698, abs=1e-6)
    assert result.estimate == pytest.approx(0.532489, abs=1e-6)
    assert result.ci_low == pytest.approx(0.355975, abs=1e-6)
    assert result.ci_high == pytest.approx(0.709004, abs=1e-6)
    assert categorical.kind == "categorical" and continuous.kind == "continuous"


def test_nri_components_and_standard_errors(mtcars_models):
    y, p1, p2 = mtcars_models
    r = nri(y, p1, p2)
    n1, n0 = int(y.sum()), int((1 - y).sum())
    d = p2 - p1
    assert r.up_events == np.sum(d[y == 1] > 0) and r.down_nonevents == np.sum(d[y == 0] < 0)
    assert r.events == pytest.approx((r.up_events - r.down_events) / n1)
    assert r.nonevents == pytest.approx((r.down_nonevents - r.up_nonevents) / n0)
    assert r.estimate == pytest.approx(r.events + r.nonevents)
    # Pencina 2008 (null) variance, written out independently
    pencina = math.sqrt((r.up_events + r.down_events) / n1 / n1 + (r.up_nonevents + r.down_nonevents) / n0 / n0)
    assert r.se == pytest.approx(pencina, rel=1e-12)
    assert r.ci_low == pytest.approx(r.estimate - 1.959963984540054 * pencina, rel=1e-12)
    # current Hmisc variance: pup + pdown - (pup - pdown)^2, per class, over n
    h = nri(y, p1, p2, se_method="hmisc")
    pu1, pd1 = r.up_events / n1, r.down_events / n1
    pu0, pd0 = r.up_nonevents / n0, r.down_nonevents / n0
    hmisc = math.sqrt((pu1 + pd1 - (pu1 - pd1) ** 2) / n1 + (pu0 + pd0 - (pu0 - pd0) ** 2) / n0)
    assert h.se == pytest.approx(hmisc, rel=1e-12)
    assert h.estimate == r.estimate and h.se < r.se


def test_idi_components(mtcars_models):
    y, p1, p2 = mtcars_models
    r = idi(y, p1, p2)
    slope = lambda p: p[y == 1].mean() - p[y == 0].mean()  # noqa: E731
    assert r.slope_old == pytest.approx(slope(p1)) and r.slope_new == pytest.approx(slope(p2))
    assert r.estimate == pytest.approx(r.slope_new - r.slope_old, abs=1e-12)
    assert r.estimate == pytest.approx(r.improvement_events + r.improvement_nonevents, abs=1e-12)
    assert r.p < 1e-6 and r.z > 0


def test_risk_categories_follow_predictabel_boundaries():
    # R: cut(p, c(0, .2, .4, 1), include.lowest=TRUE, right=FALSE) -> [0,.2) [.2,.4) [.4,1]
    p = np.array([0.0, 0.1999, 0.2, 0.3999, 0.4, 0.99, 1.0])
    assert risk_categories(p, [0, 0.2, 0.4, 1]).tolist() == [0, 0, 1, 1, 2, 2, 2]
    with pytest.raises(InputError, match="outside"):
        risk_categories([0.5, 1.2], [0, 0.5, 1])
    with pytest.raises(InputError, match="increasing"):
        nri([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [0.2, 0.3, 0.4, 0.5], cutoffs=[0, 0.5, 0.5, 1])


def test_nri_idi_no_change_and_bad_probabilities():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.3, 0.6, 0.8, 0.5, 0.4])
    r = nri(y, p, p)
    assert (r.estimate, r.se, r.z, r.p) == (0.0, 0.0, 0.0, 1.0)
    r = idi(y, p, p)
    assert (r.estimate, r.se, r.z, r.p) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(InputError, match=r"outside \[0, 1\]"):
        idi(y, p, p * 2)
    with pytest.raises(InputError, match="se_method"):
        nri(y, p, p, se_method="bootstrap")


def test_nri_idi_see_a_planted_marker_and_not_noise():
    rng = np.random.default_rng(11)
    n = 400
    base, marker, noise = rng.normal(size=(3, n))
    y = (rng.random(n) < 1 / (1 + np.exp(-(base + 1.5 * marker)))).astype(int)
    expit = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    p_old = _logistic_fit(base[:, None], y)
    p_marker = _logistic_fit(np.column_stack([base, marker]), y)
    p_noise = expit(np.log(p_old / (1 - p_old)) + 1e-3 * noise)  # a tiny, meaningless perturbation
    assert nri(y, p_old, p_marker).p < 1e-6 and idi(y, p_old, p_marker).p < 1e-6
    assert idi(y, p_old, p_noise).estimate == pytest.approx(0, abs=1e-3)
    assert nri(y, p_old, p_noise).p > 0.001


# ----------------------------------------------------------------------------- internal consistency

def test_midranks_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    values = np.array([3.0, 1.0, 2.0, 3.0, 3.0, -1.0, 2.0, 10.0])
    assert np.array_equal(_midranks(values), stats.rankdata(values))
    rng = np.random.default_rng(1)
    values = np.round(rng.normal(size=500), 1)
    assert np.allclose(_midranks(values), stats.rankdata(values))


def test_auc_matches_brute_force_and_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    y, a, _ = _tied_data(seed=2)
    assert auc(y, a) == pytest.approx(rank_auc(a, y), abs=1e-12)
    assert auc(y, a) == pytest.approx(metrics.roc_auc_score(y, a), abs=1e-12)
    assert auc(y.astype(bool), a) == auc(y.astype(float), a)


def test_roc_curve_points_match_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    y, a, _ = _tied_data(seed=3)
    fpr, tpr, thr = roc_curve_points(y, a)
    ref_fpr, ref_tpr, ref_thr = metrics.roc_curve(y, a, drop_intermediate=False)
    assert np.allclose(fpr, ref_fpr) and np.allclose(tpr, ref_tpr)
    assert thr[0] == np.inf and np.allclose(thr[1:], ref_thr[1:])
    assert np.all(np.diff(thr) < 0)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
    assert trapezoid(tpr, fpr) == pytest.approx(auc(y, a), abs=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_delong_matches_brute_force(seed):
    y, a, b = _tied_data(seed=seed)
    aucs, S = _delong_brute(y, [a, b])
    value, low, high = delong_auc_ci(y, a)
    half = 1.959963984540054 * math.sqrt(S[0, 0])
    assert value == pytest.approx(aucs[0], abs=1e-12)
    assert (low, high) == pytest.approx((aucs[0] - half, aucs[0] + half), abs=1e-12)
    z, _ = delong_test(y, a, b)
    assert z == pytest.approx((aucs[0] - aucs[1]) / math.sqrt(S[0, 0] + S[1, 1] - 2 * S[0, 1]), rel=1e-9)


def test_perfect_and_reversed_scores():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.9])
    assert auc(y, s) == 1.0
    assert auc(y, -s) == 0.0
    assert auc(y, np.zeros_like(s)) == 0.5  # all tied
    value, low, high = delong_auc_ci(y, s)
    assert (value, low, high) == (1.0, 1.0, 1.0)  # zero variance, clipped interval
    assert delong_test(y, s, -s) == (math.inf, 0.0)  # a difference with no spread: documented


def test_youden_cutoff_separates_and_breaks_ties_high():
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    s = np.array([0.05, 0.2, 0.3, 0.35, 0.5, 0.8, 0.9])
    cutoff = youden_cutoff(y, s)
    assert cutoff == 0.5
    assert np.array_equal((s >= cutoff).astype(int), y)
    # J ties: thresholds 0.6 (tp 1, fp 0) and 0.2 (tp 2, fp 1) both give J = 0.5 -> the higher one
    y = np.array([0, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.4, 0.6])
    assert youden_cutoff(y, s) == 0.6


def test_delong_self_comparison_is_zero_not_nan(asah):
    y, frame = asah
    assert delong_test(y, frame["s100b"], frame["s100b"]) == (0.0, 1.0)
    assert delong_test(y, frame["s100b"], np.log(frame["s100b"])) == (0.0, 1.0)  # same ranks


def test_classification_metrics_hand_computed():
    # tp=3, fn=1, fp=2, tn=4
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.55, 0.4, 0.3, 0.1, 0.05])
    m = classification_metrics(y, s, 0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 1, 2, 4)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert m["ppv"] == pytest.approx(3 / 5) and m["npv"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(6 / 9)
    assert m["mcc"] == pytest.approx((3 * 4 - 2 * 1) / math.sqrt(5 * 4 * 6 * 5))
    assert m["auc"] == pytest.approx(rank_auc(s, y))
    assert m["brier"] == pytest.approx(np.mean((s - y) ** 2))
    assert (m["n"], m["n_positive"], m["cutoff"]) == (10, 4, 0.5)
    metrics = pytest.importorskip("sklearn.metrics")
    assert m["mcc"] == pytest.approx(metrics.matthews_corrcoef(y, s >= 0.5))
    assert m["brier"] == pytest.approx(metrics.brier_score_loss(y, s))
    # nobody predicted positive: ppv and mcc undefined -> NaN; non-probability scores -> no Brier
    m = classification_metrics(y, s * 10, 100)
    assert math.isnan(m["ppv"]) and math.isnan(m["mcc"]) and math.isnan(m["brier"])
    assert m["sensitivity"] == 0 and m["specificity"] == 1


def test_binary_outcome():
    assert binary_outcome(["Good", "Poor", "Poor"], positive="Poor").tolist() == [0, 1, 1]
    assert binary_outcome(pd.Series([2, 1, 2]), positive=1).tolist() == [0, 1, 0]
    assert binary_outcome([True, False], positive=False).tolist() == [0, 1]
    with pytest.raises(InputError, match="'Bad' does not occur"):
        binary_outcome(["Good", "Poor"], positive="Bad")
    with pytest.raises(InputError, match="at most 2 labels"):
        binary_outcome(["a", "b", "c"], positive="a")
    with pytest.raises(InputError, match="missing"):
        binary_outcome(["a", None, "b"], positive="a")
    with pytest.raises(InputError, match="missing"):
        binary_outcome([1.0, float("nan")], positive=1.0)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call", [
    lambda y, s: auc(y, s), lambda y, s: delong_auc_ci(y, s), lambda y, s: delong_test(y, s, s),
    lambda y, s: youden_cutoff(y, s), lambda y, s: roc_curve_points(y, s),
    lambda y, s: classification_metrics(y, s, 0.5), lambda y, s: nri(y, s, s), lambda y, s: idi(y, s, s)])
def test_bad_input_is_a_clear_error(call):
    s = np.array([0.1, 0.4, 0.35, 0.8])
    with pytest.raises(InputError, match="single class"):
        call(np.ones(4, int), s)
    with pytest.raises(InputError, match="length mismatch: 3 scores for 4 outcomes"):
        call(np.array([0, 1, 0, 1]), s[:3])
    with pytest.raises(InputError, match="not finite"):
        call(np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.3, 0.4]))
    with pytest.raises(InputError, match="0/1 or bool"):
        call(np.array(["Good", "Poor", "Good", "Poor"]), s)
    with pytest.raises(InputError, match="0/1 or bool"):
        call(np.array([0, 1, 2, 1]), s)


def test_error_names_the_column():
    y = pd.Series([0, 1, 0, 1], name="response")
    with pytest.raises(InputError, match="column radiomics_score"):
        auc(y, pd.Series([0.1, 0.2, np.inf, 0.3], name="radiomics_score"))


def test_delong_needs_two_cases_per_class():
    with pytest.raises(InputError, match="at least 2 positives"):
        delong_auc_ci([0, 0, 1], [0.1, 0.2, 0.3])


def test_inputs_are_not_modified(asah):
    y, frame = asah
    before = frame.copy()
    y_before = y.copy()
    delong_test(y, frame["wfns"], frame["s100b"])
    classification_metrics(y, frame["ndka"], 10)
    pd.testing.assert_frame_equal(frame, before)
    assert np.array_equal(y, y_before)
