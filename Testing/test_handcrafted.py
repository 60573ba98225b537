"""Handcrafted features: settings resolution, presets, segments and cohorts with failure isolation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("radiomics")
sitk = pytest.importorskip("SimpleITK")
from rtresponse import mrml  # noqa: E402
from rtresponse.cli import main  # noqa: E402
from rtresponse.cohort import Cohort, load_manifest  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.features import handcrafted  # noqa: E402
from rtresponse.imageio import write_image  # noqa: E402

from conftest import copy_cohort  # noqa: E402

SMALL = {"imageType": {"Original": {}}, "featureClass": {"firstorder": None, "shape": ["VoxelVolume"]},
         "setting": {"binWidth": 25}}


def _first(cohort, n):
    return Cohort(cohort.path, cohort.table.iloc[:n])


def test_presets_are_listed_and_load():
    assert {"ct-tanaka", "mr-jeong", "pyradiomics-default"} <= set(handcrafted.list_presets())
    params = handcrafted.load_settings("ct-tanaka")
    assert params["setting"]["resampledPixelSpacing"] == [1, 1, 1] and params["setting"]["binWidth"] == 25


def test_settings_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="neither a preset .*ct-tanaka.* nor a parameter file"):
        handcrafted.load_settings("ct-tanak")
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting: [unclosed")
    with pytest.raises(InputError, match=r"bad\.yaml.*not a valid parameter file"):
        handcrafted.load_settings(bad)
    with pytest.raises(InputError, match="unknown section.*featureClasses"):
        handcrafted.load_settings({"featureClasses": {}})
    original = {"setting": {"binWidth": 5}}
    handcrafted.load_settings(original)["setting"]["label"] = 7
    assert original == {"setting": {"binWidth": 5}}  # the caller's dict is not modified


def test_ct_tanaka_gives_107_features_on_lung1(pyradiomics_cases):
    image = sitk.ReadImage(str(pyradiomics_cases / "data" / "lung1_image.nrrd"))
    label = sitk.ReadImage(str(pyradiomics_cases / "data" / "lung1_label.nrrd"))
    features = handcrafted.extract(image, label, "ct-tanaka")
    assert len(features) == 107
    assert features.index.str.startswith("original_").all()
    assert np.isfinite(features.to_numpy()).all()


def test_mr_jeong_on_two_sequences_gives_about_1900_features(synthetic_cohort):
    cohort = _first(load_manifest(synthetic_cohort), 1)
    table = handcrafted.extract_cohort(cohort, image=["T1", "T2"], mask="GTVp", settings="mr-jeong")
    features = [c for c in table.columns if c != handcrafted.STATUS]
    assert table.loc["P001", handcrafted.STATUS] == "ok"
    assert len(features) == 1888
    assert sum(c.startswith("T1_") for c in features) == sum(c.startswith("T2_") for c in features) == 944
    assert any(c.startswith("T2_wavelet-LLH_") for c in features) and any(c.startswith("T1_log-sigma-1-0") for c in
                                                                          features)


def test_mask_geometry_and_emptiness_are_checked():
    image = sitk.Image(8, 8, 4, sitk.sitkInt16)
    empty = sitk.Image(8, 8, 4, sitk.sitkUInt8)
    with pytest.raises(InputError, match="mask is empty"):
        handcrafted.extract(image, empty, SMALL)
    other = sitk.Image(8, 8, 5, sitk.sitkUInt8)
    with pytest.raises(InputError, match="mask geometry .* does not match the image"):
        handcrafted.extract(image, other, SMALL)


def test_segments_table_isolates_an_empty_segment(scene, synthetic_cohort):
    cohort = load_manifest(synthetic_cohort)
    nodes = mrml.load_patient(cohort, "P001", scene, images=["CT"], masks=["GTVp", "GTVn"])
    empty = sitk.Image(cohort.read_image("P001", "CT").GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(cohort.read_image("P001", "CT"))
    segmentation = nodes["segmentation"]
    empty_id = mrml.mask_to_segment(empty, segmentation, "nothing")
    ids = list(mrml.segment_names(segmentation))
    calls = []
    table = handcrafted.extract_segments(nodes["volumes"]["CT"], segmentation, ids, SMALL,
                                         progress=lambda done, total: calls.append((done, total)))
    assert list(table.index) == ["GTVp", "GTVn", "nothing"]
    assert table.loc["GTVp", "status"] == "ok" and table.loc["nothing", "status"] == "mask is empty"
    assert calls[-1] == (3, 3)
    # the volume from the direct path and from the nodes agree exactly
    direct = handcrafted.extract(cohort.read_image("P001", "CT"), cohort.read_mask("P001", "GTVp"), SMALL)
    pd.testing.assert_series_equal(table.loc["GTVp", direct.index].astype(float), direct, check_names=False)
    assert empty_id in ids
    with pytest.raises(handcrafted.Cancelled):
        handcrafted.extract_segments(nodes["volumes"]["CT"], segmentation, ids, SMALL, should_cancel=lambda: True)


def test_cohort_run_finishes_when_one_mask_is_empty(synthetic_cohort, tmp_path):
    manifest = copy_cohort(synthetic_cohort, tmp_path / "cohort")
    cohort = load_manifest(manifest)
    boost = cohort.read_mask("P002", "GTVp_boost")
    write_image(boost * 0, cohort.resolve(cohort.table.at["P002", "mask_GTVp_boost"]))
    cohort = _first(load_manifest(manifest), 4)
    sequential = handcrafted.extract_cohort(cohort, image="CT", mask="GTVp_boost", settings=SMALL)
    parallel = handcrafted.extract_cohort(cohort, image="CT", mask="GTVp_boost", settings=SMALL, n_jobs=2)
    assert list(sequential.index) == ["P001", "P002", "P003", "P004"]
    assert sequential.loc["P002", "status"] == "mask is empty"
    assert (sequential.drop(index="P002")["status"] == "ok").all()
    assert sequential.drop(index="P002")["original_shape_VoxelVolume"].gt(0).all()
    pd.testing.assert_frame_equal(sequential, parallel)


def test_perturbations_and_several_masks_make_a_long_table(synthetic_cohort):
    cohort = _first(load_manifest(synthetic_cohort), 2)
    long = handcrafted.extract_cohort(cohort, image="CT", mask="GTVp", settings=SMALL, perturbations=3)
    assert long.index.names == ["patient_id", "perturbation"]
    assert len(long) == 2 * 4
    volumes = long["original_shape_VoxelVolume"].unstack()
    assert (volumes.nunique(axis=1) > 1).all()  # the perturbations change the delineation
    observers = handcrafted.extract_cohort(cohort, image="CT", mask=["GTVp", "GTVp_boost"], settings=SMALL)
    assert list(observers.index.get_level_values("perturbation").unique()) == ["GTVp", "GTVp_boost"]


def test_unknown_image_or_mask_fails_before_any_work(synthetic_cohort):
    cohort = load_manifest(synthetic_cohort)
    with pytest.raises(InputError, match="no column image_MR .*images: CT"):
        handcrafted.extract_cohort(cohort, image="MR", mask="GTVp", settings=SMALL)
    with pytest.raises(InputError, match="no column mask_GTV "):
        handcrafted.extract_cohort(cohort, image="CT", mask="GTV", settings=SMALL)


def test_features_command_writes_csv_and_reports_failures(synthetic_cohort, tmp_path, capsys):
    out = tmp_path / "features.csv"
    code = main(["features", "--kind", "handcrafted", "--manifest", str(synthetic_cohort), "--image", "CT",
                 "--mask", "GTVn", "--preset", "pyradiomics-default", "--out", str(out), "--jobs", "2"])
    assert code == 0
    table = pd.read_csv(out, index_col="patient_id")
    cohort = load_manifest(synthetic_cohort)
    assert list(table.index) == cohort.patient_ids
    without_node = [pid for pid in cohort.patient_ids if not cohort.table.at[pid, "mask_GTVn"]]
    assert set(table.index[table["status"] != "ok"]) == set(without_node)
    assert len([c for c in table.columns if c != "status"]) == 107
    assert "wrote" in capsys.readouterr().out
