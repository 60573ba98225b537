"""Feature-table assembly and the corrected resampled t-test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("scipy")
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.evaluation.resampled_ttest import bootstrap_sizes, corrected_resampled_ttest  # noqa: E402
from rtresponse.models.tables import assemble, encode_clinical, read_feature_table  # noqa: E402


def test_feature_table_drops_failed_rows_and_refuses_text(tmp_path):
    path = tmp_path / "f.csv"
    pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "a": [1.0, 2.0, np.nan], "status": ["ok", "ok", "mask is empty"]}
                 ).to_csv(path, index=False)
    table = read_feature_table(path)
    assert list(table.index) == ["P1", "P2"] and list(table.columns) == ["a"]
    with pytest.raises(InputError, match="non-numeric feature column"):
        read_feature_table(pd.DataFrame({"patient_id": ["P1"], "stage": ["III"]}))
    with pytest.raises(InputError, match="patient_id"):
        read_feature_table(pd.DataFrame({"a": [1.0]}))


def test_clinical_categories_get_an_unknown_level_and_numbers_stay_missing():
    clinical = pd.DataFrame({"age": [60, np.nan, 70], "HPV": ["positive", None, "negative"]},
                            index=pd.Index(["P1", "P2", "P3"], name="patient_id"))
    encoded = encode_clinical(clinical)
    assert sorted(encoded.columns) == ["HPV=negative", "HPV=positive", "HPV=unknown", "age"]
    assert encoded.loc["P2", "HPV=unknown"] == 1 and np.isnan(encoded.loc["P2", "age"])


def test_assemble_joins_prefixes_clashes_and_reports_dropped_patients():
    index = pd.Index(["P1", "P2", "P3", "P4"], name="patient_id")
    deep = pd.DataFrame({"f": [1.0, 2, 3, 4], "g": [0.0, 1, 0, 1]}, index=index)
    hand = pd.DataFrame({"f": [5.0, 6, 7]}, index=index[:3])
    outcome = pd.Series(["CR", "non-CR", None, "CR"], index=index, name="response")
    data = assemble({"deep": deep, "hand": hand}, outcome, positive="non-CR")
    assert list(data.X.columns) == ["deep:f", "g", "hand:f"]
    assert list(data.X.index) == ["P1", "P2"] and data.y.tolist() == [0, 1]
    assert data.dropped == {"P3": "outcome missing", "P4": "no row in hand"}
    with pytest.raises(InputError, match="name the positive class"):
        assemble({"deep": deep}, outcome)
    with pytest.raises(InputError, match="two classes"):
        assemble({"deep": deep}, pd.Series([1, 1, 1, 1], index=index, name="r"))


def test_corrected_t_without_correction_equals_the_paired_t_test():
    from scipy.stats import ttest_rel

    rng = np.random.default_rng(0)
    a = rng.normal(0.75, 0.05, 50)
    b = a - rng.normal(0.02, 0.03, 50)
    naive = ttest_rel(a, b)
    tiny = corrected_resampled_ttest(a, b, n_train=1.0, n_test=1e-12)
    assert tiny.t == pytest.approx(naive.statistic, rel=1e-9)
    assert tiny.p == pytest.approx(naive.pvalue, rel=1e-6)
    corrected = corrected_resampled_ttest(a, b, n_train=63.2, n_test=36.8)
    # the correction can only make the test more conservative
    assert abs(corrected.t) < abs(naive.statistic) and corrected.p > naive.pvalue
    by_hand = (a - b).mean() / np.sqrt((1 / 50 + 36.8 / 63.2) * (a - b).var(ddof=1))
    assert corrected.t == pytest.approx(by_hand, rel=1e-12)
    one = corrected_resampled_ttest(a, b, 63.2, 36.8, one_tailed=True)
    assert one.p == pytest.approx(corrected.p / 2, rel=1e-9)


def test_bootstrap_sizes_are_about_632_and_368_percent():
    from rtresponse.evaluation.bootstrap import bootstrap_indices

    y = np.r_[np.zeros(50), np.ones(50)].astype(int)
    n_train, n_test = bootstrap_sizes(bootstrap_indices(y, 300, random_state=0))
    assert n_train + n_test == pytest.approx(100)
    assert 60 < n_train < 66
