"""Index a folder tree of DICOM files (any depth, any file names) by patient, study and series."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import require

IMAGE_MODALITIES = ("CT", "MR", "PT")


@dataclass
class Series:
    """One series: its files (slices, or the one RTSTRUCT/SEG file) and the tags that tell series apart."""

    patient_id: str
    study_uid: str
    series_uid: str
    modality: str
    frame_of_reference: str = ""
    description: str = ""
    number: int | None = None
    files: list[Path] = field(default_factory=list)
    sop_uids: list[str] = field(default_factory=list)
    multiframe: bool = False

    @property
    def label(self) -> str:
        text = f"{self.modality} series {self.series_uid}"
        return f"{text} ('{self.description}')" if self.description else text


@dataclass
class DicomIndex:
    """Every DICOM series found under ``root``, and the files that were not DICOM or could not be read."""

    root: Path
    series: dict[str, Series] = field(default_factory=dict)  # by SeriesInstanceUID
    not_dicom: int = 0
    unreadable: dict[Path, str] = field(default_factory=dict)

    def patients(self) -> list[str]:
        return sorted({s.patient_id for s in self.series.values()})

    def of_patient(self, patient_id: str) -> list[Series]:
        return [s for s in self.series.values() if s.patient_id == patient_id]

    def by_sop(self) -> dict[str, Series]:
        return {uid: s for s in self.series.values() for uid in s.sop_uids}


def _files(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            yield Path(folder) / name


def read_header(path: Path):
    """The dataset without pixel data, or None if ``path`` is not a DICOM file (files without the 128-byte
    preamble, which old systems write, are accepted when they hold a SOP instance and a modality)."""
    pydicom = require("pydicom")
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        pass
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
        if len(head) < 8 or head[:2] not in (b"\x08\x00", b"\x02\x00"):  # group 0008 or 0002, little endian
            return None
        dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        return dataset if "SOPInstanceUID" in dataset and "Modality" in dataset else None
    except Exception:  # noqa: BLE001 - not DICOM after all
        return None


def index_folder(root: str | os.PathLike, progress: Callable[[int, int | None], None] | None = None) -> DicomIndex:
    """Read every file's header under ``root``; group by series. ``progress(done, total)`` per file."""
    from ..errors import InputError

    require("pydicom")  # before the loop: a missing package is not an unreadable file
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a folder", path=str(root))
    paths = list(_files(root))
    index = DicomIndex(root)
    for done, path in enumerate(paths, start=1):
        try:
            dataset = read_header(path)
        except Exception as error:  # noqa: BLE001 - a broken file is listed, the rest goes on
            index.unreadable[path] = f"{type(error).__name__}: {error}"[:200]
            dataset = None
        if dataset is None:
            if path not in index.unreadable:
                index.not_dicom += 1
        else:
            _add(index, path, dataset)
        if progress:
            progress(done, len(paths))
    return index


def _add(index: DicomIndex, path: Path, dataset) -> None:
    uid = str(dataset.get("SeriesInstanceUID", "")) or f"no-series-uid:{path.parent}"
    series = index.series.get(uid)
    if series is None:
        number = dataset.get("SeriesNumber")
        series = index.series[uid] = Series(
            patient_id=str(dataset.get("PatientID", "")).strip() or "unknown",
            study_uid=str(dataset.get("StudyInstanceUID", "")), series_uid=uid,
            modality=str(dataset.get("Modality", "")).upper(),
            frame_of_reference=str(dataset.get("FrameOfReferenceUID", "")),
            description=str(dataset.get("SeriesDescription", "")).strip(),
            number=int(number) if number not in (None, "") else None)
    series.files.append(path)
    series.sop_uids.append(str(dataset.get("SOPInstanceUID", "")))
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        series.multiframe = True
