"""Masks back to the treatment planning system: an RTSTRUCT (rt-utils) and a DICOM-SEG (highdicom) that
reference the planning CT series (its Frame of Reference, Study, Series and each slice's SOP Instance UID).

Masks on another grid of the same frame of reference (a PET-grid SUVmax-threshold volume) are resampled onto
the CT by nearest neighbour first.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from ..errors import InputError
from . import require

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

    from .index import Series

FORMATS = ("rtstruct", "seg")
TYPE2 = ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "ReferringPhysicianName",
         "AccessionNumber", "StudyID")
COLOURS = ((220, 50, 50), (50, 150, 230), (240, 190, 30), (80, 200, 100), (180, 100, 230), (240, 120, 40))


@dataclass
class Exported:
    files: dict[str, Path]
    reference: "Series"
    notes: list[str] = field(default_factory=list)


def reference_ct(folder: str | os.PathLike, series_uid: str | None = None) -> "Series":
    """The planning CT series in ``folder`` (any depth): the only CT series, or the one with ``series_uid``."""
    from .index import index_folder

    index = index_folder(folder)
    cts = [s for s in index.series.values() if s.modality == "CT"]
    if series_uid:
        chosen = [s for s in index.series.values() if s.series_uid == series_uid]
        if not chosen:
            raise InputError(f"no series with Series Instance UID {series_uid}", path=str(folder))
        return chosen[0]
    if not cts:
        found = ", ".join(sorted({s.modality for s in index.series.values()})) or "no DICOM"
        raise InputError(f"no CT series to reference (found: {found})", path=str(folder))
    if len(cts) > 1:
        raise InputError(f"{len(cts)} CT series; choose one with --reference-series (" +
                         ", ".join(f"{s.series_uid} '{s.description}' {len(s.files)} slices" for s in cts) + ")",
                         path=str(folder))
    return cts[0]


def on_grid(mask: "sitk.Image", reference: "sitk.Image", name: str, notes: list[str]) -> np.ndarray:
    """``mask`` as a bool (z, y, x) array on ``reference``'s grid (resampled by nearest neighbour if needed)."""
    import SimpleITK as sitk

    from ..imageio import align_mask

    try:
        aligned = align_mask(mask, reference)
    except InputError:
        aligned = sitk.Resample(sitk.Cast(mask != 0, sitk.sitkUInt8), reference, sitk.Transform(),
                                sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        notes.append(f"{name}: resampled onto the CT grid (nearest neighbour)")
    array = sitk.GetArrayFromImage(aligned) != 0
    if not array.any():
        raise InputError(f"mask '{name}' is empty on the planning CT's grid (nothing to export)")
    return array


def export_masks(masks: Mapping[str, "sitk.Image"], ct_folder: str | os.PathLike, out_dir: str | os.PathLike,
                 formats: Sequence[str] = FORMATS, colours: Mapping[str, Sequence[int]] | None = None,
                 algorithm: str = "", algorithm_version: str = "", series_uid: str | None = None,
                 label: str = "rtresponse") -> Exported:
    """Write ``masks`` ({ROI name: mask}) as ``out_dir/RTSTRUCT.dcm`` and/or ``out_dir/SEG.dcm``.

    ``algorithm``: the generating model (recorded as ROI Generation Description / Segment Algorithm Name;
    the ROIs are then AUTOMATIC, else MANUAL); ``colours``: RGB 0-255 per name.
    """
    from .series import read_series

    if not masks:
        raise InputError("no masks to export")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError(f"unknown format(s) {', '.join(unknown)} (choose from {', '.join(FORMATS)})")
    series = reference_ct(ct_folder, series_uid)
    volume = read_series(series, pixels=False)
    notes: list[str] = []
    arrays = {name: on_grid(mask, volume.image, name, notes) for name, mask in masks.items()}
    colours = {name: tuple(int(c) for c in (colours or {}).get(name, COLOURS[i % len(COLOURS)]))
               for i, name in enumerate(arrays)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    if "rtstruct" in formats:
        files["rtstruct"] = write_rtstruct(arrays, series, volume, out / "RTSTRUCT.dcm", colours, algorithm, label)
    if "seg" in formats:
        files["seg"] = write_seg(arrays, series, volume, out / "SEG.dcm", colours, algorithm, algorithm_version,
                                 label)
    return Exported(files, series, notes)


@contextlib.contextmanager
def _quiet_pydicom():
    """rt-utils sets FileDataset attributes pydicom 3 deprecates: not the user's concern."""
    import logging
    import warnings

    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def write_rtstruct(arrays: Mapping[str, np.ndarray], series: "Series", volume, path: Path,
                   colours: Mapping[str, Sequence[int]], algorithm: str = "", label: str = "rtresponse") -> Path:
    """An RTSTRUCT by rt-utils: one ROI per (z, y, x) bool array on the series' sorted slices."""
    require("rt_utils")
    from rt_utils import RTStructBuilder

    from .. import __version__

    spacing = volume.image.GetSpacing()
    if abs(spacing[0] - spacing[1]) > 1e-6:
        raise InputError(f"the planning CT has non-square pixels ({spacing[0]:g} x {spacing[1]:g} mm): rt-utils "
                         "writes wrong contours for them; export DICOM-SEG only (--format seg)",
                         path=str(series.files[0].parent))
    with tempfile.TemporaryDirectory(prefix="rtresponse-ct-") as folder, _quiet_pydicom():
        for i, file in enumerate(series.files):  # rt-utils reads every image in a folder: give it this series only
            os.symlink(os.path.abspath(file), os.path.join(folder, f"{i:05d}.dcm"))
        rtstruct = RTStructBuilder.create_new(folder)
        order = [str(ds.SOPInstanceUID) for ds in rtstruct.series_data]
        if order != volume.sop_uids:
            raise InputError("rt-utils sorted the CT slices differently from their positions along the slice normal",
                             path=str(series.files[0].parent))
        for name, array in arrays.items():
            rtstruct.add_roi(mask=np.ascontiguousarray(np.transpose(array, (1, 2, 0))), color=list(colours[name]),
                             name=name, approximate_contours=False,
                             roi_generation_algorithm="AUTOMATIC" if algorithm else "MANUAL")
        ds = rtstruct.ds
    ds.Manufacturer, ds.ManufacturerModelName = "rtresponse", "rtresponse"
    ds.SoftwareVersions = f"rtresponse {__version__} (rt-utils)"
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label[:64]
    ds.SeriesDescription = (f"{label}: {algorithm}" if algorithm else label)[:64]
    for item in ds.StructureSetROISequence:
        if algorithm:
            item.ROIGenerationDescription = algorithm[:64]
    for item in ds.RTROIObservationsSequence:
        item.RTROIInterpretedType = "GTV" if str(item.get("ROIObservationLabel", "")).upper().startswith("GTV") \
            else "CONTROL"
    with _quiet_pydicom():
        ds.save_as(path, enforce_file_format=True)
    return path


def write_seg(arrays: Mapping[str, np.ndarray], series: "Series", volume, path: Path,
              colours: Mapping[str, Sequence[int]], algorithm: str = "", algorithm_version: str = "",
              label: str = "rtresponse") -> Path:
    """A binary DICOM-SEG by highdicom on the series' slices (one segment per array)."""
    hd = require("highdicom")
    pydicom = require("pydicom")
    from pydicom.sr.codedict import codes

    from .. import __version__

    by_uid = {str(uid): file for uid, file in zip(series.sop_uids, series.files)}
    sources = [pydicom.dcmread(by_uid[uid]) for uid in volume.sop_uids]
    for source in sources:  # type 2 attributes highdicom copies: present, possibly empty (in memory only)
        for keyword in TYPE2:
            if keyword not in source:
                setattr(source, keyword, "")
    descriptions = []
    for number, name in enumerate(arrays, start=1):
        identification = hd.AlgorithmIdentificationSequence(
            name=algorithm[:64], family=codes.DCM.ArtificialIntelligence,
            version=(algorithm_version or __version__)[:64]) if algorithm else None
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name[:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if algorithm
            else hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            algorithm_identification=identification,
            display_color=hd.color.CIELabColor.from_rgb(*colours[name])))
    stack = np.stack([arrays[name] for name in arrays], axis=-1).astype(np.uint8)  # (slices, rows, columns, segments)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=stack, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=900,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="rtresponse",
        manufacturer_model_name="rtresponse", software_versions=f"rtresponse {__version__}",
        device_serial_number="0", series_description=(f"{label}: {algorithm}" if algorithm else label)[:64])
    seg.save_as(path)
    return path


def read_seg(path: str | os.PathLike, reference_uids: Sequence[str]) -> dict[str, np.ndarray]:
    """{segment label: bool (z, y, x) array} of a DICOM-SEG on the slices ``reference_uids`` (highdicom)."""
    hd = require("highdicom")
    seg = hd.seg.segread(str(path))
    numbers = list(seg.get_segment_numbers())
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=list(reference_uids), segment_numbers=numbers,
                                               ignore_spatial_locations=True)
    return {seg.get_segment_description(n).segment_label: pixels[..., i] != 0 for i, n in enumerate(numbers)}
