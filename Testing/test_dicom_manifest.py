"""A manifest that points at DICOM directly (issue 17): ``mask_<NAME>`` = an RTSTRUCT file and an ROI
(``FILE#ROI``, or the file alone for the ROI named NAME) rasterised on the patient's image; ``image_PET`` = a PET
series in Bq/mL with ``suv_PET=bw`` converted to SUV on reading — so a small cohort needs no conversion step."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")
pytest.importorskip("rt_utils")

import SimpleITK as sitk  # noqa: E402

from rtresponse.cohort import ManifestError, load_manifest, validate_manifest  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """Two synthetic patients as NRRD and as a TPS export (CT, PET in Bq/mL, MR, RTSTRUCT 'GTV_p 70', ...)."""
    from rtresponse.dicom.synthetic import write_cohort_dicom
    from rtresponse.sampledata.synthetic import write_cohort

    root = tmp_path_factory.mktemp("dicom_manifest")
    manifest = write_cohort(root / "nrrd", n_patients=2, seed=5, size=(48, 48, 16), signal=2.0)
    write_cohort_dicom(manifest, root / "dicom", seed=1)
    return root, load_manifest(manifest)


def _manifest(root: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    path = root / name
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns)
        writer.writeheader()
        writer.writerows([{c: row.get(c, "") for c in columns} for row in rows])
    return path


def _rtstruct(pid: str) -> str:
    return f"dicom/{pid}/RTSTRUCT/RTSTRUCT.dcm"


def _voxels(image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def test_rtstruct_roi_cells_give_the_original_masks(export):
    root, original = export
    rows = []
    for pid in original.patient_ids:
        rows.append({"patient_id": pid, "image_PET": f"dicom/{pid}/PET", "image_CT": f"dicom/{pid}/CT",
                     "image_CTnrrd": f"nrrd/{pid}/CT.nrrd", "mask_GTVp": f"{_rtstruct(pid)}#gtv_P 70",
                     "mask_relapse": f"{_rtstruct(pid)}#Relapse vol" if original.patient(pid).masks.get("relapse")
                     else ""})
    cohort = load_manifest(_manifest(root, rows))
    assert validate_manifest(cohort.path) == []
    for pid in cohort.patient_ids:
        assert cohort.patient(pid).masks["GTVp"] == root / _rtstruct(pid)  # the file (fingerprints, existence)
        for name in ("GTVp", "relapse"):
            if not cohort.patient(pid).masks.get(name):
                continue
            expected = _voxels(original.read_mask(pid, name, image="CT"))
            # on a NRRD image, on the DICOM CT, and by default on the series the RTSTRUCT references (the CT,
            # although image_PET comes first)
            for image in ("CTnrrd", "CT", None):
                mask = cohort.read_mask(pid, name, image=image)
                assert np.array_equal(_voxels(mask), expected), (pid, name, image)
            assert mask.GetSize() == cohort.read_image(pid, "CT").GetSize()


def test_rtstruct_file_alone_is_the_roi_named_like_the_column(export, tmp_path):
    from rtresponse.dicom.export import export_masks

    root, original = export
    pid = original.patient_ids[0]
    gtv = original.read_mask(pid, "GTVp", image="CT")
    export_masks({"GTVp": gtv}, root / "dicom" / pid / "CT", tmp_path / "rs", formats=("rtstruct",))
    cohort = load_manifest(_manifest(tmp_path, [{"patient_id": pid, "image_CT": str(root / "nrrd" / pid / "CT.nrrd"),
                                                 "mask_GTVp": "rs/RTSTRUCT.dcm"}]))
    assert np.array_equal(_voxels(cohort.read_mask(pid, "GTVp")), _voxels(gtv))


def test_a_missing_roi_or_file_names_patient_file_and_roi(export):
    root, original = export
    pid = original.patient_ids[0]
    manifest = _manifest(root, [{"patient_id": pid, "image_CT": f"nrrd/{pid}/CT.nrrd",
                                 "mask_GTVp": f"{_rtstruct(pid)}#GTVp"}], "missing_roi.csv")
    cohort = load_manifest(manifest)
    with pytest.raises(InputError) as caught:
        cohort.read_mask(pid, "GTVp", image="CT")
    assert str(caught.value).startswith(f"patient {pid}, column mask_GTVp ({root / _rtstruct(pid)}): no ROI named "
                                        "'GTVp' in the RTSTRUCT (ROIs: GTV_p 70, ")
    assert validate_manifest(manifest) == [str(caught.value)]

    missing = _manifest(root, [{"patient_id": pid, "image_CT": f"nrrd/{pid}/CT.nrrd",
                                "mask_GTVp": f"dicom/{pid}/RS_gone.dcm#GTV_p 70"}], "missing_file.csv")
    with pytest.raises(ManifestError, match=rf"patient {pid}, column mask_GTVp: file not found \(.*RS_gone.dcm\)"):
        load_manifest(missing)

    pet_only = _manifest(root, [{"patient_id": pid, "image_PET": f"dicom/{pid}/PET",
                                 "mask_GTVp": f"{_rtstruct(pid)}#GTV_p 70"}], "pet_only.csv")
    with pytest.raises(InputError, match=r"column mask_GTVp .*image_PET: ROI 'GTV_p 70': a contour at .* is not on a "
                                         r"slice of the referenced image"):
        load_manifest(pet_only).read_mask(pid, "GTVp")


def test_a_dicom_pet_in_bqml_is_marked_and_converted_with_suv_column(export):
    root, original = export
    rows = [{"patient_id": pid, "image_PET": f"dicom/{pid}/PET", "suv_PET": cell}
            for pid, cell in zip(original.patient_ids, ("", "bw"))]
    cohort = load_manifest(_manifest(root, rows, "pet.csv"))
    raw, marked = original.patient_ids
    state = cohort.suv_state(raw, "PET")
    assert (state.state, state.source) == ("bqml", "DICOM Units (0054,1001) BQML")
    warning = cohort.pet_warning(raw, "PET")
    assert warning.startswith(f"patient {raw}: PET {root / 'dicom' / raw / 'PET'} looks like Bq/mL")
    state = cohort.suv_state(marked, "PET")
    assert state.known_suv and state.converted and state.kind == "bw"
    assert cohort.pet_warning(marked, "PET") is None
    suv = _voxels(original.read_image(marked, "PET")).astype(np.float64)
    back = _voxels(cohort.read_image(marked, "PET")).astype(np.float64)
    assert back.shape == suv.shape
    assert np.abs(back - suv).max() <= 0.01 * suv.max()
    stored = _voxels(cohort.read_image(raw, "PET")).max() / _voxels(original.read_image(raw, "PET")).max()
    assert stored > 1000  # Bq/mL as stored: without suv_PET nothing is converted
