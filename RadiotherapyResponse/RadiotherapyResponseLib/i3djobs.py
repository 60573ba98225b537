"""Response Model's I3D training as a background job: the ``rtresponse i3d train`` command line and its outputs
(metrics.csv, history_<model>.csv, the model files, failures.csv) loaded as a results table and a loss chart.

The cohort is already a manifest on disk, so nothing is exported: the job reads it and writes into the output folder
(the cached I3D features, i3d_features.npz, are kept there and reused by the next training into the same folder).
Needs neither Qt nor Slicer (slicer-core's MRML).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

IMAGE_ONLY, WITH_CLINICAL = "DLR (MR)", "DLR (MR + CF)"
MODEL_FILES = {IMAGE_ONLY: "dlr_mr.pt", WITH_CLINICAL: "dlr_mr_cf.pt"}  # as rtresponse.models.i3d.outputs names them


def trainArguments(manifest, outcome: str, out, positive: str = "", sequences: Sequence[str] = ("T1", "T2"),
                   mask: str = "GTVp", clinicalFactors: Sequence[str] = (), imageOnly: bool = False,
                   weights: str = "imagenet", weightsFolder=None, shape: Sequence = (96, 96, 24),
                   spacing: Sequence = (1.5, 1.5, 3.0), trials: int = 0, maxEpochs: int = 300,
                   device: str = "auto", overwrite: bool = False, seed: int = 0) -> list[str]:
    """The ``rtresponse i3d train`` command line (clinical factors named without the clin_ prefix)."""
    arguments = ["i3d", "train", "--manifest", str(manifest), "--outcome", str(outcome)]
    if str(positive or "").strip():
        arguments += ["--positive", str(positive).strip()]
    arguments += ["--image", *[str(s) for s in sequences], "--mask", str(mask)]
    if imageOnly:
        arguments += ["--no-clinical"]
    elif clinicalFactors:
        arguments += ["--clinical", *[str(f) for f in clinicalFactors]]
    arguments += ["--weights", str(weights)]
    if weightsFolder:
        arguments += ["--weights-folder", str(weightsFolder)]
    arguments += ["--shape", *[str(int(v)) for v in shape], "--spacing", *[f"{float(v):g}" for v in spacing],
                  "--trials", str(int(trials)), "--epochs", str(int(maxEpochs)), "--device", str(device),
                  "--seed", str(int(seed))]
    return arguments + (["--overwrite"] if overwrite else []) + ["--out", str(out)]


def lossSeries(out) -> dict:
    """{"<model> training" / "<model> validation": (epochs, losses)} from the history_<model>.csv files."""
    import pandas as pd

    series = {}
    for name, file in MODEL_FILES.items():
        path = Path(out) / f"history_{Path(file).stem}.csv"
        if path.is_file():
            history = pd.read_csv(path)
            series[f"{name} training"] = (list(history["epoch"]), list(history["train_loss"]))
            series[f"{name} validation"] = (list(history["epoch"]), list(history["validation_loss"]))
    return series


def loadTraining(out, scene, outcome: str = "", weights: str = "", lossChart: bool = True) -> dict:
    """A finished training's outputs as nodes: {"results": table node (metrics.csv), "lossChart": plot chart node
    (None when ``lossChart`` is False: the module drew the curves live from the job's epochs),
    "paths": {model: file}, "modelPath": the file Predict uses (DLR (MR + CF) when trained), "outputFolder",
    "failures": {patient: problem}, "metrics": DataFrame}."""
    import pandas as pd

    from rtresponse import mrml

    out = Path(out)
    metrics = pd.read_csv(out / "metrics.csv")
    paths = {name: out / file for name, file in MODEL_FILES.items() if (out / file).is_file()}
    results = mrml.dataframe_to_table_node(metrics, scene.GenerateUniqueName("I3D results"), scene)
    for key, value in (("outcome", outcome), ("weights", weights), ("outputFolder", out)):
        results.SetAttribute(f"ResponseModel.i3d.{key}", str(value))
    for name, path in paths.items():
        results.SetAttribute(f"ResponseModel.i3d.model.{name}", str(path))
    chart = mrml.plot_xy(lossSeries(out), scene.GenerateUniqueName("I3D loss curves"), scene, x_title="epoch",
                         y_title="cross-entropy loss") if lossChart else None
    failures = {}
    if (out / "failures.csv").is_file():
        frame = pd.read_csv(out / "failures.csv", dtype=str)
        failures = dict(zip(frame["patient_id"], frame["problem"]))
    return {"results": results, "lossChart": chart, "paths": paths,
            "modelPath": paths.get(WITH_CLINICAL, paths.get(IMAGE_ONLY)), "outputFolder": out, "failures": failures,
            "metrics": metrics, "weights": weights}


def summary(loaded: dict) -> str:
    """One paragraph on a finished training: each model's test AUC and where things are."""
    lines = []
    for _index, row in loaded["metrics"].iterrows():
        lines.append(f"{row['model']}: test AUC {row['auc']:.3f} ({row['auc_low']:.3f}-{row['auc_high']:.3f}), "
                     f"balanced accuracy {row['balanced_accuracy']:.3f}, Brier {row['brier']:.3f}.")
    chart = loaded["lossChart"]
    curves = f"; loss curves: '{chart.GetName()}'." if chart else "."
    lines.append(f"Results: '{loaded['results'].GetName()}'{curves}")
    model = loaded["modelPath"]
    lines.append(f"Files in {loaded['outputFolder']}; model for Predict: {Path(model).name if model else 'none'}.")
    if loaded.get("weights") == "random":
        lines.append("Random backbone weights: a test of the pipeline, not a usable model.")
    if loaded["failures"]:
        first = next(iter(loaded["failures"].items()))
        lines.append(f"{len(loaded['failures'])} patient(s) left out, e.g. {first[0]}: {first[1]}")
    return "\n".join(lines)
