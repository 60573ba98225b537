"""Feature robustness to delineation: ICC(A,1) per feature and a filter keeping the robust ones.

Paper 000 (head & neck deep radiomics) keeps features whose intraclass correlation across repeated
delineations exceeds 0.7 (McGraw & Wong case 3A). Repeated delineations come from several observers
or from perturbed masks (:func:`rtresponse.features.perturbation.perturbed_masks`, via
``extract_cohort(..., perturbations=n)``).

ICC(A,1)
--------
Two-way model, absolute agreement, single measurement: McGraw & Wong (1996) cases 2A and 3A (the
same formula), Shrout & Fleiss (1979) ICC(2,1). With ``n`` patients (targets), ``k`` repeats
(raters) and the two-way ANOVA mean squares for rows ``MSR``, columns ``MSC`` and error ``MSE``::

    ICC(A,1) = (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)

A feature that is constant over every patient and repeat has no defined ICC (0/0): its ICC is NaN
and the filter drops it. A feature constant within each patient but different between patients has
ICC 1.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from ._checks import _names, check_fraction, validate

PATIENT = "patient_id"
REPEAT = "perturbation"
STATUS = "status"
RATERS = ("label", "order")


def icc(data, *, raters: str = "label"):
    """ICC(A,1) of every feature, vectorised across features.

    Parameters
    ----------
    data:
        - a long table (DataFrame) indexed by (``patient_id``, ``perturbation``), or with those two
          columns, and one numeric column per feature; a ``status`` column, if present, keeps only
          the rows whose status is ``"ok"`` and is otherwise ignored (the layout of
          ``extract_cohort(..., perturbations=n)``). Returns a Series of ICCs indexed by feature;
        - a 3D array ``(n_patients, n_repeats, n_features)``: returns an array ``(n_features,)``;
        - a 2D array ``(n_patients, n_repeats)`` (one feature): returns a float.
    raters:
        Long tables only: how rows of different patients are matched as the same "rater".
        ``"label"`` (default): by the ``perturbation`` label (observer names, "original",
        "erode-1", ...). ``"order"``: by position within each patient in table order (the first row
        of each patient is repeat 1, ...), for perturbations whose labels differ between patients.
        Patients lacking a repeat the others have are left out with a warning.

    Features with a missing value (NaN) in any kept row get a NaN ICC.
    """
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        values, features, _ = repeats_array(data, raters=raters)
        return pd.Series(_icc_a1(values), index=pd.Index(features, name="feature"), name="ICC(A,1)")
    try:
        values = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("icc: data must be a long table (DataFrame) or a numeric array "
                         "(patients, repeats[, features])") from None
    if values.ndim == 2:
        return float(_icc_a1(_check_shape(values[:, :, None]))[0])
    if values.ndim == 3:
        return _icc_a1(_check_shape(values))
    raise InputError(f"icc: an array must be 2D (patients, repeats) or 3D (patients, repeats, features), "
                     f"got {values.ndim}D with shape {values.shape}")


def _check_shape(values: np.ndarray) -> np.ndarray:
    n, k = values.shape[:2]
    if n < 2:
        raise InputError(f"icc: needs at least 2 patients (targets), got {n}")
    if k < 2:
        raise InputError(f"icc: needs at least 2 repeated measurements (raters) per patient, got {k}")
    return values


def _icc_a1(values: np.ndarray) -> np.ndarray:
    """ICC(A,1) from a complete ``(n, k, p)`` array; NaN where undefined or values are missing."""
    n, k, _ = values.shape
    centred = values - values.mean(axis=(0, 1))  # per feature; keeps the sums of squares accurate
    rows = centred.mean(axis=1)                  # (n, p) patient means
    cols = centred.mean(axis=0)                  # (k, p) repeat means
    ss_total = (centred ** 2).sum(axis=(0, 1))
    ss_rows = k * (rows ** 2).sum(axis=0)
    ss_cols = n * (cols ** 2).sum(axis=0)
    ss_error = np.maximum(ss_total - ss_rows - ss_cols, 0.0)
    ms_rows = ss_rows / (n - 1)
    ms_cols = ss_cols / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    numerator = ms_rows - ms_error
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    # The denominator is a sum of non-negative mean squares: zero only for a feature constant everywhere.
    scale = np.maximum(ss_total, np.finfo(float).tiny)
    undefined = ~(denominator > 1e-12 * scale / (n * k))
    with np.errstate(invalid="ignore", divide="ignore"):
        result = numerator / denominator
    result[undefined] = np.nan
    return result


def repeats_array(table, *, raters: str = "label"):
    """``(values (n, k, p), feature names, patient ids)`` of the complete patients of a long table."""
    import pandas as pd

    if raters not in RATERS:
        raise InputError(f"raters must be one of {', '.join(RATERS)}; got {raters!r}")
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"the repeats table must be a pandas DataFrame, got {type(table).__name__}")
    frame = table
    if isinstance(frame.index, pd.MultiIndex) and frame.index.nlevels >= 2:
        names = list(frame.index.names)
        patient_level = names.index(PATIENT) if PATIENT in names else 0
        repeat_level = names.index(REPEAT) if REPEAT in names else 1
        patients = frame.index.get_level_values(patient_level)
        labels = frame.index.get_level_values(repeat_level)
    elif PATIENT in frame.columns and REPEAT in frame.columns:
        patients, labels = frame[PATIENT], frame[REPEAT]
        frame = frame.drop(columns=[PATIENT, REPEAT])
    else:
        raise InputError("the repeats table must be indexed by (patient_id, perturbation) — one row per "
                         "patient and repeated delineation, as extract_cohort(..., perturbations=n) returns — "
                         "or have patient_id and perturbation columns")
    patients = np.asarray(patients)
    labels = np.asarray(labels)
    if STATUS in frame.columns:
        ok = (frame[STATUS].astype(str) == "ok").to_numpy()
        frame, patients, labels = frame.loc[ok].drop(columns=STATUS), patients[ok], labels[ok]
    bad = [c for c in frame.columns
           if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]
    if bad:
        raise InputError(f"the repeats table has {len(bad)} non-numeric feature column(s): {_names(bad)}")
    if frame.shape[1] == 0:
        raise InputError("the repeats table has no feature columns")
    patient_codes, patient_ids = pd.factorize(pd.Series(patients), sort=False)
    if raters == "label":
        repeat_codes, _ = pd.factorize(pd.Series(labels), sort=False)
        pairs = pd.Series(patient_codes) * (repeat_codes.max() + 1) + pd.Series(repeat_codes)
        duplicated = pairs.duplicated(keep=False).to_numpy()
        if duplicated.any():
            first = int(np.flatnonzero(duplicated)[0])
            raise InputError(f"repeat {labels[first]!r} appears more than once (use raters='order' if rows "
                             f"should be matched by position)", patient=str(patients[first]))
    else:
        repeat_codes = pd.Series(patient_codes).groupby(patient_codes).cumcount().to_numpy()
    n_patients, n_repeats = len(patient_ids), int(repeat_codes.max()) + 1 if len(repeat_codes) else 0
    present = np.zeros((n_patients, n_repeats), dtype=bool)
    present[patient_codes, repeat_codes] = True
    values = np.full((n_patients, n_repeats, frame.shape[1]), np.nan)
    values[patient_codes, repeat_codes] = frame.to_numpy(dtype=np.float64)
    complete = present.all(axis=1)
    if not complete.all():
        missing = [str(p) for p in np.asarray(patient_ids)[~complete]]
        warnings.warn(f"ICC: {len(missing)} patient(s) lack some of the {n_repeats} repeats and are left out: "
                      f"{_names(missing)}", UserWarning, stacklevel=3)
    values = values[complete]
    if values.shape[0] < 2:
        hint = " (if repeat labels differ between patients, use raters='order')" if raters == "label" else ""
        raise InputError(f"the repeats table has {values.shape[0]} patient(s) with every repeat; the ICC needs "
                         f"at least 2{hint}")
    if n_repeats < 2:
        raise InputError("the repeats table has 1 row per patient; the ICC needs at least 2 repeated "
                         "delineations per patient")
    return values, list(frame.columns), [p for p, c in zip(np.asarray(patient_ids), complete) if c]


class ICCFilter(SelectorMixin, BaseEstimator):
    """Keeps the features robust to re-delineation: ICC(A,1) > ``threshold`` (default 0.7, paper 000).

    How repeated delineations reach the filter
    ------------------------------------------
    The model is trained on the plain feature table (one row per patient), but robustness needs the
    *long* table of repeated delineations: indexed by (``patient_id``, ``perturbation``), one numeric
    column per feature, and optionally a ``status`` column (only ``"ok"`` rows are used) — what
    ``extract_cohort(..., perturbations=n)`` returns. It may describe the same patients (perturbed
    masks of the training cohort) or a separate test-retest / multi-observer cohort (paper 000 used
    RIDER lung CTs with nine delineations each). Give it either way:

    - at construction: ``ICCFilter(repeats=long_table, threshold=0.7)`` — the table is a parameter
      of the estimator, so ``clone`` and cross-validation carry it into every fold; or
    - at fit time: ``filter.fit(X, y, repeats=long_table)``, or inside a pipeline
      ``pipeline.fit(X, y, icc__repeats=long_table)`` (a fit parameter routed to the step named
      ``icc``). A table given to ``fit`` wins over the constructor's. For cross-validation prefer
      the constructor: ``cross_validate(..., params=...)`` splits fit parameters that happen to
      have one row per sample by fold.

    The ICC is computed from the whole repeats table in every ``fit``; it does not use the outcome,
    so there is no label leakage across cross-validation folds.

    Lining up feature names
    -----------------------
    - ``X`` a DataFrame: its columns are matched **by name** to the feature columns of the repeats
      table (order does not matter). Columns of ``X`` that the repeats table lacks (clinical factors,
      say) raise InputError by default; ``unmatched="keep"`` keeps them (nothing says they are
      unstable), ``unmatched="drop"`` drops them.
    - ``X`` a numpy array: its columns are matched **by position** to the repeats table's feature
      columns (in table order, ``status`` excluded), and the counts must agree.

    Parameters
    ----------
    repeats:
        The long table (see above), or None to pass it to ``fit``.
    threshold:
        Keep features with ICC strictly greater than this (NaN ICCs are never kept).
    raters:
        ``"label"`` or ``"order"``: how repeats of different patients are matched (see :func:`icc`).
    unmatched:
        ``"error"``, ``"keep"`` or ``"drop"``: what to do with columns of ``X`` the repeats table lacks.

    Attributes
    ----------
    icc_:
        ICC(A,1) per column of ``X`` (NaN for unmatched columns).
    support_:
        Boolean mask of the kept columns.
    n_patients_, n_repeats_:
        Complete patients and repeats per patient the ICC was computed from.
    """

    def __init__(self, repeats=None, threshold: float = 0.7, raters: str = "label", unmatched: str = "error"):
        self.repeats = repeats
        self.threshold = threshold
        self.raters = raters
        self.unmatched = unmatched

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.input_tags.allow_nan = True  # only columns are chosen; values in X are not used
        return tags

    def fit(self, X, y=None, repeats=None):
        """Compute the ICCs from ``repeats`` (or the constructor's table) and choose the columns of ``X``."""
        who = type(self).__name__
        threshold = check_fraction(self.threshold, "threshold", who, low=-1.0, high=1.0)
        if self.unmatched not in ("error", "keep", "drop"):
            raise InputError(f"{who}: unmatched must be 'error', 'keep' or 'drop'; got {self.unmatched!r}")
        table = repeats if repeats is not None else self.repeats
        if table is None:
            raise InputError(f"{who} needs the long table of repeated delineations: ICCFilter(repeats=table) "
                             f"or fit(X, y, repeats=table) (in a pipeline: fit(X, y, <step>__repeats=table))")
        values, features, _ = repeats_array(table, raters=self.raters)
        scores = _icc_a1(values)
        X, _ = validate(self, X, needs_y=False, allow_nan=True)
        names = getattr(self, "feature_names_in_", None)
        matched = np.ones(X.shape[1], dtype=bool)
        if names is not None:
            lookup = dict(zip(map(str, features), scores))
            missing = [name for name in names if str(name) not in lookup]
            if missing and self.unmatched == "error":
                raise InputError(f"{who}: {len(missing)} column(s) of X are not in the repeats table: "
                                 f"{_names(missing)} (use unmatched='keep' or 'drop' for clinical factors)")
            matched = np.array([str(name) in lookup for name in names])
            self.icc_ = np.array([lookup.get(str(name), np.nan) for name in names])
        else:
            if X.shape[1] != len(features):
                raise InputError(f"{who}: X has {X.shape[1]} columns but the repeats table has {len(features)} "
                                 f"feature columns; pass DataFrames to match features by name")
            self.icc_ = scores
        with np.errstate(invalid="ignore"):
            keep = self.icc_ > threshold
        if self.unmatched == "keep":
            keep |= ~matched
        self.support_ = keep
        self.n_patients_, self.n_repeats_ = values.shape[0], values.shape[1]
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


def read_repeats(path) -> "object":
    """A perturbation feature table (``rtresponse features ... --perturbations N``: patient_id, perturbation, the
    features, status) from a CSV; InputError naming the file when it is not one."""
    import os

    from ..inputs import read_table

    table = read_table(path, "perturbation table")
    missing = [c for c in (PATIENT, REPEAT) if c not in table.columns]
    if missing:
        raise InputError(f"not a perturbation table: no {' or '.join(missing)} column (`rtresponse features ... "
                         "--perturbations N` writes one: a row per patient and perturbed mask)", path=os.fspath(path))
    return table


def robust_feature_sets(sets, repeats, threshold: float = 0.7, skip=(), label: str = "the perturbation table"):
    """Each feature set with only its features robust to re-delineation (:class:`ICCFilter`, ICC > ``threshold``).

    ``sets``: {name: DataFrame (patient rows, feature columns)}; ``repeats``: the long perturbation table. A set's
    columns the table lacks are kept untested (``unmatched="keep"``); the sets in ``skip`` (clinical factors) and
    those sharing no column with the table are left as they are. Returns (the sets, {set: {"kept", "dropped",
    "untested"}} of the filtered ones, a DataFrame feature_set, feature, icc, kept). InputError when no set shares a
    feature with the table, or a filtered set keeps no feature at all.
    """
    import pandas as pd

    _, features, _ = repeats_array(repeats)
    known = set(map(str, features))
    result, counts, rows = {}, {}, []
    for name, frame in sets.items():
        matched = [c for c in frame.columns if str(c) in known]
        if name in skip or not matched:
            result[name] = frame
            continue
        chosen = ICCFilter(repeats=repeats, threshold=threshold, unmatched="keep").fit(frame)
        kept = [c for c, keep in zip(frame.columns, chosen.support_) if keep]
        counts[name] = {"kept": len(kept) - (frame.shape[1] - len(matched)), "dropped": frame.shape[1] - len(kept),
                        "untested": frame.shape[1] - len(matched)}
        rows += [(name, str(c), float(v), bool(k)) for c, v, k in zip(frame.columns, chosen.icc_, chosen.support_)
                 if str(c) in known]
        if not kept:
            best = np.nanmax(chosen.icc_) if np.isfinite(chosen.icc_).any() else float("nan")
            raise InputError(f"no feature of '{name}' has an ICC above {threshold:g} in {label} (the highest is "
                             f"{best:.3f}); lower the threshold or check the table")
        result[name] = frame[kept]
    if not counts:
        raise InputError(f"none of the feature sets has a feature of {label} ({len(known)} feature(s), e.g. "
                         f"{_names(sorted(known))}): was it extracted with the same settings?")
    return result, counts, pd.DataFrame(rows, columns=["feature_set", "feature", "icc", "kept"])
