"""The hub's sample data outside Slicer (RadiotherapyResponseLib.samplejob): the command line of the preparation job,
"cached or not" (load at once, or run the job), a real ``rtresponse sample-data`` child job writing a small synthetic
cohort into a temporary user cache whose patient is then loaded into a real MRML scene, and Cancel leaving no cohort."""

from __future__ import annotations

import sys

import pytest
from conftest import LIBRARY
from jobstandins import spin
from jobstandins import panel  # noqa: F401  (a fixture)

sys.path.insert(0, str(LIBRARY))  # RadiotherapyResponseLib sits beside the module files
from RadiotherapyResponseLib import samplejob  # noqa: E402


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty user cache for this process (``RTRESPONSE_CACHE``); the sample cohorts go to ``samples/<kind>``."""
    monkeypatch.setenv("RTRESPONSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _useCache(panel, cache):
    panel.panel.jobOptions["env"]["RTRESPONSE_CACHE"] = str(cache)  # the child writes into the same cache


def test_the_job_writes_the_cohort_into_the_folder_ensure_sample_reads(cache):
    folder = cache / "samples" / "synthetic"
    assert samplejob.sampleFolder("synthetic") == folder
    assert samplejob.sampleArguments("synthetic", folder) == [
        "sample-data", "--kind", "synthetic", "--out", str(folder)]
    assert samplejob.prepareArguments("pyradiomics") == [
        "sample-data", "--kind", "pyradiomics", "--out", str(cache / "samples" / "pyradiomics")]
    assert samplejob.prepareArguments("synthetic", patients=3)[-2:] == ["--patients", "3"]
    assert [kind for kind, _ in samplejob.SAMPLE_KINDS] == ["synthetic", "pyradiomics"]
    with pytest.raises(ValueError, match="unknown sample kind 'lung'"):
        samplejob.sampleArguments("lung", folder)


def test_a_cohort_is_cached_once_its_manifest_is_there(cache):
    folder = cache / "samples" / "synthetic"
    assert samplejob.cachedManifest("synthetic") is None  # nothing yet: run the job
    with pytest.raises(FileNotFoundError, match="prepare it first"):
        samplejob.sampleCohort("synthetic")
    (folder / "P001").mkdir(parents=True)  # what an interrupted run of an earlier version left: no manifest
    (folder / "P001" / "CT.nrrd").write_bytes(b"half")
    assert samplejob.cachedManifest("synthetic") is None
    samplejob.prepareArguments("synthetic")
    assert not folder.exists()  # removed, or the command would refuse to write there
    folder.mkdir(parents=True)
    (folder / "manifest.csv").write_text("patient_id\n")
    assert samplejob.cachedManifest("synthetic") == folder / "manifest.csv"  # load at once
    assert samplejob.prepareArguments("synthetic") and (folder / "manifest.csv").is_file()  # a ready cohort is kept


def test_ensure_sample_leaves_no_half_cohort(cache, monkeypatch):
    from rtresponse import sampledata

    def interrupted(kind, out):
        (out / "P001").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(sampledata, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sampledata.ensure_sample("synthetic")
    assert not (cache / "samples" / "synthetic").exists() and not list((cache / "samples").iterdir())


def test_the_preparation_job_writes_the_cohort_and_its_patient_loads_into_the_scene(panel, scene, cache):
    _useCache(panel, cache)
    loaded = []

    def onSuccess(result):
        loaded.append(samplejob.loadSamplePatient("synthetic", "P002", scene))
        return samplejob.loadedText("synthetic", loaded[-1][1])

    panel.panel.start(samplejob.prepareArguments("synthetic", patients=3), samplejob.preparingText("synthetic"),
                      onSuccess)
    assert not panel.run.enabled and panel.cancel.enabled and panel.label.text.startswith("Preparing the synthetic")
    spin(180)
    assert panel.panel.result.state == "finished", panel.label.text
    assert panel.label.text == "Loaded synthetic sample patient P002." and panel.run.enabled
    assert any(text.startswith("Writing patients: ") for name, text in panel.label.history if name == "text")
    manifest = samplejob.cachedManifest("synthetic")
    assert manifest == cache / "samples" / "synthetic" / "manifest.csv"
    [(ids, patient, nodes)] = loaded
    assert ids == ["P001", "P002", "P003"] and patient == "P002"
    assert set(nodes["volumes"]) >= {"CT", "PET"} and nodes["volumes"]["CT"].GetName() == "P002 CT"
    for volume in nodes["volumes"].values():
        assert scene.IsNodePresent(volume) and volume.GetImageData() is not None
    segments = nodes["segmentation"].GetSegmentation()
    assert "GTVp" in [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())]
    assert nodes["clinical"].GetNumberOfRows() == 1
    # the next request loads at once; a patient the cohort lacks gives its first patient
    assert samplejob.loadSamplePatient("synthetic", "P999", scene)[1] == "P001"


def test_cancelling_the_preparation_leaves_no_cohort(panel, cache):
    _useCache(panel, cache)
    loaded = []
    panel.panel.start(samplejob.prepareArguments("synthetic", patients=200), "Preparing...", loaded.append)
    spin(120, until=lambda: panel.bar.value >= 1)  # some patients are written
    assert panel.panel.running and panel.bar.value >= 1, panel.label.text
    panel.cancel.click()
    spin(30, until=lambda: not panel.panel.running)
    assert panel.panel.result.state == "cancelled" and panel.label.text == "Cancelled." and not loaded
    assert samplejob.cachedManifest("synthetic") is None
    samples = cache / "samples"
    assert not samples.exists() or not list(samples.iterdir())  # neither the cohort nor its staging folder
