"""PET SUV state in a manifest (issue 17): an image known to be SUV (a ``suv_<IMAGE>`` column, the
``rtresponse_units`` header that import-dicom and the sample data write, DICOM Units), and the warning of the
recurrence commands when a PET looks like Bq/mL — one line naming the patient and file, and provenance."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from rtresponse.cohort import ManifestError, load_manifest, validate_manifest


def _pet(path: Path, top: float, units: str | None = None) -> str:
    voxels = np.full((4, 8, 8), top / 10, np.float32)
    voxels[2, 4, 4] = top
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing((4.0, 4.0, 4.0))
    if units is not None:
        image.SetMetaData("rtresponse_units", units)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path.name


def _manifest(folder: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


# (top value, header units, suv_PET cell) -> (state, kind, warns)
CASES = {
    "header_suv": (8.0, "SUVbw", "", ("suv", "bw", False)),
    "header_suv_large": (8000.0, "SUVbw", "", ("suv", "bw", False)),       # known SUV never warns
    "header_sul": (6.0, "SUL (lbm-james)", "", ("suv", "lbm-james", False)),
    "unknown_small": (12.0, None, "", ("unknown", "", False)),              # plausibly SUV
    "unknown_large": (12000.0, None, "", ("unknown", "", True)),            # looks like Bq/mL
    "header_bqml": (12.0, "BQML", "", ("bqml", "", True)),                  # the file says so
    "column_bw": (12000.0, None, "bw", ("suv", "bw", False)),               # the manifest says SUV
    "column_over_header": (12000.0, "BQML", "lbm", ("suv", "lbm", False)),  # the manifest wins
    "column_bqml": (5.0, "SUVbw", "bqml", ("bqml", "", True)),
}


def test_suv_state_comes_from_the_manifest_then_the_file_and_bqml_warns(tmp_path):
    rows = []
    for pid, (top, units, cell, _) in CASES.items():
        rows.append({"patient_id": pid, "image_PET": f"{pid}/{_pet(tmp_path / pid / 'PET.nrrd', top, units)}",
                     "suv_PET": cell})
    cohort = load_manifest(_manifest(tmp_path, rows))
    assert cohort.suv_names == ["PET"] and cohort.image_names == ["PET"]
    for pid, (top, units, cell, (state, kind, warns)) in CASES.items():
        found = cohort.suv_state(pid, "PET")
        assert (found.state, found.kind) == (state, kind), pid
        assert found.known_suv == (state == "suv")
        assert found.source.startswith("manifest column suv_PET" if cell else "header rtresponse_units" if units
                                       else ""), (pid, found.source)
        warning = cohort.pet_warning(pid, "PET")
        assert (warning is not None) == warns, (pid, warning)
        if warning:
            assert warning.startswith(f"patient {pid}: PET {tmp_path / pid / 'PET.nrrd'} looks like Bq/mL")
            assert "\n" not in warning
    assert "largest value 12000 > 100" in cohort.pet_warning("unknown_large", "PET")
    assert "header rtresponse_units BQML says Bq/mL" in cohort.pet_warning("header_bqml", "PET")
    assert "manifest column suv_PET says Bq/mL" in cohort.pet_warning("column_bqml", "PET")
    assert validate_manifest(tmp_path / "manifest.csv") == []


def test_a_wrong_suv_column_is_a_manifest_problem(tmp_path):
    _pet(tmp_path / "A" / "PET.nrrd", 5.0)
    manifest = _manifest(tmp_path, [{"patient_id": "A", "image_PET": "A/PET.nrrd", "suv_PET": "SUV", "suv_MR": ""}])
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest)
    problems = caught.value.problems
    assert "patient A, column suv_PET: 'SUV' is not one of bw, lbm, lbm-james, bqml" in problems[0]
    assert any("column suv_MR: there is no image_MR column" in p for p in problems)
    assert len(validate_manifest(manifest)) == 2


def _split(path: Path, parts: dict[str, list[str]]) -> Path:
    with open(path, "w", newline="") as stream:
        stream.write("patient_id,split\n" + "".join(f"{p},{part}\n" for part, ids in parts.items() for p in ids))
    return path


def _run_baseline(manifest: Path, out: Path, split: Path, capsys) -> tuple[str, dict]:
    from rtresponse import provenance
    from rtresponse.cli import main

    capsys.readouterr()
    assert main(["recurrence", "baseline", "--manifest", str(manifest), "--split", str(split), "--box", "32", "32",
                 "16", "--out", str(out), "--progress", "none"]) == 0
    return capsys.readouterr().err, provenance.read(out)


def test_sample_cohort_pet_is_known_suv_and_nothing_warns(synthetic_cohort, tmp_path, capsys):
    cohort = load_manifest(synthetic_cohort)
    for pid in cohort.patient_ids:
        state = cohort.suv_state(pid, "PET")
        assert state.known_suv and state.kind == "bw" and state.source == "header rtresponse_units SUVbw"
        assert cohort.pet_warning(pid, "PET") is None
        assert float(sitk.GetArrayViewFromImage(cohort.read_image(pid, "PET")).max()) < 30  # plausibly SUV too
    ids = cohort.patient_ids
    err, record = _run_baseline(synthetic_cohort, tmp_path / "baseline", _split(
        tmp_path / "split.csv", {"train": ids[:2], "validation": ids[2:5], "test": ids[5:]}), capsys)
    assert "warning" not in err and "warnings" not in record


def test_a_bqml_pet_warns_in_the_recurrence_commands(synthetic_cohort, tmp_path, capsys):
    """The synthetic PET made Bq/mL (x 5000, no units in the header): baseline and evaluate warn once per patient
    they read, naming patient and file, and record it in provenance; a suv_PET=bw column silences it."""
    import pandas as pd

    from rtresponse.cli import main
    from rtresponse import provenance

    folder = tmp_path / "cohort"
    shutil.copytree(synthetic_cohort.parent, folder)
    cohort = load_manifest(folder / "manifest.csv")
    ids = cohort.patient_ids
    for pid in ids:
        path = cohort.image_path(pid, "PET")
        image = sitk.ReadImage(str(path))
        bqml = sitk.GetImageFromArray(sitk.GetArrayFromImage(image) * 5000.0)
        bqml.CopyInformation(image)  # geometry only: no rtresponse_units
        sitk.WriteImage(bqml, str(path))
    assert load_manifest(folder / "manifest.csv").suv_state(ids[0], "PET").state == "unknown"
    parts = {"train": ids[:2], "validation": ids[2:5], "test": ids[5:]}
    split = _split(tmp_path / "split.csv", parts)
    err, record = _run_baseline(folder / "manifest.csv", tmp_path / "baseline", split, capsys)
    lines = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(lines) == len(parts["validation"]), err
    for pid, line in zip(parts["validation"], lines):
        assert line.startswith(f"warning: patient {pid}: PET {folder / pid / 'PET.nrrd'} looks like Bq/mL, not SUV "
                               "(largest value ")
        assert "no suv_PET column" in line
    assert record["warnings"] == [line[len("warning: "):] for line in lines]

    capsys.readouterr()
    assert main(["recurrence", "evaluate", "--manifest", str(folder / "manifest.csv"), "--split", str(split),
                 "--fraction", "0.4", "--box", "32", "32", "16", "--out", str(tmp_path / "evaluation"),
                 "--progress", "none"]) == 0
    err = capsys.readouterr().err
    assert [line.split(":")[1].strip() for line in err.splitlines() if line.startswith("warning:")] == \
        [f"patient {pid}" for pid in parts["test"]]
    assert len(provenance.read(tmp_path / "evaluation")["warnings"]) == len(parts["test"])

    table = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    table["suv_PET"] = "bw"  # the user says these values are SUV: believed, no warning
    table.to_csv(folder / "manifest.csv", index=False)
    err, record = _run_baseline(folder / "manifest.csv", tmp_path / "baseline2", split, capsys)
    assert "warning" not in err and "warnings" not in record


def test_pet_values_warning_for_scene_nodes():
    from rtresponse.recurrence import pet_values_warning

    assert pet_values_warning(np.full((2, 3, 3), 14.0)) is None
    image = sitk.GetImageFromArray(np.full((2, 3, 3), 14000.0))
    warning = pet_values_warning(image, "PET node 'P1 PET'")
    assert warning.startswith("PET node 'P1 PET' looks like Bq/mL, not SUV (largest value 14000 > 100)")
