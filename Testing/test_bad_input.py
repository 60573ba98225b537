"""Bad and hostile input, as a new user feeds it: one clear message, exit code 2, no output, no input changed.

Each case runs the command line in-process and checks (1) the exit code, (2) that stderr is one line
``rtresponse: error: ...`` holding the case's key words (the file, patient, column or option and the
problem), (3) that the working folder is exactly as before: no new file or folder and no input changed.
Cases where a cohort run must go on (one bad patient) check the patient's ``status`` instead.
The classes follow issue 14: overwritten inputs, silently wrong results, hangs, partial outputs,
tracebacks, vague messages (hostile model files are in test_hostile_files.py).
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from rtresponse.cli import main
from rtresponse.errors import InputError


# --------------------------------------------------------------------------- the workspace

@pytest.fixture
def work(synthetic_cohort, tmp_path, monkeypatch):
    """A writable copy of the 6-patient synthetic cohort, a feature table, a fitted model; cwd = the folder."""
    from conftest import copy_cohort

    manifest = copy_cohort(synthetic_cohort, tmp_path / "cohort")
    ids = pd.read_csv(manifest, dtype=str)["patient_id"]
    rng = np.random.default_rng(0)
    features = pd.DataFrame(rng.normal(size=(len(ids), 4)), columns=["f1", "f2", "f3", "f4"])
    features.insert(0, "patient_id", ids)
    features["status"] = "ok"
    features.to_csv(tmp_path / "features.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder`` with a digest of each file's bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_fifo():
            found[key] = "fifo"
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[key] = "folder"
    return found


def assert_refused(folder: Path, capsys, argv, *words, code: int = 2) -> str:
    """Run ``rtresponse ARGV``; assert exit ``code``, one error line with ``words``, and nothing changed."""
    before = snapshot(folder)
    with _deadline(60):  # a hang (reading a pipe) fails the test instead of blocking the suite
        try:
            result = run(argv)
        except SystemExit as exit:  # argparse refuses an option value while parsing
            result = exit.code
    err = capsys.readouterr().err.strip()
    assert result == code, f"exit {result}, expected {code}: {err}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rtresponse: error: "), err
    for word in words:
        assert str(word).lower() in err.lower(), f"{word!r} not in: {err}"
    assert snapshot(folder) == before, "the command left or changed files"
    return err


class _deadline:
    def __init__(self, seconds: int):
        self.seconds = seconds

    def __enter__(self):
        def expired(*_):
            raise TimeoutError(f"no answer within {self.seconds} s (a hang)")
        self.previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def write_ct(folder: Path, patient: str, voxels) -> Path:
    """Replace a patient's CT voxels, keeping its geometry (float32)."""
    path = folder / "cohort" / patient / "CT.nrrd"
    ct = sitk.ReadImage(str(path))
    image = sitk.GetImageFromArray(np.broadcast_to(voxels, sitk.GetArrayViewFromImage(ct).shape).astype(np.float32))
    image.CopyInformation(ct)
    sitk.WriteImage(image, str(path))
    return path


def edit_manifest(folder: Path, **columns) -> Path:
    """The cohort's manifest with some columns replaced (``{column: list of cells}``)."""
    manifest = folder / "cohort" / "manifest.csv"
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    for column, values in columns.items():
        table[column] = values
    table.to_csv(manifest, index=False)
    return manifest


def mask_as_label_image(folder: Path, patient: str, voxels_of) -> Path:
    """Write a label-image GTVp for ``patient`` (``voxels_of(gtv array)`` -> new array) and point the manifest at it."""
    from rtresponse.imageio import read_mask

    gtv = read_mask(folder / "cohort" / patient / "GTV.seg.nrrd", "GTVp")
    array = voxels_of(sitk.GetArrayFromImage(gtv))
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(gtv)
    path = folder / "cohort" / patient / "GTVp_label.nrrd"
    sitk.WriteImage(image, str(path))
    manifest = folder / "cohort" / "manifest.csv"
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table.loc[table["patient_id"] == patient, "mask_GTVp"] = f"{patient}/GTVp_label.nrrd"
    table.to_csv(manifest, index=False)
    return path


def save_small_model(folder: Path, features=("f1", "f2")) -> Path:
    from sklearn.linear_model import LogisticRegression

    from rtresponse.models.persistence import save_model

    X = pd.DataFrame(np.random.default_rng(1).normal(size=(20, len(features))), columns=list(features))
    model = LogisticRegression().fit(X, np.arange(20) % 2)
    return save_model(folder / "model.skops", model, list(features), "response", 1, 0.5, "test model")


def run(argv) -> int:
    return main([str(a) for a in argv])


M = Path("cohort/manifest.csv")
FEATURES_CMD = ["features", "--kind", "handcrafted", "--manifest", M, "--image", "CT", "--mask", "GTVp"]


# --------------------------------------------------------------------------- 2. inputs never overwritten; outputs

def test_features_refuse_to_write_over_their_manifest(work, capsys):
    assert_refused(work, capsys, FEATURES_CMD + ["--out", M], "names an input", "manifest.csv")


def test_predict_refuses_to_write_over_its_features(work, capsys):
    save_small_model(work)
    assert_refused(work, capsys, ["predict", "--model", "model.skops", "--features", "features.csv", "--out", "features.csv"],
            "names an input", "features.csv")


def test_predict_refuses_to_write_over_its_model(work, capsys):
    save_small_model(work)
    assert_refused(work, capsys, ["predict", "--model", "model.skops", "--features", "features.csv", "--out", "model.skops"],
            "names an input")


def test_labels_refuse_to_write_over_their_manifest(work, capsys):
    assert_refused(work, capsys, ["labels", "--manifest", M, "--out", M], "names an input")


def test_residual_predict_refuses_to_write_over_its_manifest_before_loading_models(work, capsys):
    (work / "a.pt").write_bytes(b"x")
    assert_refused(work, capsys, ["residual", "predict", "--ccrt", "a.pt", "--ic-ccrt", "a.pt", "--manifest", M, "--out", M],
            "names an input")


def test_i3d_predict_refuses_to_write_over_its_model(work, capsys):
    (work / "m.pt").write_bytes(b"x")
    assert_refused(work, capsys, ["i3d", "predict", "--manifest", M, "--model", "m.pt", "--out", "m.pt"], "names an input")


def test_an_output_cannot_be_a_file_the_manifest_names(work, capsys):
    assert_refused(work, capsys, FEATURES_CMD + ["--out", "cohort/P001/CT.nrrd"], "names an input", "CT.nrrd")


def test_a_folder_with_other_files_is_not_an_output_folder(work, capsys):
    (work / "notes").mkdir()
    (work / "notes" / "thesis.docx").write_text("years of work")
    assert_refused(work, capsys, ["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "response",
                           "--out", "notes"], "already holds files", "--overwrite")


def test_overwrite_replaces_only_a_folder_rtresponse_wrote(work, capsys):
    (work / "notes").mkdir()
    (work / "notes" / "thesis.docx").write_text("years of work")
    assert_refused(work, capsys, ["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "response",
                           "--out", "notes", "--overwrite"], "did not write")


def test_overwrite_never_deletes_an_input_inside_the_output_folder(work, capsys):
    (work / "cohort" / ".rtresponse-run.json").write_text("{}")  # as if sample-data had written it
    assert_refused(work, capsys, ["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "response",
                           "--out", "cohort", "--overwrite"], "holds an input", "would delete it")


def test_sample_data_refuses_a_folder_holding_a_cohort(work, capsys):
    assert run(["sample-data", "--kind", "synthetic", "--patients", "3", "--out", "small"]) == 0
    capsys.readouterr()
    assert_refused(work, capsys, ["sample-data", "--kind", "synthetic", "--patients", "2", "--out", "small"],
            "already holds files")


def test_sample_data_with_overwrite_replaces_the_whole_cohort(work, capsys):
    assert run(["sample-data", "--kind", "synthetic", "--patients", "3", "--out", "small"]) == 0
    assert run(["sample-data", "--kind", "synthetic", "--patients", "2", "--out", "small", "--overwrite"]) == 0
    assert sorted(p.name for p in (work / "small").iterdir() if p.is_dir()) == ["P001", "P002"]  # no P003 left
    assert len(pd.read_csv(work / "small" / "manifest.csv")) == 2
    assert "small/manifest.csv" in capsys.readouterr().out  # the final place is printed, not the staging one


def test_a_file_output_cannot_be_an_existing_folder(work, capsys):
    (work / "out.csv").mkdir()
    assert_refused(work, capsys, FEATURES_CMD + ["--out", "out.csv"], "is a folder")


def test_a_folder_output_cannot_be_an_existing_file(work, capsys):
    (work / "notes.txt").write_text("mine")
    assert_refused(work, capsys, ["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "response",
                           "--out", "notes.txt"], "is a file")


def test_an_output_below_a_file_is_refused_before_computing(work, capsys):
    assert_refused(work, capsys, FEATURES_CMD + ["--out", "features.csv/out.csv"], "is a file, not a folder")


def test_recurrence_output_folder_that_is_a_file(work, capsys):
    (work / "m.pt").write_bytes(b"x")
    (work / "notes.txt").write_text("mine")
    assert_refused(work, capsys, ["recurrence", "predict", "--manifest", M, "--model", "m.pt", "--out", "notes.txt"],
            "is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_folder_is_refused_before_computing(work, capsys):
    (work / "locked").mkdir()
    os.chmod(work / "locked", 0o555)
    try:
        assert_refused(work, capsys, FEATURES_CMD + ["--out", "locked/out.csv"], "no permission")
    finally:
        os.chmod(work / "locked", 0o755)


def test_a_rerun_with_another_protocol_leaves_no_file_of_the_first(work, capsys):
    ids = [f"Q{i:03d}" for i in range(30)]  # evaluate reads no image: a table-only cohort of 30 is enough
    pd.DataFrame({"patient_id": ids, "outcome_response": np.arange(30) % 2}).to_csv(work / "q.csv", index=False)
    rng = np.random.default_rng(2)
    pd.DataFrame({"patient_id": ids, "a": rng.normal(size=30) + np.arange(30) % 2, "b": rng.normal(size=30)}
                 ).to_csv(work / "qf.csv", index=False)
    common = ["evaluate", "--features", "qf.csv", "--manifest", "q.csv", "--outcome", "response",
              "--selectors", "none", "--classifiers", "lda", "--k", "2", "--out", "run"]
    assert run(common + ["--protocol", "split"]) == 0
    assert (work / "run" / "shapley.csv").is_file()
    assert run(common + ["--protocol", "bootstrap", "--n-bootstrap", "3"]) == 2  # refused without --overwrite
    assert run(common + ["--protocol", "bootstrap", "--n-bootstrap", "3", "--overwrite"]) == 0
    assert not (work / "run" / "shapley.csv").exists()
    assert (work / "run" / "results.csv").is_file() and (work / "run" / ".rtresponse-run.json").is_file()


# --------------------------------------------------------------------------- 3. silently wrong results

def test_a_float_mask_with_nan_outside_the_tumour_is_not_the_whole_image(work, capsys):
    mask_as_label_image(work, "P002", lambda gtv: np.where(gtv > 0, 1.0, np.nan).astype(np.float32))
    assert run(["validate", "--manifest", M]) == 2
    out = capsys.readouterr().out
    assert "patient P002, column mask_GTVp" in out and "NaN" in out


def test_features_of_a_nan_mask_fail_that_patient_only(work, capsys):
    mask_as_label_image(work, "P002", lambda gtv: np.where(gtv > 0, 1.0, np.nan).astype(np.float32))
    assert run(FEATURES_CMD + ["--out", "f.csv"]) == 0
    table = pd.read_csv(work / "f.csv", dtype={"patient_id": str}).set_index("patient_id")
    assert "NaN" in table.at["P002", "status"] and (table.drop(index="P002")["status"] == "ok").all()


def test_a_probability_map_is_not_a_mask(work, capsys):
    mask_as_label_image(work, "P003", lambda gtv: (gtv * 0.7).astype(np.float32))
    assert run(["validate", "--manifest", M, "--quick"]) == 0  # structure only: fine
    assert run(["validate", "--manifest", M]) == 2
    assert "values other than 0 and 1" in capsys.readouterr().out


def test_a_label_map_of_several_structures_is_not_one_mask(work, capsys):
    mask_as_label_image(work, "P001", lambda gtv: (gtv.astype(np.uint8) + (np.arange(gtv.shape[2]) % 3 == 0)))
    assert run(["validate", "--manifest", M]) == 2
    assert "several labels" in capsys.readouterr().out


def test_an_all_nan_ct_gives_no_handcrafted_features(work, capsys):
    write_ct(work, "P004", np.nan)
    assert run(FEATURES_CMD + ["--out", "f.csv"]) == 0
    table = pd.read_csv(work / "f.csv", dtype={"patient_id": str}).set_index("patient_id")
    assert "NaN values (every voxel)" in table.at["P004", "status"]
    assert "arange" not in table.at["P004", "status"]


def test_an_all_nan_ct_gives_no_deep_features(work, capsys):
    write_ct(work, "P004", np.nan)
    assert run(["features", "--kind", "deep2d", "--manifest", M, "--image", "CT", "--mask", "GTVp",
                 "--model", "squeezenet", "--weights", "random", "--device", "cpu", "--out", "d.csv"]) == 0
    table = pd.read_csv(work / "d.csv", dtype={"patient_id": str}).set_index("patient_id")
    assert "NaN" in table.at["P004", "status"] and table.loc["P004"].drop(["status", "weights"]).isna().all()
    assert (work / "d.zscore.csv").is_file()


def test_an_infinite_ct_voxel_is_named(work, capsys):
    path = write_ct(work, "P005", 0.0)
    image = sitk.ReadImage(str(path))
    image[3, 3, 3] = float("inf")
    sitk.WriteImage(image, str(path))
    assert run(["validate", "--manifest", M]) == 2
    out = capsys.readouterr().out
    assert "patient P005, column image_CT" in out and "infinite values (1 of" in out


def test_a_typo_in_a_numeric_clinical_column_is_named(work, capsys):
    ages = pd.read_csv(work / M, dtype=str)["clin_age"].tolist()
    edit_manifest(work, clin_age=["5b"] + ages[1:])
    assert_refused(work, capsys, ["evaluate", "--manifest", M, "--outcome", "response", "--clinical", "age", "--out", "e"],
            "patient P001", "column clin_age", "'5b' is not a number")


def test_validate_names_the_clinical_typo_too(work, capsys):
    ages = pd.read_csv(work / M, dtype=str)["clin_age"].tolist()
    edit_manifest(work, clin_age=ages[:2] + ["6l"] + ages[3:])
    assert run(["validate", "--manifest", M, "--quick"]) == 2
    assert "patient P003, column clin_age: '6l' is not a number" in capsys.readouterr().out


def test_repeated_column_names_in_a_manifest_are_listed(work, capsys):
    text = (work / M).read_text().splitlines()
    text[0] = text[0].replace("clin_sex", "clin_age")
    (work / M).write_text("\n".join(text) + "\n")
    assert run(["validate", "--manifest", M, "--quick"]) == 2
    assert "column clin_age: appears more than once" in capsys.readouterr().out


def test_repeated_column_names_in_a_feature_table_are_refused(work, capsys):
    text = (work / "features.csv").read_text().splitlines()
    text[0] = text[0].replace("f2", "f1")
    (work / "features.csv").write_text("\n".join(text) + "\n")
    assert_refused(work, capsys, ["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "response",
                           "--out", "e"], "column f1 appears more than once", "features.csv")


def test_recommend_refuses_probabilities_in_its_verdict_columns(work, capsys):
    ids = pd.read_csv(work / M, dtype=str)["patient_id"]
    pd.DataFrame({"patient_id": ids, "residual_CCRT": [0.73, 0, 1, 0, 1, 0],
                  "residual_IC_CCRT": [0, 1, 0, 1, 0, 1]}).to_csv(work / "p.csv", index=False)
    assert_refused(work, capsys, ["residual", "recommend", "--predictions", "p.csv", "--manifest", M, "--out", "r"],
            "patient P001", "residual_CCRT", "not 0 or 1")


@pytest.mark.parametrize("argv, words", [
    (["sample-data", "--kind", "synthetic", "--signal", "nan", "--out", "s"], ["--signal", "finite", "nan"]),
    (["recurrence", "predict", "--manifest", M, "--model", "m.pt", "--threshold", "nan", "--out", "r"],
     ["--threshold", "nan"]),
    (["recurrence", "evaluate", "--manifest", M, "--fraction", "inf", "--out", "r"], ["--fraction", "inf"]),
    (["labels", "--manifest", M, "--threshold", "1.691", "--out", "l.csv"], ["--threshold", "fraction per day"]),
    (["labels", "--manifest", M, "--threshold", "nan", "--out", "l.csv"], ["--threshold", "nan"]),
    (["features", "--kind", "deep2d", "--manifest", M, "--image", "CT", "--mask", "GTVp", "--level", "nan",
      "--out", "d.csv"], ["--level", "nan"]),
], ids=["signal-nan", "threshold-nan", "fraction-inf", "rate-in-percent", "rate-nan", "level-nan"])
def test_non_finite_options_are_refused(work, capsys, argv, words):
    (work / "m.pt").write_bytes(b"x")
    assert_refused(work, capsys, argv, *words)


def test_zero_padded_ids_survive_a_feature_table_round_trip(tmp_path):
    from rtresponse.models.tables import read_feature_table

    pd.DataFrame({"patient_id": ["00001", "00002"], "f": [1.0, 2.0]}).to_csv(tmp_path / "f.csv", index=False)
    assert list(read_feature_table(tmp_path / "f.csv").index) == ["00001", "00002"]


# --------------------------------------------------------------------------- 4. hangs

def test_a_named_pipe_as_manifest_is_refused(work, capsys):
    os.mkfifo(work / "pipe.csv")
    assert_refused(work, capsys, ["evaluate", "--features", "features.csv", "--manifest", "pipe.csv", "--outcome",
                           "response", "--out", "e"], "--manifest", "not a regular file", "pipe.csv")
    with _deadline(60):
        assert run(["validate", "--manifest", "pipe.csv"]) == 2  # validate lists it as its problem
    assert "not a regular file" in capsys.readouterr().out


def test_a_named_pipe_as_image_is_reported_by_validate(work, capsys):
    os.remove(work / "cohort" / "P002" / "CT.nrrd")
    os.mkfifo(work / "cohort" / "P002" / "CT.nrrd")
    with _deadline(60):
        assert run(["validate", "--manifest", M]) == 2
    assert "patient P002, column image_CT" in capsys.readouterr().out


def test_a_named_pipe_as_image_fails_that_patient_in_features(work, capsys):
    os.remove(work / "cohort" / "P002" / "CT.nrrd")
    os.mkfifo(work / "cohort" / "P002" / "CT.nrrd")
    with _deadline(120):
        assert run(FEATURES_CMD + ["--out", "f.csv"]) == 0
    table = pd.read_csv(work / "f.csv", dtype={"patient_id": str}).set_index("patient_id")
    assert "not a regular file" in table.at["P002", "status"]


def test_a_named_pipe_as_feature_table_is_refused(work, capsys):
    save_small_model(work)
    os.mkfifo(work / "pipe.csv")
    assert_refused(work, capsys, ["predict", "--model", "model.skops", "--features", "pipe.csv", "--out", "p.csv"],
            "not a regular file")


# --------------------------------------------------------------------------- 5. partial outputs

def test_a_failing_deep_feature_run_leaves_no_table_and_no_statistics(work, capsys):
    for pid in ("P001", "P002", "P003", "P004", "P005", "P006"):
        write_ct(work, pid, np.nan)
    assert_refused(work, capsys, ["features", "--kind", "deep2d", "--manifest", M, "--image", "CT", "--mask", "GTVp",
                           "--model", "squeezenet", "--weights", "random", "--device", "cpu", "--out", "d.csv"],
            "no patient's features could be computed", "patient P001", "NaN")


def test_an_interrupted_sample_data_leaves_nothing(work, capsys, monkeypatch):
    from rtresponse.sampledata import synthetic

    original = synthetic._patient

    def interrupted(rng, index, *args):
        if index == 2:
            raise KeyboardInterrupt
        return original(rng, index, *args)

    monkeypatch.setattr(synthetic, "_patient", interrupted)
    before = snapshot(work)
    assert run(["sample-data", "--kind", "synthetic", "--patients", "4", "--out", "s"]) == 130
    assert snapshot(work) == before


def test_a_failed_recurrence_training_leaves_no_split(work, capsys):
    (work / "init.pt").write_bytes(b"not a model")
    assert_refused(work, capsys, ["recurrence", "train", "--manifest", M, "--relapse", "GTVp", "--init", "init.pt",
                           "--out", "r"], "init.pt")


def test_a_failed_evaluation_leaves_no_folder(work, capsys):
    assert_refused(work, capsys, ["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "nosuch",
                           "--out", "e"], "outcome_nosuch")


# --------------------------------------------------------------------------- 6. one line, not a traceback

def test_an_infinite_feature_value_is_named(work, capsys):
    table = pd.read_csv(work / "features.csv", dtype={"patient_id": str})
    table.loc[2, "f3"] = np.inf
    table.to_csv(work / "features.csv", index=False)
    assert_refused(work, capsys, ["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "response",
                           "--out", "e"], "patient P003", "column f3", "infinite")


def test_an_unknown_patient_id_is_named(work, capsys):
    (work / "m.pt").write_bytes(b"x")
    assert_refused(work, capsys, ["i3d", "predict", "--manifest", M, "--model", "m.pt", "--patients", "P001", "P999",
                           "--out", "p.csv"], "P999", "not in the manifest")


@pytest.mark.parametrize("argv, words", [
    (FEATURES_CMD + ["--jobs", "0", "--out", "f.csv"], ["--jobs", ">= 1", "got 0"]),
    (FEATURES_CMD + ["--perturbations", "-1", "--out", "f.csv"], ["--perturbations", "got -1"]),
    (["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "response", "--n-bootstrap",
      "1000000000", "--out", "e"], ["--n-bootstrap", "100000"]),
    (["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "response", "--k", "0", "--out", "e"],
     ["--k"]),
    (["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "response", "--seed", "-1", "--out",
      "e"], ["--seed"]),
    (["evaluate", "--features", "features.csv", "--manifest", M, "--outcome", "response", "--jobs", "two", "--out",
      "e"], ["--jobs", "'two'"]),
    (["recurrence", "train", "--manifest", M, "--box", "0", "0", "0", "--out", "r"], ["--box", "got 0"]),
    (["recurrence", "train", "--manifest", M, "--box", "-16", "64", "64", "--out", "r"], ["--box", "got -16"]),
    (["recurrence", "train", "--manifest", M, "--epochs", "0", "--out", "r"], ["--epochs"]),
    (["recurrence", "train", "--manifest", M, "--lr", "-0.1", "--out", "r"], ["--lr"]),
    (["residual", "segmenter", "--manifest", M, "--input-size", "0", "--out", "r"], ["--input-size"]),
    (["residual", "train", "--manifest", M, "--epochs", "0", "--out", "r"], ["--epochs"]),
    (["residual", "train", "--manifest", M, "--threshold", "1.5", "--out", "r"], ["--threshold"]),
    (["i3d", "train", "--manifest", M, "--outcome", "response", "--test-size", "1.5", "--out", "r"], ["--test-size"]),
    (["i3d", "train", "--manifest", M, "--outcome", "response", "--dropout", "1", "--out", "r"], ["--dropout"]),
    (["i3d", "train", "--manifest", M, "--outcome", "response", "--spacing", "1", "0", "1", "--out", "r"],
     ["--spacing"]),
    (["i3d", "train", "--manifest", M, "--outcome", "response", "--shape", "32", "32", "0", "--out", "r"],
     ["--shape"]),
    (["sample-data", "--kind", "synthetic", "--patients", "0", "--out", "s"], ["--patients"]),
    (["features", "--kind", "deep2d", "--manifest", M, "--image", "CT", "--mask", "GTVp", "--size-mm", "0",
      "--out", "d.csv"], ["--size-mm"]),
], ids=["jobs-0", "perturbations-negative", "absurd-bootstrap", "k-0", "seed-negative", "jobs-text", "box-0",
        "box-negative", "recurrence-epochs-0", "lr-negative", "input-size-0", "residual-epochs-0",
        "threshold-above-1", "test-size-above-1", "dropout-1", "spacing-0", "shape-0", "patients-0", "size-mm-0"])
def test_out_of_range_options_are_one_line(work, capsys, argv, words):
    assert_refused(work, capsys, argv, *words)


@pytest.mark.parametrize("option, argv", [
    ("--split", ["recurrence", "evaluate", "--manifest", M, "--split", "nosuch.csv", "--out", "r"]),
    ("--zscore-from", ["features", "--kind", "deep2d", "--manifest", M, "--image", "CT", "--mask", "GTVp",
                       "--zscore-from", "nosuch.csv", "--out", "d.csv"]),
    ("--predictions", ["residual", "recommend", "--predictions", "nosuch.csv", "--manifest", M, "--out", "r"]),
    ("--model", ["predict", "--model", "nosuch.skops", "--features", "features.csv", "--out", "p.csv"]),
    ("--features", ["evaluate", "--features", "nosuch.csv", "--manifest", M, "--outcome", "response", "--out", "e"]),
    ("--manifest", ["features", "--kind", "handcrafted", "--manifest", "nosuch.csv", "--image", "CT", "--mask",
                    "GTVp", "--out", "f.csv"]),
    ("--params", FEATURES_CMD + ["--params", "nosuch.yaml", "--out", "f.csv"]),
], ids=["split", "zscore-from", "predictions", "model", "features", "manifest", "params"])
def test_a_missing_input_file_is_named(work, capsys, option, argv):
    assert_refused(work, capsys, argv, option, "nosuch", "not found")


def test_weights_download_without_network_is_one_line(work, capsys, monkeypatch):
    import urllib.error

    import torch

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    assert_refused(work, capsys, ["weights", "download", "resnet18", "--weights-folder", work / "weights"],
            "cannot download", "resnet18", "by hand")


def test_a_segment_label_value_that_is_not_a_number(tmp_path):
    from rtresponse.imageio import read_segmentation, write_segmentation

    mask = sitk.GetImageFromArray(np.ones((2, 3, 3), np.uint8))
    path = write_segmentation({"GTVp": mask}, tmp_path / "gtv.seg.nrrd")
    image = sitk.ReadImage(str(path))
    image.SetMetaData("Segment0_LabelValue", "one")
    sitk.WriteImage(image, str(path))
    with pytest.raises(InputError, match="LabelValue or Layer that is not a whole number") as error:
        read_segmentation(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("call", ["handcrafted", "deep2d"])
def test_numpy_arrays_where_images_are_expected(call):
    from rtresponse.features import deep2d, handcrafted

    array = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(InputError, match="must be a SimpleITK image, got numpy.ndarray"):
        if call == "handcrafted":
            handcrafted.extract(array, array, "ct-tanaka")
        else:
            deep2d.extract(array, array, model="squeezenet", weights=None)


def test_nan_in_x_for_a_classifier_that_does_not_impute():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from rtresponse.evaluation.bootstrap import bootstrap_632plus_auc

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=["a", "b", "c"])
    X.iloc[4, 1] = np.nan
    with pytest.raises(InputError, match="missing \\(NaN\\) value\\(s\\), first at row 4, column b"):
        bootstrap_632plus_auc(LinearDiscriminantAnalysis(), X, np.arange(20) % 2, n_bootstrap=3)


def test_infinity_in_x_for_the_grid():
    from rtresponse.models.grid import run_grid

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=["a", "b", "c"])
    X.iloc[7, 2] = -np.inf
    with pytest.raises(InputError, match="infinite value\\(s\\), first at row 7, column c"):
        run_grid(X, np.arange(20) % 2, selectors=["chi2"], classifiers=["lda"], n_bootstrap=3)


def test_feature_sets_of_other_patients_than_the_outcome_for_the_grid():
    from rtresponse.models.grid import run_grids

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=["a", "b", "c"])
    with pytest.raises(InputError, match="feature set 'deep' has 19 patients \\(rows\\), the outcome 20"):
        run_grids({"handcrafted": X, "deep": X.iloc[1:]}, np.arange(20) % 2, selectors=["chi2"], classifiers=["lda"],
                  n_bootstrap=3)


# --------------------------------------------------------------------------- 7. vague messages made precise

def test_a_mask_whose_direction_differs_says_direction(tmp_path):
    from rtresponse.imageio import align_mask

    image = sitk.Image(8, 8, 4, sitk.sitkFloat32)
    mask = sitk.Image(8, 8, 4, sitk.sitkUInt8)
    mask.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    with pytest.raises(InputError) as error:
        align_mask(mask, image)
    message = str(error.value)
    assert "direction (0 1 0 1 0 0 0 0 1)" in message and "direction (1 0 0 0 1 0 0 0 1)" in message


def test_invalid_deep_feature_options_get_the_library_message(synthetic_cohort):
    from rtresponse.cohort import load_manifest
    from rtresponse.features.deep2d import extract_cohort

    with pytest.raises(InputError, match="context must be 'mask' or 'keep', got 'tissue'"):
        extract_cohort(load_manifest(synthetic_cohort), "CT", "GTVp", model="squeezenet", weights=None,
                       context="tissue")


def test_a_clinical_model_without_the_manifest_says_so(work, capsys):
    save_small_model(work, features=("f1", "age"))
    assert_refused(work, capsys, ["predict", "--model", "model.skops", "--features", "features.csv", "--out", "p.csv"],
            "age", "--manifest")


def test_validate_lists_every_problem_after_a_duplicate_id(work, capsys):
    table = pd.read_csv(work / M, dtype=str, keep_default_na=False)
    table.loc[1, "patient_id"] = "P001"
    table.loc[3, "image_CT"] = "P004/missing.nrrd"
    table.to_csv(work / M, index=False)
    assert run(["validate", "--manifest", M, "--quick"]) == 2
    out = capsys.readouterr().out
    assert "patient P001: duplicate patient_id (lines 2, 3)" in out
    assert "patient P004, column image_CT: file not found" in out
