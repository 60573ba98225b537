"""Treatment recommendation and its judgement against the NPC paper (Table 3 and its text)."""

import itertools

import pytest

from rtresponse.errors import InputError
from rtresponse.recommendation import (judge, reasoning, recommend, regimen_name, situations, summarize)

R, N = 1, 0  # residual, non-residual

# The complete truth table: (CCRT pred, IC+CCRT pred, received, actual) -> (model, physician).
# Situations 1-11 are the paper's Table 3 rows (verdicts from its footnote); the other five
# follow its text (cited beside each).
TRUTH_TABLE = {
    (R, N, "IC+CCRT", N): ("correct", "correct"),            # situation 1
    (N, N, "IC+CCRT", N): ("correct", "wrong"),              # 2: over-treatment
    (N, R, "IC+CCRT", N): ("wrong", "correct"),              # 3
    (R, R, "IC+CCRT", N): ("wrong", "correct"),              # 4
    (R, R, "IC+CCRT", R): ("undetermined", "undetermined"),  # 5
    (N, N, "CCRT", N): ("correct", "correct"),               # 6
    (N, R, "CCRT", N): ("correct", "correct"),               # 7
    (R, R, "CCRT", N): ("wrong", "correct"),                 # 8
    (N, N, "CCRT", R): ("wrong", "undetermined"),            # 9
    (R, N, "CCRT", R): ("correct", "wrong"),                 # 10: under-treatment
    (R, R, "CCRT", R): ("undetermined", "undetermined"),     # 11
    # "if the physician chooses IC + CCRT, and the actual effect is residual tumor, the model is
    # correct, and the physician is wrong" (model said CCRT suffices, its IC+CCRT prediction held)
    (N, R, "IC+CCRT", R): ("correct", "wrong"),
    # "only when the prediction results of the model are consistent with the actual results ...
    # can the model regimen be judged as correct"; residual after the received regimen: undetermined
    (N, N, "IC+CCRT", R): ("wrong", "undetermined"),
    # "If the physician chooses IC + CCRT and the actual effect is residual tumor, the model
    # prediction error will lead to a recommendation error and it is impossible to judge ..."
    (R, N, "IC+CCRT", R): ("wrong", "undetermined"),
    # "if the physician chooses CCRT and the actual effect is also non-residual tumor, the
    # physician's decision is judged to be accurate, and the model recommendation is wrong"
    (R, N, "CCRT", N): ("wrong", "correct"),
    # the model's CCRT prediction failed; residual after CCRT: as situation 9
    (N, R, "CCRT", R): ("wrong", "undetermined"),
}

# Table 3 of the paper: situation -> (case tuple, count)
TABLE_3 = [((R, N, "IC+CCRT", N), 9), ((N, N, "IC+CCRT", N), 17), ((N, R, "IC+CCRT", N), 2),
           ((R, R, "IC+CCRT", N), 4), ((R, R, "IC+CCRT", R), 11), ((N, N, "CCRT", N), 21),
           ((N, R, "CCRT", N), 2), ((R, R, "CCRT", N), 1), ((N, N, "CCRT", R), 4),
           ((R, N, "CCRT", R), 9), ((R, R, "CCRT", R), 5)]


def test_recommend_is_the_lightest_regimen_predicted_to_clear():
    assert recommend(False, False) == "CCRT"
    assert recommend(False, True) == "CCRT"
    assert recommend(True, False) == "IC+CCRT"
    assert recommend(True, True) == "IBT"
    assert "IBT" in reasoning(True, True) and "spared" in reasoning(False, True)


def test_truth_table_covers_all_sixteen_combinations():
    combinations = set(itertools.product((R, N), (R, N), ("CCRT", "IC+CCRT"), (R, N)))
    assert set(TRUTH_TABLE) == combinations
    for case, verdicts in TRUTH_TABLE.items():
        assert judge(*case) == verdicts, case


def test_summarize_reproduces_the_papers_tallies():
    cases = [case for case, count in TABLE_3 for _ in range(count)]
    assert len(cases) == 85
    summary = summarize(cases)
    assert summary.physician == {"correct": 39, "wrong": 26, "undetermined": 20}
    assert summary.model == {"correct": 58, "wrong": 11, "undetermined": 16}
    assert summary.physician_rate == pytest.approx(0.6000, abs=5e-5)
    assert summary.model_rate == pytest.approx(0.8406, abs=5e-5)
    assert round(summary.p_value, 3) == 0.002  # the paper's P = 0.002 (Pearson, no correction)
    assert summarize(cases, yates=True).p_value > summary.p_value


def test_situations_table_has_the_papers_rows():
    cases = [case for case, count in TABLE_3 for _ in range(count)]
    table = situations(cases)
    assert len(table) == 11 and table["cases"].sum() == 85
    first = table.iloc[0]
    assert first["physician_decision"].startswith("IC+CCRT") and table.index[0] == 1
    row = table[(table.recommendation == "CCRT (non-residual)") & (table.physician_decision == "IC+CCRT (non-residual)")
                & (table.ic_ccrt_model == "non-residual")]
    assert row["cases"].item() == 17 and row["model_verdict"].item() == "correct"


def test_inputs_in_words_and_bad_values():
    assert regimen_name("ic_ccrt") == "IC+CCRT" and regimen_name(" ccrt ") == "CCRT"
    assert judge("residual", "non-residual", "IC + CCRT", "0") == ("correct", "correct")
    with pytest.raises(InputError, match="unknown regimen 'RT alone'"):
        judge(1, 0, "RT alone", 0)
    with pytest.raises(InputError, match="actual outcome"):
        judge(1, 0, "CCRT", 2)
    with pytest.raises(InputError, match="4 values"):
        summarize([(1, 0, "CCRT")])
