"""Response Model's evaluation as a background job: the inputs it writes, the command it runs, the results it loads.

The checked feature tables and the clinical table go to the job folder as CSV files (each feature table as
``features/<its name>.csv``, so that the feature sets keep the tables' names; the clinical table as a manifest with
patient_id, the ``clin_*`` and the ``outcome_*`` columns). ``rtresponse evaluate`` then evaluates every feature set
x selector x classifier in a child process and writes results.csv, roc.csv, model.skops and model_card.json into a
new results folder, from which :func:`loadResults` makes the results table, the ROC chart and one heat map table per
feature set (bootstrap: selectors x classifiers of 0.632+ AUC). Needs neither Qt nor Slicer (slicer-core's MRML).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

CLINICAL_PREFIX = "clin_"
OUTCOME_PREFIX = "outcome_"
FEATURES_FOLDER = "features"
MANIFEST_FILE = "manifest.csv"
MODEL_FILE = "model.skops"
CARD_FILE = "model_card.json"
MAX_ROC_CURVES = 8
_UNSAFE = '\\/:*?"<>|'


def stripPrefix(column: str, prefix: str) -> str:
    return column[len(prefix):] if str(column).startswith(prefix) else str(column)


def frameOf(table, name: str = "table"):
    """A DataFrame of a table node, a DataFrame or a CSV path."""
    import pandas as pd

    from rtresponse import mrml
    from rtresponse.errors import InputError
    from rtresponse.models.tables import read_csv

    if isinstance(table, pd.DataFrame):
        return table
    if isinstance(table, (str, os.PathLike)):
        return read_csv(table)
    if table is None or not hasattr(table, "IsA") or not table.IsA("vtkMRMLTableNode"):
        raise InputError(f"expected a table node, a DataFrame or a CSV path, got {type(table).__name__}", node=name)
    return mrml.table_node_to_dataframe(table)


def fileName(name: str) -> str:
    """A feature set's name as a file name (its stem is the set's name in the results)."""
    return "".join("_" if ch in _UNSAFE else ch for ch in str(name)).strip() or "features"


def exportInputs(folder, featureTables: Mapping[str, object], clinicalTable, outcomeColumn: str) -> dict:
    """Write the feature tables and the clinical table as the manifest into ``folder``.

    ``featureTables``: {name: table node, DataFrame or CSV path}; ``clinicalTable``: the same kinds, with
    patient_id and ``outcomeColumn``. Returns {"features": [paths], "manifest": path}.
    """
    from rtresponse.errors import InputError
    from rtresponse.models.study import clinical_frame

    folder = Path(folder)
    if clinicalTable is None:
        raise InputError("no clinical table selected: it holds the outcome")
    clinical = clinical_frame(frameOf(clinicalTable, "clinical table"))
    if outcomeColumn not in clinical.columns:
        outcomes = [c for c in clinical.columns if str(c).startswith(OUTCOME_PREFIX)]
        raise InputError(f"no outcome column '{outcomeColumn}' (outcome columns: {', '.join(outcomes) or 'none'})")
    manifest = folder / MANIFEST_FILE
    columns = [c for c in clinical.columns if str(c).startswith((CLINICAL_PREFIX, OUTCOME_PREFIX))]
    folder.mkdir(parents=True, exist_ok=True)
    clinical[columns].to_csv(manifest, index_label="patient_id")
    features, used = [], set()
    for name, table in dict(featureTables or {}).items():
        stem = fileName(name)
        if stem in used:
            raise InputError(f"two feature tables would be named '{stem}': rename one")
        used.add(stem)
        frame = frameOf(table, name)
        path = folder / FEATURES_FOLDER / f"{stem}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index="patient_id" not in frame.columns)
        features.append(path)
    return {"features": features, "manifest": manifest}


def evaluateArguments(manifest, features: Sequence, outcomeColumn: str, out, clinicalColumns: Sequence[str] = (),
                      protocol: str = "bootstrap", selectors: Sequence[str] = (), classifiers: Sequence[str] = (),
                      k: int = 10, nBootstrap: int = 1000, forward: bool = True, positive: str = "",
                      jobs: int = 1, seed: int = 0) -> list[str]:
    """The ``rtresponse evaluate`` command line of a run (clinical factors and the outcome named without prefix)."""
    arguments = ["evaluate"]
    for path in features:
        arguments += ["--features", str(path)]
    arguments += ["--manifest", str(manifest), "--outcome", stripPrefix(outcomeColumn, OUTCOME_PREFIX)]
    if str(positive or "").strip():
        arguments += ["--positive", str(positive).strip()]
    if clinicalColumns:
        arguments += ["--clinical", ",".join(stripPrefix(c, CLINICAL_PREFIX) for c in clinicalColumns)]
    arguments += ["--combine", "--protocol", protocol]
    if selectors:
        arguments += ["--selectors", *selectors]
    if classifiers:
        arguments += ["--classifiers", *classifiers]
    arguments += ["--k", str(int(k))]
    if protocol == "bootstrap":
        arguments += ["--n-bootstrap", str(int(nBootstrap))] + ([] if forward else ["--no-forward"])
    arguments += ["--seed", str(int(seed)), "--jobs", str(max(1, int(jobs))), "--out", str(out)]
    return arguments


def resultsFolder(base, outcomeColumn: str, now: float | None = None) -> Path:
    """A new (not yet made) folder for one run's files under ``base``: ``<outcome>-<date>-<time>[-n]``."""
    base = Path(base)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    name = fileName(stripPrefix(outcomeColumn, OUTCOME_PREFIX)).replace(" ", "_") + f"-{stamp}"
    path, number = base / name, 2
    while path.exists():
        path, number = base / f"{name}-{number}", number + 1
    return path


def heatmapFrames(results) -> dict:
    """{feature set: DataFrame} of 0.632+ AUC, one row per selector (column "selector"), one column per classifier
    ({} for the split protocol, which has no grid)."""
    if "auc632plus" not in results.columns:
        return {}
    frames = {}
    for name, table in results.groupby("feature_set", sort=False):
        grid = table.pivot_table(index="selector", columns="classifier", values="auc632plus", sort=False)
        frames[str(name)] = grid.reset_index().rename_axis(columns=None)
    return frames


def rocSeries(roc, maxCurves: int = MAX_ROC_CURVES) -> dict:
    """{label (AUC): (fpr, tpr)} of the ``maxCurves`` curves of largest area in a roc.csv frame, and the chance line."""
    import numpy as np

    curves = {}
    for label, points in roc.groupby("label", sort=False):
        fpr, tpr = points["fpr"].to_numpy(float), points["tpr"].to_numpy(float)
        curves[str(label)] = (fpr, tpr, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0)))
    ranked = sorted(curves.items(), key=lambda item: -item[1][2])[:maxCurves]
    series = {f"{label} (AUC {area:.2f})": (list(fpr), list(tpr)) for label, (fpr, tpr, area) in ranked}
    series["chance"] = ([0.0, 1.0], [0.0, 1.0])
    return series


def loadResults(out, outcomeColumn: str, scene, protocol: str = "bootstrap") -> dict:
    """The files of a finished evaluate job as nodes of ``scene``.

    Returns {"results": table node, "roc": plot chart node, "heatmaps": {feature set: table node}, "model": path
    of model.skops, "card": the model card (dict), "outputFolder": path, "best": the chosen model's row (dict)}.
    """
    import pandas as pd

    from rtresponse import mrml

    out = Path(out)
    outcome = stripPrefix(outcomeColumn, OUTCOME_PREFIX)
    frame = pd.read_csv(out / "results.csv")
    card = json.loads((out / CARD_FILE).read_text(encoding="utf-8"))
    results = mrml.dataframe_to_table_node(frame, scene.GenerateUniqueName(f"{outcome} model results"), scene)
    for key, value in (("outcome", outcomeColumn), ("positive", card.get("positive_class", "")), ("protocol", protocol),
                       ("outputFolder", out), ("model", out / MODEL_FILE)):
        results.SetAttribute(f"ResponseModel.{key}", str(value))
    roc = mrml.plot_xy(rocSeries(pd.read_csv(out / "roc.csv")), scene.GenerateUniqueName(f"{outcome} ROC"), scene,
                       x_title="1 - specificity", y_title="sensitivity")
    heatmaps = {name: mrml.dataframe_to_table_node(grid, scene.GenerateUniqueName(f"{outcome} {name} AUC grid"),
                                                   scene)
                for name, grid in heatmapFrames(frame).items()}
    return {"results": results, "roc": roc, "heatmaps": heatmaps, "model": out / MODEL_FILE, "card": card,
            "outputFolder": out, "best": bestRow(frame)}


def bestRow(results) -> dict:
    """The chosen model's row: split protocol's "chosen" one, else the highest 0.632+ AUC."""
    if "chosen" in results.columns and results["chosen"].astype(bool).any():
        return results[results["chosen"].astype(bool)].iloc[0].to_dict()
    metric = "auc632plus" if "auc632plus" in results.columns else "auc"
    return results.loc[results[metric].idxmax()].to_dict()


def summary(loaded: dict) -> str:
    """One paragraph on a finished run: the best model and where its files are."""
    best = loaded["best"]
    if "auc632plus" in best:
        how, score = "Best", f"0.632+ AUC {best['auc632plus']:.3f}"
    else:
        how = "Chosen by cross-validation"
        score = f"CV AUC {best.get('cv_auc', float('nan')):.3f}, test AUC {best['auc']:.3f}"
    rows = loaded["results"].GetNumberOfRows()
    return (f"{how} of {rows} model(s): {best['feature_set']}, {best['selector']} + {best['classifier']}, {score}.\n"
            f"Results: '{loaded['results'].GetName()}'; ROC: '{loaded['roc'].GetName()}'.\n"
            f"Files in {loaded['outputFolder']}; model: {MODEL_FILE}.")
