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


# --- I3D training as a job (RadiotherapyResponseLib.i3djobs) -------------------------------------------------------

def test_i3d_train_arguments():
    from RadiotherapyResponseLib import i3djobs

    assert i3djobs.trainArguments("c.csv", "response", "out", positive="0", clinicalFactors=["age", "hpv"],
                                  weights="random", weightsFolder="w", shape=(32, 32, 8), spacing=(1.5, 1.5, 3),
                                  trials=2, maxEpochs=30, device="cpu", overwrite=True) == [
        "i3d", "train", "--manifest", "c.csv", "--outcome", "response", "--positive", "0", "--sequences", "T1", "T2",
        "--mask", "GTVp", "--clinical", "age", "hpv", "--weights", "random", "--weights-folder", "w",
        "--shape", "32", "32", "8", "--spacing", "1.5", "1.5", "3", "--trials", "2", "--epochs", "30",
        "--device", "cpu", "--seed", "0", "--overwrite", "--out", "out"]
    image_only = i3djobs.trainArguments("c.csv", "response", "out", clinicalFactors=["age"], imageOnly=True)
    assert "--no-clinical" in image_only and "--clinical" not in image_only and "--overwrite" not in image_only


def test_an_i3d_training_job_loads_its_results_and_loss_curves(panel, scene, tmp_path):
    pytest.importorskip("torch")
    from rtresponse import mrml
    from rtresponse.sampledata.synthetic import write_cohort
    from RadiotherapyResponseLib import i3djobs

    manifest = write_cohort(tmp_path / "cohort", n_patients=24, seed=0, size=(48, 48, 16))
    out = tmp_path / "i3d"
    loaded = []
    panel.panel.start(i3djobs.trainArguments(manifest, "response", out, weights="random", shape=(16, 16, 8),
                                             trials=0, maxEpochs=3, device="cpu"),
                      "Training...", lambda result: loaded.append(i3djobs.loadTraining(out, scene, "response",
                                                                                       "random"))
                      or i3djobs.summary(loaded[-1]), scene=scene)
    spin(400)
    assert panel.panel.result.state == "finished", panel.label.text + "\n" + "\n".join(panel.panel.logLines[-5:])
    [result] = loaded
    frame = mrml.table_node_to_dataframe(result["results"])
    assert list(frame["model"]) == ["DLR (MR)", "DLR (MR + CF)"]
    assert result["modelPath"] == out / "dlr_mr_cf.pt" and result["modelPath"].is_file()
    assert result["lossChart"].GetNumberOfPlotSeriesNodes() == 4
    assert "DLR (MR + CF): test AUC" in panel.label.text and "Random backbone weights" in panel.label.text
