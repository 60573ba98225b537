"""Round trip through DICOM (issue 17): the synthetic cohort written as a TPS export (CT, MR and PET series, PET in
Bq/mL with the SUV tags, an RTSTRUCT with the GTVs and relapse under local ROI names), imported with
``rtresponse import-dicom``: masks agree with the originals (Dice, volume), PET equals the original SUV, the
clinical tags arrive, and the manifest runs through ``features``, ``evaluate`` and ``recurrence baseline``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pydicom")
pytest.importorskip("rt_utils")

import SimpleITK as sitk  # noqa: E402
from conftest import folder_digest  # noqa: E402

from rtresponse.cli import main  # noqa: E402

N_PATIENTS = 10
ROI_RULES = ["--roi", r"GTVp=gtv[ _-]?p\b.*", "--optional-roi", r"GTVn=gtv[ _-]?n.*",
             "--optional-roi", "relapse=relapse.*"]
SERIES_RULES = ["--image", "CT=CT", "--image", "PET=PT", "--image", "T1=MR:T1"]


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory):
    from rtresponse.dicom.synthetic import write_cohort_dicom
    from rtresponse.sampledata.synthetic import write_cohort

    root = tmp_path_factory.mktemp("dicom_roundtrip")
    manifest = write_cohort(root / "nrrd", n_patients=N_PATIENTS, seed=5, size=(48, 48, 16), signal=2.0)
    tags = write_cohort_dicom(manifest, root / "dicom", seed=1)
    original = pd.read_csv(manifest, dtype=str, keep_default_na=False).set_index("patient_id")
    extra = original[[c for c in original.columns if c.startswith("outcome_")] + ["clin_T_stage"]]
    extra.to_csv(root / "outcomes.csv")
    before = folder_digest(root / "dicom")
    code = main(["import-dicom", "--dicom", str(root / "dicom"), "--out", str(root / "cohort"), *ROI_RULES,
                 *SERIES_RULES, "--clinical", str(root / "outcomes.csv"), "--progress", "none"])
    assert code == 0
    assert folder_digest(root / "dicom") == before, "import-dicom changed its input"
    return root, manifest, root / "cohort" / "manifest.csv", tags


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_masks_equal_the_originals(roundtrip):
    from rtresponse.cohort import load_manifest

    _, original_manifest, manifest, _ = roundtrip
    original, imported = load_manifest(original_manifest), load_manifest(manifest)
    assert imported.patient_ids == original.patient_ids
    checked = 0
    for pid in original.patient_ids:
        ct = imported.read_image(pid, "CT")
        reference = original.read_image(pid, "CT")
        assert np.allclose(ct.GetOrigin(), reference.GetOrigin(), atol=1e-4)
        assert np.allclose(ct.GetSpacing(), reference.GetSpacing(), atol=1e-6)
        assert np.array_equal(sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(reference))
        for name in original.patient(pid).masks:
            if name == "GTVp_boost":
                continue  # not in the RTSTRUCT
            a = sitk.GetArrayFromImage(original.read_mask(pid, name, image="CT")) != 0
            b = sitk.GetArrayFromImage(imported.read_mask(pid, name, image="CT")) != 0
            assert _dice(a, b) >= 0.95, (pid, name, _dice(a, b))
            assert abs(b.sum() / a.sum() - 1) <= 0.05
            checked += 1
        assert set(imported.patient(pid).masks) == {n for n in original.patient(pid).masks if n != "GTVp_boost"}
    assert checked >= 2 * N_PATIENTS


def test_pet_is_the_original_suv(roundtrip):
    from rtresponse.cohort import load_manifest

    _, original_manifest, manifest, _ = roundtrip
    original, imported = load_manifest(original_manifest), load_manifest(manifest)
    for pid in original.patient_ids:
        suv = sitk.GetArrayFromImage(original.read_image(pid, "PET")).astype(np.float64)
        back = sitk.GetArrayFromImage(imported.read_image(pid, "PET")).astype(np.float64)
        assert back.shape == suv.shape
        assert np.abs(back - suv).max() <= 0.01 * suv.max()  # int16 storage with a slope per slice
        tissue = suv >= 0.5
        assert np.abs(back[tissue] / suv[tissue] - 1).max() <= 0.01
        assert np.isclose(back.max(), suv.max(), rtol=1e-3)
        state = imported.suv_state(pid, "PET")  # import-dicom records SUV in the NRRD header: nothing warns
        assert (state.state, state.kind, state.source) == ("suv", "bw", "header rtresponse_units SUVbw")
        assert imported.pet_warning(pid, "PET") is None


def test_clinical_tags_and_report(roundtrip):
    root, original_manifest, manifest, tags = roundtrip
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False).set_index("patient_id")
    original = pd.read_csv(original_manifest, dtype=str, keep_default_na=False).set_index("patient_id")
    assert (table["clin_age"] == original["clin_age"]).all()
    assert (table["clin_sex"] == original["clin_sex"]).all()
    assert np.allclose(table["clin_weight_kg"].astype(float), [tags[p]["weight_kg"] for p in table.index])
    assert (table["outcome_recurrence"] == original["outcome_recurrence"]).all()
    report = pd.read_csv(root / "cohort" / "report.csv", keep_default_na=False)
    assert (report["status"] == "ok").all() and report["notes"].str.contains("SUVbw").all()
    rois = pd.read_csv(root / "cohort" / "rois.csv", keep_default_na=False)
    assert set(rois["roi"]) <= {"GTV_p 70", "GTVn_L", "Relapse vol"} and (rois["mask"] != "").all()
    assert (root / "cohort" / "provenance.json").is_file()


def test_imported_manifest_runs_the_analyses(roundtrip, tmp_path, capsys):
    pytest.importorskip("radiomics")
    pytest.importorskip("sklearn")
    root, _, manifest, _ = roundtrip
    features = tmp_path / "features.csv"
    assert main(["features", "--kind", "handcrafted", "--manifest", str(manifest), "--image", "CT", "--mask", "GTVp",
                 "--out", str(features), "--progress", "none"]) == 0
    table = pd.read_csv(features, index_col="patient_id")
    assert (table["status"] == "ok").all() and len(table) == N_PATIENTS
    assert main(["evaluate", "--features", str(features), "--manifest", str(manifest), "--outcome", "response",
                 "--selectors", "wilcoxon", "--classifiers", "lda", "--k", "3", "--n-bootstrap", "10",
                 "--no-forward", "--out", str(tmp_path / "evaluation"), "--progress", "none"]) == 0
    assert (tmp_path / "evaluation" / "results.csv").is_file()
    assert main(["recurrence", "baseline", "--manifest", str(manifest), "--box", "32", "32", "16",
                 "--out", str(tmp_path / "baseline"), "--progress", "none"]) == 0
    sweep = pd.read_csv(tmp_path / "baseline" / "suvmax_sweep.csv")
    assert sweep["mean_dice"].max() > 0.2
    assert "warning" not in capsys.readouterr().err  # the PET is known SUV
