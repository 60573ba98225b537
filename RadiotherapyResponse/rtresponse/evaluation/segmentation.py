"""Segmentation metrics for predicted recurrence volumes (Kutnár et al.), and the cohort comparison.

Every metric takes numpy arrays, prediction first and reference second, as MedPy does; Dice,
recall and precision follow MedPy's ``dc``, ``recall`` and ``precision`` exactly; where the
denominator is 0 they are 0, which is what MedPy's ``ZeroDivisionError`` branch means (MedPy 0.5
divides numpy integers and returns NaN there instead). Points of origin follow the paper: each connected component
of the relapse, eroded with a 3 x 3 x 3 structuring element, gives its centre of volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

STRUCTURE = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity, and the paper's erosion element


def _pair(prediction, reference) -> tuple[np.ndarray, np.ndarray]:
    prediction = np.asarray(prediction).astype(bool)
    reference = np.asarray(reference).astype(bool)
    if prediction.shape != reference.shape:
        raise InputError(f"prediction shape {prediction.shape} differs from reference shape {reference.shape}")
    return prediction, reference


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def dice(prediction, reference) -> float:
    """2 |P ∩ R| / (|P| + |R|); 0 when both are empty (as MedPy's ``dc``)."""
    p, r = _pair(prediction, reference)
    return _ratio(2 * np.count_nonzero(p & r), np.count_nonzero(p) + np.count_nonzero(r))


def recall(prediction, reference) -> float:
    """|P ∩ R| / |R| (sensitivity); 0 when the reference is empty (as MedPy)."""
    p, r = _pair(prediction, reference)
    return _ratio(np.count_nonzero(p & r), np.count_nonzero(r))


def precision(prediction, reference) -> float:
    """|P ∩ R| / |P| (positive predictive value); 0 when the prediction is empty (as MedPy)."""
    p, r = _pair(prediction, reference)
    return _ratio(np.count_nonzero(p & r), np.count_nonzero(p))


def volume_cc(mask, spacing: Sequence[float]) -> float:
    """Volume of the mask in cm³; ``spacing`` in mm, in the array's axis order (any order: it is a product)."""
    spacing = np.asarray(spacing, dtype=float)
    if spacing.size != np.ndim(mask) or np.any(spacing <= 0):
        raise InputError(f"spacing must be {np.ndim(mask)} positive numbers, got {spacing.tolist()}")
    return np.count_nonzero(mask) * float(np.prod(spacing)) / 1000.0


def points_of_origin(relapse_mask) -> np.ndarray:
    """(n, ndim) voxel coordinates: per connected component, the centre of volume of its 3 x 3 x 3 erosion.

    A component too thin to survive erosion gives its own centre of volume.
    """
    from scipy import ndimage

    relapse = np.asarray(relapse_mask).astype(bool)
    structure = np.ones((3,) * relapse.ndim, dtype=bool)
    labels, count = ndimage.label(relapse, structure=structure)
    origins = []
    for label in range(1, count + 1):
        component = labels == label
        eroded = ndimage.binary_erosion(component, structure=structure)
        origins.append(np.argwhere(eroded if eroded.any() else component).mean(axis=0))
    return np.array(origins).reshape(count, relapse.ndim)


def origins_included(prediction, relapse_mask) -> tuple[int, int]:
    """(number of the relapse's points of origin inside the prediction, number of points of origin)."""
    p, r = _pair(prediction, relapse_mask)
    origins = points_of_origin(r)
    voxels = np.clip(np.round(origins).astype(int), 0, np.array(p.shape) - 1)
    inside = p[tuple(voxels.T)] if len(voxels) else np.array([], dtype=bool)
    return int(np.count_nonzero(inside)), len(origins)


def case_metrics(prediction, relapse_mask, spacing: Sequence[float]) -> dict:
    """Every metric of one patient as a dict (a row of the cohort table)."""
    included, total = origins_included(prediction, relapse_mask)
    return {"dice": dice(prediction, relapse_mask), "recall": recall(prediction, relapse_mask),
            "precision": precision(prediction, relapse_mask), "volume_cc": volume_cc(prediction, spacing),
            "origins_included": included, "origins_total": total}


def summarize(cases: "pd.DataFrame") -> "pd.DataFrame":
    """Per method (column ``method``): patients, median and IQR of Dice, recall, precision and volume, origins included."""
    import pandas as pd

    rows = []
    for method, group in cases.groupby("method", sort=False):
        row = {"method": method, "patients": len(group)}
        for column in ("dice", "recall", "precision", "volume_cc"):
            q1, median, q3 = np.percentile(group[column].to_numpy(float), [25, 50, 75])
            row.update({f"{column}_median": median, f"{column}_q1": q1, f"{column}_q3": q3})
        row["origins_included"] = int(group["origins_included"].sum())
        row["origins_total"] = int(group["origins_total"].sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


@dataclass(frozen=True)
class MethodComparison:
    """Paired comparison of two methods on the same patients."""

    method_a: str
    method_b: str
    dice_t: float
    dice_p: float  # paired t-test on Dice (the paper's test)
    volume_p: float  # Wilcoxon signed-rank test on predicted volumes (volumes are skewed)
    origins_odds_ratio: float
    origins_p: float  # Fisher's exact test on origins included vs missed


def compare(cases: "pd.DataFrame", method_a: str, method_b: str) -> MethodComparison:
    """Paired t-test on Dice, Wilcoxon signed-rank on volumes, Fisher's exact test on origin counts."""
    from scipy import stats

    a = cases[cases["method"] == method_a].set_index("patient_id")
    b = cases[cases["method"] == method_b].set_index("patient_id")
    common = a.index.intersection(b.index)
    if len(common) < 2:
        raise InputError(f"methods '{method_a}' and '{method_b}' share {len(common)} patient(s); need at least 2")
    a, b = a.loc[common], b.loc[common]
    t = stats.ttest_rel(a["dice"], b["dice"])
    volume_difference = (a["volume_cc"] - b["volume_cc"]).to_numpy(float)
    volume_p = float(stats.wilcoxon(volume_difference).pvalue) if np.any(volume_difference) else 1.0
    table = [[int(a["origins_included"].sum()), int((a["origins_total"] - a["origins_included"]).sum())],
             [int(b["origins_included"].sum()), int((b["origins_total"] - b["origins_included"]).sum())]]
    fisher = stats.fisher_exact(table)
    return MethodComparison(method_a, method_b, float(t.statistic), float(t.pvalue), volume_p,
                            float(fisher.statistic), float(fisher.pvalue))
