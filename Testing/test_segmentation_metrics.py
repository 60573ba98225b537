"""Recurrence-volume metrics against MedPy, and points of origin on hand-built relapses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rtresponse.errors import InputError
from rtresponse.evaluation.segmentation import (case_metrics, compare, dice, origins_included, points_of_origin,
                                                precision, recall, summarize, volume_cc)


@pytest.mark.parametrize("seed", range(5))
def test_dice_recall_precision_equal_medpy_on_random_masks(seed):
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(seed)
    prediction = rng.random((9, 11, 13)) > rng.uniform(0.3, 0.9)
    reference = rng.random((9, 11, 13)) > rng.uniform(0.3, 0.9)
    assert dice(prediction, reference) == pytest.approx(binary.dc(prediction, reference), abs=1e-15)
    assert recall(prediction, reference) == pytest.approx(binary.recall(prediction, reference), abs=1e-15)
    assert precision(prediction, reference) == pytest.approx(binary.precision(prediction, reference), abs=1e-15)


def test_hand_computed_cases_and_empty_masks():
    p = np.zeros((4, 4, 4), bool)
    r = np.zeros((4, 4, 4), bool)
    p[0, 0, :3] = True  # 3 voxels
    r[0, 0, 1:] = True  # 3 voxels, 2 shared
    assert dice(p, r) == pytest.approx(4 / 6) and recall(p, r) == pytest.approx(2 / 3)
    assert precision(p, r) == pytest.approx(2 / 3)
    empty = np.zeros_like(p)
    assert dice(empty, empty) == recall(p, empty) == precision(empty, r) == 0.0
    with pytest.raises(InputError, match="shape"):
        dice(p, r[:2])


def test_volume_in_cc():
    mask = np.ones((10, 10, 10), bool)
    assert volume_cc(mask, (2.0, 0.9765, 0.9765)) == pytest.approx(1000 * 2 * 0.9765 ** 2 / 1000)
    with pytest.raises(InputError, match="spacing"):
        volume_cc(mask, (1.0, 1.0))


def test_points_of_origin_of_several_components():
    relapse = np.zeros((20, 20, 20), bool)
    relapse[2:7, 2:7, 2:7] = True  # cube: centre (4, 4, 4)
    relapse[10:15, 12:19, 10:13] = True  # box: centre (12, 15, 11)
    relapse[18, 0, 0:3] = True  # a line, too thin to survive erosion: its own centre
    origins = points_of_origin(relapse)
    np.testing.assert_allclose(sorted(map(tuple, origins)), [(4, 4, 4), (12, 15, 11), (18, 0, 1)])
    # an L-shaped component: the erosion moves the centre to where the tissue is thick
    l_shape = np.zeros((12, 12, 12), bool)
    l_shape[1:10, 1:10, 1:4] = True
    l_shape[1:4, 1:10, 1:10] = True
    [origin] = points_of_origin(l_shape)
    from scipy import ndimage

    eroded = ndimage.binary_erosion(l_shape, structure=np.ones((3, 3, 3)))
    np.testing.assert_allclose(origin, np.argwhere(eroded).mean(axis=0))


def test_origins_included_counts_each_component():
    relapse = np.zeros((20, 20, 20), bool)
    relapse[2:7, 2:7, 2:7] = True
    relapse[10:15, 12:19, 10:13] = True
    prediction = np.zeros_like(relapse)
    prediction[3:6, 3:6, 3:6] = True  # covers the first origin only
    assert origins_included(prediction, relapse) == (1, 2)
    prediction[12, 15, 11] = True
    assert origins_included(prediction, relapse) == (2, 2)
    assert origins_included(prediction, np.zeros_like(relapse)) == (0, 0)


def test_cohort_summary_and_comparison():
    from scipy import stats

    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        rows.append({"patient_id": f"P{i}", "method": "cnn", "dice": 0.5 + 0.05 * rng.normal(), "recall": 0.6,
                     "precision": 0.5, "volume_cc": 10 + rng.random(), "origins_included": 1, "origins_total": 1})
        rows.append({"patient_id": f"P{i}", "method": "gtv", "dice": 0.3 + 0.05 * rng.normal(), "recall": 0.5,
                     "precision": 0.3, "volume_cc": 30 + rng.random(), "origins_included": int(i % 2),
                     "origins_total": 1})
    cases = pd.DataFrame(rows)
    summary = summarize(cases)
    assert summary.loc["cnn", "patients"] == 8 and summary.loc["gtv", "origins_included"] == 4
    assert summary.loc["cnn", "dice_median"] == pytest.approx(cases[cases.method == "cnn"].dice.median())
    result = compare(cases, "cnn", "gtv")
    cnn, gtv = cases[cases.method == "cnn"], cases[cases.method == "gtv"]
    assert result.dice_p == pytest.approx(stats.ttest_rel(cnn.dice, gtv.dice).pvalue)
    assert result.origins_p == pytest.approx(stats.fisher_exact([[8, 0], [4, 4]]).pvalue)
    assert result.volume_p < 0.01
    row = case_metrics(np.ones((2, 2, 2)), np.ones((2, 2, 2)), (1, 1, 1))
    assert row["dice"] == 1.0 and row["origins_total"] == 1
