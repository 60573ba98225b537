"""``rtresponse import-dicom`` (a cohort from a DICOM export) and ``rtresponse export-dicom`` (masks as RTSTRUCT
and DICOM-SEG on the planning CT). pydicom, rt-utils and highdicom are imported inside the handlers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import options, progress
from .errors import InputError
from .outputs import FOLDER, Output, writes


def _import(args) -> int:
    from . import provenance
    from .dicom.importer import import_dicom, parse_roi_rule, parse_series_rule
    from .inputs import read_table

    rois = [parse_roi_rule(t, True) for t in args.roi or []] + \
        [parse_roi_rule(t, False) for t in args.optional_roi or []]
    series = [parse_series_rule(t) for t in args.image] if args.image else None
    clinical = None
    if args.clinical:
        clinical = read_table(args.clinical, "--clinical file", text=True)
        if "patient_id" not in clinical.columns:
            raise InputError("needs a patient_id column", path=str(args.clinical))
        clinical = clinical.set_index("patient_id")
        wrong = [c for c in clinical.columns if not c.startswith(("clin_", "outcome_"))]
        if wrong:
            raise InputError(f"column {wrong[0]}: only clin_ and outcome_ columns can join the manifest",
                             path=str(args.clinical))
    indexing, importing = progress.Bar("indexing DICOM files", unit="file"), progress.Bar("importing patients")
    try:
        result = import_dicom(args.dicom, args.out, rois, series, suv=args.suv,
                              allow_mixed_frames=args.allow_mixed_frames, clinical=clinical, progress=importing,
                              index_progress=indexing)
    finally:
        indexing.close()
        importing.close()
    index = result.index
    failed = result.failed
    provenance.note(args, "patients", {"imported": len(result.patients) - len(failed), "failed": len(failed)})
    provenance.note(args, "failures", {p.patient_id: p.status for p in failed})
    print(f"imported {len(result.patients) - len(failed)} of {len(result.patients)} patient(s) from "
          f"{len(index.series)} series: {result.manifest}")
    print(f"wrote {args.out / 'report.csv'} (series chosen, SUV, notes) and {args.out / 'rois.csv'} (every ROI)")
    if index.not_dicom or index.unreadable:
        print(f"skipped {index.not_dicom} non-DICOM file(s) and {len(index.unreadable)} unreadable file(s)",
              file=sys.stderr)
    for patient in failed:
        print(f"  failed {patient.patient_id}: {patient.status}", file=sys.stderr)
    unmatched: dict[str, int] = {}
    for patient in result.patients:
        for roi in patient.rois:
            if not roi["mask"]:
                unmatched[roi["roi"]] = unmatched.get(roi["roi"], 0) + 1
    if unmatched and rois:
        print("ROIs that matched no --roi rule: " + ", ".join(f"{name} ({n})" for name, n in sorted(unmatched.items())))
    return 0


def _parse_pairs(values, what: str, example: str) -> dict[str, str]:
    pairs = {}
    for text in values or []:
        name, sep, value = text.rpartition("=")  # the last '=': ROI names may hold one ("p >= 0.50")
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"{what} '{text}': expected {example}")
        if name.strip() in pairs:
            raise InputError(f"{what}: name {name.strip()} given twice")
        pairs[name.strip()] = value.strip()
    return pairs


def _export(args) -> int:
    import SimpleITK as sitk

    from . import provenance
    from .dicom.export import export_masks
    from .imageio import read_image, read_mask
    from .inputs import regular_file

    masks = {}
    for name, file in _parse_pairs(args.mask, "--mask", "NAME=FILE (a mask, a .seg.nrrd segment NAME, or a "
                                                        "probability map with --threshold)").items():
        path = regular_file(Path(file), "--mask file")
        if args.threshold is not None and not str(path).lower().endswith(".seg.nrrd"):
            masks[name] = sitk.Cast(sitk.Cast(read_image(path), sitk.sitkFloat64) >= args.threshold, sitk.sitkUInt8)
        else:
            masks[name] = read_mask(path, segment=name)
    colours = {}
    for name, text in _parse_pairs(args.colour, "--colour", "NAME=R,G,B (0-255)").items():
        try:
            rgb = [int(v) for v in text.split(",")]
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise InputError(f"--colour {name}: expected R,G,B with each 0-255, got '{text}'")
        colours[name] = rgb
    unknown = sorted(set(colours) - set(masks))
    if unknown:
        raise InputError(f"--colour names {', '.join(unknown)}, which no --mask gives")
    exported = export_masks(masks, args.image, args.out, formats=args.format, colours=colours, algorithm=args.algorithm,
                            series_uid=args.reference_series, label=args.label)
    provenance.note(args, "reference_ct", {"series_uid": exported.reference.series_uid,
                                           "frame_of_reference": exported.reference.frame_of_reference,
                                           "slices": len(exported.reference.files)})
    for note in exported.notes:
        print(f"  {note}", file=sys.stderr)
    for kind, path in exported.files.items():
        print(f"wrote {kind}: {path} ({len(masks)} ROI(s) on {exported.reference.label})")
    return 0


def add_commands(commands) -> None:
    from .dicom.importer import SUV_CHOICES

    importer = commands.add_parser(
        "import-dicom", help="a cohort (NRRD images, masks, manifest) from DICOM series and RTSTRUCT ROIs",
        description="Index a folder tree of DICOM files (any depth, any names) by patient, study and series; pick "
                    "each patient's series by --image rules; rasterise the RTSTRUCT ROIs that match --roi "
                    "rules on their referenced series; convert PET to SUV. Writes OUT/<patient>/NAME.nrrd, "
                    "OUT/manifest.csv (image_, mask_ and clin_ age, sex, weight_kg, height_m columns), "
                    "OUT/report.csv (status, chosen series, notes per patient) and OUT/rois.csv (every ROI and "
                    "the mask it became). A patient that fails is listed and left out; the others are imported. "
                    "See docs/dicom.md.")
    importer.add_argument("--dicom", required=True, type=Path, help="folder with the DICOM files (any depth)")
    importer.add_argument("--out", required=True, type=Path, help="output cohort folder")
    importer.add_argument("--roi", action="append", metavar="NAME=REGEX",
                          help="required mask NAME: the ROI whose whole name matches REGEX, case-insensitive "
                               "(repeatable), e.g. GTVp='gtv[ _-]?(p|t).*'")
    importer.add_argument("--optional-roi", action="append", metavar="NAME=REGEX",
                          help="as --roi, but a patient without it keeps an empty cell")
    importer.add_argument(options.IMAGE, "--modality-map", dest="image", action=options.Spelled, collect="append",
                          deprecated=["--modality-map"], metavar="NAME=MODALITY[:REGEX]",
                          help="image NAME: the series of MODALITY (CT, MR, PT) whose description matches REGEX "
                               "(repeatable; default CT=CT PET=PT MR=MR)")
    importer.add_argument("--suv", choices=SUV_CHOICES, default="bw",
                          help="PET as body-weight SUV (bw, default), lean-body-mass SUV (lbm: Janmahasatian; "
                               "lbm-james), or as stored (none)")
    importer.add_argument("--clinical", type=Path,
                          help="CSV with patient_id and clin_/outcome_ columns to join into the manifest")
    importer.add_argument("--allow-mixed-frames", action="store_true",
                          help="accept a patient's images in different frames of reference (default: refuse)")
    importer.set_defaults(func=_import)
    writes(importer, Output("out", FOLDER))

    from .dicom.export import FORMATS

    exporter = commands.add_parser(
        "export-dicom", help="masks as a DICOM RTSTRUCT and DICOM-SEG referencing the planning CT",
        description="Write masks (a recurrence prediction, an SUVmax-threshold volume, any mask) as OUT/RTSTRUCT.dcm "
                    "(rt-utils) and OUT/SEG.dcm (highdicom) whose ROIs reference the planning CT series: its Frame "
                    "of Reference, Study, Series and the SOP Instance UID of each contoured slice. Masks on another "
                    "grid of the same frame of reference are resampled onto the CT (nearest neighbour).")
    exporter.add_argument("--mask", required=True, action="append", metavar="NAME=FILE",
                          help="ROI NAME from FILE: a 0/1 mask, a .seg.nrrd (its segment NAME), or a probability "
                               "map with --threshold (repeatable)")
    exporter.add_argument(options.IMAGE, "--ct", dest="image", action=options.Spelled, deprecated=["--ct"],
                          required=True, type=Path, metavar="DIR",
                          help="folder with the planning CT series (DICOM) the masks are drawn on")
    exporter.add_argument("--reference-series", help="its Series Instance UID, when the folder holds several CTs")
    exporter.add_argument("--format", nargs="+", choices=FORMATS, default=list(FORMATS),
                          help="rtstruct, seg or both (default)")
    exporter.add_argument("--threshold", type=options.PROBABILITY,
                          help="voxels >= THRESHOLD of a probability map form the ROI")
    exporter.add_argument("--algorithm", default="",
                          help="the generating model, recorded in the files (the ROIs are then AUTOMATIC; default none: "
                               "MANUAL)")
    exporter.add_argument("--colour", action="append", metavar="NAME=R,G,B", help="ROI display colour (0-255)")
    exporter.add_argument("--label", default="rtresponse", help="structure set label and series description (default rtresponse)")
    exporter.add_argument("--out", required=True, type=Path, help="output folder")
    exporter.set_defaults(func=_export)
    writes(exporter, Output("out", FOLDER))
