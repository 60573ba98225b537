"""How well a residual-tumour classifier does, per image (slice) and per patient, as the paper reported it.

AUC with its DeLong 95 % confidence interval (from the probabilities, never the hard labels),
accuracy, sensitivity, specificity and the confusion matrix at a threshold (0.5). The image-level
interval treats slices as independent, which they are not (a patient's slices share one label and
one tumour): it is narrower than it should be; the patient-level one is the honest one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

UNITS = ("image", "patient")
COLUMNS = ("n", "n_positive", "auc", "auc_low", "auc_high", "accuracy", "sensitivity", "specificity",
           "tp", "fp", "tn", "fn", "threshold")


def unit_metrics(labels, probabilities, threshold: float = 0.5) -> dict:
    """Metrics of one unit; AUC and its interval are NaN where a class is missing (or too small for DeLong)."""
    from ..evaluation.roc import auc, delong_auc_ci

    y = np.asarray(labels, dtype=int)
    p = np.asarray(probabilities, dtype=float)
    if y.size == 0 or y.size != p.size:
        raise InputError(f"need one probability per label (got {p.size} probabilities, {y.size} labels)")
    predicted = p >= threshold
    tp, fp = int(np.sum(predicted & (y == 1))), int(np.sum(predicted & (y == 0)))
    tn, fn = int(np.sum(~predicted & (y == 0))), int(np.sum(~predicted & (y == 1)))
    positives, negatives = tp + fn, tn + fp
    value = low = high = math.nan
    if positives >= 2 and negatives >= 2:
        value, low, high = delong_auc_ci(y, p)
    elif positives and negatives:
        value = auc(y, p)
    return {"n": int(y.size), "n_positive": positives, "auc": value, "auc_low": low, "auc_high": high,
            "accuracy": (tp + tn) / y.size, "sensitivity": tp / positives if positives else math.nan,
            "specificity": tn / negatives if negatives else math.nan, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "threshold": float(threshold)}


def evaluate_units(slices: "pd.DataFrame", threshold: float = 0.5) -> "pd.DataFrame":
    """One row per unit (image, patient) from a slice table with ``patient_id``, ``probability``, ``label``.

    A patient's probability is the mean of its slices'; its label must be the same on every slice.
    """
    import pandas as pd

    missing = {"patient_id", "probability", "label"} - set(slices.columns)
    if missing:
        raise InputError(f"slice table lacks column(s) {', '.join(sorted(missing))}")
    grouped = slices.groupby("patient_id", sort=False)
    mixed = grouped["label"].nunique()
    if (mixed > 1).any():
        raise InputError(f"patient {mixed[mixed > 1].index[0]} has slices with different labels")
    patients = grouped.agg(probability=("probability", "mean"), label=("label", "first"))
    rows = {"image": unit_metrics(slices["label"], slices["probability"], threshold),
            "patient": unit_metrics(patients["label"], patients["probability"], threshold)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(COLUMNS)).rename_axis("unit")
