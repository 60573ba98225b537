"""Feature selection (rtresponse.selection): ICC robustness, collinearity, the rankers, pipelines.

Reference checks: ICC(A,1) against Shrout & Fleiss (1979) and pingouin; chi-square against
scikit-learn's chi2 and scipy's contingency test; Wilcoxon against scipy's Mann-Whitney U and
Kruskal-Wallis; ReliefF against skrebate; NCA's objective against a direct computation and its
gradient against finite differences. Rankers must find planted informative features.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rtresponse.errors import InputError
from rtresponse.selection import (SELECTORS, Chi2Selector, CollinearityFilter, ICCFilter, InfFSSelector,
                                  LassoSelector, NCASelector, NoSelection, ReliefFSelector, RFESelector,
                                  WilcoxonSelector, icc, make_selector, quantile_bins, relieff_weights,
                                  spearman_abs)

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges. ICC(2,1) = 0.29.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
                         dtype=float)
# (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n) with the exact mean squares of the table;
# pingouin.intraclass_corr reports the same ICC(A,1) to 1e-15.
SHROUT_FLEISS_ICC_A1 = 0.28976377952755906

INFORMATIVE = [3, 11, 22]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny problems: multi-threaded BLAS only adds contention (several times slower on 2 cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def informative(p):
    return INFORMATIVE if p > max(INFORMATIVE) else [0, 1, 2]


def planted(n=60, p=30, shift=1.5, seed=0):
    """Balanced binary outcome; 3 features (3, 11, 22; or the first 3 of a small set) shifted by
    ``shift`` in responders, the rest noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    rng.shuffle(y)
    X = rng.normal(size=(n, p))
    X[:, informative(p)] += shift * y[:, None]
    return X, y


def long_table(values, features=None, labels=None):
    """(n, k, p) array -> long table indexed by (patient_id, perturbation), plus a status column."""
    n, k, p = values.shape
    features = features or [f"f{i}" for i in range(p)]
    labels = labels or ["original"] + [f"contour-{j}" for j in range(1, k)]
    index = pd.MultiIndex.from_tuples([(f"P{i:03d}", labels[j]) for i in range(n) for j in range(k)],
                                      names=["patient_id", "perturbation"])
    frame = pd.DataFrame(values.reshape(n * k, p), index=index, columns=features)
    frame["status"] = "ok"
    return frame


# --------------------------------------------------------------------------------------------- ICC

@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_icc_matches_shrout_fleiss_and_pingouin():
    value = icc(SHROUT_FLEISS)
    assert round(value, 2) == 0.29
    assert value == pytest.approx(SHROUT_FLEISS_ICC_A1, abs=1e-12)
    try:
        import pingouin
    except ImportError:
        return
    rows = [(f"t{i}", f"judge{j}", SHROUT_FLEISS[i, j]) for i in range(6) for j in range(4)]
    table = pd.DataFrame(rows, columns=["target", "judge", "rating"])
    result = pingouin.intraclass_corr(table, targets="target", raters="judge", ratings="rating").set_index("Type")
    assert value == pytest.approx(result.loc["ICC(A,1)", "ICC"], abs=1e-9)


def test_icc_long_table_and_vectorised_paths_agree():
    # Feature b is an affine transform of a (ICC(A,1) is invariant to it); c is constant (undefined).
    values = np.stack([SHROUT_FLEISS, 10 * SHROUT_FLEISS + 3, np.full_like(SHROUT_FLEISS, 5.0)], axis=2)
    table = long_table(values, features=["a", "b", "c"], labels=["j1", "j2", "j3", "j4"])
    by_table = icc(table)
    assert list(by_table.index) == ["a", "b", "c"]
    np.testing.assert_allclose(by_table[["a", "b"]], SHROUT_FLEISS_ICC_A1, atol=1e-12)
    assert np.isnan(by_table["c"])
    np.testing.assert_allclose(icc(values)[:2], SHROUT_FLEISS_ICC_A1, atol=1e-12)

    # The same data as plain columns, rows shuffled: matching by label does not depend on row order.
    flat = table.reset_index().sample(frac=1.0, random_state=1)
    assert icc(flat)["a"] == pytest.approx(SHROUT_FLEISS_ICC_A1, abs=1e-12)

    # Labels that differ between patients: match repeats by position instead.
    relabelled = table.reset_index()
    relabelled["perturbation"] = [f"{p}-draw{j}" for p, j in zip(relabelled["patient_id"], np.tile(range(4), 6))]
    with pytest.warns(UserWarning, match="lack some"), pytest.raises(InputError, match="raters='order'"):
        icc(relabelled.set_index(["patient_id", "perturbation"]))
    by_order = icc(relabelled.set_index(["patient_id", "perturbation"]), raters="order")
    assert by_order["a"] == pytest.approx(SHROUT_FLEISS_ICC_A1, abs=1e-12)


def test_icc_long_table_skips_failed_rows_and_incomplete_patients():
    values = np.stack([SHROUT_FLEISS], axis=2)
    table = long_table(values, features=["a"], labels=["j1", "j2", "j3", "j4"])
    index = pd.MultiIndex.from_tuples([("P998", "j1"), ("P998", "j2"), ("P999", "j1")],
                                      names=["patient_id", "perturbation"])
    extra = pd.DataFrame({"a": [100.0, -100.0, np.nan], "status": ["ok", "ok", "mask is empty"]}, index=index)
    with pytest.warns(UserWarning, match="1 patient.*P998"):  # P998 lacks j3, j4; P999 failed outright
        result = icc(pd.concat([table, extra]))
    assert result["a"] == pytest.approx(SHROUT_FLEISS_ICC_A1, abs=1e-12)


@pytest.mark.parametrize("data, message", [
    (np.ones((1, 4)), "at least 2 patients"),
    (np.ones((5, 1)), "at least 2 repeated"),
    (np.ones(5), "2D"),
    (pd.DataFrame({"a": [1.0, 2.0]}), "indexed by"),
])
def test_icc_rejects_bad_input(data, message):
    with pytest.raises(InputError, match=message):
        icc(data)


def test_icc_rejects_text_feature_columns():
    table = long_table(SHROUT_FLEISS[:, :, None], features=["a"])
    table["site"] = "A"
    with pytest.raises(InputError, match="non-numeric.*site"):
        icc(table)


# --------------------------------------------------------------------------------------- ICCFilter

def robustness_data(n=20, k=5, seed=0):
    """Long table where 'stable' barely moves between repeats and 'noise' is redrawn every time."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    stable = truth[:, None] + 0.05 * rng.normal(size=(n, k))
    noise = rng.normal(size=(n, k))
    half = truth[:, None] + rng.normal(size=(n, k))  # ICC about 0.5
    values = np.stack([stable, noise, half], axis=2)
    table = long_table(values, features=["stable", "noise", "half"])
    plain = pd.DataFrame(values[:, 0, :], columns=["stable", "noise", "half"],
                         index=pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id"))
    return table, plain, rng.integers(0, 2, size=n)


def test_icc_filter_keeps_stable_and_drops_noise_by_name():
    table, plain, y = robustness_data()
    shuffled = plain[["noise", "half", "stable"]]  # column order differs from the repeats table
    selector = ICCFilter(repeats=table, threshold=0.7).fit(shuffled, y)
    assert list(selector.get_feature_names_out()) == ["stable"]
    assert selector.icc_[2] > 0.95 and selector.icc_[0] < 0.3
    assert 0.2 < selector.icc_[1] < 0.8
    assert selector.transform(shuffled).shape == (len(plain), 1)
    assert (selector.n_patients_, selector.n_repeats_) == (20, 5)
    assert selector.fit(shuffled, y) is selector


def test_icc_filter_repeats_at_fit_time_and_in_a_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    table, plain, y = robustness_data()
    assert list(ICCFilter().fit(plain, repeats=table).get_feature_names_out()) == ["stable"]
    pipe = Pipeline([("icc", ICCFilter(threshold=0.7)), ("model", LogisticRegression())])
    pipe.fit(plain, y, icc__repeats=table)
    assert list(pipe[:-1].get_feature_names_out()) == ["stable"]
    assert pipe.predict_proba(plain).shape == (len(plain), 2)
    # Given at construction, the table travels with every clone in cross-validation.
    from sklearn.model_selection import cross_val_score

    outcome = (plain["stable"] > plain["stable"].median()).astype(int).to_numpy()
    robust = Pipeline([("icc", ICCFilter(repeats=table)), ("model", LogisticRegression())])
    assert cross_val_score(robust, plain, outcome, cv=4, scoring="roc_auc").mean() > 0.9


def test_icc_filter_numpy_columns_match_by_position():
    table, plain, y = robustness_data()
    selector = ICCFilter(repeats=table).fit(plain.to_numpy(), y)
    assert selector.get_support().tolist() == [True, False, False]
    with pytest.raises(InputError, match="X has 2 columns but the repeats table has 3"):
        ICCFilter(repeats=table).fit(plain.to_numpy()[:, :2], y)


def test_icc_filter_unmatched_columns():
    table, plain, y = robustness_data()
    with_clinical = plain.assign(tumour_size_mm=np.arange(len(plain), dtype=float))
    with pytest.raises(InputError, match="tumour_size_mm"):
        ICCFilter(repeats=table).fit(with_clinical, y)
    kept = ICCFilter(repeats=table, unmatched="keep").fit(with_clinical, y).get_feature_names_out()
    assert list(kept) == ["stable", "tumour_size_mm"]
    dropped = ICCFilter(repeats=table, unmatched="drop").fit(with_clinical, y).get_feature_names_out()
    assert list(dropped) == ["stable"]


def test_icc_filter_needs_repeats_and_is_an_estimator():
    from sklearn.base import clone

    table, plain, y = robustness_data()
    with pytest.raises(InputError, match="repeated delineations"):
        ICCFilter().fit(plain, y)
    selector = ICCFilter(repeats=table, threshold=0.5)
    twin = clone(selector)
    assert twin.get_params()["threshold"] == 0.5 and twin.repeats.equals(table)
    twin.set_params(threshold=0.9)
    assert twin.get_params()["threshold"] == 0.9
    with pytest.raises(InputError, match="threshold"):
        ICCFilter(repeats=table, threshold=2).fit(plain)


# ------------------------------------------------------------------------------------- collinearity

def test_collinearity_drops_one_of_a_near_duplicate_pair_and_keeps_the_independent_feature():
    rng = np.random.default_rng(0)
    x = rng.normal(size=80)
    X = pd.DataFrame({"x": x, "x_copy": x + 1e-3 * rng.normal(size=80), "z": rng.normal(size=80)})
    selector = CollinearityFilter(threshold=0.8).fit(X)
    kept = list(selector.get_feature_names_out())
    assert len(kept) == 2 and "z" in kept
    assert len(selector.dropped_) == 1 and selector.dropped_[0][2] > 0.99


def test_collinearity_exact_tie_drops_the_later_column():
    x = np.arange(10.0)
    selector = CollinearityFilter().fit(np.column_stack([x, 2 * x, np.sin(x)]))
    assert selector.get_support().tolist() == [True, False, True]


def _reference_collinearity(X, threshold):
    """Direct reading of the rule: repeatedly take the most correlated remaining pair, drop the one
    with the higher mean |rho| to the other remaining features (later column on a tie)."""
    rho = np.abs(stats.spearmanr(X).statistic)
    kept = list(range(X.shape[1]))
    while True:
        best, pair = threshold, None
        for a in range(len(kept)):
            for b in range(a + 1, len(kept)):
                i, j = kept[a], kept[b]
                if rho[i, j] > best + 1e-12:
                    best, pair = rho[i, j], (i, j)
        if pair is None:
            return kept
        i, j = pair
        mean = {f: np.mean([rho[f, g] for g in kept if g != f]) for f in pair}
        kept.remove(i if mean[i] > mean[j] + 1e-12 else j)


def test_collinearity_matches_a_direct_implementation_of_the_rule():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(50, 4))
    X = np.column_stack([base[:, [0, 0, 1, 1, 1, 2]] + rng.normal(scale=s, size=(50, 6))
                         for s in (0.3,)] + [base[:, 3:]])
    X = np.column_stack([X, X[:, 0] + X[:, 2] + 0.2 * rng.normal(size=50)])
    np.testing.assert_allclose(spearman_abs(X), np.abs(stats.spearmanr(X).statistic), atol=1e-12)
    selector = CollinearityFilter(threshold=0.6).fit(X)
    assert np.flatnonzero(selector.get_support()).tolist() == _reference_collinearity(X, 0.6)
    assert 0 < selector.get_support().sum() < X.shape[1]


# -------------------------------------------------------------------------------- rankers: references

def test_chi2_equals_sklearn_chi2_on_the_binned_features():
    from sklearn.feature_selection import chi2
    from sklearn.preprocessing import OneHotEncoder

    X, y = planted()
    X[:, 5] = np.round(X[:, 5])  # a feature with few distinct values: kept as categories
    selector = Chi2Selector(k=5, n_bins=10).fit(X, y)
    codes = quantile_bins(X, 10)
    assert np.bincount(codes[:, 0]).tolist() == [6] * 10  # equiprobable bins of continuous data
    onehot = OneHotEncoder(sparse_output=False).fit(codes)
    per_bin, _ = chi2(onehot.transform(codes), y)
    owner = np.repeat(np.arange(X.shape[1]), [len(c) for c in onehot.categories_])
    reference = np.bincount(owner, weights=per_bin)
    np.testing.assert_allclose(selector.chi2_, reference, rtol=1e-10)
    for f in (0, 3, 5):
        table = pd.crosstab(codes[:, f], y).to_numpy()
        statistic, p_value, _, _ = stats.chi2_contingency(table, correction=False)
        assert selector.chi2_[f] == pytest.approx(statistic, rel=1e-10)
        assert selector.pvalues_[f] == pytest.approx(p_value, rel=1e-8)
    order = np.argsort(selector.ranking_)
    assert set(INFORMATIVE) <= set(order[:5])


def test_wilcoxon_matches_scipy_mann_whitney_and_kruskal():
    X, y = planted()
    X = np.round(X, 1)  # ties exercise the tie correction
    selector = WilcoxonSelector(k=5).fit(X, y)
    reference = stats.mannwhitneyu(X[y == 0], X[y == 1], use_continuity=False, method="asymptotic", axis=0)
    np.testing.assert_allclose(selector.pvalues_, reference.pvalue, rtol=1e-8)
    assert np.all(np.diff(selector.pvalues_[np.argsort(selector.ranking_)]) >= 0)  # smallest p first
    three = np.arange(len(y)) % 3
    multi = WilcoxonSelector(k=5).fit(X, three)
    np.testing.assert_allclose(multi.pvalues_, stats.kruskal(*(X[three == c] for c in range(3))).pvalue,
                               rtol=1e-8)


def test_relieff_agrees_with_skrebate():
    skrebate = pytest.importorskip("skrebate", reason="skrebate (test extra) is the ReliefF reference")
    X, y = planted(n=50, p=12, seed=3)
    ours = ReliefFSelector(k=4, n_neighbors=10).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = skrebate.ReliefF(n_neighbors=10, n_features_to_select=4).fit(X, y).feature_importances_
    assert stats.spearmanr(ours.scores_, theirs).statistic >= 0.95
    np.testing.assert_allclose(ours.scores_, theirs, rtol=1e-8, atol=1e-12)  # the same algorithm


def test_relieff_multiclass_uses_class_priors():
    X, y = planted(n=44, p=6, seed=4)
    three = np.r_[np.zeros(10), np.ones(14), np.full(20, 2)].astype(int)
    X[:, 0] += 2 * three
    weights = relieff_weights(X, three, n_neighbors=5)
    assert np.argmax(weights) == 0


def test_nca_objective_and_gradient_are_right(monkeypatch):
    from scipy.optimize import check_grad
    from scipy.spatial.distance import cdist

    from rtresponse.selection import nca
    from rtresponse.selection.nca import _Objective

    X, y = planted(n=24, p=5, seed=2)
    Z = (X - X.mean(0)) / X.std(0)
    lam, sigma = 1 / 24, 1.0
    objective = _Objective(Z, y, lam, sigma)
    w = np.linspace(0.5, 1.5, 5)
    # Direct computation: soft leave-one-out misclassification with weighted Manhattan distance.
    distance = cdist(Z, Z, metric="cityblock", w=w ** 2)
    kernel = np.exp(-distance / sigma)
    np.fill_diagonal(kernel, 0)
    p = kernel / kernel.sum(1, keepdims=True)
    expected = np.mean([(p[i] * (y != y[i])).sum() for i in range(24)]) + lam * np.sum(w ** 2)
    assert objective(w)[0] == pytest.approx(expected, rel=1e-12)
    error = check_grad(lambda v: objective(v)[0], lambda v: objective(v)[1], w)
    assert error < 1e-6 * max(1.0, np.linalg.norm(objective(w)[1]))
    # Large sets are processed in feature chunks without a cache: same value and gradient.
    monkeypatch.setattr(nca, "_CHUNK", 24 * 24 * 2)
    chunked = _Objective(Z, y, lam, sigma)
    assert chunked.cache is None
    np.testing.assert_allclose(chunked(w)[0], objective(w)[0], rtol=1e-12)
    np.testing.assert_allclose(chunked(w)[1], objective(w)[1], rtol=1e-12)


def test_nca_weights_rank_planted_features_first():
    X, y = planted()
    selector = NCASelector(k=3).fit(X, y)
    assert set(np.flatnonzero(selector.get_support())) == set(INFORMATIVE)
    noise = np.delete(selector.weights_, INFORMATIVE)
    assert selector.weights_[INFORMATIVE].min() > np.abs(noise).max()


# ------------------------------------------------------------------------------ rankers: planted data

RANKERS = {
    "chi2": lambda k: Chi2Selector(k=k),
    "wilcoxon": lambda k: WilcoxonSelector(k=k),
    "nca": lambda k: NCASelector(k=k),
    "relieff": lambda k: ReliefFSelector(k=k),
    "inffs": lambda k: InfFSSelector(k=k),
    "lasso": lambda k: LassoSelector(k=k, Cs=5, random_state=0),
    "rfe": lambda k: RFESelector(k=k),
}


@pytest.mark.parametrize("name", sorted(RANKERS))
def test_rankers_find_planted_features_and_keep_exactly_k(name):
    X, y = planted()
    selector = RANKERS[name](10).fit(X, y)
    assert selector.get_support().sum() == 10
    assert set(INFORMATIVE) <= set(np.flatnonzero(selector.get_support()))
    assert sorted(selector.ranking_) == list(range(1, 31))
    assert selector.transform(X).shape == (60, 10)
    again = RANKERS[name](10).fit(X, y)
    np.testing.assert_array_equal(selector.ranking_, again.ranking_)  # deterministic


def test_supervised_rankers_do_not_find_the_planted_features_without_the_outcome():
    X, y = planted()
    hits = []
    for seed in range(3):
        shuffled = np.random.default_rng(seed).permutation(y)
        selector = WilcoxonSelector(k=3).fit(X, shuffled)
        hits.append(len(set(INFORMATIVE) & set(np.flatnonzero(selector.get_support()))))
    assert sum(hits) < 9


@pytest.mark.parametrize("name", sorted(RANKERS))
def test_constant_features_rank_last_and_do_not_crash(name):
    X, y = planted()
    X[:, 0] = 7.0
    X[:, 29] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no division by zero, no NaN arithmetic
        selector = RANKERS[name](5).fit(X, y)
    assert set(selector.ranking_[[0, 29]]) == {29, 30}
    assert np.isnan(selector.scores_[[0, 29]]).all()
    assert not selector.get_support()[[0, 29]].any()


def test_lasso_chooses_C_by_cross_validation_and_ranks_zeroed_features_by_path_entry():
    X, y = planted()
    selector = LassoSelector(k=10, random_state=0).fit(X, y)
    assert 1e-4 <= selector.C_ <= 1e4
    nonzero = np.flatnonzero(selector.scores_ > 0)
    assert set(INFORMATIVE) <= set(nonzero)
    order = np.argsort(selector.ranking_)
    assert set(order[:len(nonzero)]) == set(nonzero)  # non-zero coefficients first
    entry = selector.entry_[order]
    assert np.all(np.diff(entry[np.isfinite(entry)]) >= 0)
    fixed = LassoSelector(k=10, C=0.05).fit(X, y)
    assert fixed.C_ == 0.05 and fixed.get_support().sum() == 10


def test_rfe_default_keeps_twenty_features_as_in_the_cervical_paper():
    X, y = planted()
    selector = RFESelector().fit(X, y)
    assert selector.k == 20 and selector.get_support().sum() == 20
    assert set(INFORMATIVE) <= set(np.flatnonzero(selector.get_support()))


def test_inffs_ignores_the_outcome_and_prefers_spread_out_unredundant_features():
    X, y = planted()
    a = InfFSSelector(k=5).fit(X, y)
    b = InfFSSelector(k=5).fit(X)
    np.testing.assert_array_equal(a.ranking_, b.ranking_)
    # A duplicated high-variance feature is redundant: with alpha=0 only redundancy counts.
    Z = np.column_stack([X, X[:, 3]])
    redundancy_only = InfFSSelector(k=5, alpha=0.0).fit(Z)
    assert redundancy_only.ranking_[3] > 25 and redundancy_only.ranking_[30] > 25


# --------------------------------------------------------------------------- pipelines and sklearn API

@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_every_selector_works_in_a_cross_validated_pipeline_on_dataframes(name):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline

    X, y = planted(n=60, p=12)
    frame = pd.DataFrame(X, columns=[f"feature_{i}" for i in range(12)])
    selector = make_selector(name, k=3, random_state=0, Cs=4)  # Cs: lasso only (others ignore it)
    pipe = Pipeline([("collinearity", CollinearityFilter()), ("select", selector),
                     ("model", LogisticRegression())]).set_output(transform="pandas")
    auc = cross_val_score(pipe, frame, y, cv=StratifiedKFold(3, shuffle=True, random_state=0), scoring="roc_auc")
    assert auc.mean() > 0.75
    pipe.fit(frame, y)
    names = list(pipe[:-1].get_feature_names_out())
    assert len(names) == (12 if name == "none" else 3)
    assert set(names) <= set(frame.columns)
    transformed = pipe[:-1].transform(frame)
    assert list(transformed.columns) == names


ESTIMATORS = [Chi2Selector(k=2), WilcoxonSelector(k=2), NCASelector(k=2, max_iter=50), ReliefFSelector(k=2),
              InfFSSelector(k=2), LassoSelector(k=2, C=1.0), RFESelector(k=2, step=0.5), CollinearityFilter(),
              NoSelection()]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_sklearn_estimator_checks(estimator):
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed


@pytest.mark.parametrize("name", sorted(RANKERS))
def test_clone_params_round_trip_and_fit_returns_self(name):
    from sklearn.base import clone

    X, y = planted(n=40, p=8)
    selector = RANKERS[name](4)
    twin = clone(selector).set_params(k=3)
    assert twin.get_params()["k"] == 3 and selector.get_params()["k"] == 4
    assert twin.fit(X, y) is twin and twin.transform(X).shape == (40, 3)


# ------------------------------------------------------------------------------------ bad input

def test_inputs_are_validated_with_clear_messages():
    X, y = planted(n=20, p=4)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(status="ok")
    with pytest.raises(InputError, match="not numeric: status"):
        WilcoxonSelector(k=2).fit(frame, y)
    with_nan = pd.DataFrame(X, columns=list("abcd"))
    with_nan.loc[3, "c"] = np.nan
    with pytest.raises(InputError, match="NaN or infinity.*: c"):
        ReliefFSelector(k=2).fit(with_nan, y)
    with pytest.raises(InputError, match="only 1 class"):
        Chi2Selector(k=2).fit(X, np.zeros(20))
    with pytest.raises(InputError, match="requires y"):
        NCASelector(k=2).fit(X)
    with pytest.raises(InputError, match="y has 19 labels"):
        NCASelector(k=2).fit(X, y[:19])
    with pytest.raises(InputError, match="k must be"):
        Chi2Selector(k=0).fit(X, y)
    with pytest.raises(InputError, match="n_neighbors"):
        ReliefFSelector(k=2, n_neighbors=0).fit(X, y)
    with pytest.raises(InputError, match="n_bins"):
        Chi2Selector(k=2, n_bins=1).fit(X, y)
    with pytest.raises(InputError, match="unknown feature selector 'mrmr'"):
        make_selector("mrmr")
    with pytest.warns(UserWarning, match="keeping all"):
        assert Chi2Selector(k=10).fit(X, y).get_support().all()
    before = frame.copy()
    NoSelection().fit(frame.drop(columns="status"))
    pd.testing.assert_frame_equal(frame, before)  # inputs are never modified


def test_registry_names_and_factory():
    assert set(SELECTORS) == {"none", "chi2", "wilcoxon", "nca", "relieff", "inffs", "lasso", "rfe"}
    assert isinstance(make_selector("none", k=10), NoSelection)
    assert make_selector("RFE").k == 20
    assert make_selector("lasso", k=3, random_state=7).get_params()["random_state"] == 7
    assert make_selector("relieff", k=4, random_state=7).get_params()["k"] == 4
