"""Tumor Features' Grad-CAM as a background job: segments out to a job folder, ``rtresponse gradcam`` on them, the
maps back as volume nodes over the volume.

The segments are exported as for the deep features (one case per segment, :func:`.featurejobs.exportSegments`);
the command writes one map per case on the volume's grid (``<case>_gradcam.nrrd``, values 0..1 on the segment's
largest slice) and ``gradcam.csv`` saying which case has which map, or why it has none. Each map comes back as a
new scalar volume node named and shown as a map made in process (``deep2d.gradcam_volume_node``), with the
command's provenance (node attribute ``rtresponse.provenance``).

Pure apart from :func:`prepareGradcam`, :func:`importGradcamMaps` (MRML nodes) and :func:`showMaps` (the
application's slice views); no Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import featurejobs

OUT_FOLDER = "gradcam"  # the command's --out, in the job folder
TABLE_FILE = "gradcam.csv"  # rtresponse.cli_deep.GRADCAM_TABLE (not imported: loading this file imports nothing)
PROVENANCE_ATTRIBUTE = "rtresponse.provenance"


def gradcamArguments(manifest, out, model: str, weights, device: str, weightsFolder) -> list[str]:
    """``rtresponse gradcam`` on the exported segments (``weights``: "imagenet", a file, or None for random); no PNG
    previews: the maps are shown in the slice views (and Slicer's Python need not have Matplotlib)."""
    return ["gradcam", "--manifest", str(manifest), "--image", featurejobs.IMAGE, "--mask", featurejobs.MASK,
            *featurejobs.networkArguments(model, weights, device, weightsFolder), "--no-preview", "--out", str(out)]


@dataclass
class GradcamJob:
    """The command's arguments, its output folder, the network, and which segment each case is."""

    arguments: list
    out: Path
    model: str
    cases: dict = field(default_factory=dict)  # {case id: segment id}


def prepareGradcam(folder, volumeNode, segmentationNode, segmentIds, model, weights, device,
                   weightsFolder) -> GradcamJob:
    """Export the segments to ``folder``; the job making their Grad-CAM maps."""
    manifest, cases = featurejobs.exportSegments(folder, volumeNode, segmentationNode, segmentIds)
    out = Path(folder) / OUT_FOLDER
    return GradcamJob(gradcamArguments(manifest, out, model, weights, device, weightsFolder), out, model, cases)


@dataclass
class GradcamMaps:
    """What came back: the new volume nodes (in the segments' order) and {segment name: why it has no map}."""

    nodes: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)


def importGradcamMaps(job: GradcamJob, volumeNode, segmentationNode, scene) -> GradcamMaps:
    """The job's maps as new volume nodes named "<volume> Grad-CAM <network> <segment>" (made unique), shown as
    heat maps (cold-to-hot, 0..1, faint values hidden), with the command's provenance."""
    import json

    from rtresponse import mrml, provenance
    from rtresponse.features.deep2d import gradcam_node_name, show_as_heat_map
    from rtresponse.inputs import read_table
    from rtresponse.mrml.exchange import import_images

    names = mrml.segment_names(segmentationNode)
    table = read_table(job.out / TABLE_FILE, "the Grad-CAM job's table").set_index("patient_id")
    record = provenance.read(job.out)
    maps = GradcamMaps()
    for case, row in table.iterrows():
        segment = names.get(job.cases.get(str(case), ""), str(case))
        if row["status"] != featurejobs.STATUS_OK:
            maps.failed[segment] = featurejobs.segmentProblem(str(case), row["status"])
            continue
        node = import_images([job.out / str(row["file"])], scene)[0]
        node.SetName(scene.GenerateUniqueName(gradcam_node_name(volumeNode.GetName(), job.model, segment)))
        show_as_heat_map(node, job.model, segment)
        if record is not None:
            node.SetAttribute(PROVENANCE_ATTRIBUTE, json.dumps(record))
        maps.nodes.append(node)
    return maps


def summary(maps: GradcamMaps) -> str:
    """Text for the status label: the maps made, and the segments without one."""
    text = f"Grad-CAM: {', '.join(repr(node.GetName()) for node in maps.nodes) or 'no map'}."
    if maps.failed:
        text += "\nNo map:\n" + "\n".join(f"  {name}: {status}" for name, status in maps.failed.items())
    return text


def showMaps(volumeNode, maps: GradcamMaps) -> None:
    """The first map half opaque over the volume, every slice view moved to its slice (needs the application)."""
    import slicer

    from .slicerutils import jumpSlicesToNonZero

    if not maps.nodes:
        return
    slicer.util.setSliceViewerLayers(background=volumeNode, foreground=maps.nodes[0], foregroundOpacity=0.5)
    jumpSlicesToNonZero(maps.nodes[0])  # a map fills one slice: show it
