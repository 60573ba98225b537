"""`rtresponse evaluate` as a workflow step: outcomes from a labels file (--labels), robust features from a perturbation
table (--robust-from, --icc), a grid that keeps finished cells and --resume after an interruption, defaults in --help."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("skops")
import rtresponse.models.grid as grid  # noqa: E402
from rtresponse.cli import build_parser, main  # noqa: E402
from rtresponse.models.cells import CELLS, PARTIAL, CellCache  # noqa: E402

CELL = grid._evaluate_cell  # the real one, under the counting wrappers

N = 40
FAST = ["--selectors", "wilcoxon", "chi2", "--classifiers", "lda", "nb", "--k", "3", "--n-bootstrap", "8",
        "--progress", "none"]


@pytest.fixture
def study(tmp_path):
    """40 patients: f1 carries the outcome; a labels file whose `regression` is f2's sign (4 excluded, 2 not
    labelled); a perturbation table where f1, f2 are stable under re-delineation and f0, f3, f4, f5 are not."""
    rng = np.random.default_rng(0)
    ids = [f"P{i:03d}" for i in range(N)]
    f = pd.DataFrame(rng.normal(size=(N, 6)), columns=[f"f{i}" for i in range(6)],
                     index=pd.Index(ids, name="patient_id"))
    response = (f["f1"] + rng.normal(0, 0.5, N) > 0).astype(int)
    f.assign(status="ok").to_csv(tmp_path / "features.csv")
    pd.DataFrame({"patient_id": ids, "clin_age": rng.integers(40, 80, N),
                  "outcome_response": response.to_numpy()}).to_csv(tmp_path / "manifest.csv", index=False)
    labels = pd.DataFrame({"rate": f["f2"], "regression": (f["f2"] > 0).astype(float), "status": "ok"})
    labels.loc[ids[:4], ["rate", "regression"]] = np.nan
    labels.loc[ids[:4], "status"] = "excluded: initial GTV 3.00 cm³ < 5 cm³"
    labels.drop(index=ids[-2:]).to_csv(tmp_path / "labels.csv")
    rows = []
    for repeat in ("original", "erode-1", "dilate-1"):
        noisy = f.copy()
        if repeat != "original":
            noisy[["f1", "f2"]] += rng.normal(0, 0.05, (N, 2))
            noisy[["f0", "f3", "f4", "f5"]] = rng.normal(size=(N, 4))
        rows.append(noisy.assign(perturbation=repeat, status="ok").reset_index())
    pd.concat(rows).set_index(["patient_id", "perturbation"]).to_csv(tmp_path / "perturbed.csv")
    return tmp_path


def _evaluate(study: Path, out: str, *extra: str) -> int:
    return main(["evaluate", "--features", str(study / "features.csv"), "--manifest", str(study / "manifest.csv"),
                 "--out", str(study / out), *FAST, *extra])


# ------------------------------------------------------------------------------------------------------------ labels
def test_an_outcome_from_a_labels_file_and_the_unlabelled_patients_counted(study, capsys):
    assert _evaluate(study, "out", "--labels", str(study / "labels.csv"), "--outcome", "regression") == 0
    printed = capsys.readouterr().out
    assert "outcome regression: 34 of 40 patient(s) labelled; 6 without a label left out" in printed
    record = json.loads((study / "out" / "provenance.json").read_text(encoding="utf-8"))
    labels = record["labels"]
    assert labels["unlabelled_patients"] == 6 and labels["outcome"] == "regression"
    assert sorted(labels["unlabelled"]) == ["P000", "P001", "P002", "P003", "P038", "P039"]
    results = pd.read_csv(study / "out" / "results.csv")
    assert results["features"].str.contains("f2").all()  # the label's feature, not the manifest's
    # the manifest's own outcomes are still there beside the labels
    assert _evaluate(study, "out2", "--labels", str(study / "labels.csv"), "--outcome", "response") == 0


@pytest.mark.parametrize("change, message", [
    (lambda t, _: pd.concat([t, t.iloc[[5]]]), "patient P005 ({path}): has more than one row in the labels file"),
    (lambda t, _: t.rename(index={"P010": "X999"}), "patient X999 ({path}): is in the labels file but not in the "
                                                     "manifest"),
    (lambda t, m: t.assign(response=1 - m["outcome_response"]),
     "patient P004 ({path}): label 'response' is {other} here but {value} in the manifest"),
], ids=["duplicate patient", "unknown patient", "clash with the manifest"])
def test_labels_file_errors_are_one_line_naming_file_and_patient(study, capsys, change, message):
    table = pd.read_csv(study / "labels.csv", index_col="patient_id", dtype={"patient_id": str})
    manifest = pd.read_csv(study / "manifest.csv", index_col="patient_id", dtype={"patient_id": str})
    path = study / "bad_labels.csv"
    change(table, manifest).to_csv(path, index_label="patient_id")
    assert _evaluate(study, "out", "--labels", str(path), "--outcome", "response") == 2
    err = capsys.readouterr().err.strip().splitlines()
    value = manifest.loc["P004", "outcome_response"]
    assert err == ["rtresponse: error: " + message.format(path=path, value=value, other=1 - value)]
    assert not (study / "out").exists()


# -------------------------------------------------------------------------------------------------------- robustness
def test_robust_features_only_from_a_perturbation_table(study, capsys):
    assert _evaluate(study, "out", "--outcome", "response", "--robust-from", str(study / "perturbed.csv"),
                     "--icc", "0.85", "--clinical", "age", "--combine") == 0
    printed = capsys.readouterr().out
    assert "robust features of features: 2 kept, 4 dropped (ICC(A,1) <= 0.85)" in printed
    record = json.loads((study / "out" / "provenance.json").read_text(encoding="utf-8"))
    assert record["robustness"]["sets"] == {"features": {"kept": 2, "dropped": 4, "untested": 0}}
    assert record["robustness"]["rule"] == "ICC(A,1) > 0.85"
    results = pd.read_csv(study / "out" / "results.csv")
    used = {name for cell in results["features"] for name in cell.split(";")}
    assert used <= {"f1", "f2", "age"}  # the clinical factor is not filtered
    assert set(results["feature_set"]) == {"features", "clinical", "features+clinical"}
    icc = pd.read_csv(study / "out" / "robustness.csv").set_index("feature")
    assert set(icc.index[icc["kept"]]) == {"f1", "f2"} and (icc.loc[["f1", "f2"], "icc"] > 0.99).all()


def test_robustness_errors(study, capsys):
    assert _evaluate(study, "out", "--outcome", "response", "--robust-from", str(study / "features.csv")) == 2
    assert "not a perturbation table: no perturbation column" in capsys.readouterr().err
    assert _evaluate(study, "out", "--outcome", "response", "--robust-from", str(study / "perturbed.csv"),
                     "--icc", "0.9999") == 2
    assert "no feature of 'features' has an ICC above 0.9999" in capsys.readouterr().err
    assert main(["evaluate", "--manifest", str(study / "manifest.csv"), "--outcome", "response", "--clinical", "age",
                 "--robust-from", str(study / "perturbed.csv"), "--out", str(study / "o"), *FAST]) == 2
    assert "none of the feature sets has a feature of" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------ resume
def _counting(monkeypatch, stop_after: int | None = None) -> list:
    """Count the grid cells computed (in this process: --jobs 1); raise Ctrl-C when ``stop_after`` are done."""
    calls: list = []

    def cell(*args, **kwargs):
        if stop_after is not None and len(calls) == stop_after:
            raise KeyboardInterrupt
        calls.append(args[:2])
        return CELL(*args, **kwargs)

    monkeypatch.setattr(grid, "_evaluate_cell", cell)
    return calls


def test_an_interrupted_evaluation_resumes_with_only_the_unfinished_cells(study, monkeypatch, capsys):
    options = ["--outcome", "response", "--clinical", "age"]  # 2 sets x 2 selectors x 2 classifiers: 8 cells
    calls = _counting(monkeypatch)
    assert _evaluate(study, "whole", *options) == 0
    assert len(calls) == 8 and not (study / "whole" / PARTIAL).exists()

    calls = _counting(monkeypatch, stop_after=3)
    assert _evaluate(study, "out", *options) == 130  # Ctrl-C after 3 cells: no outputs, the 3 cells kept
    assert sorted(p.name for p in (study / "out").iterdir()) == [PARTIAL]
    assert len((study / "out" / PARTIAL / CELLS).read_text(encoding="utf-8").splitlines()) == 1 + 3
    capsys.readouterr()

    calls = _counting(monkeypatch)
    ranked, rank = [], grid.ranked_features
    monkeypatch.setattr(grid, "ranked_features", lambda name, X, *rest: ranked.append((name, X.shape[1])) or
                        rank(name, X, *rest))
    assert _evaluate(study, "out", *options, "--resume") == 0
    assert len(calls) == 5  # only the unfinished cells
    assert len(ranked) == 3  # the first set's first selector, both of its cells done, is not ranked again
    assert "resumed: 3 grid cell(s) taken from the interrupted run, 5 computed" in capsys.readouterr().out
    assert (study / "out" / "results.csv").read_bytes() == (study / "whole" / "results.csv").read_bytes()
    assert not (study / "out" / PARTIAL).exists()  # the outputs are one set, as an uninterrupted run's
    record = json.loads((study / "out" / "provenance.json").read_text(encoding="utf-8"))
    assert record["resumed"] == {"cells_reused": 3, "cells_computed": 5}


def test_resumed_with_parallel_workers_the_same_results(study, monkeypatch, capsys):
    """--jobs 2 (joblib's threads here, as inside Slicer, to spare the test process starts): each cell is kept as it
    finishes, in this process, and a resumed parallel run gives the same results."""
    import rtresponse.execution

    assert _evaluate(study, "whole", "--outcome", "response") == 0
    monkeypatch.setattr(rtresponse.execution, "in_slicer", lambda: True)
    put = CellCache.put

    def put_then_stop(self, *args):  # Ctrl-C here, in this process, once the second cell is kept
        put(self, *args)
        if self.computed == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(CellCache, "put", put_then_stop)
    assert _evaluate(study, "out", "--outcome", "response", "--jobs", "2") == 130
    assert len(_whole_lines(study / "out" / PARTIAL / CELLS)) == 1 + 2
    monkeypatch.setattr(CellCache, "put", put)
    calls = _counting(monkeypatch)
    assert _evaluate(study, "out", "--outcome", "response", "--resume", "--jobs", "2") == 0
    assert len(calls) == 2
    assert "resumed: 2 grid cell(s) taken from the interrupted run, 2 computed" in capsys.readouterr().out
    assert (study / "out" / "results.csv").read_bytes() == (study / "whole" / "results.csv").read_bytes()


def test_other_settings_reuse_nothing_and_say_so(study, monkeypatch, capsys):
    _counting(monkeypatch, stop_after=2)
    assert _evaluate(study, "out", "--outcome", "response") == 130
    calls = _counting(monkeypatch)
    assert _evaluate(study, "out", "--outcome", "response", "--seed", "1", "--resume") == 0
    assert len(calls) == 4
    err = capsys.readouterr().err
    assert "are not used: it was made with other inputs or settings; computing every cell" in err
    _counting(monkeypatch, stop_after=1)
    assert _evaluate(study, "new", "--outcome", "response") == 130
    calls = _counting(monkeypatch)
    assert _evaluate(study, "new", "--outcome", "response") == 0  # without --resume: every cell, with a note
    assert len(calls) == 4 and "pass --resume to take them" in capsys.readouterr().err
    assert _evaluate(study, "split", "--outcome", "response", "--protocol", "split", "--resume") == 2


def test_cells_are_stored_exactly_and_a_torn_line_is_ignored(tmp_path):
    from rtresponse.evaluation.bootstrap import BootstrapResult

    result = BootstrapResult(auc=0.1 + 0.2, auc_sd=float("nan"), apparent_auc=1 / 3, oob_auc=0.7, sensitivity=0.5,
                             specificity=2 / 7, n_bootstrap=3, per_bootstrap=np.array([1 / 3, 0.1, np.pi]),
                             oob_aucs=np.array([0.5, 0.25, 1 / 7]))
    cache = CellCache(tmp_path, "key")
    cache.view("set").put((0, "chi2", "lda"), (["a", "b"], result))
    with open(tmp_path / CELLS, "a", encoding="utf-8") as file:
        file.write('{"cell": "[\\"set\\", 0, \\"chi2\\", \\"nb\\"]", "feat')  # a process killed mid-line
    again = CellCache(tmp_path, "key", resume=True)
    features, found = again.view("set").get((0, "chi2", "lda"))
    assert features == ["a", "b"] and found.auc == result.auc and np.isnan(found.auc_sd)
    assert found.per_bootstrap.tobytes() == result.per_bootstrap.tobytes() and found.n_bootstrap == 3
    assert again.view("set").get((0, "chi2", "nb")) is None and again.reused == 1


def _whole_lines(path: Path) -> list:
    """The lines of a progress file that are whole JSON records (a signal may land mid-line)."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return found


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_then_resume_from_the_command_line(study, capsys):
    """A job runner's Cancel (SIGTERM) after the first cells, as `--progress jsonl` reports them; then --resume."""
    command = [sys.executable, "-m", "rtresponse", "evaluate", "--features", str(study / "features.csv"),
               "--manifest", str(study / "manifest.csv"), "--outcome", "response", "--selectors", "wilcoxon",
               "chi2", "--classifiers", "lda", "nb", "knn", "--k", "4", "--n-bootstrap", "40",
               "--out", str(study / "out"), "--progress", "jsonl"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "RadiotherapyResponse")}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in child.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and event["stage"] == "evaluating models" and event["done"] >= 1:
            child.send_signal(signal.SIGTERM)
            break
    child.communicate(timeout=60)
    if child.returncode == 0:
        pytest.skip("the grid finished before SIGTERM reached it")
    assert child.returncode == 143
    done = len(_whole_lines(study / "out" / PARTIAL / CELLS)) - 1
    assert 1 <= done < 6
    capsys.readouterr()
    assert main(command[3:-2] + ["--progress", "none", "--resume"]) == 0  # in this process: one start less
    assert f"resumed: {done} grid cell(s) taken from the interrupted run, {6 - done} computed" in capsys.readouterr().out


# -------------------------------------------------------------------------------------------------------------- help
def test_evaluate_help_shows_every_default():
    parser = build_parser()
    commands = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    evaluate = commands.choices["evaluate"]
    for action in evaluate._actions:
        if action.help in (None, "==SUPPRESS==") or not action.option_strings or action.dest == "help":
            continue
        if action.default not in (None, False) or action.dest in ("labels", "robust_from", "clinical", "positive"):
            assert "default" in action.help, f"{action.option_strings[0]}: no default in '{action.help}'"
