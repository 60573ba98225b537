"""Tumor Features' background jobs outside Slicer: the job panel on stand-in widgets with real child processes, the
command lines the module builds, the segment export and the table import (RadiotherapyResponseLib)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from conftest import LIBRARY, child_env
from jobstandins import Timer, Widget, spin

sys.path.insert(0, str(LIBRARY))  # RadiotherapyResponseLib sits beside the module files
from RadiotherapyResponseLib import featurejobs, testdata, weightsjob  # noqa: E402
from RadiotherapyResponseLib.jobfolder import LOG_NAME, JobFolder  # noqa: E402
from RadiotherapyResponseLib.jobpanel import SCENE_CLOSED_TEXT, JobPanel, formatDuration, progressText  # noqa: E402
from RadiotherapyResponseLib.sceneguard import missingNodes  # noqa: E402

CANCELLED = "Cancelled: no table was made."


class Panel:
    """A JobPanel on stand-ins, with what its callbacks received."""

    def __init__(self):
        self.bar, self.label, self.cancel, self.run, self.deep = Widget(), Widget(), Widget(), Widget(), Widget()
        self.loaded, self.failures, self.changes = [], [], []
        self.panel = JobPanel(self.bar, self.label, self.cancel, [self.run, self.deep],
                              onChange=lambda: self.changes.append(self.panel.running),
                              jobOptions=dict(python=sys.executable, env=child_env(), timerFactory=Timer))

    def start(self, arguments, onSuccess=None, **options):
        def loaded(result):
            self.loaded.append(result)
            return onSuccess(result) if onSuccess else "loaded"

        return self.panel.start(arguments, "Starting...", loaded, onFailure=self.failures.append,
                                cancelledText=CANCELLED, **options)

    def bar_values(self):
        return [value for name, value in self.bar.history if name == "value"]


@pytest.fixture
def panel():
    Timer.timers = []
    yield Panel()
    for timer in Timer.timers:  # no child left running whatever the test did
        if timer.active:
            timer.callback.__self__.cancel()


def slow_features(cohort, out) -> list:
    """A features run that takes long enough to be cancelled mid-way (perturbed masks for every patient)."""
    return ["features", "--kind", "handcrafted", "--manifest", str(cohort), "--image", "CT", "--mask", "GTVp",
            "--perturbations", "4", "--out", str(out)]


# --- the panel with real child processes ----------------------------------------------------------------------

def test_the_panel_shows_progress_disables_run_and_loads_the_table(panel, scene, tmp_path):
    volume, segmentation, segmentIds = testdata.sphereScene(scene)
    folder = JobFolder("TumorFeatures", root=tmp_path)
    job = featurejobs.prepareHandcrafted(folder.path, volume, segmentation, segmentIds, "ct-tanaka")
    tables = []

    def load(result):
        tables.append(featurejobs.importFeatureTable(job.out, job.tableName, scene, job.attributes))
        return featurejobs.summary(tables[-1])[0]

    panel.start(job.arguments, load, folder=folder, inputs=[volume, segmentation], scene=scene)
    assert panel.panel.running and not panel.run.enabled and not panel.deep.enabled and panel.cancel.enabled
    assert panel.bar.visible and panel.label.text == "Starting..."
    spin(300)
    assert not panel.panel.running and panel.panel.result.state == "finished", panel.label.text
    assert panel.run.enabled and panel.deep.enabled and not panel.cancel.enabled and not panel.bar.visible
    assert [1, 2] == [v for v in panel.bar_values() if v][:2], panel.bar.history  # each segment reached the bar
    assert ("maximum", 2) in panel.bar.history
    assert any(text.startswith("Extracting features: 1 of 2") for name, text in panel.label.history if name == "text")
    assert panel.label.text == f"'{job.tableName}': 1 of 2 segment(s) measured.\nNot measured:\n  Empty: mask is empty"
    assert panel.changes == [False] and len(panel.loaded) == 1 and not panel.failures
    assert not folder.exists  # removed once the table is in the scene

    table = tables[0]
    from rtresponse import mrml

    frame = mrml.table_node_to_dataframe(table)
    testdata.checkSphereTable(frame)
    assert table.GetName() == "TumorFeaturesTestImage features (ct-tanaka)"
    assert table.GetAttribute("TumorFeatures.settings") == "ct-tanaka"
    assert '"features"' in table.GetAttribute("rtresponse.provenance")
    # the same table as the Logic's in-process run (the scripting path)
    from RadiotherapyResponseLib import segmentfeatures

    direct = mrml.table_node_to_dataframe(segmentfeatures.measure(volume, segmentation, segmentIds, "ct-tanaka"))
    assert list(direct.columns) == list(frame.columns) and list(direct["status"]) == list(frame["status"])
    features = [c for c in frame.columns if c != "status"]
    assert np.allclose(frame.loc["GTV", features].astype(float), direct.loc["GTV", features].astype(float))


def test_cancel_re_enables_run_reports_cancelled_and_leaves_nothing(panel, synthetic_cohort, tmp_path):
    folder = JobFolder("TumorFeatures", root=tmp_path)
    panel.start(slow_features(synthetic_cohort, folder.file("f.csv")), folder=folder)
    spin(120, until=lambda: any(name == "value" and value for name, value in panel.bar.history))
    assert panel.panel.running and not panel.run.enabled
    started = time.monotonic()
    panel.cancel.click()  # the Cancel button
    assert time.monotonic() - started < 10
    assert not panel.panel.running and panel.panel.result.state == "cancelled"
    assert panel.label.text == CANCELLED and panel.run.enabled and panel.deep.enabled and not panel.cancel.enabled
    assert not panel.loaded and not panel.failures and not folder.exists
    assert not any(t.active for t in Timer.timers)


def test_closing_the_scene_cancels_the_job_and_loads_nothing(panel, synthetic_cohort, tmp_path):
    out = tmp_path / "f.csv"
    panel.start(slow_features(synthetic_cohort, out))
    spin(120, until=lambda: any(name == "value" and value for name, value in panel.bar.history))
    panel.panel.onSceneStartClose()
    assert panel.panel.result.state == "cancelled" and panel.label.text == SCENE_CLOSED_TEXT
    assert not panel.loaded and not out.exists() and panel.run.enabled


def test_a_failing_job_shows_its_one_line_message_and_keeps_its_folder(panel, synthetic_cohort, tmp_path):
    folder = JobFolder("TumorFeatures", root=tmp_path)
    panel.start(["features", "--kind", "handcrafted", "--manifest", str(synthetic_cohort), "--image", "CT",
                 "--mask", "GTVp", "--params", str(tmp_path / "missing.yaml"), "--out", str(folder.file("f.csv"))],
                folder=folder)
    spin(120)
    result = panel.panel.result
    assert result.state == "failed" and "missing.yaml" in result.message and "\n" not in result.message
    assert "Traceback" not in result.message
    first, log = panel.label.text.split("\n")
    assert first == f"Failed: {result.message}" and log == f"Log: {folder.file(LOG_NAME)}"
    assert panel.failures == [result] and not panel.loaded and panel.run.enabled and not panel.bar.visible
    text = folder.file(LOG_NAME).read_text()
    assert "command: " in text and "--params" in text and "missing.yaml" in text


def test_results_are_not_loaded_when_an_input_left_the_scene(panel, scene, tmp_path):
    volume, segmentation, segmentIds = testdata.sphereScene(scene)
    folder = JobFolder("TumorFeatures", root=tmp_path)
    job = featurejobs.prepareHandcrafted(folder.path, volume, segmentation, segmentIds, "pyradiomics-default")
    panel.start(job.arguments, folder=folder, inputs=[volume, segmentation], scene=scene)
    scene.RemoveNode(segmentation)  # deleted by the user while the job runs
    tables = scene.GetNumberOfNodesByClass("vtkMRMLTableNode")
    spin(300)
    assert panel.panel.result.state == "finished"
    assert panel.label.text.startswith("Not loaded: TumorFeaturesTestSegmentation left the scene")
    assert str(folder.path) in panel.label.text and folder.exists  # the results can still be read
    assert not panel.loaded and scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == tables


def test_a_job_started_by_a_finished_job_keeps_its_own_status(panel, synthetic_cohort, tmp_path):
    """The weights download then the features: the second job's status is not overwritten by the first's end."""
    second = []

    def chain(result):
        second.append(panel.panel.start(["validate", "--manifest", str(synthetic_cohort)], "Second...",
                                        lambda result: "second done"))

    panel.start(["validate", "--manifest", str(synthetic_cohort)], onSuccess=chain)
    spin(60, until=lambda: bool(second))
    assert panel.label.text == "Second..." and panel.panel.running and not panel.run.enabled
    spin(60)
    assert panel.label.text == "second done" and panel.run.enabled


# --- pieces without a child process ------------------------------------------------------------------------------

def test_progress_text_says_stage_count_and_time_left():
    event = {"event": "progress", "stage": "extracting features", "done": 2, "total": 10}
    assert progressText(event, 20.0) == "Extracting features: 2 of 10, about 1 min 20 s left"
    assert progressText({**event, "done": 10}, 100.0) == "Extracting features: 10 of 10"
    assert progressText({"stage": "loading", "done": 0, "total": None}, 3.0) == "Loading..."
    assert progressText({**event, "message": "GTVp"}, 0.0) == "Extracting features: 2 of 10 (GTVp)"
    assert [formatDuration(s) for s in (0, 59.4, 65, 7325)] == ["0 s", "59 s", "1 min 05 s", "2 h 02 min"]


def test_progress_events_set_the_bar_busy_while_the_total_is_unknown():
    bar, label, cancel = Widget(), Widget(), Widget()
    panel = JobPanel(bar, label, cancel, clock=lambda: 0.0)
    panel._onEvent({"event": "progress", "stage": "training", "done": 3, "total": None})
    assert (bar.maximum, bar.value) == (0, 0)
    panel._onEvent({"event": "progress", "stage": "training", "done": 3, "total": 4, "elapsed": 30})
    assert (bar.maximum, bar.value) == (4, 3) and label.text == "Training: 3 of 4, about 10 s left"
    panel._onEvent({"event": "log", "message": "epoch 3: loss 0.2"})
    assert label.text == "epoch 3: loss 0.2" and panel.logLines == ["epoch 3: loss 0.2"]


def test_handcrafted_arguments_take_a_preset_or_a_parameter_file(tmp_path):
    base = ["features", "--kind", "handcrafted", "--manifest", "M.csv", "--image", "image", "--mask", "GTV"]
    assert featurejobs.handcraftedArguments("M.csv", "F.csv", "ct-tanaka", 3) == \
        base + ["--preset", "ct-tanaka", "--jobs", "3", "--out", "F.csv"]
    params = tmp_path / "my settings.yaml"
    assert featurejobs.handcraftedArguments("M.csv", "F.csv", params) == \
        base + ["--params", str(params), "--jobs", "1", "--out", "F.csv"]
    with pytest.raises(ValueError):
        featurejobs.handcraftedArguments("M.csv", "F.csv", {"binWidth": 25})
    assert featurejobs.handcraftedTableName("CT", params) == "CT features (my settings)"
    assert featurejobs.handcraftedTableName("CT", "mr-jeong") == "CT features (mr-jeong)"


@pytest.mark.parametrize("source, file, weights, shown, name", [
    ("imagenet", "", "imagenet", "imagenet", "CT deep features resnet18"),
    ("file", "/w/my.pth", "/w/my.pth", "/w/my.pth", "CT deep features resnet18"),
    ("random", "/w/ignored.pth", None, "random", "CT deep features resnet18 (random)"),
])
def test_deep_arguments_for_each_weights_source(source, file, weights, shown, name):
    assert featurejobs.deepWeights(source, file) == weights
    arguments = featurejobs.deepArguments("M.csv", "F.csv", "resnet18", weights, "cuda", "/weights")
    assert arguments == ["features", "--kind", "deep2d", "--manifest", "M.csv", "--image", "image", "--mask", "GTV",
                         "--model", "resnet18", "--weights", shown, "--device", "cuda", "--weights-folder", "/weights",
                         "--no-zscore", "--out", "F.csv"]  # raw outputs: the segments of a scene are not a cohort
    assert featurejobs.deepTableName("CT", "resnet18", weights) == name  # random weights stay visible
    assert featurejobs.deepAttributes("CT", "S", "resnet18", weights)["TumorFeatures.weights"] == shown


def test_deep_weights_refuse_unknown_sources_and_a_missing_file():
    with pytest.raises(ValueError, match="unknown weights source"):
        featurejobs.deepWeights("imagenett")
    with pytest.raises(ValueError, match="no weights file"):
        featurejobs.deepWeights("file", "")


def test_input_problems_say_what_stops_each_button():
    ok = dict(volume=True, segmentation=True, segments=2, preset="ct-tanaka", parameterFile="",
              presets=["ct-tanaka"], model="resnet18", models=["resnet18"], weightsSource="imagenet", weightsFile="")
    assert featurejobs.inputProblems(**ok) == (None, None)
    assert featurejobs.inputProblems(**{**ok, "volume": None}) == ("Select a volume.",) * 2
    assert featurejobs.inputProblems(**{**ok, "segments": 0})[1].startswith("The segmentation has no segments")
    assert featurejobs.inputProblems(**{**ok, "preset": "old"}) == (
        "Unknown preset 'old': pick a preset or a parameter file.", None)
    assert featurejobs.inputProblems(**{**ok, "preset": "old", "parameterFile": "p.yaml"}) == (None, None)
    assert featurejobs.inputProblems(**{**ok, "model": "vgg"}) == (None, "Unknown network 'vgg': pick a network.")
    assert featurejobs.inputProblems(**{**ok, "weightsSource": "file"})[1].startswith("Select a weights file")


def test_case_ids_are_unique_as_ids_and_as_folder_names():
    assert featurejobs.caseIds(["GTVp", "GTVn"]) == ["GTVp", "GTVn"]
    assert featurejobs.caseIds(["GTV", "GTV", "GTV 2"]) == ["GTV", "GTV 2", "GTV 2 2"]
    assert featurejobs.caseIds(["GTV 1", "GTV_1", "gtv_1", ""]) == ["GTV 1", "GTV_1 2", "gtv_1 3", "segment"]


def test_segments_export_as_one_case_each_with_the_volume_written_once(scene, tmp_path):
    import SimpleITK as sitk

    from rtresponse import mrml
    from rtresponse.cohort import load_manifest

    volume, segmentation, segmentIds = testdata.sphereScene(scene)
    segmentation.GetSegmentation().GetSegment(segmentIds[1]).SetName("GTV")  # two segments of the same name
    manifest, cases = featurejobs.exportSegments(tmp_path, volume, segmentation, segmentIds)
    assert cases == {"GTV": segmentIds[0], "GTV 2": segmentIds[1]}
    cohort = load_manifest(manifest)
    assert cohort.patient_ids == ["GTV", "GTV 2"] and cohort.image_names == ["image"] and cohort.mask_names == ["GTV"]
    assert sorted(p.name for p in tmp_path.rglob("*.nrrd")) == ["image.nrrd", "mask_GTV.nrrd", "mask_GTV.nrrd"]
    image = cohort.read_image("GTV 2", "image")
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(mrml.volume_node_to_image(volume)))
    written = sitk.GetArrayFromImage(cohort.read_mask("GTV", "GTV"))
    assert np.array_equal(written, sitk.GetArrayFromImage(mrml.segment_to_mask(segmentation, segmentIds[0], volume)))
    assert written.sum() > 1000


def test_job_folders_are_new_each_time_removed_or_kept_with_a_log(tmp_path):
    first, second = JobFolder("Tumor Features", root=tmp_path), JobFolder("Tumor Features", root=tmp_path)
    assert first.path != second.path and first.path.parent == tmp_path and first.path.name.startswith("Tumor_Features-")
    first.file("x.csv").write_text("x")
    first.remove()
    assert not first.exists
    log = second.keep(["rtresponse", "features"], ["wrote nothing"], ["rtresponse: error: bad"])
    text = log.read_text()
    assert text.splitlines()[0] == "command: rtresponse features" and "rtresponse: error: bad" in text


def test_missing_nodes_names_what_left_the_scene(scene):
    volume, segmentation, _ = testdata.sphereScene(scene)
    assert missingNodes(scene, [volume, segmentation]) == []
    scene.RemoveNode(volume)
    assert missingNodes(scene, [volume, segmentation]) == ["TumorFeaturesTestImage"]
    scene.Clear(0)
    assert missingNodes(scene, [volume, segmentation, None]) == ["TumorFeaturesTestImage",
                                                                 "TumorFeaturesTestSegmentation", "an input"]


# --- weights: never random, downloaded only with consent, as a job --------------------------------------------------

class FakePanel:
    def __init__(self):
        self.statusLabel, self.started = Widget(), []

    def start(self, arguments, description, onSuccess, **options):
        self.started.append((arguments, onSuccess))


@pytest.fixture
def empty_torch_hub(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached checkpoint of this machine counts


def test_missing_weights_are_offered_for_download_then_the_run_starts(tmp_path, empty_torch_hub):
    runs, questions, panel = [], [], FakePanel()
    ran = weightsjob.withImageNetWeights(panel, "resnet18", tmp_path, lambda: runs.append(1),
                                         ask=lambda question: questions.append(question) or True)
    assert not ran and not runs and panel.statusLabel.text.startswith("No weights: ImageNet weights for 'resnet18'")
    assert "Download the ImageNet weights of resnet18" in questions[0]
    (arguments, onSuccess), = panel.started
    assert arguments == ["weights", "download", "resnet18", "--weights-folder", str(tmp_path)]
    onSuccess(None)  # the download job finished
    assert runs == [1]


def test_declined_or_unpublished_weights_start_nothing(tmp_path, empty_torch_hub):
    runs, told, panel = [], [], FakePanel()
    weightsjob.withImageNetWeights(panel, "resnet18", tmp_path, lambda: runs.append(1), ask=lambda q: False)
    weightsjob.withImageNetWeights(panel, "darknet21", tmp_path, lambda: runs.append(1), tell=told.append,
                                   ask=lambda q: pytest.fail("nothing to download"))
    assert not runs and not panel.started and "no ImageNet weights are published for 'darknet21'" in told[0]


def test_weights_in_the_folder_run_at_once(tmp_path, empty_torch_hub):
    (tmp_path / "resnet18.pth").write_bytes(b"")
    runs, panel = [], FakePanel()
    assert weightsjob.withImageNetWeights(panel, "resnet18", tmp_path, lambda: runs.append(1), ask=pytest.fail)
    assert runs == [1] and not panel.started


# --- deep features: the job gives the network's raw outputs, as the in-process path ---------------------------------

def test_a_deep_job_gives_the_in_process_raw_features(panel, scene, tmp_path):
    pytest.importorskip("torch")
    from rtresponse import mrml
    from rtresponse.features import deep2d
    from rtresponse.settings import Settings

    from RadiotherapyResponseLib import segmentfeatures

    volume, segmentation, segmentIds = testdata.sphereScene(scene)
    folder = JobFolder("TumorFeatures", root=tmp_path)
    job = featurejobs.prepareDeep(folder.path, volume, segmentation, segmentIds, "resnet18", None, "cpu", tmp_path)
    tables = []
    panel.start(job.arguments, lambda result: tables.append(
        featurejobs.importFeatureTable(job.out, job.tableName, scene, job.attributes)), folder=folder)
    spin(600)
    assert panel.panel.result.state == "finished", panel.label.text
    table = tables[0]
    assert table.GetName() == "TumorFeaturesTestImage deep features resnet18 (random)"
    frame = mrml.table_node_to_dataframe(table)
    direct = mrml.table_node_to_dataframe(segmentfeatures.measureDeep(
        volume, segmentation, segmentIds, "resnet18", None, Settings(device="cpu", weights_folder=str(tmp_path))))
    names = deep2d.feature_names("resnet18")
    assert list(frame.columns) == list(direct.columns) == names + ["weights", "status"]
    assert list(frame["status"]) == list(direct["status"]) == ["ok", "mask is empty"]
    assert np.allclose(frame.loc["GTV", names].astype(float), direct.loc["GTV", names].astype(float), atol=1e-5)
    assert np.abs(frame.loc["GTV", names].astype(float)).max() > 1.0  # not z-scored over the two segments
