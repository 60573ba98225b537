"""Bootstrap fits of the cheap classifiers in plain numpy: the same numbers, without per-fit overhead.

In the 0.632+ grid most of the time goes to scikit-learn's per-fit machinery (clone, input
validation, the Pipeline), not to arithmetic: forward selection works on at most ``k`` (10)
features. For the classifiers ``nb``, ``lda`` and ``knn`` of :mod:`rtresponse.models.classifiers`
(each a StandardScaler followed by the estimator), and ``rf`` (tree by tree), this module reproduces, for one bootstrap
draw, exactly what the scikit-learn pipeline would compute — tests compare both to 1e-8 — and
is used by :func:`rtresponse.evaluation.bootstrap.bootstrap_632plus_auc` when asked to
(``fast="nb"`` etc.) on data without missing values.
"""

from __future__ import annotations

import numpy as np

FAST_CLASSIFIERS = ("nb", "lda", "knn", "rf")


def _standardise(train: np.ndarray, test: np.ndarray):
    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    scale[scale < 10 * np.finfo(float).eps] = 1.0  # StandardScaler leaves constant features unscaled
    return (train - mean) / scale, (test - mean) / scale


def _nb(train, y, test):
    """StandardScaler + GaussianNB(var_smoothing=1e-9): P(class 1) for the test rows."""
    epsilon = 1e-9 * np.var(train, axis=0).max()
    jll = []
    for c in (0, 1):
        rows = train[y == c]
        theta = rows.mean(axis=0)
        var = rows.var(axis=0) + epsilon
        prior = rows.shape[0] / train.shape[0]
        jll.append(np.log(prior) - 0.5 * np.sum(np.log(2 * np.pi * var))
                   - 0.5 * np.sum((test - theta) ** 2 / var, axis=1))
    return 1.0 / (1.0 + np.exp(jll[0] - jll[1]))


def _ledoit_wolf(x):
    """sklearn.covariance.ledoit_wolf (not assuming centred data), without its input checks."""
    n, p = x.shape
    x = x - x.mean(axis=0)
    x2 = x ** 2
    emp_cov_trace = x2.sum(axis=0) / n
    mu = emp_cov_trace.sum() / p
    beta_ = np.sum(x2.T @ x2)
    delta_ = np.sum((x.T @ x) ** 2) / n ** 2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2 * mu * emp_cov_trace.sum() + p * mu ** 2) / p
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    shrunk = (1 - shrinkage) * (x.T @ x) / n
    shrunk.flat[:: p + 1] += shrinkage * mu
    return shrunk


def _shrunk_cov(rows):
    """sklearn's LDA `_cov(X, shrinkage="auto")`: Ledoit-Wolf on standardised data, scaled back."""
    scale = rows.std(axis=0)
    scale[scale < 10 * np.finfo(float).eps] = 1.0
    shrunk = _ledoit_wolf((rows - rows.mean(axis=0)) / scale)
    return scale[:, None] * shrunk * scale[None, :]


def _lda(train, y, test):
    """StandardScaler + LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"): P(class 1)."""
    priors = np.array([np.mean(y == 0), np.mean(y == 1)])
    means = np.vstack([train[y == c].mean(axis=0) for c in (0, 1)])
    covariance = sum(priors[c] * np.atleast_2d(_shrunk_cov(train[y == c])) for c in (0, 1))
    coef = np.linalg.lstsq(covariance, means.T, rcond=None)[0].T
    intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
    decision = test @ (coef[1] - coef[0]) + (intercept[1] - intercept[0])
    return 1.0 / (1.0 + np.exp(-decision))


def _knn(train, y, test, k=5):
    """StandardScaler + KNeighborsClassifier(5, weights="distance"): P(class 1)."""
    distances = np.sqrt(np.maximum(
        (test ** 2).sum(1)[:, None] + (train ** 2).sum(1)[None, :] - 2 * test @ train.T, 0.0))
    k = min(k, train.shape[0])
    nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
    d = np.take_along_axis(distances, nearest, axis=1)
    with np.errstate(divide="ignore"):
        weights = 1.0 / d
    exact = d == 0
    rows = exact.any(axis=1)
    weights[rows] = exact[rows].astype(float)  # a zero distance outvotes everything, as in sklearn
    positive = (y[nearest] == 1) * weights
    return positive.sum(axis=1) / weights.sum(axis=1)


def _rf(train, y, test, n_estimators=100, random_state=0):
    """RandomForestClassifier(100, max_features="sqrt", class_weight="balanced", random_state): P(class 1).

    The forest's own recipe (scikit-learn >= 1.9), tree by tree, without its per-fit and
    per-predict machinery: float32 data, one seed per tree drawn from ``random_state``, each
    tree's bootstrap drawn with probabilities proportional to the balanced class weights and
    passed as counts, probabilities averaged over the trees. Tests compare it with the
    scikit-learn forest; the forest is unscaled, so the data are not standardised here.
    """
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.utils.class_weight import compute_sample_weight

    train32, test32 = np.asarray(train, np.float32), np.asarray(test, np.float32)
    weight = compute_sample_weight("balanced", y)
    probability = weight / weight.sum()
    target = np.ascontiguousarray(np.unique(y, return_inverse=True)[1].reshape(-1, 1), dtype=np.float64)
    seeds = np.random.RandomState(random_state)
    total = np.zeros((test32.shape[0], 2))
    for _ in range(n_estimators):
        seed = seeds.randint(np.iinfo(np.int32).max)
        draw = np.random.RandomState(seed).choice(len(y), len(y), replace=True, p=probability).astype(np.int32)
        tree = DecisionTreeClassifier(max_features="sqrt", random_state=seed)
        tree._fit(train32, target, sample_weight=np.bincount(draw, minlength=len(y)).astype(np.float64),
                  check_input=False)
        total += tree.predict_proba(test32, check_input=False)
    return (total / n_estimators)[:, 1]


_FITS = {"nb": _nb, "lda": _lda, "knn": _knn, "rf": _rf}


def fit_predict(name: str, X: np.ndarray, y: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray,
                **params) -> np.ndarray:
    """P(class 1) of ``test_rows`` from classifier ``name`` fitted on ``train_rows`` (repeats allowed).

    ``params``: the forest's ``n_estimators`` and ``random_state`` for ``rf``.
    """
    if name == "rf":
        return _rf(X[train_rows], y[train_rows], X[test_rows], **params)
    train, test = _standardise(X[train_rows], X[test_rows])
    return _FITS[name](train, y[train_rows], test)
