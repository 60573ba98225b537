"""One call from feature tables and an outcome to a results table, figures and the best model.

Protocols:

``bootstrap`` (Tanaka et al.)
    the selector x classifier grid of every feature set, 0.632+ bootstrap AUC on all patients;
    the best cell is refitted on all patients and saved.
``split`` (Jeong et al.)
    one stratified train/test split shared by every model; each model judged by stratified k-fold
    cross-validation on the training patients; the best by CV AUC (per feature set and overall) is
    refitted on the training patients, its Youden cut-off taken there, and tested once: test metrics
    with DeLong CI, and DeLong / NRI / IDI between the chosen models (:mod:`.split_protocol`). The
    overall chosen model is saved.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..errors import InputError
from .classifiers import PAPER_CLASSIFIERS
from .grid import PAPER_SELECTORS
from .split_protocol import DEFAULT_FOLDS


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
    comparisons: "object" = None              # split protocol: DeLong, NRI, IDI between the chosen models
    split: dict | None = None                 # split protocol: patient id -> "train" / "test"
    positive: object = None                   # the outcome value the probability is for
    training_hash: str = ""                   # SHA-256 of the data the saved model was fitted on
    settings: dict = field(default_factory=dict)  # protocol, selectors, classifiers, k, draws, folds, seed
    execution: dict = field(default_factory=dict)  # where the models were fitted (Execution.describe()); not a result


def evaluate(feature_sets: Mapping[str, "object"], outcome: "object", protocol: str = "bootstrap",
             selectors: Sequence[str] = PAPER_SELECTORS, classifiers: Sequence[str] = PAPER_CLASSIFIERS,
             k: int = 10, n_bootstrap: int = 1000, forward: bool = True, positive=None, test_size: float = 1 / 3,
             cv_folds: int = DEFAULT_FOLDS, split: tuple | None = None, random_state=0, n_jobs=None,
             progress: Callable[[int, int], None] | None = None,
             should_cancel: Callable[[], bool] | None = None, execution=None, cell_cache=None) -> Evaluation:
    """Evaluate every feature set (name -> DataFrame indexed by patient_id) against ``outcome`` (a Series).

    ``execution``: where the grid cells (bootstrap protocol) or each feature set x selector's cross-validation
    and fits (split protocol) run (:mod:`rtresponse.execution`; ``n_jobs`` local processes without it); one
    cluster serves every feature set. The results do not depend on it (``Evaluation.execution`` says where).
    ``cell_cache`` (bootstrap protocol): a
    :class:`~rtresponse.models.cells.CellCache` keyed by this run's inputs and settings; the grid cells it holds are
    taken from it, the others put into it as each finishes (a resumable run).

    Split protocol: ``test_size`` (fraction of patients), ``cv_folds`` (the training patients' folds that
    choose the model), ``split`` = (train positions, test positions) to fix the split.
    """
    import pandas as pd

    from ..evaluation import roc_curve_points, youden_cutoff
    from ..evaluation.bootstrap import decision_scores
    from .grid import _with_imputer, run_grids
    from .classifiers import make_classifier
    from .tables import assemble
    from .split_protocol import split_protocol

    if protocol not in ("bootstrap", "split"):
        raise InputError(f"protocol must be 'bootstrap' or 'split', got '{protocol}'")
    # every set is judged on the same patients: those present in all sets with a known outcome
    data = assemble(dict(feature_sets), outcome, positive)
    common = data.X.index
    rows, candidates, roc, dropped = [], [], {}, dict(data.dropped)
    if protocol == "bootstrap":
        from ..execution import resolve

        runner, owned = resolve(execution, n_jobs) if execution is not None else (None, False)
        try:
            # one run over all sets: the workers stay busy from one set's cells to the next's
            grids = run_grids({name: frame.loc[common] for name, frame in feature_sets.items()}, data.y, selectors,
                              classifiers, k=k, n_bootstrap=n_bootstrap, forward=forward, random_state=random_state,
                              n_jobs=n_jobs, progress=progress, should_cancel=should_cancel, execution=runner,
                              cell_caches=None if cell_cache is None else {name: cell_cache.view(name)
                                                                           for name in feature_sets})
            for name, grid in grids.items():
                table = grid.table.assign(feature_set=name)
                rows.append(table)
                for record in table.to_dict("records"):
                    candidates.append((record["auc632plus"], name, record))
            where = runner.describe() if runner is not None else {"kind": "local", "workers": max(1, int(n_jobs or 1))}
        finally:
            if owned:
                runner.close()
        results = pd.concat(rows, ignore_index=True)
        _, best_set, best = max(candidates, key=lambda c: c[0])
        features = best["features"].split(";")
        X = feature_sets[best_set].loc[common]
        model = _with_imputer(make_classifier(best["classifier"], random_state)).fit(X[features], data.y)
        scores = decision_scores(model, X[features])
        cutoff = youden_cutoff(data.y, scores)
        fpr, tpr, _ = roc_curve_points(data.y, scores)
        roc[f"{best_set} {best['selector']}+{best['classifier']} (apparent)"] = (fpr, tpr)
        model_ids = list(common)
    else:
        study = split_protocol({name: frame.loc[common] for name, frame in feature_sets.items()}, data.y,
                               selectors, classifiers, k=k, folds=cv_folds, test_size=test_size,
                               random_state=random_state, split=split, progress=progress,
                               should_cancel=should_cancel, n_jobs=n_jobs or 1, execution=execution)
        where = study.execution
        results, best_set, comparisons = study.results, study.best_set, study.comparisons
        best = results[results["chosen"]].iloc[0].to_dict()
        chosen = study.chosen[best_set]
        model, features, cutoff = chosen.model, chosen.features, chosen.cutoff
        for row in results[results["chosen_in_set"]].to_dict("records"):
            result = study.chosen[row["feature_set"]]
            fpr, tpr, _ = roc_curve_points(result.test_y, result.test_scores)
            mark = " (chosen)" if row["chosen"] else ""
            roc[f"{row['feature_set']} {row['selector']}+{row['classifier']}{mark}"] = (fpr, tpr)
        X = feature_sets[best_set].loc[common]
        shapley = input_importance(model, X.loc[chosen.train_ids, features], X.loc[chosen.test_ids, features])
        assignment = {**{pid: "train" for pid in study.train_ids}, **{pid: "test" for pid in study.test_ids}}
        model_ids = list(chosen.train_ids)
    columns = ["feature_set"] + [c for c in results.columns if c != "feature_set"]
    return Evaluation(results=results[columns], best=dict(best, feature_set=best_set), model=model,
                      features=features, cutoff=float(cutoff), roc=roc, dropped=dropped,
                      shapley=shapley if protocol == "split" else None,
                      comparisons=comparisons if protocol == "split" else None,
                      split=assignment if protocol == "split" else None,
                      positive=data.positive, training_hash=_training_hash(X, features, data.y, model_ids),
                      settings={"protocol": protocol, "selectors": list(selectors), "classifiers": list(classifiers),
                                "k": k, "random_state": random_state,
                                **({"n_bootstrap": n_bootstrap, "forward": forward} if protocol == "bootstrap"
                                   else {"cv_folds": cv_folds, "test_size": test_size})},
                      execution=where)


def _training_hash(X, features, y, ids) -> str:
    """SHA-256 of the rows, columns and labels the saved model was fitted on (its model card's data fingerprint)."""
    import pandas as pd

    from ..provenance import table_hash

    labels = pd.Series(y, index=X.index, name="__outcome__")
    return table_hash(pd.concat([X[features], labels], axis=1).loc[list(ids)])


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
    """results.csv, heat maps (bootstrap), roc.png and its points roc.csv (label, fpr, tpr), model.skops and its model_card.json in ``out_dir``.

    Split protocol also: comparisons.csv (the chosen models against each other) and split.csv (who was
    a training and who a test patient). Returns {label: path}.
    """
    from matplotlib.figure import Figure

    import pandas as pd

    from ..atomic import atomic_path
    from .grid import heatmap
    from .persistence import load_model, save_model

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
    figure = Figure(figsize=(5, 5))
    axes = figure.subplots()
    for label, (fpr, tpr) in evaluation.roc.items():  # the chosen models only
        axes.plot(fpr, tpr, label=label, linewidth=1.2)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axes.set_xlabel("1 - specificity")
    axes.set_ylabel("sensitivity")
    axes.set_title("test ROC of the chosen models" if evaluation.split else "apparent ROC of the best model",
                   fontsize=9)
    axes.legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    with atomic_path(out / "roc.png") as tmp:
        figure.savefig(tmp, dpi=120)
    paths["roc"] = out / "roc.png"
    points = [(label, float(f), float(t)) for label, (fpr, tpr) in evaluation.roc.items() for f, t in zip(fpr, tpr)]
    with atomic_path(out / "roc.csv") as tmp:  # the same curves as points, for a chart in Slicer
        pd.DataFrame(points, columns=["label", "fpr", "tpr"]).to_csv(tmp, index=False)
    paths["roc points"] = out / "roc.csv"
    if evaluation.comparisons is not None:
        with atomic_path(out / "comparisons.csv") as tmp:
            evaluation.comparisons.to_csv(tmp, index=False)
        paths["comparisons"] = out / "comparisons.csv"
    if evaluation.split:
        with atomic_path(out / "split.csv") as tmp:
            pd.Series(evaluation.split, name="set").to_csv(tmp, index_label="patient_id")
        paths["split"] = out / "split.csv"
    if evaluation.shapley is not None:
        with atomic_path(out / "shapley.csv") as tmp:
            evaluation.shapley.rename("mean_abs_shapley").to_csv(tmp, index_label="input")
        paths["shapley"] = out / "shapley.csv"
    best = evaluation.best
    description = f"{best['feature_set']}: {best['selector']} + {best['classifier']}"
    paths["model"] = save_model(out / "model.skops", evaluation.model, evaluation.features, outcome, positive,
                                evaluation.cutoff, description=description, details=selection_details(evaluation))
    card = load_model(paths["model"])["card"]  # the card as saved in the model file, also readable as JSON
    with atomic_path(out / "model_card.json") as tmp:
        tmp.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    paths["model card"] = out / "model_card.json"
    return paths


def selection_details(evaluation: Evaluation) -> dict:
    """What a model card adds for a model chosen by :func:`evaluate`: how it was chosen, on what data, its results."""
    split = evaluation.split
    return {"chosen_by": ("mean AUC of stratified k-fold cross-validation on the training patients" if split
                          else "0.632+ bootstrap AUC on all patients"),
            "fitted_on": "training patients" if split else "all patients",
            "training_patients": sum(v == "train" for v in split.values()) if split else None,
            "training_data_sha256": evaluation.training_hash, "evaluation_settings": evaluation.settings,
            "result": {key: value for key, value in evaluation.best.items() if key != "features"}}


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))
