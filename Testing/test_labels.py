"""Tumour-regression labels (Tanaka et al.): rate per treatment day, median threshold, small GTVs excluded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rtresponse.cohort import load_manifest
from rtresponse.errors import InputError
from rtresponse.labels import label_cohort, mask_volume_cc, regression_rate


def test_regression_rate_is_the_papers_formula():
    # 30.3 % in 15 days is the paper's median regressing GTVp: 2.02 %/day
    assert regression_rate(10.0, 6.97, 15) == pytest.approx(0.0202)
    np.testing.assert_allclose(regression_rate([10.0, 8.0], [10.0, 9.0], [10, 5]), [0.0, -0.025])
    with pytest.raises(InputError, match="initial volume"):
        regression_rate(0.0, 1.0, 10)
    with pytest.raises(InputError, match="treatment days"):
        regression_rate(1.0, 1.0, 0)


def test_mask_volume_uses_the_voxel_spacing():
    import SimpleITK as sitk

    mask = sitk.GetImageFromArray(np.ones((4, 10, 10), np.uint8))
    mask.SetSpacing((0.5, 0.5, 2.0))
    assert mask_volume_cc(mask) == pytest.approx(400 * 0.5 / 1000)


def test_cohort_labels_split_at_the_median_and_exclude_small_gtvs(synthetic_cohort, tmp_path):
    from conftest import copy_cohort

    manifest = copy_cohort(synthetic_cohort, tmp_path / "cohort")
    table = pd.read_csv(manifest, dtype=str)
    table.loc[0, "clin_treatment_days"] = ""
    table.to_csv(manifest, index=False)
    cohort = load_manifest(manifest)
    labels = label_cohort(cohort, min_volume_cc=0.0)
    first = cohort.patient_ids[0]
    assert "treatment_days" in labels.loc[first, "status"] and pd.isna(labels.loc[first, "regression"])
    ok = labels[labels["status"] == "ok"]
    assert len(ok) == len(cohort) - 1
    expected = (ok["initial_cc"] - ok["boost_cc"]) / ok["initial_cc"] / ok["treatment_days"]
    np.testing.assert_allclose(ok["rate"], expected)
    assert labels.attrs["threshold"] == pytest.approx(ok["rate"].median())
    assert (ok["regression"] == (ok["rate"] > ok["rate"].median()).astype(int)).all()
    cutoff = float(ok["initial_cc"].median())
    strict = label_cohort(cohort, min_volume_cc=cutoff, threshold=0.01)
    small = (strict["initial_cc"] < cutoff) & (strict.index != first)
    assert strict.loc[small, "status"].str.startswith("excluded: initial GTV").all() and small.any()
    assert strict.attrs["threshold"] == 0.01
    with pytest.raises(InputError, match="no column mask_GTVx"):
        label_cohort(cohort, initial="GTVx")


def test_cli_labels(synthetic_cohort, tmp_path, capsys):
    from rtresponse.cli import main

    out = tmp_path / "labels.csv"
    assert main(["labels", "--manifest", str(synthetic_cohort), "--min-volume-cc", "0", "--out", str(out)]) == 0
    written = pd.read_csv(out, index_col="patient_id")
    assert len(written) == len(pd.read_csv(synthetic_cohort)) and set(written["regression"]) == {0, 1}
    assert "threshold" in capsys.readouterr().out
