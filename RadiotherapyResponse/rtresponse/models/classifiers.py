"""The classifiers of the two papers as scikit-learn estimators, by short name.

| name | estimator | hyper-parameters |
| --- | --- | --- |
| ``rf``  | random forest | 100 trees, sqrt(p) features per split, balanced class weights |
| ``svm`` | support vector machine | RBF kernel, C = 1, gamma = "scale", balanced weights; Platt (sigmoid) probabilities fitted by stratified 3-fold CV (2-fold when a class has only 2 training rows) |
| ``knn`` | k-nearest neighbours | k = 5, Euclidean, distance-weighted votes |
| ``nb``  | Gaussian naive Bayes | class priors from the training data |
| ``lda`` | linear discriminant analysis | least-squares solver with Ledoit-Wolf shrinkage (p may exceed n) |
| ``lr``  | logistic regression | L2, C = 1, balanced class weights |

Features are standardised (mean 0, SD 1, fitted on the training data only) in front of every
classifier but the forest; scores for AUCs come from ``predict_proba``. The head-and-neck paper's
supplementary hyper-parameters (MATLAB defaults) are not in the paper text we have; these are the
scikit-learn counterparts. :func:`svm_grid_search` is the cervical paper's tuned SVM.
"""

from __future__ import annotations

from ..errors import InputError

CLASSIFIER_NAMES = ("rf", "svm", "knn", "nb", "lda", "lr")
PAPER_CLASSIFIERS = ("rf", "svm", "knn", "nb", "lda")  # Tanaka et al.'s five


def make_classifier(name: str, random_state: int | None = 0):
    """A fresh, unfitted classifier (a Pipeline with scaling where the method needs it)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if name == "rf":
        return RandomForestClassifier(n_estimators=100, max_features="sqrt", class_weight="balanced",
                                      random_state=random_state, n_jobs=1)
    factories = {
        # SVC(probability=True) is deprecated (scikit-learn 1.9): the same Platt scaling, explicitly
        "svm": lambda: CalibratedClassifierCV(SVC(kernel="rbf", C=1.0, gamma="scale", class_weight="balanced",
                                                  random_state=random_state), method="sigmoid",
                                              cv=PlattFolds(3), ensemble=False),
        "knn": lambda: KNeighborsClassifier(n_neighbors=5, weights="distance"),
        "nb": GaussianNB,
        "lda": lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"),
        "lr": lambda: LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000),
    }
    if name not in factories:
        raise InputError(f"unknown classifier '{name}' (choose from {', '.join(CLASSIFIER_NAMES)})")
    return make_pipeline(StandardScaler(), factories[name]())


class PlattFolds:
    """Stratified folds (no shuffling) for the SVM's Platt scaling: ``max_splits``, or as many as the
    smallest class has rows when that is fewer.

    A bootstrap sample of a small cohort can hold only two rows of a class, too few for 3-fold
    cross-validation (scikit-learn refuses it); the folds then shrink to two instead of the whole
    evaluation failing. With enough rows these are ``StratifiedKFold(max_splits)``.
    """

    def __init__(self, max_splits: int = 3):
        self.max_splits = max_splits

    def _n_splits(self, y) -> int:
        import numpy as np

        smallest = int(np.bincount(np.unique(np.asarray(y), return_inverse=True)[1]).min())
        if smallest < 2:
            raise ValueError("the SVM's Platt scaling needs at least 2 training rows of each class, "
                             f"got {smallest}")
        return min(self.max_splits, smallest)

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.max_splits if y is None else self._n_splits(y)

    def split(self, X, y, groups=None):
        from sklearn.model_selection import StratifiedKFold

        return StratifiedKFold(self._n_splits(y)).split(X, y)

    def __repr__(self):
        return f"PlattFolds(max_splits={self.max_splits})"


def svm_grid_search(random_state: int | None = 0, n_jobs: int | None = None):
    """SVM tuned by stratified 5-fold CV on AUC over C, gamma and the kernel (Jeong et al.)."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    # tuned on AUC, which needs only the decision function; calibrate the chosen model if probabilities matter
    model = Pipeline([("scale", StandardScaler()),
                      ("svm", SVC(class_weight="balanced", random_state=random_state))])
    grid = {"svm__C": [0.01, 0.1, 1, 10, 100], "svm__gamma": ["scale", 0.001, 0.01, 0.1],
            "svm__kernel": ["rbf", "linear"]}
    return GridSearchCV(model, grid, scoring="roc_auc", n_jobs=n_jobs,
                        cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=random_state))
