"""A study's tables (rtresponse.models.study): the rules the Response Model module and the CLI share."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from rtresponse.errors import InputError
from rtresponse.models.study import (
    clinical_frame,
    feature_set_names,
    feature_sets,
    feature_table,
    parse_positive,
    patient_features,
)

IDS = pd.Index([f"P{i}" for i in range(6)], name="patient_id")


def features(columns=("f0", "f1"), seed=0, failed=()):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(len(IDS), len(columns))), index=IDS, columns=list(columns))
    frame["status"] = ["mask is empty" if pid in failed else "ok" for pid in IDS]
    return frame


def clinical():
    """As the module sees it: prefixed factors and outcomes, patient_id a column, ids as numbers in one row."""
    return pd.DataFrame({"patient_id": list(IDS), "clin_age": [50.0, 61, np.nan, 70, 45, 58],
                         "clin_stage": ["II", "III", None, "IV", "II", "III"],
                         "outcome_response": [0, 1, 0, 1, 0, 1]})


# --- feature sets ------------------------------------------------------------------------------------------------

def test_feature_set_names_each_table_then_clinical_then_all_combined():
    assert feature_set_names(["deep", "hand"], True) == ["deep", "hand", "clinical", "deep+hand+clinical"]
    assert feature_set_names(["deep"], False) == ["deep"]
    assert feature_set_names([], True) == ["clinical"]
    assert feature_set_names(["deep", "hand"], False, combine=False) == ["deep", "hand"]


def test_feature_sets_names_order_encoding_and_failed_rows():
    sets = feature_sets({"planted": features(failed={"P0"})}, clinical(), ["clin_age", "clin_stage"])
    assert list(sets) == ["planted", "clinical", "planted+clinical"]
    assert list(sets) == feature_set_names(["planted"], True)
    assert list(sets["planted"].columns) == ["f0", "f1"] and "P0" not in sets["planted"].index
    assert list(sets["clinical"].columns) == ["clin_age", "clin_stage=II", "clin_stage=III", "clin_stage=IV",
                                              "clin_stage=unknown"]
    assert sets["clinical"].loc["P2", "clin_stage=unknown"] == 1 and np.isnan(sets["clinical"].loc["P2", "clin_age"])
    combined = sets["planted+clinical"]
    assert list(combined.index) == list(IDS[1:])  # inner join: the failed patient is in no combined row
    assert list(combined.columns) == list(sets["planted"].columns) + list(sets["clinical"].columns)


def test_combined_set_prefixes_only_the_columns_two_sets_share():
    sets = feature_sets({"deep": features(("f", "g")), "hand": features(("f", "h"), seed=1)})
    assert list(sets) == ["deep", "hand", "deep+hand"]
    combined = sets["deep+hand"]
    assert list(combined.columns) == ["deep:f", "g", "hand:f", "h"]
    assert combined["hand:f"].equals(sets["hand"]["f"])
    assert list(feature_sets({"deep": features(), "hand": features(seed=1)}, combine=False)) == ["deep", "hand"]


def test_feature_sets_read_csv_paths_and_leave_inputs_alone(tmp_path):
    frame = features()
    before = frame.copy()
    frame.to_csv(tmp_path / "hand.csv")
    sets = feature_sets({"hand": tmp_path / "hand.csv", "deep": frame})
    assert list(sets) == ["hand", "deep", "hand+deep"]
    assert sets["hand"].index.tolist() == list(IDS) and sets["hand"].dtypes.eq(float).all()
    pd.testing.assert_frame_equal(frame, before)


def test_feature_table_refuses_outcomes_and_tables_with_nothing_usable(tmp_path):
    leaky = features().assign(outcome_response=[0, 1] * 3)
    with pytest.raises(InputError, match=r"node 'radiomics': feature table 'hand' has outcome column\(s\) "
                                         r"outcome_response: the outcome would be a feature"):
        feature_table(leaky, "hand", "radiomics")
    leaky.to_csv(tmp_path / "leaky.csv")
    with pytest.raises(InputError, match="is it the clinical table") as error:
        feature_table(tmp_path / "leaky.csv", "leaky")
    assert error.value.path == str(tmp_path / "leaky.csv")
    with pytest.raises(InputError, match="outcome column"):  # a text outcome is refused as an outcome, too
        feature_table(features().assign(outcome_response="CR"), "hand")
    with pytest.raises(InputError, match="feature table 'hand' has no row whose status is ok"):
        feature_table(features(failed=set(IDS)), "hand", "radiomics")
    with pytest.raises(InputError, match="feature table not found"):
        feature_table(tmp_path / "absent.csv", "absent")


def test_feature_sets_errors():
    with pytest.raises(InputError, match=r"no clinical factor\(s\) clin_hpv in the clinical table \(it has "
                                         r"clin_age, clin_stage, outcome_response\)"):
        feature_sets({"planted": features()}, clinical(), ["clin_hpv"])
    with pytest.raises(InputError, match="'clinical' names the clinical factors"):
        feature_sets({"clinical": features()}, clinical(), ["clin_age"])
    with pytest.raises(InputError, match="choose at least one feature table or clinical factor"):
        feature_sets({}, clinical())
    with pytest.raises(InputError, match="no clinical table"):
        feature_sets({"planted": features()}, None, ["clin_age"])


def test_clinical_frame_indexes_by_patient_and_refuses_duplicates():
    raw = clinical()
    raw["patient_id"] = range(6)
    frame = clinical_frame(raw)
    assert frame.index.name == "patient_id" and frame.index.tolist() == [str(i) for i in range(6)]
    assert "patient_id" in raw.columns  # the input is left as it is
    assert clinical_frame(frame).equals(frame)  # already indexed: unchanged
    with pytest.raises(InputError, match="node 'ward': the clinical table needs a patient_id column"):
        clinical_frame(raw.drop(columns="patient_id"), "ward")
    with pytest.raises(InputError, match="patient P1 has more than one row"):
        clinical_frame(pd.concat([clinical(), clinical().iloc[[1]]]))


# --- the positive class ------------------------------------------------------------------------------------------

def test_parse_positive_follows_the_outcome_type():
    numeric = pd.Series([0, 1, 1], name="response")
    assert parse_positive("1", numeric) == 1 and isinstance(parse_positive("1", numeric), int)
    assert parse_positive(" 2.0 ", numeric) == 2.0 and isinstance(parse_positive("2.0", numeric), float)
    assert parse_positive("1e0", numeric) == 1.0
    assert parse_positive("1", pd.Series([0.0, np.nan, 1.0])) == 1  # missing values make it float: still numeric
    assert parse_positive("", numeric) is None and parse_positive(None, numeric) is None
    text = pd.Series(["CR", "non-CR"], name="response")
    assert parse_positive(" non-CR ", text) == "non-CR"
    assert parse_positive("True", pd.Series([True, False])) == "True"  # booleans are not numbers
    with pytest.raises(InputError, match="the positive class 'yes' is not a number, but outcome 'response' is "
                                         "numeric"):
        parse_positive("yes", numeric)


# --- a new patient's inputs --------------------------------------------------------------------------------------

MODEL = ["f0", "clin_age", "clin_stage=II", "clin_stage=IV"]


def test_patient_features_encode_clinical_factors_and_fill_absent_categories():
    new = features().iloc[[0, 1]]
    inputs = patient_features(MODEL, new, clinical().iloc[[0, 1]])  # stages II and III: no stage IV column
    assert list(inputs.index) == ["P0", "P1"]
    assert inputs.loc[:, MODEL].to_dict("list") == {
        "f0": new["f0"].tolist(), "clin_age": [50.0, 61.0], "clin_stage=II": [1.0, 0.0], "clin_stage=IV": [0.0, 0.0]}
    assert patient_features(["f0", "f1"], new).columns.tolist() == ["f0", "f1"]  # no clinical factor: none needed


def test_patient_features_of_one_patients_segments_repeat_its_clinical_row():
    segments = features().iloc[[0, 1]].drop(columns="status").set_index(pd.Index(["GTVp", "GTVn"], name="segment"))
    inputs = patient_features(MODEL, segments, clinical().iloc[[3]])
    assert list(inputs.index) == ["GTVp", "GTVn"]
    assert inputs["clin_stage=IV"].tolist() == [1.0, 1.0] and inputs["clin_stage=II"].tolist() == [0.0, 0.0]
    with pytest.raises(InputError, match="node 'cohort': the features are not those of the table's patients and the "
                                         "clinical table has 6 rows"):
        patient_features(MODEL, segments, clinical(), clinical_label="cohort")


def test_patient_features_errors():
    new = features().iloc[[0, 1]]
    with pytest.raises(InputError, match=r"no clinical row for patient\(s\) P1"):
        patient_features(MODEL, new, clinical().iloc[[0, 2]])
    with pytest.raises(InputError, match=r"the model uses clinical factors \(clin_age, clin_stage=II"):
        patient_features(MODEL, new)
    with pytest.raises(InputError, match=r"node 'P0 features': the features lack 1 column\(s\) the model needs, "
                                         "e.g. f9"):
        patient_features(["f0", "f9"], new, label="P0 features")
    with pytest.raises(InputError, match="no row whose status is ok"):
        patient_features(MODEL, features(failed=set(IDS)), clinical())


# --- the CLI applies the same rules ------------------------------------------------------------------------------

def test_cli_feature_sets_follow_the_same_rules(tmp_path, capsys):
    from rtresponse.cli import _feature_sets, main
    from rtresponse.cohort import load_manifest

    features(("f", "g")).to_csv(tmp_path / "deep.csv")
    features(("f", "h"), seed=1).to_csv(tmp_path / "hand.csv")
    manifest = clinical().rename(columns=lambda c: {"clin_age": "clin_age_years"}.get(c, c))
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    cohort = load_manifest(tmp_path / "manifest.csv", check_files=False)
    args = argparse.Namespace(features=[tmp_path / "deep.csv", tmp_path / "hand.csv"], clinical="stage",
                              combine=True)
    sets = _feature_sets(args, cohort)
    assert list(sets) == ["deep", "hand", "clinical", "deep+hand+clinical"]
    assert list(sets["deep+hand+clinical"].columns)[:4] == ["deep:f", "g", "hand:f", "h"]

    features().assign(outcome_response=[0, 1] * 3).to_csv(tmp_path / "leaky.csv")
    code = main(["evaluate", "--features", str(tmp_path / "leaky.csv"), "--manifest", str(tmp_path / "manifest.csv"),
                 "--outcome", "response", "--out", str(tmp_path / "out")])
    assert code == 2 and "feature table 'leaky' has outcome column(s) outcome_response" in capsys.readouterr().err
    args = argparse.Namespace(features=None, clinical="hpv", combine=False)
    with pytest.raises(InputError, match=r"no clinical factor\(s\) hpv in the clinical table \(it has "
                                         r"age_years, stage\)"):
        _feature_sets(args, cohort)
