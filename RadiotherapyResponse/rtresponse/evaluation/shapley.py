"""Exact interventional Shapley values of a few input factors (players) of any scoring function.

The cervical-cancer paper (001) reports the mean absolute SHAP value of each clinical factor
(FIGO stage, tumour size, HPV status) of its fitted model on the test set. With a handful of
factors the Shapley values need no approximation: ``shapley_values`` enumerates all ``2**M``
coalitions of the ``M`` players and weights the marginal contributions exactly.

Value of a coalition ``S`` for the row ``x`` (interventional, or marginal, Shapley values, as
SHAP's ``KernelExplainer``/``ExactExplainer`` with an independent masker)::

    v(S) = mean over background rows b of predict(x_S ∪ b_(not S))

Columns that belong to no player are always taken from ``x`` (kept "present"), so one can
explain, say, the clinical factors of a model that also reads image features. A player is a
column or a group of columns (``{"HPV": ["HPV=positive", "HPV=negative", "HPV=unknown"]}``), so a
one-hot encoded factor counts as one factor.

Efficiency holds row by row: ``values.sum(axis=1) + values.attrs["base_values"] == predict(X)``.
When every column of ``X`` is in a player, each base value equals
``values.attrs["expected_value"]`` (the mean prediction over the background), so the familiar
``row sum + expected value == prediction`` holds.

Cost: ``len(X) * 2**M * len(background)`` model evaluations, made in large batches (``batch_size``
rows per ``predict`` call), never one call per coalition. Pass a background sample (say 50-200
rows of the training set) rather than a large training set.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Mapping, Sequence, Union

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["shapley_values", "mean_absolute_shapley", "expected_value"]

Players = Union[None, str, Sequence[str], Mapping[str, Sequence[str]]]


def shapley_values(predict: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame,
                   background: pd.DataFrame, features: Players = None, max_exact: int = 12,
                   *, batch_size: int = 65536) -> pd.DataFrame:
    """Exact interventional Shapley values of each player for each row of ``X``.

    Parameters
    ----------
    predict
        Maps a DataFrame with the columns of ``X`` (in that order) to a 1-D array of scores, e.g.
        ``lambda d: model.predict_proba(d)[:, 1]``.
    X
        Rows to explain (e.g. the test set).
    background
        Rows defining an "absent" player (the training set or a sample of it); must have every
        column of ``X`` (extra columns are ignored).
    features
        The players: a list of column names (each its own player) or a dict
        ``{player name: [columns]}`` (a group, e.g. the one-hot columns of one factor).
        Default: every column of ``X`` is its own player. Columns in no player stay present.
    max_exact
        The most players allowed (``2**M`` coalitions are enumerated).
    batch_size
        About how many rows go to one ``predict`` call.

    Returns
    -------
    DataFrame indexed like ``X``, one column per player. ``attrs["expected_value"]`` is the mean
    prediction over the background; ``attrs["base_values"]`` (a tuple, one per row) is ``v(∅)``
    for each row, equal to the expected value when every column is a player.
    """
    if not callable(predict):
        raise InputError(f"predict must be callable, got {type(predict).__name__}")
    X = _frame(X, "X")
    background = _frame(background, "background")
    if len(X) == 0:
        raise InputError("X has no rows to explain")
    if len(background) == 0:
        raise InputError("background is empty: give the training set or a sample of it")
    missing = [c for c in X.columns if c not in background.columns]
    if missing:
        raise InputError(f"background lacks column(s) {_names(missing)} of X")
    background = background.loc[:, list(X.columns)]
    if background.columns.duplicated().any():
        raise InputError("background has duplicated column names")
    players = _players(features, X)
    n_players = len(players)
    if isinstance(max_exact, bool) or not isinstance(max_exact, (int, np.integer)) or max_exact < 1:
        raise InputError(f"max_exact must be a positive integer, got {max_exact!r}")
    if n_players > max_exact:
        raise InputError(f"{n_players} players need 2**{n_players} coalitions, more than max_exact="
                         f"{max_exact} players allow; group related columns into one player "
                         "(features={'name': [columns], ...}, e.g. the one-hot columns of one "
                         "factor) or explain fewer columns")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")

    names = list(players)
    coalitions = _coalitions(n_players)                      # (K, M) bool
    weights = _weight_matrix(coalitions)                      # (K, M): phi = v @ weights
    empty = 0                                                 # row 0 of coalitions is ∅

    # Which player (index) owns each column; -1: no player, always present.
    owner = np.full(X.shape[1], -1)
    for p, name in enumerate(names):
        for column in players[name]:
            owner[X.columns.get_loc(column)] = p
    # present[k, c]: column c comes from x in coalition k.
    present = np.ones((len(coalitions), X.shape[1]), dtype=bool)
    in_player = owner >= 0
    present[:, in_player] = coalitions[:, owner[in_player]]

    columns = {c: pd.concat([X[c], background[c]], ignore_index=True) for c in X.columns}
    n_rows, n_back, n_coal = len(X), len(background), len(coalitions)

    values = np.empty((n_rows, n_coal))
    per_row = n_coal * n_back
    if per_row <= batch_size:                                 # whole rows per batch
        row_step, coal_step = max(1, batch_size // per_row), n_coal
    else:                                                     # split the coalitions of a row
        row_step, coal_step = 1, max(1, batch_size // n_back)
    for r0 in range(0, n_rows, row_step):
        rows = np.arange(r0, min(r0 + row_step, n_rows))
        for k0 in range(0, n_coal, coal_step):
            ks = np.arange(k0, min(k0 + coal_step, n_coal))
            batch = _masked_batch(columns, present[ks], rows, n_rows, n_back)
            scores = _scores(predict, batch, len(batch), "the coalition-masked rows")
            values[np.ix_(rows, ks)] = scores.reshape(len(rows), len(ks), n_back).mean(axis=2)

    phi = values @ weights
    result = pd.DataFrame(phi, index=X.index, columns=names)
    result.attrs["expected_value"] = expected_value(predict, background)
    result.attrs["base_values"] = tuple(float(v) for v in values[:, empty])
    result.attrs["players"] = {name: tuple(cols) for name, cols in players.items()}
    return result


def expected_value(predict: Callable[[pd.DataFrame], np.ndarray], background: pd.DataFrame) -> float:
    """Mean prediction over the background: the Shapley base value when every column is a player."""
    background = _frame(background, "background")
    if len(background) == 0:
        raise InputError("background is empty: give the training set or a sample of it")
    return float(np.mean(_scores(predict, background, len(background), "the background")))


def mean_absolute_shapley(values: pd.DataFrame) -> pd.Series:
    """Mean |Shapley value| per player over the rows, largest first (the paper's importance ranking)."""
    if not isinstance(values, pd.DataFrame):
        raise InputError(f"values must be a DataFrame of Shapley values, got {type(values).__name__}")
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise InputError("values is empty: no rows or no players")
    try:
        array = values.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InputError("values must be numeric Shapley values") from None
    if not np.isfinite(array).all():
        raise InputError("values contain NaN or infinite Shapley values")
    importance = pd.Series(np.abs(array).mean(axis=0), index=values.columns, name="mean_abs_shapley")
    return importance.sort_values(ascending=False, kind="stable")


# ---------------------------------------------------------------------------------------------

def _frame(data, what: str) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"{what} must be a pandas DataFrame, got {type(data).__name__}")
    if data.columns.duplicated().any():
        dup = list(dict.fromkeys(data.columns[data.columns.duplicated()]))
        raise InputError(f"{what} has duplicated column name(s) {_names(dup)}")
    return data


def _names(items) -> str:
    return ", ".join(repr(i) for i in items)


def _players(features: Players, X: pd.DataFrame) -> Dict[str, List[str]]:
    """Normalise ``features`` to {player name: [columns]}, checking every column exists once."""
    if features is None:
        players = {c: [c] for c in X.columns}
    elif isinstance(features, str):
        players = {features: [features]}
    elif isinstance(features, Mapping):
        players = {}
        for name, cols in features.items():
            if isinstance(cols, str):
                cols = [cols]
            cols = list(cols)
            if not cols:
                raise InputError(f"player {name!r} has no columns")
            players[name] = cols
    else:
        features = list(features)
        duplicated = [f for i, f in enumerate(features) if f in features[:i]]
        if duplicated:
            raise InputError(f"features lists {_names(dict.fromkeys(duplicated))} more than once")
        players = {f: [f] for f in features}
    if not players:
        raise InputError("no players: features is empty")
    seen: Dict[str, str] = {}
    for name, cols in players.items():
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise InputError(f"player {name!r}: X lacks column(s) {_names(missing)}")
        for c in cols:
            if c in seen:
                where = "twice" if seen[c] == name else f"in players {seen[c]!r} and {name!r}"
                raise InputError(f"column {c!r} is listed {where}; a column belongs to one player")
            seen[c] = name
    return players


def _coalitions(n_players: int) -> np.ndarray:
    """All 2**M coalitions as a (2**M, M) boolean matrix, row k = bits of k (row 0 = ∅)."""
    k = np.arange(2 ** n_players)[:, None]
    return ((k >> np.arange(n_players)[None, :]) & 1).astype(bool)


def _weight_matrix(coalitions: np.ndarray) -> np.ndarray:
    """W with phi_j = sum_k v(S_k) W[k, j], exact Shapley weights.

    phi_j = sum_{S not containing j} w(|S|) (v(S ∪ j) - v(S)), w(s) = s!(M-s-1)!/M!, so a
    coalition T contributes +w(|T|-1) to every j in T and -w(|T|) to every j outside T.
    """
    n_players = coalitions.shape[1]
    w = np.array([1.0 / (n_players * math.comb(n_players - 1, s)) for s in range(n_players)]
                 + [0.0])
    size = coalitions.sum(axis=1)
    plus = w[np.maximum(size - 1, 0)][:, None]
    minus = w[size][:, None]
    return np.where(coalitions, plus, -minus)


def _masked_batch(columns: Dict[str, pd.Series], present: np.ndarray, rows: np.ndarray,
                  n_rows: int, n_back: int) -> pd.DataFrame:
    """Rows ordered (row, coalition, background row): column c from x where present, else from b."""
    n_r, n_k = len(rows), present.shape[0]
    shape = (n_r, n_k, n_back)
    from_x = np.broadcast_to(rows[:, None, None], shape)
    from_b = np.broadcast_to(n_rows + np.arange(n_back)[None, None, :], shape)
    out = {}
    for c, (name, series) in enumerate(columns.items()):
        pattern = present[:, c]
        if pattern.all():
            index = from_x
        elif not pattern.any():
            index = from_b
        else:
            index = np.where(pattern[None, :, None], from_x, from_b)
        out[name] = series.take(index.ravel()).reset_index(drop=True)
    return pd.DataFrame(out)


def _scores(predict, batch: pd.DataFrame, expected: int, what: str) -> np.ndarray:
    try:
        scores = predict(batch)
    except InputError:
        raise
    except Exception as error:  # the model's own failure, reported with context
        raise InputError(f"predict failed on {what}: {type(error).__name__}: {error}") from error
    scores = np.asarray(scores)
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim != 1:
        raise InputError(f"predict must return one score per row (a 1-D array), got shape "
                         f"{scores.shape}; for a classifier use lambda d: model.predict_proba(d)[:, 1]")
    if len(scores) != expected:
        raise InputError(f"predict returned {len(scores)} scores for {expected} rows of {what}")
    try:
        scores = scores.astype(float)
    except (TypeError, ValueError):
        raise InputError(f"predict returned non-numeric scores for {what}") from None
    if not np.isfinite(scores).all():
        raise InputError(f"predict returned NaN or infinite scores for {what}")
    return scores
