"""The synthetic cohort as a DICOM export: per patient a CT series, a PET series in Bq/mL with the SUV tags,
an MR series and an RTSTRUCT with the GTVs (and relapse) under local ROI names — what a TPS export looks like."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

ROI_NAMES = {"GTVp": "GTV_p 70", "GTVn": "GTVn_L", "relapse": "Relapse vol"}
SERIES = {"CT": ("CT", "Planning CT"), "PET": ("PT", "PET AC WB"), "T1": ("MR", "T1 SE tra")}


def write_cohort_dicom(manifest: str | os.PathLike, out: str | os.PathLike, seed: int = 0,
                       roi_names: Mapping[str, str] = ROI_NAMES,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, dict]:
    """Write every patient of a synthetic manifest under ``out/<patient>/``; returns {patient: SUV tags used}."""
    import SimpleITK as sitk

    from ..cohort import load_manifest
    from .export import export_masks
    from .write import PetTags, Subject, suv_to_bqml, write_series

    cohort = load_manifest(manifest)
    rng = np.random.default_rng(seed)
    out = Path(out)
    used = {}
    for done, pid in enumerate(cohort.patient_ids, start=1):
        patient = cohort.patient(pid)
        weight = float(np.round(rng.uniform(55, 105), 1))
        height = float(np.round(rng.uniform(1.55, 1.95), 2))
        subject = Subject(pid, sex=str(patient.clinical.get("sex", "M")), age=int(patient.clinical.get("age", 60)),
                          weight_kg=weight, height_m=height)
        injection = dt.datetime(2024, 3, 4, 8, 0, 0) + dt.timedelta(minutes=int(rng.integers(0, 120)))
        pet = PetTags(dose_bq=float(np.round(rng.uniform(250e6, 400e6), -5)), injection=injection,
                      scan=injection + dt.timedelta(minutes=int(rng.integers(55, 80)), seconds=int(rng.integers(60))))
        folder = out / pid
        for number, (name, (modality, description)) in enumerate(SERIES.items(), start=1):
            if name not in patient.images:
                continue
            image = cohort.read_image(pid, name)
            if modality == "PT":
                image = suv_to_bqml(sitk.Cast(image, sitk.sitkFloat64), weight, pet)
            write_series(image, folder / name, modality, subject, description, series_number=number,
                         pet=pet if modality == "PT" else None)
        masks = {roi_names.get(name, name): cohort.read_mask(pid, name, image="CT")
                 for name in ("GTVp", "GTVn", "relapse") if name in patient.masks}
        if masks:
            export_masks(masks, folder / "CT", folder / "RTSTRUCT", formats=("rtstruct",), label="TPS export")
        used[pid] = {"weight_kg": weight, "height_m": height, "sex": subject.sex, "dose_bq": pet.dose_bq,
                     "injection": pet.injection, "scan": pet.scan}
        if progress:
            progress(done, len(cohort))
    return used
