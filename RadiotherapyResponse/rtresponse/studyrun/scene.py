"""The study's results as a 3D Slicer scene, ``study.mrb``: the report's tables as table nodes, ROC and calibration
curves as charts, and an example patient's images with the contours overlaid (through :mod:`rtresponse.mrml`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError


def write_scene(result, cohort, to: Path | None = None, extra: dict | None = None) -> Path:
    """The scene (``to``, default ``study.mrb`` in the study folder); ``extra``: more {node name: DataFrame}."""
    import pandas as pd

    from .. import mrml
    from ..evaluation import roc_curve_points

    study, out = result.study, result.out
    scene = mrml.new_scene()
    pid = study["report"]["example_patient"] or cohort.patient_ids[0]
    if pid not in cohort.patient_ids:
        raise InputError(f"report.example_patient: no patient '{pid}' in the cohort")
    loaded = mrml.load_patient(cohort, pid, scene)
    for name, frame in (extra or {}).items():
        mrml.dataframe_to_table_node(frame, name, scene)
    tables = out / "tables"
    for name in ("cohort_characteristics", "missingness", "patient_failures", "steps"):
        if (tables / f"{name}.csv").is_file():
            mrml.dataframe_to_table_node(pd.read_csv(tables / f"{name}.csv"), f"study {name}", scene)
    for step in result.steps:
        if step.kind != "analysis" or not step.ok:
            continue
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in step.name)
        for part in ("results", "auc", "comparisons", "shapley", "recommendation_table", "cases"):
            path = tables / f"{stem}_{part}.csv"
            if path.is_file():
                mrml.dataframe_to_table_node(pd.read_csv(path), f"{step.name} {part}", scene)
        predictions = pd.read_csv(step.path / "predictions.csv") if (step.path / "predictions.csv").is_file() \
            else pd.DataFrame(columns=["model", "y", "probability"])
        curves = {}
        for model, table in predictions.groupby("model", sort=False):
            if table["y"].nunique() == 2:
                fpr, tpr, _ = roc_curve_points(table["y"].to_numpy(), table["probability"].to_numpy())
                curves[model] = (fpr, tpr)
        if curves:
            mrml.plot_xy(curves, f"{step.name} ROC", scene, x_title="1 - specificity", y_title="sensitivity")
        history = step.path / "history.csv"
        if history.is_file():  # the trained methods' loss curves
            frame = pd.read_csv(history)
            group = next((c for c in ("model", "regimen", "run") if c in frame), None)
            series = {f"{name} {column}".strip(): (t["epoch"].to_numpy(float), t[column].to_numpy(float))
                      for name, t in (frame.groupby(group, sort=False) if group else [("", frame)])
                      for column in ("train_loss", "validation_loss") if column in t and t[column].notna().any()}
            if series:
                mrml.plot_xy(series, f"{step.name} loss", scene, x_title="epoch", y_title="loss")
        calibration = tables / f"{stem}_calibration.csv"
        if calibration.is_file():
            frame = pd.read_csv(calibration)
            series = {model: (t["mean_predicted"].to_numpy(), t["observed"].to_numpy())
                      for model, t in frame.groupby("model", sort=False)}
            series["perfect calibration"] = (np.array([0.0, 1.0]), np.array([0.0, 1.0]))
            mrml.plot_xy(series, f"{step.name} calibration", scene, x_title="mean predicted probability",
                         y_title="observed fraction positive")
    path = mrml.save_scene(to or out / "study.mrb", scene)
    scene.Clear(1)
    _ = loaded
    return path
