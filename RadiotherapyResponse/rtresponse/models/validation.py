"""Train/test validation (Jeong et al.): stratified split, training-set Youden cut-off, test-set metrics.

The selector is fitted on the training patients only; the cut-off that maximises Youden's index
on the training scores is applied unchanged to the test patients. Test metrics: AUC with DeLong
95 % CI, balanced accuracy, sensitivity, specificity, PPV, NPV, MCC, F1, Brier score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError


@dataclass
class SplitResult:
    metrics: dict                      # test-set metrics (auc, auc_low, auc_high, ...)
    model: object                      # fitted on the training patients
    features: list                     # columns the model uses, in order
    cutoff: float                      # Youden cut-off from the training scores
    train_ids: list = field(default_factory=list)
    test_ids: list = field(default_factory=list)
    test_scores: np.ndarray | None = None
    test_y: np.ndarray | None = None


def stratified_split(X, y, test_size: float = 1 / 3, random_state=0):
    """Train and test row positions, stratified by outcome."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise InputError(f"test_size must be between 0 and 1, got {test_size}")
    positions = np.arange(len(y))
    try:
        return train_test_split(positions, test_size=test_size, stratify=y, random_state=random_state)
    except ValueError as error:
        raise InputError(f"cannot split these patients ({error})") from None


def split_validation(X, y, selector: str = "none", classifier: str = "svm", k: int = 10, test_size: float = 1 / 3,
                     random_state=0, split=None, tuned_svm: bool = False, features: list | None = None) -> SplitResult:
    """Fit selector + classifier on a stratified training split; judge it on the test split.

    ``split`` = (train positions, test positions) reuses a split across models so their test
    scores can be compared patient by patient (DeLong, NRI, IDI). ``features``: the selector's
    columns, already ranked on these training patients (several classifiers share one ranking).
    """
    from ..evaluation import classification_metrics, delong_auc_ci, youden_cutoff
    from ..evaluation.bootstrap import _binary, decision_scores
    from ..inputs import model_matrix

    model_matrix(X)  # NaN is imputed inside each fit; infinity is an error
    from .classifiers import make_classifier, svm_grid_search
    from .grid import _with_imputer, ranked_features

    y = _binary(y)
    train, test = split if split is not None else stratified_split(X, y, test_size, random_state)
    X_train, y_train = X.iloc[train], y[train]
    if features is None:
        features = (list(X.columns) if selector == "none"
                    else ranked_features(selector, X_train, y_train, k, random_state))
    estimator = svm_grid_search(random_state) if tuned_svm else make_classifier(classifier, random_state)
    model = _with_imputer(estimator).fit(X_train[features], y_train)
    cutoff = youden_cutoff(y_train, decision_scores(model, X_train[features]))
    scores = decision_scores(model, X.iloc[test][features])
    metrics = classification_metrics(y[test], scores, cutoff)
    auc, low, high = delong_auc_ci(y[test], scores)
    metrics.update({"auc": auc, "auc_low": low, "auc_high": high})
    return SplitResult(metrics=metrics, model=model, features=features, cutoff=float(cutoff),
                       train_ids=list(X.index[train]), test_ids=list(X.index[test]), test_scores=scores,
                       test_y=y[test])


def compare_on_test(a: SplitResult, b: SplitResult, cutoffs=None) -> dict:
    """DeLong, NRI and IDI of model b against model a on the same test patients."""
    from ..evaluation import delong_test, idi, nri

    if a.test_ids != b.test_ids:
        raise InputError("the two models were tested on different patients; pass the same split")
    z, p = delong_test(a.test_y, b.test_scores, a.test_scores)
    continuous = nri(a.test_y, _probability(a.test_scores), _probability(b.test_scores), cutoffs=cutoffs)
    discrimination = idi(a.test_y, _probability(a.test_scores), _probability(b.test_scores))
    return {"delong_z": z, "delong_p": p, "nri": continuous.estimate, "nri_p": continuous.p,
            "idi": discrimination.estimate, "idi_p": discrimination.p}


def _probability(scores: np.ndarray) -> np.ndarray:
    if np.all((scores >= 0) & (scores <= 1)):
        return scores
    raise InputError("NRI and IDI need probabilities; use a classifier with predict_proba")
