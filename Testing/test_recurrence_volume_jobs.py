"""Recurrence Volume's background jobs outside Slicer: the command lines the module builds, the prediction as a real
``recurrence predict`` child job whose probability map becomes nodes in a real MRML scene, training as a real
``recurrence train`` job whose epoch events grow a curve table and chart, Cancel of a training leaving no model,
and the model card shown for the trained model (RadiotherapyResponseLib)."""

from __future__ import annotations

import json
import math
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import LIBRARY
from jobstandins import spin
from jobstandins import panel  # noqa: F401  (a fixture)

sys.path.insert(0, str(LIBRARY))  # RadiotherapyResponseLib sits beside the module files
from RadiotherapyResponseLib import recurrencevolume as rv  # noqa: E402
from RadiotherapyResponseLib import testdata, training, trainingcurves  # noqa: E402
from RadiotherapyResponseLib.jobfolder import JobFolder  # noqa: E402


@pytest.fixture(scope="module")
def training_cohort(tmp_path_factory):
    """14 small synthetic patients (48 x 48 x 16 voxels), enough with a relapse for the 6:2:2 split."""
    from rtresponse.sampledata.synthetic import write_cohort

    return write_cohort(tmp_path_factory.mktemp("recurrence") / "cohort", n_patients=14, seed=0, size=(48, 48, 16))


# --- command lines and small pure parts --------------------------------------------------------------------------

def test_predict_and_train_arguments(tmp_path):
    assert rv.predictArguments(tmp_path / "m.csv", tmp_path / "model.pt", "auto", 0.35, tmp_path / "out") == [
        "recurrence", "predict", "--manifest", str(tmp_path / "m.csv"), "--image", "CT", "PET", "--gtv", "GTV",
        "--model", str(tmp_path / "model.pt"), "--threshold", "0.35", "--device", "auto",
        "--out", str(tmp_path / "out")]
    assert rv.trainArguments("c.csv", "out", "cpu", 500, 5, 0.1) == [
        "recurrence", "train", "--manifest", "c.csv", "--epochs", "500", "--runs", "5", "--lr", "0.1",
        "--device", "cpu", "--out", "out"]
    assert rv.trainArguments("c.csv", "out", "cuda", 3, 1, 0.01, box="32 x 32 x 16", init="gtv.pt")[12:] == [
        "--box", "32", "32", "16", "--init", "gtv.pt", "--out", "out"]
    assert rv.parseBox(" ") == [] and rv.parseBox("160,224,128") == ["160", "224", "128"]
    for bad in ("160 224", "160 224 100", "a b c", "0 16 16"):
        with pytest.raises(ValueError, match="divisible by 16"):
            rv.parseBox(bad)


def test_training_output_folder_and_problems(tmp_path):
    first = training.defaultOutputFolder(tmp_path / "models", "recurrence", now=0)
    assert first.parent == tmp_path / "models" and first.name.startswith("recurrence-19")
    first.mkdir(parents=True)
    second = training.defaultOutputFolder(tmp_path / "models", "recurrence", now=0)
    assert second.name == first.name + "-2"  # never an earlier model's folder
    assert training.outputProblem(first) is None  # empty: fine
    (first / "model.pt").write_bytes(b"x")
    assert "already holds files" in training.outputProblem(first)
    assert "is a file" in training.outputProblem(first / "model.pt")
    assert "Select the cohort manifest" in training.manifestProblem("")
    assert "not found" in training.manifestProblem(str(tmp_path / "none.csv"))


def test_input_problem_names_what_is_missing(scene):
    ct, pet, segmentation, gtv, relapse = testdata.recurrenceScene(scene)
    p = SimpleNamespace(ctVolume=ct, petVolume=pet, gtvSegmentation=segmentation, gtvSegmentId=gtv,
                        brainSegmentation=None, brainSegmentId="", relapseSegmentation=None, relapseSegmentId="",
                        modelPath="")
    assert rv.inputProblem(p) is None
    assert rv.inputProblem(SimpleNamespace(**{**vars(p), "petVolume": ct})) == \
        "The CT and PET volumes must be different volumes."
    assert rv.inputProblem(SimpleNamespace(**{**vars(p), "gtvSegmentId": "gone"})) == "Select the GTV segment."
    assert rv.inputProblem(SimpleNamespace(**{**vars(p), "modelPath": "/no/model.pt"})).startswith("Model file not")
    empty = SimpleNamespace(**{key: None if key != "gtvSegmentId" else "" for key in vars(p)})
    rv.guessInputs(empty, scene)  # by name: "... PET" is the PET, the other volume the CT; GTVp and relapse
    assert (empty.ctVolume, empty.petVolume, empty.gtvSegmentId, empty.relapseSegmentId) == (ct, pet, gtv, relapse)


def test_a_pet_that_looks_like_bq_per_ml_is_named_in_the_summary(scene):
    from rtresponse import mrml

    ct, pet, segmentation, gtv, relapse = testdata.recurrenceScene(scene)
    inputs = rv.RecurrenceInputs(ct, pet, segmentation, gtv)
    assert "Warning" not in rv.summary(rv.makeOutputs(inputs))  # the test PET is in SUV
    activity = mrml.image_to_volume_node(mrml.volume_node_to_image(pet) * 5000.0, "PET Bq/mL", scene)
    summary = rv.summary(rv.makeOutputs(rv.RecurrenceInputs(ct, activity, segmentation, gtv)))
    assert "Warning:" in summary and "PET Bq/mL" in summary and "Bq/mL" in summary.split("Warning:")[1]


def test_epoch_events_become_curve_rows_and_columns():
    events = [{"event": "epoch", "stage": "training", "run": 0, "epoch": 1, "train_loss": 0.9,
               "validation_dice": 0.1, "lr": 0.1, "seconds": 2.0},
              {"event": "log", "message": "not an epoch"},
              {"event": "epoch", "stage": "training", "run": 1, "epoch": 1, "train_loss": 0.8,
               "validation_dice": None, "lr": 0.1, "seconds": 2.0}]
    found = trainingcurves.epochEvents(events)
    rows = [trainingcurves.curveRow(event, step) for step, event in enumerate(found, start=1)]
    assert rows[0] == {"step": 1, "model": "run 1", "epoch": 1, "train_loss": 0.9, "validation_dice": 0.1,
                       "lr": 0.1, "seconds": 2.0}
    assert rows[1]["model"] == "run 2" and math.isnan(rows[1]["validation_dice"])
    frame = trainingcurves.curveFrame(rows)
    assert list(frame.columns) == ["step", "model", "epoch", "train_loss", "validation_dice", "lr", "seconds"]
    assert trainingcurves.plottedColumns(frame.columns) == ["train_loss", "validation_dice"]
    residual = {"event": "epoch", "network": "xception", "regimen": "IC+CCRT", "epoch": 2, "train_loss": 0.6,
                "train_accuracy": 0.5}
    assert trainingcurves.modelLabel(residual) == "xception IC+CCRT"
    assert trainingcurves.curveRow(residual, 7)["train_accuracy"] == 0.5


def test_curves_grow_one_table_and_one_chart_in_the_scene(scene):
    from rtresponse import mrml

    made = []
    curves = trainingcurves.TrainingCurves("U-Net training", scene, onCreated=made.append)
    assert not curves.add({"event": "progress", "stage": "training"}) and curves.table is None
    for epoch, loss in enumerate([0.9, 0.7, 0.6], start=1):
        assert curves.add({"event": "epoch", "run": 0, "epoch": epoch, "train_loss": loss,
                           "validation_dice": loss / 3, "lr": 0.1, "seconds": 1.0})
    frame = mrml.table_node_to_dataframe(curves.table)
    assert list(frame["train_loss"]) == [0.9, 0.7, 0.6] and list(frame["step"]) == [1, 2, 3]
    assert made == [curves.chart] and scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 1  # one table per chart
    series = [curves.chart.GetNthPlotSeriesNode(i) for i in range(curves.chart.GetNumberOfPlotSeriesNodes())]
    assert [(s.GetXColumnName(), s.GetYColumnName()) for s in series] == [("step", "train_loss"),
                                                                          ("step", "validation_dice")]
    assert {s.GetTableNodeID() for s in series} == {curves.table.GetID()}


def test_model_card_summary(tmp_path):
    assert "No model card" in training.cardSummary(training.modelCard(tmp_path / "model.pt"))
    card = {"method": "3D U-Net", "best_validation_dice": 0.4321, "best_run": 1, "best_epoch": 7,
            "patients": {"train": 8, "validation": 3, "test": 3}, "weights": {"weights": "random", "seed": 0},
            "device": "cpu"}
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    text = training.cardSummary(training.modelCard(tmp_path / "model.pt"))
    assert text.splitlines() == ["3D U-Net", "kept: run 2, epoch 7, validation Dice 0.432",
                                 "patients: train 8, validation 3, test 3", "weights random (seed 0), device cpu"]


# --- real child jobs ---------------------------------------------------------------------------------------------

def test_a_prediction_job_loads_the_probability_map_and_the_outputs_into_the_scene(panel, scene, tmp_path):
    pytest.importorskip("monai")
    from rtresponse import mrml

    ct, pet, segmentation, gtv, relapse = testdata.recurrenceScene(scene)
    model = testdata.saveRecurrenceModel(tmp_path / "model.pt")
    inputs = rv.RecurrenceInputs(ct, pet, segmentation, gtv, relapseSegmentation=segmentation,
                                 relapseSegmentId=relapse, modelPath=str(model), threshold=0.5)
    folder = JobFolder("RecurrenceVolume", root=tmp_path)
    manifest = rv.exportPatient(folder.path, inputs)
    out, loaded = folder.file(rv.PREDICTION_FOLDER), []
    nodes_before = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    panel.panel.start(rv.predictArguments(manifest, model, "cpu", 0.5, out), "Predicting...",
                      lambda result: loaded.append(rv.loadPrediction(inputs, out)) or rv.summary(loaded[-1]),
                      folder=folder, inputs=inputs.nodes(), scene=scene)
    assert not panel.run.enabled and not panel.train.enabled and panel.cancel.enabled
    spin(300)
    assert panel.panel.result.state == "finished", panel.label.text
    assert panel.run.enabled and not folder.exists  # removed once the outputs are in the scene
    [nodes] = loaded
    testdata.checkRecurrenceOutputs(nodes, ct)
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == nodes_before + 1
    assert nodes.probability.GetAttribute(rv.OUTPUT_ATTRIBUTE) == "1" and rv.appliedThreshold(nodes) == 0.5
    assert panel.label.text.startswith(f"'{nodes.segmentation.GetName()}'")
    assert "Dice with the relapse" in panel.label.text
    # the job's map is the in-process prediction's (the box is the model file's in both)
    direct = rv.predict(ct, pet, segmentation, gtv, model=str(model), device="cpu", name="direct")
    np.testing.assert_allclose(_array(nodes.probability), _array(direct.probability), atol=1e-5)
    assert set(mrml.segment_names(segmentation).values()) == {"GTVp", "relapse"}  # the inputs are only read


def _array(volume):
    import slicer.util

    return slicer.util.arrayFromVolume(volume)


def test_a_training_job_streams_epoch_curves_and_its_model_becomes_the_model(panel, scene, training_cohort,
                                                                            tmp_path):
    pytest.importorskip("monai")
    import pandas as pd
    from rtresponse import mrml

    out = training.defaultOutputFolder(tmp_path / "models", rv.TRAINING_PREFIX)
    trained, shown = [], []
    curves = training.startTraining(
        panel.panel, rv.trainArguments(training_cohort, out, "cpu", 2, 1, 0.01, box="32 32 16"), "Training...",
        "Recurrence U-Net training", scene, lambda result: trained.append(out / rv.MODEL_FILE) or "trained",
        showChart=shown.append)
    spin(600)
    assert panel.panel.result.state == "finished", panel.label.text
    assert trained == [out / rv.MODEL_FILE] and (out / rv.MODEL_FILE).is_file() and panel.label.text == "trained"
    frame = mrml.table_node_to_dataframe(curves.table)
    history = pd.read_csv(out / "history.csv")
    assert list(frame["epoch"]) == list(history["epoch"]) == [1, 2]
    np.testing.assert_allclose(frame["train_loss"], history["train_loss"])
    np.testing.assert_allclose(frame["validation_dice"], history["validation_dice"])
    assert shown == [curves.chart] and curves.chart.GetNumberOfPlotSeriesNodes() == 2
    assert any(text.startswith("Training: ") and "validation Dice" in text
               for name, text in panel.label.history if name == "text")  # progress with the epoch's scores
    summary = training.cardSummary(training.modelCard(out / rv.MODEL_FILE))
    assert "validation Dice" in summary and "weights random (seed 0)" in summary


def test_cancelling_a_training_job_leaves_no_model(panel, scene, training_cohort, tmp_path):
    pytest.importorskip("monai")
    models = tmp_path / "models"
    out = training.defaultOutputFolder(models, rv.TRAINING_PREFIX)
    folder = JobFolder("RecurrenceVolumeTraining", root=tmp_path / "jobs")
    trained = []
    curves = training.startTraining(
        panel.panel, rv.trainArguments(training_cohort, out, "cpu", 500, 5, 0.01, box="32 32 16"), "Training...",
        "Recurrence U-Net training", scene, trained.append, folder=folder)
    spin(300, until=lambda: len(curves.rows) >= 1)
    assert panel.panel.running and len(curves.rows) >= 1  # an epoch arrived: training is under way
    started = time.monotonic()
    panel.cancel.click()
    assert time.monotonic() - started < 10
    assert panel.panel.result.state == "cancelled" and panel.label.text == training.CANCELLED_TEXT
    assert not trained and not out.exists() and not folder.exists
    assert not models.exists() or not any(models.iterdir())  # no staging folder left behind
    assert panel.train.enabled and not panel.cancel.enabled


def test_the_panel_hands_every_event_to_the_module_and_survives_a_failing_handler(panel, tmp_path):
    seen = []

    def handler(event):
        seen.append(event["event"])
        raise RuntimeError("a curve that cannot be drawn")

    panel.panel.start(["sample-data", "--kind", "synthetic", "--patients", "2", "--out", str(tmp_path / "c")],
                      "Writing...", lambda result: "written", onEvent=handler)
    spin(120)
    assert panel.panel.result.state == "finished" and panel.label.text == "written"
    assert "progress" in seen and seen[-1] == "result"  # every event, the last one too
