"""Bootstrap fits of the grid's classifiers without scikit-learn's per-fit machinery: the same numbers.

In the 0.632+ grid most of the time goes to scikit-learn's per-fit machinery (clone, input
validation, the Pipeline, a fresh RandomState per tree), not to arithmetic: forward selection
works on at most ``k`` (10) features. For the classifiers of :mod:`rtresponse.models.classifiers`
this module reproduces, for one bootstrap draw, exactly what the scikit-learn pipeline would
compute: the median imputer in numpy (fitted on each draw's training rows, all draws at once),
then ``nb``, ``lda`` and ``knn`` in numpy (behind the StandardScaler), ``svm`` by calling
libsvm and scikit-learn's Platt calibration directly, ``rf`` tree by tree with scikit-learn's
Cython tree builder. Tests compare each with the scikit-learn pipeline (to 1e-8; the forest and
the SVM to the last bit). :func:`rtresponse.evaluation.bootstrap.bootstrap_632plus_auc` uses them
when asked to (``fast="nb"`` etc.), with or without missing values.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

FAST_CLASSIFIERS = ("nb", "lda", "knn", "svm", "rf")
_FILL_CHUNK = 2 ** 22  # values sorted at once by median_fill (32 MB)


def _scaler(rows: np.ndarray):
    """StandardScaler().fit(rows): ``(mean_, scale_)``, computed as scikit-learn computes them.

    The variance is the corrected two-pass sum of ``_incremental_mean_and_var``, and a feature is
    left unscaled when that variance is within its rounding-error bound (``_is_constant_feature``),
    not when the SD is below 10 eps: a feature that is constant at 70.2 in a bootstrap sample has an
    SD of about 1e-14 from rounding, which scikit-learn does not divide by.
    """
    n = rows.shape[0]
    mean = rows.sum(axis=0) / n
    centred = rows - mean
    var = ((centred ** 2).sum(axis=0) - centred.sum(axis=0) ** 2 / n) / n
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    return mean, np.where(constant, 1.0, np.sqrt(var))


def _standardise(train: np.ndarray, test: np.ndarray):
    mean, scale = _scaler(train)
    return (train - mean) / scale, (test - mean) / scale


def median_fill(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``SimpleImputer(strategy="median", keep_empty_features=True).fit(X[r]).statistics_`` for each row set r.

    ``rows``: one row set (n,) or several (draws x n, repeats allowed), giving (p,) or (draws x p).
    Only columns with a missing value are computed (the others are 0: nothing to fill), all row
    sets at once (in chunks of draws of ``_FILL_CHUNK`` values: a wide set must not take gigabytes).
    """
    rows = np.asarray(rows)
    fill = np.zeros(rows.shape[:-1] + (X.shape[1],))
    missing = np.flatnonzero(np.isnan(X).any(axis=0))
    if missing.size == 0:
        return fill
    values = X[:, missing]
    if rows.ndim == 1:
        fill[missing] = _medians(values[rows])
        return fill
    step = max(1, _FILL_CHUNK // (rows.shape[1] * missing.size))
    for start in range(0, rows.shape[0], step):
        fill[start:start + step, missing] = _medians(values[rows[start:start + step]])
    return fill


def _medians(values: np.ndarray) -> np.ndarray:
    """NaN-ignoring medians along axis -2, as ``np.ma.median`` computes them; 0 where all are missing.

    The two middle values of the sorted non-missing ones, summed and halved (the middle one twice
    for an odd count); a column without any value is imputed 0 (``keep_empty_features``).
    """
    ordered = np.sort(values, axis=-2)  # NaN sort last
    count = (~np.isnan(ordered)).sum(axis=-2, keepdims=True)
    high = count // 2
    low = np.where(count % 2 == 1, high, np.maximum(high - 1, 0))
    pair = np.take_along_axis(ordered, np.concatenate([low, high], axis=-2), axis=-2)
    median = (pair[..., 0, :] + pair[..., 1, :]) / 2.0
    return np.where(count[..., 0, :] == 0, 0.0, median)


def _impute(rows: np.ndarray, fill: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(rows), fill, rows)


def _nb(train, y, test):
    """StandardScaler + GaussianNB(var_smoothing=1e-9): P(class 1) for the test rows."""
    epsilon = 1e-9 * np.var(train, axis=0).max()
    jll = []
    for c in (0, 1):
        rows = train[y == c]
        theta = rows.mean(axis=0)
        var = rows.var(axis=0) + epsilon
        prior = rows.shape[0] / train.shape[0]
        # GaussianNB's own order of operations: a feature constant in the training rows has variance
        # epsilon, so both classes' terms can be ~1e10 with a difference of ~1, and rounding shows
        jll.append(np.log(prior) + (-0.5 * np.sum(np.log(2.0 * np.pi * var))
                                    - 0.5 * np.sum((test - theta) ** 2 / var, axis=1)))
    return np.exp(jll[1] - _logsumexp2(jll[0], jll[1]))


def _logsumexp2(a, b):
    """scikit-learn's ``_logsumexp`` (as GaussianNB.predict_proba normalises) of two columns."""
    top = np.maximum(a, b)
    ties = np.where(a == b, 2.0, 1.0)  # how many columns hold the maximum
    shift = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(invalid="ignore"):
        rest = np.where(a == b, 0.0, np.exp(np.minimum(a, b) - shift))  # the maxima count as exp(-inf) = 0
    rest = np.where(rest == 0, rest, rest / ties)
    return np.log1p(rest) + np.log(ties) + top


def _ledoit_wolf(x):
    """sklearn.covariance.ledoit_wolf (not assuming centred data), without its input checks."""
    n, p = x.shape
    x = x - x.mean(axis=0)
    if p == 1:  # scikit-learn's ledoit_wolf_shrinkage: no shrinkage of a single feature (delta is 0 there)
        return (x.T @ x) / n
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
    mean, scale = _scaler(rows)
    shrunk = _ledoit_wolf((rows - mean) / scale)
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
    """StandardScaler + KNeighborsClassifier(5, weights="distance"): P(class 1).

    The neighbours must be those scikit-learn's search returns, which matters where distances tie
    (clinical numbers, one-hot columns, imputed medians): the numpy search is used only where the
    classifier would use a KD-tree and no tie at the k-th neighbour could change the vote; else
    the classifier's own search decides.
    """
    k = min(k, train.shape[0])
    distance = None
    if _uses_kd_tree(train, k):
        distances = np.sqrt(((test[:, None, :] - train[None, :, :]) ** 2).sum(axis=2))  # as the tree: exact zeros
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        distance = np.take_along_axis(distances, nearest, axis=1)
        if _tie_could_change_vote(distances, distance.max(axis=1, keepdims=True), y, k):
            distance = None
    if distance is None:
        distance, nearest = _sklearn_neighbours(train, test, k)
    with np.errstate(divide="ignore"):
        weights = 1.0 / distance
    exact = distance == 0
    rows = exact.any(axis=1)
    weights[rows] = exact[rows].astype(float)  # a zero distance outvotes everything, as in sklearn
    positive = (y[nearest] == 1) * weights
    return positive.sum(axis=1) / weights.sum(axis=1)


def _uses_kd_tree(train, k) -> bool:
    """KNeighborsClassifier(algorithm="auto")'s choice: a KD-tree unless there are many features or few rows."""
    return train.shape[1] <= 15 and k < train.shape[0] // 2


def _tie_could_change_vote(distances, kth, y, k) -> bool:
    """Whether some test row has more than k candidates up to its k-th distance (to rounding), of both classes
    at that distance: which of them are taken then depends on the search's order."""
    tied = np.abs(distances - kth) <= 1e-9 * kth  # closer than this, two distances may be ordered either way
    crowded = (distances <= kth + 1e-9 * kth).sum(axis=1) > k
    mixed = (tied & (y == 1)).any(axis=1) & (tied & (y == 0)).any(axis=1)
    return bool((crowded & mixed).any())


def _sklearn_neighbours(train, test, k):
    """KNeighborsClassifier's own search (KD-tree or brute force, as it chooses), ties broken as it breaks them."""
    from sklearn.neighbors import KDTree, NearestNeighbors

    if _uses_kd_tree(train, k):
        return KDTree(train, leaf_size=30, metric="euclidean").query(test, k)
    return NearestNeighbors(n_neighbors=k).fit(train).kneighbors(test)


def _rf(train, y, test, n_estimators=100, random_state=0):
    """RandomForestClassifier(100, max_features="sqrt", class_weight="balanced", random_state): P(class 1).

    The forest's own recipe (scikit-learn >= 1.9), tree by tree, built with scikit-learn's own
    Cython tree builder but without the per-tree Python machinery (parameter checks, and two
    ``RandomState`` constructions per tree, which cost more than growing a tree on 100 patients):
    float32 data, one seed per tree drawn from ``random_state``; each tree's bootstrap drawn as
    ``RandomState(seed).choice(n, n, p=balanced class weights)`` does and passed as counts; the
    splitter seeded with a fresh ``RandomState(seed)`` as ``DecisionTreeClassifier._fit`` does;
    probabilities averaged over the trees. Tests compare it with the scikit-learn forest (equal
    to the last bit); the forest is unscaled, so the data are not standardised here.
    """
    from sklearn.tree._criterion import Gini
    from sklearn.tree._splitter import BestSplitter
    from sklearn.tree._tree import DepthFirstTreeBuilder, Tree
    from sklearn.utils.class_weight import compute_sample_weight

    train32 = np.ascontiguousarray(train, dtype=np.float32)
    test32 = np.ascontiguousarray(test, dtype=np.float32)
    n, n_features = train32.shape
    weight = compute_sample_weight("balanced", y)
    cdf = (weight / weight.sum()).cumsum()  # RandomState.choice(p=...): cumulative, renormalised, searchsorted
    cdf /= cdf[-1]
    classes, encoded = np.unique(y, return_inverse=True)
    target = np.ascontiguousarray(encoded.reshape(-1, 1), dtype=np.float64)
    n_classes = np.array([classes.size], dtype=np.intp)
    max_features = max(1, int(np.sqrt(n_features)))
    seeds = np.random.RandomState(random_state)
    state = np.random.RandomState()  # re-seeded per use: the same stream as a new RandomState(seed)
    total = np.zeros((test32.shape[0], classes.size))
    for _ in range(n_estimators):
        seed = seeds.randint(np.iinfo(np.int32).max)
        state.seed(seed)
        counts = np.bincount(cdf.searchsorted(state.random_sample(n), side="right"), minlength=n).astype(np.float64)
        state.seed(seed)  # the splitter draws its own seed from a fresh RandomState(seed) when the build starts
        splitter = BestSplitter(Gini(1, n_classes), max_features, 1, 0.0, state, None)
        tree = Tree(n_features, n_classes, 1)
        # min_samples_split 2, min_samples_leaf 1, min_weight_leaf 0, unlimited depth, min_impurity_decrease 0
        DepthFirstTreeBuilder(splitter, 2, 1, 0.0, np.iinfo(np.int32).max, 0.0).build(tree, train32, target, counts,
                                                                                        None)
        total += tree.predict(test32)[:, :classes.size]
    return (total / n_estimators)[:, 1]


# libsvm's seed: used only for its own probability cross-validation, which the calibrated SVM does not ask for
_LIBSVM_SEED = 0


def _svc_fit(train, y):
    """SVC(kernel="rbf", C=1, gamma="scale", class_weight="balanced").fit: libsvm called as SVC calls it."""
    from sklearn.svm import _libsvm

    if np.unique(y).size < 2:
        raise ValueError("The number of classes has to be greater than one; got 1 class")
    _libsvm.set_verbosity_wrap(0)  # libsvm's verbosity is global and starts on; SVC.fit sets it before each fit
    class_weight = y.size / (2 * np.bincount(y, minlength=2).astype(np.float64))
    variance = train.var()
    gamma = 1.0 / (train.shape[1] * variance) if variance != 0 else 1.0
    fitted = _libsvm.fit(train, y.astype(np.float64), svm_type=0, sample_weight=np.empty(0),
                         class_weight=class_weight, kernel="rbf", C=1.0, nu=0.5, probability=False, degree=3,
                         shrinking=True, tol=1e-3, cache_size=200, coef0=0.0, gamma=gamma, epsilon=0.1, max_iter=-1,
                         random_seed=_LIBSVM_SEED)
    return fitted, gamma


def _svc_decision(model, test):
    """SVC.decision_function for two classes: libsvm's value, sign flipped as scikit-learn does."""
    from sklearn.svm import _libsvm

    (support, vectors, n_support, dual_coef, intercept, prob_a, prob_b, _, _), gamma = model
    return -_libsvm.decision_function(test, support, vectors, n_support, dual_coef, intercept, prob_a, prob_b,
                                      svm_type=0, kernel="rbf", degree=3, cache_size=200, coef0=0.0,
                                      gamma=gamma).ravel()


def _svm(train, y, test):
    """StandardScaler + CalibratedClassifierCV(SVC, "sigmoid", cv=PlattFolds(3), ensemble=False): P(class 1).

    As scikit-learn does it: decision values of SVCs fitted on stratified folds (three, no
    shuffling; see :class:`~rtresponse.models.classifiers.PlattFolds`) give the Platt sigmoid
    (scikit-learn's own ``_sigmoid_calibration``), which maps the decision values of an SVC
    fitted on all training rows; libsvm is called directly, without the estimator,
    cross-validation and calibration wrappers around it.
    """
    from scipy.special import expit
    from sklearn.calibration import _sigmoid_calibration

    from ..models.classifiers import PlattFolds

    train, test = np.ascontiguousarray(train), np.ascontiguousarray(test)
    y = np.asarray(y, dtype=np.int64)
    held_out_decision = np.empty(y.size)
    for fit_rows, held_rows in PlattFolds(3).split(train, y):
        held_out_decision[held_rows] = _svc_decision(_svc_fit(train[fit_rows], y[fit_rows]), train[held_rows])
    slope, intercept = _sigmoid_calibration(held_out_decision, y)
    probability = expit(-(slope * _svc_decision(_svc_fit(train, y), test) + intercept))
    probability[(1.0 < probability) & (probability <= 1.0 + 1e-5)] = 1.0  # as CalibratedClassifierCV
    return probability


_FITS = {"nb": _nb, "lda": _lda, "knn": _knn, "svm": _svm, "rf": _rf}


def fit_predict(name: str, X: np.ndarray, y: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray,
                fill: np.ndarray | None = None, **params) -> np.ndarray:
    """P(class 1) of ``test_rows`` from classifier ``name`` fitted on ``train_rows`` (repeats allowed).

    Behind the median imputer, as :func:`rtresponse.models.grid._with_imputer`: missing values
    of both row sets become the medians of the training rows, ``fill`` where the caller has
    computed them (:func:`median_fill`, for many draws at once). ``params``: the forest's
    ``n_estimators`` and ``random_state`` for ``rf``.
    """
    train, test = X[train_rows], X[test_rows]
    if fill is not None or np.isnan(train).any() or np.isnan(test).any():
        fill = median_fill(X, train_rows) if fill is None else fill
        train, test = _impute(train, fill), _impute(test, fill)
    if name == "rf":
        return _rf(train, y[train_rows], test, **params)
    train, test = _standardise(train, test)
    return _FITS[name](train, y[train_rows], test)


@functools.lru_cache(maxsize=None)
def agrees_with_scikit_learn(name: str) -> bool:
    """Whether the fast path for ``name`` reproduces the installed scikit-learn (checked once per process).

    The fast paths copy scikit-learn's recipes (the forest's bootstrap, libsvm's call, the Platt
    fit), which may change between versions; where they no longer match, or the private
    functions they call are gone, the grid uses the scikit-learn pipeline instead: slower, never
    different. A warning says so.
    """
    import sklearn

    from ..models.classifiers import make_classifier
    from ..models.grid import _with_imputer

    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 4)) * [1.0, 10.0, 0.1, 1.0]
    y = (X[:, 0] + rng.normal(0, 1, 40) > 0).astype(int)
    X[rng.random((40, 4)) < 0.1] = np.nan  # through the grid's imputer, as the grid fits
    train = rng.integers(0, 40, 40)
    test = np.setdiff1d(np.arange(40), train)  # out of bag, as in the bootstrap
    try:
        expected = _with_imputer(make_classifier(name)).fit(X[train], y[train]).predict_proba(X[test])[:, 1]
        agrees = bool(np.allclose(fit_predict(name, X, y, train, test), expected, rtol=0, atol=1e-8))
    except (ImportError, AttributeError, TypeError, ValueError):  # private scikit-learn API changed
        agrees = False
    if not agrees:
        warnings.warn(f"the fast bootstrap path for '{name}' does not reproduce scikit-learn {sklearn.__version__}: "
                      "using the scikit-learn pipeline (same results, slower)", RuntimeWarning, stacklevel=2)
    return agrees
