"""The 0.632+ bootstrap AUC (Efron & Tibshirani 1997, in the per-bootstrap form of Tanaka et al.).

For bootstrap b (a sample of N patients drawn with replacement, X*b, and the patients it left
out, X*b(0)):

    AUC'_b = max(0.5, AUC(train X*b, test X*b(0)))
    R_b    = 1                                           if AUC_oob_b <= 0.5
             (AUC(X,X) - AUC_oob_b) / (AUC(X,X) - 0.5)   if AUC(X,X) > AUC_oob_b > 0.5
             0                                           otherwise
    w_b    = 0.632 / (1 - 0.368 R_b)
    AUC632+ = mean_b [(1 - w_b) AUC(X,X) + w_b AUC'_b]

where AUC(X,X) is the apparent AUC (trained and tested on all patients). Bootstraps whose
out-of-bag set holds a single class are redrawn (the paper), and so are those whose sample holds
fewer than two rows of a class (beyond the paper: a classifier cannot be fitted, nor the SVM's
Platt scaling cross-validated, on one case; only small cohorts meet such draws). Indices come from
:func:`bootstrap_indices`, so passing the same ``random_state`` (or the same ``indices``) to
several models makes their comparison paired. Scores come from ``predict_proba`` (or
``decision_function``), never from hard labels; sensitivity and specificity are the out-of-bag
means at the estimator's own decision rule (``predict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import InputError

MAX_REDRAWS = 1000
MIN_IN_BAG = 2  # rows of each class in every bootstrap sample


@dataclass(frozen=True)
class BootstrapResult:
    auc: float              # the 0.632+ estimate
    auc_sd: float           # SD of the per-bootstrap 0.632+ terms
    apparent_auc: float     # AUC(X, X)
    oob_auc: float          # mean out-of-bag AUC (the pessimistic leave-out estimate)
    sensitivity: float      # mean out-of-bag sensitivity at the estimator's decision rule
    specificity: float
    n_bootstrap: int
    per_bootstrap: np.ndarray = field(repr=False)  # (1 - w_b) AUC(X,X) + w_b AUC'_b
    oob_aucs: np.ndarray = field(repr=False)


def fast_auc(y: np.ndarray, score: np.ndarray) -> float:
    """:func:`rtresponse.evaluation.auc` without input checks, for the bootstrap's inner loop (NaN if a class is missing)."""
    from .roc import _midranks

    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _midranks(np.asarray(score, dtype=float))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _binary(y) -> np.ndarray:
    y = np.asarray(y)
    values = np.unique(y[~_isnan(y)]) if y.dtype.kind == "f" else np.unique(y)
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise InputError("outcome has missing values; drop those patients first")
    if len(values) != 2:
        raise InputError(f"outcome must have exactly two classes, got {len(values)} ({list(values)[:5]})")
    if set(values.tolist()) != {0, 1}:
        raise InputError(f"outcome must be coded 0/1 (1 = positive), got {list(values)}")
    return y.astype(int)


def _isnan(y):
    return np.isnan(y) if y.dtype.kind == "f" else np.zeros(y.shape, bool)


def bootstrap_indices(y, n_bootstrap: int = 1000, random_state=None) -> np.ndarray:
    """(n_bootstrap, N) in-bag indices; every draw has two rows of each class in bag and both classes out of bag."""
    y = _binary(y)
    n = y.size
    if n_bootstrap < 1:
        raise InputError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    if min(np.bincount(y, minlength=2)) < 2:
        raise InputError("each class needs at least 2 patients for the bootstrap")
    rng = np.random.default_rng(random_state)
    draws = np.empty((n_bootstrap, n), dtype=np.int64)
    for b in range(n_bootstrap):
        for _ in range(MAX_REDRAWS):
            sample = rng.integers(0, n, n)
            out = np.ones(n, bool)
            out[sample] = False
            if MIN_IN_BAG <= y[sample].sum() <= n - MIN_IN_BAG and 0 < y[out].sum() < out.sum():
                draws[b] = sample
                break
        else:  # pragma: no cover - needs an absurdly unbalanced outcome
            raise InputError("could not draw a bootstrap sample with both classes in and out of bag")
    return draws


def decision_scores(fitted, X) -> np.ndarray:
    """Continuous scores for the positive class (1): probabilities, else the decision function."""
    classes = list(getattr(fitted, "classes_", [0, 1]))
    if hasattr(fitted, "predict_proba"):
        try:
            return fitted.predict_proba(X)[:, classes.index(1)]
        except (AttributeError, NotImplementedError):
            pass
    if hasattr(fitted, "decision_function"):
        return fitted.decision_function(X)
    raise InputError(f"{type(fitted).__name__} gives neither probabilities nor a decision function")


# classifiers whose predict() is the most probable class of predict_proba(), first class on a tie
_ARGMAX_PREDICT = ("RandomForestClassifier", "ExtraTreesClassifier", "CalibratedClassifierCV", "GaussianNB",
                   "KNeighborsClassifier")


def _scores_and_labels(model, X) -> tuple[np.ndarray, np.ndarray]:
    """Scores for the AUC and predicted labels, from one predict_proba where predict would repeat it."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    classes = list(getattr(model, "classes_", []))
    if type(final).__name__ in _ARGMAX_PREDICT and classes in ([0, 1], [False, True]):
        proba = model.predict_proba(X)
        return proba[:, 1], (proba[:, 1] > proba[:, 0]).astype(int)
    return decision_scores(model, X), np.asarray(model.predict(X)).astype(int)


def _one_bootstrap(estimator, X, y, sample) -> tuple[float, float, float]:
    from sklearn.base import clone

    out = np.ones(y.size, bool)
    out[sample] = False
    model = clone(estimator).fit(_rows(X, sample), y[sample])
    X_out, y_out = _rows(X, out), y[out]
    scores, predicted = _scores_and_labels(model, X_out)
    auc = fast_auc(y_out, scores)
    sensitivity = float(np.mean(predicted[y_out == 1] == 1))
    specificity = float(np.mean(predicted[y_out == 0] == 0))
    return auc, sensitivity, specificity


def _rows(X, index):
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


def combine_632plus(apparent: float, oob_aucs: np.ndarray) -> np.ndarray:
    """Per-bootstrap 0.632+ terms from the apparent AUC and the out-of-bag AUCs."""
    oob = np.asarray(oob_aucs, dtype=float)
    clipped = np.maximum(0.5, oob)
    relative = np.where(oob <= 0.5, 1.0,
                        np.where((apparent > oob) & (oob > 0.5),
                                 (apparent - oob) / max(apparent - 0.5, np.finfo(float).tiny), 0.0))
    weight = 0.632 / (1 - 0.368 * relative)
    return (1 - weight) * apparent + weight * clipped


def bootstrap_632plus_auc(estimator, X, y, n_bootstrap: int = 1000, random_state=None, n_jobs=None,
                          indices: np.ndarray | None = None, fast: str | None = None) -> BootstrapResult:
    """The 0.632+ bootstrap AUC of ``estimator`` (any scikit-learn classifier or Pipeline) on X, y.

    ``indices`` (from :func:`bootstrap_indices`) reuses draws across models for paired
    comparisons; otherwise they are drawn from ``random_state``. ``n_jobs`` fits bootstraps in
    parallel (joblib). ``fast`` ("nb", "lda", "knn", "svm" or "rf") says that ``estimator`` is that classifier
    of :func:`rtresponse.models.classifiers.make_classifier` behind the median imputer (as
    :func:`rtresponse.models.grid._with_imputer` builds it): the fits, imputation included, then
    skip scikit-learn's per-fit machinery (:mod:`.fast_fits`), with the same result.
    """
    from sklearn.base import clone

    from ..inputs import model_matrix

    model_matrix(X, None if fast else estimator)  # the fast paths impute as the grid's pipeline does

    y = _binary(y)
    if len(y) != (X.shape[0] if hasattr(X, "shape") else len(X)):
        raise InputError(f"X has {X.shape[0]} rows but y has {len(y)}")
    draws = bootstrap_indices(y, n_bootstrap, random_state) if indices is None else np.asarray(indices)
    if fast is not None:
        return _fast_bootstrap(fast, X, y, draws, _fast_params(fast, estimator))
    full = clone(estimator).fit(X, y)
    apparent = fast_auc(y, decision_scores(full, X))
    if n_jobs in (None, 1):
        results = [_one_bootstrap(estimator, X, y, sample) for sample in draws]
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs)(delayed(_one_bootstrap)(estimator, X, y, sample) for sample in draws)
    return _result(apparent, results)


def _fast_params(name: str, estimator) -> dict:
    """The forest's size and seed, which the fast path must reproduce."""
    if name != "rf":
        return {}
    forest = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    params = forest.get_params()
    seed = params.get("random_state")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise InputError("the fast random-forest path needs an integer random_state")
    return {"n_estimators": int(params["n_estimators"]), "random_state": int(seed)}


def _fast_bootstrap(name: str, X, y: np.ndarray, draws: np.ndarray, params: dict | None = None) -> BootstrapResult:
    from .fast_fits import FAST_CLASSIFIERS, fit_predict, median_fill

    if name not in FAST_CLASSIFIERS:
        raise InputError(f"no fast path for classifier '{name}' (fast paths: {', '.join(FAST_CLASSIFIERS)})")
    values = np.asarray(X, dtype=float)
    # the pipeline's median imputer, fitted on each draw's training rows: all draws' medians at once
    fills = median_fill(values, draws) if np.isnan(values).any() else [None] * len(draws)
    everyone = np.arange(y.size)
    params = params or {}
    apparent = fast_auc(y, fit_predict(name, values, y, everyone, everyone, **params))
    results = []
    for sample, fill in zip(draws, fills):
        out = np.ones(y.size, bool)
        out[sample] = False
        probability = fit_predict(name, values, y, sample, np.flatnonzero(out), fill, **params)
        y_out = y[out]
        predicted = probability > 0.5  # predict(): the more probable class, class 0 on a tie
        results.append((fast_auc(y_out, probability), float(np.mean(predicted[y_out == 1])),
                        float(np.mean(~predicted[y_out == 0]))))
    return _result(apparent, results)


def _result(apparent: float, results) -> BootstrapResult:
    oob_aucs, sensitivities, specificities = (np.array(column) for column in zip(*results))
    terms = combine_632plus(apparent, oob_aucs)
    return BootstrapResult(auc=float(terms.mean()), auc_sd=float(terms.std(ddof=1)) if len(terms) > 1 else 0.0,
                           apparent_auc=apparent, oob_auc=float(np.nanmean(oob_aucs)),
                           sensitivity=float(np.nanmean(sensitivities)), specificity=float(np.nanmean(specificities)),
                           n_bootstrap=len(terms), per_bootstrap=terms, oob_aucs=oob_aucs)


def forward_selection(estimator, X, y, candidates: Sequence | None = None, n_bootstrap: int = 1000,
                      random_state=None, n_jobs=None, max_features: int | None = None, fast: str | None = None):
    """Greedy forward selection over ``candidates`` (default: all columns) by the 0.632+ AUC.

    At each step the candidate that raises the estimate most is added; the search stops when
    no candidate improves it. Every evaluation uses the same bootstrap draws. Returns
    ``(selected columns, BootstrapResult of the selected set)``.
    """
    y = _binary(y)
    columns = list(X.columns) if hasattr(X, "columns") else list(range(X.shape[1]))
    candidates = list(columns if candidates is None else candidates)
    unknown = [c for c in candidates if c not in columns]
    if unknown:
        raise InputError(f"unknown candidate feature(s): {unknown[:5]}")
    draws = bootstrap_indices(y, n_bootstrap, random_state)
    selected: list = []
    best = None
    limit = len(candidates) if max_features is None else min(max_features, len(candidates))
    while len(selected) < limit:
        trials = []
        for candidate in candidates:
            if candidate in selected:
                continue
            subset = _columns(X, selected + [candidate])
            trials.append((bootstrap_632plus_auc(estimator, subset, y, indices=draws, n_jobs=n_jobs, fast=fast),
                           candidate))
        result, candidate = max(trials, key=lambda trial: trial[0].auc)
        if best is not None and result.auc <= best.auc:
            break
        selected.append(candidate)
        best = result
    return selected, best


def _columns(X, columns):
    return X[columns] if hasattr(X, "columns") else X[:, columns]
