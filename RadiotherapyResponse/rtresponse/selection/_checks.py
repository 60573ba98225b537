"""Input checks shared by the selectors: one clear :class:`~rtresponse.errors.InputError` per problem.

The checks name the offending columns when ``X`` is a DataFrame (feature tables are), and fall back
on scikit-learn's own validation for everything else (shape, sparse input, dtype), so the selectors
also behave as scikit-learn expects (``sklearn.utils.estimator_checks``).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from ..errors import InputError

_SHOWN = 5  # column names quoted in a message before "and N more"


def _names(items) -> str:
    items = [str(item) for item in items]
    shown = ", ".join(items[:_SHOWN])
    return shown if len(items) <= _SHOWN else f"{shown} and {len(items) - _SHOWN} more"


def _numeric_frame(X, who: str):
    """``X`` with object columns converted to numbers; InputError naming the non-numeric columns."""
    import pandas as pd

    bad = []
    converted = {}
    for name in X.columns:
        column = X[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            continue
        try:
            converted[name] = pd.to_numeric(column)
        except (TypeError, ValueError):
            bad.append(name)
    if bad:
        raise InputError(f"{who}: {len(bad)} column(s) are not numeric: {_names(bad)} (drop identifier, "
                         f"'status' and text columns, or encode categories as numbers, before selection)")
    if converted:
        X = X.copy()  # never modify the caller's table
        for name, column in converted.items():
            X[name] = column
    return X


def validate(estimator, X, y=None, *, reset: bool = True, needs_y: bool = True, allow_nan: bool = False):
    """Validated float64 ``X`` (and class labels ``y``) for ``fit``; sets ``n_features_in_`` and names.

    ``needs_y``: the method ranks features against the outcome, so ``y`` must hold at least two
    classes. Unsupervised methods accept and ignore ``y``.
    """
    from sklearn.utils.validation import validate_data

    who = type(estimator).__name__
    if needs_y and y is None:
        raise InputError(f"{who} requires y to be passed, but the target y is None "
                         f"(it ranks features against the outcome classes)")
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pd = None
    if pd is not None and isinstance(X, pd.DataFrame):
        X = _numeric_frame(X, who)
    X = validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_all_finite=False,
                      ensure_min_samples=2)
    if not allow_nan:
        finite = np.isfinite(X)
        if not finite.all():
            bad = np.flatnonzero(~finite.all(axis=0))
            names = getattr(estimator, "feature_names_in_", None)
            labels = [names[i] for i in bad] if names is not None else [f"#{i}" for i in bad]
            raise InputError(f"{who}: NaN or infinity (inf) in {len(bad)} feature column(s): {_names(labels)} "
                             f"(impute or drop missing values before selection)")
    if not needs_y:
        return X, None
    return X, check_labels(y, X.shape[0], who)


def check_labels(y, n_samples: int, who: str) -> np.ndarray:
    """1D class labels with at least two classes, as many as samples."""
    from sklearn.utils.multiclass import type_of_target

    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise InputError(f"{who}: y should be a 1d array of outcome classes, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise InputError(f"{who}: y has {y.shape[0]} labels but X has {n_samples} samples")
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise InputError(f"{who}: y contains NaN or infinity (inf); every patient needs an outcome class")
    if y.dtype == object and any(v is None for v in y):
        raise InputError(f"{who}: y contains missing outcomes (None); every patient needs an outcome class")
    kind = type_of_target(y)
    if kind not in ("binary", "multiclass"):
        raise InputError(f"{who}: y must hold outcome classes (e.g. 0/1 for non-response/response); "
                         f"Unknown label type: {kind!r}")
    classes = np.unique(y)
    if classes.size < 2:
        raise InputError(f"{who}: y has only 1 class ({classes[0]!r}); ranking features needs at least "
                         f"two outcome classes")
    return y


def check_k(estimator, n_features: int) -> int:
    """The number of features to keep: ``k`` capped at ``n_features`` (with a warning)."""
    import warnings

    k = estimator.k
    who = type(estimator).__name__
    if isinstance(k, str) and k == "all":
        return n_features
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise InputError(f"{who}: k must be a whole number of features of at least 1, or 'all'; got {k!r}")
    if k > n_features:
        warnings.warn(f"{who}: k={k} is more than the {n_features} features available; keeping all of them",
                      UserWarning, stacklevel=3)
        return n_features
    return int(k)


def check_fraction(value, name: str, who: str, *, low: float = 0.0, high: float = 1.0,
                   inclusive: bool = True) -> float:
    from numbers import Real

    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise InputError(f"{who}: {name} must be a number in [{low}, {high}], got {value!r}")
    ok = low <= value <= high if inclusive else low < value < high
    if not ok:
        bounds = f"[{low}, {high}]" if inclusive else f"({low}, {high})"
        raise InputError(f"{who}: {name} must be in {bounds}, got {value!r}")
    return float(value)


def check_positive(value, name: str, who: str, *, integer: bool = False, allow_none: bool = False):
    from numbers import Real

    if value is None and allow_none:
        return None
    kind = Integral if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind) or not np.isfinite(value) or value <= 0:
        what = "a whole number" if integer else "a number"
        raise InputError(f"{who}: {name} must be {what} greater than 0, got {value!r}")
    return int(value) if integer else float(value)
