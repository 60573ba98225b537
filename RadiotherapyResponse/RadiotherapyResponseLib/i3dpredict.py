"""I3D prediction of the patient in the scene as a background job: the MR volumes, the tumour segment and the
clinical values go to a job folder as a one-patient cohort, ``rtresponse i3d predict`` computes the I3D features
and the probability in a child process, and the prediction comes back as a one-row table node.

:func:`predict` does the same in process (for scripts and the module's Logic): one code path from the exported
patient to the table. Needs neither Qt nor Slicer (slicer-core's MRML).
"""

from __future__ import annotations

import os
from pathlib import Path

from .i3dinputs import clinicalInputs, modelInfo

CASE = "patient"
PREDICTION_FILE = "prediction.csv"


def exportPatient(folder, info: dict, volumeNodes, segmentationNode, segmentId, clinical: dict | None = None) -> dict:
    """Write the patient as a one-case cohort in ``folder``. ``volumeNodes``: {sequence: volume node} or a list in
    the model's sequence order; the tumour segment becomes the model's mask on the first sequence's grid;
    ``clinical``: {factor: value}, checked against the model (:func:`~.i3dinputs.clinicalInputs`).
    Returns {"manifest": path, "notGiven": [factors], "unknownCategories": {factor: value}}."""
    from rtresponse.errors import InputError
    from rtresponse.mrml.exchange import export_cases

    sequences = info["sequences"]
    if isinstance(volumeNodes, dict):
        nodes = [volumeNodes.get(s) for s in sequences]
    else:
        nodes = (list(volumeNodes or []) + [None] * len(sequences))[:len(sequences)]
    missing = [s for s, node in zip(sequences, nodes) if node is None]
    if missing:
        raise InputError(f"select the patient's {' and '.join(missing)} volume(s): the model reads "
                         f"{', '.join(sequences)}")
    if segmentationNode is None or not segmentId or segmentationNode.GetSegmentation().GetSegment(segmentId) is None:
        raise InputError(f"select the tumour segment (the model was trained on the {info['mask']} mask)")
    inputs, notGiven, unknown = clinicalInputs(info, clinical)
    manifest = export_cases(folder, {CASE: {"images": dict(zip(sequences, nodes)),
                                            "masks": {info["mask"]: (segmentationNode, segmentId, nodes[0])},
                                            "clinical": {k: ("" if v is None else v) for k, v in inputs.items()}}})
    return {"manifest": manifest, "notGiven": notGiven, "unknownCategories": unknown}


def predictArguments(manifest, model, device: str, weightsFolder, out) -> list[str]:
    """``rtresponse i3d predict`` of the exported patient (the backbone weights are the model's own)."""
    arguments = ["i3d", "predict", "--manifest", str(manifest), "--model", str(model), "--device", str(device)]
    if weightsFolder:
        arguments += ["--weights-folder", str(weightsFolder)]
    return arguments + ["--out", str(out)]


def loadPrediction(out, modelPath, info: dict, exported: dict, scene, tableName: str | None = None) -> dict:
    """The prediction file as a one-row table node; returns {"probability", "predicted", "cutoff", "outcome",
    "positive", "model", "weights", "notGiven", "unknownCategories", "tableNodeID"}."""
    import pandas as pd

    from rtresponse import mrml
    from rtresponse.errors import InputError

    frame = pd.read_csv(out, dtype={"patient_id": str})
    row = frame.iloc[0]
    if row["status"] != "ok":
        raise InputError(f"the patient could not be predicted: {row['status']}", path=os.fspath(modelPath))
    result = {"probability": float(row["probability"]), "predicted": int(row["predicted"]),
              "cutoff": info["cutoff"], "outcome": info["outcome"], "positive": info["positive"],
              "model": info["model"], "weights": info["weights"], "notGiven": list(exported["notGiven"]),
              "unknownCategories": dict(exported["unknownCategories"])}
    table = mrml.dataframe_to_table_node(
        pd.DataFrame([{"model": result["model"], "probability": result["probability"], "cutoff": result["cutoff"],
                       "predicted_positive": result["predicted"], "outcome": result["outcome"],
                       "positive": result["positive"]}]),
        scene.GenerateUniqueName(tableName or f"{result['outcome']} I3D prediction"), scene)
    table.SetAttribute("ResponseModel.model", os.fspath(modelPath))
    result["tableNodeID"] = table.GetID()
    return result


def predict(modelPath, volumeNodes, segmentationNode, segmentId, clinical=None, device: str = "auto",
            weightsFolder=None, tableName=None, scene=None) -> dict:
    """Probability of an I3D model's positive class for the patient in the scene, in process (blocks until done);
    also added as a one-row table. Arguments as :func:`exportPatient`; the inputs are only read."""
    import tempfile

    from rtresponse.cohort import load_manifest
    from rtresponse.errors import InputError
    from rtresponse.models.i3d.outputs import predict_patients
    from rtresponse.settings import resolve_device

    if not modelPath:
        raise InputError("no I3D model file chosen")
    info = modelInfo(modelPath)
    with tempfile.TemporaryDirectory(prefix="i3d-predict-") as folder:
        exported = exportPatient(folder, info, volumeNodes, segmentationNode, segmentId, clinical)
        table = predict_patients(modelPath, load_manifest(exported["manifest"]), None, weightsFolder,
                                 resolve_device(device))
        out = Path(folder) / PREDICTION_FILE
        table.to_csv(out, index=False)
        scene = scene or segmentationNode.GetScene()
        return loadPrediction(out, modelPath, info, exported, scene, tableName)


def summary(result: dict) -> str:
    """The probability, the model's cut-off and the predicted class in words."""
    outcome, positive = result.get("outcome") or "outcome", result.get("positive")
    verdict = f"{outcome} = {positive} (positive)" if result["predicted"] else f"not {outcome} = {positive} (negative)"
    lines = [f"{result.get('model') or 'I3D model'}: probability of {outcome} = {positive} is "
             f"{result['probability']:.3f}; cut-off {result['cutoff']:.3f}.", f"Predicted: {verdict}."]
    if result.get("notGiven"):
        lines.append(f"Not given (unknown / training median used): {', '.join(result['notGiven'])}.")
    if result.get("unknownCategories"):
        lines.append("Values the model never saw (counted as unknown): "
                     + ", ".join(f"{k}={v}" for k, v in result["unknownCategories"].items()) + ".")
    if result.get("weights") == "random":
        lines.append("Random backbone weights: a test model, not a usable prediction.")
    return "\n".join(lines)
