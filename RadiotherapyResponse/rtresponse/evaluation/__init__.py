"""Statistics for judging and comparing response models: ROC analysis (AUC, ROC points, Youden
cut-off, DeLong confidence interval and paired test), reclassification (NRI, IDI) and threshold
metrics, each taking a 0/1 outcome (map labels with ``binary_outcome``) and numpy/pandas scores
and checked against pROC and PredictABEL reference values; and the 0.632+ bootstrap AUC with
forward selection (``bootstrap``).
"""

from .metrics import binary_outcome, classification_metrics
from .reclassification import IDIResult, NRIResult, idi, nri, risk_categories
from .roc import auc, delong_auc_ci, delong_test, roc_curve_points, youden_cutoff

from .bootstrap import BootstrapResult, bootstrap_632plus_auc, bootstrap_indices, forward_selection
from .resampled_ttest import corrected_resampled_ttest
from .shapley import mean_absolute_shapley, shapley_values

__all__ = [
    "auc", "roc_curve_points", "youden_cutoff", "delong_auc_ci", "delong_test",
    "nri", "idi", "NRIResult", "IDIResult", "risk_categories",
    "classification_metrics", "binary_outcome",
    "bootstrap_632plus_auc", "bootstrap_indices", "forward_selection", "BootstrapResult",
    "corrected_resampled_ttest", "shapley_values", "mean_absolute_shapley",
]
