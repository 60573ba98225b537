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

    folder = Path(folder)
    clinical = clinicalWithOutcome(clinicalTable, outcomeColumn)
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


def clinicalWithOutcome(clinicalTable, outcomeColumn: str):
    """The clinical table as a DataFrame indexed by patient_id; InputError when it has no ``outcomeColumn``."""
    from rtresponse.errors import InputError
    from rtresponse.models.study import clinical_frame

    if clinicalTable is None:
        raise InputError("no clinical table selected: it holds the outcome")
    clinical = clinical_frame(frameOf(clinicalTable, "clinical table"))
    if outcomeColumn not in clinical.columns:
        outcomes = [c for c in clinical.columns if str(c).startswith(OUTCOME_PREFIX)]
        raise InputError(f"no outcome column '{outcomeColumn}' (outcome columns: {', '.join(outcomes) or 'none'})")
    return clinical


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


def evaluateInProcess(featureTables: Mapping[str, object], clinicalTable, outcomeColumn: str, out, scene,
                      clinicalColumns: Sequence[str] = (), protocol: str = "bootstrap", selectors=None,
                      classifiers=None, k: int = 10, nBootstrap: int = 1000, forward: bool = True, positive="1",
                      progress=None, shouldCancel=None) -> dict:
    """What an evaluate job does, in process (blocks until done; for scripts): the files in ``out`` and the same
    nodes as :func:`loadResults`, plus "evaluation" (the rtresponse Evaluation). ``progress(done, total)`` per
    model; ``shouldCancel()`` raises ``rtresponse.errors.Cancelled`` and nothing is written or added."""
    from rtresponse.models.evaluate import evaluate, write_outputs
    from rtresponse.errors import Cancelled
    from rtresponse.models.study import feature_sets, feature_table, parse_positive
    from rtresponse.models.tables import assemble

    clinical = clinicalWithOutcome(clinicalTable, outcomeColumn)
    outcome = clinical[outcomeColumn]
    # factors named without clin_, as a manifest names them for `rtresponse evaluate`: the same model features
    clinical = clinical.rename(columns=lambda column: stripPrefix(column, CLINICAL_PREFIX))
    clinicalColumns = [stripPrefix(column, CLINICAL_PREFIX) for column in clinicalColumns]
    tables = {name: feature_table(frameOf(table, name), name) for name, table in dict(featureTables or {}).items()}
    sets = feature_sets(tables, clinical if clinicalColumns else None, clinicalColumns)
    # every set on the same patients; a single-class outcome or no common patient fails here, at once
    positive = assemble(sets, outcome, parse_positive(positive, outcome)).positive
    positive = positive.item() if hasattr(positive, "item") else positive

    if shouldCancel is not None and shouldCancel():
        raise Cancelled("cancelled before the first model")
    methods = {key: list(value) for key, value in (("selectors", selectors), ("classifiers", classifiers)) if value}
    evaluation = evaluate(sets, outcome, protocol=protocol, k=k, n_bootstrap=nBootstrap, forward=forward,
                          positive=positive, progress=progress, should_cancel=shouldCancel, **methods)
    write_outputs(evaluation, out, stripPrefix(outcomeColumn, OUTCOME_PREFIX), positive)
    return {**loadResults(out, outcomeColumn, scene, protocol), "evaluation": evaluation}


def predict(modelPath, featureTable, clinicalTable=None, scene=None, tableName: str | None = None):
    """Probabilities of a saved model (.skops: well under a second) for the rows of a feature table, also added to
    the scene as a table node. A table without patient_id (a Tumor Features table: one row per segment of the current
    patient) is used row by row; its clinical table must then have one row.

    Returns a DataFrame (index: patient_id or segment; columns probability, predicted_positive) whose ``attrs`` hold
    the model's outcome, positive class, cut-off, description and the new table node's ID (tableNodeID)."""
    from rtresponse import mrml
    from rtresponse.errors import InputError
    from rtresponse.models import persistence
    from rtresponse.models.study import patient_features

    if not modelPath:
        raise InputError("no model file chosen")
    if featureTable is None:
        raise InputError("no feature table chosen")
    bundle = persistence.load_model(modelPath)
    label = featureTable.GetName() if hasattr(featureTable, "GetName") else "patient features"
    clinical = None if clinicalTable is None else frameOf(clinicalTable, "clinical table")
    features = patient_features(bundle["features"], frameOf(featureTable, label), clinical, label=label,
                                clinical_label="clinical table")
    prediction = persistence.predict(bundle, features)
    prediction.attrs.update({key: bundle[key] for key in ("outcome", "positive", "cutoff", "description")})
    scene = scene or featureTable.GetScene()
    name = scene.GenerateUniqueName(tableName or f"{bundle['outcome']} prediction")
    table = mrml.dataframe_to_table_node(prediction, name, scene)
    table.SetAttribute("ResponseModel.model", os.fspath(modelPath))
    for key in ("outcome", "positive", "cutoff", "description"):
        table.SetAttribute(f"ResponseModel.{key}", str(bundle[key]))
    prediction.attrs["tableNodeID"] = table.GetID()
    return prediction


def predictionSummary(prediction) -> str:
    attrs = prediction.attrs
    outcome, positive, cutoff = attrs.get("outcome", "outcome"), attrs.get("positive", 1), attrs.get("cutoff", 0.5)
    lines = [f"Model: {attrs.get('description', '')}. Probability of {outcome} = {positive}; positive at or above the "
             f"cut-off {cutoff:.3f}."]
    for index, row in prediction.iterrows():
        lines.append(f"{index}: probability {row['probability']:.3f} → "
                     f"{'positive' if row['predicted_positive'] else 'negative'}")
    return "\n".join(lines)


def runProblem(p, featureTables: Mapping, clinicalColumns: Sequence[str], tableColumns) -> str | None:
    """Why Run cannot start, or None (``tableColumns(node)``: a table node's column names)."""
    if p is None:
        return "No parameter node."
    if not p.clinicalTable:
        return "Select the clinical table (one row per patient, with outcome_* columns)."
    if p.outcomeColumn not in tableColumns(p.clinicalTable):
        return f"'{p.clinicalTable.GetName()}' has no outcome_* column: pick the table with the outcomes."
    if p.featureCsv and not os.path.isfile(p.featureCsv):
        return f"The feature CSV file does not exist: {p.featureCsv}"
    if not featureTables and not clinicalColumns:
        return "Check one or more feature tables, choose a CSV file, or check clinical factors."
    if not p.selectors:
        return "Check at least one feature selector."
    if not p.classifiers:
        return "Check at least one classifier."
    return None


def predictProblem(p) -> str | None:
    if p is None:
        return "No parameter node."
    if not p.modelPath or not os.path.isfile(p.modelPath):
        return "Choose a model file (.skops), e.g. the one saved by Run."
    if not p.predictFeatureTable:
        return "Select the patient's feature table."
    return None


def uniqueName(name: str, taken) -> str:
    unique, number = name, 2
    while unique in taken:
        unique, number = f"{name} ({number})", number + 1
    return unique


def paperMethods() -> tuple:
    """(selectors, classifiers) of Tanaka et al., the defaults."""
    from rtresponse.models.classifiers import PAPER_CLASSIFIERS
    from rtresponse.models.grid import PAPER_SELECTORS

    return list(PAPER_SELECTORS), list(PAPER_CLASSIFIERS)


def methodNames() -> tuple:
    """(selector names, classifier names) that can be chosen; before scikit-learn is installed only the papers'
    selectors are listed (the selector registry needs it)."""
    from rtresponse.models.classifiers import CLASSIFIER_NAMES
    from rtresponse.models.grid import PAPER_SELECTORS

    try:
        from rtresponse.selection import SELECTORS
    except ImportError:
        return list(PAPER_SELECTORS), list(CLASSIFIER_NAMES)
    return list(SELECTORS), list(CLASSIFIER_NAMES)


def tableColumns(tableNode) -> list:
    """Column names of a table node ([] for None)."""
    if tableNode is None:
        return []
    return [tableNode.GetColumnName(i) for i in range(tableNode.GetNumberOfColumns())]


def featureSetNames(tableNames, withClinical: bool) -> list:
    """The feature sets a run evaluates, in order: each table, the clinical factors, then all combined."""
    from rtresponse.models.study import feature_set_names

    return feature_set_names(tableNames, withClinical)
