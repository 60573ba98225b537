"""The hub's sample data: a cohort in the user cache is loaded at once; the first time, ``rtresponse sample-data``
writes it there as a background job (the synthetic cohort takes seconds to minutes, PyRadiomics' cases are fetched
with pip) and the patient is loaded when the job ends.

The job writes the cohort into a staging folder and moves it into place only when it is complete, so a cancelled or
failed job leaves no cohort and the next try starts afresh. Loads without Qt or Slicer; loading a patient needs a
scene (:mod:`rtresponse.mrml`).
"""

from __future__ import annotations

import shutil

SAMPLE_KINDS = (("synthetic", "Synthetic head & neck cohort"), ("pyradiomics", "PyRadiomics cases (real MR/CT)"))
TITLES = dict(SAMPLE_KINDS)


def checkKind(kind: str) -> str:
    if kind not in TITLES:
        raise ValueError(f"unknown sample kind '{kind}'; choose one of {', '.join(TITLES)}")
    return kind


def sampleFolder(kind: str):
    """The cache folder of cohort ``kind`` (the one ``rtresponse.sampledata.ensure_sample`` uses)."""
    from rtresponse import sampledata

    return sampledata.sample_folder(checkKind(kind))


def cachedManifest(kind: str):
    """The manifest of cohort ``kind`` when it is ready in the cache (load at once), else None (run the job)."""
    from rtresponse import sampledata

    return sampledata.cached_manifest(checkKind(kind))


def sampleArguments(kind: str, out, patients: int | None = None) -> list[str]:
    """``rtresponse`` arguments that write cohort ``kind`` into ``out`` (``patients``: synthetic only; default 24)."""
    arguments = ["sample-data", "--kind", checkKind(kind), "--out", str(out)]
    if patients is not None:
        arguments += ["--patients", str(int(patients))]
    return arguments


def prepareArguments(kind: str, patients: int | None = None) -> list[str]:
    """The job that makes cohort ``kind`` in the cache. A folder an interrupted run of an earlier version left there
    without its manifest is removed first (the command refuses to write into a folder holding files)."""
    folder = sampleFolder(kind)
    if folder.is_dir() and cachedManifest(kind) is None:
        shutil.rmtree(folder)
    return sampleArguments(kind, folder, patients)


def sampleCohort(kind: str):
    """The cached cohort ``kind`` (an ``rtresponse.cohort.Cohort``); raises when it has not been prepared."""
    from rtresponse import cohort

    manifest = cachedManifest(kind)
    if manifest is None:
        raise FileNotFoundError(f"the {kind} sample data is not in the cache ({sampleFolder(kind)}): prepare it first")
    return cohort.load_manifest(manifest)


def loadSamplePatient(kind: str, patient: str | None, scene):
    """Put a patient of the cached cohort ``kind`` (the first when ``patient`` is empty or not in it) into ``scene``:
    (the cohort's patient ids, the patient loaded, the nodes dict of ``rtresponse.mrml.load_patient``)."""
    from rtresponse import mrml

    patientCohort = sampleCohort(kind)
    ids = list(patientCohort.patient_ids)
    patient = patient if patient in ids else ids[0]
    return ids, patient, mrml.load_patient(patientCohort, patient, scene=scene)


def preparingText(kind: str) -> str:
    return f"Preparing the {kind} sample data (first time only; the patient is loaded when it is ready)..."


def loadedText(kind: str, patient: str) -> str:
    return f"Loaded {kind} sample patient {patient}."
