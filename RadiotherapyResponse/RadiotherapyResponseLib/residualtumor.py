"""Residual Tumor's work outside its widget: the prediction (with Grad-CAM and, when asked, the tumour's automatic
segmentation) as a ``residual predict`` job, its results as nodes, training on a cohort (``residual train``), input
checks and guesses.

The widget exports the current patient (the MR, and the tumour segment on the MR's grid unless a segmenter finds
it) as a one-case cohort (:func:`exportPatient`) and runs ``rtresponse residual predict`` on it as a background job
(:func:`predictArguments`: the patient's row with the probabilities, verdicts, recommendation and reasoning, the
per-slice probabilities and the tumour mask used in ``--details``, the Grad-CAM maps in ``--gradcam``). When it
ends, :func:`loadPrediction` makes the nodes: a table (a row per tumour slice and a patient row), the
recommendation on it, a Grad-CAM volume per regimen and, when segmented, the tumour segmentation.
:func:`predict` does the same in process, for scripts. No Qt; MRML nodes only where a function takes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .segments import findSegment, inputVolumes, named

REGIMENS = ("CCRT", "IC+CCRT")  # rtresponse.recommendation.REGIMENS (checked by the tests)
RECOMMENDATIONS = ("CCRT", "IC+CCRT", "IBT")
FILE_TAGS = {"CCRT": "CCRT", "IC+CCRT": "IC_CCRT"}  # in file and column names
CASE, IMAGE, MASK = "patient", "MR", "GTV"  # the exported case, its image_MR and mask_GTV columns
PREDICTIONS, GRADCAM, DETAILS = "predictions.csv", "gradcam", "details"  # in the job folder
# Node attributes: outputs are recognised (never guessed as inputs); the recommendation survives a scene save
OUTPUT_ATTRIBUTE = "ResidualTumor.output"
RECOMMENDATION_ATTRIBUTE = "ResidualTumor.recommendation"
REASONING_ATTRIBUTE = "ResidualTumor.reasoning"
GRADCAM_COLOR_NODE_ID = "vtkMRMLColorTableNodeRainbow"  # a built-in Slicer colour table
TRAINING_PREFIX = "residual"
MODEL_FILES = {"CCRT": "ccrt.pt", "IC+CCRT": "ic_ccrt.pt"}  # what `residual train` writes
SEGMENTER_FILE = "segmenter.pt"  # what `residual segmenter` writes
WEIGHTS = ("imagenet", "random")
CLASSIFIERS, SEGMENTER = "regimen models", "tumour segmenter"  # what "Train on a cohort" trains
PAPER = "paper"  # the network choice "the paper's four networks"


class Cancelled(Exception):
    """A script's in-process run was cancelled; nothing was added to the scene."""


@dataclass
class ResidualNodes:
    """A run's outputs: the table (one row per tumour slice and a patient row), the tumour segmentation (only when
    segmented automatically), one Grad-CAM volume per regimen (empty without Grad-CAM), and the recommendation."""

    table: object
    recommendation: str
    reasoning: str
    probabilities: dict
    residual: dict
    segmentation: Optional[object] = None
    segmentId: str = ""
    gradcam: dict = field(default_factory=dict)


@dataclass
class ResidualInputs:
    """What one run reads, taken from the parameter node when Run is pressed."""

    mr: object
    segmentation: object = None  # the tumour segment, or None to segment with ``segmenterPath``
    segmentId: str = ""
    segmenterPath: str = ""
    ccrtModelPath: str = ""
    icModelPath: str = ""
    gradcam: bool = True

    @classmethod
    def fromParameterNode(cls, p) -> "ResidualInputs":
        if p.autoSegment:
            return cls(p.mrVolume, None, "", p.segmenterPath, p.ccrtModelPath, p.icModelPath, p.gradcam)
        return cls(p.mrVolume, p.tumorSegmentation, p.tumorSegmentId, "", p.ccrtModelPath, p.icModelPath, p.gradcam)

    def nodes(self) -> list:
        return [n for n in (self.mr, self.segmentation) if n is not None]


# --- input checks and guesses --------------------------------------------------------------------------------------

def inputProblem(p) -> str | None:
    """What keeps Run from starting, in one sentence; None when everything needed is chosen."""
    if p is None:
        return "No parameter node."
    if not p.mrVolume:
        return "Select the T1-enhanced MR volume."
    if p.autoSegment:
        if not p.segmenterPath:
            return "Select a segmenter model file, or uncheck Segment automatically."
        if not os.path.isfile(p.segmenterPath):
            return f"Segmenter file not found: {p.segmenterPath}."
    elif p.tumorSegmentation is None:
        return "Select a segmentation with the tumour segment, or check Segment automatically."
    elif not p.tumorSegmentId or p.tumorSegmentation.GetSegmentation().GetSegment(p.tumorSegmentId) is None:
        return "Select the tumour segment."
    for label, path in (("CCRT", p.ccrtModelPath), ("IC+CCRT", p.icModelPath)):
        if not path:
            return f"Select the {label} model file."
        if not os.path.isfile(path):
            return f"{label} model file not found: {path}."
    if os.path.abspath(p.ccrtModelPath) == os.path.abspath(p.icModelPath):
        return "The CCRT and IC+CCRT models must be different files."
    return None


def guessInputs(p, scene) -> None:
    """Fill the empty inputs from the scene by name: the MR (T1, else MR, else any volume) and a tumour segment
    (GTV or tumour). Outputs of this module are never picked."""
    if p is None:
        return
    volumes = inputVolumes(scene, OUTPUT_ATTRIBUTE)
    if not p.mrVolume:
        p.mrVolume = next((v for v in volumes if named(v, "t1", wordEnd=False)),
                          next((v for v in volumes if named(v, "mr", wordEnd=False)), volumes[0] if volumes else None))
    if not p.tumorSegmentation:
        segmentation, segmentId = findSegment(scene, ("gtv", "tumour", "tumor"), OUTPUT_ATTRIBUTE)
        if segmentation is not None:
            p.tumorSegmentation, p.tumorSegmentId = segmentation, segmentId


# --- the prediction job ------------------------------------------------------------------------------------------

def exportPatient(folder, inputs: ResidualInputs) -> Path:
    """Write the MR (and the tumour segment on its grid, unless it is to be segmented) as a one-case cohort."""
    from rtresponse.mrml.exchange import export_cases

    case = {"images": {IMAGE: inputs.mr}}
    if inputs.segmentation is not None:
        case["masks"] = {MASK: (inputs.segmentation, inputs.segmentId, inputs.mr)}
    return export_cases(folder, {CASE: case})


def predictArguments(manifest, inputs: ResidualInputs, device: str, folder) -> list:
    """``rtresponse residual predict`` on the exported patient, writing into the job ``folder``: the patient's row
    (predictions.csv), the per-slice probabilities and the tumour mask (details/), the Grad-CAM maps (gradcam/)."""
    folder = Path(folder)
    arguments = ["residual", "predict", "--ccrt", str(inputs.ccrtModelPath), "--ic-ccrt", str(inputs.icModelPath),
                 "--manifest", str(manifest), "--image", IMAGE, "--mask", MASK]
    if inputs.segmentation is None:
        arguments += ["--segmenter", str(inputs.segmenterPath)]
    if inputs.gradcam:
        arguments += ["--gradcam", str(folder / GRADCAM)]
    return arguments + ["--details", str(folder / DETAILS), "--device", str(device), "--out", str(folder / PREDICTIONS)]


def loadPrediction(inputs: ResidualInputs, folder, name: str | None = None) -> ResidualNodes:
    """The nodes of a finished ``residual predict`` job in ``folder``; InputError with the command's reason when the
    patient could not be predicted (e.g. the segmenter found no tumour)."""
    from rtresponse.errors import InputError
    from rtresponse.imageio import read_image, read_mask
    from rtresponse.inputs import read_table

    folder = Path(folder)
    row = read_table(folder / PREDICTIONS, "the predictions").iloc[0]
    if row.get("status") != "ok":
        raise InputError(str(row.get("status")))
    slices = read_table(folder / DETAILS / f"{CASE}_slices.csv", "the slice probabilities")
    gradcam = {regimen: read_image(folder / GRADCAM / f"{CASE}_gradcam_{tag}.nrrd")
               for regimen, tag in FILE_TAGS.items() if inputs.gradcam}
    mask = read_mask(folder / DETAILS / f"{CASE}_tumour.nrrd") if inputs.segmentation is None else None
    return makeNodes(inputs.mr, name or inputs.mr.GetName(), slices,
                     {regimen: float(row[f"p_residual_{tag}"]) for regimen, tag in FILE_TAGS.items()},
                     {regimen: bool(int(row[f"residual_{tag}"])) for regimen, tag in FILE_TAGS.items()},
                     str(row["recommendation"]), str(row.get("reasoning") or ""), mask, gradcam)


def resultFrame(slices, probabilities: dict, residual: dict, recommendation: str):
    """One row per tumour slice ("slice <k>") and a "patient" row: residual probability under each regimen, the
    residual call and the recommendation (patient row only), and each slice's tumour area. ``slices``: the
    prediction's per-slice table (slice_index, area_mm2, p_residual_CCRT, p_residual_IC_CCRT)."""
    import pandas as pd

    columns = [f"p_residual_{tag}" for tag in FILE_TAGS.values()]
    calls = [f"residual_{tag}" for tag in FILE_TAGS.values()]
    frame = pd.DataFrame({"slice_index": slices["slice_index"].astype(float).tolist(),
                          **{column: slices[column].astype(float).tolist() for column in columns},
                          **{call: [""] * len(slices) for call in calls + ["recommendation"]},
                          "area_mm2": slices["area_mm2"].astype(float).tolist()},
                         index=pd.Index([f"slice {int(k)}" for k in slices["slice_index"]], name="row"))
    patient = pd.DataFrame({"slice_index": [float("nan")],
                            **{column: [float(probabilities[r])] for column, r in zip(columns, REGIMENS)},
                            **{call: ["residual" if residual[r] else "no residual"]
                               for call, r in zip(calls, REGIMENS)},
                            "recommendation": [recommendation], "area_mm2": [float(slices["area_mm2"].sum())]},
                           index=pd.Index(["patient"], name="row"))
    return pd.concat([frame, patient])


def makeNodes(mrNode, name: str, slices, probabilities, residual, recommendation, reasoning, mask=None,
              gradcam=None) -> ResidualNodes:
    """The table (recommendation and reasoning as attributes), the tumour segmentation when ``mask`` is given (it
    was segmented), and a Grad-CAM volume per regimen; every node marked as an output of this module."""
    from rtresponse import mrml

    scene = mrNode.GetScene()
    table = mrml.dataframe_to_table_node(resultFrame(slices, probabilities, residual, recommendation),
                                         f"{name} residual tumour", scene=scene)
    table.SetAttribute(RECOMMENDATION_ATTRIBUTE, recommendation)
    table.SetAttribute(REASONING_ATTRIBUTE, reasoning)
    nodes = ResidualNodes(table, recommendation, reasoning, dict(probabilities), dict(residual))
    if mask is not None:
        nodes.segmentation = mrml.new_segmentation_node(f"{name} tumour (segmented)", mrNode, scene=scene)
        nodes.segmentId = mrml.mask_to_segment(mask, nodes.segmentation, "tumour", mrNode, (0.85, 0.2, 0.2))
    for regimen, cam in (gradcam or {}).items():
        node = mrml.image_to_volume_node(cam, f"{name} Grad-CAM {regimen}", scene=scene)
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        if display is not None:
            display.SetAndObserveColorNodeID(GRADCAM_COLOR_NODE_ID)
            display.AutoWindowLevelOff()
            display.SetWindowLevelMinMax(0.0, 1.0)
        nodes.gradcam[regimen] = node
    for node in [nodes.table, nodes.segmentation, *nodes.gradcam.values()]:
        if node is not None:
            node.SetAttribute(OUTPUT_ATTRIBUTE, "1")
    return nodes


def predict(mrNode, ccrtModel, icModel, tumorSegmentation=None, tumorSegmentId=None, segmenter=None, device="auto",
            gradcam=True, name=None, progress=None, shouldCancel=None) -> ResidualNodes:
    """In process, for scripts: residual tumour under each regimen and the recommendation, in new nodes.

    ``ccrtModel``, ``icModel``: classifier files (or loaded classifiers). The tumour is ``tumorSegmentId`` of
    ``tumorSegmentation``, or, without them, segmented with ``segmenter`` (a file or a loaded ``Segmenter``; the mask
    then becomes a new segmentation node). ``progress(done, total)`` after each of 3 steps; ``shouldCancel()`` True
    (asked once the models are loaded and between the prediction's stages) raises :class:`Cancelled`, nothing made."""
    from rtresponse import mrml
    from rtresponse.errors import Cancelled as PredictionCancelled
    from rtresponse.errors import InputError
    from rtresponse.residual import load_classifier, load_segmenter, predict_patient
    from rtresponse.settings import resolve_device

    if mrNode is None:
        raise InputError("no MR volume selected")
    useSegment = tumorSegmentation is not None and bool(tumorSegmentId)
    if not useSegment and segmenter is None:
        raise InputError("no tumour: select a tumour segment or a segmenter model")
    progress = progress or (lambda done, total: None)
    image = mrml.volume_node_to_image(mrNode)  # inputs read and models loaded before anything is added
    mask = mrml.segment_to_mask(tumorSegmentation, tumorSegmentId, mrNode) if useSegment else None
    device = resolve_device(device)
    models = []
    for model, what in ((ccrtModel, "CCRT"), (icModel, "IC+CCRT")):
        if model is None or (isinstance(model, (str, os.PathLike)) and not os.fspath(model)):
            raise InputError(f"no {what} model given")
        models.append(load_classifier(model, device) if isinstance(model, (str, os.PathLike)) else model)
    loaded = None if useSegment else (load_segmenter(segmenter, device) if isinstance(segmenter, (str, os.PathLike))
                                      else segmenter)
    progress(1, 3)
    if shouldCancel is not None and shouldCancel():
        raise Cancelled("cancelled before the prediction started")
    try:
        result = predict_patient(image, mask, models[0], models[1], segmenter=loaded, patient_id=name or "",
                                 device=device, gradcam=gradcam, should_cancel=shouldCancel)
    except PredictionCancelled as error:  # between the prediction's stages; nothing was made yet
        raise Cancelled(str(error)) from error
    progress(2, 3)
    nodes = makeNodes(mrNode, name or mrNode.GetName(), result.slices, result.probabilities, result.residual,
                      result.recommendation, result.reasoning, None if useSegment else result.mask, result.gradcam)
    progress(3, 3)
    return nodes


# --- results -----------------------------------------------------------------------------------------------------

def keepOutputs(p, nodes: ResidualNodes) -> None:
    p.outputTable = nodes.table
    p.outputSegmentation = nodes.segmentation
    p.outputGradcamCCRT = nodes.gradcam.get("CCRT")
    p.outputGradcamIC = nodes.gradcam.get("IC+CCRT")


def recommendationText(tableNode) -> str:
    """The recommendation and its reasoning stored on a run's table node ("" without one)."""
    if tableNode is None or not tableNode.GetAttribute(RECOMMENDATION_ATTRIBUTE):
        return ""
    return (f"Recommendation: {tableNode.GetAttribute(RECOMMENDATION_ATTRIBUTE)}\n"
            f"{tableNode.GetAttribute(REASONING_ATTRIBUTE) or ''}\nResearch use only: not for clinical decisions.")


def summary(nodes: ResidualNodes) -> str:
    probabilities = ", ".join(f"{regimen} {nodes.probabilities[regimen]:.2f}" for regimen in REGIMENS)
    text = f"Residual probability: {probabilities} (table '{nodes.table.GetName()}')."
    if nodes.segmentation is not None:
        text += f" Tumour segmented automatically: '{nodes.segmentation.GetName()}'."
    if nodes.gradcam:
        text += " Grad-CAM maps: " + ", ".join(f"'{n.GetName()}'" for n in nodes.gradcam.values()) + "."
    return text


def showResult(mrNode, nodes: ResidualNodes, overlayRegimen: str = "CCRT") -> None:
    """The chosen regimen's Grad-CAM map over the MR (half opaque), the segmentation, the table in a table view."""
    import slicer

    from .slicerutils import showTable

    overlay = nodes.gradcam.get(overlayRegimen) or next(iter(nodes.gradcam.values()), None)
    slicer.util.setSliceViewerLayers(background=mrNode, foreground=overlay, foregroundOpacity=0.5)
    if nodes.segmentation is not None and nodes.segmentation.GetDisplayNode() is not None:
        nodes.segmentation.GetDisplayNode().SetVisibility(True)
    showTable(nodes.table)


# --- training on a cohort ----------------------------------------------------------------------------------------

def trainArguments(manifest, out, device: str, weightsFolder, network: str, weights: str, epochs: int,
                   learningRate: float, inputSize: int = 0, image: str = "T1", mask: str = "GTVp",
                   regimen: str = "regimen", outcome: str = "residual") -> list:
    """``rtresponse residual train``: both regimen classifiers (ccrt.pt, ic_ccrt.pt) and the model card into ``out``;
    ``network``: a catalogue network or "paper" (its four, the best kept); ``weights``: imagenet (from the weights
    folder), random, or a file; ``inputSize`` 0: the network's own crop size."""
    arguments = ["residual", "train", "--manifest", str(manifest), "--image", image, "--mask", mask,
                 "--regimen", regimen, "--outcome", outcome, "--network", network, "--weights", str(weights),
                 "--epochs", str(int(epochs)), "--lr", f"{float(learningRate):g}", "--device", str(device)]
    if int(inputSize):
        arguments += ["--input-size", str(int(inputSize))]
    if weightsFolder:
        arguments += ["--weights-folder", str(weightsFolder)]
    return arguments + ["--out", str(out)]


def segmenterArguments(manifest, out, device: str, weightsFolder, weights: str, epochs: int, learningRate: float,
                       inputSize: int = 0, image: str = "T1", mask: str = "GTVp") -> list:
    """``rtresponse residual segmenter``: U-Net and DeepLabv3 (its ResNet-50 backbone from ``weights``), the better
    on validation Dice kept as segmenter.pt in ``out``; ``inputSize`` 0: the command's 256."""
    arguments = ["residual", "segmenter", "--manifest", str(manifest), "--image", image, "--mask", mask,
                 "--weights", str(weights), "--epochs", str(int(epochs)), "--lr", f"{float(learningRate):g}",
                 "--device", str(device)]
    if int(inputSize):
        arguments += ["--input-size", str(int(inputSize))]
    if weightsFolder:
        arguments += ["--weights-folder", str(weightsFolder)]
    return arguments + ["--out", str(out)]


def trainingPlan(p, out, device: str, weightsFolder) -> tuple:
    """(arguments, the network whose ImageNet weights must be in the weights folder or None, description) of the
    training the parameter node asks for (``p.trainWhat``: the regimen models or the tumour segmenter)."""
    if p.trainWhat == SEGMENTER:
        return (segmenterArguments(p.trainManifest, out, device, weightsFolder, p.trainWeights, p.trainEpochs,
                                   p.trainLearningRate, p.trainInputSize, p.trainImage, p.trainMask),
                "resnet50" if p.trainWeights == "imagenet" else None,
                f"Training the tumour segmenters (U-Net, DeepLabv3) into {out}...")
    arguments = trainArguments(p.trainManifest, out, device, weightsFolder, p.trainNetwork, p.trainWeights,
                               p.trainEpochs, p.trainLearningRate, p.trainInputSize, p.trainImage, p.trainMask,
                               p.trainRegimen, p.trainOutcome)
    network = p.trainNetwork if p.trainWeights == "imagenet" and p.trainNetwork != PAPER else None
    return arguments, network, f"Training the CCRT and IC+CCRT models into {out}..."


def trainedModels(out) -> dict:
    """{regimen: model file} of a finished ``residual train`` in ``out``."""
    return {regimen: str(Path(out) / name) for regimen, name in MODEL_FILES.items()}


def trainedParameters(what: str, out) -> tuple:
    """({parameter: new value}, status text) once a training of ``what`` has written its models to ``out``: they
    become the module's model files."""
    from .training import cardSummary, modelCard

    if what == SEGMENTER:
        path = str(Path(out) / SEGMENTER_FILE)
        return {"segmenterPath": path, "autoSegment": True}, f"Trained: {path} is now the segmenter."
    models = trainedModels(out)
    return ({"ccrtModelPath": models["CCRT"], "icModelPath": models["IC+CCRT"]},
            f"Trained: the models in {out} are now the CCRT and IC+CCRT models.\n"
            f"{cardSummary(modelCard(models['CCRT']))}")
