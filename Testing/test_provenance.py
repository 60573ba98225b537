"""Every output says how it was made (issue 15, items 3 and 5): sidecars, random weights, units, positive class."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rtresponse import provenance
from rtresponse.cli import main
from rtresponse.cli_deep import DEEP_OPTIONS, HANDCRAFTED_OPTIONS


def sidecar(path) -> dict:
    found = provenance.read(path)
    assert found is not None, f"no provenance beside {path}"
    return found


def assert_environment(record: dict) -> None:
    """Package versions and a date, in every record."""
    packages = record["environment"]["packages"]
    assert {"numpy", "pandas", "SimpleITK"} <= set(packages) and record["environment"]["rtresponse"]
    assert record["created"][:2] == "20" and "T" in record["created"]


@pytest.fixture
def small_torch(tmp_path, monkeypatch):
    """Weights only from this test's folders; two threads; the network cache emptied (as test_deep2d does)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("timm")
    from rtresponse.features import deep2d

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("RTRESPONSE_WEIGHTS", str(tmp_path / "weights"))
    deep2d.networks._cached.cache_clear()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield torch
    torch.set_num_threads(threads)


def test_deep2d_random_weights_say_random_in_the_csv_the_statistics_and_the_sidecars(synthetic_cohort, tmp_path,
                                                                                    small_torch, capsys):
    from rtresponse.models.tables import read_feature_table

    out = tmp_path / "deep.csv"
    assert main(["features", "--kind", "deep2d", "--model", "resnet18", "--weights", "random", "--seed", "7",
                 "--manifest", str(synthetic_cohort), "--image", "CT", "--mask", "GTVp", "--out", str(out),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr()
    assert "random (seed 7) weights" in printed.err and "staging" not in printed.out
    table = pd.read_csv(out, index_col="patient_id")
    assert (table["weights"] == "random (seed 7)").all() and list(table.columns[-2:]) == ["weights", "status"]
    statistics = pd.read_csv(tmp_path / "deep.zscore.csv", index_col=0)
    assert (statistics["weights"] == "random (seed 7)").all()
    record = sidecar(out)
    assert record["weights"] == {"weights": "random", "seed": 7}
    assert record["network"]["name"] == "resnet18" and record["device"] == "cpu"
    assert record["preprocessing"] == {"size_mm": 100.0, "level": 50.0, "width": 350.0, "context": "mask", "top_k": 1}
    assert record["settings"]["seed"] == 7 and not set(HANDCRAFTED_OPTIONS) & set(record["settings"])
    assert record["files"] == ["deep.csv", "deep.zscore.csv"] and record["command"][:2] == ["rtresponse", "features"]
    assert_environment(record)
    assert "torch" in record["environment"]["packages"]
    assert sidecar(tmp_path / "deep.zscore.csv")["weights"] == {"weights": "random", "seed": 7}
    # the weights column is no feature: the table reads as 1000 numeric features
    assert read_feature_table(out).shape == (len(table), 1000)

    # statistics made with other weights are used, with a warning naming both
    again = tmp_path / "again.csv"
    assert main(["features", "--kind", "deep2d", "--model", "resnet18", "--weights", "random", "--seed", "8",
                 "--manifest", str(synthetic_cohort), "--image", "CT", "--mask", "GTVp", "--out", str(again),
                 "--device", "cpu", "--zscore-from", str(tmp_path / "deep.zscore.csv")]) == 0
    assert "made with weights random (seed 7); these features with random (seed 8)" in capsys.readouterr().err
    used = sidecar(again)["zscore_from"]
    assert used["sha256"] == provenance.sha256_file(tmp_path / "deep.zscore.csv") and used["weights"] == [
        "random (seed 7)"]

    # models judged on such features say so, on stderr and in the results' record
    results = tmp_path / "results"
    assert main(["evaluate", "--features", str(out), "--manifest", str(synthetic_cohort), "--outcome", "response",
                 "--selectors", "wilcoxon", "--classifiers", "lda", "--k", "2", "--n-bootstrap", "5", "--no-forward",
                 "--out", str(results)]) == 0
    assert "holds features from random (seed 7) weights" in capsys.readouterr().err
    assert provenance.read(results)["random_weight_features"] == {str(out): ["random (seed 7)"]}


def test_deep2d_weights_file_is_named_with_its_sha256(synthetic_cohort, tmp_path, small_torch):
    from rtresponse.cohort import load_manifest
    from rtresponse.features import deep2d

    weights = tmp_path / "mine.pth"
    small_torch.save(deep2d.build("resnet18", weights=None, seed=3).state_dict(), weights)
    digest = provenance.sha256_file(weights)
    out = tmp_path / "deep.csv"
    assert main(["features", "--kind", "deep2d", "--model", "resnet18", "--weights", str(weights),
                 "--manifest", str(synthetic_cohort), "--image", "CT", "--mask", "GTVp", "--out", str(out),
                 "--device", "cpu"]) == 0
    record = sidecar(out)
    assert record["weights"] == {"weights": "file", "file": str(weights), "sha256": digest}
    assert "seed" not in record["settings"]  # seeds nothing with a weights file
    assert (pd.read_csv(out)["weights"] == f"file mine.pth sha256 {digest[:12]}").all()
    # library callers get the same record
    table = deep2d.extract_cohort(load_manifest(synthetic_cohort), "CT", "GTVp", model="resnet18", weights=weights,
                                  device="cpu")
    assert table.attrs["provenance"]["weights"]["sha256"] == digest
    assert_environment(table.attrs["provenance"])
    # ImageNet weights: the file actually found, its hash, and where it is published
    (tmp_path / "weights").mkdir()
    found = tmp_path / "weights" / "resnet18.pth"
    found.write_bytes(weights.read_bytes())
    imagenet = deep2d.weights_provenance("resnet18", "imagenet")
    assert imagenet["file"] == str(found) and imagenet["sha256"] == digest and imagenet["name"] == "imagenet"
    assert imagenet["published"]["file"] == "resnet18-f37072fd.pth"
    assert deep2d.extraction.weights_column(imagenet) == f"imagenet: file resnet18.pth sha256 {digest[:12]}"


def test_handcrafted_sidecar_has_the_pyradiomics_settings_and_no_deep_options(synthetic_cohort, tmp_path):
    out = tmp_path / "features.csv"
    assert main(["features", "--kind", "handcrafted", "--manifest", str(synthetic_cohort), "--image", "CT",
                 "--mask", "GTVp", "--out", str(out)]) == 0
    record = sidecar(out)
    assert not set(DEEP_OPTIONS) & set(record["settings"]) and "seed" not in record["settings"]
    assert record["settings"]["preset"] == "pyradiomics-default"
    pyradiomics = record["pyradiomics"]
    assert pyradiomics["preset"] == "pyradiomics-default" and len(pyradiomics["sha256"]) == 64
    assert pyradiomics["parameters"]["setting"]["binWidth"] == 25
    assert pyradiomics["parameters"]["setting"]["interpolator"] == "sitkBSpline"  # PyRadiomics' defaults too
    assert "glcm" in pyradiomics["parameters"]["featureClass"] and pyradiomics["version"]
    patients = record["diagnostics"]["patients"]
    assert set(patients) == set(pd.read_csv(out, dtype=str)["patient_id"])
    assert len(patients["P001"]["CT"]["image_sha1"]) == 40 and patients["P001"]["CT"]["mask_voxels"] > 0
    assert "PyRadiomics" in record["diagnostics"]["versions"]
    assert_environment(record)
    assert not [c for c in pd.read_csv(out).columns if c.startswith("diagnostics_")]

    params = tmp_path / "params.yaml"
    params.write_text("setting:\n  binWidth: 10\nfeatureClass:\n  firstorder:\n")
    out = tmp_path / "firstorder.csv"
    assert main(["features", "--kind", "handcrafted", "--manifest", str(synthetic_cohort), "--image", "CT",
                 "--mask", "GTVp", "--params", str(params), "--perturbations", "1", "--seed", "4",
                 "--out", str(out)]) == 0
    record = sidecar(out)
    assert record["pyradiomics"]["file"] == str(params) and "preset" not in record["settings"]
    assert record["pyradiomics"]["sha256"] == provenance.sha256_file(params)
    assert record["pyradiomics"]["parameters"]["setting"]["binWidth"] == 10
    assert record["perturbation"] == {"count": 1, "seed": 4} and record["settings"]["seed"] == 4


def test_labels_print_and_take_one_unit_and_warn_on_implausible_thresholds(synthetic_cohort, tmp_path, capsys):
    out = tmp_path / "labels.csv"
    assert main(["labels", "--manifest", str(synthetic_cohort), "--min-volume-cc", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    threshold = sidecar(out)["threshold"]
    assert threshold["unit"].startswith("fraction of the initial GTV volume per day")
    assert threshold["source"].startswith("median rate") and threshold["percent_per_day"] == pytest.approx(
        threshold["value"] * 100)
    assert f"threshold {threshold['value']:.4g} per day ({threshold['value'] * 100:.4g} %/day)" in printed.out
    assert printed.err == ""
    assert sidecar(out)["units"]["rate"] == threshold["unit"]

    assert main(["labels", "--manifest", str(synthetic_cohort), "--min-volume-cc", "0", "--threshold", "0.5",
                 "--out", str(tmp_path / "odd.csv")]) == 0
    printed = capsys.readouterr()
    [warning] = printed.err.splitlines()
    assert "implausible" in warning and "did you mean 0.005" in warning
    assert "threshold 0.5 per day (50 %/day), given" in printed.out
    assert sidecar(tmp_path / "odd.csv")["threshold"]["value"] == 0.5
    assert main(["labels", "--manifest", str(synthetic_cohort), "--threshold", "1.691", "--out",
                 str(tmp_path / "refused.csv")]) == 2
    assert "did you mean 0.01691" in capsys.readouterr().err


def test_predictions_name_the_positive_class_and_the_model_file(synthetic_cohort, tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    from rtresponse.models.persistence import load_model, save_model

    features = tmp_path / "features.csv"
    frame = pd.DataFrame({"patient_id": ["A", "B", "C", "D"], "x": [0.0, 1.0, 2.0, 3.0], "status": "ok"})
    frame.to_csv(features, index=False)
    model = LogisticRegression(C=0.5).fit(frame[["x"]], [0, 0, 1, 1])
    path = save_model(tmp_path / "model.skops", model, ["x"], "response", None, 0.5, "test model",
                      details={"training_data_sha256": "0" * 64})
    bundle = load_model(path)
    card = bundle["card"]
    assert bundle["positive"] == 1 and card["positive_class"] == 1 and card["outcome"] == "response"
    assert card["model_parameters"]["C"] == 0.5 and card["training_data_sha256"] == "0" * 64
    assert_environment(card)

    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(path), "--features", str(features), "--out", str(out)]) == 0
    table = pd.read_csv(out, index_col="patient_id")
    assert (table["positive_class"] == 1).all() and (table["outcome"] == "response").all()
    record = sidecar(out)
    assert record["model"]["sha256"] == provenance.sha256_file(path) and record["model"]["positive_class"] == 1
    assert "response = 1" in record["probability"]

    # a model file from before the class was always stored (positive None, no card): the default, 1
    old = tmp_path / "old.skops"
    sio.dump({key: value for key, value in bundle.items() if key != "card"} | {"positive": None}, old)
    assert load_model(old)["positive"] == 1
    assert main(["predict", "--model", str(old), "--features", str(features), "--out", str(tmp_path / "o.csv")]) == 0
    assert (pd.read_csv(tmp_path / "o.csv")["positive_class"] == 1).all()


def test_sample_data_folder_has_its_provenance_with_only_the_options_used(tmp_path):
    out = tmp_path / "cohort"
    assert main(["sample-data", "--kind", "synthetic", "--patients", "2", "--seed", "5", "--out", str(out)]) == 0
    record = sidecar(out)
    assert (out / "provenance.json").is_file() and "manifest.csv" in record["files"]
    assert record["settings"]["seed"] == 5 and not {"sdist", "cache"} & set(record["settings"])
    assert_environment(record)


def test_library_tables_carry_their_record(synthetic_cohort):
    from rtresponse.cohort import load_manifest
    from rtresponse.features import handcrafted
    from rtresponse.labels import label_cohort

    cohort = load_manifest(synthetic_cohort)
    table = handcrafted.extract_cohort(cohort, image="CT", mask="GTVp",
                                       settings={"setting": {"binWidth": 50}, "featureClass": {"shape": None}})
    record = table.attrs["provenance"]
    assert record["pyradiomics"]["source"] == "dict"
    assert record["pyradiomics"]["parameters"]["setting"]["binWidth"] == 50
    assert record["kind"] == "handcrafted" and record["settings"]["image"] == ["CT"]
    json.dumps(record)  # plain JSON, for a sidecar or a node attribute
    labels = label_cohort(cohort, min_volume_cc=0.0, threshold=0.02)
    assert labels.attrs["provenance"]["threshold"]["source"] == "given"
    assert labels.attrs["provenance"]["threshold"]["percent_per_day"] == pytest.approx(2.0)
