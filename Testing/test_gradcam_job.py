"""Grad-CAM as a command and as Tumor Features' background job: ``rtresponse gradcam`` on a tiny cohort (a map per
patient on its image grid, gradcam.csv, provenance, one error line for bad input), and the module's job on stand-in
widgets with a real child process, the map loaded into a real MRML scene (RadiotherapyResponseLib.gradcamjob)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import LIBRARY
from jobstandins import panel, spin  # noqa: F401  (panel is a fixture)

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

sys.path.insert(0, str(LIBRARY))  # RadiotherapyResponseLib sits beside the module files
from RadiotherapyResponseLib import featurejobs, gradcamjob, testdata  # noqa: E402
from RadiotherapyResponseLib.jobfolder import JobFolder  # noqa: E402
from rtresponse.cli import main  # noqa: E402
from rtresponse.features import deep2d  # noqa: E402

NETWORK = ["--model", "resnet18", "--weights", "random", "--device", "cpu"]


@pytest.fixture(autouse=True)
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_cohort(tmp_path):
    """Two patients on a small CT (8 x 48 x 48, 2 x 2 x 3 mm): P1 with a GTV, P2 with an empty mask."""
    import SimpleITK as sitk

    from rtresponse.imageio import write_image

    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:8, :48, :48]
    inside = ((y - 24) ** 2 + (x - 22) ** 2 <= 81) & (abs(z - 4) <= 2)
    ct = sitk.GetImageFromArray(np.where(inside, 40.0, -500.0).astype(np.float32) + rng.normal(0, 30, inside.shape)
                                .astype(np.float32))
    ct.SetSpacing((2.0, 2.0, 3.0))
    ct.SetOrigin((-48.0, 10.0, 100.0))
    folder = tmp_path / "cohort"
    rows = []
    for pid, mask in (("P1", inside), ("P2", np.zeros_like(inside))):
        gtv = sitk.GetImageFromArray(mask.astype(np.uint8))
        gtv.CopyInformation(ct)
        write_image(ct, folder / pid / "CT.nrrd")
        write_image(gtv, folder / pid / "GTV.nrrd")
        rows.append({"patient_id": pid, "image_CT": f"{pid}/CT.nrrd", "mask_GTVp": f"{pid}/GTV.nrrd"})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv", ct, sitk.GetImageFromArray(inside.astype(np.uint8))


# --- the command -------------------------------------------------------------------------------------------------

def test_the_command_writes_a_map_per_patient_on_its_grid_with_provenance(tiny_cohort, tmp_path, capsys):
    import SimpleITK as sitk

    from rtresponse import provenance
    from rtresponse.imageio import read_image

    manifest, ct, gtv = tiny_cohort
    out = tmp_path / "maps"
    assert main(["gradcam", "--manifest", str(manifest), "--image", "CT", "--mask", "GTVp", *NETWORK,
                 "--progress", "none", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"wrote {out}: 1 Grad-CAM map(s) of 2 patient(s) with 1 PNG preview(s); 1 failed" in captured.out
    assert "P2: patient P2, column mask_GTVp: mask is empty" in captured.err and "testing only" in captured.err
    table = pd.read_csv(out / "gradcam.csv", index_col="patient_id", keep_default_na=False)
    assert table.to_dict("index") == {
        "P1": {"file": "P1_gradcam.nrrd", "preview": "P1_gradcam.png", "weights": "random (seed 0)", "status": "ok"},
        "P2": {"file": "", "preview": "", "weights": "random (seed 0)",
               "status": "patient P2, column mask_GTVp: mask is empty"}}
    heat = read_image(out / "P1_gradcam.nrrd")
    assert (heat.GetSize(), heat.GetSpacing(), heat.GetOrigin()) == (ct.GetSize(), ct.GetSpacing(), ct.GetOrigin())
    values = sitk.GetArrayFromImage(heat)
    assert 0 <= values.min() and 0.5 < values.max() <= 1 and len(np.unique(np.nonzero(values)[0])) == 1
    gtv.CopyInformation(ct)  # the cohort's map is the single-image function's map
    np.testing.assert_allclose(values, sitk.GetArrayFromImage(deep2d.gradcam(ct, gtv, "resnet18", None, device="cpu")),
                               atol=1e-5)
    record = provenance.read(out)
    assert record["command"][:2] == ["rtresponse", "gradcam"] and record["weights"] == {"weights": "random", "seed": 0}
    assert record["network"]["name"] == "resnet18" and record["target"].startswith("the strongest output unit")
    assert sorted(record["files"]) == ["P1_gradcam.nrrd", "P1_gradcam.png", "gradcam.csv"]
    assert_preview_shows_the_map_and_the_contour(out / "P1_gradcam.png")


def assert_preview_shows_the_map_and_the_contour(path):
    """A PNG (by its signature) of a colour map over a gray slice, with the GTV's contour in lime green."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rgb = imread(path)[..., :3]
    assert rgb.shape[0] >= 400 and rgb.shape[1] >= 400
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    assert (spread > 0.3).mean() > 0.1  # much of it is coloured (the map), not gray
    lime = (rgb[..., 1] > 0.8) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.3)
    assert lime.sum() > 50  # the contour


def test_no_preview_writes_maps_only(tiny_cohort, tmp_path, capsys):
    manifest, _, _ = tiny_cohort
    out = tmp_path / "maps"
    assert main(["gradcam", "--manifest", str(manifest), "--image", "CT", "--mask", "GTVp", "--patient", "P1",
                 *NETWORK, "--no-preview", "--progress", "none", "--out", str(out)]) == 0
    assert "PNG preview" not in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "P1_gradcam.nrrd", "gradcam.csv", "provenance.json"]
    assert pd.read_csv(out / "gradcam.csv", keep_default_na=False)["preview"].tolist() == [""]


def test_the_preview_is_the_slice_the_network_saw_with_the_map_and_the_gtv(tiny_cohort):
    """The figure: the network's input (cropped, windowed, masked) in gray, the map over it with alpha, the GTV's
    contour where the mask is on that slice, a title naming patient, network and whether the weights are random."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from rtresponse import previews
    from rtresponse.imaging import tumour_slices

    manifest, ct, gtv = tiny_cohort
    gtv.CopyInformation(ct)
    crop = tumour_slices(ct, gtv)[0]
    inside = previews.mask_on_crop(gtv, crop)
    assert inside.shape == crop.pixels.shape and inside.sum() > 100
    assert not crop.pixels[~inside].any()  # context mask: the network saw nothing outside the GTV
    heat = np.linspace(0, 1, crop.pixels.size, dtype=np.float32).reshape(crop.pixels.shape)
    figure = previews.gradcam_figure(crop.pixels, heat, inside, crop.grid_spacing_mm, "P1", "resnet18",
                                     "random (seed 0)", "slice 5")
    assert isinstance(figure.canvas, FigureCanvasAgg)
    axes = figure.axes[0]
    assert axes.get_title() == "P1: Grad-CAM of resnet18\nRANDOM weights (seed 0): for testing only"
    gray, shown = axes.get_images()
    np.testing.assert_array_equal(gray.get_array(), crop.pixels)
    assert shown.get_alpha() == previews.MAP_ALPHA and shown.get_cmap().name == previews.MAP_COLOURS
    assert len(axes.collections) >= 1  # the contour
    real = previews.gradcam_figure(crop.pixels, heat, None, 1.0, "P1", "resnet18", "imagenet: file r.pth sha256 ab")
    assert real.axes[0].get_title().endswith("real weights: imagenet: file r.pth sha256 ab")


@pytest.mark.parametrize("change, words", [
    (["--mask", "nosuch"], ["no column mask_nosuch"]),
    (["--patient", "P9"], ["no patient 'P9'"]),
    (["--patient", "P2"], ["no Grad-CAM map could be made", "P2", "mask is empty"]),
    (["--unit", "1000"], ["--unit"]),
    (["--weights", "nosuch.pth"], ["nosuch.pth"]),
], ids=["mask column", "unknown patient", "no map", "unit", "weights file"])
def test_bad_input_gives_one_error_line_and_no_output(tiny_cohort, tmp_path, capsys, monkeypatch, change, words):
    from test_bad_input import assert_refused

    manifest, _, _ = tiny_cohort
    monkeypatch.chdir(tmp_path)
    argv = ["gradcam", "--manifest", manifest, "--image", "CT", "--mask", "GTVp", *NETWORK, "--progress", "none",
            "--out", "maps"]
    for option, value in zip(change[::2], change[1::2]):
        argv = argv[:argv.index(option) + 1] + [value] + argv[argv.index(option) + 2:] if option in argv \
            else argv + [option, value]
    assert_refused(tmp_path, capsys, argv, *words)


# --- the module's job ------------------------------------------------------------------------------------------------

def test_gradcam_arguments_share_the_deep_feature_options():
    network = ["--model", "resnet18", "--weights", "/w/my.pth", "--device", "cuda", "--weights-folder", "/weights"]
    assert gradcamjob.gradcamArguments("M.csv", "OUT", "resnet18", "/w/my.pth", "cuda", "/weights") == \
        ["gradcam", "--manifest", "M.csv", "--image", "image", "--mask", "GTV", *network, "--no-preview", "--out", "OUT"]
    assert featurejobs.deepArguments("M.csv", "F.csv", "resnet18", "/w/my.pth", "cuda", "/weights")[9:] == \
        [*network, "--no-zscore", "--out", "F.csv"]


def seeded_weights_file(path):
    """A ResNet-18 weights file with seeded random weights (seed 1, not the random weights' seed 0)."""
    torch.save(deep2d.build("resnet18", weights=None, seed=1).state_dict(), path)
    return path


def test_a_gradcam_job_loads_its_map_into_the_scene_as_the_in_process_map(panel, scene, tmp_path):  # noqa: F811
    import SimpleITK as sitk

    from rtresponse import mrml

    volume, segmentation, segmentIds = testdata.sphereScene(scene)
    weights = seeded_weights_file(tmp_path / "resnet18-seed1.pth")
    folder = JobFolder("TumorFeatures", root=tmp_path)
    job = gradcamjob.prepareGradcam(folder.path, volume, segmentation, segmentIds, "resnet18", weights, "cpu", None)
    loaded = []

    def load(result):  # what the module does when the job has finished (less showing it in the slice views)
        loaded.append(gradcamjob.importGradcamMaps(job, volume, segmentation, scene))
        return gradcamjob.summary(loaded[-1])

    panel.panel.start(job.arguments, "Starting...", load, folder=folder, inputs=[volume, segmentation], scene=scene)
    spin(300)
    assert panel.panel.result.state == "finished", panel.label.text
    assert ("maximum", 2) in panel.bar.history and not folder.exists
    maps, = loaded
    assert maps.failed == {"Empty": "mask is empty"}
    heat, = maps.nodes
    assert heat.GetName() == "TumorFeaturesTestImage Grad-CAM resnet18 GTV" and scene.IsNodePresent(heat)
    assert panel.label.text == "Grad-CAM: 'TumorFeaturesTestImage Grad-CAM resnet18 GTV'.\nNo map:\n  Empty: mask is empty"
    assert heat.GetAttribute(deep2d.nodes.GRADCAM_SEGMENT_ATTRIBUTE) == "GTV"
    assert heat.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    np.testing.assert_allclose(heat.GetSpacing() + heat.GetOrigin(), volume.GetSpacing() + volume.GetOrigin())
    record = json.loads(heat.GetAttribute(gradcamjob.PROVENANCE_ATTRIBUTE))
    assert record["command"][1] == "gradcam" and record["weights"]["sha256"] == \
        deep2d.weights_provenance("resnet18", weights)["sha256"]
    display = heat.GetDisplayNode()
    assert display is not None and (display.GetWindow(), display.GetLevel()) == (1.0, 0.5)
    direct = deep2d.gradcam_volume_node(volume, segmentation, segmentIds[0], "resnet18", weights, device="cpu")
    values = sitk.GetArrayFromImage(mrml.volume_node_to_image(heat))
    np.testing.assert_allclose(values, sitk.GetArrayFromImage(mrml.volume_node_to_image(direct)), atol=1e-5)
    assert values.max() > 0.5


def test_cancelling_a_gradcam_job_leaves_no_maps(panel, scene, tmp_path):  # noqa: F811
    volume, segmentation, segmentIds = testdata.sphereScene(scene)
    folder = JobFolder("TumorFeatures", root=tmp_path)
    job = gradcamjob.prepareGradcam(folder.path, volume, segmentation, segmentIds, "resnet18", None, "cpu", None)
    panel.panel.start(job.arguments, "Starting...", lambda result: pytest.fail("nothing is loaded"), folder=folder,
                      cancelledText="Cancelled: no map was made.")
    spin(120, until=lambda: ("maximum", 2) in panel.bar.history)  # the first progress event: the job has started
    assert panel.panel.running
    panel.cancel.click()
    assert panel.panel.result.state == "cancelled" and panel.label.text == "Cancelled: no map was made."
    assert not folder.exists and not list(tmp_path.glob("**/*gradcam*"))
