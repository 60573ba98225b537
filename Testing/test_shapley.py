"""Exact interventional Shapley values (rtresponse.evaluation.shapley).

Checked against closed forms (linear model), the Shapley axioms (efficiency, symmetry, dummy),
grouped one-hot players, and an independent brute-force implementation over permutations.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from rtresponse.errors import InputError
from rtresponse.evaluation.shapley import expected_value, mean_absolute_shapley, shapley_values


def _frame(rng, n, columns, loc=0.0, scale=1.0):
    return pd.DataFrame(rng.normal(loc, scale, size=(n, len(columns))), columns=columns)


# --- closed form ---------------------------------------------------------------------------------

def test_linear_model_matches_closed_form():
    rng = np.random.default_rng(0)
    cols = ["figo", "size", "hpv", "age", "dose"]
    X = _frame(rng, 6, cols, loc=1.0, scale=2.0)
    X.index = [f"P{i:03d}" for i in range(6)]
    background = _frame(rng, 40, cols)
    w = np.array([1.5, -0.7, 0.3, 2.0, -1.1])
    c = 0.25

    def predict(d):
        return d.to_numpy() @ w + c

    phi = shapley_values(predict, X, background)
    expected = w * (X.to_numpy() - background.to_numpy().mean(axis=0))
    assert list(phi.columns) == cols
    assert list(phi.index) == list(X.index)
    np.testing.assert_allclose(phi.to_numpy(), expected, rtol=0, atol=1e-10)
    assert phi.attrs["expected_value"] == pytest.approx(background.to_numpy().mean(axis=0) @ w + c,
                                                        abs=1e-12)
    assert expected_value(predict, background) == pytest.approx(phi.attrs["expected_value"], abs=0)


def test_linear_model_subset_of_players_keeps_other_columns_present():
    rng = np.random.default_rng(1)
    cols = ["a", "b", "c", "d"]
    X = _frame(rng, 4, cols, loc=-1.0)
    background = _frame(rng, 25, cols)
    w = np.array([0.5, 2.0, -3.0, 1.0])

    def predict(d):
        return d.to_numpy() @ w

    phi = shapley_values(predict, X, background, features=["b", "d"])
    assert list(phi.columns) == ["b", "d"]
    mean_b = background.to_numpy().mean(axis=0)
    for j, name in ((1, "b"), (3, "d")):
        np.testing.assert_allclose(phi[name], w[j] * (X[name] - mean_b[j]), rtol=0, atol=1e-10)
    # a and c always come from x: the base value of each row carries them
    base = np.array(phi.attrs["base_values"])
    np.testing.assert_allclose(phi.sum(axis=1) + base, predict(X), rtol=0, atol=1e-10)
    assert not np.allclose(base, phi.attrs["expected_value"])


# --- axioms ----------------------------------------------------------------------------------------

def test_efficiency_on_fitted_nonlinear_models():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    cols = ["figo", "size", "hpv", "age", "hb"]
    train = _frame(rng, 200, cols)
    logit = 1.2 * train["figo"] + 0.8 * train["size"] * train["hpv"] - 0.5 * train["age"] ** 2
    y = (logit + rng.normal(0, 0.5, len(train)) > 0).astype(int)
    X = _frame(rng, 8, cols)
    background = train.sample(30, random_state=0)

    forest = RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0, n_jobs=1)
    forest.fit(train, y)

    def with_interaction(d):
        d = d.copy()
        d["size_x_hpv"] = d["size"] * d["hpv"]
        return d

    logistic = LogisticRegression().fit(with_interaction(train), y)
    models = {
        "forest": lambda d: forest.predict_proba(d)[:, 1],
        "logistic": lambda d: logistic.predict_proba(with_interaction(d))[:, 1],
    }
    for name, predict in models.items():
        phi = shapley_values(predict, X, background)
        total = phi.sum(axis=1).to_numpy() + phi.attrs["expected_value"]
        np.testing.assert_allclose(total, predict(X), rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(phi.attrs["base_values"], phi.attrs["expected_value"], atol=1e-12)
        assert np.abs(phi.to_numpy()).max() > 1e-3, name  # not trivially zero


def test_symmetry_and_dummy():
    rng = np.random.default_rng(3)
    base = _frame(rng, 30, ["u", "v", "z"])
    background = base.assign(u_copy=base["u"])[["u", "u_copy", "v", "z"]]
    xb = _frame(rng, 5, ["u", "v", "z"], loc=0.5)
    X = xb.assign(u_copy=xb["u"])[["u", "u_copy", "v", "z"]]

    def predict(d):  # symmetric in u, u_copy (same weight); ignores z
        return np.tanh(0.9 * d["u"] + 0.9 * d["u_copy"] + 0.4 * d["v"]) + d["u"] * d["u_copy"] * d["v"]

    phi = shapley_values(predict, X, background)
    np.testing.assert_allclose(phi["u"], phi["u_copy"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(phi["z"], 0.0, rtol=0, atol=1e-12)
    assert np.abs(phi["u"]).min() > 1e-3
    np.testing.assert_allclose(phi.sum(axis=1) + phi.attrs["expected_value"], predict(X),
                               rtol=0, atol=1e-9)


def test_grouped_one_hot_player_takes_all_contribution():
    rng = np.random.default_rng(4)
    levels = np.array(["positive", "negative", "unknown"])

    def cohort(n):
        hpv = rng.choice(levels, size=n)
        frame = pd.DataFrame({"figo": rng.integers(1, 5, n).astype(float),
                              "size": rng.normal(4.0, 1.5, n)})
        for level in levels:
            frame[f"HPV={level}"] = (hpv == level).astype(float)
        return frame

    X, background = cohort(9), cohort(35)
    one_hot = [f"HPV={level}" for level in levels]

    def predict(d):  # uses the HPV columns only, non-linearly
        z = 1.3 * d["HPV=positive"] - 0.8 * d["HPV=negative"] + 0.2 * d["HPV=unknown"]
        return 1.0 / (1.0 + np.exp(-z))

    groups = {"FIGO stage": ["figo"], "tumour size": ["size"], "HPV": one_hot}
    phi = shapley_values(predict, X, background, features=groups)
    assert list(phi.columns) == ["FIGO stage", "tumour size", "HPV"]
    np.testing.assert_allclose(phi[["FIGO stage", "tumour size"]], 0.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(phi["HPV"], predict(X) - phi.attrs["expected_value"], rtol=0, atol=1e-12)
    assert np.abs(phi["HPV"]).max() > 0.05

    # ungrouped, the same total is split across the three one-hot columns
    split = shapley_values(predict, X, background)
    np.testing.assert_allclose(split[one_hot].sum(axis=1), phi["HPV"], rtol=0, atol=1e-9)


# --- independent reference -----------------------------------------------------------------------

def _naive_shapley(predict, x: pd.Series, background: pd.DataFrame, players: dict) -> dict:
    """Average marginal contribution over all orderings, one model call per composite row."""
    names = list(players)

    def value(coalition):
        total = 0.0
        for _, b in background.iterrows():
            z = b.copy()
            for column in x.index:  # columns of no player stay present
                if not any(column in cols for cols in players.values()):
                    z[column] = x[column]
            for name in coalition:
                for column in players[name]:
                    z[column] = x[column]
            total += float(predict(pd.DataFrame([z]))[0])
        return total / len(background)

    phi = {name: 0.0 for name in names}
    orderings = list(itertools.permutations(names))
    for ordering in orderings:
        before = []
        for name in ordering:
            phi[name] += value(before + [name]) - value(before)
            before.append(name)
    return {name: total / len(orderings) for name, total in phi.items()}


def test_agrees_with_brute_force_over_permutations():
    rng = np.random.default_rng(5)
    cols = ["c0", "c1", "c2", "c3", "c4", "c5"]
    X = _frame(rng, 3, cols)
    background = _frame(rng, 5, cols)
    W1, b1 = rng.normal(size=(6, 7)), rng.normal(size=7)
    w2 = rng.normal(size=7)

    def predict(d):  # a small random two-layer network
        return np.tanh(d.to_numpy() @ W1 + b1) @ w2

    players = {"a": ["c0"], "b": ["c1", "c2"], "c": ["c3"], "d": ["c5"]}  # c4 in no player
    phi = shapley_values(predict, X, background, features=players)
    for i in range(len(X)):
        reference = _naive_shapley(predict, X.iloc[i], background, players)
        np.testing.assert_allclose(phi.iloc[i].to_numpy(), [reference[n] for n in players],
                                   rtol=0, atol=1e-10)
    assert math.isclose(sum(phi.iloc[0]) + phi.attrs["base_values"][0], predict(X)[0], abs_tol=1e-10)


# --- batching, inputs, ranking -------------------------------------------------------------------

def test_batches_are_large_and_batch_size_does_not_change_result():
    rng = np.random.default_rng(6)
    cols = ["a", "b", "c", "d", "e"]
    X = _frame(rng, 7, cols)
    background = _frame(rng, 11, cols)
    X_before, background_before = X.copy(), background.copy()
    calls = []

    def predict(d):
        calls.append(len(d))
        return np.sin(d["a"] * d["b"]) + d["c"] ** 2 - d["d"] * d["e"]

    phi = shapley_values(predict, X, background)
    assert len(calls) <= 2  # one batch for all rows × coalitions (+ the expected value)
    assert max(calls) == len(X) * 2 ** 5 * len(background)
    calls.clear()
    small = shapley_values(predict, X, background, batch_size=50)  # splits coalitions of a row
    assert len(calls) > len(X)
    np.testing.assert_allclose(small.to_numpy(), phi.to_numpy(), rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(X, X_before)
    pd.testing.assert_frame_equal(background, background_before)


def test_non_numeric_present_column_keeps_its_dtype():
    rng = np.random.default_rng(7)
    X = _frame(rng, 4, ["a", "b"]).assign(site=["A", "B", "A", "B"])
    background = _frame(rng, 6, ["a", "b"]).assign(site=["B"] * 6)
    offsets = {"A": 1.0, "B": -2.0}

    def predict(d):
        return d["a"] * d["b"] + d["site"].map(offsets).to_numpy()

    phi = shapley_values(predict, X, background, features=["a", "b"])
    np.testing.assert_allclose(phi.sum(axis=1) + np.array(phi.attrs["base_values"]), predict(X),
                               rtol=0, atol=1e-12)


def test_mean_absolute_shapley_ranks_planted_importance():
    rng = np.random.default_rng(8)
    cols = ["HPV status", "tumour size", "FIGO stage"]
    X = _frame(rng, 60, cols)
    background = _frame(rng, 40, cols)
    w = np.array([0.3, 1.0, 2.5])
    phi = shapley_values(lambda d: d.to_numpy() @ w, X, background)
    importance = mean_absolute_shapley(phi)
    assert list(importance.index) == ["FIGO stage", "tumour size", "HPV status"]
    np.testing.assert_allclose(importance[cols].to_numpy(), phi.abs().mean().to_numpy())
    assert (np.diff(importance.to_numpy()) <= 0).all()


# --- errors --------------------------------------------------------------------------------------

def test_errors():
    rng = np.random.default_rng(9)
    cols = [f"f{i}" for i in range(13)]
    X = _frame(rng, 2, cols)
    background = _frame(rng, 3, cols)

    def predict(d):
        return d.to_numpy().sum(axis=1)

    with pytest.raises(InputError, match="lacks column.*'f3'"):
        shapley_values(predict, X, background.drop(columns=["f3"]))
    with pytest.raises(InputError, match="X lacks column.*'nope'"):
        shapley_values(predict, X, background, features=["f0", "nope"])
    with pytest.raises(InputError, match="HPV.*X lacks column.*'HPV=pos'"):
        shapley_values(predict, X, background, features={"HPV": ["HPV=pos"]})
    with pytest.raises(InputError, match="background is empty"):
        shapley_values(predict, X, background.iloc[:0])
    with pytest.raises(InputError, match="13 players.*max_exact=12.*group"):
        shapley_values(predict, X, background)
    with pytest.raises(InputError, match="max_exact=3"):
        shapley_values(predict, X, background, features=cols[:4], max_exact=3)
    with pytest.raises(InputError, match="one player"):
        shapley_values(predict, X, background, features={"g": ["f0", "f1"], "h": ["f1"]})
    with pytest.raises(InputError, match="no rows"):
        shapley_values(predict, X.iloc[:0], background)
    with pytest.raises(InputError, match="predict_proba"):
        shapley_values(lambda d: np.zeros((len(d), 2)), X, background, features=cols[:2])
    with pytest.raises(InputError, match="NaN"):
        shapley_values(lambda d: np.full(len(d), np.nan), X, background, features=cols[:2])
    # grouping 13 columns into 3 players is fine
    phi = shapley_values(predict, X, background,
                         features={"g1": cols[:5], "g2": cols[5:9], "g3": cols[9:]})
    np.testing.assert_allclose(phi.sum(axis=1) + phi.attrs["expected_value"], predict(X), atol=1e-10)
    with pytest.raises(InputError, match="empty"):
        mean_absolute_shapley(phi.iloc[:0])
