"""Sample data: the synthetic cohort is deterministic and carries its planted signal; the
PyRadiomics cases are fetched once and verified by checksum."""

from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import pandas as pd
import pytest

sitk = pytest.importorskip("SimpleITK")
from rtresponse.cohort import load_manifest  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.sampledata import pyradiomics as pyradiomics_sample  # noqa: E402
from rtresponse.sampledata import synthetic  # noqa: E402

from conftest import rank_auc  # noqa: E402


def _voxels(manifest, pid, name):
    return sitk.GetArrayFromImage(load_manifest(manifest).read_image(pid, name))


def test_same_seed_gives_identical_cohorts_and_another_seed_does_not(tmp_path):
    a = synthetic.write_cohort(tmp_path / "a", n_patients=3, seed=11)
    b = synthetic.write_cohort(tmp_path / "b", n_patients=3, seed=11)
    c = synthetic.write_cohort(tmp_path / "c", n_patients=3, seed=12)
    assert a.read_text() == b.read_text()
    for pid in ("P001", "P003"):
        for name in ("CT", "PET", "T2"):
            np.testing.assert_array_equal(_voxels(a, pid, name), _voxels(b, pid, name))
        mask_a = sitk.GetArrayFromImage(load_manifest(a).read_mask(pid, "GTVp"))
        mask_b = sitk.GetArrayFromImage(load_manifest(b).read_mask(pid, "GTVp"))
        np.testing.assert_array_equal(mask_a, mask_b)
    assert not np.array_equal(_voxels(a, "P001", "CT"), _voxels(c, "P001", "CT"))


def test_a_patient_does_not_depend_on_cohort_size(tmp_path):
    small = synthetic.write_cohort(tmp_path / "small", n_patients=2, seed=5)
    large = synthetic.write_cohort(tmp_path / "large", n_patients=4, seed=5)
    np.testing.assert_array_equal(_voxels(small, "P002", "CT"), _voxels(large, "P002", "CT"))


def test_modalities_units_and_grids(synthetic_cohort):
    cohort = load_manifest(synthetic_cohort)
    ct = cohort.read_image("P001", "CT")
    pet = cohort.read_image("P001", "PET")
    gtv = sitk.GetArrayFromImage(cohort.read_mask("P001", "GTVp")).astype(bool)
    ct_voxels = sitk.GetArrayFromImage(ct)
    assert ct.GetPixelID() == sitk.sitkInt16 and ct_voxels.min() < -900 and ct_voxels.max() > 300  # HU: air, bone
    assert pet.GetSpacing() == (4.0, 4.0, 4.0) and ct.GetSpacing() == (2.0, 2.0, 3.0)
    pet_on_ct = sitk.GetArrayFromImage(sitk.Resample(pet, ct))
    assert pet_on_ct[gtv].max() > 3 * np.median(pet_on_ct[~gtv & (ct_voxels > -500)])  # tumour is FDG-avid
    boost = sitk.GetArrayFromImage(cohort.read_mask("P001", "GTVp_boost")).astype(bool)
    assert 0 < boost.sum() < gtv.sum() and not (boost & ~gtv).any()  # the GTV shrank during treatment


def _planted(tmp_path, signal, n=40):
    manifest = synthetic.write_cohort(tmp_path / f"signal{signal}", n_patients=n, seed=1, signal=signal)
    cohort = load_manifest(manifest)
    heterogeneity, suv_max = [], []
    for pid in cohort.patient_ids:
        gtv = sitk.GetArrayFromImage(cohort.read_mask(pid, "GTVp")).astype(bool)
        heterogeneity.append(_voxels(manifest, pid, "CT")[gtv].std())
        pet = sitk.Resample(cohort.read_image(pid, "PET"), cohort.read_image(pid, "CT"))
        suv_max.append(sitk.GetArrayFromImage(pet)[gtv].max())
    latent = pd.read_csv(manifest.parent / "latent.csv", index_col="patient_id")
    return cohort.outcomes(), np.array(heterogeneity), np.array(suv_max), latent


def _spearman(a, b) -> float:
    return float(np.corrcoef(pd.Series(np.asarray(a)).rank(), pd.Series(np.asarray(b)).rank())[0, 1])


def test_planted_signal_is_measurable_in_the_images(tmp_path):
    outcomes, heterogeneity, suv_max, latent = _planted(tmp_path, signal=1.0)
    assert _spearman(heterogeneity, latent["z_het"]) > 0.8
    assert _spearman(suv_max, latent["z_hot"]) > 0.8
    # the image measurement predicts the outcome it was planted in
    assert rank_auc(-heterogeneity, outcomes["response"]) > 0.7
    assert rank_auc(suv_max, outcomes["recurrence"]) > 0.7


def test_without_signal_outcomes_do_not_follow_the_images(tmp_path):
    outcomes, heterogeneity, suv_max, _ = _planted(tmp_path, signal=0.0)
    assert abs(rank_auc(-heterogeneity, outcomes["response"]) - 0.5) < 0.2
    assert abs(rank_auc(suv_max, outcomes["recurrence"]) - 0.5) < 0.2


def test_segmentation_file_reads_in_slicer_with_segment_names(synthetic_cohort, scene):
    """Slicer's own segmentation reader (slicer-core) opens the .seg.nrrd we write."""
    import slicer

    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(synthetic_cohort.parent / "P001" / "GTV.seg.nrrd"))
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read back")
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names[0] == "GTVp"
    assert isinstance(node, slicer.vtkMRMLSegmentationNode)


def test_bad_synthetic_arguments_are_rejected(tmp_path):
    with pytest.raises(InputError, match="n_patients"):
        synthetic.write_cohort(tmp_path, n_patients=0)
    with pytest.raises(InputError, match="too small"):
        synthetic.write_cohort(tmp_path, size=(20, 20, 8))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- PyRadiomics cases

def _fake_sdist(path, info, corrupt=None):
    """A tar.gz laid out like the real sdist, with the catalogue's file names."""
    with tarfile.open(path, "w:gz") as tar:
        for name in info["files"]:
            data = f"content of {name}".encode() if name != corrupt else b"tampered"
            entry = tarfile.TarInfo(f"{info['root']}/{name}")
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    return path


@pytest.fixture
def fake_catalogue(monkeypatch, tmp_path):
    """The real catalogue's layout with checksums of a fake sdist that tests build."""
    info = pyradiomics_sample.catalogue()
    info = dict(info, files={name: pyradiomics_sample.hashlib.sha256(f"content of {name}".encode()).hexdigest()
                             for name in info["files"]})
    sdist = _fake_sdist(tmp_path / "fake.tar.gz", info)
    info["sdist_sha256"] = pyradiomics_sample.sha256(sdist)
    monkeypatch.setattr(pyradiomics_sample, "catalogue", lambda: info)
    return info, sdist


def test_fetch_downloads_once_then_works_offline(fake_catalogue, tmp_path):
    info, sdist = fake_catalogue
    calls = []

    def fake_pip(args):
        calls.append(list(args))
        target = args[args.index("-d") + 1]
        import shutil
        shutil.copy(sdist, os.path.join(target, info["sdist"]))

    cache = tmp_path / "cache"
    folder = pyradiomics_sample.fetch(cache=cache, run_pip=fake_pip)
    assert (folder / "data" / "lung1_image.nrrd").read_text() == "content of data/lung1_image.nrrd"
    assert calls and calls[0][:2] == ["download", "--no-deps"]

    def no_network(args):
        raise AssertionError("must not download again")

    assert pyradiomics_sample.fetch(cache=cache, run_pip=no_network) == folder


def test_fetch_rejects_an_sdist_with_the_wrong_checksum(fake_catalogue, tmp_path):
    info, _ = fake_catalogue
    bad = _fake_sdist(tmp_path / "bad.tar.gz", info, corrupt="data/lung1_label.nrrd")
    with pytest.raises(InputError, match="checksum mismatch"):
        pyradiomics_sample.fetch(cache=tmp_path / "cache", sdist=bad)
    assert not (tmp_path / "cache").exists()  # nothing half-written


def test_cache_with_a_tampered_file_is_fetched_again(fake_catalogue, tmp_path):
    info, sdist = fake_catalogue
    cache = tmp_path / "cache"
    pyradiomics_sample.fetch(cache=cache, sdist=sdist)
    (cache / "data" / "brain1_image.nrrd").write_text("tampered")
    pyradiomics_sample.fetch(cache=cache, sdist=sdist)
    assert (cache / "data" / "brain1_image.nrrd").read_text() == "content of data/brain1_image.nrrd"


def test_catalogue_pins_all_five_cases_and_baselines():
    info = pyradiomics_sample.catalogue()
    assert set(info["cases"]) == {"brain1", "brain2", "breast1", "lung1", "lung2"}
    for case in info["cases"]:
        assert len(info["files"][f"data/{case}_image.nrrd"]) == 64
        assert len(info["files"][f"data/{case}_label.nrrd"]) == 64
    assert sum(name.startswith("data/baseline/baseline_") for name in info["files"]) == 8
    json.dumps(info)


@pytest.mark.network
def test_real_pyradiomics_cases_from_pypi(tmp_path):
    """The real thing: pip fetches the sdist from PyPI, checksums hold, the cohort validates."""
    if os.environ.get("RTRESPONSE_OFFLINE"):
        pytest.skip("RTRESPONSE_OFFLINE is set")
    from rtresponse.cohort import validate_manifest

    manifest = pyradiomics_sample.write_cohort(tmp_path / "cases", cache=tmp_path / "cache")
    cohort = load_manifest(manifest)
    assert cohort.patient_ids == ["brain1", "brain2", "breast1", "lung1", "lung2"]
    assert validate_manifest(manifest) == []
    lung = cohort.read_image("lung1", "scan")
    assert sitk.GetArrayViewFromImage(lung).min() <= -1000  # a real CT in HU
    assert (manifest.parent / "baseline" / "baseline_glcm.csv").is_file()
    assert cohort.clinical().loc["lung1", "modality"] == "CT"
