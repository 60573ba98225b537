"""`rtresponse study init|check|run`: the papers' protocols as valid study files, schema errors naming the field,
steps cached by their inputs and settings (a re-run recomputes nothing, a changed setting only what depends on
it, an interrupted run resumes), and Tanaka's protocol from `study init` to the report."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import child_env
from rtresponse.cli import main
from rtresponse.errors import InputError
from rtresponse.studyrun import METHODS
from rtresponse.studyrun.run import run_study
from rtresponse.studyrun.schema import SCHEMA_FILE, check, field_rows, load_study, schema

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("sklearn")
pytest.importorskip("radiomics")


# --- study init and the schema ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_init_writes_a_commented_study_file_the_schema_accepts(method, tmp_path, capsys):
    out = tmp_path / f"{method}.yaml"
    assert main(["study", "init", "--method", method, "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Study file:") and "shared/papers/" in text  # commented, names the paper
    study = load_study(out)
    assert study["method"] == method and study["analyses"]
    assert study["cohort"]["synthetic"] is not None  # runs as written, on the synthetic cohort
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(yaml.safe_load(text), schema())  # the reference validator agrees
    assert main(["study", "init", "--method", method, "--out", str(out)]) == 2  # never over a file unasked
    assert "--overwrite" in capsys.readouterr().err


def test_init_with_a_manifest_points_the_cohort_at_it(tmp_path):
    out = tmp_path / "jeong.yaml"
    assert main(["study", "init", "--method", "jeong", "--out", str(out), "--manifest", "data/manifest.csv"]) == 0
    study = load_study(out)
    assert study["cohort"]["synthetic"] is None
    assert study["cohort"]["manifest"] == str((tmp_path / "data" / "manifest.csv").resolve())


def _minimal(**changes) -> dict:
    data = {"version": 1, "cohort": {"manifest": "m.csv"},
            "features": [{"name": "hand", "kind": "handcrafted"}, {"name": "deep", "kind": "deep2d"}],
            "analyses": [{"name": "a", "outcome": "response"}]}
    for path, value in changes.items():
        target = data
        *parents, last = path.split("/")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize("changes, message", [
    ({"analyses/0/k": 0}, "analyses[0].k: must be at least 1, got 0"),
    ({"analyses/0/n_bootstraps": 10}, "analyses[0].n_bootstraps: unknown field"),
    ({"analyses/0/classifiers": ["svm", "xgboost"]}, "analyses[0].classifiers[1]: 'xgboost' is not one of"),
    ({"analyses/0/feature_sets": ["hand", "radiomics"]}, "analyses[0].feature_sets: no feature set 'radiomics'"),
    ({"features/0/kind": "deep"}, "features[0].kind: 'deep' is not one of handcrafted, deep2d, clinical"),
    ({"features/1/preset": "ct-tanaka"}, "features[1].preset: not a setting of deep2d features"),
    ({"features/1/model": "resnet5O"}, "features[1].model: unknown network 'resnet5O'"),
    ({"features/1/name": "hand"}, "features[1].name: 'hand' is also the name of a feature entry"),
    ({"seed": "zero"}, "seed: must be integer, got 'zero'"),
    ({"cohort": {}}, "cohort: give exactly one of manifest and synthetic"),
    ({"version": 2}, "version: 2 is not one of 1"),
])
def test_a_schema_error_names_the_field(changes, message):
    with pytest.raises(InputError) as caught:
        check(_minimal(**changes), "s.yaml")
    assert str(caught.value).startswith("s.yaml: ") and message in str(caught.value)


def test_missing_field_and_check_command_name_the_field(tmp_path, capsys):
    data = _minimal()
    del data["analyses"][0]["outcome"]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["study", "check", str(path)]) == 2
    assert "analyses[0].outcome: required field is missing" in capsys.readouterr().err


def test_defaults_are_filled_and_every_field_is_documented():
    study = check(_minimal(), "s.yaml")
    assert study["analyses"][0]["n_bootstrap"] == 1000 and study["execution"] == {"workers": 1, "scheduler": None, "device": "cpu"}
    assert "preset" not in study["features"][1] and "model" not in study["features"][0]  # only the kind's fields
    docs = (REPO / "docs" / "study.md").read_text(encoding="utf-8")
    for field, _, default, description in field_rows():
        assert description, f"{field} has no description in {SCHEMA_FILE.name}"
        assert default != "", f"{field} has no default"
        assert f"`{field}`" in docs, f"docs/study.md does not document {field}"


def test_run_refuses_a_folder_that_is_not_a_study_folder(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.docx").write_text("mine")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_minimal()))
    assert main(["study", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "not an rtresponse study folder" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["thesis.docx"]


# --- caching, changed settings, interruption ----------------------------------------------------------------------

FIRSTORDER = {"setting": {"binWidth": 25}, "imageType": {"Original": {}}, "featureClass": {"firstorder": []}}


def _study(folder: Path, manifest: Path, n_bootstrap: int = 10, bin_width: int = 25, execution=None) -> Path:
    """A small study: regression label, first-order CT features (a parameter file beside the study), clinical."""
    params = folder / "firstorder.yaml"
    params.write_text(yaml.safe_dump({**FIRSTORDER, "setting": {"binWidth": bin_width}}))
    data = {"version": 1, "name": "cache test", "cohort": {"manifest": str(manifest)},
            "labels": [{"name": "regression", "min_volume_cc": 0}],
            "features": [{"name": "firstorder", "kind": "handcrafted", "preset": "firstorder.yaml"},
                         {"name": "clinical", "kind": "clinical", "factors": ["age", "HPV"]}],
            "analyses": [{"name": "grid", "outcome": "regression", "selectors": ["wilcoxon"], "classifiers": ["nb"],
                          "k": 3, "n_bootstrap": n_bootstrap, "forward": False},
                         {"name": "split", "outcome": "response", "protocol": "split", "feature_sets": ["clinical"],
                          "selectors": ["none"], "classifiers": ["lda"], "cv_folds": 3}],
            "report": {"scene": False, "dpi": 60}}
    if execution:
        data["execution"] = execution
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _statuses(out: Path) -> dict:
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return {f"{s['kind']}/{s['name']}": s["status"] for s in record["steps"]}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from rtresponse.sampledata.synthetic import write_cohort

    return write_cohort(tmp_path_factory.mktemp("study_cohort") / "cohort", n_patients=16, seed=1)


def test_rerun_is_served_from_the_cache_and_a_changed_setting_recomputes_only_its_dependents(cohort, tmp_path):
    out = tmp_path / "run"
    first = run_study(load_study(_study(tmp_path, cohort)), out, log=lambda line: None)
    assert _statuses(out) == {"cohort/manifest": "computed", "labels/regression": "computed",
                              "features/firstorder": "computed", "analysis/grid": "computed",
                              "analysis/split": "computed"}
    assert first.report.is_file()
    written = first.report.stat().st_mtime_ns
    lines = []
    second = run_study(load_study(_study(tmp_path, cohort)), out, log=lines.append)
    assert second.computed == [] and second.count("reused") == 5  # nothing recomputed
    assert "report: unchanged" in lines[-1] and second.report.stat().st_mtime_ns == written  # nor re-rendered
    # one analysis setting: that analysis only
    third = run_study(load_study(_study(tmp_path, cohort, n_bootstrap=12)), out, log=lambda line: None)
    assert third.computed == ["analysis/grid"]
    assert "over 12 draws" in third.report.read_text(encoding="utf-8")  # the report follows
    # the feature extraction's settings: the features and the analysis reading them; the split reads clinical only
    fourth = run_study(load_study(_study(tmp_path, cohort, n_bootstrap=12, bin_width=10)), out, log=lambda line: None)
    assert fourth.computed == ["features/firstorder", "analysis/grid"]
    # a changed image file: every step that reads the cohort's files
    ct = cohort.parent / "P003" / "CT.nrrd"
    ct.touch()
    fifth = run_study(load_study(_study(tmp_path, cohort, n_bootstrap=12, bin_width=10)), out, log=lambda line: None)
    assert set(fifth.computed) == {"cohort/manifest", "labels/regression", "features/firstorder", "analysis/grid",
                                   "analysis/split"}


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="dask.distributed is not installed")
def test_a_study_on_a_dask_cluster_computes_the_same_steps_and_its_cache_serves_a_local_run(cohort, tmp_path):
    """execution.scheduler moves the labels, features and analyses onto a LocalCluster: every step's files equal
    the local run's, and the cache keys do not depend on where steps ran."""
    import pandas as pd

    local = run_study(load_study(_study(tmp_path, cohort)), tmp_path / "local", log=lambda line: None)
    spread = run_study(load_study(_study(tmp_path, cohort, execution={"scheduler": "local-cluster:2"})),
                       tmp_path / "dask", log=lambda line: None)
    assert spread.count("computed") == 5
    for one, other in zip(local.steps, spread.steps):
        assert (one.kind, one.name, one.key) == (other.kind, other.name, other.key)
        for table in sorted(one.path.rglob("*.csv")):
            pd.testing.assert_frame_equal(pd.read_csv(table), pd.read_csv(other.path / table.relative_to(one.path)),
                                          obj=str(table.relative_to(one.path)))
    again = run_study(load_study(_study(tmp_path, cohort, execution={"scheduler": "local-cluster:2"})),
                      tmp_path / "local", log=lambda line: None)
    assert again.computed == [] and again.count("reused") == 5


def test_an_interrupted_run_resumes_with_the_steps_it_had_finished(cohort, tmp_path):
    study = _study(tmp_path, cohort)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "rtresponse", "study", "run", str(study), "--out", str(out), "--progress", "jsonl"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                             errors="replace", env=child_env())
    seen = []
    for line in child.stdout:
        event = json.loads(line)
        seen.append(event)
        if event.get("event") == "log" and event["message"].startswith("analysis grid: computing"):
            child.send_signal(signal.SIGTERM)  # a job runner's Cancel, in the middle of the analysis
            break
    child.stdout.read()
    stderr = child.stderr.read()
    assert child.wait(timeout=60) == 143, stderr
    assert "run the same command again to resume" in stderr
    finished = [e["message"].split(":")[0] for e in seen if e.get("event") == "log" and "computed in" in e["message"]]
    assert finished == ["cohort manifest", "labels regression", "features firstorder"]
    cache = sorted(p.name for p in (out / "cache").iterdir())
    assert not [name for name in cache if name.startswith("analysis")]  # no half step taken for a finished one
    resumed = run_study(load_study(study), out, log=lambda line: None)
    assert not [p for p in (out / "cache").iterdir() if p.name.startswith(".")]  # staging left by the kill removed
    assert _statuses(out) == {"cohort/manifest": "reused", "labels/regression": "reused",
                              "features/firstorder": "reused", "analysis/grid": "computed",
                              "analysis/split": "computed"}
    assert resumed.report.is_file()


def test_tanaka_from_study_init_to_the_report(cohort, tmp_path):
    """The Done-when: `study init --method tanaka`, then `study run` on the synthetic cohort writes the report
    (the grid made small: one selector, two classifiers, few draws)."""
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    path = tmp_path / "tanaka.yaml"
    assert main(["study", "init", "--method", "tanaka", "--out", str(path), "--manifest", str(cohort)]) == 0
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["analyses"][0].update(selectors=["wilcoxon"], classifiers=["lda", "nb"], k=3, n_bootstrap=10, forward=True)
    data["report"]["scene"] = False
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "study"
    assert main(["study", "run", str(path), "--out", str(out), "--progress", "none"]) == 0
    statuses = _statuses(out)
    assert statuses == {"cohort/manifest": "computed", "labels/regression": "computed", "features/deep": "computed",
                        "gradcam/deep": "computed", "features/handcrafted": "computed",
                        "analysis/regression_grid": "computed"}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="analysis-regression_grid"' in html and "efficientnet_lite0" in html
    assert 'id="figure-gradcam_deep"' in html  # Grad-CAM examples over the CT
    results = (out / "tables" / "regression_grid_results.csv").read_text(encoding="utf-8")
    assert {"deep", "handcrafted", "clinical"} <= {line.split(",")[0] for line in results.splitlines()[1:]}
