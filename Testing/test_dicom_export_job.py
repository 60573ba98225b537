"""A module's result segments back to the planning system (RadiotherapyResponseLib.dicomexport): the segments of a
real MRML scene written as masks, a real ``rtresponse export-dicom`` child job, and the RTSTRUCT read back by the
project's own reader (not rt-utils, which wrote it): the planning CT's frame of reference, the segments' names (one
holding '='), colours and voxels."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import LIBRARY
from jobstandins import spin
from jobstandins import panel  # noqa: F401  (a fixture)

pytest.importorskip("pydicom")
pytest.importorskip("rt_utils")
pytest.importorskip("highdicom")

sys.path.insert(0, str(LIBRARY))  # RadiotherapyResponseLib sits beside the module files
from RadiotherapyResponseLib import dicomexport  # noqa: E402


def ct_and_ball():
    import SimpleITK as sitk

    z, y, x = np.indices((10, 40, 40))
    ct = sitk.GetImageFromArray((40 * np.sin(x / 5.0) + 10 * z).astype(np.float32))
    ct.SetSpacing((1.0, 1.0, 2.5))
    ct.SetOrigin((-20.0, -20.0, 0.0))
    ball = sitk.GetImageFromArray(((x - 20) ** 2 + (y - 18) ** 2 + ((z - 5) * 2.5) ** 2 <= 64).astype(np.uint8))
    ball.CopyInformation(ct)
    return ct, ball


def test_problems_and_arguments(tmp_path):
    assert "Run first" in dicomexport.exportProblem(str(tmp_path), None, [])
    assert "Choose the planning CT" in dicomexport.exportProblem("", object(), ["s"])
    assert "does not exist" in dicomexport.exportProblem(str(tmp_path / "none"), object(), ["s"])
    assert dicomexport.exportProblem(str(tmp_path), object(), ["s"]) is None
    assert dicomexport.exportArguments("ct", {"Predicted relapse (p >= 0.50)": "m1.nrrd"}, "out", "1.2.3",
                                       "model x", "Recurrence", {"Predicted relapse (p >= 0.50)": (1.0, 0.5, 0.0)}) == [
        "export-dicom", "--image", "ct", "--reference-series", "1.2.3", "--mask", "Predicted relapse (p >= 0.50)=m1.nrrd",
        "--colour", "Predicted relapse (p >= 0.50)=255,128,0", "--algorithm", "model x", "--label", "Recurrence",
        "--out", "out"]
    assert dicomexport.dicomSource(None) == (None, None)  # outside Slicer: no DICOM database


def test_an_export_job_writes_an_rtstruct_on_the_planning_ct(panel, scene, tmp_path):
    from rtresponse import mrml
    from rtresponse.dicom.index import index_folder
    from rtresponse.dicom.rtstruct import rasterise, read_rtstruct
    from rtresponse.dicom.series import read_series
    from rtresponse.dicom.write import Subject, write_series

    ct, ball = ct_and_ball()
    write_series(ct, tmp_path / "dicom" / "ct", "CT", Subject("EXP1"))
    ctNode = mrml.image_to_volume_node(ct, "CT", scene)
    segmentation = mrml.new_segmentation_node("results", ctNode, scene)
    name = "Predicted relapse (p >= 0.50)"
    segmentId = mrml.mask_to_segment(ball, segmentation, name, ctNode, color=(1.0, 0.0, 0.0))
    folder = tmp_path / "job"
    masks = dicomexport.exportMasks(folder, segmentation, [segmentId], ctNode)
    out = tmp_path / "export"
    arguments = dicomexport.exportArguments(tmp_path / "dicom" / "ct", masks, out, algorithm="test model",
                                            colours=dicomexport.segmentColours(segmentation, [segmentId]))
    panel.panel.start(arguments, "Exporting...", lambda result: dicomexport.summary(out), scene=scene)
    spin(180)
    assert panel.panel.result.state == "finished", panel.label.text + "\n" + "\n".join(panel.panel.logLines[-5:])
    assert panel.label.text.startswith("Wrote RTSTRUCT.dcm and SEG.dcm in")

    [series] = [s for s in index_folder(tmp_path / "dicom").series.values() if s.modality == "CT"]
    planning = read_series(series)
    structures = read_rtstruct(out / "RTSTRUCT.dcm")
    assert structures.frame_of_reference == series.frame_of_reference
    [roi] = structures.rois
    assert roi.name == name and tuple(roi.color) == (255, 0, 0)
    back = rasterise(roi, planning.image)
    a, b = _array(ball) != 0, _array(back) != 0
    assert 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)) >= 0.95


def _array(image):
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image)
