"""PyRadiomics' own baseline, reproduced through the MRML bridge.

For each of the five real cases and every settings column of PyRadiomics' baseline CSVs, the
image becomes a volume node and the label a segment; ``extract_from_nodes`` must then give the
baseline's values: relative 1e-6 for every feature class except shape, 2e-3 for shape
(PyRadiomics' own shape code has changed slightly since the baseline was recorded).
"""

from __future__ import annotations

import ast
import csv
from collections import defaultdict

import numpy as np
import pytest

pytest.importorskip("radiomics")
sitk = pytest.importorskip("SimpleITK")
from rtresponse import mrml  # noqa: E402
from rtresponse.features.handcrafted import extract_from_nodes  # noqa: E402

CLASSES = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
TOLERANCE = {"shape": 2e-3}
DEFAULT_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def cases(pyradiomics_cases):
    return pyradiomics_cases


def _baseline(folder):
    """{test: {(config): {class: {feature: value}}}} from the baseline CSVs."""
    tests = defaultdict(lambda: defaultdict(dict))
    for feature_class in CLASSES:
        with open(folder / "data" / "baseline" / f"baseline_{feature_class}.csv", newline="") as stream:
            rows = list(csv.reader(stream))
        header, body = rows[0], {row[0]: row[1:] for row in rows[1:]}
        for column, test in enumerate(header[1:]):
            case = body["diagnostics_Configuration_TestCase"][column]
            image_types = body["diagnostics_Configuration_EnabledImageTypes"][column]
            settings = body["diagnostics_Configuration_Settings"][column]
            values = {name: float(v[column]) for name, v in body.items()
                      if not name.startswith("diagnostics_") and v[column] != ""}
            tests[test][(case, image_types, settings)][feature_class] = values
    return tests


def _test_ids():
    # The baseline's column names are fixed by PyRadiomics' data: 5 cases x 8 settings.
    cases_ = ("brain1", "brain2", "breast1", "lung1", "lung2")
    variants = ("", "_2d", "_FBN", "_combined", "_flatRegion", "_normalization", "_resampling", "_resegmentation")
    return [case + variant for case in cases_ for variant in variants]


@pytest.fixture(scope="module")
def baseline(cases):
    return _baseline(cases)


def test_baseline_covers_every_case_and_settings_column(baseline):
    assert sorted(baseline) == sorted(_test_ids())


@pytest.mark.parametrize("test", _test_ids())
def test_extract_from_nodes_reproduces_the_baseline(cases, baseline, scene, test):
    checked = 0
    for (case, image_types, settings), classes in baseline[test].items():
        image = sitk.ReadImage(str(cases / "data" / f"{case}_image.nrrd"))
        label = sitk.ReadImage(str(cases / "data" / f"{case}_label.nrrd"))
        volume = mrml.image_to_volume_node(image, case, scene)
        segmentation = mrml.new_segmentation_node(f"{case} label", volume, scene)
        segment_id = mrml.mask_to_segment(label, segmentation, "tumour", volume)
        params = {"imageType": ast.literal_eval(image_types), "setting": ast.literal_eval(settings),
                  "featureClass": {name: None for name in classes}}
        features = extract_from_nodes(volume, segmentation, segment_id, params)
        for feature_class, expected in classes.items():
            tolerance = TOLERANCE.get(feature_class, DEFAULT_TOLERANCE)
            for name, value in expected.items():
                assert name in features.index, f"{test}: {name} missing"
                assert np.isclose(features[name], value, rtol=tolerance, atol=1e-12), \
                    f"{test}: {name} = {features[name]!r}, baseline {value!r}"
                checked += 1
    assert checked >= 20  # every settings column holds at least one whole feature class
