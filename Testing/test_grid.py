"""The selector x classifier grid: learns a planted signal, not permuted labels; paired draws; outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
from conftest import check_margin  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.models.classifiers import CLASSIFIER_NAMES, make_classifier  # noqa: E402
from rtresponse.models.grid import _with_imputer, heatmap, ranked_features, run_grid, run_grids  # noqa: E402


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 12)), columns=[f"f{i}" for i in range(12)])
    X.iloc[3, 5] = np.nan  # a missing value must be imputed, not crash
    y = (X["f3"] - X["f7"] + rng.normal(0, 0.6, 40) > 0).astype(int).to_numpy()
    return X, y


def test_grid_learns_the_planted_features(planted):
    X, y = planted
    result = run_grid(X, y, selectors=("wilcoxon", "relieff"), classifiers=("lda", "nb"), k=4, n_bootstrap=20)
    table = result.table
    assert list(table.columns[:3]) == ["selector", "classifier", "auc632plus"]
    assert len(table) == 4
    check_margin("lowest 0.632+ AUC of the grid", table["auc632plus"].min(), 0.8)
    assert all({"f3", "f7"} <= set(features.split(";")) for features in table["features"])
    assert set(result.per_bootstrap) == {(s, c) for s in ("wilcoxon", "relieff") for c in ("lda", "nb")}
    assert result.indices.shape == (20, 40)


def test_grid_on_permuted_labels_stays_near_chance(planted):
    X, y = planted
    permuted = np.random.default_rng(1).permutation(y)
    table = run_grid(X, permuted, selectors=("wilcoxon",), classifiers=("lda", "nb"), k=4, n_bootstrap=20,
                     forward=False).table
    check_margin("permuted-label mean 0.632+ AUC of the grid", table["auc632plus"].mean(), 0.65, above=False)


def test_selection_inside_the_bootstrap_and_undersampling(planted):
    X, y = planted
    inside = run_grid(X, y, selectors=("wilcoxon",), classifiers=("lda",), k=4, n_bootstrap=15, selection="inside")
    check_margin("0.632+ AUC, selection inside the bootstrap", inside.table.loc[0, "auc632plus"], 0.75)
    imbalanced = y.copy()
    imbalanced[np.flatnonzero(y == 1)[:8]] = 0
    balanced = run_grid(X, imbalanced, selectors=("wilcoxon",), classifiers=("nb",), k=4, n_bootstrap=10,
                        forward=False, undersample=3)
    assert len(balanced.table) == 1 and balanced.per_bootstrap[("wilcoxon", "nb")].shape == (30,)


def test_ranked_features_follow_the_selector_ranking(planted):
    X, y = planted
    top = ranked_features("wilcoxon", X, y, k=3)
    assert top[0] in {"f3", "f7"} and len(top) == 3


def test_every_classifier_gives_probabilities(planted):
    X, y = planted
    filled = X.fillna(0)
    for name in CLASSIFIER_NAMES:
        model = make_classifier(name).fit(filled, y)
        probabilities = model.predict_proba(filled)[:, 1]
        assert np.all((probabilities >= 0) & (probabilities <= 1)), name
    with pytest.raises(InputError, match="unknown classifier 'xgb'"):
        run_grid(X, y, classifiers=("xgb",), n_bootstrap=5)


def test_small_imbalanced_cohorts_get_a_calibrated_svm_on_every_draw(tmp_path):
    """30 patients, 6 positive: some draws hold only 2 positive rows, too few for 3-fold Platt scaling."""
    from sklearn.model_selection import StratifiedKFold

    from rtresponse.evaluation.bootstrap import bootstrap_632plus_auc, bootstrap_indices
    from rtresponse.evaluation.fast_fits import fit_predict
    from rtresponse.models.classifiers import PlattFolds
    from rtresponse.models.persistence import load_model, save_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = np.r_[np.ones(6), np.zeros(24)].astype(int)
    X[:, 0] += 1.5 * y
    draws = bootstrap_indices(y, 300, random_state=0)
    two = [s for s in draws if y[s].sum() == 2]
    assert two  # the case in question occurs
    sample = two[0]
    out = np.setdiff1d(np.arange(30), sample)
    expected = make_classifier("svm").fit(X[sample], y[sample]).predict_proba(X[out])[:, 1]
    np.testing.assert_array_equal(fit_predict("svm", X, y, sample, out), expected)
    result = bootstrap_632plus_auc(_with_imputer(make_classifier("svm")), X, y, indices=draws, fast="svm")
    assert 0.5 < result.auc <= 1 and result.n_bootstrap == 300
    # with enough rows the folds are scikit-learn's stratified 3 folds
    many = np.r_[np.ones(10), np.zeros(20)].astype(int)
    for ours, theirs in zip(PlattFolds(3).split(X, many), StratifiedKFold(3).split(X, many)):
        np.testing.assert_array_equal(ours[1], theirs[1])
    with pytest.raises(ValueError, match="at least 2 training rows of each class, got 1"):
        list(PlattFolds(3).split(X[:7], y[5:12]))
    # the fitted SVM, folds object included, saves and loads without executing code
    path = save_model(tmp_path / "svm.skops", make_classifier("svm").fit(X, y), ["a", "b", "c"], "response", 1, 0.5)
    np.testing.assert_allclose(load_model(path)["model"].predict_proba(X), make_classifier("svm").fit(X, y)
                               .predict_proba(X))


def test_heatmap_is_written(planted, tmp_path):
    X, y = planted
    table = run_grid(X, y, selectors=("wilcoxon",), classifiers=("nb",), k=3, n_bootstrap=5, forward=False).table
    heatmap(table, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_parallel_cells_give_the_same_grid(planted):
    """Two feature sets' cells spread together over 2 processes (as evaluate runs them) give each set's grid alone,
    in one process."""
    X, y = planted
    other = X.iloc[:, ::-1].rename(columns=lambda name: f"{name}b") * 2 + 1
    kwargs = dict(selectors=("wilcoxon", "chi2"), classifiers=("rf", "svm", "nb"), k=3, n_bootstrap=8)
    parallel = run_grids({"one": X, "other": other}, y, n_jobs=2, **kwargs)
    assert list(parallel) == ["one", "other"]
    for name, frame in (("one", X), ("other", other)):
        serial = run_grid(frame, y, n_jobs=1, **kwargs)
        pd.testing.assert_frame_equal(serial.table, parallel[name].table)
        assert serial.per_bootstrap.keys() == parallel[name].per_bootstrap.keys()
        for key, values in serial.per_bootstrap.items():
            np.testing.assert_array_equal(values, parallel[name].per_bootstrap[key])
        np.testing.assert_array_equal(serial.indices, parallel[name].indices)


def test_labels_from_probabilities_equal_predict(planted):
    from sklearn.base import clone

    from rtresponse.evaluation.bootstrap import _scores_and_labels
    from rtresponse.models.grid import _with_imputer

    X, y = planted
    for name in ("rf", "svm", "knn", "nb"):
        model = clone(_with_imputer(make_classifier(name))).fit(X.iloc[:30], y[:30])
        scores, labels = _scores_and_labels(model, X.iloc[30:])
        np.testing.assert_array_equal(labels, model.predict(X.iloc[30:]))
        np.testing.assert_array_equal(scores, model.predict_proba(X.iloc[30:])[:, 1])
