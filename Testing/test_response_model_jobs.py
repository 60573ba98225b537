"""Response Model's evaluation as a background job outside Slicer: the inputs written to the job folder, the
``rtresponse evaluate`` command line, a real child evaluate job on a small planted table whose results load into a
real MRML scene, and Cancel leaving nothing (RadiotherapyResponseLib.responsemodel)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import LIBRARY
from jobstandins import spin
from jobstandins import panel  # noqa: F401  (a fixture)

sys.path.insert(0, str(LIBRARY))  # RadiotherapyResponseLib sits beside the module files
from RadiotherapyResponseLib import responsemodel as rm  # noqa: E402
from RadiotherapyResponseLib.jobfolder import JobFolder  # noqa: E402


def planted(n=60, seed=0):
    """(feature table, clinical table) DataFrames as table nodes hold them: f1 carries the outcome."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    features = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"f{i}" for i in range(5)])
    outcome = (features["f1"] + rng.normal(0, 0.5, n) > 0).astype(int)
    features.insert(0, "patient_id", ids)
    features["status"] = "ok"
    clinical = pd.DataFrame({"patient_id": ids, "clin_age": rng.integers(40, 80, n), "other": "x",
                             "outcome_response": outcome})
    return features, clinical


def test_evaluate_arguments(tmp_path):
    args = rm.evaluateArguments("m.csv", ["a.csv", "b c.csv"], "outcome_response", "out", ["clin_age", "clin_stage"],
                                "bootstrap", ["wilcoxon", "mrmr"], ["lda"], k=3, nBootstrap=15, forward=False,
                                positive=" 1 ", jobs=4)
    assert args == ["evaluate", "--features", "a.csv", "--features", "b c.csv", "--manifest", "m.csv", "--outcome",
                    "response", "--positive", "1", "--clinical", "age,stage", "--combine", "--protocol", "bootstrap",
                    "--selectors", "wilcoxon", "mrmr", "--classifiers", "lda", "--k", "3", "--n-bootstrap", "15",
                    "--no-forward", "--seed", "0", "--jobs", "4", "--out", "out"]
    split = rm.evaluateArguments("m.csv", [], "outcome_response", "out", protocol="split", jobs=0)
    assert "--n-bootstrap" not in split and "--positive" not in split and "--clinical" not in split
    assert split[-4:] == ["--jobs", "1", "--out", "out"]  # at least one worker


def test_inputs_and_results_folder(tmp_path):
    features, clinical = planted(8)
    written = rm.exportInputs(tmp_path, {"radiomics: T1": features}, clinical, "outcome_response")
    [path] = written["features"]
    assert path.name == "radiomics_ T1.csv" and pd.read_csv(path).equals(features)
    manifest = pd.read_csv(written["manifest"])
    assert list(manifest.columns) == ["patient_id", "clin_age", "outcome_response"]  # no unknown prefixes
    from rtresponse.errors import InputError

    with pytest.raises(InputError, match="no outcome column 'outcome_x'"):
        rm.exportInputs(tmp_path, {}, clinical, "outcome_x")
    first = rm.resultsFolder(tmp_path, "outcome_response", now=0)
    assert first.parent == tmp_path and first.name.startswith("response-19") and not first.exists()
    first.mkdir()
    assert rm.resultsFolder(tmp_path, "outcome_response", now=0).name == first.name + "-2"


@pytest.mark.parametrize("protocol", ["bootstrap", "split"])
def test_an_evaluate_job_loads_its_results_into_the_scene(panel, scene, tmp_path, protocol):
    pytest.importorskip("skops")
    from rtresponse import mrml

    features, clinical = planted()
    table = mrml.dataframe_to_table_node(features, "radiomics", scene)
    clinicalNode = mrml.dataframe_to_table_node(clinical, "clinical", scene)
    folder = JobFolder("evaluate", root=tmp_path / "jobs")
    written = rm.exportInputs(folder.path, {"radiomics": table}, clinicalNode, "outcome_response")
    out = rm.resultsFolder(tmp_path / "results", "outcome_response")
    loaded = []
    panel.panel.start(rm.evaluateArguments(written["manifest"], written["features"], "outcome_response", out,
                                           ["clin_age"], protocol, ["wilcoxon"], ["lda"], k=3, nBootstrap=15,
                                           forward=False, jobs=2),
                      "Evaluating...", lambda result: loaded.append(rm.loadResults(out, "outcome_response", scene,
                                                                                   protocol)) or rm.summary(loaded[-1]),
                      folder=folder, inputs=[table, clinicalNode], scene=scene)
    spin(300)
    assert panel.panel.result.state == "finished", panel.label.text
    assert not folder.exists and panel.run.enabled
    [result] = loaded
    frame = mrml.table_node_to_dataframe(result["results"])
    assert list(frame["feature_set"]) == ["radiomics", "clinical", "radiomics+clinical"]
    assert result["results"].GetAttribute("ResponseModel.model") == str(out / "model.skops")
    assert result["model"].is_file() and result["card"]["outcome"] == "response"
    assert result["best"]["feature_set"] in ("radiomics", "radiomics+clinical")
    chart = result["roc"]
    assert chart.GetNumberOfPlotSeriesNodes() >= 2 and "chance" in chart.GetNthPlotSeriesNode(
        chart.GetNumberOfPlotSeriesNodes() - 1).GetName()
    if protocol == "bootstrap":
        assert sorted(result["heatmaps"]) == ["clinical", "radiomics", "radiomics+clinical"]
        grid = mrml.table_node_to_dataframe(result["heatmaps"]["radiomics"])
        assert list(grid.columns) == ["selector", "lda"] and list(grid["selector"]) == ["wilcoxon"]
        assert float(grid["lda"].iloc[0]) > 0.75
    else:
        assert result["heatmaps"] == {}
    assert panel.label.text.startswith(("Best", "Chosen")) and "radiomics" in panel.label.text


def test_cancelling_an_evaluate_job_leaves_nothing(panel, scene, tmp_path):
    pytest.importorskip("skops")
    features, clinical = planted(80)
    folder = JobFolder("evaluate", root=tmp_path / "jobs")
    written = rm.exportInputs(folder.path, {"radiomics": features}, clinical, "outcome_response")
    out = rm.resultsFolder(tmp_path / "results", "outcome_response")
    loaded = []
    panel.panel.start(rm.evaluateArguments(written["manifest"], written["features"], "outcome_response", out,
                                           k=3, nBootstrap=1000),
                      "Evaluating...", lambda result: loaded.append(result) or "done", folder=folder, scene=scene)
    spin(8)  # under way (its first event comes only after the first of the 25 models, a minute here)
    assert panel.panel.running, panel.label.text
    started = time.monotonic()
    panel.cancel.click()
    spin(60)
    assert time.monotonic() - started < 30
    assert panel.panel.result.state == "cancelled" and panel.label.text == "Cancelled."
    assert not loaded and not folder.exists and not out.exists()
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 0


def test_in_process_evaluation_equals_the_job_and_predicts(scene, tmp_path):
    """The Logic's in-process run writes what `rtresponse evaluate` writes (one code path), and a saved model predicts
    a patients table and a Tumor Features table (one row per segment)."""
    pytest.importorskip("skops")
    from rtresponse import mrml
    from rtresponse.cli import main
    from rtresponse.errors import Cancelled

    features, clinical = planted()
    table = mrml.dataframe_to_table_node(features, "radiomics", scene)
    clinicalNode = mrml.dataframe_to_table_node(clinical, "clinical", scene)
    settings = dict(clinicalColumns=["clin_age"], protocol="bootstrap", selectors=["wilcoxon"], classifiers=["lda"],
                    k=3, nBootstrap=15, forward=False)
    loaded = rm.evaluateInProcess({"radiomics": table}, clinicalNode, "outcome_response", tmp_path / "in", scene,
                                  **settings)
    written = rm.exportInputs(tmp_path / "job", {"radiomics": table}, clinicalNode, "outcome_response")
    arguments = rm.evaluateArguments(written["manifest"], written["features"], "outcome_response", tmp_path / "cli",
                                     settings["clinicalColumns"], "bootstrap", ["wilcoxon"], ["lda"], k=3,
                                     nBootstrap=15, forward=False, jobs=1)
    assert main(arguments + ["--progress", "none"]) == 0
    inProcess, cli = (pd.read_csv(tmp_path / f / "results.csv") for f in ("in", "cli"))
    pd.testing.assert_frame_equal(inProcess, cli)
    assert sorted(loaded["heatmaps"]) == ["clinical", "radiomics", "radiomics+clinical"]

    patients = features.iloc[:3].drop(columns="status")
    prediction = rm.predict(loaded["model"], mrml.dataframe_to_table_node(patients, "new", scene),
                            mrml.dataframe_to_table_node(clinical.iloc[:3], "new clinical", scene))
    assert list(prediction.index) == list(patients["patient_id"]) and prediction["probability"].between(0, 1).all()
    assert scene.GetNodeByID(prediction.attrs["tableNodeID"]).GetAttribute("ResponseModel.model") == str(
        loaded["model"])
    segments = patients.iloc[[0]].drop(columns="patient_id").set_index(pd.Index(["GTVp"], name="segment"))
    onePatient = rm.predict(loaded["model"], mrml.dataframe_to_table_node(segments, "P000 features", scene),
                            mrml.dataframe_to_table_node(clinical.iloc[[0]], "P000 clinical", scene))
    assert list(onePatient.index) == ["GTVp"]
    assert onePatient["probability"].iloc[0] == pytest.approx(prediction["probability"].iloc[0])
    assert "GTVp: probability" in rm.predictionSummary(onePatient)

    tables = scene.GetNumberOfNodesByClass("vtkMRMLTableNode")
    with pytest.raises(Cancelled):
        rm.evaluateInProcess({"radiomics": table}, clinicalNode, "outcome_response", tmp_path / "cancelled", scene,
                             shouldCancel=lambda: True, **settings)
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == tables and not (tmp_path / "cancelled").exists()


# --- I3D training as a job (RadiotherapyResponseLib.i3djobs) -------------------------------------------------------

def test_i3d_train_arguments():
    from RadiotherapyResponseLib import i3djobs

    assert i3djobs.trainArguments("c.csv", "response", "out", positive="0", clinicalFactors=["age", "hpv"],
                                  weights="random", weightsFolder="w", shape=(32, 32, 8), spacing=(1.5, 1.5, 3),
                                  trials=2, maxEpochs=30, device="cpu", overwrite=True) == [
        "i3d", "train", "--manifest", "c.csv", "--outcome", "response", "--positive", "0", "--image", "T1", "T2",
        "--mask", "GTVp", "--clinical", "age", "hpv", "--weights", "random", "--weights-folder", "w",
        "--shape", "32", "32", "8", "--spacing", "1.5", "1.5", "3", "--trials", "2", "--epochs", "30",
        "--device", "cpu", "--seed", "0", "--overwrite", "--out", "out"]
    image_only = i3djobs.trainArguments("c.csv", "response", "out", clinicalFactors=["age"], imageOnly=True)
    assert "--no-clinical" in image_only and "--clinical" not in image_only and "--overwrite" not in image_only


def test_i3d_training_and_prediction_jobs_with_live_curves(panel, scene, tmp_path):
    """Train in a job (live loss curves from its epoch events), then predict the patient in the scene in a job: the
    same probability as in process, and nothing added to the inputs."""
    pytest.importorskip("torch")
    from rtresponse import mrml
    from rtresponse.cohort import load_manifest
    from rtresponse.sampledata.synthetic import write_cohort
    from RadiotherapyResponseLib import i3dinputs, i3djobs, i3dpredict, training

    manifest = write_cohort(tmp_path / "cohort", n_patients=24, seed=0, size=(48, 48, 16))
    out = tmp_path / "i3d"
    loaded = []
    curves = training.startTraining(
        panel.panel, i3djobs.trainArguments(manifest, "response", out, weights="random", shape=(16, 16, 8),
                                            trials=0, maxEpochs=3, device="cpu"),
        "Training...", "I3D training", scene,
        lambda result: loaded.append(i3djobs.loadTraining(out, scene, "response", "random", lossChart=False))
        or i3djobs.summary(loaded[-1]))
    spin(400)
    assert panel.panel.result.state == "finished", panel.label.text + "\n" + "\n".join(panel.panel.logLines[-5:])
    [result] = loaded
    assert list(mrml.table_node_to_dataframe(result["results"])["model"]) == ["DLR (MR)", "DLR (MR + CF)"]
    assert result["modelPath"] == out / "dlr_mr_cf.pt" and result["lossChart"] is None
    frame = curves.frame()  # the live curves: one per model, every epoch, both losses
    assert set(frame["model"]) == {"DLR (MR)", "DLR (MR + CF)"}
    assert {"train_loss", "validation_loss"} <= set(frame.columns) and frame["epoch"].max() <= 3
    assert curves.chart.GetNumberOfPlotSeriesNodes() == 2  # train_loss and validation_loss over the steps
    assert "DLR (MR + CF): test AUC" in panel.label.text and "Random backbone weights" in panel.label.text

    model = result["modelPath"]
    info = i3dinputs.modelInfo(model)
    nodes = mrml.load_patient(load_manifest(manifest), "P003", scene=scene)
    segmentation = nodes["segmentation"]
    gtv = segmentation.GetSegmentation().GetSegmentIdBySegmentName("GTVp")
    volumes = [nodes["volumes"][s] for s in info["sequences"]]
    clinical = i3dinputs.clinicalValues(nodes["clinical"], text="age=")  # typed empty: the training median
    segments = segmentation.GetSegmentation().GetNumberOfSegments()
    exported = i3dpredict.exportPatient(tmp_path / "job", info, volumes, segmentation, gtv, clinical)
    assert "age" in exported["notGiven"] or "age" not in info["factors"]
    prediction = tmp_path / "job" / "prediction.csv"
    predicted = []
    panel.panel.start(i3dpredict.predictArguments(exported["manifest"], model, "cpu", None, prediction),
                      "Predicting...", lambda job: predicted.append(
                          i3dpredict.loadPrediction(prediction, model, info, exported, scene))
                      or i3dpredict.summary(predicted[-1]), scene=scene)
    spin(300)
    assert panel.panel.result.state == "finished", panel.label.text
    [fromJob] = predicted
    inProcess = i3dpredict.predict(model, volumes, segmentation, gtv, clinical, device="cpu", scene=scene)
    assert fromJob["probability"] == pytest.approx(inProcess["probability"], abs=1e-5)
    assert 0.0 <= fromJob["probability"] <= 1.0 and fromJob["predicted"] == int(fromJob["probability"] >=
                                                                               info["cutoff"])
    table = mrml.table_node_to_dataframe(scene.GetNodeByID(fromJob["tableNodeID"]))
    assert float(table["probability"].iloc[0]) == pytest.approx(fromJob["probability"])
    assert panel.label.text.startswith("DLR (MR + CF): probability of response")
    assert segmentation.GetSegmentation().GetNumberOfSegments() == segments  # the inputs are only read


# --- what the I3D module reads from its widgets (RadiotherapyResponseLib.i3dinputs) ----------------------------------

def test_typed_numbers_factors_and_clinical_values():
    from rtresponse.errors import InputError
    from RadiotherapyResponseLib import i3dinputs

    assert i3dinputs.parseNumbers("96 96 24", "input size", integer=True) == (96, 96, 24)
    assert i3dinputs.parseNumbers("1.5, 1.5 x 3", "voxel size") == (1.5, 1.5, 3.0)
    for bad in ("96 96", "96 96 0", "a b c"):
        with pytest.raises(InputError, match="input size"):
            i3dinputs.parseNumbers(bad, "input size", integer=True)
    with pytest.raises(InputError, match="whole numbers"):
        i3dinputs.parseNumbers("96 96 2.5", "input size", integer=True)
    assert i3dinputs.factorNames("age HPV, clin_T_stage;age") == ["age", "HPV", "T_stage"]
    assert i3dinputs.parseClinicalValues("age=63; HPV=positive;clin_T_stage=3\nsex=") == {
        "age": 63.0, "HPV": "positive", "T_stage": 3.0, "sex": None}
    with pytest.raises(InputError, match="factor=value"):
        i3dinputs.parseClinicalValues("age 63")


def test_clinical_inputs_follow_the_model():
    from rtresponse.errors import InputError
    from RadiotherapyResponseLib import i3dinputs

    info = {"factors": ["age", "HPV", "T_stage"], "columns": ["age", "HPV=positive", "T_stage"],
            "medians": {"age": 60.0}}
    inputs, notGiven, unknown = i3dinputs.clinicalInputs(info, {"HPV": "unclear", "T_stage": 3, "outcome": 1})
    assert inputs == {"age": None, "HPV": "unclear", "T_stage": 3.0}
    assert notGiven == ["age"] and unknown == {"HPV": "unclear"}
    with pytest.raises(InputError, match="'T_stage' .*no fill value"):
        i3dinputs.clinicalInputs(info, {"age": 50})
    with pytest.raises(InputError, match="is a number in this model"):
        i3dinputs.clinicalInputs(info, {"T_stage": "T3"})
    with pytest.raises(InputError, match="none was given"):
        i3dinputs.clinicalInputs(info, {"other": 1})
    assert i3dinputs.clinicalInputs({"factors": [], "columns": [], "medians": {}}, None) == ({}, [], {})


def test_train_and_predict_problems_name_what_is_missing(tmp_path):
    from types import SimpleNamespace

    from RadiotherapyResponseLib import i3dinputs

    p = SimpleNamespace(i3dManifest="c.csv", i3dSequences="T1 T2", i3dMask="GTVp", i3dClinicalFactors="age",
                        i3dImageOnly=False, i3dWeights="imagenet", i3dWeightsFile="", i3dShape="96 96 24",
                        i3dSpacing="1.5 1.5 3", i3dTrials=0, i3dMaxEpochs=300)
    cohort = {"patients": 30, "images": ["T1", "T2"], "masks": ["GTVp"], "clinical": ["age", "sex"],
              "outcomes": ["response"]}
    assert i3dinputs.trainProblem(p, cohort) is None
    assert i3dinputs.trainSummary(p, cohort).startswith("30 patient(s): T1 + T2 around GTVp, 96 x 96 x 24 voxels")
    for change, words in (({"i3dSequences": "T1 FLAIR"}, "no image FLAIR"), ({"i3dMask": "GTVn"}, "no mask GTVn"),
                          ({"i3dClinicalFactors": "stage"}, "no clinical factor stage"),
                          ({"i3dSequences": "A B C D"}, "At most 3"), ({"i3dShape": "96 96"}, "input size must be 3"),
                          ({"i3dWeights": "file"}, "weights file")):
        assert words in i3dinputs.trainProblem(SimpleNamespace(**{**vars(p), **change}), cohort)
    assert "no outcome_ column" in i3dinputs.trainProblem(p, {**cohort, "outcomes": []})
    assert i3dinputs.trainProblem(p, "The manifest cannot be used: x") == "The manifest cannot be used: x"
    assert "installed when you press Train" in i3dinputs.trainSummary(p, None)

    model = tmp_path / "dlr.pt"
    model.write_bytes(b"x")
    q = SimpleNamespace(i3dModelPath=str(model), i3dVolume1=None, i3dVolume2=None, i3dVolume3=None,
                        i3dSegmentation=None, i3dSegmentId="", i3dClinicalTable=None, i3dClinicalValues="")
    info = {"sequences": ["T1", "T2"], "mask": "GTVp", "factors": ["age"]}
    assert i3dinputs.predictProblem(q, info) == "Select the patient's T1 volume."
    assert "Choose an I3D model file" in i3dinputs.predictProblem(SimpleNamespace(**{**vars(q), "i3dModelPath": ""}),
                                                                  info)
