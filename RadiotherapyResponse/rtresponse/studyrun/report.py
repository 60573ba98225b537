"""The study report: ``report.html`` (one self-contained file: figures embedded as base64 PNG, no network), the
figures as PNG and SVG in ``figures/`` and the tables as CSV in ``tables/``, made from the cached steps.

Sections (HTML ids): ``overview``, ``cohort``, ``missingness``, ``failures``, ``analysis-<name>`` (methods,
results, ROC with DeLong CIs, calibration with Brier score, grid heat maps, feature curves, Shapley values,
model card), ``software`` (versions, settings, seeds), ``steps`` and ``tripod`` (the TRIPOD+AI checklist
saying where each item is answered).
"""

from __future__ import annotations

import base64
import json
import math
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..atomic import atomic_directory, write_text
from . import figures
from .schema import TRAINED_PROTOCOLS, analysis_sets, expand_features
from .steps import NOT_SUPPORTED

TEMPLATE = "report.html.j2"
CHECKLIST = Path(__file__).resolve().parent / "tripod_ai.yaml"


def _html_table(frame, digits: int = 3, max_rows: int = 60) -> dict:
    """{columns, rows, more} for the template (numbers rounded, missing shown empty)."""
    shown = frame.head(max_rows)
    rows = []
    places = [1 if "percent" in str(column) else digits for column in shown.columns]
    for record in shown.itertuples(index=False):
        cells = []
        for value, place in zip(record, places):
            if isinstance(value, float):
                cells.append("" if math.isnan(value) else f"{value:.{place}f}")
            else:
                cells.append("" if value is None else str(value))
        rows.append(cells)
    return {"columns": [str(c) for c in shown.columns], "rows": rows, "more": max(0, len(frame) - max_rows)}


class _Writer:
    """Figures and tables of one report, written into a staging folder; figures kept for embedding."""

    def __init__(self, folder: Path, dpi: int):
        self.folder, self.dpi = folder, dpi
        self.figure_files: list[str] = []
        self.table_files: list[str] = []

    def figure(self, figure, stem: str, caption: str) -> dict:
        png = figures.save(figure, self.folder / "figures", stem, self.dpi)
        self.figure_files += [f"figures/{stem}.png", f"figures/{stem}.svg"]
        return {"data": base64.b64encode(png).decode("ascii"), "caption": caption, "stem": stem}

    def table(self, frame, stem: str, index: bool = False) -> str:
        path = self.folder / "tables" / f"{stem}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=index)
        self.table_files.append(f"tables/{stem}.csv")
        return f"tables/{stem}.csv"


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))


# --- cohort ----------------------------------------------------------------------------------------------------

def _characteristics(cohort, labels: Mapping):
    """One row per clinical factor and outcome: type, summary (median [IQR] or counts), missing n (%)."""
    import pandas as pd

    rows = []
    clinical, outcomes = cohort.clinical(), cohort.outcomes()
    for table, kind in ((clinical, "clinical factor"), (outcomes, "outcome"), *((frame, "label") for frame in labels.values())):
        for column in table.columns:
            values = table[column]
            missing = int(values.isna().sum())
            if pd.api.types.is_numeric_dtype(values) and values.nunique(dropna=True) > 5:
                q1, median, q3 = np.nanpercentile(values.astype(float), [25, 50, 75])
                summary = f"median {median:.4g} [IQR {q1:.4g}–{q3:.4g}]"
            else:
                present = values.dropna()
                if pd.api.types.is_numeric_dtype(present) and (present == present.round()).all():
                    present = present.astype(int)  # labels read back as 0.0/1.0 are shown as 0/1
                counts = present.astype(str).value_counts().sort_index()
                summary = "; ".join(f"{k}: {v} ({100 * v / max(1, len(values)):.0f}%)" for k, v in counts.items())
            rows.append({"variable": column, "kind": kind, "summary": summary, "missing": missing,
                         "missing_percent": round(100 * missing / max(1, len(values)), 1)})
    return pd.DataFrame(rows, columns=["variable", "kind", "summary", "missing", "missing_percent"])


def _missing_matrix(cohort, feature_tables: Mapping):
    """Patients x (clinical factors, outcomes, image/mask files, feature sets): True where missing or failed."""
    import pandas as pd

    columns = {}
    for column, values in cohort.clinical().items():
        columns[f"clin {column}"] = values.isna()
    for column, values in cohort.outcomes().items():
        columns[f"outcome {column}"] = values.isna()
    table = cohort.table.set_index("patient_id") if "patient_id" in cohort.table.columns else cohort.table
    table.index = table.index.astype(str)
    for column in table.columns:
        if str(column).startswith(("image_", "mask_")):
            columns[str(column)] = table[column].isna() | (table[column].astype(str).str.strip() == "")
    for name, frame in feature_tables.items():
        columns[f"features {name}"] = (frame["status"].astype(str) != "ok").reindex(table.index, fill_value=True)
    frame = pd.DataFrame(columns).reindex(cohort.patient_ids)
    return frame.fillna(True).astype(bool)


def _failures(feature_tables: Mapping, label_tables: Mapping, dropped: Mapping):
    import pandas as pd

    rows = []
    for kind, tables in (("features", feature_tables), ("labels", label_tables)):
        for name, frame in tables.items():
            for pid, status in frame["status"].items():
                if str(status) != "ok":
                    rows.append({"patient_id": pid, "step": f"{kind} {name}", "problem": str(status)})
    for analysis, left_out in dropped.items():
        for pid, why in left_out.items():
            rows.append({"patient_id": pid, "step": f"analysis {analysis}", "problem": f"left out: {why}"})
    return pd.DataFrame(rows, columns=["patient_id", "step", "problem"])


# --- analyses --------------------------------------------------------------------------------------------------

def _set_description(entry: Mapping, weights: str | None = None) -> str:
    if entry["kind"] == "handcrafted":
        images = entry["image"] if isinstance(entry["image"], str) else " and ".join(entry["image"])
        preset = Path(entry["preset"]).name if str(entry["preset"]).endswith((".yaml", ".yml", ".json")) \
            else f"the {entry['preset']} preset"
        return (f"{entry['name']}: handcrafted radiomics (PyRadiomics, {preset}) of {images} within the "
                f"{entry['mask']} mask")
    if entry["kind"] == "deep2d":
        slices = "largest slice" if entry["top_k"] == 1 else f"{entry['top_k']} largest slices (averaged)"
        return (f"{entry['name']}: 1000 deep features of the {entry['model']} network ({weights or entry['weights']} "
                f"weights; frozen, last fully connected layer, z-scored over the cohort) from the {slices} of "
                f"{entry['mask']} on {entry['image']}, a {entry['size_mm']:g} mm crop, window level "
                f"{entry['level']:g} / width {entry['width']:g}, context: {entry['context']}")
    factors = entry["factors"]
    return f"{entry['name']}: clinical factors ({'all' if factors == 'all' else ', '.join(factors)}; " \
           "categories one-hot with an 'unknown' level, numbers median-imputed inside each fit)"


def methods_paragraph(study: Mapping, analysis: Mapping, summary: Mapping, sets: list[str], labels: Mapping,
                      weights: Mapping) -> str:
    """The methods text of one analysis, written from its settings."""
    entries = {e["name"]: e for e in expand_features(study["features"])}
    seed = analysis["seed"] if analysis["seed"] is not None else study["seed"]
    outcome = analysis["outcome"]
    if outcome in labels:
        label = labels[outcome]
        threshold = ("the median rate of the included patients" if label["threshold"] is None
                     else f"{100 * label['threshold']:.3g} %/day")
        source = (f"the label '{outcome}', early regression after Tanaka et al.: (initial − boost volume of "
                  f"{label['initial']} / {label['boost']}) / initial volume / clin_{label['days']}, above "
                  f"{threshold} = 1; patients with an initial GTV under {label['min_volume_cc']:g} cm³ excluded")
    else:
        source = f"the manifest column outcome_{outcome}"
    text = [f"The outcome was {source} (positive class: {summary.get('positive_class', '1')})."]
    text.append(f"{summary.get('patients', '?')} patients had every feature set and a known outcome "
                f"({summary.get('positives', '?')} positive); {len(summary.get('dropped') or {})} were left out "
                "(see Per-patient failures).")
    described = [_set_description(entries[n], weights.get(n)) for n in sets if n in entries]
    text.append("Feature sets: " + "; ".join(described) + ".")
    if analysis["combine"] and len(sets) > 1:
        text.append("The union of all sets was judged as one more set.")
    selectors, classifiers = ", ".join(analysis["selectors"]), ", ".join(analysis["classifiers"])
    if analysis["protocol"] == "bootstrap":
        text.append(f"Protocol (Tanaka et al.): for each set, each selector ({selectors}) ranked the features on "
                    f"all patients and kept the top {analysis['k']}; "
                    + ("forward selection in rank order then kept the features that raised the 0.632+ AUC; "
                       if analysis["forward"] else "")
                    + f"each classifier ({classifiers}) was judged by the 0.632+ bootstrap AUC over "
                    f"{analysis['n_bootstrap']} draws shared by every model (seed {seed}). Features are selected "
                    "on all patients before the bootstrap, as in the paper, which is optimistic. The ROC and "
                    f"calibration curves show out-of-fold probabilities ({analysis['cv_folds_roc']}-fold stratified "
                    "cross-validation, the grid's chosen features) of each set's best cell; AUC 95% confidence "
                    "intervals by DeLong's method.")
    else:
        text.append(f"Protocol (Jeong et al.): one stratified split held out {100 * analysis['test_size']:.0f}% of "
                    f"the patients for the test (seed {seed}); every selector ({selectors}, top {analysis['k']}) x "
                    f"classifier ({classifiers}) was judged by {analysis['cv_folds']}-fold cross-validated AUC on "
                    "the training patients, the selector refitted inside every fold; the best model per set and "
                    "overall was refitted on the training patients, its cut-off taken there (Youden), and tested "
                    "once. Test AUCs with DeLong 95% confidence intervals; the chosen models compared by DeLong's "
                    "test, NRI and IDI; calibration and Brier score on the test patients; Shapley values of the "
                    "chosen model's inputs on the test patients.")
    return " ".join(text)


def _roc_and_calibration(predictions, writer: _Writer, stem: str, title: str, dpi: int) -> dict:
    import pandas as pd

    from ..errors import InputError
    from ..evaluation import delong_auc_ci, roc_curve_points

    curves, rows, calibration, cal_rows = {}, [], {}, []
    for model, table in predictions.groupby("model", sort=False):
        y, p = table["y"].to_numpy(), table["probability"].to_numpy()
        if len(set(y)) < 2:
            continue
        try:
            auc, low, high = delong_auc_ci(y, p)
        except InputError:  # one patient in a class (a small test set): the AUC without its CI
            pairs = p[y == 1][:, None] - p[y == 0][None, :]
            auc, low, high = float(np.mean((pairs > 0) + 0.5 * (pairs == 0))), float("nan"), float("nan")
        fpr, tpr, _ = roc_curve_points(y, p)
        curves[f"{model}: AUC {auc:.2f} ({low:.2f}–{high:.2f})"] = (fpr, tpr)
        probability = bool(np.all((p >= 0) & (p <= 1)))
        brier = float(np.mean((p - y) ** 2)) if probability else float("nan")
        rows.append({"model": model, "chosen": bool(table["chosen"].iloc[0]), "patients": len(y),
                     "positives": int(y.sum()), "auc": auc, "auc_low": low, "auc_high": high, "brier": brier})
        if probability:
            bins = max(2, min(5, len(y) // 5))
            edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
            which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(0, len(edges) - 2))
            predicted = [float(p[which == b].mean()) for b in np.unique(which)]
            observed = [float(y[which == b].mean()) for b in np.unique(which)]
            calibration[f"{model}: Brier {brier:.3f}"] = (predicted, observed)
            cal_rows += [{"model": model, "bin": i, "mean_predicted": a, "observed": b, "brier": brier}
                         for i, (a, b) in enumerate(zip(predicted, observed))]
    summary = pd.DataFrame(rows)
    found = {"auc_table": _html_table(summary), "auc_csv": writer.table(summary, f"{stem}_auc")}
    if curves:
        found["roc"] = writer.figure(figures.roc(curves, title), f"{stem}_roc",
                                     "ROC curves; legend: AUC (DeLong 95% CI)")
    if calibration:
        writer.table(pd.DataFrame(cal_rows), f"{stem}_calibration")
        found["calibration"] = writer.figure(figures.calibration(calibration, title), f"{stem}_calibration",
                                             "Calibration: observed fraction positive against mean predicted "
                                             "probability in quantile bins; legend: Brier score")
    return found


def _analysis_section(study, analysis, step, writer: _Writer, labels, weights, dpi) -> dict:
    import pandas as pd

    name = analysis["name"]
    stem = _safe(name)
    section = {"name": name, "id": f"analysis-{stem}", "protocol": analysis["protocol"], "outcome": analysis["outcome"],
               "status": step.status if step else "not run", "message": step.message if step else ""}
    if step is None or not step.ok:
        return section
    if analysis["protocol"] in TRAINED_PROTOCOLS:
        from .report_methods import trained_section

        return trained_section(study, analysis, step, writer, section)
    folder = step.path
    summary = step.summary
    sets = analysis_sets(study, analysis)
    section["methods"] = methods_paragraph(study, analysis, summary, sets, labels, weights)
    results = pd.read_csv(folder / "model" / "results.csv")
    writer.table(results, f"{stem}_results")
    value = "auc632plus" if analysis["protocol"] == "bootstrap" else "cv_auc"
    shown = results.sort_values(value, ascending=False)
    keep = [c for c in ("feature_set", "selector", "classifier", "auc632plus", "auc_sd", "cv_auc", "auc",
                        "auc_low", "auc_high", "sensitivity", "specificity", "n_features", "chosen") if c in shown]
    section["results"] = _html_table(shown[keep], max_rows=25)
    best = summary.get("best", {})
    section["best"] = best
    predictions = pd.read_csv(folder / "predictions.csv", dtype={"patient_id": str})
    writer.table(predictions, f"{stem}_predictions")
    kind = "out-of-fold" if analysis["protocol"] == "bootstrap" else "test patients"
    section.update(_roc_and_calibration(predictions, writer, stem, f"{name}: {kind}", dpi))
    section["grid"] = writer.figure(figures.grid_heatmaps(results, value, f"{name}: "
                                                          + ("0.632+ bootstrap AUC" if value == "auc632plus"
                                                             else "cross-validated AUC (training patients)")),
                                    f"{stem}_grid", "Selector x classifier grid per feature set")
    if (folder / "curves.csv").is_file():
        curves = pd.read_csv(folder / "curves.csv")
        writer.table(curves, f"{stem}_feature_curves")
        if len(curves):
            section["curves"] = writer.figure(
                figures.feature_curves(curves, f"{name}: AUC against the number of features"), f"{stem}_features",
                "0.632+ AUC (± SD) of each set's best cell with its selector's top 1..k features; dashed: the "
                "number forward selection kept")
    if (folder / "shapley.csv").is_file():
        shapley = pd.read_csv(folder / "shapley.csv", index_col="input")["mean_abs_shapley"]
        writer.table(shapley.reset_index(), f"{stem}_shapley")
        section["shapley"] = writer.figure(figures.shapley_bars(shapley, f"{name}: {summary.get('shapley', '')}"),
                                           f"{stem}_shapley", f"Mean |Shapley value| of each input of "
                                           f"{summary.get('shapley', 'the model')}")
    if (folder / "model" / "comparisons.csv").is_file():
        comparisons = pd.read_csv(folder / "model" / "comparisons.csv")
        writer.table(comparisons, f"{stem}_comparisons")
        section["comparisons"] = _html_table(comparisons)
    card = json.loads((folder / "model" / "model_card.json").read_text(encoding="utf-8"))
    writer.table(pd.DataFrame([{"field": k, "value": json.dumps(v, default=str) if isinstance(v, (dict, list))
                                else v} for k, v in card.items()]), f"{stem}_model_card")
    section["card"] = [(k, json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v))
                       for k, v in card.items()]
    return section


def _gradcam_figures(result, writer: _Writer) -> list[dict]:
    """One figure per deep2d feature set with a Grad-CAM step: its patients' max-area slices with the map over them."""
    from .report_methods import gradcam_figure

    return [gradcam_figure(step, writer) for step in result.steps if step.kind == "gradcam" and step.ok
            and step.summary.get("patients")]


def _shown_path(path: str, out: Path) -> str:
    """A path inside the study folder relative to it (the report stays right when the folder moves)."""
    resolved, base = Path(path).resolve(), Path(out).resolve()
    return str(resolved.relative_to(base)) if resolved.is_relative_to(base) else str(path)


def _checklist() -> list[dict]:
    import yaml

    return yaml.safe_load(CHECKLIST.read_text(encoding="utf-8"))["items"]


def write_report(result, cohort, label_steps: Mapping, feature_steps: Mapping, clinical_sets: Mapping,
                 study_file: str | None = None, log: Callable[[str], None] = print) -> Path:
    """Write report.html, figures/ and tables/ into the study folder (replacing the previous report's)."""
    import pandas as pd
    import yaml

    from ..provenance import environment

    study, out = result.study, result.out
    dpi = study["report"]["dpi"]
    analyses_steps = {s.name: s for s in result.steps if s.kind == "analysis"}
    label_tables = {n: pd.read_csv(s.path / "labels.csv", index_col="patient_id", dtype={"patient_id": str})
                    for n, s in label_steps.items() if s.ok}
    feature_tables = {n: pd.read_csv(s.path / "features.csv", index_col="patient_id", dtype={"patient_id": str},
                                     usecols=lambda c: c in ("patient_id", "status", "weights"))
                      for n, s in feature_steps.items() if s.ok}
    weights = {n: str(t["weights"].iloc[0]) for n, t in feature_tables.items() if "weights" in t and len(t)}
    labels_by_name = {label["name"]: label for label in study["labels"]}
    stage = out / ".report-staging"
    with atomic_directory(stage, overwrite=True) as tmp:
        writer = _Writer(Path(tmp), dpi)
        characteristics = _characteristics(cohort, {n: t[["regression"]].rename(columns={"regression": n})
                                                    for n, t in label_tables.items()})
        writer.table(characteristics, "cohort_characteristics")
        missing = _missing_matrix(cohort, feature_tables)
        counts = pd.DataFrame({"variable": missing.columns, "missing": missing.sum().to_numpy(),
                               "percent": (100 * missing.mean()).round(1).to_numpy()})
        writer.table(counts, "missingness")
        missing_figure = writer.figure(figures.missingness(missing, "Missing values and failed steps (dark)"),
                                       "missingness", "Patients (rows) x variables (columns): dark = missing value, "
                                       "missing file or a failed feature extraction")
        dropped = {n: s.summary.get("dropped", {}) for n, s in analyses_steps.items() if s.ok}
        failures = _failures(feature_tables, label_tables, dropped)
        writer.table(failures, "patient_failures")
        sections = [_analysis_section(study, a, analyses_steps.get(a["name"]), writer, labels_by_name, weights, dpi)
                    for a in study["analyses"]]
        steps = pd.DataFrame([{"kind": s.kind, "name": s.name, "status": s.status, "seconds": s.seconds,
                               "key": s.key, "message": s.message} for s in result.steps])
        writer.table(steps, "steps")
        env = environment()
        seeds = [("study", study["seed"])] + [(f"analysis {a['name']}", a["seed"] if a["seed"] is not None
                                               else study["seed"]) for a in study["analyses"]]
        if study["cohort"]["synthetic"]:
            seeds.insert(1, ("synthetic cohort", study["cohort"]["synthetic"]["seed"]))
        warnings = [f"Feature set {n} uses RANDOM network weights ({w}): models on it test the software, not the "
                    "method." for n, w in weights.items() if w.startswith("random")]
        warnings += [f"Analysis {s.name} starts from RANDOM network weights (the ImageNet ones are not installed): "
                     "its results test the software, not the method." for s in result.steps
                     if s.kind == "analysis" and s.ok and s.summary.get("weights") == "random"]
        warnings += [f"{s.kind} {s.name}: {s.status}: {s.message}" for s in result.steps
                     if s.status in ("failed", "skipped")]
        notes = [f"analysis {s.name}: {s.message}" for s in result.steps if s.status == NOT_SUPPORTED]
        label_rows = [{"label": n, "threshold_percent_per_day": 100 * s.summary.get("threshold", float("nan")),
                       "included": s.summary.get("included"), "excluded": s.summary.get("excluded")}
                      for n, s in label_steps.items() if s.ok]
        context = {
            "title": study["name"], "description": study["description"], "method": study["method"],
            "created": time.strftime("%Y-%m-%d %H:%M:%S %z"), "study_file": study_file or "",
            "patients": len(cohort), "cohort_source": ("synthetic sample cohort" if study["cohort"]["synthetic"]
                                                       else _shown_path(study["cohort"]["manifest"], out)),
            "characteristics": _html_table(characteristics, max_rows=200),
            "labels": _html_table(pd.DataFrame(label_rows)) if label_rows else None,
            "missing_counts": _html_table(counts, max_rows=200), "missing_figure": missing_figure,
            "failures": _html_table(failures, max_rows=200),
            "gradcam": _gradcam_figures(result, writer),
            "feature_sets": [_set_description(e, weights.get(e["name"])) for e in expand_features(study["features"])],
            "analyses": sections, "steps": _html_table(steps, max_rows=500),
            "counts": {status: result.count(status) for status in ("computed", "reused", "failed", "skipped",
                                                                   NOT_SUPPORTED)},
            "environment": env, "packages": sorted(env.get("packages", {}).items()), "seeds": seeds,
            "settings": yaml.safe_dump(study, sort_keys=False, allow_unicode=True),
            "warnings": warnings, "notes": notes, "checklist": _checklist(),
            "figure_files": writer.figure_files, "table_files": writer.table_files,
        }
        html = render(context)
        (Path(tmp) / "report.html").write_text(html, encoding="utf-8")
        write_text(Path(tmp) / "study.resolved.yaml", context["settings"])
    for name in ("figures", "tables"):  # swap in the new figures and tables as a whole
        with atomic_directory(out / name, overwrite=True) as target:
            source = stage / name
            if source.is_dir():
                for item in source.iterdir():
                    item.replace(Path(target) / item.name)
    (stage / "study.resolved.yaml").replace(out / "study.resolved.yaml")
    (stage / "report.html").replace(out / "report.html")
    import shutil

    shutil.rmtree(stage, ignore_errors=True)
    log(f"report: {out / 'report.html'}")
    return out / "report.html"


def render(context: Mapping) -> str:
    """The report's HTML from its context (Jinja2, autoescaped)."""
    try:
        import jinja2
    except ImportError:  # pragma: no cover - jinja2 comes with the [report] extra
        from ..errors import InputError

        raise InputError("the report needs Jinja2: pip install 'rtresponse[report]'") from None
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
                                     autoescape=True, trim_blocks=True,
                                     lstrip_blocks=True)
    return environment.get_template(TEMPLATE).render(**context)
