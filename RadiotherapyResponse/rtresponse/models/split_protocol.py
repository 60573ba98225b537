"""The split protocol as Jeong et al. ran it: models chosen by cross-validation on the training patients only.

One stratified train/test split is shared by every model. Each feature set x selector x classifier is
judged by stratified k-fold cross-validation on the training patients (the selector is refitted inside
every fold, so the estimate covers the selection step); the model with the best mean CV AUC is chosen
(per feature set, and overall), refitted on all training patients, and evaluated once on the test
patients. The test labels never influence a choice. Every model's test metrics are still reported,
for completeness, but only the chosen ones are the study's results: the ROC figure shows them and the
DeLong / NRI / IDI comparisons are between them (the best of each feature set, declared by the
protocol before the test set is looked at: e.g. the best handcrafted vs the best deep vs the combined).

Choosing the best *test* AUC among many models (what an earlier version did) reports the maximum of
noisy estimates: on data without signal it centres well above 0.5 (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError

DEFAULT_FOLDS = 5  # Jeong et al.: five-fold cross-validation on the training set


@dataclass
class SplitStudy:
    results: "object"                 # DataFrame: one row per feature set x selector x classifier
    chosen: dict                      # feature set -> SplitResult of the set's CV-chosen model
    best_set: str                     # the feature set whose chosen model has the best CV AUC
    comparisons: "object"             # DataFrame: DeLong, NRI, IDI between the chosen models
    train_ids: list = field(default_factory=list)
    test_ids: list = field(default_factory=list)
    execution: dict = field(default_factory=dict)  # where the models were fitted (Execution.describe())


def cv_folds(y_train: np.ndarray, folds: int, random_state) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold positions within the training patients."""
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise InputError(f"cross-validation needs at least 2 folds, got {folds}")
    smallest = int(np.bincount(y_train.astype(int)).min())
    if smallest < folds:
        raise InputError(f"the training patients have {smallest} of one outcome class: too few for {folds}-fold "
                         "cross-validation (use fewer folds or a smaller test set)")
    return list(StratifiedKFold(folds, shuffle=True, random_state=random_state).split(np.zeros(len(y_train)),
                                                                                        y_train))


def _fold_auc(X, y, selector, classifiers, k, folds, random_state) -> dict:
    """{classifier: (mean fold AUC, SD)}: the selector ranks inside each fold, every classifier reuses it."""
    from ..evaluation.bootstrap import decision_scores, fast_auc
    from .classifiers import make_classifier
    from .grid import _with_imputer, ranked_features

    aucs = {name: [] for name in classifiers}
    values = X.to_numpy(dtype=float)  # plain arrays: scikit-learn checks a DataFrame's columns on every call
    for fit, held in folds:
        X_fit, y_fit = X.iloc[fit], y[fit]
        columns = list(X.columns) if selector == "none" else ranked_features(selector, X_fit, y_fit, k, random_state)
        at = X.columns.get_indexer(columns)
        for name in classifiers:
            model = _with_imputer(make_classifier(name, random_state)).fit(values[np.ix_(fit, at)], y_fit)
            aucs[name].append(fast_auc(y[held], decision_scores(model, values[np.ix_(held, at)])))
    return {name: (float(np.mean(values)), float(np.std(values, ddof=1))) for name, values in aucs.items()}


def _selector_task(name: str, selector: str, *, sets, y, train, test, folds_at, classifiers, k,
                   random_state) -> list:
    """One task: [(classifier, SplitResult, (CV AUC, SD))] of one feature set x selector, every classifier (they reuse
    the selector's ranking inside each fold). Its numbers depend only on its arguments: the same wherever it runs."""
    from .grid import ranked_features
    from .validation import split_validation

    X = sets[name]
    X_train = X.iloc[train]
    cv = _fold_auc(X_train, y[train], selector, classifiers, k, folds_at, random_state)
    columns = list(X.columns) if selector == "none" else ranked_features(selector, X_train, y[train], k, random_state)
    return [(classifier, split_validation(X, y, selector, classifier, k=k, random_state=random_state,
                                          split=(train, test), features=columns), cv[classifier])
            for classifier in classifiers]


def split_protocol(feature_sets: Mapping[str, "object"], y: np.ndarray, selectors: Sequence[str],
                   classifiers: Sequence[str], k: int = 10, folds: int = DEFAULT_FOLDS, test_size: float = 1 / 3,
                   random_state=0, split: tuple | None = None, progress: Callable[[int, int], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None, n_jobs: int = 1, execution=None) -> SplitStudy:
    """Run the protocol on ``feature_sets`` (name -> DataFrame, the same patients in the same order) and labels y.

    ``split`` = (train positions, test positions) fixes the split (default: stratified, ``test_size``).
    Each feature set x selector (its cross-validation and every classifier's fit) is one task: ``n_jobs`` local
    processes or ``execution`` (:mod:`rtresponse.execution`: an ``Execution``, a dask ``Client`` or a scheduler
    setting) run them, the feature sets scattered once; the study is the same wherever they run.
    ``study.execution`` says where. ``progress(done, total)`` counts models (a task's classifiers at once).
    """
    import pandas as pd

    from ..execution import resolve
    from .validation import stratified_split

    sets = dict(feature_sets)
    first = next(iter(sets.values()))
    train, test = split if split is not None else stratified_split(first, y, test_size, random_state)
    train, test = np.asarray(train), np.asarray(test)
    folds_at = cv_folds(y[train], folds, random_state)
    tasks = [(name, selector) for name in sets for selector in selectors]
    total = len(tasks) * len(classifiers)
    if progress:
        progress(0, total)
    runner, owned = resolve(execution, max(1, min(int(n_jobs or 1), len(tasks))))
    try:
        found = runner.map(_selector_task, tasks,
                           shared=dict(sets=sets, y=y, train=train, test=test, folds_at=folds_at,
                                       classifiers=list(classifiers), k=k, random_state=random_state),
                           progress=None if progress is None else lambda done, _: progress(done * len(classifiers),
                                                                                           total),
                           should_cancel=should_cancel, cancelled="evaluation cancelled")
        where = runner.describe()
    finally:
        if owned:
            runner.close()
    rows, results = [], {}
    for (name, selector), models in zip(tasks, found):
        for classifier, result, cv in models:
            results[(name, selector, classifier)] = result
            rows.append({"feature_set": name, "selector": selector, "classifier": classifier,
                         "features": ";".join(map(str, result.features)), "cv_auc": cv[0], "cv_auc_sd": cv[1],
                         **result.metrics})
    table = pd.DataFrame(rows)
    # the first of equal CV AUCs wins (rows are in the order the user gave), never a test metric
    in_set = table.groupby("feature_set", sort=False)["cv_auc"].idxmax()
    table["chosen_in_set"] = table.index.isin(in_set.values)
    overall = int(table["cv_auc"].idxmax())
    table["chosen"] = table.index == overall
    chosen = {name: results[tuple(table.loc[row, ["feature_set", "selector", "classifier"]])]
              for name, row in in_set.items()}
    return SplitStudy(results=table, chosen=chosen, best_set=str(table.loc[overall, "feature_set"]),
                      comparisons=compare_chosen(chosen, table.loc[in_set.values]),
                      train_ids=list(first.index[train]), test_ids=list(first.index[test]), execution=where)


def compare_chosen(chosen: Mapping[str, "object"], rows) -> "object":
    """DeLong, NRI and IDI of every pair of the chosen models (b against a) on the same test patients."""
    import pandas as pd

    from .validation import compare_on_test

    labels = {row["feature_set"]: f"{row['feature_set']} {row['selector']}+{row['classifier']}"
              for row in rows.to_dict("records")}
    pairs = []
    for a, b in combinations(chosen, 2):
        pairs.append({"model_a": labels[a], "model_b": labels[b], "auc_a": chosen[a].metrics["auc"],
                      "auc_b": chosen[b].metrics["auc"], **compare_on_test(chosen[a], chosen[b])})
    columns = ["model_a", "model_b", "auc_a", "auc_b", "delong_z", "delong_p", "nri", "nri_p", "idi", "idi_p"]
    return pd.DataFrame(pairs, columns=columns)
