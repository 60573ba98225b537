"""The fast bootstrap paths on clinical-like sets: missing values imputed as the grid's pipeline does, one-hot columns,
and features that are constant within a bootstrap sample; the same numbers as scikit-learn (to 1e-8)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from rtresponse.evaluation import fast_fits  # noqa: E402
from rtresponse.evaluation.bootstrap import (  # noqa: E402
    bootstrap_632plus_auc, bootstrap_indices, combine_632plus, fast_auc)
from rtresponse.models.classifiers import make_classifier  # noqa: E402
from rtresponse.models.grid import _with_imputer, ranked_features, run_grid  # noqa: E402

N = 30


def clinical_like(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """30 patients: numbers with ~10 % missing, a factor missing for all but 2 patients (missing from every
    training row of some draws), a dose of 70.2 Gy for all but 2 (constant within some draws), one-hot columns."""
    rng = np.random.default_rng(seed)
    columns = {"age": rng.normal(60, 10, N).round(), "suv": rng.lognormal(2, 0.5, N), "volume": rng.normal(0, 1, N)}
    for name in columns:
        columns[name][rng.random(N) < 0.1] = np.nan
    columns["rare"] = np.full(N, np.nan)
    columns["rare"][[0, 5]] = [1.5, 2.5]
    columns["dose"] = np.full(N, 70.2)
    columns["dose"][[1, 2]] = 66.0
    stage = rng.integers(0, 3, N)
    for level, name in enumerate(("I", "II", "unknown")):
        columns[f"stage={name}"] = (stage == level).astype(float)
    X = pd.DataFrame(columns)
    y = (np.nan_to_num(X["volume"]) + X["stage=I"] + rng.normal(0, 1, N) > 0.3).astype(int).to_numpy()
    return X, y


@pytest.fixture(scope="module")
def cohort():
    X, y = clinical_like()
    draws = bootstrap_indices(y, 5, random_state=12)  # 2 draws without "rare", 1 with a constant dose: asserted below
    return X, y, draws


def test_median_fill_is_the_imputers_statistics(cohort, monkeypatch):
    X, y, draws = cohort
    values = X.to_numpy()
    fills = fast_fits.median_fill(values, draws)
    missing = np.isnan(values).any(axis=0)
    empty = 0
    for sample, fill in zip(draws, fills):
        statistics = SimpleImputer(strategy="median", keep_empty_features=True).fit(values[sample]).statistics_
        np.testing.assert_array_equal(fill[missing], statistics[missing])  # the same numbers, to the last bit
        empty += bool(np.isnan(values[sample, X.columns.get_loc("rare")]).all())
    assert empty > 0  # some draws hold no value of "rare" (imputed 0, keep_empty_features)
    np.testing.assert_array_equal(fast_fits.median_fill(values, np.arange(N))[missing],
                                  SimpleImputer(strategy="median").fit(values).statistics_[missing])
    monkeypatch.setattr(fast_fits, "_FILL_CHUNK", 2 * N * missing.sum())  # two draws at a time, as a wide set
    np.testing.assert_array_equal(fast_fits.median_fill(values, draws), fills)


def test_scaler_leaves_a_rounded_constant_unscaled():
    """A dose of 70.2 in every row has an SD of ~1e-14 by rounding; StandardScaler does not divide by it."""
    rows = np.column_stack([np.full(N, 70.2), np.linspace(0, 1, N), np.full(N, 0.5)])
    mean, scale = fast_fits._scaler(rows)
    scaler = StandardScaler().fit(rows)
    np.testing.assert_array_equal(mean, scaler.mean_)
    np.testing.assert_array_equal(scale, scaler.scale_)
    assert scale[0] == 1.0


@pytest.mark.parametrize("name", ["nb", "lda", "knn", "svm", "rf"])
def test_fast_paths_with_missing_values_equal_the_pipeline(cohort, name):
    """Per draw, the out-of-bag probabilities of the imputer + classifier pipeline; then the 0.632+ terms built from
    them as the plain bootstrap builds them (the plain bootstrap itself is compared in the grid test below)."""
    X, y, draws = cohort
    values = X.to_numpy()
    model = _with_imputer(make_classifier(name))
    fills = fast_fits.median_fill(values, draws)
    oob_aucs, constant = [], 0
    for sample, fill in zip(draws, fills):
        out = np.setdiff1d(np.arange(N), sample)
        expected = model.fit(X.iloc[sample], y[sample]).predict_proba(X.iloc[out])[:, 1]
        np.testing.assert_allclose(fast_fits.fit_predict(name, values, y, sample, out, fill), expected,
                                   rtol=0, atol=1e-8)
        np.testing.assert_allclose(fast_fits.fit_predict(name, values, y, sample, out), expected, rtol=0, atol=1e-8)
        oob_aucs.append(fast_auc(y[out], expected))
        constant += bool(np.all(values[sample, X.columns.get_loc("dose")] == 70.2))
    assert constant > 0  # the dose is constant within some draws' training rows
    apparent = fast_auc(y, model.fit(X, y).predict_proba(X)[:, 1])
    fast = bootstrap_632plus_auc(model, X, y, indices=draws, fast=name)
    assert fast.apparent_auc == pytest.approx(apparent, abs=1e-8)
    np.testing.assert_allclose(fast.oob_aucs, oob_aucs, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fast.per_bootstrap, combine_632plus(apparent, np.array(oob_aucs)), rtol=0, atol=1e-8)


@pytest.mark.parametrize("columns", [3, 17])
def test_knn_takes_scikit_learns_neighbours_where_distances_tie(cohort, columns):
    """Whole-year ages and one-hot columns tie at the fifth neighbour, and the search's order then decides the vote.

    3 columns: the KD-tree's order (a numpy search was off by 0.15 here); 17: the brute-force search's."""
    X, y, draws = cohort
    rng = np.random.default_rng(3)
    flags = rng.random((N, 14)) < 0.3
    values = np.column_stack([X[["age", "stage=I", "stage=II"]].to_numpy(), flags])[:, :columns]
    model = _with_imputer(make_classifier("knn"))
    for sample in draws:
        out = np.setdiff1d(np.arange(N), sample)
        expected = model.fit(values[sample], y[sample]).predict_proba(values[out])[:, 1]
        np.testing.assert_allclose(fast_fits.fit_predict("knn", values, y, sample, out), expected, rtol=0, atol=1e-8)


def test_grid_takes_the_fast_path_on_missing_values_with_the_plain_paths_table(cohort, monkeypatch):
    X, y, _ = cohort
    calls = []
    fit_predict = fast_fits.fit_predict
    monkeypatch.setattr(fast_fits, "fit_predict", lambda *args, **kwargs: calls.append(args[0]) or
                        fit_predict(*args, **kwargs))
    # the forest is left out for time (its fast fit is compared above); forward selection, as in the paper
    settings = dict(selectors=["wilcoxon"], classifiers=["nb", "lda", "knn", "svm"], k=2, n_bootstrap=3,
                    random_state=0)
    assert X[ranked_features("wilcoxon", X, y, 2)].isna().any().any()  # the cells see missing values
    fast = run_grid(X, y, **settings).table
    assert set(calls) == set(settings["classifiers"])  # every classifier of the grid took its fast path
    monkeypatch.setattr(fast_fits, "FAST_CLASSIFIERS", ())
    calls.clear()
    plain = run_grid(X, y, **settings).table
    assert not calls
    assert list(fast.features) == list(plain.features)
    numbers = ["auc632plus", "auc_sd", "sensitivity", "specificity", "apparent_auc", "oob_auc"]
    np.testing.assert_allclose(fast[numbers].to_numpy(), plain[numbers].to_numpy(), rtol=0, atol=1e-8)
