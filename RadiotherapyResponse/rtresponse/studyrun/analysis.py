"""One analysis of a study: ``evaluate`` and ``write_outputs`` (as ``rtresponse evaluate``), then what a report
needs beyond them: held-out probabilities of each set's chosen model (ROC with DeLong CI, calibration, Brier),
the AUC against the number of top-ranked features, and Shapley values where the model has few inputs.

Files in the analysis folder: ``model/`` (results.csv, roc.csv, model.skops, model_card.json, comparisons.csv,
split.csv, shapley.csv as ``write_outputs`` writes them), ``predictions.csv`` (patient_id, feature_set, model,
y, probability, chosen), ``curves.csv`` (feature_set, n_features, auc632plus, auc_sd, feature), ``shapley.csv``
(input, mean_abs_shapley) and the summary returned (and stored in the step record).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..errors import InputError

BOOTSTRAP_SHAPLEY_PLAYERS = 8  # exact Shapley values of the bootstrap's best model when it has at most this many inputs


def run_analysis(analysis: Mapping, tables: Mapping[str, "object"], outcome, outcome_name: str, seed: int,
                 execution, folder: Path, progress: Callable | None = None) -> dict:
    """Run one analysis on ``tables`` ({set name: feature DataFrame with a status column}); write into ``folder``.
    ``execution``: where its grid cells or folds run (:mod:`rtresponse.execution`)."""
    import pandas as pd

    from ..models.evaluate import evaluate, input_importance, write_outputs
    from ..models.study import feature_sets, parse_positive
    from ..models.tables import assemble

    sets = feature_sets(dict(tables), combine=analysis["combine"])
    positive = parse_positive(analysis["positive"], outcome)
    evaluation = evaluate(sets, outcome, protocol=analysis["protocol"], selectors=analysis["selectors"],
                          classifiers=analysis["classifiers"], k=analysis["k"], n_bootstrap=analysis["n_bootstrap"],
                          forward=analysis["forward"], positive=positive, test_size=analysis["test_size"],
                          cv_folds=analysis["cv_folds"], random_state=seed, execution=execution, progress=progress)
    paths = write_outputs(evaluation, folder / "model", outcome_name, evaluation.best.get("positive", positive))
    data = assemble(sets, outcome, positive)
    y = pd.Series(data.y, index=data.X.index)
    predictions = _predictions(evaluation, sets, y, analysis, seed)
    predictions.to_csv(folder / "predictions.csv", index=False)
    summary = {"patients": int(len(y)), "positives": int(y.sum()), "positive_class": str(data.positive),
               "dropped": evaluation.dropped, "best": _plain_best(evaluation.best), "sets": list(sets),
               "files": sorted(str(Path(p).relative_to(folder)) for p in paths.values())}
    if analysis["protocol"] == "bootstrap":
        curves = _feature_curves(evaluation, sets, y, analysis, seed)
        curves.to_csv(folder / "curves.csv", index=False)
        best = evaluation.best
        X = sets[best["feature_set"]].loc[y.index, evaluation.features]
        groups = {str(c).split("=", 1)[0] for c in X.columns}
        if len(groups) <= BOOTSTRAP_SHAPLEY_PLAYERS:
            shapley = input_importance(evaluation.model, X, X, max_players=BOOTSTRAP_SHAPLEY_PLAYERS,
                                       random_state=seed)
            if shapley is not None:
                shapley.rename("mean_abs_shapley").to_csv(folder / "shapley.csv", index_label="input")
                summary["shapley"] = "the best model on all patients (apparent)"
    elif evaluation.shapley is not None:
        evaluation.shapley.rename("mean_abs_shapley").to_csv(folder / "shapley.csv", index_label="input")
        summary["shapley"] = "the chosen model on the test patients"
    return summary


def _plain_best(best: Mapping) -> dict:
    from ..provenance import plain

    return {key: plain(value) for key, value in best.items()}


def _model(classifier: str, seed: int):
    from ..models.classifiers import make_classifier
    from ..models.grid import _with_imputer

    return _with_imputer(make_classifier(classifier, seed))


def _chosen_rows(evaluation, protocol: str) -> list[dict]:
    """Each feature set's chosen model: the best 0.632+ cell (bootstrap) or the CV-chosen one (split)."""
    results = evaluation.results
    if protocol == "split":
        return results[results["chosen_in_set"]].to_dict("records")
    best = results.loc[results.groupby("feature_set", sort=False)["auc632plus"].idxmax()]
    return best.to_dict("records")


def _predictions(evaluation, sets: Mapping, y, analysis: Mapping, seed: int):
    """Held-out probabilities of each set's chosen model: out-of-fold (bootstrap protocol, stratified k-fold on
    all patients, features as the grid chose them) or on the test patients after fitting on the training ones
    (split protocol, as the protocol fitted them)."""
    import pandas as pd

    from ..evaluation.bootstrap import decision_scores

    protocol = analysis["protocol"]
    rows = []
    best = evaluation.best
    for row in _chosen_rows(evaluation, protocol):
        name = row["feature_set"]
        columns = str(row["features"]).split(";")
        X = sets[name].loc[y.index, columns]
        label = f"{name}: {row['selector']} + {row['classifier']}"
        chosen = (name == best["feature_set"] and row["selector"] == best["selector"]
                  and row["classifier"] == best["classifier"])
        if protocol == "split":
            train = [pid for pid, part in evaluation.split.items() if part == "train" and pid in y.index]
            test = [pid for pid, part in evaluation.split.items() if part == "test" and pid in y.index]
            model = _model(row["classifier"], seed).fit(X.loc[train], y.loc[train].to_numpy())
            scores = pd.Series(decision_scores(model, X.loc[test]), index=test)
        else:
            from sklearn.model_selection import StratifiedKFold

            folds = min(analysis["cv_folds_roc"], int(min(y.sum(), (1 - y).sum())))
            if folds < 2:
                raise InputError(f"outcome '{y.name}' has fewer than 2 patients in a class")
            scores = pd.Series(np.nan, index=y.index)
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            for fit, held in splitter.split(X, y.to_numpy()):
                model = _model(row["classifier"], seed).fit(X.iloc[fit], y.iloc[fit].to_numpy())
                scores.iloc[held] = decision_scores(model, X.iloc[held])
        for pid, score in scores.items():
            rows.append({"patient_id": pid, "feature_set": name, "model": label, "y": int(y.loc[pid]),
                         "probability": float(score), "chosen": chosen})
    return pd.DataFrame(rows, columns=["patient_id", "feature_set", "model", "y", "probability", "chosen"])


def _feature_curves(evaluation, sets: Mapping, y, analysis: Mapping, seed: int):
    """0.632+ AUC of each set's best cell against the number of its selector's top-ranked features (1..k),
    on the grid's bootstrap draws; ``forward_selected`` marks how many forward selection kept."""
    import pandas as pd

    from ..evaluation.bootstrap import bootstrap_632plus_auc, bootstrap_indices
    from ..evaluation.fast_fits import FAST_CLASSIFIERS, agrees_with_scikit_learn
    from ..models.grid import ranked_features

    rows = []
    draws = bootstrap_indices(y.to_numpy(), analysis["n_bootstrap"], seed)
    for row in _chosen_rows(evaluation, "bootstrap"):
        name, classifier = row["feature_set"], row["classifier"]
        X = sets[name].loc[y.index]
        top = ranked_features(row["selector"], X, y.to_numpy(), analysis["k"], seed)
        fast = classifier if classifier in FAST_CLASSIFIERS and agrees_with_scikit_learn(classifier) else None
        for n in range(1, len(top) + 1):
            result = bootstrap_632plus_auc(_model(classifier, seed), X[top[:n]], y.to_numpy(), indices=draws,
                                           fast=fast)
            rows.append({"feature_set": name, "model": f"{name}: {row['selector']} + {classifier}", "n_features": n,
                         "auc632plus": result.auc, "auc_sd": result.auc_sd, "feature": top[n - 1],
                         "forward_selected": int(row["n_features"])})
    return pd.DataFrame(rows, columns=["feature_set", "model", "n_features", "auc632plus", "auc_sd", "feature",
                                       "forward_selected"])
