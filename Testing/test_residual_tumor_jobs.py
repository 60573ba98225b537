"""Residual Tumor's background jobs outside Slicer: the command lines the module builds, the prediction (Grad-CAM,
recommendation, automatic segmentation) as a real ``residual predict`` child job whose results become nodes in a real
MRML scene, training as a real ``residual train`` job streaming epoch curves, and Cancel of a training leaving no
model (RadiotherapyResponseLib)."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import LIBRARY
from jobstandins import spin
from jobstandins import panel  # noqa: F401  (a fixture)

pytest.importorskip("torch")
pytest.importorskip("timm")

sys.path.insert(0, str(LIBRARY))  # RadiotherapyResponseLib sits beside the module files
from RadiotherapyResponseLib import residualtumor as rt  # noqa: E402
from RadiotherapyResponseLib import testdata, training  # noqa: E402
from RadiotherapyResponseLib.jobfolder import JobFolder  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 4-patient synthetic cohort and two small classifiers (one epoch, random weights)."""
    folder = tmp_path_factory.mktemp("residual-models")
    manifest, ccrt, ic = testdata.residualModels(str(folder))
    return SimpleNamespace(manifest=manifest, ccrt=ccrt, ic=ic, segmenter=testdata.saveResidualSegmenter(
        folder / "segmenter.pt"))


@pytest.fixture(scope="module")
def training_cohort(tmp_path_factory):
    """24 small synthetic patients with a regimen and a residual outcome each."""
    from rtresponse.sampledata.synthetic import write_cohort

    return write_cohort(tmp_path_factory.mktemp("residual") / "cohort", n_patients=24, seed=4, size=(48, 48, 16),
                        signal=3)


# --- command lines and small pure parts --------------------------------------------------------------------------

def test_predict_arguments_with_a_segment_or_a_segmenter(tmp_path):
    given = rt.ResidualInputs("mr", "segmentation", "GTV id", "", "c.pt", "i.pt", gradcam=True)
    assert rt.predictArguments(tmp_path / "manifest.csv", given, "cuda", tmp_path) == [
        "residual", "predict", "--ccrt", "c.pt", "--ic-ccrt", "i.pt", "--manifest", str(tmp_path / "manifest.csv"),
        "--image", "MR", "--mask", "GTV", "--gradcam", str(tmp_path / "gradcam"), "--details", str(tmp_path / "details"),
        "--device", "cuda", "--out", str(tmp_path / "predictions.csv")]
    segmented = rt.ResidualInputs("mr", None, "", "seg.pt", "c.pt", "i.pt", gradcam=False)
    arguments = rt.predictArguments("m.csv", segmented, "cpu", tmp_path)
    assert arguments[12:14] == ["--segmenter", "seg.pt"] and "--gradcam" not in arguments
    assert segmented.nodes() == ["mr"] and given.nodes() == ["mr", "segmentation"]


def test_train_arguments():
    assert rt.trainArguments("c.csv", "out", "cpu", "/w", "xception", "imagenet", 40, 0.001) == [
        "residual", "train", "--manifest", "c.csv", "--image", "T1", "--mask", "GTVp", "--regimen", "regimen",
        "--outcome", "residual", "--network", "xception", "--weights", "imagenet", "--epochs", "40", "--lr", "0.001",
        "--device", "cpu", "--weights-folder", "/w", "--out", "out"]
    arguments = rt.trainArguments("c.csv", "out", "auto", "", "paper", "random", 2, 0.01, inputSize=32,
                                  mask="GTVp+GTVn")
    assert arguments[-5:] == ["auto", "--input-size", "32", "--out", "out"] and "GTVp+GTVn" in arguments
    assert rt.trainedModels("out") == {"CCRT": "out/ccrt.pt", "IC+CCRT": "out/ic_ccrt.pt"}


def test_regimens_are_the_librarys():
    from rtresponse.recommendation import REGIMENS

    assert tuple(REGIMENS) == rt.REGIMENS


def test_result_frame_has_a_row_per_slice_and_the_patient():
    slices = pd.DataFrame({"slice_index": [3, 4], "area_mm2": [10.0, 30.0], "p_residual_CCRT": [0.2, 0.4],
                           "p_residual_IC_CCRT": [0.6, 0.8]})
    frame = rt.resultFrame(slices, {"CCRT": 0.3, "IC+CCRT": 0.7}, {"CCRT": False, "IC+CCRT": True}, "CCRT")
    assert list(frame.index) == ["slice 3", "slice 4", "patient"]
    assert frame.loc["patient", "residual_IC_CCRT"] == "residual" and frame.loc["patient", "area_mm2"] == 40.0
    assert frame.loc["slice 4", "p_residual_IC_CCRT"] == 0.8 and frame.loc["slice 3", "recommendation"] == ""


def test_input_problems_and_guesses(scene, models):
    mr, segmentation, gtv = testdata.residualScene(scene, models.manifest)
    p = SimpleNamespace(mrVolume=mr, autoSegment=False, tumorSegmentation=segmentation, tumorSegmentId=gtv,
                        segmenterPath="", ccrtModelPath=models.ccrt, icModelPath=models.ic)
    assert rt.inputProblem(p) is None
    assert rt.inputProblem(SimpleNamespace(**{**vars(p), "icModelPath": models.ccrt})) == \
        "The CCRT and IC+CCRT models must be different files."
    assert rt.inputProblem(SimpleNamespace(**{**vars(p), "autoSegment": True})).startswith("Select a segmenter")
    assert rt.inputProblem(SimpleNamespace(**{**vars(p), "ccrtModelPath": ""})) == "Select the CCRT model file."
    empty = SimpleNamespace(mrVolume=None, tumorSegmentation=None, tumorSegmentId="")
    rt.guessInputs(empty, scene)
    assert (empty.mrVolume, empty.tumorSegmentation, empty.tumorSegmentId) == (mr, segmentation, gtv)


# --- real child jobs ---------------------------------------------------------------------------------------------

def test_a_prediction_job_with_a_segment_loads_table_recommendation_and_gradcam(panel, scene, models, tmp_path):
    from rtresponse import mrml

    mr, segmentation, gtv = testdata.residualScene(scene, models.manifest)
    inputs = rt.ResidualInputs(mr, segmentation, gtv, "", models.ccrt, models.ic, gradcam=True)
    folder = JobFolder("ResidualTumor", root=tmp_path)
    manifest, loaded = rt.exportPatient(folder.path, inputs), []
    panel.panel.start(rt.predictArguments(manifest, inputs, "cpu", folder.path), "Predicting...",
                      lambda result: loaded.append(rt.loadPrediction(inputs, folder.path)) or rt.summary(loaded[-1]),
                      folder=folder, inputs=inputs.nodes(), scene=scene)
    assert not panel.run.enabled and not panel.train.enabled
    spin(300)
    assert panel.panel.result.state == "finished", panel.label.text
    assert not folder.exists and panel.label.text.startswith("Residual probability: CCRT ")
    [nodes] = loaded
    testdata.checkResidualOutputs(nodes, mr)
    assert nodes.segmentation is None and set(mrml.segment_names(segmentation).values()) == {"GTVp"}
    # the same probabilities and recommendation as the Logic's in-process prediction
    direct = rt.predict(mr, models.ccrt, models.ic, segmentation, gtv, device="cpu", name="direct")
    assert direct.recommendation == nodes.recommendation and direct.reasoning == nodes.reasoning
    for regimen in rt.REGIMENS:
        assert abs(direct.probabilities[regimen] - nodes.probabilities[regimen]) < 1e-5
    np.testing.assert_allclose(mrml.table_node_to_dataframe(direct.table)["p_residual_CCRT"],
                               mrml.table_node_to_dataframe(nodes.table)["p_residual_CCRT"], atol=1e-5)


def test_a_prediction_job_that_segments_the_tumour_adds_its_segmentation(panel, scene, models, tmp_path):
    from rtresponse import mrml

    mr, _, _ = testdata.residualScene(scene, models.manifest)
    inputs = rt.ResidualInputs(mr, None, "", str(models.segmenter), models.ccrt, models.ic, gradcam=False)
    folder = JobFolder("ResidualTumor", root=tmp_path)
    manifest, loaded = rt.exportPatient(folder.path, inputs), []
    assert list(pd.read_csv(manifest).columns) == ["patient_id", "image_MR"]  # no mask: the segmenter finds it
    panel.panel.start(rt.predictArguments(manifest, inputs, "cpu", folder.path), "Segmenting...",
                      lambda result: loaded.append(rt.loadPrediction(inputs, folder.path)) or "loaded",
                      folder=folder, inputs=inputs.nodes(), scene=scene)
    spin(300)
    assert panel.panel.result.state == "finished", panel.label.text
    [nodes] = loaded
    assert list(mrml.segment_names(nodes.segmentation).values()) == ["tumour"]
    assert mrml.segment_to_mask(nodes.segmentation, nodes.segmentId, mr).GetSize() == \
        tuple(mr.GetImageData().GetDimensions())
    testdata.checkResidualOutputs(nodes, mr, gradcam=False)


def test_a_patient_the_job_could_not_predict_is_a_message_not_nodes(models, tmp_path):
    from rtresponse.errors import InputError

    (tmp_path / rt.PREDICTIONS).write_text("patient_id,status\npatient,the segmenter found no tumour on this image\n")
    with pytest.raises(InputError, match="the segmenter found no tumour"):
        rt.loadPrediction(rt.ResidualInputs("mr", None, "", "s.pt"), tmp_path)


def test_a_training_job_streams_epoch_curves_and_its_models_become_the_models(panel, scene, training_cohort,
                                                                             tmp_path):
    from rtresponse import mrml

    out = training.defaultOutputFolder(tmp_path / "models", rt.TRAINING_PREFIX)
    trained = []
    curves = training.startTraining(
        panel.panel, rt.trainArguments(training_cohort, out, "cpu", "", "squeezenet", "random", 2, 0.01, 32),
        "Training...", "Residual tumour training", scene, lambda result: trained.append(rt.trainedModels(out)) or "ok")
    spin(600)
    assert panel.panel.result.state == "finished", panel.label.text
    frame = mrml.table_node_to_dataframe(curves.table)
    assert list(frame["model"]) == ["squeezenet CCRT"] * 2 + ["squeezenet IC+CCRT"] * 2
    assert list(frame["epoch"]) == [1, 2, 1, 2] and list(frame["step"]) == [1, 2, 3, 4]
    history = pd.read_csv(out / "history.csv")
    np.testing.assert_allclose(frame["train_loss"], history["train_loss"])
    np.testing.assert_allclose(frame["validation_loss"], history["validation_loss"])
    series = {curves.chart.GetNthPlotSeriesNode(i).GetYColumnName()
              for i in range(curves.chart.GetNumberOfPlotSeriesNodes())}
    assert series == {"train_loss", "train_accuracy", "validation_loss", "validation_auc"}
    assert trained == [{"CCRT": str(out / "ccrt.pt"), "IC+CCRT": str(out / "ic_ccrt.pt")}]
    summary = training.cardSummary(training.modelCard(out / "ccrt.pt"))
    assert "CCRT: epoch" in summary and "network squeezenet" in summary and "weights random (seed 0)" in summary


def test_cancelling_a_residual_training_leaves_no_model(panel, scene, training_cohort, tmp_path):
    out = training.defaultOutputFolder(tmp_path / "models", rt.TRAINING_PREFIX)
    trained = []
    curves = training.startTraining(
        panel.panel, rt.trainArguments(training_cohort, out, "cpu", "", "squeezenet", "random", 1000, 0.01, 32),
        "Training...", "Residual tumour training", scene, trained.append)
    spin(300, until=lambda: len(curves.rows) >= 1)
    assert panel.panel.running and curves.rows
    started = time.monotonic()
    panel.cancel.click()
    assert time.monotonic() - started < 10 and panel.panel.result.state == "cancelled"
    models = tmp_path / "models"
    assert not trained and not out.exists() and (not models.exists() or not any(models.iterdir()))


def test_the_training_plan_follows_what_is_trained():
    p = SimpleNamespace(trainWhat=rt.CLASSIFIERS, trainManifest="c.csv", trainNetwork="xception",
                        trainWeights="imagenet", trainEpochs=40, trainLearningRate=0.001, trainInputSize=0,
                        trainImage="T1", trainMask="GTVp", trainRegimen="regimen", trainOutcome="residual")
    arguments, network, description = rt.trainingPlan(p, "out", "cpu", "/w")
    assert arguments[:2] == ["residual", "train"] and network == "xception" and "CCRT and IC+CCRT" in description
    assert rt.trainingPlan(SimpleNamespace(**{**vars(p), "trainNetwork": rt.PAPER}), "out", "cpu", "/w")[1] is None
    assert rt.trainingPlan(SimpleNamespace(**{**vars(p), "trainWeights": "random"}), "out", "cpu", "/w")[1] is None
    segmenter = SimpleNamespace(**{**vars(p), "trainWhat": rt.SEGMENTER, "trainEpochs": 20, "trainInputSize": 48})
    arguments, network, _ = rt.trainingPlan(segmenter, "out", "cpu", "/w")
    assert arguments == ["residual", "segmenter", "--manifest", "c.csv", "--image", "T1", "--mask", "GTVp",
                         "--weights", "imagenet", "--epochs", "20", "--lr", "0.001", "--device", "cpu",
                         "--input-size", "48", "--weights-folder", "/w", "--out", "out"]
    assert network == "resnet50"  # DeepLabv3's backbone
    assert rt.trainedParameters(rt.SEGMENTER, "out") == ({"segmenterPath": "out/segmenter.pt", "autoSegment": True},
                                                         "Trained: out/segmenter.pt is now the segmenter.")
    parameters, text = rt.trainedParameters(rt.CLASSIFIERS, "out")
    assert parameters == {"ccrtModelPath": "out/ccrt.pt", "icModelPath": "out/ic_ccrt.pt"} and "No model card" in text


def test_the_segmenter_command_sends_an_epoch_event_per_epoch(training_cohort, tmp_path, capsys):
    import json

    from rtresponse.cli import main

    from RadiotherapyResponseLib import trainingcurves

    assert main(["residual", "segmenter", "--manifest", str(training_cohort), "--architectures", "unet",
                 "--weights", "random", "--epochs", "2", "--batch-size", "8", "--input-size", "48",
                 "--unet-features", "4", "4", "8", "8", "16", "4", "--device", "cpu", "--progress", "jsonl",
                 "--out", str(tmp_path / "seg")]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    epochs = trainingcurves.epochEvents(events)
    assert [(e["architecture"], e["epoch"], e["stage"]) for e in epochs] == [("unet", 1, "training"),
                                                                            ("unet", 2, "training")]
    assert all(0 <= e["validation_dice"] <= 1 for e in epochs)
    training_bar = [e for e in events if e["event"] == "progress" and e["stage"] == "training"]
    assert training_bar[-1]["done"] == 2 and {e["total"] for e in training_bar} == {2}  # 1 architecture x 2 epochs
    assert events[-1]["event"] == "result"
