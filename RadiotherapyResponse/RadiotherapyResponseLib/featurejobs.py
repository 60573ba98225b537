"""Tumor Features as background jobs: segments out to a job folder, ``rtresponse features`` on them, the table back.

Each measured segment is one *case* of a small cohort manifest (its name is the case id; the volume is image
``image`` and the segment mask ``GTV``), so the job is the ordinary ``rtresponse features`` command a terminal
user would run. The table comes back indexed by ``segment`` with the names, attributes and provenance the
module has always given it (:func:`importFeatureTable`).

Deep features: the command z-scores a cohort's features over its patients (Tanaka et al. z-score over the
training cohort); the segments of one scene are not a cohort, and the module has always given the network's
raw outputs: the job runs with ``--no-zscore``.

Pure functions apart from :func:`exportSegments` and :func:`importFeatureTable` (MRML nodes); no Qt.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

IMAGE, MASK = "image", "GTV"         # the manifest's image_image and mask_GTV columns
IMAGE_FILE = "image.nrrd"            # the volume, written once for every case
TABLE_FILE = "features.csv"
SEGMENT_INDEX = "segment"
STATUS, STATUS_OK = "status", "ok"
# Weights source (saved in the parameter node) -> combo box text. "random" is never used unless picked.
DEEP_WEIGHT_SOURCES = {"imagenet": "ImageNet (weights folder)", "file": "Weights file",
                       "random": "Random weights (testing only)"}


# --- names and attributes (the same whether a table is made by a job or in process) ------------------------------

def deepWeights(source: str, weightsFile: str = ""):
    """The ``weights`` of rtresponse.features.deep2d for a weights source: "imagenet", the file, or None (random)."""
    if source not in DEEP_WEIGHT_SOURCES:
        raise ValueError(f"unknown weights source '{source}' (sources: {', '.join(DEEP_WEIGHT_SOURCES)})")
    if source == "file" and not weightsFile:
        raise ValueError("no weights file given")
    return {"imagenet": "imagenet", "file": weightsFile, "random": None}[source]


def settingsLabel(settings) -> str:
    """Short name of handcrafted settings for table names: the preset, the parameter file's name, or "custom"."""
    from rtresponse.features import handcrafted

    if isinstance(settings, (str, os.PathLike)):
        text = os.fspath(settings)
        if text in handcrafted.list_presets():
            return text
        return os.path.splitext(os.path.basename(text))[0] or text
    return "custom"


def handcraftedTableName(volumeName: str, settings) -> str:
    return f"{volumeName} features ({settingsLabel(settings)})"


def deepTableName(volumeName: str, model: str, weights) -> str:
    # Random weights give meaningless features: say so in the name, where nobody can miss it
    return f"{volumeName} deep features {model}" + (" (random)" if weights is None else "")


def handcraftedAttributes(volumeName: str, segmentationName: str, settings) -> dict:
    return {"TumorFeatures.volume": volumeName, "TumorFeatures.segmentation": segmentationName,
            "TumorFeatures.settings": str(settings) if not isinstance(settings, dict) else "dict"}


def deepAttributes(volumeName: str, segmentationName: str, model: str, weights) -> dict:
    return {"TumorFeatures.volume": volumeName, "TumorFeatures.segmentation": segmentationName,
            "TumorFeatures.model": model, "TumorFeatures.weights": "random" if weights is None else os.fspath(weights)}


def inputProblems(volume, segmentation, segments: int, preset: str, parameterFile: str, presets, model: str, models,
                  weightsSource: str, weightsFile: str) -> tuple:
    """(why Run cannot start, why the deep buttons cannot), each None when they can: the inputs, then the preset
    (one of ``presets`` unless a parameter file is given), the network (one of ``models``) and its weights."""
    if not volume:
        inputs = "Select a volume."
    elif not segmentation:
        inputs = "Select or create a segmentation."
    elif not segments:
        inputs = "The segmentation has no segments: draw one in 'Draw or correct segments'."
    else:
        inputs = None
    handcrafted = deep = inputs
    if inputs is None and not parameterFile and preset not in presets:
        handcrafted = f"Unknown preset '{preset}': pick a preset or a parameter file."
    if inputs is None and model not in models:
        deep = f"Unknown network '{model}': pick a network."
    elif inputs is None and weightsSource not in DEEP_WEIGHT_SOURCES:
        deep = f"Unknown weights source '{weightsSource}': pick one."
    elif inputs is None and weightsSource == "file" and not weightsFile:
        deep = "Select a weights file, or another weights source."
    return handcrafted, deep


# --- command lines ------------------------------------------------------------------------------------------------

def handcraftedArguments(manifest, out, settings, workers: int = 1) -> list[str]:
    """``rtresponse features --kind handcrafted`` on the exported segments with a preset or a parameter file."""
    from rtresponse.features import handcrafted

    if not isinstance(settings, (str, os.PathLike)) or not os.fspath(settings):
        raise ValueError("a job takes a preset name or a PyRadiomics parameter file")
    settings = os.fspath(settings)
    chosen = ["--preset", settings] if settings in handcrafted.list_presets() else ["--params", settings]
    return ["features", "--kind", "handcrafted", "--manifest", str(manifest), "--image", IMAGE, "--mask", MASK,
            *chosen, "--jobs", str(max(1, int(workers))), "--out", str(out)]


def networkArguments(model: str, weights, device: str, weightsFolder) -> list[str]:
    """The network options of ``features --kind deep2d`` and ``gradcam``: ``weights`` "imagenet" (looked for in
    ``weightsFolder``), a file, or None for random weights."""
    arguments = ["--model", model, "--weights", "random" if weights is None else os.fspath(weights),
                 "--device", device]
    return arguments + (["--weights-folder", str(weightsFolder)] if weightsFolder else [])


def deepArguments(manifest, out, model: str, weights, device: str, weightsFolder) -> list[str]:
    """``rtresponse features --kind deep2d`` giving the network's raw outputs (see the module docstring)."""
    return ["features", "--kind", "deep2d", "--manifest", str(manifest), "--image", IMAGE, "--mask", MASK,
            *networkArguments(model, weights, device, weightsFolder), "--no-zscore", "--out", str(out)]


# --- scene to job folder and back ---------------------------------------------------------------------------------

def caseIds(names: Sequence[str]) -> list[str]:
    """Case ids for segments named ``names``: the names, made unique (and unique as folder names) by " 2", " 3"..."""
    from rtresponse.mrml.exchange import _safe

    ids, folders = [], set()
    for name in names:
        base = str(name).strip() or "segment"
        case, n = base, 1
        while case in ids or _safe(case).lower() in folders:
            n += 1
            case = f"{base} {n}"
        ids.append(case)
        folders.add(_safe(case).lower())
    return ids


def exportSegments(folder, volumeNode, segmentationNode, segmentIds: Sequence[str]) -> tuple[Path, dict]:
    """Write the segments (one case each, mask ``GTV`` on the volume's grid) and the volume (image ``image``,
    written once, uncompressed) to ``folder``; returns (manifest, {case id: segment id})."""
    from rtresponse import mrml
    from rtresponse.imageio import write_image
    from rtresponse.mrml.exchange import export_cases

    folder = Path(folder)
    names = mrml.segment_names(segmentationNode)
    cases = dict(zip(caseIds([names.get(s, s) for s in segmentIds]), segmentIds))
    manifest = export_cases(folder, {case: {"masks": {MASK: (segmentationNode, segmentId, volumeNode)}}
                                     for case, segmentId in cases.items()})
    write_image(mrml.volume_node_to_image(volumeNode), folder / IMAGE_FILE, compress=False)
    with open(manifest, newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    rows = [rows[0] + [f"image_{IMAGE}"]] + [row + [IMAGE_FILE] for row in rows[1:]]
    with open(manifest, "w", newline="", encoding="utf-8") as stream:
        csv.writer(stream).writerows(rows)
    return manifest, cases


@dataclass
class FeaturesJob:
    """What a module needs to run one features job: the command's arguments, the table it writes, and the name
    and attributes of the table node made from it."""

    arguments: list
    out: Path
    tableName: str
    attributes: dict


def prepareHandcrafted(folder, volumeNode, segmentationNode, segmentIds, settings, workers: int = 1) -> FeaturesJob:
    """Export the segments to ``folder``; the job measuring them with a preset or a PyRadiomics parameter file."""
    manifest, _ = exportSegments(folder, volumeNode, segmentationNode, segmentIds)
    out = Path(folder) / TABLE_FILE
    return FeaturesJob(handcraftedArguments(manifest, out, settings, workers), out,
                       handcraftedTableName(volumeNode.GetName(), settings),
                       handcraftedAttributes(volumeNode.GetName(), segmentationNode.GetName(), settings))


def prepareDeep(folder, volumeNode, segmentationNode, segmentIds, model, weights, device, weightsFolder) -> FeaturesJob:
    """Export the segments to ``folder``; the job measuring them with a network (raw outputs, see above)."""
    manifest, _ = exportSegments(folder, volumeNode, segmentationNode, segmentIds)
    out = Path(folder) / TABLE_FILE
    return FeaturesJob(deepArguments(manifest, out, model, weights, device, weightsFolder), out,
                       deepTableName(volumeNode.GetName(), model, weights),
                       deepAttributes(volumeNode.GetName(), segmentationNode.GetName(), model, weights))


def importFeatureTable(path, name: str, scene, attributes: Mapping[str, str] = ()):
    """The job's table as a new table node named ``name``, indexed by ``segment`` (as a table measured in process),
    with the command's provenance (node attribute ``rtresponse.provenance``) and ``attributes``."""
    from rtresponse import provenance
    from rtresponse.inputs import read_table
    from rtresponse.mrml import dataframe_to_table_node

    frame = read_table(path, "the features job's table").set_index("patient_id").rename_axis(SEGMENT_INDEX).copy()
    if STATUS in frame.columns:  # "patient GTV, column mask_GTV: mask is empty" -> "mask is empty", as in process
        frame[STATUS] = [segmentProblem(str(case), status) for case, status in frame[STATUS].items()]
    record = provenance.read(path)
    if record is not None:
        frame.attrs["provenance"] = record
    node = dataframe_to_table_node(frame, name, scene)
    for key, value in dict(attributes).items():
        node.SetAttribute(key, value)
    return node


def segmentProblem(case: str, status):
    """A job's status of a case without the case ("patient GTV, column mask_GTV: mask is empty" -> "mask is empty"),
    as the segment's row says it when measured in process."""
    prefix = f"patient {case}, column mask_{MASK}: "
    return status[len(prefix):] if isinstance(status, str) and status.startswith(prefix) else status


def failedSegments(tableNode) -> dict:
    """{segment name: status} of the rows of a feature table whose status is not "ok"."""
    from rtresponse import mrml

    frame = mrml.table_node_to_dataframe(tableNode)
    if STATUS not in frame.columns:
        return {}
    return {str(name): str(status) for name, status in frame[STATUS].items() if status != STATUS_OK}


def summary(tableNode) -> tuple[str, bool]:
    """(text for the status label, True when no segment could be measured)."""
    failed = failedSegments(tableNode)
    rows = tableNode.GetNumberOfRows()
    text = f"'{tableNode.GetName()}': {rows - len(failed)} of {rows} segment(s) measured."
    if failed:
        text += "\nNot measured:\n" + "\n".join(f"  {name}: {status}" for name, status in failed.items())
    return text, bool(failed) and len(failed) == rows
