"""The study report: one self-contained report.html (every section, embedded PNG figures that decode, no external
URL), the figures as PNG and SVG, the tables as CSV, a failing patient isolated and listed, and study.mrb."""

from __future__ import annotations

import base64
import shutil
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("sklearn")
pytest.importorskip("radiomics")
pytest.importorskip("jinja2")

from rtresponse.studyrun.run import run_study  # noqa: E402
from rtresponse.studyrun.schema import load_study  # noqa: E402

BROKEN = "P005"
PNG = b"\x89PNG\r\n\x1a\n"


class _Parsed(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images, self.links, self.tags = set(), [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("href", "src", "action", "data", "poster"):
            if name in attrs and tag != "img":
                self.links.append(attrs[name])


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    from rtresponse.sampledata.synthetic import write_cohort

    folder = tmp_path_factory.mktemp("report")
    manifest = write_cohort(folder / "cohort", n_patients=16, seed=2)
    (manifest.parent / BROKEN / "CT.nrrd").write_bytes(b"not an image")  # one patient's CT is unreadable
    data = {"version": 1, "name": "report test", "description": "A small study of the report.",
            "cohort": {"manifest": str(manifest)},
            "labels": [{"name": "regression", "min_volume_cc": 0}],
            "features": [{"name": "hand", "kind": "handcrafted", "image": "CT", "mask": "GTVp"},
                         {"name": "clinical", "kind": "clinical", "factors": ["age", "HPV", "T_stage"]}],
            "analyses": [{"name": "grid", "outcome": "regression", "selectors": ["wilcoxon"],
                          "classifiers": ["nb", "knn"], "k": 4, "n_bootstrap": 20},
                         {"name": "split", "outcome": "response", "protocol": "split", "combine": True,
                          "selectors": ["wilcoxon"], "classifiers": ["lda", "lr"], "k": 4, "cv_folds": 3}],
            "report": {"dpi": 70}}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return run_study(load_study(path), folder / "out", log=lambda line: None, study_file=str(path))


def test_report_has_every_section_and_embeds_its_figures_without_network(study_run):
    html = study_run.report.read_text(encoding="utf-8")
    parsed = _Parsed()
    parsed.feed(html)
    assert {"overview", "cohort", "missingness", "failures", "analysis-grid", "analysis-split", "software", "steps",
            "tripod"} <= parsed.ids
    for figure in ("missingness", "grid_roc", "grid_calibration", "grid_grid", "grid_features", "split_roc",
                   "split_calibration", "split_grid", "split_shapley"):
        assert f"figure-{figure}" in parsed.ids, figure
    assert len(parsed.images) >= 9
    for src in parsed.images:  # every image is an embedded PNG that decodes
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG)
    assert all(link.startswith("#") for link in parsed.links), parsed.links  # in-page links only
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    assert "url(" not in html and "@import" not in html
    for text in ("Methods", "0.632+ bootstrap AUC over 20 draws", "DeLong", "Brier", "Model card", "TRIPOD+AI",
                 "scikit-learn", "Seeds"):
        assert text in html, text


def test_figures_as_png_and_svg_and_tables_as_csv(study_run):
    out = study_run.out
    for stem in ("grid_roc", "grid_grid", "split_calibration", "missingness"):
        assert (out / "figures" / f"{stem}.png").read_bytes().startswith(PNG)
        assert b"<svg" in (out / "figures" / f"{stem}.svg").read_bytes()[:2000]
    auc = pd.read_csv(out / "tables" / "grid_auc.csv")
    assert {"auc", "auc_low", "auc_high", "brier"} <= set(auc.columns)
    assert (auc["auc_low"] <= auc["auc"]).all() and (auc["auc"] <= auc["auc_high"]).all()
    characteristics = pd.read_csv(out / "tables" / "cohort_characteristics.csv")
    assert {"age", "HPV", "response", "regression"} <= set(characteristics["variable"])
    comparisons = pd.read_csv(out / "tables" / "split_comparisons.csv")
    assert {"delong_p", "nri", "idi"} <= set(comparisons.columns) and len(comparisons) == 3
    curves = pd.read_csv(out / "tables" / "grid_feature_curves.csv")
    assert list(curves[curves["feature_set"] == "hand"]["n_features"]) == [1, 2, 3, 4]


def test_a_failing_patient_is_listed_and_the_others_complete(study_run):
    failures = pd.read_csv(study_run.out / "tables" / "patient_failures.csv", dtype=str)
    broken = failures[failures["patient_id"] == BROKEN]
    assert "features hand" in set(broken["step"]) and "analysis grid" in set(broken["step"])
    assert set(failures["patient_id"]) == {BROKEN}
    results = pd.read_csv(study_run.out / "tables" / "grid_predictions.csv", dtype={"patient_id": str})
    assert BROKEN not in set(results["patient_id"]) and results["patient_id"].nunique() == 15
    assert study_run.count("computed") == 5 and study_run.count("not supported") == 0


def test_scene_holds_tables_charts_and_the_example_patient(study_run, tmp_path):
    pytest.importorskip("slicer")
    assert study_run.scene is not None and study_run.scene.is_file()
    with zipfile.ZipFile(study_run.scene) as bundle:
        names = bundle.namelist()
    scene_text = ""
    with zipfile.ZipFile(study_run.scene) as bundle:
        scene_text = bundle.read(next(n for n in names if n.endswith(".mrml"))).decode()
    for name in ("study cohort_characteristics", "grid results", "grid ROC", "split calibration", "P001 CT",
                 "P001 contours"):
        assert name in scene_text, name
    assert any(n.endswith(".seg.nrrd") for n in names) and any(n.endswith(".nrrd") for n in names)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_report_renders_in_headless_chromium(request):
    """A real browser draws every embedded image and every section (skipped without the Debian package chromium,
    unless $RTRESPONSE_REQUIRE_BROWSER is set, as CI does: then it fails)."""
    import browser_check

    action, why = browser_check.verdict(browser_check.unavailable(), browser_check.required())
    if action == "fail":
        pytest.fail(why)
    if action == "skip":
        pytest.skip(why)
    study_run = request.getfixturevalue("study_run")  # after the check: no study is run for a skip
    seen = browser_check.inspect(study_run.report)
    assert browser_check.problems(seen, browser_check.SECTIONS + ("analysis-grid", "analysis-split")) == []
    assert len(seen["images"]) >= 9 and all(image["width"] > 100 for image in seen["images"])
