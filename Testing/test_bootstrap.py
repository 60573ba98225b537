"""The 0.632+ bootstrap AUC: the formula, its known limits, and the planted signal of the synthetic cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from rtresponse.errors import InputError  # noqa: E402
from rtresponse.evaluation.bootstrap import (  # noqa: E402
    bootstrap_632plus_auc, bootstrap_indices, combine_632plus, fast_auc, forward_selection)
from rtresponse.evaluation.fast_fits import agrees_with_scikit_learn  # noqa: E402
from rtresponse.models.classifiers import make_classifier  # noqa: E402
from rtresponse.models.grid import _with_imputer, run_grid  # noqa: E402

from conftest import check_margin, rank_auc  # noqa: E402


def test_combine_632plus_matches_the_formula_by_hand():
    apparent = 0.9
    oob = np.array([0.4, 0.7, 0.95])
    # b1: AUC' = 0.5, R = 1 -> w = 0.632 / 0.632 = 1 -> 0.5
    # b2: R = (0.9 - 0.7) / 0.4 = 0.5 -> w = 0.632 / 0.816 -> (1 - w) 0.9 + w 0.7
    # b3: oob above apparent -> R = 0 -> w = 0.632 -> 0.368 * 0.9 + 0.632 * 0.95
    w2 = 0.632 / (1 - 0.368 * 0.5)
    expected = [0.5, (1 - w2) * 0.9 + w2 * 0.7, 0.368 * 0.9 + 0.632 * 0.95]
    np.testing.assert_allclose(combine_632plus(apparent, oob), expected, rtol=1e-12)


def test_fast_auc_agrees_with_the_definition():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50)
    score = np.round(rng.normal(size=50), 1)  # with ties
    assert fast_auc(y, score) == pytest.approx(rank_auc(score, y), abs=1e-12)


def test_every_draw_has_two_rows_of_each_class_in_bag_and_both_classes_out_of_bag():
    y = np.array([1, 1] + [0] * 18)  # two positives: many raw draws would miss one side
    draws = bootstrap_indices(y, 200, random_state=0)
    for sample in draws:
        out = np.setdiff1d(np.arange(y.size), sample)
        assert np.bincount(y[sample], minlength=2).min() >= 2 and set(y[out]) == {0, 1}
    np.testing.assert_array_equal(draws, bootstrap_indices(y, 200, random_state=0))


def test_perfectly_separable_data_gives_at_least_097():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (30, 3)), rng.normal(6, 1, (30, 3))]
    y = np.r_[np.zeros(30), np.ones(30)].astype(int)
    result = bootstrap_632plus_auc(LogisticRegression(), X, y, n_bootstrap=100, random_state=0)
    assert result.auc >= 0.97 and result.apparent_auc == 1.0
    assert result.sensitivity > 0.95 and result.specificity > 0.95


def test_one_nearest_neighbour_on_random_labels_is_near_chance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = rng.integers(0, 2, 60)
    result = bootstrap_632plus_auc(KNeighborsClassifier(1), X, y, n_bootstrap=200, random_state=0)
    assert result.apparent_auc == 1.0          # 1-NN memorises its training set
    assert 0.4 <= result.auc <= 0.62           # the 0.632+ correction removes that optimism
    assert result.oob_auc < result.auc < result.apparent_auc


def test_same_draws_make_comparisons_paired_and_workers_change_nothing():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 4))
    y = (X[:, 0] + rng.normal(0, 1, 40) > 0).astype(int)
    draws = bootstrap_indices(y, 50, random_state=7)
    a = bootstrap_632plus_auc(LogisticRegression(), X, y, indices=draws)
    b = bootstrap_632plus_auc(LogisticRegression(), X, y, n_bootstrap=50, random_state=7, n_jobs=2)
    np.testing.assert_allclose(a.per_bootstrap, b.per_bootstrap)
    assert a.n_bootstrap == 50


def test_forward_selection_finds_the_informative_features_first():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 6))
    y = (X[:, 4] - X[:, 1] + rng.normal(0, 0.7, 60) > 0).astype(int)
    selected, result = forward_selection(LogisticRegression(), X, y, n_bootstrap=40, random_state=0)
    assert set(selected[:2]) == {1, 4}
    check_margin("forward-selection 0.632+ AUC", result.auc, 0.8)


def test_bad_outcomes_are_refused():
    X = np.zeros((6, 2))
    with pytest.raises(InputError, match="exactly two classes"):
        bootstrap_632plus_auc(LogisticRegression(), X, np.ones(6), n_bootstrap=5)
    with pytest.raises(InputError, match="coded 0/1"):
        bootstrap_632plus_auc(LogisticRegression(), X, np.array([1, 2, 1, 2, 1, 2]), n_bootstrap=5)
    with pytest.raises(InputError, match="at least 2 patients"):
        bootstrap_indices(np.array([1, 0, 0, 0, 0, 0]), 5)


@pytest.fixture(scope="module")
def planted_features(tmp_path_factory):
    """First-order CT features of the GTVp on a 40-patient synthetic cohort, and its response outcome."""
    pytest.importorskip("radiomics")
    from rtresponse.cohort import load_manifest
    from rtresponse.features.handcrafted import extract_cohort
    from rtresponse.sampledata.synthetic import write_cohort

    manifest = write_cohort(tmp_path_factory.mktemp("planted") / "cohort", n_patients=40, seed=2, signal=1.5)
    cohort = load_manifest(manifest)
    settings = {"imageType": {"Original": {}}, "featureClass": {"firstorder": None}, "setting": {"binWidth": 25}}
    features = extract_cohort(cohort, image="CT", mask="GTVp", settings=settings, n_jobs=2)
    assert (features["status"] == "ok").all()
    return features.drop(columns="status"), cohort.outcomes()["response"].to_numpy()


def test_planted_signal_is_learned_and_permuted_labels_are_not(planted_features):
    X, y = planted_features
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1))
    learned = bootstrap_632plus_auc(model, X, y, n_bootstrap=100, random_state=0)
    check_margin("planted 0.632+ AUC", learned.auc, 0.8)
    # one permutation can land above chance by luck; their mean must not
    rng = np.random.default_rng(0)
    permuted = [bootstrap_632plus_auc(model, X, rng.permutation(y), n_bootstrap=40, random_state=i).auc
                for i in range(5)]
    print("permuted-label 0.632+ AUCs", np.round(permuted, 3))
    check_margin("permuted-label mean 0.632+ AUC", float(np.mean(permuted)), 0.6, above=False)


@pytest.mark.parametrize("name", ["nb", "lda", "knn", "svm", "rf"])
def test_fast_fits_equal_the_scikit_learn_pipelines(name):
    """The fast path must give the pipeline's own probabilities, so estimates are unchanged."""
    from rtresponse.evaluation.fast_fits import fit_predict

    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 5)) * [1, 10, 100, 0.1, 1]
    X[:, 3] = 0.5  # a constant feature
    y = (X[:, 0] + rng.normal(0, 1, 50) > 0).astype(int)
    draws = bootstrap_indices(y, 10, random_state=1)
    for sample in draws:
        out = np.setdiff1d(np.arange(50), sample)
        expected = make_classifier(name).fit(X[sample], y[sample]).predict_proba(X[out])[:, 1]
        np.testing.assert_allclose(fit_predict(name, X, y, sample, out), expected, atol=1e-8)
        if name in ("rf", "svm"):  # the same library calls in the same order: equal to the last bit
            np.testing.assert_array_equal(fit_predict(name, X, y, sample, out), expected)
    model = _with_imputer(make_classifier(name))
    slow = bootstrap_632plus_auc(model, X, y, indices=draws)
    fast = bootstrap_632plus_auc(model, X, y, indices=draws, fast=name)
    np.testing.assert_allclose(fast.per_bootstrap, slow.per_bootstrap, atol=1e-10)
    assert (fast.sensitivity, fast.specificity) == pytest.approx((slow.sensitivity, slow.specificity))
    assert agrees_with_scikit_learn(name)  # the grid's own check before it uses the fast path


def test_a_fast_path_that_no_longer_matches_scikit_learn_is_not_used(monkeypatch):
    """A scikit-learn upgrade that changes a recipe makes the grid slower, never different."""
    from rtresponse.evaluation import fast_fits

    monkeypatch.setitem(fast_fits._FITS, "nb", lambda train, y, test: np.full(len(test), 0.5))
    fast_fits.agrees_with_scikit_learn.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="fast bootstrap path for 'nb' does not reproduce"):
            assert not fast_fits.agrees_with_scikit_learn("nb")
        rng = np.random.default_rng(3)
        X = pd.DataFrame(rng.normal(size=(30, 4)), columns=list("abcd"))
        y = (X["a"] + rng.normal(0, 1, 30) > 0).astype(int).to_numpy()
        grid = run_grid(X, y, ["wilcoxon"], ["nb"], k=2, n_bootstrap=5, forward=False)
        slow = bootstrap_632plus_auc(_with_imputer(make_classifier("nb")), X[grid.table.features[0].split(";")], y,
                                     n_bootstrap=5, random_state=0)
        assert grid.table.auc632plus[0] == pytest.approx(slow.auc, abs=1e-12)
    finally:
        fast_fits.agrees_with_scikit_learn.cache_clear()


def test_fast_path_refuses_unknown_names():
    """Missing values are imputed (Testing/test_fast_missing.py); a classifier without a fast path is refused."""
    X = np.array([[0.0], [np.nan], [1.0], [2.0], [3.0], [4.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    with pytest.raises(InputError, match="no fast path for classifier 'lr'"):
        bootstrap_632plus_auc(LogisticRegression(), X, y, n_bootstrap=3, fast="lr")
