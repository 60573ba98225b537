"""A cohort from a DICOM export: each patient's planning CT, PET and MR series and RTSTRUCT ROIs become NRRD
images and masks and a manifest row; PET in SUV.

Series rules (``NAME=MODALITY[:REGEX]``, default ``CT=CT PET=PT MR=MR``): image NAME is the patient's series of
that modality whose Series Description matches REGEX (case-insensitive search). Among several candidates the
one an RTSTRUCT references wins, then the one with the most slices, then the lowest Series Number.

ROI rules (``NAME=REGEX``): mask NAME is the ROI whose whole name matches REGEX (case-insensitive), rasterised on
the grid of the series its RTSTRUCT references. ``required`` rules make a patient without such an ROI a
failure; optional ones leave the cell empty. Without rules every ROI with closed contours becomes a mask.

A patient that fails (no image series, an RTSTRUCT referencing a series that is not there, a required ROI
missing or without contours, two ROIs matching one rule, images in different frames of reference, PET
without the tags SUV needs) is left out of the manifest and listed with why; the others are imported.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InputError
from .index import IMAGE_MODALITIES, DicomIndex, Series

DEFAULT_SERIES = ("CT=CT", "PET=PT", "MR=MR")
SUV_CHOICES = ("bw", "lbm", "lbm-james", "none")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class RoiRule:
    name: str
    pattern: re.Pattern
    required: bool = True

    def matches(self, roi_name: str) -> bool:
        return self.pattern.fullmatch(roi_name.strip()) is not None


@dataclass(frozen=True)
class SeriesRule:
    name: str
    modality: str
    pattern: re.Pattern | None = None

    def matches(self, series: Series) -> bool:
        return series.modality == self.modality and (self.pattern is None or
                                                     self.pattern.search(series.description) is not None)


def _name(text: str, what: str) -> str:
    if not _NAME.match(text):
        raise InputError(f"{what} name '{text}' must be letters, digits and _ (it becomes a manifest column)")
    return text


def _regex(text: str, what: str) -> re.Pattern:
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as error:
        raise InputError(f"{what}: '{text}' is not a regular expression ({error})") from None


def parse_roi_rule(text: str, required: bool = True) -> RoiRule:
    """``NAME=REGEX`` (the whole ROI name must match, case-insensitive)."""
    name, sep, pattern = text.partition("=")
    if not sep or not pattern:
        raise InputError(f"--roi '{text}': expected NAME=REGEX, e.g. GTVp='gtv[ _-]?(p|t)\\b.*'")
    return RoiRule(_name(name.strip(), "--roi"), _regex(pattern.strip(), f"--roi {name}"), required)


def parse_series_rule(text: str) -> SeriesRule:
    """``NAME=MODALITY[:REGEX]`` (MODALITY CT, MR or PT; REGEX searched in the Series Description)."""
    name, sep, rest = text.partition("=")
    modality, _, pattern = rest.partition(":")
    modality = modality.strip().upper()
    if modality == "PET":
        modality = "PT"
    if not sep or modality not in IMAGE_MODALITIES:
        raise InputError(f"--image '{text}': expected NAME=MODALITY[:REGEX] with MODALITY one of CT, MR, PT")
    return SeriesRule(_name(name.strip(), "--image"), modality,
                      _regex(pattern, f"--image {name}") if pattern else None)


@dataclass
class PatientImport:
    patient_id: str
    folder: str
    status: str = "ok"
    images: dict[str, str] = field(default_factory=dict)
    masks: dict[str, str] = field(default_factory=dict)
    clinical: dict[str, str] = field(default_factory=dict)
    series: dict[str, str] = field(default_factory=dict)   # image name -> series UID
    rois: list[dict] = field(default_factory=list)         # every ROI: structure set, name, matched rule
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    manifest: Path | None
    patients: list[PatientImport]
    index: DicomIndex

    @property
    def failed(self) -> list[PatientImport]:
        return [p for p in self.patients if p.status != "ok"]


def _safe_folder(patient_id: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "_", patient_id).strip("._") or "patient"
    name, n = base, 2
    while name.lower() in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name.lower())
    return name


def _choose(rule: SeriesRule, candidates: list[Series], referenced: set[str]) -> tuple[Series | None, str]:
    matching = [s for s in candidates if rule.matches(s)]
    if not matching:
        return None, ""
    matching.sort(key=lambda s: (s.series_uid not in referenced, -len(s.files), s.number if s.number is not None
                                 else 10 ** 9, s.series_uid))
    why = ""
    if len(matching) > 1:
        reason = "referenced by the RTSTRUCT" if matching[0].series_uid in referenced else "most slices"
        why = (f"{rule.name}: chose {matching[0].label} ({len(matching[0].files)} slices, {reason}) of "
               f"{len(matching)} {rule.modality} series")
    return matching[0], why


def _clinical(header) -> dict[str, str]:
    from .suv import parse_datetime

    out = {}
    age = str(header.get("PatientAge", "") or "").strip().upper()
    if re.fullmatch(r"\d{3}Y", age):
        out["age"] = str(int(age[:3]))
    elif header.get("PatientBirthDate") and header.get("StudyDate"):
        try:
            born, seen = parse_datetime(header.PatientBirthDate, "00"), parse_datetime(header.StudyDate, "00")
            out["age"] = str(seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day)))
        except ValueError:
            pass
    sex = str(header.get("PatientSex", "") or "").strip().upper()
    if sex in ("M", "F", "O"):
        out["sex"] = sex
    for keyword, name in (("PatientWeight", "weight_kg"), ("PatientSize", "height_m")):
        try:
            value = float(header.get(keyword) or 0)
        except (TypeError, ValueError):
            value = 0
        if value > 0:
            out[name] = f"{value:g}"
    return out


def import_patient(index: DicomIndex, patient_id: str, out: Path, folder: str, rois: Sequence[RoiRule],
                   series_rules: Sequence[SeriesRule], suv: str = "bw",
                   allow_mixed_frames: bool = False) -> PatientImport:
    """Import one patient into ``out/folder`` (removed again if the patient fails)."""
    result = PatientImport(patient_id, folder)
    try:
        _import(index, result, out / folder, rois, series_rules, suv, allow_mixed_frames)
    except InputError as error:
        result.status = error.problem if error.path is None else f"{error.path}: {error.problem}"
        shutil.rmtree(out / folder, ignore_errors=True)
        result.images, result.masks = {}, {}
    return result


def _import(index, result: PatientImport, target: Path, rois, series_rules, suv, allow_mixed_frames) -> None:
    import SimpleITK as sitk

    from ..imageio import write_image
    from .rtstruct import rasterise, read_rtstruct
    from .series import read_series
    from .suv import suv_conversion

    series = index.of_patient(result.patient_id)
    images = [s for s in series if s.modality in IMAGE_MODALITIES]
    if not images:
        found = ", ".join(sorted({s.modality for s in series})) or "nothing"
        raise InputError(f"no CT, MR or PET image series (found: {found})")
    structure_sets = [read_rtstruct(path) for s in series if s.modality == "RTSTRUCT" for path in s.files]
    referenced = {uid for ss in structure_sets for uid in ss.referenced_series}
    chosen: dict[str, Series] = {}
    for rule in series_rules:
        picked, why = _choose(rule, images, referenced)
        if picked is not None:
            chosen[rule.name] = picked
            result.series[rule.name] = picked.series_uid
        if why:
            result.notes.append(why)
    if not chosen:
        raise InputError("no image series matches the --image rules (series: " +
                         "; ".join(s.label for s in images) + ")")
    frames = {name: s.frame_of_reference for name, s in chosen.items()}
    if len(set(frames.values())) > 1 and not allow_mixed_frames:
        raise InputError("the images are in different frames of reference (" +
                         ", ".join(f"{n} {f or 'none'}" for n, f in frames.items()) + "); register them first, or "
                         "pass --allow-mixed-frames if they share the scanner's space")
    target.mkdir(parents=True, exist_ok=True)
    grids = {}
    for name, picked in chosen.items():
        volume = read_series(picked)
        image = volume.image
        if picked.modality == "PT" and suv != "none":
            conversion = suv_conversion(volume.headers, suv, where=f"{picked.label}, {picked.files[0].parent}")
            image = sitk.Cast(image, sitk.sitkFloat32) * conversion.factor
            result.notes.append(f"{name}: SUV{'bw' if suv == 'bw' else ' ' + suv} = value x {conversion.factor:.6g} "
                                f"({conversion.record.get('scan_time_rule', conversion.record.get('note', ''))})")
            image.SetMetaData("rtresponse_units", "SUVbw" if suv == "bw" else f"SUL ({suv})")
        elif picked.modality == "PT":
            image.SetMetaData("rtresponse_units", str(volume.headers[0].get("Units", "")))
        write_image(image, target / f"{name}.nrrd")
        result.images[name] = f"{result.folder}/{name}.nrrd"
        grids[picked.series_uid] = (name, volume.image)
        if not result.clinical:
            result.clinical = _clinical(volume.headers[0])
    _masks(result, target, structure_sets, index, chosen, grids, rois, rasterise, write_image)


def _masks(result, target, structure_sets, index, chosen, grids, rules, rasterise, write_image) -> None:
    found: dict[str, list] = {}
    for ss in structure_sets:
        for roi in ss.rois:
            matched = [rule.name for rule in rules if rule.matches(roi.name)] if rules else \
                [re.sub(r"\W+", "_", roi.name).strip("_")] if roi.contours else []
            result.rois.append({"patient_id": result.patient_id, "rtstruct": ss.path.name, "roi": roi.name,
                                "contours": len(roi.contours), "mask": ";".join(matched)})
            for name in matched:
                found.setdefault(name, []).append((ss, roi))
    wanted = list(rules) if rules else [RoiRule(name, re.compile(re.escape(name)), False) for name in found]
    for rule in wanted:
        hits = found.get(rule.name, [])
        if not hits:
            if rule.required:
                names = sorted({r["roi"] for r in result.rois})
                raise InputError(f"no ROI matches required mask {rule.name} ({rule.pattern.pattern}); ROIs: "
                                 f"{', '.join(names) or 'none (no RTSTRUCT)'}")
            continue
        if len(hits) > 1 and rules:
            raise InputError(f"ROIs {', '.join(repr(r.name) for _, r in hits)} all match mask {rule.name} "
                             f"({rule.pattern.pattern}); make the rule match one")
        ss, roi = hits[0]
        where = str(ss.path)
        references = [uid for uid in ss.referenced_series]
        present = [uid for uid in references if uid in grids]
        if not present:
            if not references:
                raise InputError("the RTSTRUCT names no referenced series (Referenced Frame of Reference Sequence)",
                                 path=where)
            uid = references[0]
            if uid in index.series:
                raise InputError(f"the RTSTRUCT references {index.series[uid].label}, which no --image rule "
                                 "picked", path=where)
            other = index.series.get(uid)
            raise InputError(f"the RTSTRUCT references series {uid}, which is not in the folder" +
                             ("" if other else f" (this patient's image series: " +
                              ", ".join(s.series_uid for s in chosen.values()) + ")"), path=where)
        image_name, grid = grids[present[0]]
        series = index.series[present[0]]
        frame = roi.frame_of_reference or ss.frame_of_reference
        if frame and series.frame_of_reference and frame != series.frame_of_reference:
            raise InputError(f"ROI '{roi.name}' is in frame of reference {frame} but its image "
                             f"({image_name}) is in {series.frame_of_reference}", path=where)
        if not roi.contours and not rule.required:
            result.notes.append(f"{rule.name}: ROI '{roi.name}' has no closed contours; left empty")
            continue
        mask = rasterise(roi, grid, where)
        write_image(mask, target / f"{rule.name}.nrrd")
        result.masks[rule.name] = f"{result.folder}/{rule.name}.nrrd"


def import_dicom(root: str | os.PathLike, out: str | os.PathLike, rois: Sequence[RoiRule] = (),
                 series_rules: Sequence[SeriesRule] | None = None, suv: str = "bw", allow_mixed_frames: bool = False,
                 clinical: "object | None" = None, progress: Callable | None = None,
                 index_progress: Callable | None = None) -> ImportResult:
    """Import every patient under ``root`` into ``out`` (``out/<patient>/NAME.nrrd``, ``manifest.csv``,
    ``report.csv``, ``rois.csv``). ``clinical``: a DataFrame indexed by patient_id with clin_/outcome_ columns
    added to the manifest. Raises InputError only when no patient could be imported."""
    import pandas as pd

    from ..atomic import atomic_path
    from .index import index_folder

    if suv not in SUV_CHOICES:
        raise InputError(f"--suv must be one of {', '.join(SUV_CHOICES)}, got '{suv}'")
    series_rules = list(series_rules) if series_rules else [parse_series_rule(t) for t in DEFAULT_SERIES]
    names = [r.name for r in series_rules] + [r.name for r in rois]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"name(s) {', '.join(repeated)} given to more than one --roi/--image rule")
    out = Path(out)
    index = index_folder(root, index_progress)
    patients = index.patients()
    if not patients:
        raise InputError(f"no DICOM files found ({index.not_dicom} other file(s), {len(index.unreadable)} "
                         "unreadable)", path=str(root))
    out.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    results = []
    for done, pid in enumerate(patients, start=1):
        results.append(import_patient(index, pid, out, _safe_folder(pid, taken), rois, series_rules, suv,
                                      allow_mixed_frames))
        if progress:
            progress(done, len(patients))
    imported = [p for p in results if p.status == "ok"]
    report = pd.DataFrame([{"patient_id": p.patient_id, "status": p.status, "folder": p.folder,
                            **{f"series_{n}": p.series.get(n, "") for n in [r.name for r in series_rules]},
                            "masks": ";".join(p.masks), "notes": " | ".join(p.notes)} for p in results])
    roi_rows = [row for p in results for row in p.rois]
    with atomic_path(out / "report.csv") as tmp:
        report.to_csv(tmp, index=False)
    with atomic_path(out / "rois.csv") as tmp:
        pd.DataFrame(roi_rows, columns=["patient_id", "rtstruct", "roi", "contours", "mask"]).to_csv(tmp, index=False)
    if not imported:
        first = results[0]
        raise InputError(f"no patient could be imported ({len(results)} failed; patient {first.patient_id}: "
                         f"{first.status})", path=str(root))
    image_names = [r.name for r in series_rules if any(r.name in p.images for p in imported)]
    mask_names = list(dict.fromkeys([r.name for r in rois] + [m for p in imported for m in p.masks]))
    clinical_names = list(dict.fromkeys(k for p in imported for k in p.clinical))
    rows = []
    for p in imported:
        row = {"patient_id": p.patient_id}
        row.update({f"image_{n}": p.images.get(n, "") for n in image_names})
        row.update({f"mask_{n}": p.masks.get(n, "") for n in mask_names})
        row.update({f"clin_{n}": p.clinical.get(n, "") for n in clinical_names})
        rows.append(row)
    manifest = pd.DataFrame(rows)
    if clinical is not None:
        extra = clinical.copy()
        extra.index = extra.index.astype(str)
        clash = [c for c in extra.columns if c in manifest.columns]
        manifest = manifest.drop(columns=clash).merge(extra, how="left", left_on="patient_id", right_index=True)
    with atomic_path(out / "manifest.csv") as tmp:
        manifest.fillna("").to_csv(tmp, index=False)
    return ImportResult(out / "manifest.csv", results, index)
