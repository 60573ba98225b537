"""Threshold metrics of a binary classifier, and an explicit mapping of outcome labels to 0/1."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from .roc import _label, _outcome, _positions, _scores, auc

__all__ = ["binary_outcome", "classification_metrics"]


def _is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pandas.NA-like values
    except (TypeError, ValueError):
        return True


def binary_outcome(values, positive) -> np.ndarray:
    """Map outcome labels to 0/1 ints, with ``positive`` naming the label that becomes 1.

    ``values`` is any 1-D sequence (list, numpy array, pandas Series) with at most two distinct
    labels, e.g. ``binary_outcome(df["outcome"], positive="Poor")``. Labels are compared with ``==``
    (so ``1``, ``1.0`` and ``True`` are the same label, but ``"1"`` is not ``1``).

    Raises :class:`~rtresponse.errors.InputError` when a value is missing, when there are more than
    two labels, or when ``positive`` is not among them. A single label equal to ``positive`` is
    accepted here (all ones); the statistics that need both classes reject it themselves.
    """
    column = _label(values, "outcome")
    array = np.asarray(values, dtype=object)
    if array.ndim != 1:
        raise InputError(f"outcome must be one-dimensional, got shape {array.shape}", column=column)
    if array.size == 0:
        raise InputError("outcome is empty", column=column)
    items = array.tolist()
    missing = np.array([_is_missing(v) for v in items])
    if missing.any():
        raise InputError(f"{int(missing.sum())} outcome value(s) are missing (positions {_positions(missing)})",
                         column=column)
    labels = list(dict.fromkeys(items))
    if len(labels) > 2:
        shown = ", ".join(repr(v) for v in labels[:6]) + (", ..." if len(labels) > 6 else "")
        raise InputError(f"outcome must have at most 2 labels, found {len(labels)}: {shown}", column=column)
    if not any(label == positive for label in labels):
        raise InputError(f"positive label {positive!r} does not occur in the outcome "
                         f"(labels: {', '.join(repr(v) for v in labels)})", column=column)
    return np.array([1 if v == positive else 0 for v in items], dtype=int)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def classification_metrics(y, score, cutoff) -> dict:
    """Discrimination and threshold metrics of ``score`` for outcome ``y`` (0/1 or bool, positive = 1).

    A case is predicted positive when ``score >= cutoff``. Returns a dict of plain Python numbers:

    * ``auc`` — threshold-free, from the scores (never from the hard labels);
    * ``sensitivity`` (TP/P), ``specificity`` (TN/N), ``balanced_accuracy`` (their mean),
      ``ppv`` (TP/(TP+FP)), ``npv`` (TN/(TN+FN)), ``f1`` (2TP/(2TP+FP+FN)), ``mcc`` (Matthews);
      a ratio with a zero denominator (e.g. ``ppv`` when nobody is predicted positive, ``mcc``
      when one predicted class is empty) is NaN, not 0;
    * ``brier`` — mean of (score - y)^2, computed only when *every* score lies in [0, 1] (then the
      scores are taken to be predicted probabilities); for other scores (decision values, logits,
      raw markers) it is NaN, since a Brier score of non-probabilities means nothing;
    * ``n``, ``n_positive``, ``cutoff``, and the confusion counts ``tp``, ``fp``, ``tn``, ``fn``.
    """
    positive = _outcome(y)
    values = _scores(score, positive.size, "score")
    try:
        cutoff = float(cutoff)
    except (TypeError, ValueError):
        raise InputError(f"cutoff must be a number, got {cutoff!r}") from None
    if not math.isfinite(cutoff):
        raise InputError(f"cutoff must be finite, got {cutoff}")
    predicted = values >= cutoff
    tp = int(np.sum(predicted & positive))
    fp = int(np.sum(predicted & ~positive))
    tn = int(np.sum(~predicted & ~positive))
    fn = int(np.sum(~predicted & positive))
    n_pos, n_neg = tp + fn, tn + fp
    sensitivity = tp / n_pos
    specificity = tn / n_neg
    mcc_denominator = math.sqrt(float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn))
    is_probability = bool(np.all((values >= 0.0) & (values <= 1.0)))
    return {
        "auc": auc(positive, values),
        "balanced_accuracy": (sensitivity + specificity) / 2.0,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "mcc": _ratio(float(tp) * tn - float(fp) * fn, mcc_denominator),
        "f1": _ratio(2.0 * tp, 2.0 * tp + fp + fn),
        "brier": float(np.mean((values - positive) ** 2)) if is_probability else math.nan,
        "n": int(positive.size),
        "n_positive": n_pos,
        "cutoff": cutoff,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }
