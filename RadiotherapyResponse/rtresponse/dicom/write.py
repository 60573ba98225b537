"""Writing an image as a DICOM series (one file per slice): CT, MR or PET in Bq/mL with the SUV tags.

Used to turn the synthetic cohort into DICOM (tests, demos) and by anyone who needs a series to reference.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import require

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

SOP_CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
               "PT": "1.2.840.10008.5.1.4.1.1.128"}
F18_HALF_LIFE = 6586.2  # s


@dataclass
class Subject:
    """Patient and study tags shared by the series of one patient."""

    patient_id: str
    name: str = ""
    sex: str = ""
    age: int | None = None
    weight_kg: float | None = None
    height_m: float | None = None
    study_uid: str = ""
    frame_of_reference: str = ""
    study_time: dt.datetime = field(default_factory=lambda: dt.datetime(2024, 3, 4, 9, 0, 0))

    def __post_init__(self):
        from pydicom.uid import generate_uid

        self.study_uid = self.study_uid or generate_uid()
        self.frame_of_reference = self.frame_of_reference or generate_uid()


@dataclass
class PetTags:
    """What SUV needs: injected dose (Bq), injection time, the scan start, half-life (s), decay correction."""

    dose_bq: float = 350e6
    injection: dt.datetime = dt.datetime(2024, 3, 4, 8, 0, 0)
    scan: dt.datetime = dt.datetime(2024, 3, 4, 9, 0, 0)
    half_life_s: float = F18_HALF_LIFE
    decay_correction: str = "START"


def _da(moment: dt.datetime) -> str:
    return moment.strftime("%Y%m%d")


def _tm(moment: dt.datetime) -> str:
    return moment.strftime("%H%M%S.%f")


def write_series(image: "sitk.Image", folder: str | os.PathLike, modality: str, subject: Subject,
                 description: str = "", series_number: int = 1, pet: PetTags | None = None,
                 moment: dt.datetime | None = None) -> list[Path]:
    """Write ``image`` (3D; voxel values in HU, MR units or Bq/mL) as one file per slice in ``folder``.

    CT and MR are stored as int16 (values rounded; slope 1); PET as int16 with one Rescale Slope per slice.
    Returns the files in slice order.
    """
    pydicom = require("pydicom")
    import SimpleITK as sitk
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    modality = modality.upper()
    if modality not in SOP_CLASSES:
        raise ValueError(f"modality must be one of {', '.join(SOP_CLASSES)}, got {modality}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    voxels = sitk.GetArrayFromImage(image).astype(np.float64)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing = np.array(image.GetSpacing())
    origin = np.array(image.GetOrigin())
    series_uid = generate_uid()
    moment = moment or (pet.scan if pet else subject.study_time)
    paths = []
    for k in range(voxels.shape[0]):
        plane = voxels[k]
        if modality == "PT":
            top = float(np.abs(plane).max())
            slope = top / 32767 if top > 0 else 1.0
            stored = np.round(plane / slope).astype(np.int16)
        else:
            slope = 1.0
            stored = np.clip(np.round(plane), -32768, 32767).astype(np.int16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = SOP_CLASSES[modality]
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality = modality
        ds.PatientID, ds.PatientName = subject.patient_id, subject.name or f"{subject.patient_id}^"
        ds.PatientBirthDate, ds.PatientSex = "", subject.sex
        if subject.age is not None:
            ds.PatientAge = f"{int(subject.age):03d}Y"
        if subject.weight_kg is not None:
            ds.PatientWeight = f"{subject.weight_kg:.1f}"
        if subject.height_m is not None:
            ds.PatientSize = f"{subject.height_m:.2f}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = subject.study_uid, series_uid
        ds.FrameOfReferenceUID = subject.frame_of_reference
        ds.StudyDate, ds.StudyTime = _da(subject.study_time), _tm(subject.study_time)
        ds.SeriesDate, ds.SeriesTime = _da(moment), _tm(moment)
        ds.AcquisitionDate, ds.AcquisitionTime = _da(moment), _tm(moment)
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        ds.SeriesNumber, ds.InstanceNumber = series_number, k + 1
        ds.SeriesDescription = description or modality
        ds.Manufacturer = "rtresponse"
        ds.PatientPosition = "HFS"
        position = origin + direction @ (np.array([0.0, 0.0, k]) * spacing)
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in np.concatenate([direction[:, 0], direction[:, 1]])]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]  # row spacing (y), column spacing (x)
        ds.SliceThickness = f"{spacing[2]:.6f}"
        ds.SliceLocation = f"{position @ direction[:, 2]:.6f}"
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = "0", f"{slope:.10g}" if modality == "PT" else "1"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        if modality == "CT":
            ds.RescaleType = "HU"
            ds.KVP = "120"
        if modality == "PT":
            pet = pet or PetTags()
            ds.Units, ds.DecayCorrection = "BQML", pet.decay_correction
            ds.CorrectedImage = ["DECY", "ATTN", "SCAT"]
            ds.SeriesType = ["STATIC", "IMAGE"]
            drug = Dataset()
            drug.Radiopharmaceutical = "Fluorodeoxyglucose"
            drug.RadiopharmaceuticalStartTime = _tm(pet.injection)
            drug.RadiopharmaceuticalStartDateTime = _da(pet.injection) + _tm(pet.injection)
            drug.RadionuclideTotalDose = f"{pet.dose_bq:.6g}"
            drug.RadionuclideHalfLife = f"{pet.half_life_s:g}"
            ds.RadiopharmaceuticalInformationSequence = Sequence([drug])
        ds.PixelData = stored.tobytes()
        path = folder / f"{modality}_{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def suv_to_bqml(suv: "sitk.Image", weight_kg: float, pet: PetTags) -> "sitk.Image":
    """Activity concentration (Bq/mL) of an SUVbw image at ``pet.scan`` (the inverse of body-weight SUV)."""
    elapsed = (pet.scan - pet.injection).total_seconds() if pet.decay_correction == "START" else 0.0
    decayed = pet.dose_bq * 2.0 ** (-elapsed / pet.half_life_s)
    return suv * (decayed / (weight_kg * 1000.0))
