"""One call from feature tables and an outcome to a results table, figures and the best model.

Protocols:

``bootstrap`` (Tanaka et al.)
    the selector x classifier grid of every feature set, 0.632+ bootstrap AUC on all patients;
    the best cell is refitted on all patients and saved.
``split`` (Jeong et al.)
    one stratified train/test split shared by every model; training-set Youden cut-off; test
    metrics with DeLong CI; every model is compared with the first one on the same test patients
    (DeLong, NRI, IDI); the best model (test AUC) is saved.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..errors import InputError
from .classifiers import PAPER_CLASSIFIERS
from .grid import PAPER_SELECTORS


@dataclass
class Evaluation:
    results: "object"                    # DataFrame: one row per feature set x selector x classifier
    best: dict                           # the best row
    model: object                        # fitted best model
    features: list                       # its columns
    cutoff: float
    roc: dict = field(default_factory=dict)   # label -> (fpr, tpr)
    dropped: dict = field(default_factory=dict)
    shapley: "object" = None                  # split protocol: mean |Shapley value| per input of the best model


def evaluate(feature_sets: Mapping[str, "object"], outcome: "object", protocol: str = "bootstrap",
             selectors: Sequence[str] = PAPER_SELECTORS, classifiers: Sequence[str] = PAPER_CLASSIFIERS,
             k: int = 10, n_bootstrap: int = 1000, forward: bool = True, positive=None, test_size: float = 1 / 3,
             random_state=0, n_jobs=None, progress: Callable[[int, int], None] | None = None,
             should_cancel: Callable[[], bool] | None = None) -> Evaluation:
    """Evaluate every feature set (name -> DataFrame indexed by patient_id) against ``outcome`` (a Series)."""
    import pandas as pd

    from ..evaluation import roc_curve_points, youden_cutoff
    from ..evaluation.bootstrap import decision_scores
    from .grid import _with_imputer, run_grid
    from .classifiers import make_classifier
    from .tables import assemble
    from .validation import compare_on_test, split_validation, stratified_split

    if protocol not in ("bootstrap", "split"):
        raise InputError(f"protocol must be 'bootstrap' or 'split', got '{protocol}'")
    # every set is judged on the same patients: those present in all sets with a known outcome
    data = assemble(dict(feature_sets), outcome, positive)
    common = data.X.index
    rows, candidates, roc, dropped = [], [], {}, dict(data.dropped)
    if protocol == "bootstrap":
        for name, frame in feature_sets.items():
            X = frame.loc[common]
            grid = run_grid(X, data.y, selectors, classifiers, k=k, n_bootstrap=n_bootstrap, forward=forward,
                            random_state=random_state, n_jobs=n_jobs, progress=progress, should_cancel=should_cancel)
            table = grid.table.assign(feature_set=name)
            rows.append(table)
            for record in table.to_dict("records"):
                candidates.append((record["auc632plus"], name, record))
        results = pd.concat(rows, ignore_index=True)
        _, best_set, best = max(candidates, key=lambda c: c[0])
        features = best["features"].split(";")
        X = feature_sets[best_set].loc[common]
        model = _with_imputer(make_classifier(best["classifier"], random_state)).fit(X[features], data.y)
        scores = decision_scores(model, X[features])
        cutoff = youden_cutoff(data.y, scores)
        fpr, tpr, _ = roc_curve_points(data.y, scores)
        roc[f"{best_set} {best['selector']}+{best['classifier']} (apparent)"] = (fpr, tpr)
    else:
        split = stratified_split(data.X, data.y, test_size, random_state)
        reference = None
        total = len(feature_sets) * len(selectors) * len(classifiers)
        done = 0
        for name, frame in feature_sets.items():
            X = frame.loc[common]
            for selector in selectors:
                for classifier in classifiers:
                    result = split_validation(X, data.y, selector, classifier, k=k, random_state=random_state,
                                              split=split)
                    record = {"feature_set": name, "selector": selector, "classifier": classifier,
                              "features": ";".join(map(str, result.features)), **result.metrics}
                    if reference is None:
                        reference = result
                    else:
                        record.update({f"vs_first_{key}": value for key, value in
                                       compare_on_test(reference, result).items()})
                    rows.append(record)
                    candidates.append((result.metrics["auc"], name, (record, result)))
                    fpr, tpr, _ = roc_curve_points(result.test_y, result.test_scores)
                    roc[f"{name} {selector}+{classifier}"] = (fpr, tpr)
                    done += 1
                    if progress:
                        progress(done, total)
        results = pd.DataFrame(rows)
        _, best_set, (best, best_result) = max(candidates, key=lambda c: c[0])
        model, features, cutoff = best_result.model, best_result.features, best_result.cutoff
        X = feature_sets[best_set].loc[common]
        shapley = input_importance(model, X.loc[best_result.train_ids, features], X.loc[best_result.test_ids, features])
    columns = ["feature_set"] + [c for c in results.columns if c != "feature_set"]
    return Evaluation(results=results[columns], best=dict(best, feature_set=best_set), model=model,
                      features=features, cutoff=float(cutoff), roc=roc, dropped=dropped,
                      shapley=shapley if protocol == "split" else None)


def input_importance(model, train, test, max_players: int = 12, max_background: int = 50, random_state=0):
    """Mean |Shapley value| of each model input over the test patients (Jeong et al.'s SHAP ranking).

    One-hot columns of one clinical factor (``HPV=positive``, ``HPV=unknown``, ...) form one player.
    Exact (every coalition) with up to ``max_players`` players, else None. The background is
    (a sample of) the training patients.
    """
    from ..evaluation.bootstrap import decision_scores
    from ..evaluation.shapley import mean_absolute_shapley, shapley_values

    groups: dict[str, list] = {}
    for column in train.columns:
        groups.setdefault(str(column).split("=", 1)[0], []).append(column)
    if len(groups) > max_players:
        return None
    background = train.sample(min(len(train), max_background), random_state=random_state)
    values = shapley_values(lambda frame: decision_scores(model, frame), test, background, features=groups,
                            max_exact=max_players)
    return mean_absolute_shapley(values)


def write_outputs(evaluation: Evaluation, out_dir: str | os.PathLike, outcome: str, positive) -> dict:
    """results.csv, heat maps (bootstrap), roc.png and model.skops in ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path
    from .grid import heatmap
    from .persistence import save_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    with atomic_path(out / "results.csv") as tmp:
        evaluation.results.to_csv(tmp, index=False)
    paths["results"] = out / "results.csv"
    if "auc632plus" in evaluation.results.columns:
        for name, table in evaluation.results.groupby("feature_set", sort=False):
            path = out / f"grid_{_safe(name)}.png"
            heatmap(table, path, title=f"0.632+ bootstrap AUC: {name}")
            paths[f"grid {name}"] = path
    figure, axes = plt.subplots(figsize=(5, 5))
    for label, (fpr, tpr) in list(evaluation.roc.items())[:12]:
        axes.plot(fpr, tpr, label=label, linewidth=1.2)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axes.set_xlabel("1 - specificity")
    axes.set_ylabel("sensitivity")
    axes.legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    with atomic_path(out / "roc.png") as tmp:
        figure.savefig(tmp, dpi=120)
    plt.close(figure)
    paths["roc"] = out / "roc.png"
    if evaluation.shapley is not None:
        with atomic_path(out / "shapley.csv") as tmp:
            evaluation.shapley.rename("mean_abs_shapley").to_csv(tmp, index_label="input")
        paths["shapley"] = out / "shapley.csv"
    best = evaluation.best
    paths["model"] = save_model(out / "model.skops", evaluation.model, evaluation.features, outcome, positive,
                                evaluation.cutoff,
                                description=f"{best['feature_set']}: {best['selector']} + {best['classifier']}")
    return paths


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))
