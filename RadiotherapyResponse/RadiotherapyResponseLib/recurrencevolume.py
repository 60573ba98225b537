"""Recurrence Volume's work outside its widget: the prediction as a ``recurrence predict`` job, the scene outputs,
the threshold slider, training on a cohort (``recurrence train``), input checks and guesses.

The widget exports the current patient (CT, PET and the GTV on the CT's grid) as a one-case cohort
(:func:`exportPatient`), runs ``rtresponse recurrence predict`` on it as a background job
(:func:`predictArguments`) and, when it ends, makes the outputs from the probability map it wrote
(:func:`loadPrediction`): the map over the CT, the predicted-relapse segment at the threshold, the
SUVmax-threshold and GTV baselines and, given the observed relapse, the metrics table. Thresholds, baselines
and metrics take well under a second and run in Slicer's process, as does the threshold slider
(:func:`setThreshold`). :func:`predict` does everything in process, for scripts. No Qt; MRML nodes only where
a function takes them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .segments import findSegment, inputVolumes, named

CASE = "patient"  # the one case of the exported cohort
CT, PET, GTV = "CT", "PET", "GTV"  # its image_CT, image_PET and mask_GTV columns
PREDICTION_FOLDER = "prediction"
# Node attributes: outputs are recognised (never guessed as inputs) and the applied threshold survives a scene save
OUTPUT_ATTRIBUTE = "RecurrenceVolume.output"
THRESHOLD_ATTRIBUTE = "RecurrenceVolume.threshold"
MODEL_ATTRIBUTE = "RecurrenceVolume.model"
TRAINING_PREFIX = "recurrence"
MODEL_FILE = "model.pt"


class Cancelled(Exception):
    """A script's in-process run was cancelled before the prediction started; nothing was added to the scene."""


@dataclass
class RecurrenceInputs:
    """What one run reads, taken from the parameter node when Run is pressed (the user may change the selection
    while the job runs; the results belong to these nodes)."""

    ct: object
    pet: object
    gtvSegmentation: object
    gtvSegmentId: str
    brainSegmentation: object = None
    brainSegmentId: str = ""
    relapseSegmentation: object = None
    relapseSegmentId: str = ""
    modelPath: str = ""
    threshold: float = 0.5
    fraction: float = 0.38

    @classmethod
    def fromParameterNode(cls, p) -> "RecurrenceInputs":
        return cls(p.ctVolume, p.petVolume, p.gtvSegmentation, p.gtvSegmentId,
                   p.brainSegmentation if p.brainSegmentId else None, p.brainSegmentId or "",
                   p.relapseSegmentation if p.relapseSegmentId else None, p.relapseSegmentId or "",
                   p.modelPath, float(p.threshold), p.suvmaxFractionPercent / 100.0)

    def nodes(self) -> list:
        """The nodes that must still be in the scene when the results are loaded."""
        return [n for n in (self.ct, self.pet, self.gtvSegmentation, self.brainSegmentation, self.relapseSegmentation)
                if n is not None]


# --- input checks and guesses --------------------------------------------------------------------------------------

def inputProblem(p) -> str | None:
    """What keeps Run from starting, in one sentence; None when everything needed is chosen."""
    if p is None:
        return "No parameter node."
    if not p.ctVolume:
        return "Select a CT volume."
    if not p.petVolume:
        return "Select a PET volume."
    if p.ctVolume is p.petVolume:
        return "The CT and PET volumes must be different volumes."
    for label, segmentation, segmentId, required in (
            ("GTV", p.gtvSegmentation, p.gtvSegmentId, True),
            ("brain", p.brainSegmentation, p.brainSegmentId, False),
            ("relapse", p.relapseSegmentation, p.relapseSegmentId, False)):
        if segmentation is None:
            if required:
                return f"Select a segmentation with the {label} segment."
        elif not segmentId or segmentation.GetSegmentation().GetSegment(segmentId) is None:
            return f"Select the {label} segment" + ("." if required else ", or no segmentation.")
    if p.modelPath and not os.path.isfile(p.modelPath):
        return f"Model file not found: {p.modelPath}. Clear it to make only the baselines."
    return None


def guessInputs(p, scene) -> None:
    """Fill the empty inputs from the scene by name: a PET (PET/SUV), a CT (CT, else any other volume), a GTV
    segment, a brain segment and a relapse/recurrence segment. Outputs of this module are never picked."""
    if p is None:
        return
    volumes = inputVolumes(scene, OUTPUT_ATTRIBUTE)
    if not p.petVolume:
        p.petVolume = next((v for v in volumes if named(v, "pet", "suv")), None)
    if not p.ctVolume:
        others = [v for v in volumes if v is not p.petVolume]
        p.ctVolume = next((v for v in others if named(v, "ct")), others[0] if others else None)
    for words, nodeParameter, idParameter in ((("gtv",), "gtvSegmentation", "gtvSegmentId"),
                                              (("brain",), "brainSegmentation", "brainSegmentId"),
                                              (("relapse", "recurrence"), "relapseSegmentation", "relapseSegmentId")):
        if not getattr(p, nodeParameter):
            segmentation, segmentId = findSegment(scene, words, OUTPUT_ATTRIBUTE)
            if segmentation is not None:
                setattr(p, nodeParameter, segmentation)
                setattr(p, idParameter, segmentId)


# --- the prediction job ------------------------------------------------------------------------------------------

def exportPatient(folder, inputs: RecurrenceInputs) -> Path:
    """Write the CT, the PET (its own grid) and the GTV (on the CT's grid) as a one-case cohort; the manifest."""
    from rtresponse.mrml.exchange import export_cases

    return export_cases(folder, {CASE: {"images": {CT: inputs.ct, PET: inputs.pet},
                                        "masks": {GTV: (inputs.gtvSegmentation, inputs.gtvSegmentId, inputs.ct)}}})


def predictArguments(manifest, model, device: str, threshold: float, out) -> list:
    """``rtresponse recurrence predict`` on the exported patient (the box is the model's own)."""
    return ["recurrence", "predict", "--manifest", str(manifest), "--image", CT, PET, "--gtv", GTV,
            "--model", str(model), "--threshold", f"{float(threshold):g}", "--device", str(device), "--out", str(out)]


def probabilityFile(out) -> Path:
    return Path(out) / f"{CASE}_probability.nrrd"


def makeOutputs(inputs: RecurrenceInputs, probability=None, name: str | None = None):
    """The run's nodes (``rtresponse.recurrence.nodes.RecurrenceNodes``) from a probability map on the CT's grid
    (None: the baselines only), marked as outputs of this module."""
    from rtresponse.recurrence.nodes import outputs_in_scene

    nodes = outputs_in_scene(inputs.ct, inputs.pet, inputs.gtvSegmentation, inputs.gtvSegmentId, probability,
                             inputs.threshold, inputs.fraction, inputs.brainSegmentation,
                             inputs.brainSegmentId or None, inputs.relapseSegmentation,
                             inputs.relapseSegmentId or None, name, inputs.ct.GetScene())
    markOutputs(nodes, inputs.threshold, inputs.modelPath if probability is not None else "none")
    return nodes


def markOutputs(nodes, threshold: float, model: str) -> None:
    for node in (nodes.probability, nodes.segmentation, nodes.metrics):
        if node is not None:
            node.SetAttribute(OUTPUT_ATTRIBUTE, "1")
    if nodes.probability is not None:
        nodes.segmentation.SetAttribute(THRESHOLD_ATTRIBUTE, f"{threshold:.2f}")
    nodes.segmentation.SetAttribute(MODEL_ATTRIBUTE, model)


def loadPrediction(inputs: RecurrenceInputs, out):
    """The nodes of a finished ``recurrence predict`` job (its probability map read from ``out``)."""
    from rtresponse.imageio import read_image

    return makeOutputs(inputs, read_image(probabilityFile(out)))


def predict(ctNode, petNode, gtvSegmentation, gtvSegmentId, model=None, device="auto", threshold=0.5, fraction=None,
            brainSegmentation=None, brainSegmentId=None, relapseSegmentation=None, relapseSegmentId=None,
            box_xyz=None, name=None, progress=None, shouldCancel=None):
    """In process, for scripts: relapse prediction and baselines in new nodes (``RecurrenceNodes``).

    ``model``: a recurrence model file, a loaded network, or None for the baselines only (SUVmax threshold at
    ``fraction``, default the paper's 38 %, and the GTV). ``box_xyz``: the network's box in voxels (default: the
    model file's, else ``rtresponse.recurrence.BOX_XYZ``). ``progress(done, total)`` after loading the model and
    at the end; ``shouldCancel()`` True once the model is loaded raises :class:`Cancelled` (nothing is made)."""
    from rtresponse.errors import InputError
    from rtresponse.recurrence import BOX_XYZ, PAPER_FRACTION, load_model
    from rtresponse.recurrence.nodes import predict_in_scene
    from rtresponse.settings import resolve_device

    for node, what in ((ctNode, "CT volume"), (petNode, "PET volume"), (gtvSegmentation, "GTV segmentation")):
        if node is None:
            raise InputError(f"no {what} selected")
    progress = progress or (lambda done, total: None)
    network, settings = None, {}
    if isinstance(model, (str, os.PathLike)) and os.fspath(model):
        device = resolve_device(device)
        network, settings = load_model(model, device)
    elif model is not None and not isinstance(model, (str, os.PathLike)):
        device = resolve_device(device)
        network = model.to(device)
    progress(1, 2)
    if shouldCancel is not None and shouldCancel():
        raise Cancelled("cancelled before the prediction started")
    box = tuple(box_xyz or settings.get("box_xyz") or BOX_XYZ)
    nodes = predict_in_scene(ctNode, petNode, gtvSegmentation, gtvSegmentId, network=network,
                             device=device if network is not None else "cpu", threshold=threshold,
                             fraction=PAPER_FRACTION if fraction is None else fraction,
                             brain_segmentation=brainSegmentation if brainSegmentId else None,
                             brain_segment=brainSegmentId or None,
                             relapse_segmentation=relapseSegmentation if relapseSegmentId else None,
                             relapse_segment=relapseSegmentId or None, box_xyz=box, name=name,
                             scene=ctNode.GetScene())
    modelName = os.fspath(model) if isinstance(model, (str, os.PathLike)) and model else (
        "network" if network is not None else "none")
    markOutputs(nodes, threshold, modelName)
    progress(2, 2)
    return nodes


# --- results -----------------------------------------------------------------------------------------------------

def currentResult(p):
    """The latest run's outputs as ``RecurrenceNodes``; None without a probability map (or after deletion)."""
    from rtresponse.recurrence.nodes import PREDICTED, RecurrenceNodes

    if p is None or not p.outputProbability or not p.outputSegmentation:
        return None
    segmentIds = {}
    if p.predictedSegmentId and p.outputSegmentation.GetSegmentation().GetSegment(p.predictedSegmentId):
        segmentIds[PREDICTED] = p.predictedSegmentId
    return RecurrenceNodes(probability=p.outputProbability, segmentation=p.outputSegmentation,
                           segment_ids=segmentIds, metrics=p.outputMetrics)


def keepOutputs(p, nodes) -> None:
    """Record the run's outputs in the parameter node (the slider redraws its predicted segment)."""
    from rtresponse.recurrence.nodes import PREDICTED

    p.outputProbability = nodes.probability
    p.outputSegmentation = nodes.segmentation
    p.outputMetrics = nodes.metrics
    p.predictedSegmentId = nodes.segment_ids.get(PREDICTED, "")


def setThreshold(nodes, threshold, ctNode=None) -> str:
    """Dose painting: the predicted-relapse segment redrawn from the probability map at ``threshold`` (0-1,
    exclusive); returns the new segment's id. ``ctNode`` defaults to the map, which lies on the CT's grid."""
    from rtresponse.errors import InputError
    from rtresponse.recurrence.nodes import set_threshold

    if nodes.probability is None:
        raise InputError("no probability map: the run had no model")
    segmentId = set_threshold(nodes, ctNode or nodes.probability, float(threshold))
    nodes.segmentation.SetAttribute(THRESHOLD_ATTRIBUTE, f"{float(threshold):.2f}")
    return segmentId


def appliedThreshold(nodes):
    """The threshold of the predicted-relapse segment now in ``nodes.segmentation`` (None when unknown)."""
    value = nodes.segmentation.GetAttribute(THRESHOLD_ATTRIBUTE) if nodes.segmentation else None
    return round(float(value), 2) if value else None


def summary(nodes) -> str:
    from rtresponse import mrml

    names = list(mrml.segment_names(nodes.segmentation).values())
    text = f"'{nodes.segmentation.GetName()}': {', '.join(names)}."
    if nodes.probability is None:
        text += " No model: baselines only."
    else:
        text += f" Probability map '{nodes.probability.GetName()}' is shown over the CT."
    if nodes.metrics is not None:
        frame = mrml.table_node_to_dataframe(nodes.metrics)
        dice = ", ".join(f"{method} {value:.2f}" for method, value in frame["dice"].items())
        text += f"\nDice with the relapse: {dice} (table '{nodes.metrics.GetName()}')."
    for warning in nodes.warnings:  # e.g. a PET that looks like Bq/mL, not SUV
        text += f"\nWarning: {warning}"
    return text


def showResult(ctNode, nodes) -> None:
    """Probability map over the CT (half opaque), the segments, and the metrics table in a table view (the
    application's views)."""
    import slicer

    from .slicerutils import showTable

    slicer.util.setSliceViewerLayers(background=ctNode, foreground=nodes.probability, foregroundOpacity=0.5)
    display = nodes.segmentation.GetDisplayNode()
    if display is not None:
        display.SetVisibility(True)
    if nodes.metrics is not None:
        showTable(nodes.metrics)


# --- training on a cohort ----------------------------------------------------------------------------------------

def parseBox(text: str) -> list:
    """"160 224 128" (or with x / commas) -> ["160", "224", "128"]; "" -> [] (the default box); else ValueError."""
    parts = [part for part in re.split(r"[\sx,]+", str(text).strip()) if part]
    if not parts:
        return []
    if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 and int(part) % 16 == 0 for part in parts):
        raise ValueError(f"the box is three voxel counts divisible by 16 (X Y Z), not '{text}'")
    return parts


def trainArguments(manifest, out, device: str, epochs: int, runs: int, learningRate: float, box: str = "",
                   init: str = "") -> list:
    """``rtresponse recurrence train`` on a cohort manifest (names CT, PET, GTVp, relapse: the command's
    defaults); ``init``: fine-tune that model file; ``box``: "X Y Z" voxels ("" the initial model's or the paper's)."""
    arguments = ["recurrence", "train", "--manifest", str(manifest), "--epochs", str(int(epochs)),
                 "--runs", str(int(runs)), "--lr", f"{float(learningRate):g}", "--device", str(device)]
    box = parseBox(box)
    if box:
        arguments += ["--box", *box]
    if init:
        arguments += ["--init", str(init)]
    return arguments + ["--out", str(out)]
