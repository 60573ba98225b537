"""DICOM in and out (issue 17): real DICOM shipped with pydicom, SUV against hand-computed values, the RTSTRUCT
rasteriser against rt-utils' reader, export-dicom read back by independent readers, bad DICOM per patient."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("rt_utils")
pytest.importorskip("highdicom")

import SimpleITK as sitk  # noqa: E402
from conftest import folder_digest  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402

from rtresponse.cli import main  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402

LIBRARY = Path(__file__).resolve().parents[1] / "RadiotherapyResponse"


def _image(shape=(6, 32, 32), spacing=(2.0, 2.0, 3.0), origin=(-31.0, -29.0, 12.0), seed=0):
    voxels = np.random.default_rng(seed).normal(30, 40, shape).astype(np.int16)
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def _blob(reference, centre=(0.0, 0.0, 20.0), radius=13.0, hole=True, island=True):
    """A ball (with a hole on its middle slices and a separate voxel island) on ``reference``'s grid."""
    z, y, x = np.indices(sitk.GetArrayViewFromImage(reference).shape)
    ox, oy, oz = reference.GetOrigin()
    sx, sy, sz = reference.GetSpacing()
    px, py, pz = ox + x * sx, oy + y * sy, oz + z * sz
    r = np.sqrt((px - centre[0]) ** 2 + (py - centre[1]) ** 2 + ((pz - centre[2]) * 0.7) ** 2)
    mask = r <= radius
    if hole:
        mask &= ~((np.abs(px - centre[0]) < 3) & (np.abs(py - centre[1]) < 3) & (np.abs(pz - centre[2]) < 4))
    mask[2, 2, 2] = island  # a one-voxel island: OpenCV traces it as a one-point contour
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(reference)
    return image


def _dice(a, b) -> float:
    a, b = np.asarray(a) != 0, np.asarray(b) != 0
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


# --------------------------------------------------------------------------- real DICOM shipped with pydicom

def test_real_ct_and_mr_are_indexed_and_read_with_their_geometry(tmp_path):
    from rtresponse.dicom.index import index_folder
    from rtresponse.dicom.series import read_series

    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "a" / "b" / "IM0001")  # any depth, any name
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "a" / "x.bin")
    (tmp_path / "a" / "notes.txt").write_text("not DICOM\n")
    index = index_folder(tmp_path)
    assert index.not_dicom == 1 and not index.unreadable
    assert sorted(index.patients()) == ["1CT1", "4MR1"]
    for name, modality in (("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")):
        [series] = [s for s in index.series.values() if s.modality == modality]
        volume = read_series(series)
        reference = sitk.ReadImage(get_testdata_file(name))  # GDCM through SimpleITK: the independent reader
        assert volume.image.GetSize() == reference.GetSize()
        assert np.allclose(volume.image.GetOrigin(), reference.GetOrigin(), atol=1e-4)
        assert np.allclose(volume.image.GetSpacing()[:2], reference.GetSpacing()[:2], atol=1e-6)
        assert np.allclose(volume.image.GetDirection(), reference.GetDirection(), atol=1e-6)
        assert np.array_equal(sitk.GetArrayFromImage(volume.image), sitk.GetArrayFromImage(reference))


def test_real_rtstruct_rois_are_listed_and_rasterised():
    from rtresponse.dicom.rtstruct import rasterise, read_rtstruct

    structure_set = read_rtstruct(get_testdata_file("rtstruct.dcm"))
    assert [r.name for r in structure_set.rois] == ["patient", "Isocenter 1", "Isocenter 2"]
    assert structure_set.referenced_series == ["1.2.826.0.1.3680043.8.498.2010020400001.2.1.1"]
    patient = structure_set.roi("patient")
    assert len(patient.contours) == 3 and patient.frame_of_reference == "1.2.826.0.1.3680043.8.498.2010020400001.2"
    # the referenced CT is not shipped: a grid in its frame with slices at the contours' planes (-200, -190, -180)
    grid = sitk.Image(90, 70, 4, sitk.sitkInt16)
    grid.SetSpacing((5.0, 5.0, 10.0))
    grid.SetOrigin((-220.0, -170.0, -200.0))
    mask = sitk.GetArrayFromImage(rasterise(patient, grid))
    # rectangle x -200..200, y -150..150 on voxel centres: 81 x 61 centres, outline included
    assert mask[0].sum() == 81 * 61 and mask[3].sum() == 0
    assert mask[0, 4:65, 4:85].all()
    shifted = sitk.Image(grid)
    shifted.SetOrigin((-217.5, -167.5, -200.0))  # the outline between voxel centres: 80 x 60 inside
    assert sitk.GetArrayFromImage(rasterise(patient, shifted))[0].sum() == 80 * 60
    with pytest.raises(InputError, match="Isocenter 1' has no closed contours \\(1 point"):
        rasterise(structure_set.roi("Isocenter 1"), grid)
    off = sitk.Image(grid)
    off.SetOrigin((-220.0, -170.0, -195.0))  # slices between the contours' planes
    with pytest.raises(InputError, match="not on a slice"):
        rasterise(patient, off)


# --------------------------------------------------------------------------- SUV

def _pet_header(**changes):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = Dataset()
    ds.Units, ds.DecayCorrection = "BQML", "START"
    ds.PatientWeight, ds.PatientSize, ds.PatientSex = "75", "1.80", "M"
    ds.SeriesDate, ds.SeriesTime = "20240304", "110000"
    ds.AcquisitionDate, ds.AcquisitionTime = "20240304", "110000"
    drug = Dataset()
    drug.RadionuclideTotalDose, drug.RadionuclideHalfLife = "370000000", "6586.2"
    drug.RadiopharmaceuticalStartTime = "100000"
    ds.RadiopharmaceuticalInformationSequence = Sequence([drug])
    for key, value in changes.items():
        target = drug if key.startswith("Radio") else ds
        if value is None:
            delattr(target, key)
        else:
            setattr(target, key, value)
    return ds


def test_suv_equals_hand_computed_values():
    from rtresponse.dicom.suv import suv_conversion

    # 75 kg, 370 MBq at 10:00, scan 11:00, F-18: 370e6 x 2^(-3600/6586.2) = 253.314 MBq; 75000 g / that
    bw = suv_conversion([_pet_header()], "bw")
    assert bw.factor == pytest.approx(2.960750e-4, rel=1e-6)
    assert bw.record["decay_seconds"] == 3600
    # lean body mass (Janmahasatian, male, 1.80 m): 9270 x 75 / (6680 + 216 x 23.148) = 59.525 kg
    assert suv_conversion([_pet_header()], "lbm").factor == pytest.approx(2.960750e-4 * 59.52483 / 75, rel=1e-5)
    # James: 1.10 x 75 - 128 (75 / 180)^2 = 60.278 kg
    assert suv_conversion([_pet_header()], "lbm-james").factor == pytest.approx(2.960750e-4 * 60.27778 / 75, rel=1e-5)
    # the injection as a DateTime; decay-corrected to the administration (ADMIN): no decay factor
    assert suv_conversion([_pet_header(RadiopharmaceuticalStartDateTime="20240304100000")]).factor == \
        pytest.approx(2.960750e-4, rel=1e-6)
    assert suv_conversion([_pet_header(DecayCorrection="ADMIN")]).factor == pytest.approx(75000 / 370e6)
    # a series created after the acquisition: the earliest acquisition time (10:30) is the scan time
    late = [_pet_header(SeriesTime="120000", AcquisitionTime="103500"), _pet_header(AcquisitionTime="103000")]
    conversion = suv_conversion(late)
    assert conversion.record["decay_seconds"] == 1800 and "earliest Acquisition" in conversion.record["scan_time_rule"]
    assert conversion.factor == pytest.approx(75000 / (370e6 * 2 ** (-1800 / 6586.2)))


@pytest.mark.parametrize("change, words", [
    ({"PatientWeight": None}, "Patient's Weight (0010,1030) is missing"),
    ({"RadionuclideTotalDose": None}, "Radionuclide Total Dose (0018,1074) is missing"),
    ({"RadionuclideHalfLife": None}, "Radionuclide Half Life (0018,1075) is missing"),
    ({"RadiopharmaceuticalStartTime": None}, "Radiopharmaceutical Start Time (0018,1072) is missing"),
    ({"SeriesTime": None}, "Series Time (0008,0031) is missing"),
    ({"Units": "CNTS"}, "Units (0054,1001) is CNTS"),
    ({"DecayCorrection": "NONE"}, "Decay Correction (0054,1102) is NONE"),
    ({"RadiopharmaceuticalStartTime": "120000"}, "before the injection"),
    ({"PatientWeight": "0"}, "Patient's Weight (0010,1030) must be positive"),
])
def test_suv_names_the_missing_or_wrong_tag(change, words):
    from rtresponse.dicom.suv import suv_conversion

    with pytest.raises(InputError) as error:
        suv_conversion([_pet_header(**change)], "bw", where="PET series X")
    assert words in str(error.value) and str(error.value).startswith("PET series X: cannot compute SUV")


def test_lean_body_mass_needs_height_and_sex():
    from rtresponse.dicom.suv import suv_conversion

    with pytest.raises(InputError, match=r"SUV \(lbm\): Patient's Size \(0010,1020\) is missing"):
        suv_conversion([_pet_header(PatientSize=None)], "lbm")
    with pytest.raises(InputError, match="Patient's Sex \\(0010,0040\\) is 'O'"):
        suv_conversion([_pet_header(PatientSex="O")], "lbm")


# --------------------------------------------------------------------------- rasteriser against rt-utils

def test_rasteriser_agrees_with_rt_utils_reader(tmp_path):
    """rt-utils' reader is right for its own contours on a square CT (it rounds vertices to voxels, finds contours
    through the Contour Image Sequence only, swaps rows and columns when Rows != Columns, and fails on the one-point
    contour OpenCV traces around a single voxel — so the masks here have no one-voxel island)."""
    from rt_utils import RTStructBuilder

    from rtresponse.dicom.export import export_masks
    from rtresponse.dicom.index import index_folder
    from rtresponse.dicom.rtstruct import rasterise, read_rtstruct
    from rtresponse.dicom.series import read_series
    from rtresponse.dicom.write import Subject, write_series

    ct = _image()
    write_series(ct, tmp_path / "ct", "CT", Subject("R1"))
    masks = {"ball": _blob(ct, island=False),
             "small": _blob(ct, centre=(-12.0, 14.0, 24.0), radius=5.0, hole=False, island=False)}
    exported = export_masks(masks, tmp_path / "ct", tmp_path / "out", formats=("rtstruct",))
    [series] = index_folder(tmp_path / "ct").series.values()
    grid = read_series(series, pixels=False).image
    theirs = RTStructBuilder.create_from(str(tmp_path / "ct"), str(exported.files["rtstruct"]))
    structure_set = read_rtstruct(exported.files["rtstruct"])
    for name, mask in masks.items():
        ours = sitk.GetArrayFromImage(rasterise(structure_set.roi(name), grid))
        assert np.array_equal(ours, np.transpose(theirs.get_roi_mask_by_name(name), (2, 0, 1)))
        assert np.array_equal(ours, sitk.GetArrayFromImage(mask))


def test_subvoxel_contour_encloses_its_voxel_centres():
    from rtresponse.dicom.rtstruct import ROI, rasterise

    grid = sitk.Image(64, 64, 1, sitk.sitkUInt8)
    grid.SetSpacing((1.0, 1.0, 2.0))
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    circle = np.column_stack([31.3 + 20.2 * np.cos(angles), 30.6 + 20.2 * np.sin(angles), np.zeros_like(angles)])
    mask = sitk.GetArrayFromImage(rasterise(ROI(1, "circle", contours=[circle]), grid))[0]
    y, x = np.indices(mask.shape)
    expected = np.hypot(x - 31.3, y - 30.6) <= 20.2 * np.cos(np.pi / 200)  # inside the inscribed polygon
    assert np.count_nonzero(mask != expected) <= 4  # centres within the polygon's sagitta of the circle
    assert mask.sum() == pytest.approx(np.pi * 20.2 ** 2, rel=0.01)


# --------------------------------------------------------------------------- export-dicom

@pytest.fixture
def planning(tmp_path):
    """A CT series with a GTV on its grid and a relapse map on a coarser grid of the same frame."""
    from rtresponse.dicom.write import Subject, write_series
    from rtresponse.imageio import write_image

    ct = _image()
    subject = Subject("EXP1")
    write_series(ct, tmp_path / "dicom" / "ct", "CT", subject)
    gtv = _blob(ct)
    write_image(gtv, tmp_path / "gtv.nrrd")
    probability = sitk.Cast(sitk.SignedMaurerDistanceMap(gtv, insideIsPositive=True, useImageSpacing=True),
                            sitk.sitkFloat32)
    probability = sitk.Clamp(probability / 10 + 0.5, sitk.sitkFloat32, 0, 1)
    write_image(probability, tmp_path / "probability.nrrd")
    coarse = sitk.Resample(gtv, [16, 16, 6], sitk.Transform(), sitk.sitkNearestNeighbor, (-30.0, -28.0, 12.0),
                           (4.0, 4.0, 3.0), gtv.GetDirection(), 0, sitk.sitkUInt8)
    write_image(coarse, tmp_path / "suvmax_pet_grid.nrrd")
    return tmp_path, ct, gtv, subject


def test_export_dicom_references_the_planning_ct_and_reads_back(planning, capsys):
    from rtresponse.dicom.export import read_seg
    from rtresponse.dicom.index import index_folder
    from rtresponse.dicom.rtstruct import rasterise, read_rtstruct
    from rtresponse.dicom.series import read_series

    root, ct, gtv, subject = planning
    before = folder_digest(root / "dicom")
    code = main(["export-dicom", "--mask", f"GTVp={root / 'gtv.nrrd'}", "--mask",
                 f"relapse={root / 'probability.nrrd'}", "--threshold", "0.5", "--mask",
                 f"SUVmax40={root / 'suvmax_pet_grid.nrrd'}", "--colour", "GTVp=255,0,0", "--image", str(root / "dicom"),
                 "--algorithm", "recurrence U-Net v1", "--out", str(root / "tps"), "--progress", "none"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "SUVmax40: resampled onto the CT grid" in captured.err
    assert folder_digest(root / "dicom") == before
    [series] = index_folder(root / "dicom").series.values()
    volume = read_series(series, pixels=False)
    slice_of = {uid: k for k, uid in enumerate(volume.sop_uids)}

    ds = pydicom.dcmread(root / "tps" / "RTSTRUCT.dcm")
    assert ds.Modality == "RTSTRUCT" and ds.StudyInstanceUID == subject.study_uid
    [frame] = ds.ReferencedFrameOfReferenceSequence
    assert frame.FrameOfReferenceUID == subject.frame_of_reference
    referenced = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == series.series_uid
    assert {item.ReferencedSOPInstanceUID for item in referenced.ContourImageSequence} == set(volume.sop_uids)
    rois = {item.ROINumber: item for item in ds.StructureSetROISequence}
    assert [r.ROIName for r in rois.values()] == ["GTVp", "relapse", "SUVmax40"]
    assert all(r.ReferencedFrameOfReferenceUID == subject.frame_of_reference for r in rois.values())
    assert all(r.ROIGenerationAlgorithm == "AUTOMATIC" and r.ROIGenerationDescription == "recurrence U-Net v1"
               for r in rois.values())
    for item in ds.ROIContourSequence:
        if rois[item.ReferencedROINumber].ROIName == "GTVp":
            assert list(item.ROIDisplayColor) == [255, 0, 0]
        for contour in item.ContourSequence:  # each contour references the CT slice it lies on
            k = slice_of[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
            assert np.allclose(np.asarray(contour.ContourData, float)[2::3], ct.GetOrigin()[2] + 3.0 * k, atol=1e-3)

    # read back by independent readers: this package's pydicom rasteriser (RTSTRUCT), highdicom (SEG)
    structure_set = read_rtstruct(root / "tps" / "RTSTRUCT.dcm")
    relapse = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "probability.nrrd"))) >= 0.5
    expected = {"GTVp": sitk.GetArrayFromImage(gtv), "relapse": relapse}
    segments = read_seg(root / "tps" / "SEG.dcm", volume.sop_uids)
    for name, mask in expected.items():
        assert _dice(sitk.GetArrayFromImage(rasterise(structure_set.roi(name), volume.image)), mask) >= 0.95
        assert _dice(segments[name], mask) >= 0.95
    assert _dice(segments["SUVmax40"], sitk.GetArrayFromImage(rasterise(structure_set.roi("SUVmax40"),
                                                                         volume.image))) == 1.0
    seg = pydicom.dcmread(root / "tps" / "SEG.dcm")
    assert seg.FrameOfReferenceUID == subject.frame_of_reference
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    assert seg.SegmentSequence[0].SegmentAlgorithmName == "recurrence U-Net v1"
    assert (root / "tps" / "provenance.json").is_file()


def test_export_then_import_gives_the_mask_back(planning):
    root, ct, gtv, _ = planning
    assert main(["export-dicom", "--mask", f"GTVp={root / 'gtv.nrrd'}", "--image", str(root / "dicom"), "--format",
                 "rtstruct", "--out", str(root / "dicom" / "rt"), "--progress", "none"]) == 0
    assert main(["import-dicom", "--dicom", str(root / "dicom"), "--roi", "GTVp=gtvp", "--out", str(root / "cohort"),
                 "--progress", "none"]) == 0
    back = sitk.ReadImage(str(root / "cohort" / "EXP1" / "GTVp.nrrd"))
    assert np.allclose(back.GetOrigin(), ct.GetOrigin()) and _dice(sitk.GetArrayFromImage(back),
                                                                   sitk.GetArrayFromImage(gtv)) >= 0.95


# --------------------------------------------------------------------------- bad DICOM, per patient

def test_bad_dicom_gives_one_message_per_patient(tmp_path, capsys):
    from rtresponse.dicom.export import export_masks
    from rtresponse.dicom.write import PetTags, Subject, write_series

    ct = _image()
    gtv = _blob(ct, hole=False)
    tree = tmp_path / "export"
    for pid in ("GOOD", "NOREF", "EMPTYROI", "MIXED", "NOWEIGHT"):
        subject = Subject(pid, weight_kg=None if pid == "NOWEIGHT" else 70.0)
        write_series(ct, tree / pid / "ct", "CT", subject)
        export_masks({"GTV_primary": gtv}, tree / pid / "ct", tree / pid / "rt", formats=("rtstruct",))
        if pid in ("MIXED", "NOWEIGHT"):
            other = Subject(pid, weight_kg=subject.weight_kg, study_uid=subject.study_uid,
                            frame_of_reference=None if pid == "MIXED" else subject.frame_of_reference)
            write_series(sitk.Cast(ct, sitk.sitkFloat32) * 0 + 5000.0, tree / pid / "pet", "PT", other, pet=PetTags())
    ds = pydicom.dcmread(tree / "NOREF" / "rt" / "RTSTRUCT.dcm")
    ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0] \
        .SeriesInstanceUID = "1.2.3.4.5"
    ds.save_as(tree / "NOREF" / "rt" / "RTSTRUCT.dcm")
    ds = pydicom.dcmread(tree / "EMPTYROI" / "rt" / "RTSTRUCT.dcm")
    del ds.ROIContourSequence[0].ContourSequence
    ds.save_as(tree / "EMPTYROI" / "rt" / "RTSTRUCT.dcm")
    (tree / "ONLYRT").mkdir()
    ds.PatientID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "ONLYRT", pydicom.uid.generate_uid(), \
        pydicom.uid.generate_uid()
    ds.save_as(tree / "ONLYRT" / "rs.dcm")
    before = folder_digest(tree)
    code = main(["import-dicom", "--dicom", str(tree), "--roi", "GTVp=gtv_?p(rimary)?", "--out", str(tmp_path / "c"),
                 "--progress", "none"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert folder_digest(tree) == before
    manifest = pd.read_csv(tmp_path / "c" / "manifest.csv", dtype=str)
    assert list(manifest["patient_id"]) == ["GOOD"]
    assert (tmp_path / "c" / "GOOD" / "GTVp.nrrd").is_file() and not (tmp_path / "c" / "MIXED").exists()
    lines = {line.split(":")[0].split()[-1]: line for line in err.splitlines() if line.startswith("  failed ")}
    assert set(lines) == {"NOREF", "EMPTYROI", "MIXED", "NOWEIGHT", "ONLYRT"}
    assert "references series 1.2.3.4.5, which is not in the folder" in lines["NOREF"]
    assert "ROI 'GTV_primary' has no closed contours" in lines["EMPTYROI"]
    assert "different frames of reference" in lines["MIXED"]
    assert "Patient's Weight (0010,1030) is missing" in lines["NOWEIGHT"]
    assert "no CT, MR or PET image series (found: RTSTRUCT)" in lines["ONLYRT"]
    report = pd.read_csv(tmp_path / "c" / "report.csv", keep_default_na=False).set_index("patient_id")
    assert report.loc["GOOD", "status"] == "ok" and report.loc["MIXED", "status"].startswith("the images are in")


def test_import_refusals_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    cases = [
        (["--dicom", str(tmp_path / "empty")], "no DICOM files found (1 other file(s)"),
        (["--dicom", str(tmp_path / "empty"), "--roi", "GTVp"], "--roi 'GTVp': expected NAME=REGEX"),
        (["--dicom", str(tmp_path / "empty"), "--roi", "GTVp=("], "is not a regular expression"),
        (["--dicom", str(tmp_path / "empty"), "--image", "X=US"], "MODALITY one of CT, MR, PT"),
        (["--dicom", str(tmp_path / "empty"), "--roi", "CT=gtv"], "CT given to more than one"),
    ]
    for arguments, words in cases:
        code = main(["import-dicom", *arguments, "--out", str(tmp_path / "out"), "--progress", "none"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("rtresponse: error: ") and words in err[0], err
        assert not (tmp_path / "out").exists()


def test_without_the_dicom_packages_the_message_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom now raises ImportError
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.dcm").write_bytes(b"\0" * 200)
    code = main(["import-dicom", "--dicom", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--progress", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("rtresponse: error: pydicom is not installed; DICOM import and export need it: "
                                 "pip install 'rtresponse[dicom]'")
    # and the rest of rtresponse never imports them
    script = "import sys, rtresponse.cli; rtresponse.cli.build_parser(); " \
             "sys.exit(any(m in sys.modules for m in ('pydicom', 'rt_utils', 'highdicom', 'cv2')))"
    assert subprocess.run([sys.executable, "-c", script], cwd=LIBRARY).returncode == 0
