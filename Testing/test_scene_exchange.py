"""Scene inputs to a job folder and a job's results back as nodes, exactly (what the modules' background jobs use)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import child_env
from rtresponse.cohort import load_manifest
from rtresponse.jobs import FINISHED, run


def test_scene_cases_round_trip_through_a_job_folder(synthetic_cohort, scene, tmp_path):
    import SimpleITK as sitk

    from rtresponse import mrml
    from rtresponse.mrml.exchange import export_cases, import_masks

    cohort = load_manifest(synthetic_cohort)
    loaded = mrml.load_patient(cohort, "P001", scene, images=["CT"], masks=["GTVp", "GTVn"])
    ct, segmentation = loaded["volumes"]["CT"], loaded["segmentation"]
    ids = {name: sid for sid, name in mrml.segment_names(segmentation).items()}
    classes = ("vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLTableNode")
    before = {c: scene.GetNumberOfNodesByClass(c) for c in classes}
    manifest = export_cases(tmp_path / "job", {
        name: {"images": {"CT": ct}, "masks": {"GTV": (segmentation, ids[name], ct)}, "clinical": {"age": 61}}
        for name in ("GTVp", "GTVn")})
    # exporting adds no data node (the segmentation's export colour table may stay, as in Slicer)
    assert {c: scene.GetNumberOfNodesByClass(c) for c in classes} == before
    assert sorted(mrml.segment_names(segmentation).values()) == ["GTVn", "GTVp"]
    exported = load_manifest(manifest)
    assert list(exported.patient_ids) == ["GTVp", "GTVn"]
    for name in ("GTVp", "GTVn"):
        original, written = cohort.read_mask("P001", name), exported.read_mask(name, "GTV")
        assert np.array_equal(sitk.GetArrayFromImage(original), sitk.GetArrayFromImage(written))
        assert np.allclose(original.GetOrigin(), written.GetOrigin()) and original.GetSize() == written.GetSize()
    image = exported.read_image("GTVp", "CT")
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(cohort.read_image("P001", "CT")))
    assert exported.clinical().loc["GTVn", "age"] == 61

    back = mrml.new_segmentation_node("back", ct, scene)
    new_ids = import_masks({"GTVp again": tmp_path / "job" / exported.table.loc["GTVp", "mask_GTV"]}, back, ct)
    again = mrml.segment_to_mask(back, new_ids[0], ct)
    assert np.array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(cohort.read_mask("P001", "GTVp")))


def test_a_module_style_job_measures_scene_segments_and_the_table_comes_back(synthetic_cohort, scene, tmp_path):
    """What Tumor Features does: export the segments, run `features` in a child, load the table with its record."""
    from rtresponse import mrml
    from rtresponse.mrml.exchange import export_cases, import_table

    cohort = load_manifest(synthetic_cohort)
    loaded = mrml.load_patient(cohort, "P002", scene, images=["CT"], masks=["GTVp", "GTVn"])
    ct, segmentation = loaded["volumes"]["CT"], loaded["segmentation"]
    cases = {name: {"images": {"CT": ct}, "masks": {"GTV": (segmentation, sid, ct)}}
             for sid, name in mrml.segment_names(segmentation).items()}
    manifest = export_cases(tmp_path / "job", cases)
    out = tmp_path / "job" / "features.csv"
    result = run(["features", "--kind", "handcrafted", "--manifest", str(manifest), "--image", "CT", "--mask", "GTV",
                  "--out", str(out)], env=child_env(), timeout=300)
    assert result.state == FINISHED, result.message
    table = import_table(out, "P002 features", scene)
    frame = mrml.table_node_to_dataframe(table)
    assert list(frame.index) == ["GTVp", "GTVn"] and (frame["status"] == "ok").all()
    direct = pd.read_csv(out, index_col="patient_id")
    assert np.allclose(frame["original_shape_VoxelVolume"].astype(float), direct["original_shape_VoxelVolume"])
    record = json.loads(table.GetAttribute("rtresponse.provenance"))
    assert record["command"][:2] == ["rtresponse", "features"] and "packages" in record["environment"]


def test_case_ids_that_would_share_a_folder_are_refused(synthetic_cohort, scene, tmp_path):
    from rtresponse import mrml
    from rtresponse.errors import InputError
    from rtresponse.mrml.exchange import export_cases

    loaded = mrml.load_patient(load_manifest(synthetic_cohort), "P001", scene, images=["CT"], masks=["GTVp"])
    ct = loaded["volumes"]["CT"]
    with pytest.raises(InputError, match="would share the folder 'GTV_1'"):
        export_cases(tmp_path / "job", {"GTV 1": {"images": {"CT": ct}}, "GTV_1": {"images": {"CT": ct}}})
