"""Sending a module's result segments back to the planning system: the segments are written to a job folder as masks
on the CT's grid and ``rtresponse export-dicom`` writes them as an RTSTRUCT (and a DICOM-SEG) whose ROIs reference the
planning CT's DICOM series, in a background job.

The planning CT's DICOM folder is the one the user names, or, for a CT loaded through Slicer's DICOM module, the
folder of its files in the DICOM database (:func:`dicomSource`). No Qt; Slicer only in :func:`dicomSource`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

FORMATS = ("rtstruct", "seg")
FILES = {"rtstruct": "RTSTRUCT.dcm", "seg": "SEG.dcm"}


def dicomSource(volumeNode) -> tuple:
    """(folder, Series Instance UID) of a volume loaded from Slicer's DICOM database; (None, None) otherwise."""
    try:
        import slicer

        database = slicer.dicomDatabase
    except (ImportError, AttributeError):
        return None, None
    uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split() if volumeNode is not None else []
    path = database.fileForInstance(uids[0]) if uids and database else ""
    if not path:
        return None, None
    return os.path.dirname(path), database.instanceValue(uids[0], "0020,000E") or None


def exportProblem(ctFolder: str, segmentationNode, segmentIds) -> str | None:
    """Why Export cannot start, or None."""
    if segmentationNode is None or not segmentIds:
        return "Run first: there are no result segments to export."
    if not ctFolder:
        return "Choose the planning CT's DICOM folder (the series the ROIs will reference)."
    if not os.path.isdir(ctFolder):
        return f"The planning CT's DICOM folder does not exist: {ctFolder}"
    return None


def exportMasks(folder, segmentationNode, segmentIds, referenceVolume) -> dict:
    """Write each segment as a 0/1 mask on ``referenceVolume``'s grid: {segment name: file}."""
    from rtresponse import mrml
    from rtresponse.imageio import write_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    masks = {}
    for number, segmentId in enumerate(segmentIds, start=1):
        name = segmentationNode.GetSegmentation().GetSegment(segmentId).GetName()
        path = folder / f"mask_{number}.nrrd"
        write_image(mrml.segment_to_mask(segmentationNode, segmentId, referenceVolume), path)
        masks[name] = path
    return masks


def exportArguments(ctFolder, masks: Mapping[str, object], out, seriesUid: str | None = None,
                    algorithm: str = "", label: str = "", colours: Mapping[str, tuple] | None = None) -> list[str]:
    """The ``rtresponse export-dicom`` command line (ROI names as the segments are named)."""
    arguments = ["export-dicom", "--image", str(ctFolder)]
    if seriesUid:
        arguments += ["--reference-series", str(seriesUid)]
    for name, path in masks.items():
        arguments += ["--mask", f"{name}={path}"]
    for name, colour in (colours or {}).items():
        arguments += ["--colour", f"{name}={','.join(str(int(round(255 * c))) for c in colour[:3])}"]
    if algorithm:
        arguments += ["--algorithm", algorithm]
    if label:
        arguments += ["--label", label]
    return arguments + ["--out", str(out)]


def segmentColours(segmentationNode, segmentIds) -> dict:
    """{segment name: (r, g, b) in 0..1} as shown in Slicer, kept in the exported ROIs."""
    segmentation = segmentationNode.GetSegmentation()
    return {segmentation.GetSegment(s).GetName(): tuple(segmentation.GetSegment(s).GetColor()) for s in segmentIds}


def summary(out) -> str:
    written = [FILES[kind] for kind in FORMATS if (Path(out) / FILES[kind]).is_file()]
    return f"Wrote {' and '.join(written) or 'nothing'} in {out}: import it into the planning system."
