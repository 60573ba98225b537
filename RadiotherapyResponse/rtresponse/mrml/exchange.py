"""Scene inputs out to a job folder, a job's results back into the scene.

A Slicer module runs its analysis as an ``rtresponse`` command in a child process (:mod:`rtresponse.jobs`):
the volumes, segments and tables it needs are written to a job folder as a cohort manifest the command
reads, and what the command wrote comes back as new nodes. The main thread only does this conversion,
which takes well under a second for one patient; the analysis never runs there.

One row per *case*: the module chooses what a case is (a patient in the scene, or each segment measured
on one volume: ``export_cases`` with one mask per case). Inputs in the scene are never modified.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import InputError

MANIFEST = "manifest.csv"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name)) or "x"


def export_cases(folder: str | os.PathLike, cases: Mapping[str, Mapping], tables: Mapping | None = None) -> Path:
    """Write each case's images and masks to ``folder`` and a manifest naming them; returns the manifest.

    ``cases``: {case id: {"images": {NAME: volume node}, "masks": {NAME: (segmentation node, segment id,
    reference volume node)}, "clinical": {column: value}, "outcomes": {name: value}}}. Images become
    ``image_NAME`` columns, masks ``mask_NAME`` (on the reference volume's grid), clinical values ``clin_*``.
    ``tables``: {file stem: table node} written as CSV beside the manifest (feature tables, clinical tables).
    """
    import pandas as pd

    from ..imageio import write_image
    from .nodes import segment_to_mask, table_node_to_dataframe, volume_node_to_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _distinct_folders(cases)
    rows, written = [], {}  # a volume shared by several cases (segments of one scan) is written once
    for case, parts in cases.items():
        where = folder / _safe(case)
        where.mkdir(exist_ok=True)
        row = {"patient_id": str(case)}
        for name, node in (parts.get("images") or {}).items():
            key = (node.GetID() or id(node), name)
            if key not in written:
                path = write_image(volume_node_to_image(node), where / f"{_safe(name)}.nrrd", compress=False)
                written[key] = str(path.relative_to(folder))
            row[f"image_{name}"] = written[key]
        for name, (segmentation, segment_id, reference) in (parts.get("masks") or {}).items():
            mask = segment_to_mask(segmentation, segment_id, reference)
            row[f"mask_{name}"] = str(write_image(mask, where / f"mask_{_safe(name)}.nrrd").relative_to(folder))
        row.update({f"clin_{k}": v for k, v in (parts.get("clinical") or {}).items()})
        row.update({f"outcome_{k}": v for k, v in (parts.get("outcomes") or {}).items()})
        rows.append(row)
    if not rows:
        raise InputError("nothing to export: no case")
    manifest = folder / MANIFEST
    pd.DataFrame(rows).to_csv(manifest, index=False)
    for stem, node in (tables or {}).items():
        frame = table_node_to_dataframe(node)
        frame.to_csv(folder / f"{_safe(stem)}.csv", index=frame.index.name is not None)
    return manifest


def _distinct_folders(cases: Mapping) -> None:
    """Case ids whose folder names would be the same ("GTV 1", "GTV_1") would overwrite each other's files."""
    seen: dict[str, str] = {}
    for case in cases:
        other = seen.setdefault(_safe(case).lower(), str(case))
        if other != str(case):
            raise InputError(f"cases '{other}' and '{case}' would share the folder '{_safe(case)}': rename one")


def import_table(path: str | os.PathLike, name: str, scene=None, index: str | None = "patient_id",
                 index_name: str | None = None):
    """A CSV a job wrote as a new table node (ids stay text); the file's provenance becomes a node attribute.

    ``index``: the column that becomes the rows' index, renamed ``index_name`` when given (the module's
    segments are cases ``patient_id`` in the job and ``segment`` in the scene)."""
    import json

    from .. import provenance
    from ..inputs import read_table
    from .nodes import dataframe_to_table_node

    frame = read_table(path, "job result")
    if index in frame.columns:
        frame = frame.set_index(index)
        if index_name:
            frame.index.name = index_name
    node = dataframe_to_table_node(frame, name, scene)
    record = provenance.read(path)
    if record is not None:
        node.SetAttribute("rtresponse.provenance", json.dumps(record))
    return node


def import_images(paths: Sequence[str | os.PathLike], scene=None, labelmap: bool = False) -> list:
    """Images a job wrote as new volume nodes named after their files."""
    from ..imageio import read_image
    from .nodes import image_to_volume_node

    nodes = []
    for path in paths:
        name = Path(path).name.split(".")[0]
        nodes.append(image_to_volume_node(read_image(path), name, scene, labelmap=labelmap))
    return nodes


def import_masks(paths: Mapping[str, str | os.PathLike], segmentation_node, reference_volume_node=None) -> list[str]:
    """Masks a job wrote ({segment name: file}) as new segments of ``segmentation_node``; returns their ids."""
    from ..imageio import read_mask
    from .nodes import mask_to_segment

    return [mask_to_segment(read_mask(path), segmentation_node, name, reference_volume_node)
            for name, path in paths.items()]
