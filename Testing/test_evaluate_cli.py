"""`rtresponse evaluate` / `predict` end to end on a small planted table, and model files that load safely."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("skops")
from conftest import check_margin  # noqa: E402
from rtresponse.cli import main  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.models.persistence import load_model, save_model  # noqa: E402


@pytest.fixture
def planted_study(tmp_path):
    """A manifest with an outcome and a feature table whose f1 carries the outcome."""
    rng = np.random.default_rng(0)
    n = 60
    ids = [f"P{i:03d}" for i in range(n)]
    f = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)], index=pd.Index(ids, name="patient_id"))
    y = (f["f1"] + rng.normal(0, 0.5, n) > 0).astype(int)
    f["status"] = "ok"
    f.iloc[0, -1] = "mask is empty"  # a failed extraction is left out, not fatal
    f.to_csv(tmp_path / "features.csv")
    stage = rng.choice(["II", "III", None], n)
    pd.DataFrame({"patient_id": ids, "clin_stage": stage, "clin_age": rng.integers(40, 80, n),
                  "outcome_response": y.to_numpy()}).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path


@pytest.mark.parametrize("protocol", ["bootstrap", "split"])
def test_evaluate_writes_results_figures_and_a_model_that_predicts(planted_study, protocol, capsys):
    out = planted_study / f"out-{protocol}"
    code = main(["evaluate", "--features", str(planted_study / "features.csv"), "--manifest",
                 str(planted_study / "manifest.csv"), "--outcome", "response", "--clinical", "stage,age", "--combine",
                 "--protocol", protocol, "--selectors", "wilcoxon", "--classifiers", "lda", "--k", "3",
                 "--n-bootstrap", "15", "--no-forward", "--out", str(out)])
    assert code == 0
    results = pd.read_csv(out / "results.csv")
    assert list(results["feature_set"]) == ["features", "clinical", "features+clinical"]
    metric = "auc632plus" if protocol == "bootstrap" else "auc"
    by_set = results.set_index("feature_set")[metric]
    with capsys.disabled():  # the margin line reaches the log, not capsys
        check_margin(f"{protocol} {metric} of the planted features", by_set["features"], 0.75)
    assert by_set["clinical"] < by_set["features"]
    assert (out / "roc.png").is_file() and (out / "model.skops").is_file()
    roc = pd.read_csv(out / "roc.csv")  # the figure's curves as points (label, fpr, tpr)
    assert list(roc.columns) == ["label", "fpr", "tpr"] and roc["fpr"].between(0, 1).all()
    for _label, curve in roc.groupby("label"):
        assert curve["fpr"].iloc[0] == 0 and curve["tpr"].iloc[-1] == 1 and curve["fpr"].is_monotonic_increasing
    if protocol == "split":
        assert {"cv_auc", "cv_auc_sd", "chosen", "chosen_in_set", "auc_low", "auc_high", "brier"} <= set(
            results.columns)
        assert results["chosen"].sum() == 1 and results["chosen_in_set"].sum() == 3
        comparisons = pd.read_csv(out / "comparisons.csv")  # the three chosen models, pairwise
        assert len(comparisons) == 3 and {"delong_p", "nri", "idi"} <= set(comparisons.columns)
        split = pd.read_csv(out / "split.csv", index_col="patient_id")["set"]
        assert split.value_counts()["test"] == 20  # a third of the 59 kept patients
        importance = pd.read_csv(out / "shapley.csv", index_col="input")["mean_abs_shapley"]
        assert importance.index[0] == "f1"  # the planted feature matters most to the best model
    else:
        assert (out / "grid_features.png").is_file()
    assert "left out P000" in capsys.readouterr().err

    predictions = planted_study / "predictions.csv"
    assert main(["predict", "--model", str(out / "model.skops"), "--features", str(planted_study / "features.csv"),
                 "--manifest", str(planted_study / "manifest.csv"), "--out", str(predictions)]) == 0
    table = pd.read_csv(predictions, index_col="patient_id")
    assert table["probability"].between(0, 1).all() and set(table["predicted_positive"]) <= {0, 1}


def test_unknown_outcome_is_one_clear_error(planted_study, capsys):
    code = main(["evaluate", "--features", str(planted_study / "features.csv"), "--manifest",
                 str(planted_study / "manifest.csv"), "--outcome", "survival", "--out", str(planted_study / "o")])
    assert code == 2
    assert "no column outcome_survival" in capsys.readouterr().err


def test_model_files_refuse_untrusted_types_and_non_models(tmp_path):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    path = save_model(tmp_path / "m.skops", model, ["x"], "response", 1, 0.5)
    assert load_model(path)["features"] == ["x"]
    import skops.io as sio

    sio.dump({"format": "rtresponse-model-1", "model": pd.Timestamp("2020-01-01")}, tmp_path / "odd.skops")
    with pytest.raises(InputError, match="does not trust"):
        load_model(tmp_path / "odd.skops")
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a model file"):
        load_model(tmp_path / "junk.skops")
    with pytest.raises(InputError, match=r"\.skops"):
        save_model(tmp_path / "m.pkl", model, ["x"], "response", 1, 0.5)


def test_split_protocol_saves_the_model_chosen_by_cross_validation(planted_study):
    """The saved model is the row with the best CV AUC (not the best test AUC), and its card says so."""
    import json

    from rtresponse.cohort import load_manifest
    from rtresponse.models.evaluate import evaluate, write_outputs
    from rtresponse.models.tables import read_feature_table

    cohort = load_manifest(planted_study / "manifest.csv", check_files=False)
    evaluation = evaluate({"features": read_feature_table(planted_study / "features.csv")},
                          cohort.outcomes()["response"], protocol="split", selectors=("wilcoxon",),
                          classifiers=("lda", "lr", "nb"), k=3)
    table = evaluation.results
    assert evaluation.best["cv_auc"] == table["cv_auc"].max()
    assert table.loc[table["chosen"], "classifier"].item() == evaluation.best["classifier"]
    estimator = evaluation.model.steps[-1][1]
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    expected = {"lda": "LinearDiscriminantAnalysis", "lr": "LogisticRegression", "nb": "GaussianNB"}
    assert type(final).__name__ == expected[evaluation.best["classifier"]]
    paths = write_outputs(evaluation, planted_study / "out", "response", 1)
    card = json.loads(paths["model card"].read_text())
    assert card["probability_of"] == 1 and card["training_patients"] == 39 and len(card["training_data_sha256"]) == 64
    assert card["evaluation_settings"]["cv_folds"] == 5 and card["chosen_by"].startswith("mean AUC of stratified")
    assert card["model_parameters"] and card["result"]["cv_auc"] == evaluation.best["cv_auc"]
