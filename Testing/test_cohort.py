"""Cohort manifests: loading, typed tables, and one clear message per problem."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

sitk = pytest.importorskip("SimpleITK")
from rtresponse import cohort as cohort_module  # noqa: E402
from rtresponse.cli import main  # noqa: E402
from rtresponse.cohort import ManifestError, load_manifest, validate_manifest  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.imageio import write_image, write_segmentation  # noqa: E402

from conftest import copy_cohort  # noqa: E402


def _write_manifest(folder, rows, columns):
    path = folder / "manifest.csv"
    frame = pd.DataFrame(rows, columns=columns)
    frame.to_csv(path, index=False)
    return path


def _tiny_case(folder, pid="A1", mask_voxels=True):
    image = sitk.GetImageFromArray(np.arange(8 * 8 * 4, dtype=np.int16).reshape(4, 8, 8))
    image.SetSpacing((1.0, 1.0, 2.0))
    mask = np.zeros((4, 8, 8), np.uint8)
    if mask_voxels:
        mask[1:3, 2:5, 2:5] = 1
    mask_image = sitk.GetImageFromArray(mask)
    mask_image.CopyInformation(image)
    write_image(image, folder / pid / "ct.nrrd")
    write_image(mask_image, folder / pid / "gtv.nrrd")
    return image, mask_image


def test_synthetic_manifest_loads_with_typed_tables(synthetic_cohort):
    cohort = load_manifest(synthetic_cohort)
    assert len(cohort) == 6 and cohort.patient_ids[0] == "P001"
    assert {"CT", "PET", "T1", "T2"} <= set(cohort.image_names)
    assert {"GTVp", "GTVn", "relapse"} <= set(cohort.mask_names)
    clinical = cohort.clinical()
    assert clinical["age"].dtype.kind in "if"          # numbers are numbers
    assert clinical["sex"].isin(["M", "F"]).all()      # text stays text
    assert set(cohort.outcomes()["response"].unique()) <= {0, 1}
    patient = cohort.patient("P001")
    assert patient.images["CT"].is_file()
    assert validate_manifest(synthetic_cohort) == []


def test_relative_paths_resolve_against_the_manifest_not_the_cwd(synthetic_cohort, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    cohort = load_manifest(synthetic_cohort)
    image = cohort.read_image("P001", "CT")
    assert image.GetSize() == (64, 64, 24)


def test_masks_come_back_on_their_image_grid(synthetic_cohort):
    cohort = load_manifest(synthetic_cohort)
    ct = cohort.read_image("P002", "CT")
    gtvp = cohort.read_mask("P002", "GTVp")
    assert gtvp.GetSize() == ct.GetSize() and gtvp.GetPixelID() == sitk.sitkUInt8
    assert sitk.GetArrayViewFromImage(gtvp).sum() > 0
    with pytest.raises(InputError, match=r"patient P002, column mask_GTVp.*fits none.*image_PET"):
        cohort.read_mask("P002", "GTVp", image="PET")  # PET is on a coarser grid


def test_cropped_seg_nrrd_subgrid_is_placed_exactly(tmp_path):
    image, mask = _tiny_case(tmp_path)
    cropped = mask[1:6, 1:7, 0:4]  # SimpleITK slicing keeps physical positions
    write_segmentation({"GTV": cropped}, tmp_path / "A1" / "gtv.seg.nrrd")
    manifest = _write_manifest(tmp_path, [["A1", "A1/ct.nrrd", "A1/gtv.seg.nrrd"]],
                               ["patient_id", "image_CT", "mask_GTV"])
    aligned = load_manifest(manifest).read_mask("A1", "GTV")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(aligned), sitk.GetArrayFromImage(mask))


@pytest.mark.parametrize("columns, rows, expected", [
    (["id", "image_CT"], [["A1", "A1/ct.nrrd"]], r"required column 'patient_id' is missing"),
    (["patient_id", "image_CT", "age"], [["A1", "A1/ct.nrrd", "61"]], r"column age: unknown column prefix"),
    (["patient_id", "image_CT"], [["A1", "A1/ct.nrrd"], ["A1", "A1/ct.nrrd"]],
     r"patient A1: duplicate patient_id \(lines 2, 3\)"),
    (["patient_id", "image_CT"], [["", "A1/ct.nrrd"]], r"line 2: patient_id is empty"),
    (["patient_id", "image_CT"], [["A1", "A1/nothere.nrrd"]], r"patient A1, column image_CT: file not found"),
    (["patient_id", "image_"], [["A1", "A1/ct.nrrd"]], r"column image_: a name must follow the prefix"),
])
def test_structural_problems_get_one_clear_message(tmp_path, columns, rows, expected):
    _tiny_case(tmp_path)
    manifest = _write_manifest(tmp_path, rows, columns)
    problems = validate_manifest(manifest)
    assert len(problems) == 1, problems
    assert pd.Series(problems).str.contains(expected).any(), problems
    with pytest.raises(ManifestError, match=expected) as raised:
        load_manifest(manifest)
    assert "\n" not in str(raised.value)


def test_image_level_problems_name_patient_column_and_file(tmp_path):
    _tiny_case(tmp_path, "A1")
    _tiny_case(tmp_path, "A2", mask_voxels=False)                    # empty mask
    _tiny_case(tmp_path, "A3")
    other = sitk.Image((5, 5, 5), sitk.sitkUInt8)
    other[2, 2, 2] = 1
    write_image(other, tmp_path / "A3" / "gtv.nrrd")                  # wrong geometry
    (tmp_path / "A4").mkdir()
    (tmp_path / "A4" / "ct.nrrd").write_text("this is not an image")  # unreadable
    _tiny_case(tmp_path, "A5")
    rows = [[f"A{i}", f"A{i}/ct.nrrd", f"A{i}/gtv.nrrd" if i != 4 else "", value]
            for i, value in zip(range(1, 6), ["61", "54", "70", "6l", "66"])]
    manifest = _write_manifest(tmp_path, rows, ["patient_id", "image_CT", "mask_GTV", "clin_age"])
    problems = validate_manifest(manifest)
    text = "\n".join(problems)
    assert len(problems) == 4, text
    assert "patient A2, column mask_GTV" in text and "mask is empty" in text
    assert "patient A3, column mask_GTV: mask geometry does not match" in text
    assert "patient A4, column image_CT" in text and "cannot read image" in text
    assert "patient A4, column clin_age: '6l' is not a number" in text
    assert "A1" not in text and "A5" not in text


def test_validate_command_prints_every_problem_and_exits_2(tmp_path, capsys):
    _tiny_case(tmp_path, "A1")
    manifest = _write_manifest(tmp_path, [["A1", "A1/ct.nrrd", "A1/missing.nrrd"], ["A1", "A1/ct.nrrd", ""]],
                               ["patient_id", "image_CT", "mask_GTV"])
    code = main(["validate", "--manifest", str(manifest)])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 2
    assert any("duplicate patient_id" in line for line in out)
    code = main(["validate", "--manifest", str(tmp_path / "absent.csv")])
    assert code == 2 and "manifest file not found" in capsys.readouterr().out


def test_validate_command_accepts_a_good_manifest(synthetic_cohort, capsys):
    assert main(["validate", "--manifest", str(synthetic_cohort)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_validation_never_modifies_inputs(synthetic_cohort, tmp_path):
    manifest = copy_cohort(synthetic_cohort, tmp_path / "copy")

    def digest():
        return {p.name + str(p.parent.name): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in manifest.parent.rglob("*") if p.is_file()}

    before = digest()
    assert validate_manifest(manifest) == []
    cohort = load_manifest(manifest)
    cohort.read_mask("P001", "GTVp")
    assert digest() == before


def test_unknown_patient_and_unknown_image_name_are_clear(synthetic_cohort):
    cohort = load_manifest(synthetic_cohort)
    with pytest.raises(InputError, match="patient P999.*not in the manifest"):
        cohort.patient("P999")
    with pytest.raises(InputError, match=r"no column image_MRI.*images: CT"):
        cohort.read_image("P001", "MRI")


def test_seg_nrrd_without_the_named_segment_lists_what_it_has(tmp_path):
    image, mask = _tiny_case(tmp_path)
    second = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    second.CopyInformation(mask)
    second[0, 0, 0] = 1
    write_segmentation({"Brainstem": mask, "Parotid": second}, tmp_path / "A1" / "oar.seg.nrrd")
    manifest = _write_manifest(tmp_path, [["A1", "A1/ct.nrrd", "A1/oar.seg.nrrd"]],
                               ["patient_id", "image_CT", "mask_GTVp"])
    problems = validate_manifest(manifest)
    assert len(problems) == 1
    assert "no segment named 'GTVp' (segments: Brainstem, Parotid)" in problems[0]
    assert cohort_module.PREFIXES == ("image_", "mask_", "clin_", "outcome_")
